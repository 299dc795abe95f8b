"""Compressed cochleagram front end (``cochleagram_1`` of Feather et al.'s cochdnn / chcochleagram).

A 2-s waveform at 20 kHz (40,000 samples) becomes a 211 x 390 array: 211 half-cosine ERB filters (203 band-pass,
4 low-pass, 4 high-pass, ascending frequency) applied in the frequency domain, a one-sided Hilbert envelope (no
factor 2, so it is half the textbook envelope), a sinc x Kaiser(1001, beta=5) low-pass with stride 100
(20 kHz -> 200 Hz, no padding, 390 frames) and compression ``(max(x, 0) + 1e-8) ** 0.3``.
Every number is pinned by ``spectrotemporal.md`` section 2 (shared reference); this module is the front end of the
``spectrotemporal`` baseline and of the cochleagram CNNs (``cochcnn9``, ``cochresnet50``).

The filterbank and the downsampling kernel are built once per (signal length, sample rate) and kept in memory.
Computation runs in torch, float64 by default, batched over clips; a numpy array in gives a numpy array out.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from brainlike.errors import AudioError

__all__ = ["SAMPLE_RATE", "N_SAMPLES", "ERB_Q", "ERB_MIN_WIDTH", "N_ERB_FILTERS", "LOW_HZ", "HIGH_HZ", "SAMPLE_FACTOR",
           "N_CHANNELS", "ENV_SAMPLE_RATE", "KERNEL_SIZE", "KAISER_BETA", "ENVELOPE_FLOOR", "COMPRESSION_POWER",
           "COMPRESSION_OFFSET", "POCKETFFT_ON_CPU", "hz_to_erb", "erb_to_hz", "ErbFilterbank", "erb_filterbank",
           "downsample_kernel", "n_frames", "cochleagram", "fft"]

SAMPLE_RATE = 20000
"""Input sample rate (Hz) of the cochleagram."""
N_SAMPLES = 40000
"""Default input length: 2 s at 20 kHz."""
ERB_Q = 9.265  # Glasberg & Moore: e(f) = Q ln(1 + f / (W Q))
ERB_MIN_WIDTH = 24.7
N_ERB_FILTERS = 50
LOW_HZ = 50.0
HIGH_HZ = 10000.0
SAMPLE_FACTOR = 4
N_CHANNELS = SAMPLE_FACTOR * (N_ERB_FILTERS + 1) - 1 + 2 * SAMPLE_FACTOR  # 203 band-pass + 4 low + 4 high = 211
ENV_SAMPLE_RATE = 200
"""Sample rate (Hz) of the cochleagram's time axis."""
KERNEL_SIZE = 1001
KAISER_BETA = 5.0
ENVELOPE_FLOOR = 1e-16  # on the squared magnitude
COMPRESSION_POWER = 0.3
COMPRESSION_OFFSET = 1e-8
POCKETFFT_ON_CPU = True
"""Run FFTs and magnitudes of CPU tensors with scipy / numpy (faster); False uses torch everywhere."""


def hz_to_erb(frequency: np.ndarray | float) -> np.ndarray:
    """ERB-number scale ``9.265 ln(1 + f / (24.7 x 9.265))`` (f in Hz)."""
    return ERB_Q * np.log1p(np.asarray(frequency, dtype=np.float64) / (ERB_MIN_WIDTH * ERB_Q))


def erb_to_hz(erb: np.ndarray | float) -> np.ndarray:
    """Exact inverse of :func:`hz_to_erb`: ``24.7 x 9.265 (exp(e / 9.265) - 1)``."""
    return ERB_MIN_WIDTH * ERB_Q * np.expm1(np.asarray(erb, dtype=np.float64) / ERB_Q)


class ErbFilterbank(NamedTuple):
    """The cochlear filterbank on the one-sided rfft grid.

    Attributes
    ----------
    filters : ndarray, shape (211, n_samples // 2 + 1), float64
        Real frequency responses, channels in ascending frequency (4 low-pass, 203 band-pass, 4 high-pass),
        already divided by ``sqrt(sample_factor) = 2``. Read-only.
    centers_hz : ndarray, shape (211,)
        Centre frequency of the band-pass each channel is built from (for low/high-pass channels: the cut-off).
    bin_hz : ndarray, shape (n_samples // 2 + 1,)
        Frequency of each rfft bin.
    """

    filters: np.ndarray
    centers_hz: np.ndarray
    bin_hz: np.ndarray


@lru_cache(maxsize=4)
def erb_filterbank(n_samples: int = N_SAMPLES, sample_rate: int = SAMPLE_RATE) -> ErbFilterbank:
    """Build (once per length and rate) the 211 half-cosine ERB filters of ``spectrotemporal.md`` section 2.2.

    Parameters
    ----------
    n_samples : int
        Signal length the filters are sampled for (rfft grid ``k * sample_rate / n_samples``).
    sample_rate : int
        Sample rate in Hz.

    Returns
    -------
    ErbFilterbank
    """
    if n_samples < 2 or sample_rate <= 2 * HIGH_HZ - 1:
        raise AudioError(f"cochleagram needs >= 2 samples at >= {2 * HIGH_HZ:g} Hz, got {n_samples} at {sample_rate}")
    bin_hz = np.arange(n_samples // 2 + 1, dtype=np.float64) * (sample_rate / n_samples)
    bin_erb = hz_to_erb(bin_hz)
    n_points = SAMPLE_FACTOR * (N_ERB_FILTERS + 1) + 1  # 205 equally spaced ERB points
    grid = np.linspace(hz_to_erb(LOW_HZ), hz_to_erb(HIGH_HZ), n_points)
    delta = (grid[-1] - grid[0]) / (n_points - 1)
    centers = grid[1:-1]  # 203 band-pass centres (end points dropped)
    half_width = SAMPLE_FACTOR * delta  # support c +- 4 delta (strict)
    offset = bin_erb[None, :] - centers[:, None]
    bandpass = np.where(np.abs(offset) < half_width, np.cos(np.pi * offset / (2 * half_width)), 0.0)
    center_hz = erb_to_hz(centers)
    low = [_complement(bandpass[i], bin_hz < center_hz[i]) for i in range(SAMPLE_FACTOR)]
    high_idx = [len(centers) - SAMPLE_FACTOR + j for j in range(SAMPLE_FACTOR)]  # c_199 .. c_202 -> ch 207 .. 210
    high = [_complement(bandpass[i], bin_hz > center_hz[i]) for i in high_idx]
    filters = np.concatenate([np.stack(low), bandpass, np.stack(high)]) / np.sqrt(SAMPLE_FACTOR)
    centers_all = np.concatenate([center_hz[:SAMPLE_FACTOR], center_hz, center_hz[high_idx]])
    for array in (filters, centers_all, bin_hz):
        array.setflags(write=False)
    return ErbFilterbank(filters, centers_all, bin_hz)


def _complement(bandpass: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``sqrt(1 - B^2)`` on the bins where ``keep`` holds (below / above the centre), 0 elsewhere."""
    return np.where(keep, np.sqrt(np.clip(1.0 - bandpass**2, 0.0, None)), 0.0)


@lru_cache(maxsize=2)
def downsample_kernel(factor: int = SAMPLE_RATE // ENV_SAMPLE_RATE) -> np.ndarray:
    """Kaiser(1001, 5)-windowed sinc low-pass of ``spectrotemporal.md`` section 2.4 (read-only, float64).

    ``g[j] = kaiser(1001, 5)[j] sinc((j - 500.5) / factor) / factor``: the sinc peak sits half a sample after the
    window centre, as in the reference. Its sum is 1.00094 for factor 100 (no renormalisation).
    """
    j = np.arange(KERNEL_SIZE, dtype=np.float64)
    kernel = np.kaiser(KERNEL_SIZE, KAISER_BETA) * np.sinc((j - KERNEL_SIZE / 2) / factor) / factor
    kernel.setflags(write=False)
    return kernel


def n_frames(n_samples: int = N_SAMPLES, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of 200-Hz cochleagram frames for a signal length (390 for 2 s at 20 kHz)."""
    stride = sample_rate // ENV_SAMPLE_RATE
    return (n_samples - KERNEL_SIZE) // stride + 1


@lru_cache(maxsize=8)
def _torch_constants(n_samples: int, sample_rate: int, dtype: Any, device: str) -> tuple[Any, Any]:
    """Filters (211, bins) and the polyphase kernel (stride, taps per phase) as torch tensors, built once."""
    import torch

    bank = erb_filterbank(n_samples, sample_rate)
    filters = torch.tensor(bank.filters, dtype=dtype, device=device)
    stride = sample_rate // ENV_SAMPLE_RATE
    n_taps = -(-KERNEL_SIZE // stride)  # 11 blocks of 100 samples
    padded = np.zeros(n_taps * stride)
    padded[:KERNEL_SIZE] = downsample_kernel(stride)
    polyphase = torch.tensor(padded.reshape(n_taps, stride).T.copy(), dtype=dtype, device=device)
    return filters, polyphase


def cochleagram(waveforms: Any, *, sample_rate: int = SAMPLE_RATE, dtype: Any = None,
                max_rows: int = 64) -> Any:
    """Compressed cochleagram of a batch of waveforms.

    Parameters
    ----------
    waveforms : ndarray or torch.Tensor, shape (batch, samples) or (samples,)
        Waveforms at 20 kHz, already cropped and level-normalised (the ``spectrotemporal`` model demeans them and
        sets RMS 0.1). At least 1001 samples.
    sample_rate : int
        Must be 20000 (the kernel and ERB range are fixed for it).
    dtype : torch.dtype, optional
        Computation dtype; default float64 (float32 input is upcast).
    max_rows : int
        At most this many (clip, channel) envelopes are held at once, to bound memory
        (64 rows of 40,000 complex128 numbers = 41 MB; larger blocks run slower, out of cache).

    Returns
    -------
    ndarray or torch.Tensor, shape (batch, 211, frames) (or (211, frames) for 1-D input)
        Same type as the input (numpy in, numpy out). Rows are channels, low to high frequency; 390 frames at 200 Hz
        for 2-s input.
    """
    import torch

    is_numpy = not isinstance(waveforms, torch.Tensor)
    x = torch.as_tensor(np.asarray(waveforms)) if is_numpy else waveforms
    squeeze = x.ndim == 1
    x = x[None] if squeeze else x
    _check_input(x, sample_rate)
    x = x.to(dtype or torch.float64)
    n_samples = x.shape[-1]
    filters, polyphase = _torch_constants(n_samples, sample_rate, x.dtype, str(x.device))
    spectrum = fft("rfft", x, dim=-1)  # (batch, n_bins)
    chunk = max(1, max_rows // x.shape[0])
    parts = []
    for start in range(0, filters.shape[0], chunk):
        sub = spectrum[:, None, :] * filters[None, start:start + chunk]
        analytic = fft("ifft", sub, n=n_samples, dim=-1)  # one-sided spectrum, zeros after, weight 1
        envelope = _magnitude(analytic).clamp_min_(np.sqrt(ENVELOPE_FLOOR))  # sqrt(max(re^2 + im^2, 1e-16))
        parts.append(_downsample(envelope, polyphase))
    coch = (torch.cat(parts, dim=1).clamp_min_(0.0) + COMPRESSION_OFFSET) ** COMPRESSION_POWER
    coch = coch[0] if squeeze else coch
    return coch.numpy() if is_numpy else coch


def fft(name: str, x: Any, *, dim: int = -1, n: int | None = None, workers: int | None = None) -> Any:
    """``torch.fft.<name>(x, n=n, dim=dim)``, run by scipy's pocketfft for CPU tensors (2-3x faster than torch's MKL
    path for these lengths, e.g. 40,000 and 1,170), by torch elsewhere. Returns a torch tensor on x's device.

    ``workers`` (CPU only) defaults to ``torch.get_num_threads()``; pass 1 for small transforms.
    """
    import torch

    if not _on_cpu(x):
        return getattr(torch.fft, name)(x, n=n, dim=dim)
    import scipy.fft

    workers = workers or torch.get_num_threads()
    return torch.from_numpy(getattr(scipy.fft, name)(x.detach().numpy(), n=n, axis=dim, workers=workers))


def _on_cpu(x: Any) -> bool:
    return POCKETFFT_ON_CPU and x.device.type == "cpu"


def _magnitude(z: Any) -> Any:
    """``|z|`` of a complex tensor (numpy's hypot on CPU: several times faster than torch's there)."""
    import torch

    if not _on_cpu(z):
        return torch.abs(z)
    return torch.from_numpy(np.abs(z.detach().numpy()))


def _downsample(envelope: Any, polyphase: Any) -> Any:
    """``d[m] = sum_j g[j] env[stride m + j]`` (cross-correlation, no padding) as a polyphase matrix product.

    The envelope is cut into blocks of ``stride`` samples; block r times phase matrix column q gives the
    contribution of kernel taps ``stride q .. stride q + stride - 1`` to frame ``r - q``.
    """
    import torch

    stride, n_taps = polyphase.shape
    n_samples = envelope.shape[-1]
    frames = n_frames(n_samples, stride * ENV_SAMPLE_RATE)
    length = (frames + n_taps - 1) * stride  # samples past the end only meet zero taps
    if length > n_samples:
        envelope = torch.nn.functional.pad(envelope, (0, length - n_samples))
    blocks = envelope[..., :length].reshape(*envelope.shape[:-1], frames + n_taps - 1, stride) @ polyphase
    return sum(blocks[..., q:q + frames, q] for q in range(n_taps))


def _check_input(x: Any, sample_rate: int) -> None:
    if sample_rate != SAMPLE_RATE:
        raise AudioError(f"cochleagram expects {SAMPLE_RATE} Hz input, got {sample_rate} Hz")
    if x.ndim != 2:
        raise AudioError(f"cochleagram expects (batch, samples) or (samples,), got shape {tuple(x.shape)}")
    if x.shape[-1] < KERNEL_SIZE:
        raise AudioError(f"cochleagram needs at least {KERNEL_SIZE} samples ({KERNEL_SIZE / SAMPLE_RATE:.3f} s), "
                         f"got {x.shape[-1]}")
