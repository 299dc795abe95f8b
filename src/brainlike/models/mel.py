"""The HTK mel scale and its triangular filterbank, once for every model that uses them (numpy only).

Used by the ``melspec``/``mfcc`` baselines, the paper models' torchaudio-style front ends, the ``mae`` family,
YAMNet and AI-SFX. Filter ``m`` rises linearly (in Hz) from edge ``m`` to edge ``m + 1`` and falls to edge
``m + 2``, for ``n_mels + 2`` edges equally spaced on the HTK mel scale ``2595 log10(1 + f / 700)``: the filters of
``torchaudio.functional.melscale_fbanks(mel_scale="htk")`` and of TensorFlow's ``linear_to_mel_weight_matrix`` up to
the normalisation chosen here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hz_to_mel", "hz_to_mel_natural", "mel_to_hz", "htk_mel_edges", "htk_mel_filterbank"]


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
