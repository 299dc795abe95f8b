"""Time-resolved encoding engine (protocol ``trf``; methods.md section 9), batched over alphas and targets.

Inputs: each layer's frame-level activations X (stimulus, frame bin, feature) on the dataset's time base (bins from
before onset, so that every lag reads the model's own output for the silence before the sound), responses
(stimulus, bin, target) and the stimulus folds.

Every fit (inner or outer training set) does, on the training sounds' response bins only: z-score each feature
(scikit-learn's ``StandardScaler``: population std, constant features scale 1), PCA to at most K components
(unscaled scores), then lags tau (row (s, b) = [P(s, b - tau) for tau]), then ridge with intercept (columns and
targets centred on the training rows) on the deviations of the responses from the training sounds' mean time
course. One symmetric eigendecomposition per fit (of ``D^T D`` when there are more rows than columns, else of
``D D^T``: the two forms give the same predictions) yields every alpha; all targets go together.

Cross-validation by sound: outer = the fixed folds; inner = leave one of the other folds out. The inner training
set of (outer o, inner i) is all folds but {o, i}, the same set as for (outer i, inner o): each of these C(n, 2)
fits is done once and predicts both held-out folds. Alpha and layer are chosen jointly per target by
max(r, 0)^2 of the pooled inner out-of-fold deviations (grid alpha-major then layers; ties to the first pair);
a chosen alpha on an edge of the grid is flagged. Per layer, the alpha chosen within that layer gives the
layer's own out-of-fold predictions and lag profile (norm over components of each lag's weights in the outer
refits, averaged over outer folds), so every layer gets an r(b) curve and a latency.

PCA: exact (eigendecomposition of the training covariance, from per-fold sums computed once per layer) for layers
up to ``EXACT_PCA_MAX`` features; wider layers use a seeded randomized PCA in float32 (Halko et al. 2011, as
scikit-learn's PCA does by default for such shapes), warm-started from the layer's previous fit. Layers with at most K features are not rotated at all (PCA keeping every
component is a rotation, which leaves ridge predictions unchanged).

Memory: a layer whose frame window (the frames any lagged row reads) fits min(``LAYER_MEMORY_BYTES``,
``LAYER_MEMORY_FRACTION`` x available memory) in the backend's float width is read once into one contiguous array,
sounds sorted by fold (every training or test set is then at most three ranges of consecutive sounds) and centred
by the overall per-feature mean (``_FoldStatistics.shift``). A fit's z-scoring is never materialised: with d the
fit's mean minus that shift and s its scale, ``z @ W = X' @ (W / s) - (d / s) @ W`` and
``z.T @ Q = (X'.T @ Q - d Q.sum(0)) / s``, so the PCA scores and the randomized-PCA passes are plain matrix
products on views (the same mathematics as indexing and z-scoring the rows; only float rounding differs). Wider
layers are streamed from the memory-mapped cache in feature chunks, indexing and z-scoring each block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from collections.abc import Sequence
from typing import Any

import numpy as np

from brainlike.align.pepino2025 import check_folds
from brainlike.align.ridge import NULL_TOLERANCE
from brainlike.errors import ProtocolError

__all__ = ["ALPHAS", "LAGS", "RATE", "PCA_COMPONENTS", "WINDOW", "N_NULL", "EXACT_PCA_MAX", "RANDOMIZED_PCA",
           "CHUNK_BYTES", "IN_MEMORY_BYTES", "LAYER_MEMORY_BYTES", "LAYER_MEMORY_FRACTION", "parse_lags", "lag_bins",
           "alpha_grid", "check_lag_window", "response_frames", "at_rate", "FrameLayers", "TRFResult", "run_trf",
           "pooled_r", "lagged_gram", "lagged_cross", "primal_weights", "kernel_weights", "time_curves",
           "category_curves", "null_band", "window_score", "latencies", "layer_scores"]

ALPHAS = np.logspace(-1, 9, 21)
"""Default alpha grid: 21 values, 10^-1 .. 10^9 (half-decade steps)."""
LAGS = "0:0.5"
RATE = 25.0
PCA_COMPONENTS = 128
WINDOW = (0.0, 2.0)
N_NULL = 1000
EXACT_PCA_MAX = 2048
"""Layers wider than this use randomized PCA."""
RANDOMIZED_PCA = {"oversamples": 10, "power_iterations": 4, "warm_power_iterations": 1, "dtype": "float32"}
CHUNK_BYTES = 256 * 2 ** 20
"""Feature chunks are sized to hold at most this many bytes of one block of activations."""
IN_MEMORY_BYTES = 2 ** 30
"""``FrameLayers(decode=True)`` decodes cached layers up to this size in float32 into memory when accessed."""
LAYER_MEMORY_BYTES = 8 * 2 ** 30
LAYER_MEMORY_FRACTION = 1 / 2
"""The engine copies a layer's frames (the window every lagged row reads, sounds sorted by fold, pre-centred) into
one contiguous array when it takes at most min(LAYER_MEMORY_BYTES, LAYER_MEMORY_FRACTION x available memory);
wider layers are streamed from the memory-mapped cache in feature chunks (each pass decoding float16 again)."""


# ---------------------------------------------------------------------------------------------------------------
# Settings


def parse_lags(text: str | Sequence[float]) -> tuple[float, float]:
    """``"0:0.5"`` -> (0.0, 0.5) seconds; negative starts allowed (``"-0.1:0.5"``)."""
    if not isinstance(text, str):
        values = tuple(float(v) for v in text)
    else:
        parts = text.split(":")
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            values = ()
    if len(values) != 2 or not all(math.isfinite(v) for v in values) or values[0] > values[1]:
        raise ProtocolError(f"--lags must be START:STOP in seconds with START <= STOP (e.g. 0:0.5), got {text!r}")
    return values


def lag_bins(lags: tuple[float, float], rate: float) -> np.ndarray:
    """Integer lags in bins: ceil(start * rate) .. floor(stop * rate) (0..12 for 0:0.5 s at 25 Hz)."""
    first = math.ceil(lags[0] * rate - 1e-9)
    last = math.floor(lags[1] * rate + 1e-9)
    if last < first:
        raise ProtocolError(f"--lags {lags[0]}:{lags[1]} holds no lag at {rate:g} Hz")
    return np.arange(first, last + 1)


def alpha_grid(alphas: Sequence[float] | None = None) -> np.ndarray:
    """The alpha grid, checked: positive, increasing, at least 20 values over at least 10 decades."""
    grid = np.asarray(ALPHAS if alphas is None else alphas, dtype=np.float64)
    if grid.ndim != 1 or len(grid) < 2 or np.any(grid <= 0) or np.any(np.diff(grid) <= 0):
        raise ProtocolError("alphas must be positive and increasing")
    return grid


def check_lag_window(lags: np.ndarray, n_bins: int, rate: float) -> None:
    """A lag window at least as long as the response is refused (no bin could be fitted from the sound)."""
    span = max(abs(int(lags.min())), abs(int(lags.max())))
    if span >= n_bins:
        raise ProtocolError(f"lag window {lags.min() / rate:g}:{lags.max() / rate:g} s is longer than the response "
                            f"({n_bins / rate:g} s, {n_bins} bins)")


def response_frames(frame_times: np.ndarray, times: np.ndarray, rate: float, lags: np.ndarray) -> np.ndarray:
    """Index of each response bin in the frame bins; checks the time bases and that every lag has frames.

    Raises
    ------
    ProtocolError
        Different bin rates or misaligned bins; a lag window longer than the response; lags reaching frames that
        were not extracted.
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    step = 1.0 / rate
    if len(frame_times) > 1 and not np.allclose(np.diff(frame_times), step, rtol=0, atol=1e-6):
        raise ProtocolError(f"frame bins are not at {rate:g} Hz")
    if len(times) > 1 and not np.allclose(np.diff(times), step, rtol=0, atol=1e-6):
        raise ProtocolError(f"response bins are not at {rate:g} Hz (resample the dataset to --rate first)")
    check_lag_window(lags, len(times), rate)
    index = np.rint((times - frame_times[0]) * rate).astype(int)
    if index.min() < 0 or index.max() >= len(frame_times) or not np.allclose(frame_times[index], times, atol=1e-6):
        raise ProtocolError("the response bins are not among the frame bins (frames on another time base)")
    first, last = index.min() - lags.max(), index.max() - lags.min()
    if first < 0:
        raise ProtocolError(f"lags up to {lags.max() * step:g} s need frames from {times[0] - lags.max() * step:g} s;"
                            f" the frames start at {frame_times[0]:g} s (extract with more silence before onset)")
    if last >= len(frame_times):
        raise ProtocolError(f"lags from {lags.min() * step:g} s need frames up to "
                            f"{times[-1] - lags.min() * step:g} s; the frames end at {frame_times[-1]:g} s")
    return index


def at_rate(dataset, rate: float):
    """The dataset at ``rate`` Hz (finer data averaged into bins of that rate, with a warning; coarser refused)."""
    if not getattr(dataset, "time_resolved", False):
        raise ProtocolError(f"protocol trf needs a time-resolved dataset; {dataset.name} has no time axis "
                            "(use pepino2025 or tuckute2023)")
    return dataset.resample(rate)


class FrameLayers(Sequence):
    """Each layer of a FrameActivations when accessed: memory-mapped from the frame cache where possible (wide
    layers are then streamed in feature chunks), else the in-memory array. ``decode=False`` never decodes a
    mapped layer here (run_trf copies the frames it reads into memory itself when they fit)."""

    def __init__(self, frames, decode: bool = True) -> None:
        self.frames = frames
        self.decode = decode

    def __len__(self) -> int:
        return len(self.frames.layers)

    def __getitem__(self, i: int):
        layer = self.frames.layers[i]
        arrays = self.frames.arrays
        if not hasattr(arrays, "open"):
            return np.asarray(arrays[layer])
        mapped = arrays.open(layer)
        # the engine reads a layer 5-7 times per fit (z-score statistics, randomized PCA passes, scores of the
        # training and test sounds): decoding the float16 cache once cut crepe-tiny conv1 (16,384 wide) by ~20% CPU
        small = 4 * int(np.prod(mapped.shape)) <= IN_MEMORY_BYTES
        return np.asarray(mapped) if self.decode and small else mapped


# ---------------------------------------------------------------------------------------------------------------
# Result


@dataclass
class TRFResult:
    """Outcome of :func:`run_trf` (targets last everywhere).

    Attributes
    ----------
    layers : list of str
    lags : ndarray (n_lags,) of int
        Lags in bins.
    rate : float
    scores : ndarray (t,)
        (a) R2 = max(r, 0)^2 of the pooled out-of-fold deviations from the training mean time course.
    r : ndarray (t,)
        Their Pearson r.
    score_raw : ndarray (t,)
        (b) the same on raw time courses (prediction + training mean course).
    baseline_raw : ndarray (t,)
        (c) the training mean time course alone, on raw time courses.
    layer_index, alpha : ndarray (n_folds, t)
        Joint choice per outer fold and target.
    alpha_edge : ndarray (n_folds, t) of bool
        The chosen alpha is the smallest or largest of the grid.
    inner_scores : ndarray (n_folds, n_alpha, n_layers, t)
        The selection grid (max(r, 0)^2 of the pooled inner deviations).
    layer_alpha : ndarray (n_folds, n_layers, t)
        Alpha chosen within each layer.
    predictions : ndarray (n_stimuli, n_bins, t)
        Pooled out-of-fold predicted deviations of the joint choice.
    baseline : ndarray (n_stimuli, n_bins, t)
        The mean time course of each sound's outer training set.
    observed : ndarray (n_stimuli, n_bins, t)
        Observed deviations (response - baseline).
    layer_predictions : ndarray (n_layers, n_stimuli, n_bins, t)
        Each layer's pooled out-of-fold predicted deviations at its own alpha.
    lag_profiles : ndarray (n_layers, n_folds, n_lags, t)
        Norm over components of each lag's weights in the outer refits at the layer's own alpha.
    form : str
        ``primal`` or ``kernel`` (ridge form of the largest fit), for provenance.
    pca_solver : dict of str to str
        ``none`` / ``exact`` / ``randomized`` per layer.
    """

    layers: list[str]
    lags: np.ndarray
    rate: float
    scores: np.ndarray
    r: np.ndarray
    score_raw: np.ndarray
    baseline_raw: np.ndarray
    layer_index: np.ndarray
    alpha: np.ndarray
    alpha_edge: np.ndarray
    inner_scores: np.ndarray
    layer_alpha: np.ndarray
    predictions: np.ndarray
    baseline: np.ndarray
    observed: np.ndarray
    layer_predictions: np.ndarray
    lag_profiles: np.ndarray
    form: str = "primal"
    pca_solver: dict[str, str] = field(default_factory=dict)

    @property
    def lag_seconds(self) -> np.ndarray:
        return self.lags / self.rate


# ---------------------------------------------------------------------------------------------------------------
# Engine


def run_trf(features: Sequence[Any], frame_times: np.ndarray, responses: np.ndarray, times: np.ndarray,
            folds: np.ndarray, *, lags: np.ndarray, rate: float, pca: int = PCA_COMPONENTS,
            alphas: Sequence[float] | None = None, backend=None, layers: Sequence[str] | None = None,
            seed: int = 0, form: str = "auto", progress=None) -> TRFResult:
    """Run the trf protocol (methods.md section 9).

    Parameters
    ----------
    features : sequence of array-like (n_stimuli, n_frame_bins, n_features)
        Frame-level activations of each layer (model order) on the frame bins ``frame_times``; any float dtype.
        Each layer is accessed once, and read in feature chunks (a lazy sequence of memory-mapped layers keeps one
        layer's chunk in memory at a time).
    frame_times : ndarray (n_frame_bins,)
        Bin starts (seconds from onset), including bins before onset for the lags.
    responses : ndarray (n_stimuli, n_bins, n_targets)
        Response time courses (mean over repetitions).
    times : ndarray (n_bins,)
        Response bin starts, a subset of ``frame_times``.
    folds : ndarray (n_stimuli,)
    lags : ndarray of int
        Lags in bins (see :func:`lag_bins`).
    rate : float
        Bins per second.
    pca : int
        At most this many principal components per layer (0 = off).
    alphas : sequence of float, optional
        Ridge grid (default :data:`ALPHAS`).
    backend : NumpyBackend or TorchBackend
    layers : sequence of str, optional
        Layer names (default ``layer0, layer1...``).
    seed : int
        Seed of the randomized PCA (wide layers only).
    form : {"auto", "primal", "kernel"}
        Ridge form; ``auto`` takes the primal form when a fit has at least as many rows as columns.
    progress : callable, optional
        Called with (layer index, number of layers) after each layer.
    """
    from brainlike.align.backend import NumpyBackend

    backend = backend or NumpyBackend()
    responses = np.asarray(responses, dtype=np.float64)
    if responses.ndim != 3:
        raise ProtocolError(f"responses must be (stimulus, time, target), got shape {responses.shape}")
    n_stimuli, n_bins, n_targets = responses.shape
    if not np.all(np.isfinite(responses)):
        raise ProtocolError("responses contain NaN or Inf")
    folds = check_folds(folds, n_stimuli, "trf")
    lags = np.asarray(lags, dtype=int)
    if len(times) != n_bins:
        raise ProtocolError(f"{len(times)} bin times for {n_bins} response bins")
    index = response_frames(frame_times, times, rate, lags)
    grid = alpha_grid(alphas)
    layers = list(layers) if layers is not None else [f"layer{i}" for i in range(len(features))]
    if len(layers) != len(features) or not layers:
        raise ProtocolError(f"{len(layers)} layer names for {len(features)} feature arrays")
    plan = _CVPlan(folds, responses)
    n_folds, n_layers, n_alpha = len(plan.fold_values), len(features), len(grid)
    inner_scores = np.zeros((n_folds, n_alpha, n_layers, n_targets))
    layer_alpha = np.zeros((n_folds, n_layers, n_targets))
    layer_predictions = np.zeros((n_layers, n_stimuli, n_bins, n_targets))
    lag_profiles = np.zeros((n_layers, n_folds, len(lags), n_targets))
    forms, solvers = set(), {}
    for li, x in enumerate(features):
        if x.ndim != 3 or x.shape[0] != n_stimuli or x.shape[1] != len(frame_times):
            raise ProtocolError(f"layer {layers[li]!r}: features of shape {x.shape}; expected ({n_stimuli}, "
                                f"{len(frame_times)}, n_features)")
        layer = _LayerFits(x, index, lags, plan, pca, backend, seed + li, form)
        solvers[layers[li]] = layer.pca_solver
        inner_scores[:, :, li, :], layer_alpha[:, li, :], layer_predictions[li], lag_profiles[li] = \
            layer.run(grid)
        forms |= layer.forms
        if progress is not None:
            progress(li + 1, n_layers)
    best = _joint_choice(inner_scores)
    layer_index = best % n_layers
    alpha_index = best // n_layers
    predictions = np.zeros((n_stimuli, n_bins, n_targets))
    for o, test in enumerate(plan.outer_test):
        for t in range(n_targets):
            predictions[test, :, t] = layer_predictions[layer_index[o, t], test, :, t]
    baseline = plan.outer_baseline
    deviations = responses - baseline
    r = pooled_r(predictions, deviations)
    return TRFResult(
        layers=layers, lags=lags, rate=float(rate), scores=np.maximum(r, 0) ** 2, r=r,
        score_raw=np.maximum(pooled_r(predictions + baseline, responses), 0) ** 2,
        baseline_raw=np.maximum(pooled_r(baseline, responses), 0) ** 2,
        layer_index=layer_index, alpha=grid[alpha_index],
        alpha_edge=(alpha_index == 0) | (alpha_index == n_alpha - 1),
        inner_scores=inner_scores, layer_alpha=layer_alpha, predictions=predictions, baseline=baseline,
        observed=deviations, layer_predictions=layer_predictions, lag_profiles=lag_profiles,
        form="kernel" if forms == {"kernel"} else "primal" if forms == {"primal"} else "mixed",
        pca_solver=solvers)


def _joint_choice(inner_scores: np.ndarray) -> np.ndarray:
    """Flat (alpha-major, then layer) index of the best pair per outer fold and target; ties to the first."""
    n_folds, n_alpha, n_layers, n_targets = inner_scores.shape
    flat = np.nan_to_num(inner_scores, nan=0.0).reshape(n_folds, n_alpha * n_layers, n_targets)
    return np.argmax(flat, axis=1)


def pooled_r(predicted: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Pearson r per target over every (stimulus, bin) pair; 0 where either side is constant."""
    from brainlike.align.backend import NumpyBackend

    n_targets = predicted.shape[-1]
    return NumpyBackend().column_pearson(predicted.reshape(-1, n_targets), observed.reshape(-1, n_targets))


class _CVPlan:
    """The folds, the fits they need and the training mean time courses of every training set."""

    def __init__(self, folds: np.ndarray, responses: np.ndarray) -> None:
        self.folds = folds
        self.fold_values = np.unique(folds)
        self.responses = responses
        self.outer_test = [np.flatnonzero(folds == f) for f in self.fold_values]
        self.pairs = list(combinations(range(len(self.fold_values)), 2))
        baseline = np.zeros_like(responses)
        for o, test in enumerate(self.outer_test):
            baseline[test] = self.mean_course(self.train_without((o,)))
        self.outer_baseline = baseline

    def train_without(self, excluded: tuple[int, ...]) -> np.ndarray:
        drop = self.fold_values[list(excluded)]
        return np.flatnonzero(~np.isin(self.folds, drop))

    def mean_course(self, train: np.ndarray) -> np.ndarray:
        return self.responses[train].mean(axis=0)


class _LayerFits:
    """All fits of one layer: C(n_folds, 2) inner training sets and n_folds outer ones."""

    def __init__(self, x, index: np.ndarray, lags: np.ndarray, plan: _CVPlan, pca: int, backend, seed: int,
                 form: str) -> None:
        if form not in ("auto", "primal", "kernel"):
            raise ValueError(f"unknown ridge form {form!r}")
        self.x, self.index, self.lags, self.plan, self.backend, self.form = x, index, lags, plan, backend, form
        self.seed = seed
        self.n_features = x.shape[2]
        self.k = self.n_features if pca <= 0 or pca >= self.n_features else int(pca)
        self.rotate = self.k < self.n_features
        self.pca_solver = "none" if not self.rotate else (
            "exact" if self.n_features <= EXACT_PCA_MAX else "randomized")
        # Frame bins any lagged row reads, and the positions of the lagged reads within them.
        self.first = int(index.min() - lags.max())
        self.last = int(index.max() - lags.min())
        self.reads = (index - self.first)[:, None] - lags[None, :]  # (n_bins, n_lags)
        self.starts = self.reads[0]  # each lag reads a window of consecutive frames starting here
        if not np.array_equal(self.reads, self.starts[None, :] + np.arange(len(index))[:, None]):
            raise ProtocolError("response bins must be consecutive frame bins")
        self.forms: set[str] = set()
        self._warm = None  # randomized PCA: the previous fit's basis
        # In memory (when the frames fit): sounds sorted by fold, so that every training or test set is a union of
        # at most three ranges of consecutive sounds and each pass is plain matrix products on views.
        self.order = np.argsort(plan.folds, kind="stable")
        self.bounds = np.concatenate([[0], np.cumsum([len(t) for t in plan.outer_test])])
        scatter = self.pca_solver == "exact"
        # the window of frames any lagged row reads, in up to three blocks of frame bins: before the response bins,
        # the response bins (``body``, the rows the PCA reads), after them
        low, high = int(index.min()), int(index.max()) + 1
        spans = [(self.first, low), (low, high), (high, self.last + 1)]
        self.spans = [span for span in spans if span[1] > span[0]]
        self.body = self.spans.index((low, high))
        parts = self._decode(x)
        self.frames = None
        if parts is None:
            self.stats = _FoldStatistics(x, index, plan, scatter)
        else:
            self.stats = _FoldStatistics.from_frames(parts, self.body, self.bounds, scatter)
            if self.backend.name == "torch":
                parts = [self.backend.torch.from_numpy(part).to(self.backend.device) for part in parts]
            self.frames = parts

    # -- in memory -----------------------------------------------------------------------------------------------
    def _decode(self, x) -> list[np.ndarray] | None:
        """The frames any lagged row reads, one contiguous host array (n_stimuli sorted by fold, span length,
        n_features) per span of frame bins (float32, float64 for a float64 backend), read once; None when they
        would take more than the memory limit (:func:`_memory_limit`). :meth:`_FoldStatistics.from_frames` then
        centres them in place."""
        float64 = "64" in str(self.backend.dtype)
        dtype = np.float64 if float64 else np.float32
        n_frames = self.last - self.first + 1
        size = len(self.order) * n_frames * self.n_features * np.dtype(dtype).itemsize
        if size > _memory_limit():
            return None
        parts = []
        for first, stop in self.spans:
            part = np.empty((len(self.order), stop - first, self.n_features), dtype=dtype)
            for sounds in _sound_ranges(len(self.order), (stop - first) * self.n_features):
                part[sounds] = x[self.order[sounds], first:stop, :]
            parts.append(part)
        return parts

    def _ranges(self, folds: Sequence[int]) -> list[tuple[int, int]]:
        """Ranges of sorted sounds holding the given folds, consecutive folds merged."""
        ranges: list[tuple[int, int]] = []
        for f in sorted(folds):
            start, stop = int(self.bounds[f]), int(self.bounds[f + 1])
            if ranges and ranges[-1][1] == start:
                ranges[-1] = (ranges[-1][0], stop)
            elif stop > start:
                ranges.append((start, stop))
        return ranges

    def _kept(self, excluded: tuple[int, ...]) -> list[int]:
        return [f for f in range(len(self.plan.fold_values)) if f not in excluded]

    def _sounds(self, ranges: list[tuple[int, int]]) -> np.ndarray:
        """Sound indices (original order) of sorted ranges."""
        return np.concatenate([self.order[a:b] for a, b in ranges])

    def _rows(self, part: int, a: int, b: int):
        """Sorted sounds a..b of one span as a (n_sounds * span length, n_features) view of the in-memory frames."""
        return self.frames[part][a:b].reshape(-1, self.n_features)

    # -- per fit -------------------------------------------------------------------------------------------------
    def basis(self, train: np.ndarray, excluded: tuple[int, ...]):
        """z-score (mean, scale) and PCA components (features x k, or None) of one training set (``train``: its
        sounds, in the order of the rows the randomized PCA reads)."""
        mean, scale, covariance = self.stats.combine(excluded)
        if not self.rotate:
            return mean, scale, None
        if self.pca_solver == "exact":
            return mean, scale, _top_eigenvectors(covariance / np.outer(scale, scale), self.k, self.backend)
        rng = np.random.default_rng([self.seed, *excluded])
        return mean, scale, self._randomized_components(train, mean, scale, rng, excluded)

    def scores(self, sounds: np.ndarray, mean: np.ndarray, scale: np.ndarray, components, ranges=None):
        """z-scored (and PCA) features of the frames any lagged row reads, (n_sounds, n_frames, k), backend.
        In memory, ``ranges`` (of sorted sounds, which ``sounds`` lists) are read instead."""
        if self.frames is not None:
            return self._scores_in_memory(ranges, mean, scale, components)
        b = self.backend
        bins = slice(self.first, self.last + 1)
        scores = None
        for cols in _chunks(self.n_features, len(sounds) * (self.last - self.first + 1)):
            block = b.asarray(self.x[sounds, bins, cols])
            block = (block - b.asarray(mean[cols])) / b.asarray(scale[cols])
            part = block @ b.asarray(components[cols]) if components is not None else block
            if components is None:
                scores = part if scores is None else _cat(b, [scores, part], axis=2)
            else:
                scores = part if scores is None else scores + part
        return scores

    def _scores_in_memory(self, ranges, mean, scale, components):
        """:meth:`scores` from the pre-centred frames X' = X - shift: with d = mean - shift (small),
        z @ C = X' @ (C / scale) - (d / scale) @ C, one product per range of sounds."""
        b = self.backend
        relative = (mean - self.stats.shift) / scale  # float64 on the host
        if components is None:
            offset, inverse = b.asarray(relative), b.asarray(1.0 / scale)

            def block(p, a, c):
                return b.asarray(self.frames[p][a:c]) * inverse - offset
        else:
            weights = b.asarray(components / scale[:, None])
            offset = b.asarray(relative @ components)

            def block(p, a, c):
                return (b.asarray(self._rows(p, a, c)) @ weights - offset).reshape(c - a, -1, weights.shape[1])

        def sounds(a, c):  # every frame of sounds a..c
            spans = [block(p, a, c) for p in range(len(self.frames))]
            return spans[0] if len(spans) == 1 else _cat(b, spans, axis=1)

        parts = [sounds(a, c) for a, c in ranges]
        return parts[0] if len(parts) == 1 else _cat(b, parts, axis=0)

    def lag(self, scores):
        """The lagged design (n_sounds * n_bins, n_lags * k) of frame scores."""
        lagged = scores[:, _index(self.backend, self.reads), :]  # (n_sounds, n_bins, n_lags, k)
        return lagged.reshape(scores.shape[0] * self.reads.shape[0], -1)

    def fit(self, excluded: tuple[int, ...], test_folds: Sequence[int], alphas: np.ndarray):
        """Fit on all folds but ``excluded``; predictions (n_alpha, n_test, n_bins, t) for each test fold and lag
        profiles (n_lags, n_alpha, t)."""
        b = self.backend
        plan = self.plan
        ranges = self._ranges(self._kept(excluded)) if self.frames is not None else None
        # in memory the training sounds come sorted by fold (rows in any order give the same fit)
        train = self._sounds(ranges) if ranges is not None else plan.train_without(excluded)
        mean, scale, components = self.basis(train, excluded)
        scores = self.scores(train, mean, scale, components, ranges)
        y = plan.responses[train] - plan.mean_course(train)
        y = y.reshape(-1, y.shape[-1])
        # the intercept in float64 on the host: deviations have mean ~1e-17 there, ~1e-8 in float32, and a
        # per-fold offset of that size would blur the pooled correlation of strongly shrunk (large-alpha) predictions
        y_mean = y.mean(0)
        targets = b.asarray(y - y_mean)
        n_rows, width = y.shape[0], len(self.lags) * scores.shape[2]
        form = self.form if self.form != "auto" else ("primal" if n_rows >= width else "kernel")
        if form == "primal":
            gram, x_mean = lagged_gram(scores, self.starts, len(self.index), b)
            weights = primal_weights(gram, lagged_cross(scores, targets, self.starts, len(self.index), b), alphas, b)
        else:
            design = self.lag(scores)
            x_mean = design.mean(0)
            weights = kernel_weights(design - x_mean, targets, alphas, b)
        self.forms.add(form)
        n_alpha, n_targets = len(alphas), y.shape[1]
        flat = weights.reshape(weights.shape[0], -1)
        outputs = []
        for f in test_folds:
            test = plan.outer_test[f]  # = the sorted sounds of range f, in the same order
            d_test = self.lag(self.scores(test, mean, scale, components, self._ranges([f]))) - x_mean
            preds = b.to_numpy(d_test @ flat).astype(np.float64).reshape(len(test), -1, n_alpha, n_targets) + y_mean
            outputs.append(np.moveaxis(preds, 2, 0))
        width = weights.shape[0] // len(self.lags)
        profile = weights.reshape(len(self.lags), width, n_alpha, n_targets)
        profile = b.to_numpy((profile * profile).sum(1)).astype(np.float64) ** 0.5
        return outputs, profile

    # -- the layer -----------------------------------------------------------------------------------------------
    def run(self, alphas: np.ndarray):
        """Inner selection grid, per-layer alpha, out-of-fold predictions and lag profiles of this layer."""
        plan = self.plan
        n_folds = len(plan.fold_values)
        n_stimuli, n_bins, n_targets = plan.responses.shape
        # blocks[o][i]: moments of the inner predictions of fold i (outer fold o held out) and its observed
        # deviations; pooled over i they give the inner score without keeping the predictions.
        blocks: dict[int, dict[int, _Moments]] = {o: {} for o in range(n_folds)}
        for pair in plan.pairs:
            observed = plan.mean_course(plan.train_without(pair))
            predicted, _ = self.fit(pair, pair, alphas)
            for (held, outer), preds in zip((pair, pair[::-1]), predicted):
                blocks[outer][held] = _Moments(preds, plan.responses[plan.outer_test[held]] - observed)
        grid = np.zeros((n_folds, len(alphas), n_targets))
        chosen = np.zeros((n_folds, n_targets), dtype=int)
        predictions = np.zeros((n_stimuli, n_bins, n_targets))
        profiles = np.zeros((n_folds, len(self.lags), n_targets))
        columns = np.arange(n_targets)
        for o in range(n_folds):
            r = _Moments.pooled_r([blocks[o][i] for i in range(n_folds) if i != o])
            grid[o] = np.maximum(r, 0) ** 2
            chosen[o] = np.argmax(grid[o], axis=0)
            (outer,), profile = self.fit((o,), [o], alphas)
            predictions[plan.outer_test[o]] = outer[chosen[o], :, :, columns].transpose(1, 2, 0)
            profiles[o] = profile[:, chosen[o], columns]
        return grid, alphas[chosen], predictions, profiles

    def _randomized_components(self, train: np.ndarray, mean: np.ndarray, scale: np.ndarray, rng,
                               excluded: tuple[int, ...] = ()):
        """Top-k right singular vectors of the z-scored training rows by randomized subspace iteration (float32,
        on the backend's device). The first fit of a layer starts from a seeded Gaussian sketch with
        ``power_iterations`` passes; later fits (training sets overlapping it by most of their sounds) start from
        the previous fit's basis with one."""
        ops = _Float32(self.backend)
        n_rows = len(train) * len(self.index)
        width = min(self.k + RANDOMIZED_PCA["oversamples"], self.n_features, n_rows)
        if self._warm is None:
            start, iterations = rng.standard_normal((self.n_features, width)), RANDOMIZED_PCA["power_iterations"]
        else:
            start, iterations = self._warm, RANDOMIZED_PCA["warm_power_iterations"]
        start = ops.asarray(start)
        if self.frames is not None:
            return self._randomized_in_memory(self._ranges(self._kept(excluded)), mean, scale, start, iterations,
                                              ops)

        def blocks():
            for cols in _chunks(self.n_features, n_rows, itemsize=4):
                block = ops.asarray(self.x[train[:, None], self.index[None, :], cols]).reshape(n_rows, -1)
                yield cols, (block - ops.asarray(mean[cols])) / ops.asarray(scale[cols])

        sample = sum(z @ start[cols] for cols, z in blocks())
        for _ in range(iterations):
            q = ops.orthonormal(sample)
            sample = sum(z @ (z.T @ q) for _, z in blocks())
        q = ops.orthonormal(sample)
        projected = ops.cat([q.T @ z for _, z in blocks()], axis=1)  # (width, n_features)
        vt = ops.right_singular_vectors(projected)
        self._warm = vt.T
        return ops.to_numpy(vt[:self.k].T).astype(np.float64)


    def _randomized_in_memory(self, ranges, mean, scale, start, iterations, ops):
        """The same subspace iteration on the pre-centred in-memory frames X' (z = (X' - d) / s, d = mean - shift):
        z @ W = X' @ (W / s) - (d / s) @ W and z.T @ Q = (X'.T @ Q - d Q.sum(0)) / s, one product per range of
        sorted sounds (the response-bin span: rows (sound, bin) in the order of ``train``)."""
        relative = ops.asarray((mean - self.stats.shift) / scale)  # d / s
        inverse = ops.asarray(1.0 / scale)[:, None]
        shift = ops.asarray(mean - self.stats.shift)[:, None]  # d
        views = [ops.asarray(self._rows(self.body, a, c)) for a, c in ranges]

        def times(w):  # z @ w, (n_rows, width)
            scaled = w * inverse
            parts = [x @ scaled for x in views]
            return (parts[0] if len(parts) == 1 else ops.cat(parts, axis=0)) - relative @ w

        def transposed_times(q):  # z.T @ q, (n_features, width)
            total, position = None, 0
            for x in views:
                part = ops.transposed_product(x, q[position:position + x.shape[0]])
                position += x.shape[0]
                total = part if total is None else total + part
            return (total - shift * q.sum(0)[None, :]) * inverse

        sample = times(start)
        for _ in range(iterations):
            sample = times(transposed_times(ops.orthonormal(sample)))
        projected = transposed_times(ops.orthonormal(sample)).T  # (width, n_features)
        vt = ops.right_singular_vectors(projected)
        self._warm = vt.T
        return ops.to_numpy(vt[:self.k].T).astype(np.float64)


class _Float32:
    """float32 array operations on the backend's device (numpy or torch), for the randomized PCA passes."""

    def __init__(self, backend) -> None:
        self.torch = backend.torch if backend.name == "torch" else None
        self.device = backend.device

    def asarray(self, x):
        if self.torch is not None:
            if isinstance(x, self.torch.Tensor):
                return x.to(device=self.device, dtype=self.torch.float32)
            return self.torch.as_tensor(np.asarray(x), dtype=self.torch.float32, device=self.device)
        return np.asarray(x, dtype=np.float32)

    def to_numpy(self, x) -> np.ndarray:
        return x.detach().cpu().numpy() if self.torch is not None else np.asarray(x)

    def orthonormal(self, x):
        return self.torch.linalg.qr(x)[0] if self.torch is not None else np.linalg.qr(x)[0]

    def transposed_product(self, x, q):
        """``x.T @ q`` for a tall x (rows, features). On the CPU both backends use numpy's BLAS for it, as
        ``(q.T @ x).T``: torch's CPU product of a transposed view took ~1.5x as long for crepe-tiny conv1's shapes
        (8,250 x 16,384 by 138: 0.62 vs 0.40 CPU s, one thread)."""
        if self.torch is not None and x.device.type != "cpu":
            return x.T @ q
        if self.torch is not None:
            return self.torch.from_numpy((q.numpy().T @ x.numpy()).T)
        return (q.T @ x).T

    def cat(self, arrays, axis: int):
        return self.torch.cat(arrays, axis) if self.torch is not None else np.concatenate(arrays, axis)

    def right_singular_vectors(self, x):
        if self.torch is not None:
            return self.torch.linalg.svd(x, full_matrices=False)[2]
        return np.linalg.svd(x, full_matrices=False)[2]


class _Moments:
    """Count, means and centred second moments of predictions (n_alpha, n, ..., t) against observed (n, ..., t),
    per alpha and target; blocks combine exactly into the Pearson r of their concatenation (Chan et al.)."""

    def __init__(self, predictions: np.ndarray, observed: np.ndarray) -> None:
        n_alpha, n_targets = predictions.shape[0], predictions.shape[-1]
        p = predictions.reshape(n_alpha, -1, n_targets)
        o = observed.reshape(-1, n_targets)
        self.n = o.shape[0]
        self.mean_p, self.mean_o = p.mean(axis=1), o.mean(axis=0)
        pc, oc = p - self.mean_p[:, None, :], o - self.mean_o
        self.pp = np.einsum("ant,ant->at", pc, pc)
        self.po = np.einsum("ant,nt->at", pc, oc)
        self.oo = (oc * oc).sum(0)

    @staticmethod
    def pooled_r(blocks: list["_Moments"]) -> np.ndarray:
        """Pearson r (n_alpha, t) over the concatenated blocks; 0 where either side is constant."""
        total = sum(b.n for b in blocks)
        mean_p = sum(b.n * b.mean_p for b in blocks) / total
        mean_o = sum(b.n * b.mean_o for b in blocks) / total
        pp = sum(b.pp + b.n * (b.mean_p - mean_p) ** 2 for b in blocks)
        po = sum(b.po + b.n * (b.mean_p - mean_p) * (b.mean_o - mean_o) for b in blocks)
        oo = sum(b.oo + b.n * (b.mean_o - mean_o) ** 2 for b in blocks)
        den = np.sqrt(pp * oo)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, po / np.where(den > 0, den, 1.0), 0.0)


class _FoldStatistics:
    """Per-fold sums over the response bins (of features shifted by their overall mean, to avoid cancellation):
    counts, sums, sums of squares and, for exact PCA, the scatter matrices."""

    def __init__(self, x, index: np.ndarray, plan: _CVPlan, scatter: bool) -> None:
        n_features = x.shape[2]
        n_folds = len(plan.fold_values)
        self.counts = np.array([len(t) * len(index) for t in plan.outer_test], dtype=np.float64)
        self.shift = np.zeros(n_features)
        self.sums = np.zeros((n_folds, n_features))
        self.squares = np.zeros((n_folds, n_features))
        self.scatter = np.zeros((n_folds, n_features, n_features)) if scatter else None
        n_stimuli = x.shape[0]
        for cols in _chunks(n_features, n_stimuli * len(index)):
            block = np.asarray(x[:, index, cols], dtype=np.float64)
            self.shift[cols] = block.mean(axis=(0, 1))
        for f, test in enumerate(plan.outer_test):
            for sounds in _sound_chunks(test, len(index) * n_features):
                block = np.asarray(x[sounds[:, None], index[None, :], :], dtype=np.float64)
                block = block.reshape(-1, n_features) - self.shift
                self.sums[f] += block.sum(0)
                self.squares[f] += (block * block).sum(0)
                if scatter:
                    self.scatter[f] += block.T @ block

    @classmethod
    def from_frames(cls, parts: list[np.ndarray], body: int, bounds: np.ndarray, scatter: bool
                    ) -> "_FoldStatistics":
        """The same statistics from in-memory frames (sounds sorted by fold: fold f is sounds bounds[f] to
        bounds[f + 1]; ``parts[body]``: the response bins), which are centred in place by the shift (one rounding
        of x - shift); sums then run over the centred values."""
        self = cls.__new__(cls)
        frames = parts[body]
        n_sounds, n_rows, n_features = frames.shape
        per_sound = n_rows * n_features
        self.counts = np.diff(bounds).astype(np.float64) * n_rows
        self.shift = np.zeros(n_features)
        for sounds in _sound_ranges(n_sounds, per_sound):
            self.shift += frames[sounds].sum(axis=(0, 1), dtype=np.float64)
        self.shift /= n_sounds * n_rows
        for part in parts:
            for sounds in _sound_ranges(n_sounds, part.shape[1] * n_features):
                np.subtract(part[sounds], self.shift, out=part[sounds], casting="same_kind")
        n_folds = len(bounds) - 1
        self.sums = np.zeros((n_folds, n_features))
        self.squares = np.zeros((n_folds, n_features))
        self.scatter = np.zeros((n_folds, n_features, n_features)) if scatter else None
        for f in range(n_folds):
            for part in _sound_ranges(int(bounds[f + 1] - bounds[f]), per_sound, start=int(bounds[f])):
                block = frames[part].reshape(-1, n_features).astype(np.float64)
                self.sums[f] += block.sum(0)
                self.squares[f] += (block * block).sum(0)
                if scatter:
                    self.scatter[f] += block.T @ block
        return self

    def combine(self, excluded: tuple[int, ...]):
        """Mean, z-score scale (StandardScaler's: constant features 1) and covariance of a training set."""
        keep = np.setdiff1d(np.arange(len(self.counts)), excluded)
        n = self.counts[keep].sum()
        centre = self.sums[keep].sum(0) / n
        variance = np.maximum(self.squares[keep].sum(0) / n - centre ** 2, 0.0)
        mean = centre + self.shift
        eps = np.finfo(np.float64).eps
        constant = variance <= n * eps * variance + (n * mean * eps) ** 2
        scale = np.where(constant, 1.0, np.sqrt(variance))
        covariance = None
        if self.scatter is not None:
            covariance = self.scatter[keep].sum(0) / n - np.outer(centre, centre)
        return mean, scale, covariance


def _top_eigenvectors(matrix: np.ndarray, k: int, backend) -> np.ndarray:
    """Eigenvectors of the k largest eigenvalues of a symmetric matrix (float64, host or CUDA)."""
    n = matrix.shape[0]
    if backend.name == "torch" and str(backend.device).startswith("cuda"):
        torch = backend.torch
        _, vectors = torch.linalg.eigh(torch.as_tensor(matrix, dtype=torch.float64, device=backend.device))
        return vectors[:, n - k:].cpu().numpy()
    import scipy.linalg

    _, vectors = scipy.linalg.eigh(matrix, subset_by_index=[n - k, n - 1], driver="evr")
    return vectors


def lagged_gram(scores, starts: np.ndarray, n_bins: int, backend):
    """Centred Gram matrix ``D^T D`` of the lagged design and its column means, from the frame scores alone.

    Column block j of D holds ``scores[s, starts[j] + b]`` for b < n_bins, so block (i, j) of ``D^T D`` is a sum over
    a window of frames u of ``C_d(u) = sum_s scores[s, u]^T scores[s, u + d]`` with d = starts[j] - starts[i]: one
    batched product per lag difference and window sums over u give every block (about n_lags / 2 times fewer
    operations than forming ``D^T D``). Scores are first shifted by their mean (which leaves the centred Gram
    unchanged) so that centring subtracts small numbers.

    Parameters
    ----------
    scores : backend array (n_sounds, n_frames, k)
    starts : ndarray (n_lags,) of int
    n_bins : int

    Returns
    -------
    gram : backend array (n_lags * k, n_lags * k)
    column_means : backend array (n_lags * k,)
        Means of the design's columns (unshifted scores).
    """
    b = backend
    n_sounds, n_frames, k = scores.shape
    shift = scores.reshape(-1, k).mean(0)
    shifted = scores - shift
    n_lags, n = len(starts), n_sounds * n_bins
    prefix = _prefix_sums(shifted.sum(0), b)  # (n_frames + 1, k)
    sums = _stack(b, [prefix[s + n_bins] - prefix[s] for s in starts])  # (n_lags, k)
    gram = b.zeros((n_lags * k, n_lags * k))
    by_frame = _transpose(b, shifted, (1, 2, 0))  # (n_frames, k, n_sounds)
    by_frame_t = _transpose(b, shifted, (1, 0, 2))  # (n_frames, n_sounds, k)
    for d in sorted({int(s2 - s1) for s1 in starts for s2 in starts if s2 >= s1}):
        products = by_frame[:n_frames - d] @ by_frame_t[d:]  # (n_frames - d, k, k): C_d(u)
        for i, j in ((i, j) for i in range(n_lags) for j in range(n_lags) if starts[j] - starts[i] == d):
            block = products[starts[i]:starts[i] + n_bins].sum(0)
            gram[i * k:(i + 1) * k, j * k:(j + 1) * k] = block
            if i != j:
                gram[j * k:(j + 1) * k, i * k:(i + 1) * k] = block.T
    means = (sums / n).reshape(-1)
    gram = gram - n * (means[:, None] * means[None, :])
    return gram, means + _tile(b, shift, n_lags)


def lagged_cross(scores, targets, starts: np.ndarray, n_bins: int, backend):
    """``D^T Y`` (n_lags * k, t) of the lagged design and centred targets (n_sounds * n_bins, t)."""
    n_sounds = scores.shape[0]
    by_frame = _transpose(backend, scores, (1, 2, 0))  # (n_frames, k, n_sounds): one copy serves every lag
    y = _transpose(backend, targets.reshape(n_sounds, n_bins, -1), (1, 0, 2))  # (n_bins, n_sounds, t)
    blocks = [(by_frame[s:s + n_bins] @ y).sum(0) for s in starts]  # sums over bins of (k, t) products
    return _cat(backend, blocks, axis=0)


def primal_weights(gram, cross, alphas: np.ndarray, backend):
    """Ridge weights (p, n_alpha, t) for every alpha from one eigendecomposition of the centred Gram (p x p)."""
    values, vectors = _eigh(gram, backend)
    factors = _shrinkage(values, alphas, backend)  # (p, n_alpha)
    projected = vectors.T @ cross  # (p, t)
    weights = vectors @ (factors[:, :, None] * projected[:, None, :]).reshape(len(factors), -1)
    return weights.reshape(gram.shape[0], len(alphas), -1)


def kernel_weights(design, targets, alphas: np.ndarray, backend):
    """Ridge weights (p, n_alpha, t) for every alpha from one eigendecomposition of ``D D^T`` (n x n); design
    columns and targets centred."""
    values, vectors = _eigh(design @ design.T, backend)
    factors = _shrinkage(values, alphas, backend)  # (n, n_alpha)
    projected = vectors.T @ targets
    dual = vectors @ (factors[:, :, None] * projected[:, None, :]).reshape(len(factors), -1)
    return (design.T @ dual).reshape(design.shape[1], len(alphas), -1)


def _shrinkage(values, alphas: np.ndarray, backend):
    """``1 / (s + alpha)`` (n_values, n_alpha), computed in float64 on the host. Eigenvalues within rounding of
    zero (the centring direction, rank deficiency; negative ones) are set to 0 rather than dropped: a truly null
    direction contributes nothing either way (u^T X^T y = 0), but dropping the smallest real ones would change
    large-alpha predictions, where every direction is shrunk alike."""
    host = backend.to_numpy(values).astype(np.float64)
    eps = np.finfo(np.float32 if "32" in str(backend.dtype) else np.float64).eps
    host = np.where(host > NULL_TOLERANCE * eps * max(host.max(), 0.0), host, 0.0)
    return backend.asarray(1.0 / (host[:, None] + np.asarray(alphas, dtype=np.float64)[None, :]))


def _prefix_sums(values, backend):
    """Cumulative sums over the first axis with a zero row first."""
    if backend.name == "torch":
        torch = backend.torch
        return torch.cat([torch.zeros_like(values[:1]), torch.cumsum(values, 0)])
    return np.concatenate([np.zeros_like(values[:1]), np.cumsum(values, 0)])


def _stack(backend, arrays):
    return backend.torch.stack(arrays) if backend.name == "torch" else np.stack(arrays)


def _transpose(backend, array, axes):
    if backend.name == "torch":
        return array.permute(*axes).contiguous()
    return np.ascontiguousarray(array.transpose(axes))


def _tile(backend, array, times: int):
    return array.repeat(times) if backend.name == "torch" else np.tile(array, times)


def _eigh(matrix, backend):
    """Eigenvalues and eigenvectors of a symmetric matrix. torch's float32 eigensolver can fail to converge on an
    ill-conditioned Gram with many (near-)repeated eigenvalues (seen on a random twin's layer, silero-vad@random):
    that matrix is then decomposed in float64 on the same device and the result cast back."""
    if backend.name == "torch":
        torch = backend.torch
        try:
            return torch.linalg.eigh(matrix)
        except torch.linalg.LinAlgError:
            if matrix.dtype == torch.float64:
                raise
            values, vectors = torch.linalg.eigh(matrix.to(torch.float64))
            return values.to(matrix.dtype), vectors.to(matrix.dtype)
    return np.linalg.eigh(matrix)


def _index(backend, positions: np.ndarray):
    if backend.name == "torch":
        return backend.torch.as_tensor(positions, dtype=backend.torch.long, device=backend.device)
    return positions


def _cat(backend, arrays, axis: int):
    return backend.torch.cat(arrays, axis) if backend.name == "torch" else np.concatenate(arrays, axis)


def _chunks(n_features: int, n_rows: int, itemsize: int = 8) -> list[slice]:
    """Feature slices holding at most CHUNK_BYTES of ``itemsize``-byte values for ``n_rows`` rows."""
    width = max(1, CHUNK_BYTES // (itemsize * max(n_rows, 1)))
    return [slice(s, min(s + width, n_features)) for s in range(0, n_features, width)]


def _memory_limit() -> int:
    """Bytes a layer's in-memory frames may take: min(LAYER_MEMORY_BYTES, LAYER_MEMORY_FRACTION x available)."""
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        import os

        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = LAYER_MEMORY_BYTES
    return int(min(LAYER_MEMORY_BYTES, LAYER_MEMORY_FRACTION * available))


def _sound_ranges(n_sounds: int, values_per_sound: int, start: int = 0) -> list[slice]:
    """Slices of consecutive sounds start..start + n_sounds holding at most CHUNK_BYTES of float64 values."""
    size = max(1, CHUNK_BYTES // (8 * max(values_per_sound, 1)))
    return [slice(start + s, start + min(s + size, n_sounds)) for s in range(0, n_sounds, size)]


def _sound_chunks(sounds: np.ndarray, values_per_sound: int) -> list[np.ndarray]:
    size = max(1, CHUNK_BYTES // (8 * max(values_per_sound, 1)))
    return [sounds[s:s + size] for s in range(0, len(sounds), size)]


# ---------------------------------------------------------------------------------------------------------------
# Curves and summaries of a result


def time_curves(predicted: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """r(b): Pearson r across sounds at each bin, (n_bins, t); 0 where either side is constant."""
    from brainlike.align.backend import NumpyBackend

    n_stimuli, n_bins, n_targets = observed.shape
    r = NumpyBackend().column_pearson(predicted.reshape(n_stimuli, -1), observed.reshape(n_stimuli, -1))
    return np.asarray(r).reshape(n_bins, n_targets)


def category_curves(predicted: np.ndarray, observed: np.ndarray, categories: Sequence[str]
                    ) -> tuple[list[str], np.ndarray]:
    """r(b) within each category (across its sounds), (n_categories, n_bins, t), categories in first-seen order."""
    labels = np.asarray(categories).astype(str)
    names = list(dict.fromkeys(labels))
    return names, np.stack([time_curves(predicted[labels == c], observed[labels == c]) for c in names])


def null_band(predicted: np.ndarray, observed: np.ndarray, n_shuffles: int = N_NULL, seed: int = 0,
              levels: tuple[float, float] = (2.5, 97.5)) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles of r(b) with the sounds of the predictions shuffled (a sound's time course moves as a whole):
    the band r(b) falls in by chance, (n_bins, t) each."""
    rng = np.random.default_rng(seed)
    n_stimuli = observed.shape[0]
    z_obs = _zscore_sounds(observed)
    z_pred = _zscore_sounds(predicted)
    null = np.stack([(z_pred[rng.permutation(n_stimuli)] * z_obs).mean(0) for _ in range(n_shuffles)])
    return np.percentile(null, levels[0], axis=0), np.percentile(null, levels[1], axis=0)


def _zscore_sounds(values: np.ndarray) -> np.ndarray:
    centred = values - values.mean(0)
    std = centred.std(0)
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)


def window_score(predicted: np.ndarray, observed: np.ndarray, times: np.ndarray,
                 window: tuple[float, float] = WINDOW) -> np.ndarray:
    """(e) R2 across sounds of predictions and responses averaged over bins with window[0] <= t < window[1]."""
    from brainlike.align.backend import NumpyBackend

    keep = (np.asarray(times) >= window[0] - 1e-9) & (np.asarray(times) < window[1] - 1e-9)
    if not keep.any():
        raise ProtocolError(f"no response bin in the window {window[0]:g}:{window[1]:g} s")
    r = NumpyBackend().column_pearson(predicted[:, keep].mean(1), observed[:, keep].mean(1))
    return np.maximum(np.asarray(r), 0) ** 2


def latencies(profiles: np.ndarray, lag_seconds: np.ndarray) -> np.ndarray:
    """Lag (seconds) of the peak of the fold-averaged lag profile, for profiles (..., n_folds, n_lags, t)."""
    return np.asarray(lag_seconds)[np.argmax(profiles.mean(axis=-3), axis=-2)]


def layer_scores(result: TRFResult) -> np.ndarray:
    """R2 of each layer's own out-of-fold deviations (its alpha chosen within the layer), (n_layers, t)."""
    return np.stack([np.maximum(pooled_r(p, result.observed), 0) ** 2 for p in result.layer_predictions])
