"""Mel filterbanks, once for every model that uses them: the HTK scale and the Slaney scale (numpy only).

The HTK filters serve the ``melspec``/``mfcc`` baselines, the paper models' torchaudio-style front ends, the ``mae``
family, YAMNet and AI-SFX; the Slaney filters (librosa's ``filters.mel``) Whisper, FCPE, Resemblyzer, DNSMOS, musicnn
and Tempo-CNN. Filter ``m`` rises linearly (in Hz) from edge ``m`` to edge ``m + 1`` and falls to edge
``m + 2``, for ``n_mels + 2`` edges equally spaced on the HTK mel scale ``2595 log10(1 + f / 700)``: the filters of
``torchaudio.functional.melscale_fbanks(mel_scale="htk")`` and of TensorFlow's ``linear_to_mel_weight_matrix`` up to
the normalisation chosen here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["hz_to_mel", "hz_to_mel_natural", "mel_to_hz", "htk_mel_edges", "htk_mel_filterbank", "mel_power",
           "slaney_mel_filterbank"]


def hz_to_mel(frequency: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 log10(1 + f / 700)`` (float64)."""
    return 2595.0 * np.log10(1.0 + np.asarray(frequency, dtype=np.float64) / 700.0)


def hz_to_mel_natural(frequency: np.ndarray) -> np.ndarray:
    """The same scale in natural-log form, ``1127 ln(1 + f / 700)``, as Kaldi and TensorFlow VGGish compute it
    (rounds differently from :func:`hz_to_mel`; their filters are triangles on this mel axis)."""
    return 1127.0 * np.log(1.0 + frequency / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel` (float64)."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def htk_mel_edges(f_min: float, f_max: float, n_mels: int) -> np.ndarray:
    """The ``n_mels + 2`` filter edges (Hz) equally spaced on the mel scale; ``edges[m + 1]`` is filter m's centre."""
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))


def htk_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float, *,
                       norm: str | None = None) -> np.ndarray:
    """Triangular HTK-mel filters on the rfft grid of ``n_fft`` points.

    Parameters
    ----------
    sample_rate, n_fft : int
        The rfft grid: ``n_fft // 2 + 1`` bins from 0 Hz to ``sample_rate / 2``.
    n_mels : int
        Number of filters.
    f_min, f_max : float
        Lowest and highest edge (Hz).
    norm : None or "slaney"
        None: every triangle peaks at 1 (adjacent triangles sum to one between the first and last centre).
        ``"slaney"``: each triangle is scaled by ``2 / (upper edge - lower edge)`` (equal area).

    Returns
    -------
    ndarray, shape (n_mels, n_fft // 2 + 1), float64
    """
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    bins_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = htk_mel_edges(f_min, f_max, n_mels)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1) each
    rising = (bins_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bins_hz[None, :]) / (upper - centre)
    filters = np.maximum(0.0, np.minimum(rising, falling))  # (n_mels, n_freq)
    return filters * (2.0 / (upper - lower)) if norm == "slaney" else filters


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                          fmax: float | None = None) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular mel filters from ``fmin`` to ``fmax`` (default: Nyquist), shape
    (n_mels, 1 + n_fft//2).

    This is the filter bank of librosa's ``filters.mel`` (defaults: 0 Hz to Nyquist, which Whisper uses); float32.
    """
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)  # = linspace(0, sr / 2) for even n_fft
    mel_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(sample_rate / 2 if fmax is None else fmax), n_mels + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.astype(np.float32)


def mel_power(waveforms: Any, filters: np.ndarray, n_fft: int, hop: int) -> Any:
    """Mel power of a torch waveform batch (batch, samples) -> (batch, n_mels, frames).

    Periodic Hann STFT of ``n_fft`` every ``hop`` samples, centred with zero padding; ``filters`` (n_mels, bins)
    applied to ``|X|^2``.
    """
    import torch

    window = torch.hann_window(n_fft, periodic=True, dtype=waveforms.dtype, device=waveforms.device)
    spec = torch.stft(waveforms, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
    return torch.matmul(torch.as_tensor(filters, device=waveforms.device), spec.real**2 + spec.imag**2)
