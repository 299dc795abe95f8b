"""Parameter-free baselines: ``melspec`` (log-mel spectrograms and MFCCs) and ``random-features`` (a null control).

``spectrotemporal`` (the NH2015 / Tuckute 2023 baseline) lives in :mod:`brainlike.models.spectrotemporal`.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Mapping

import numpy as np

from brainlike.models.base import AudioModel
from brainlike.models.mel import htk_mel_filterbank
from brainlike.models.registry import ModelEntry, register_model

__all__ = ["MEL_SAMPLE_RATE", "MEL_N_FFT", "MEL_HOP", "MEL_FMIN", "MEL_FMAX", "MEL_POWER_FLOOR", "N_MFCC",
           "mel_filterbank", "power_spectrogram", "log_mel", "mfcc", "MelSpectrogram", "RandomFeatures"]

MEL_SAMPLE_RATE = 16000
MEL_N_FFT = 400  # 25 ms Hann window
MEL_HOP = 160  # 10 ms
MEL_FMIN, MEL_FMAX = 0.0, 8000.0
MEL_POWER_FLOOR = 1e-10  # dB floor: 10 log10(1e-10) = -100 dB
N_MFCC = 20


@lru_cache(maxsize=8)
def mel_filterbank(n_mels: int, n_fft: int = MEL_N_FFT, sample_rate: int = MEL_SAMPLE_RATE,
                   fmin: float = MEL_FMIN, fmax: float = MEL_FMAX) -> np.ndarray:
    """HTK-mel triangles on the rfft grid, area-normalised (Slaney-style), shape (n_mels, n_fft // 2 + 1).

    :func:`brainlike.models.mel.htk_mel_filterbank` with ``norm="slaney"`` (cached).
    """
    return htk_mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, norm="slaney")


def power_spectrogram(waveforms: np.ndarray) -> np.ndarray:
    """|STFT|^2 with a periodic Hann window of MEL_N_FFT, hop MEL_HOP, centred (reflect padding).

    Returns (batch, frames, n_fft // 2 + 1) float64.
    """
    import torch

    x = torch.from_numpy(np.asarray(waveforms, dtype=np.float64))
    window = torch.hann_window(MEL_N_FFT, periodic=True, dtype=torch.float64)
    spec = torch.stft(x, MEL_N_FFT, MEL_HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    return (spec.abs() ** 2).transpose(1, 2).numpy()


def log_mel(power: np.ndarray, n_mels: int) -> np.ndarray:
    """10 log10(max(mel power, 1e-10)) of a power spectrogram (batch, frames, bins) -> (batch, frames, n_mels)."""
    return 10.0 * np.log10(np.maximum(power @ mel_filterbank(n_mels).T, MEL_POWER_FLOOR))


def mfcc(log_mel_db: np.ndarray, n_mfcc: int = N_MFCC) -> np.ndarray:
    """First ``n_mfcc`` coefficients of the orthonormal DCT-II of log-mel (dB) frames."""
    from scipy.fft import dct

    return dct(log_mel_db, type=2, norm="ortho", axis=-1)[..., :n_mfcc]


class MelSpectrogram(AudioModel):
    """Log-mel spectrograms and MFCCs at 16 kHz.

    Layers: ``logmel128`` (128 mel bands, 0-8 kHz, dB), ``logmel64`` (64 bands) and ``mfcc20`` (DCT-II of the 128-band
    log-mel, first 20 coefficients). STFT: 25 ms periodic Hann window (400 samples), 10 ms hop, centred with reflect
    padding; power spectrum; HTK-spaced triangular filters with Slaney area normalisation; floor 1e-10 (-100 dB).
    """

    sample_rate = MEL_SAMPLE_RATE
    layers = ["logmel128", "logmel64", "mfcc20"]
    adapter_version = 1
    weights_id = "none"
    batch_size = 32
    preprocessing = {"n_fft": MEL_N_FFT, "hop": MEL_HOP, "fmin": MEL_FMIN, "fmax": MEL_FMAX, "floor": MEL_POWER_FLOOR,
                     "mel": "htk-slaney-norm"}

    def forward(self, waveforms: np.ndarray) -> Mapping[str, np.ndarray]:
        power = power_spectrogram(waveforms)
        mel128 = log_mel(power, 128)
        return {"logmel128": mel128, "logmel64": log_mel(power, 64), "mfcc20": mfcc(mel128)}


class RandomFeatures(AudioModel):
    """Null control: 128 standard-normal numbers per clip, seeded by the sha256 of the clip's float32 samples.

    Deterministic and independent of batching, but unrelated to what the sound is: its alignment score shows the
    bias of a protocol (it should be near zero).
    """

    sample_rate = 16000
    layers = ["random"]
    adapter_version = 1
    weights_id = "none"
    batch_size = 64
    n_features = 128

    def forward(self, waveforms: np.ndarray) -> Mapping[str, np.ndarray]:
        rows = []
        for clip in np.asarray(waveforms, dtype=np.float32):
            seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(clip).tobytes()).digest()[:8], "little")
            rows.append(np.random.default_rng(seed).standard_normal(self.n_features))
        return {"random": np.stack(rows)[:, None, :].astype(np.float32)}


def _no_twin(cls):
    return lambda random: cls()


register_model(ModelEntry("melspec", _no_twin(MelSpectrogram), "baseline",
                          "log-mel spectrogram (128 and 64 bands) and 20 MFCCs at 16 kHz", has_random_twin=False))
register_model(ModelEntry("random-features", _no_twin(RandomFeatures), "baseline",
                          "null control: 128 Gaussian numbers seeded by a hash of each clip", has_random_twin=False))
