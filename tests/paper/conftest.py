"""Fixtures for the paper-model tests: test signals and a torchaudio stand-in built on independent references.

torchaudio does not load beside this torch, yet the official ``dasheng`` package imports it. The stand-in below
implements the few pieces the official code calls with *independent* references: librosa's HTK mel filters for
``MelSpectrogram``, torchaudio's documented ``AmplitudeToDB`` formula, and kaldi-native-fbank for
``compliance.kaldi.fbank``.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest


def _make_torchaudio_stub() -> types.ModuleType:
    import librosa
    import torch
    from torch import nn

    class _Holder(nn.Module):
        def __init__(self, name: str, value: torch.Tensor) -> None:
            super().__init__()
            self.register_buffer(name, value)

    class MelSpectrogram(nn.Module):
        def __init__(self, sample_rate=16000, n_fft=400, win_length=None, hop_length=None, f_min=0.0, f_max=None,
                     n_mels=128, center=True, pad_mode="reflect", **_):
            super().__init__()
            self.n_fft, self.win = n_fft, win_length or n_fft
            self.hop, self.center, self.pad_mode = hop_length or self.win // 2, center, pad_mode
            self.spectrogram = _Holder("window", torch.hann_window(self.win))
            fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min,
                                     fmax=f_max or sample_rate / 2, htk=True, norm=None)
            self.mel_scale = _Holder("fb", torch.as_tensor(fb.T, dtype=torch.float32))

        def forward(self, x):
            spec = torch.stft(x, self.n_fft, self.hop, self.win, window=self.spectrogram.window, center=self.center,
                              pad_mode=self.pad_mode, return_complex=True).abs() ** 2
            return torch.matmul(spec.transpose(-1, -2), self.mel_scale.fb).transpose(-1, -2)

    class AmplitudeToDB(nn.Module):
        def __init__(self, stype="power", top_db=None):
            super().__init__()
            self.top_db = top_db

        def forward(self, x):  # torchaudio.functional.amplitude_to_DB with multiplier 10, amin 1e-10, ref 1
            x_db = 10.0 * torch.log10(torch.clamp(x, min=1e-10))
            if self.top_db is not None:
                shape = x_db.size()
                packed = shape[-3] if x_db.dim() > 2 else 1
                x_db = x_db.reshape(-1, packed, shape[-2], shape[-1])
                x_db = torch.max(x_db, (x_db.amax(dim=(-3, -2, -1)) - self.top_db).view(-1, 1, 1, 1))
                x_db = x_db.reshape(shape)
            return x_db

    def fbank(waveform, num_mel_bins=23, sample_frequency=16000.0, frame_length=25.0, frame_shift=10.0,
              window_type="povey", dither=0.0, **_):
        import kaldi_native_fbank as knf

        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = float(sample_frequency)
        opts.frame_opts.frame_length_ms = float(frame_length)
        opts.frame_opts.frame_shift_ms = float(frame_shift)
        opts.frame_opts.dither = float(dither)
        opts.frame_opts.window_type = window_type
        opts.mel_opts.num_bins = int(num_mel_bins)
        computer = knf.OnlineFbank(opts)
        computer.accept_waveform(float(sample_frequency), waveform.reshape(-1).double().tolist())
        computer.input_finished()
        rows = [computer.get_frame(i) for i in range(computer.num_frames_ready)]
        return torch.as_tensor(np.array(rows), dtype=torch.float32)

    root = types.ModuleType("torchaudio")
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.MelSpectrogram, transforms.AmplitudeToDB = MelSpectrogram, AmplitudeToDB
    compliance = types.ModuleType("torchaudio.compliance")
    kaldi = types.ModuleType("torchaudio.compliance.kaldi")
    kaldi.fbank = fbank
    root.transforms, root.compliance, compliance.kaldi = transforms, compliance, kaldi
    return root


@pytest.fixture(scope="session")
def torchaudio_stub():
    """Put the torchaudio stand-in into ``sys.modules`` for the session (needs librosa and kaldi-native-fbank)."""
    pytest.importorskip("librosa")
    pytest.importorskip("kaldi_native_fbank")
    stub = _make_torchaudio_stub()
    saved = {k: sys.modules.get(k) for k in ("torchaudio", "torchaudio.transforms", "torchaudio.compliance",
                                             "torchaudio.compliance.kaldi")}
    sys.modules.update({"torchaudio": stub, "torchaudio.transforms": stub.transforms,
                        "torchaudio.compliance": stub.compliance, "torchaudio.compliance.kaldi": stub.compliance.kaldi})
    yield stub
    for key, value in saved.items():
        if value is None:
            sys.modules.pop(key, None)
        else:
            sys.modules[key] = value
