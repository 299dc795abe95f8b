"""Spectral front ends of the paper's models, written in torch (batched, no torchaudio).

* :func:`kaldi_fbank`: Kaldi log mel filterbanks as computed by ``torchaudio.compliance.kaldi.fbank`` (BEATs,
  EnCodecMAE); checked against ``kaldi-native-fbank`` in the tests.
* :func:`stft_mel`: ``torchaudio.transforms.MelSpectrogram`` (HTK mel, no filter normalisation, centred STFT with
  reflect padding, power 2) and :func:`power_to_db` (``AmplitudeToDB``) (Dasheng); checked against librosa.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from brainlike.models.mel import htk_mel_filterbank, hz_to_mel_natural as _kaldi_mel

__all__ = ["FLOAT32_EPS", "kaldi_mel_banks", "kaldi_fbank", "htk_mel_filters", "stft_mel", "power_to_db"]

FLOAT32_EPS = float(np.finfo(np.float32).eps)


@lru_cache(maxsize=16)
def kaldi_mel_banks(num_bins: int, padded_window: int, sample_rate: float, low_freq: float = 20.0,
                    high_freq: float = 0.0) -> np.ndarray:
    """Kaldi's triangular mel filters (no VTLN), shape (num_bins, padded_window // 2 + 1), float64.

    Filters are triangles in the mel domain (mel = 1127 ln(1 + f / 700)) between ``num_bins + 2`` equally spaced mel
    edges; the FFT bin at Nyquist gets weight 0, as in Kaldi.
    """
    nyquist = 0.5 * sample_rate
    high = high_freq if high_freq > 0 else nyquist + high_freq
    n_fft_bins = padded_window // 2
    bin_freqs = (sample_rate / padded_window) * np.arange(n_fft_bins)
    mel = _kaldi_mel(bin_freqs)[None, :]
    mel_low, mel_high = _kaldi_mel(np.float64(low_freq)), _kaldi_mel(np.float64(high))
    delta = (mel_high - mel_low) / (num_bins + 1)
    left = mel_low + np.arange(num_bins)[:, None] * delta
    centre, right = left + delta, left + 2.0 * delta
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1)))


def _kaldi_window(kind: str, length: int) -> np.ndarray:
    n = np.arange(length)
    hann = 0.5 - 0.5 * np.cos(2.0 * math.pi * n / (length - 1))
    if kind == "hanning":
        return hann
    if kind == "povey":
        return hann ** 0.85
    if kind == "hamming":
        return 0.54 - 0.46 * np.cos(2.0 * math.pi * n / (length - 1))
    raise ValueError(f"unknown Kaldi window type {kind!r}")


def kaldi_fbank(waveforms: Any, *, sample_rate: int, num_mel_bins: int, frame_length_ms: float = 25.0,
                frame_shift_ms: float = 10.0, window_type: str = "povey", preemphasis: float = 0.97,
                low_freq: float = 20.0, high_freq: float = 0.0) -> Any:
    """Kaldi log mel filterbank features of a batch, as ``torchaudio.compliance.kaldi.fbank`` with dither 0.

    Frames are cut with ``snip_edges=True`` (``1 + (n - window) // shift`` frames), the DC offset of each frame is
    removed, pre-emphasis is applied (first sample replicated), the window applied, the frame zero-padded to the next
    power of two, and log(max(mel power, float32 eps)) returned.

    Parameters
    ----------
    waveforms : torch.Tensor, shape (batch, samples), float32
        Waveforms at ``sample_rate`` (scale as the model expects: BEATs multiplies by 2**15 first).

    Returns
    -------
    torch.Tensor, shape (batch, frames, num_mel_bins)
    """
    import torch

    window_size = int(sample_rate * frame_length_ms * 0.001)
    window_shift = int(sample_rate * frame_shift_ms * 0.001)
    padded = 1 << (window_size - 1).bit_length()
    if waveforms.shape[-1] < window_size:
        raise ValueError(f"waveform of {waveforms.shape[-1]} samples is shorter than one {window_size}-sample frame")
    frames = waveforms.unfold(-1, window_size, window_shift)  # (batch, frames, window)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    if preemphasis:
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - preemphasis * previous
    window = torch.as_tensor(_kaldi_window(window_type, window_size), dtype=frames.dtype, device=frames.device)
    frames = torch.nn.functional.pad(frames * window, (0, padded - window_size))
    power = torch.fft.rfft(frames, dim=-1).abs().pow(2)
    banks = torch.as_tensor(kaldi_mel_banks(num_mel_bins, padded, float(sample_rate), low_freq, high_freq),
                            dtype=power.dtype, device=power.device)
    return torch.clamp(power @ banks.T, min=FLOAT32_EPS).log()


@lru_cache(maxsize=16)
def htk_mel_filters(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> np.ndarray:
    """``torchaudio.functional.melscale_fbanks`` with ``norm=None, mel_scale="htk"``: shape (n_freqs, n_mels).

    (:func:`brainlike.models.mel.htk_mel_filterbank` transposed; torchaudio's grid ends at ``sample_rate // 2``,
    the same for the even rates used here.)
    """
    return htk_mel_filterbank(sample_rate, 2 * (n_freqs - 1), n_mels, f_min, f_max).T


def stft_mel(waveforms: Any, *, sample_rate: int, n_fft: int, hop: int, win: int, n_mels: int, f_min: float,
             f_max: float, center: bool = True) -> Any:
    """Mel power spectrogram as ``torchaudio.transforms.MelSpectrogram`` (periodic Hann, reflect-padded centre).

    Returns torch.Tensor (batch, n_mels, frames).
    """
    import torch

    window = torch.hann_window(win, periodic=True, dtype=waveforms.dtype, device=waveforms.device)
    spec = torch.stft(waveforms, n_fft, hop, win, window=window, center=center, pad_mode="reflect",
                      normalized=False, onesided=True, return_complex=True)
    power = spec.abs().pow(2.0)  # (batch, freq, frames)
    filters = torch.as_tensor(htk_mel_filters(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate),
                              dtype=power.dtype, device=power.device)
    return (power.transpose(-1, -2) @ filters).transpose(-1, -2)


def power_to_db(power: Any, top_db: float | None = 120.0, amin: float = 1e-10) -> Any:
    """``AmplitudeToDB(stype="power", top_db)``: 10 log10(max(x, amin)), floored at (max - top_db) per clip.

    The floor is taken per clip (first axis); torchaudio takes it over a whole (batch, freq, time) tensor, which
    equals this for a batch of one.
    """
    import torch

    db = 10.0 * torch.log10(torch.clamp(power, min=amin))
    if top_db is not None:
        peak = db.flatten(1).amax(dim=1).view(-1, *([1] * (db.ndim - 1)))
        db = torch.maximum(db, peak - top_db)
    return db
