"""The ``spectrotemporal`` baseline: 111 spectrotemporal modulation filters on a cochleagram (NH2015 / Tuckute 2023).

Implements ``spectrotemporal.md`` (shared reference) exactly: a 2-s clip at 20 kHz is demeaned and set to RMS 0.1,
turned into the 211 x 390 compressed cochleagram of :mod:`brainlike.models.cochleagram`, multiplied by 100,
zero-padded to 422 x 1170 and filtered in the 2-D Fourier domain by 111 separable modulation filters
(temporal rates 0, 0.5 ... 64 Hz x spectral scales 0, 0.0625 ... 2 cyc/ERB, both directions); each output is cropped
back to 211 x 390, squared (real part), floored at 1e-8 and averaged over the 390 frames. The single layer
``avgpool`` holds 111 x 211 = 23,421 features, filter-major (index ``211 k + channel``).

Three numerically equivalent routes compute the filtering (all float64):

``fft2``
    the reference: full complex ``fft2`` / ``ifft2`` of size 422 x 1170 per filter, real part kept.
``rfft2``
    the half plane: ``rfft2`` / ``irfft2`` over temporal frequencies 0..585 (every transfer function is Hermitian,
    so this is exact); the inverse runs axis by axis (spectral ``ifft``, crop to 211 rows, temporal ``irfft``),
    which equals ``irfft2`` followed by the crop. Less than half the CPU time of ``fft2`` (both through torch.fft).
``factorised`` (default)
    the half plane, factorised: on the half plane each transfer function is a spectral profile (with the
    direction's quadrant zeroing, which there depends only on the spectral sign) times a temporal profile. The
    spectral step, "filter along the 422-point axis and keep rows 0..210", is a 211 x 211 convolution matrix applied
    once per scale to the temporal rfft of the 211 rows (the two directions' matrices are complex conjugates, so
    one real matrix product serves both); each filter then needs only its 211 temporal ``irfft``s. No zero rows are
    ever transformed. About 1/10 of the CPU time of ``fft2``.

On CPU the FFTs of the default route run through scipy's pocketfft (see :func:`brainlike.models.cochleagram.fft`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator, Mapping

import numpy as np

from brainlike.errors import AudioError, ModelError
from brainlike.models import cochleagram as coch
from brainlike.models.base import AudioModel
from brainlike.models.registry import ModelEntry, register_model

SCALES = (0.0, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0)
"""Spectral scales (cycles/ERB); 0 is the DC delta, 2 is high-pass."""
RATES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Temporal rates (Hz); 0 is the DC delta, 64 is high-pass."""
N_FILTERS = len(SCALES) * len(RATES) + (len(SCALES) - 1) * (len(RATES) - 1)  # 63 + 48 = 111
N_CHANNELS = coch.N_CHANNELS  # 211
N_FRAMES = coch.n_frames()  # 390
N_SPECTRAL = 2 * N_CHANNELS  # 422: zero rows appended after the highest channel
N_TEMPORAL = 3 * N_FRAMES  # 1170: zero frames appended after the last frame
CHANNELS_PER_ERB = 6.0  # nominal spectral sampling rate (the true spacing is 6.11/ERB; the reference uses 6)
INPUT_SCALE = 100.0
OUTPUT_FLOOR = 1e-8
DURATION_S = 2.0
TARGET_RMS = 0.1
ROUTES = ("factorised", "rfft2", "fft2")


@dataclass(frozen=True)
class ModulationFilter:
    """One of the 111 filters: ``index`` in output order, ``rate`` (Hz, >= 0), ``scale`` (cyc/ERB, >= 0) and
    ``direction`` (-1 keeps opposite-sign quadrants: upward sweeps; +1 same-sign quadrants: downward sweeps)."""

    index: int
    rate: float
    scale: float
    direction: int

    @property
    def label(self) -> tuple[float, float]:
        """``(signed rate, scale)`` as the reference labels it: the rate carries the direction sign (0 stays 0)."""
        return (self.direction * self.rate if self.rate else 0.0, self.scale)


@lru_cache(maxsize=1)
def filter_specs() -> tuple[ModulationFilter, ...]:
    """The 111 filters in output order (``spectrotemporal.md`` section 3.5).

    Filters 0..62: direction -1, all (scale, rate) pairs, scale-major; 63..110: direction +1, the pairs with
    scale > 0 and rate > 0.
    """
    specs = [ModulationFilter(k, RATES[k % len(RATES)], SCALES[k // len(RATES)], -1)
             for k in range(len(SCALES) * len(RATES))]
    for j in range((len(SCALES) - 1) * (len(RATES) - 1)):
        specs.append(ModulationFilter(len(specs), RATES[1 + j % (len(RATES) - 1)],
                                      SCALES[1 + j // (len(RATES) - 1)], +1))
    return tuple(specs)


def temporal_transfer(rate: float, n_frames: int = N_FRAMES, n_fft: int = N_TEMPORAL,
                      frame_rate: float = coch.ENV_SAMPLE_RATE) -> np.ndarray:
    """Temporal transfer function ``Ht`` (complex, length ``n_fft``) of section 3.2.

    Rate 0 is a DC delta. Otherwise the impulse response ``sin(2 pi tau) tau^2 exp(-3.5 tau)``,
    ``tau = rate * n / frame_rate`` for ``n < n_frames``, demeaned, zero-padded to ``n_fft``; its FFT keeps its phase
    and its magnitude is divided by the maximum. The top rate (64 Hz) is made high-pass: magnitude 1 from the peak
    of the positive half up to (excluding) the peak of the negative half.
    """
    if rate == 0:
        response = np.zeros(n_fft, dtype=np.complex128)
        response[0] = 1.0
        return response
    tau = np.arange(n_frames) / frame_rate * rate
    impulse = np.sin(2 * np.pi * tau) * tau**2 * np.exp(-3.5 * tau)
    spectrum = np.fft.fft(np.concatenate([impulse - impulse.mean(), np.zeros(n_fft - n_frames)]))
    magnitude = np.abs(spectrum) / np.abs(spectrum).max()
    if rate == RATES[-1]:
        half = n_fft // 2
        start = int(np.argmax(magnitude[: half + 1]))
        stop = half + 1 + int(np.argmax(magnitude[half + 1:]))
        magnitude[start:stop] = 1.0
    return magnitude * np.exp(1j * np.angle(spectrum))


def spectral_transfer(scale: float, n_fft: int = N_SPECTRAL, channels_per_erb: float = CHANNELS_PER_ERB) -> np.ndarray:
    """Spectral transfer function ``Hs`` (real, even, length ``n_fft``) of section 3.3.

    Scale 0 is a DC delta. Otherwise ``R exp(-R)`` with ``R = (nu / scale)^2`` on ``nu_k = 6 k / n_fft`` cyc/ERB,
    divided by its sampled maximum, mirrored to negative frequencies. The top scale (2) is made high-pass (1 from the
    peak up to the Nyquist bin).
    """
    response = np.zeros(n_fft)
    if scale == 0:
        response[0] = 1.0
        return response
    half = n_fft // 2
    ratio = (channels_per_erb * np.arange(half + 1) / n_fft / scale) ** 2
    positive = ratio * np.exp(-ratio)
    positive /= positive.max()
    if scale == SCALES[-1]:
        positive[int(np.argmax(positive)):] = 1.0
    response[: half + 1] = positive
    response[half + 1:] = positive[1:n_fft - half][::-1]
    return response


def quadrant_keep(direction: int, n_spectral: int = N_SPECTRAL, n_temporal: int = N_TEMPORAL) -> np.ndarray:
    """Boolean (n_spectral, n_temporal) mask of the bins a direction keeps (section 3.4).

    Bins are dropped where the temporal and spectral frequency signs are (-d, +1) or (+d, -1); DC and the Nyquist
    bins (sign of ``fftfreq`` = -0.5) are never dropped.
    """
    spectral_sign = _sign_without_nyquist(n_spectral)[:, None]
    temporal_sign = _sign_without_nyquist(n_temporal)[None, :]
    drop = (((temporal_sign == -direction) & (spectral_sign == 1))
            | ((temporal_sign == direction) & (spectral_sign == -1)))
    return ~drop


def _sign_without_nyquist(n: int) -> np.ndarray:
    sign = np.sign(np.fft.fftfreq(n))
    if n % 2 == 0:
        sign[n // 2] = 0
    return sign


def transfer_function(spec: ModulationFilter) -> np.ndarray:
    """Full complex 2-D transfer function (422 x 1170) of one filter: ``Hs[a] Ht[b]`` with quadrant zeroing."""
    full = np.outer(spectral_transfer(spec.scale), temporal_transfer(spec.rate))
    return np.where(quadrant_keep(spec.direction), full, 0.0)


@dataclass(frozen=True)
class _ScaleBank:
    """The filters of one spectral scale and their spectral convolutions (211 x 211 matrices).

    ``upward`` is the convolution applied at temporal frequencies 1..584 by direction -1 (quadrant zeroing included);
    direction +1 uses its complex conjugate (the spectral profile is real and even). ``edge`` (real) is applied at
    temporal DC and Nyquist, where nothing is zeroed. ``filters`` lists (filter index, rate index, direction).
    """

    scale: float
    filters: tuple[tuple[int, int, int], ...]
    upward: np.ndarray
    edge: np.ndarray


@lru_cache(maxsize=1)
def _scale_banks() -> tuple[_ScaleBank, ...]:
    banks = []
    for scale in SCALES:
        profile = spectral_transfer(scale)
        keep = [quadrant_keep(d)[:, 1] for d in (-1, +1)]  # spectral bins kept at a positive temporal frequency
        upward, downward = (_toeplitz(profile * k) for k in keep)
        if not np.allclose(downward, np.conj(upward), rtol=0, atol=1e-15):
            raise AssertionError("spectral kernels of the two directions are not conjugate")
        edge = _toeplitz(profile.astype(np.complex128))
        filters = tuple((s.index, RATES.index(s.rate), s.direction) for s in filter_specs() if s.scale == scale)
        banks.append(_ScaleBank(scale, filters, upward, edge.real.copy()))
    return tuple(banks)


def _toeplitz(transfer: np.ndarray) -> np.ndarray:
    """Matrix K (211 x 211) with ``K @ q = (ifft(transfer * fft(q padded to 422)))[:211]`` (circular convolution)."""
    impulse = np.fft.ifft(transfer)  # length 422; lags -210..210 are all a 211-row crop can see
    lags = np.arange(N_CHANNELS)[:, None] - np.arange(N_CHANNELS)[None, :]
    return impulse[lags % len(transfer)]


@lru_cache(maxsize=4)
def _torch_profiles(device: str = "cpu") -> tuple[Any, Any, Any]:
    """1-D profiles as torch tensors: Hs (7, 422), Ht (9, 1170), quadrant keep masks (2, 422, 1170) for -1 / +1."""
    import torch

    spectral = torch.tensor(np.stack([spectral_transfer(w) for w in SCALES]), device=device)
    temporal = torch.tensor(np.stack([temporal_transfer(r) for r in RATES]), device=device)
    keep = torch.tensor(np.stack([quadrant_keep(-1), quadrant_keep(+1)]).astype(np.float64), device=device)
    return spectral, temporal, keep


@lru_cache(maxsize=4)
def _torch_banks(device: str = "cpu") -> tuple[tuple[Any, ...], ...]:
    """Per scale: filters, stacked [Re K; Im K] (422 x 211) of the direction -1 kernel, the edge kernel."""
    import torch

    return tuple((b.scale, b.filters, torch.tensor(np.concatenate([b.upward.real, b.upward.imag]), device=device),
                  torch.tensor(b.edge.astype(np.complex128), device=device)) for b in _scale_banks())


def spectrotemporal_features(cochleagrams: Any, *, route: str = "factorised", chunk: int = 8) -> Any:
    """The 111 x 211 time-averaged modulation energies of a batch of cochleagrams.

    Parameters
    ----------
    cochleagrams : ndarray or torch.Tensor, shape (batch, 211, 390)
        Compressed cochleagrams (section 2.5, before the x 100).
    route : {"factorised", "rfft2", "fft2"}
        How the 2-D filtering is computed (all agree to ~1e-11 relative; see the module docstring).
    chunk : int
        Filters per FFT call for the ``rfft2`` and ``fft2`` routes (memory: chunk x batch x 422 x 1170 complex).

    Returns
    -------
    ndarray or torch.Tensor, shape (batch, 111, 211), float64
        ``feat[k, ch] = mean_t max(Re(Y_k[ch, t])^2, 1e-8)``; same type as the input.
    """
    import torch

    if route not in ROUTES:
        raise ModelError(f"unknown spectrotemporal route {route!r}; choose from {', '.join(ROUTES)}")
    is_numpy = not isinstance(cochleagrams, torch.Tensor)
    c = torch.as_tensor(np.asarray(cochleagrams)) if is_numpy else cochleagrams
    if c.ndim != 3 or tuple(c.shape[1:]) != (N_CHANNELS, N_FRAMES):
        raise ModelError(f"spectrotemporal filters expect cochleagrams (batch, {N_CHANNELS}, {N_FRAMES}), "
                         f"got shape {tuple(c.shape)}")
    c = c.to(torch.float64) * INPUT_SCALE
    out = _factorised(c) if route == "factorised" else _per_filter(c, route, chunk)
    return out.numpy() if is_numpy else out


def _pool(filtered: Any) -> Any:
    """Crop to 211 x 390, square, floor at 1e-8, average over frames: (..., >=211, >=390) -> (..., 211)."""
    cropped = filtered[..., :N_CHANNELS, :N_FRAMES]
    return cropped.square().clamp_min(OUTPUT_FLOOR).mean(dim=-1)


def _factorised(c: Any) -> Any:
    """Half-plane route: the spectral axis as 211 x 211 convolution matrices shared by a scale's rates and directions.

    For a scale, ``K`` (direction -1) and ``conj(K)`` (direction +1) times the half-plane spectrum ``Q`` come from one
    real product ``[Re K; Im K] @ [Re Q, Im Q]``. Runs one clip and one filter at a time: the working set
    (211 x 586 complex) then stays in cache, which is faster than batching on a CPU.
    """
    import torch

    _, temporal, _ = _torch_profiles(str(c.device))
    half = N_TEMPORAL // 2 + 1
    temporal = temporal[:, :half]
    edges = [0, half - 1]  # temporal DC and Nyquist: no quadrant zeroing there
    out = c.new_empty(c.shape[0], N_FILTERS, N_CHANNELS)
    for i, clip in enumerate(c):
        spectrum = coch.fft("rfft", clip, n=N_TEMPORAL, dim=-1, workers=1)  # (211, 586): rows = channels
        stacked = torch.cat([spectrum.real, spectrum.imag], dim=1)  # (211, 1172)
        for scale, filters, kernel, edge in _torch_banks(str(c.device)):
            n_rows = N_CHANNELS if scale else 1  # scale 0 keeps only spectral DC: every row is the same
            rows = _directional_rows(kernel, edge, spectrum, stacked, n_rows, edges)
            for k, r, direction in filters:
                if r == 0:  # rate 0 keeps only temporal DC: the output is constant in time
                    level = rows[direction][:, 0].real * (temporal[0, 0].real / N_TEMPORAL)
                    out[i, k] = level.square().clamp_min(OUTPUT_FLOOR).expand(N_CHANNELS)
                else:
                    filtered = coch.fft("irfft", rows[direction] * temporal[r], n=N_TEMPORAL, dim=-1, workers=1)
                    out[i, k] = _pool(filtered).expand(N_CHANNELS)
    return out


def _directional_rows(kernel: Any, edge: Any, spectrum: Any, stacked: Any, n_rows: int,
                      edges: list[int]) -> dict[int, Any]:
    """Spectrally filtered half-plane rows ``{direction: (n_rows, 586) complex}`` for both directions."""
    import torch

    m = kernel.shape[0] // 2
    width = spectrum.shape[1]
    product = torch.cat([kernel[:n_rows], kernel[m:m + n_rows]]) @ stacked  # [Re K; Im K] @ [Re Q, Im Q]
    a, c = product[:n_rows, :width], product[:n_rows, width:]  # Re K Re Q, Re K Im Q
    d, b = product[n_rows:, :width], product[n_rows:, width:]  # Im K Re Q, Im K Im Q
    rows = {-1: torch.complex(a - b, c + d), +1: torch.complex(a + b, c - d)}  # K Q and conj(K) Q
    at_edges = edge[:n_rows] @ spectrum[:, edges]
    for value in rows.values():
        value[:, edges] = at_edges
    return rows


def _per_filter(c: Any, route: str, chunk: int) -> Any:
    """One 2-D inverse FFT per filter: full complex (``fft2``, the reference) or half plane (``rfft2``).

    Both use torch.fft. The half-plane spectrum is held transposed (temporal frequency, spectral frequency) so that
    the spectral inverse FFT runs over contiguous memory; the 211 zero-padding rows are dropped before the temporal
    ``irfft`` (equal to ``irfft2(., s=(422, 1170))`` followed by the crop).
    """
    import torch

    spectral, temporal, keep = _torch_profiles(str(c.device))
    padded = torch.nn.functional.pad(c, (0, N_TEMPORAL - N_FRAMES, 0, N_SPECTRAL - N_CHANNELS))
    half = N_TEMPORAL // 2 + 1
    if route == "rfft2":
        spectrum = torch.fft.rfft2(padded).transpose(-1, -2).contiguous()  # (B, 586, 422)
        keep = keep[:, :, :half].transpose(-1, -2).contiguous()
    else:
        spectrum = torch.fft.fft2(padded)  # (B, 422, 1170)
    out = c.new_empty(c.shape[0], N_FILTERS, N_CHANNELS)
    specs = filter_specs()
    for start in range(0, N_FILTERS, chunk):
        block = specs[start:start + chunk]
        w = torch.tensor([SCALES.index(s.scale) for s in block], device=c.device)
        r = torch.tensor([RATES.index(s.rate) for s in block], device=c.device)
        d = torch.tensor([(s.direction + 1) // 2 for s in block], device=c.device)
        if route == "rfft2":
            bank = temporal[r][:, :half, None] * spectral[w][:, None, :] * keep[d]  # (chunk, 586, 422)
            columns = torch.fft.ifft(spectrum[:, None] * bank[None], dim=-1)[..., :N_CHANNELS]  # spectral inverse
            filtered = torch.fft.irfft(columns.transpose(-1, -2), n=N_TEMPORAL, dim=-1)  # (B, chunk, 211, 1170)
        else:
            bank = spectral[w][:, :, None] * temporal[r][:, None, :] * keep[d]  # (chunk, 422, 1170)
            filtered = torch.fft.ifft2(spectrum[:, None] * bank[None]).real
        out[:, start:start + len(block)] = _pool(filtered)
    return out


def prepare_waveforms(waveforms: np.ndarray, n_samples: int = int(DURATION_S * coch.SAMPLE_RATE)) -> np.ndarray:
    """Step 1.4 of the spec plus cropping: each clip demeaned and set to RMS 0.1, then first 2 s / zero-padded.

    Clips longer than 2 s keep their first 40,000 samples (cropped before normalising, as the reference does).
    Shorter clips are normalised over their own samples, then zero-padded at the end to 2 s. An all-constant clip
    (RMS 0 after demeaning) stays all zeros. As in the reference the result is rounded to float32.

    Parameters
    ----------
    waveforms : ndarray, shape (batch, samples)
        Float waveforms at 20 kHz.

    Returns
    -------
    ndarray, shape (batch, 40000), float32
    """
    x = np.asarray(waveforms, dtype=np.float64)[:, :n_samples]
    if x.shape[1] == 0:
        raise AudioError("spectrotemporal: empty clip (0 samples)")
    rms = np.sqrt(np.mean(x**2, axis=1, keepdims=True))
    x = x / np.where(rms > 0, rms, 1.0)
    x = x - x.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(x**2, axis=1, keepdims=True))
    x = TARGET_RMS * x / np.where(rms > 0, rms, 1.0)
    out = np.zeros((x.shape[0], n_samples), dtype=np.float32)
    out[:, : x.shape[1]] = x
    return out


def clip_features(waveform: np.ndarray, route: str = "factorised") -> np.ndarray:
    """The 111 x 211 features of one prepared 2-s clip (40,000 samples at 20 kHz, RMS 0.1), float64."""
    return spectrotemporal_features(coch.cochleagram(waveform[None]), route=route)[0]


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (process-wide)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batch_features(waveforms: np.ndarray, route: str = "factorised", threads: int | None = None) -> np.ndarray:
    """Features (batch, 111, 211) of prepared clips, one clip per thread.

    Each clip runs single-threaded (its FFTs and matrix products are too small to split well, and torch's thread
    pool degrades badly on a busy machine); ``threads`` clips run at once (default: torch's thread count).
    """
    import torch

    threads = max(1, min(threads or torch.get_num_threads(), len(waveforms)))
    with torch_threads(1):
        if threads == 1:
            rows = [clip_features(x, route) for x in waveforms]
        else:
            with ThreadPoolExecutor(threads) as pool:
                rows = list(pool.map(lambda x: clip_features(x, route), waveforms))
    return np.stack(rows)


class SpectroTemporal(AudioModel):
    """NH2015 / Tuckute 2023 spectrotemporal modulation baseline (``spectrotemporal.md``); one layer ``avgpool``.

    Input: waveforms at 20 kHz (the extractor resamples with ``scipy.signal.resample_poly`` on float32). Each clip is
    cropped to its first 2 s (shorter clips are normalised, then zero-padded to 2 s), demeaned and set to RMS 0.1;
    output ``avgpool`` is (batch, 1, 23421): 111 modulation filters x 211 cochlear channels, filter-major.
    Computed in float64; clips run in parallel on torch's thread count.
    """

    sample_rate = coch.SAMPLE_RATE
    layers = ["avgpool"]
    adapter_version = 1
    weights_id = "none"
    batch_size = 8
    time_resolved = False  # its features are time-averaged by construction: no frames
    preprocessing = {"duration_s": DURATION_S, "shorter": "normalise-then-zero-pad", "rms": TARGET_RMS,
                     "cochleagram": "cochleagram_1", "filters": N_FILTERS, "pooling": "mean-of-squares"}

    def __init__(self, route: str = "factorised") -> None:
        if route not in ROUTES:
            raise ModelError(f"unknown spectrotemporal route {route!r}; choose from {', '.join(ROUTES)}")
        self.name = "spectrotemporal"
        self.route = route

    def forward(self, waveforms: np.ndarray) -> Mapping[str, np.ndarray]:
        features = batch_features(prepare_waveforms(waveforms), self.route)
        return {"avgpool": features.reshape(len(features), 1, N_FILTERS * N_CHANNELS)}


register_model(ModelEntry("spectrotemporal", lambda random: SpectroTemporal(), "baseline",
                          "111 spectrotemporal modulation filters on a 211-channel cochleagram (NH2015, 20 kHz)",
                          has_random_twin=False))
