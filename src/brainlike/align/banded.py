"""Banded ridge regression: one alpha per feature band, in kernel form, batched over targets.

The joint model on bands b = 1..B (a model's layer and the control's feature sets) penalises each band's weights
with its own alpha: minimise ||y - mean - sum_b X_b w_b||^2 + sum_b alpha_b ||w_b||^2, i.e. kernel ridge with the
kernel sum_b K_b / alpha_b and unit regularisation (features and targets centred with training means).

* Each band's Gram matrix is divided by its scale (the mean eigenvalue of its centred Gram over all stimuli,
  trace / n: features only, no responses), so the band alpha grids are relative and one grid fits every band.
* Candidates: the product of the bands' alpha grids (``itertools.product`` order, the first band slowest; ties go to
  the first). A fixed grid, no edge extension: a choice on an edge of any band's grid is flagged.
* A tuple with smallest alpha c and direction w_b = c / alpha_b has sum_b K_b / alpha_b + I = (M_w + c I) / c with
  M_w = sum_b w_b K_b, so its predictions are those of single-kernel ridge on M_w with alpha c: every tuple of a
  direction comes from ONE eigendecomposition per split, and the inner search is the single-band one
  (:class:`brainlike.align.inner_cv.InnerSearch`) with directions as kernels.
* Layers: each band's layer per outer fold and target is given (pepino2025: each model's own inner choice);
  targets are grouped by their tuple of layers.

Split R2 per band (himalaya's ``correlation_score_split``, squared into shares of R2): the pooled prediction is the
per-fold training mean plus one term per band, so r = sum_b r_b + r_mean with r_x = cov(term_x, y) / (sd(pred)
sd(y)); the share of band b is r_b * r (0 where r <= 0), and the shares plus the mean's share sum to R2 = max(r, 0)^2.

The engine works from split kernels (``centered_kernels`` of the Gram matrices), so a protocol whose kernels depend
on the training set (``trf``: z-scoring, PCA and lags fitted per training set) plugs in by giving each band's
per-split kernels instead of global Gram matrices.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from brainlike.align.backend import NumpyBackend, host_threads
from brainlike.align.inner_cv import INNER_SCORES, InnerSearch
from brainlike.align.pepino2025 import check_folds
from brainlike.align.ridge import SpectrumCache, centered_kernels, shrinkage, split_spectrum
from brainlike.errors import ProtocolError

__all__ = ["BAND_ALPHAS", "CACHE_BUDGET", "BandedResult", "kernel_scale", "CandidateGrid", "run_banded",
           "split_correlations", "check_time_bases"]

BAND_ALPHAS = 10.0 ** np.arange(-2, 6)
"""Default alpha grid of every band, relative to the band's kernel scale: 1e-2 .. 1e5, one value per decade."""
CACHE_BUDGET = 2 ** 29
"""Bytes of inner eigendecompositions kept for reuse across outer folds; above it each is computed when needed."""


@dataclass
class BandedResult:
    """Per-target outcome of banded ridge under nested cross-validation.

    Attributes
    ----------
    scores : ndarray (t,)
        R2 = max(r, 0)^2 of the pooled out-of-fold joint predictions.
    r : ndarray (t,)
    predictions : ndarray (n, t)
        Pooled out-of-fold joint predictions.
    split_r2 : ndarray (n_bands, t)
        Each band's share of R2 (see the module docstring).
    split_r2_mean : ndarray (t,)
        The share of the per-fold training means (the intercept); ``split_r2.sum(0) + split_r2_mean == scores``.
    band_predictions : ndarray (n_bands, n, t)
        Each band's term of the pooled predictions (without the intercept).
    alphas : ndarray (n_folds, n_bands, t)
        Chosen alpha of each band (relative to the band's scale).
    on_edge : ndarray (n_folds, t) of bool
        The chosen tuple has some band's alpha on its grid's edge.
    layer_index : ndarray (n_folds, n_bands, t) of int
        Layer of each band (as given).
    scales : ndarray (n_bands, t)
        Kernel scale of each band's layer (mean over folds), by which its alphas are relative.
    """

    scores: np.ndarray
    r: np.ndarray
    predictions: np.ndarray
    split_r2: np.ndarray
    split_r2_mean: np.ndarray
    band_predictions: np.ndarray
    alphas: np.ndarray
    on_edge: np.ndarray
    layer_index: np.ndarray
    scales: np.ndarray


def kernel_scale(gram: np.ndarray) -> float:
    """Mean eigenvalue of the centred Gram matrix over all stimuli (trace / n); 1 for an all-zero band."""
    n = len(gram)
    centred_trace = np.trace(gram) - gram.sum() / n
    return float(centred_trace / n) if centred_trace > 0 else 1.0


@dataclass(frozen=True)
class CandidateGrid:
    """The product grid of band alphas, mapped to (direction, smallest alpha) candidates.

    Attributes
    ----------
    tuples : ndarray (n_candidates, n_bands)
        Alpha of each band per candidate (product order).
    directions : ndarray (n_directions, n_bands)
        Kernel weights w_b = c / alpha_b of each direction (largest weight 1).
    kernel : ndarray (n_candidates,) of int
        Direction of each candidate.
    alpha : ndarray (n_candidates,)
        Smallest band alpha c of each candidate.
    """

    tuples: np.ndarray
    directions: np.ndarray
    kernel: np.ndarray
    alpha: np.ndarray

    @classmethod
    def from_grids(cls, grids: list[np.ndarray]) -> "CandidateGrid":
        grids = [np.asarray(g, dtype=np.float64) for g in grids]
        for g in grids:
            if g.ndim != 1 or len(g) == 0 or not np.all(np.isfinite(g)) or np.any(g <= 0):
                raise ProtocolError("every band needs a non-empty grid of positive, finite alphas")
        tuples = np.array(list(itertools.product(*grids)), dtype=np.float64)
        smallest = tuples.min(axis=1)
        weights = smallest[:, None] / tuples
        keys = [tuple(np.round(np.log2(w), 9)) for w in weights]
        index: dict[tuple, int] = {}
        kernel = np.array([index.setdefault(k, len(index)) for k in keys])
        first = [keys.index(k) for k in index]
        return cls(tuples, weights[first], kernel, smallest)

    def on_edge(self, chosen: np.ndarray, grids: list[np.ndarray]) -> np.ndarray:
        """Whether candidate ``chosen`` (t,) has some band alpha on its grid's edge."""
        values = self.tuples[chosen]
        return np.any([(values[:, b] == np.min(g)) | (values[:, b] == np.max(g)) for b, g in enumerate(grids)],
                      axis=0)


class _CombinedGrams:
    """``grams[(layers, direction)]`` = sum_b w_b G_b / scale_b, computed when asked for."""

    def __init__(self, band_grams: list[list[np.ndarray]], scales: list[np.ndarray], directions: np.ndarray):
        self.band_grams, self.scales, self.directions = band_grams, scales, directions
        self._sums: dict[tuple[tuple[int, ...], int], np.ndarray] = {}

    def band(self, b: int, layer: int) -> np.ndarray:
        return self.band_grams[b][layer] / self.scales[b][layer]

    def __getitem__(self, key: tuple[tuple[int, ...], int]) -> np.ndarray:
        if key not in self._sums:  # kept: each is asked for once per split over the outer loop
            layers, direction = key
            weights = self.directions[direction]
            self._sums[key] = sum(w * self.band(b, layer) for b, (layer, w) in enumerate(zip(layers, weights)))
        return self._sums[key]


def run_banded(band_grams: list[list[np.ndarray]], band_layers: list[np.ndarray], responses: np.ndarray,
               folds: np.ndarray, backend=None, grids: list[np.ndarray] | None = None,
               inner_score: str = "pooled", target_batch: int | None = None, threads: int | None = 1) -> BandedResult:
    """Banded ridge under the pepino2025 nested cross-validation (alphas chosen per target in the inner CV).

    Parameters
    ----------
    band_grams : list (bands) of list (layers) of ndarray (n, n)
        Gram matrices ``X X^T`` of each band's layers.
    band_layers : list (bands) of ndarray (n_folds, t) of int
        The layer of each band per outer fold and target.
    responses : ndarray (n, t)
    folds : ndarray (n,)
    backend : NumpyBackend or TorchBackend
    grids : list of ndarray, optional
        Each band's alpha grid relative to its kernel scale (default :data:`BAND_ALPHAS` for every band).
    inner_score : {"pooled", "fold-mean-r"}
        As in :func:`brainlike.align.pepino2025.run_pepino2025`.
    target_batch : int, optional
        Targets whose inner grid is scored together.
    threads : int or None
        Host threads (BLAS and CPU torch) inside the engine (:func:`brainlike.align.backend.host_threads`); the
        default 1: the engine's calls are small (kernels of the training stimuli, one layer group of targets), where
        one thread is fastest, and several times faster than two on a loaded machine. ``None``: leave as set.
    """
    backend = backend or NumpyBackend()
    with host_threads(backend, threads):
        return _run_banded(band_grams, band_layers, responses, folds, backend, grids, inner_score, target_batch)


def _run_banded(band_grams, band_layers, responses, folds, backend, grids, inner_score, target_batch) -> BandedResult:
    if inner_score not in INNER_SCORES:
        raise ValueError(f"unknown inner score {inner_score!r}")
    n_bands = len(band_grams)
    if n_bands < 1 or len(band_layers) != n_bands:
        raise ProtocolError("banded ridge needs one list of Gram matrices and one layer choice per band")
    responses = np.asarray(responses, dtype=np.float64)
    n, n_targets = responses.shape
    folds = check_folds(folds, n)
    fold_values = np.unique(folds)
    grids = [np.asarray(g, dtype=np.float64) for g in (grids or [BAND_ALPHAS] * n_bands)]
    if len(grids) != n_bands:
        raise ProtocolError(f"{len(grids)} alpha grids for {n_bands} bands")
    grid = CandidateGrid.from_grids(grids)
    scales = [np.array([kernel_scale(g) for g in layers]) for layers in band_grams]
    combined = _CombinedGrams(band_grams, scales, grid.directions)
    layer_index = np.stack([np.asarray(l, dtype=int).reshape(len(fold_values), n_targets) for l in band_layers], 1)
    n_groups = len({tuple(c) for o in range(len(fold_values)) for c in layer_index[o].T})
    n_train = n - n // len(fold_values)
    uses = 2 if n_groups * len(grid.directions) * 10 * n_train ** 2 * 8 < CACHE_BUDGET else 1
    spectra = SpectrumCache(combined)

    band_predictions = np.zeros((n_bands, n, n_targets))
    means = np.zeros((n, n_targets))
    alphas = np.zeros((len(fold_values), n_bands, n_targets))
    on_edge = np.zeros((len(fold_values), n_targets), dtype=bool)
    for o, outer in enumerate(fold_values):
        train, test = np.flatnonzero(folds != outer), np.flatnonzero(folds == outer)
        shift = responses[train].mean(axis=0)
        groups: dict[tuple[int, ...], list[int]] = {}
        for t, layers in enumerate(map(tuple, layer_index[o].T)):
            groups.setdefault(layers, []).append(t)
        for layers, members in groups.items():
            cols = np.array(members)
            keys = [(layers, d) for d in range(len(grid.directions))]
            search = InnerSearch(spectra, keys, grid.kernel, grid.alpha, folds, outer, backend, inner_score,
                                 uses=uses)
            y_train = backend.asarray(responses[np.ix_(train, cols)] - shift[cols])
            chosen = np.argmax(search.grid_scores(y_train, target_batch), axis=0)
            alphas[o][:, cols] = grid.tuples[chosen].T
            on_edge[o, cols] = grid.on_edge(chosen, grids)
            terms = _refit_bands(combined, layers, grid, chosen, train, test, y_train, backend)
            band_predictions[:, test[:, None], cols[None, :]] = terms
            means[np.ix_(test, cols)] = shift[cols] + backend.to_numpy(y_train.mean(0))[None, :]
    predictions = means + band_predictions.sum(axis=0)
    r, split, split_mean = split_correlations(predictions, band_predictions, means, responses)
    scale_per_target = np.stack([scales[b][layer_index[:, b]].mean(axis=0) for b in range(n_bands)])
    return BandedResult(np.maximum(r, 0) ** 2, r, predictions, split, split_mean, band_predictions, alphas, on_edge,
                        layer_index, scale_per_target)


def _refit_bands(combined: _CombinedGrams, layers: tuple[int, ...], grid: CandidateGrid, chosen: np.ndarray,
                 train: np.ndarray, test: np.ndarray, y_train, backend) -> np.ndarray:
    """Each band's term of the test predictions (n_bands, n_test, t) of the refit on all training rows."""
    n_bands = len(layers)
    out = np.zeros((n_bands, len(test), len(chosen)))
    band_tests = [centered_kernels(combined.band(b, layer), train, test)[1] for b, layer in enumerate(layers)]
    for direction in np.unique(grid.kernel[chosen]):
        cols = np.flatnonzero(grid.kernel[chosen] == direction)
        spectrum = split_spectrum(combined[(layers, int(direction))], train, test)
        factors = shrinkage(spectrum.values, grid.alpha[chosen[cols]]).T  # (r, t)
        weighted = (backend.asarray(spectrum.train_operator) @ y_train[:, cols]) * backend.asarray(factors)
        for b in range(n_bands):
            proj = grid.directions[direction, b] * band_tests[b] @ spectrum.vectors  # (n_test, r)
            out[b][:, cols] = backend.to_numpy(backend.asarray(proj) @ weighted)
    return out


def split_correlations(predictions: np.ndarray, band_predictions: np.ndarray, means: np.ndarray,
                       responses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pearson r of the pooled predictions, each band's share of R2 (r_b * r, 0 where r <= 0) and the mean's.

    r_x = cov(term_x, y) / (sd(prediction) sd(y)) over the pooled stimuli, so that sum_b r_b + r_mean = r.
    """
    y = responses - responses.mean(0)
    pred = predictions - predictions.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.sqrt((pred * pred).sum(0) * (y * y).sum(0))
        norm = np.where(norm > 0, norm, np.inf)
        shares = np.einsum("bnt,nt->bt", band_predictions - band_predictions.mean(1, keepdims=True), y) / norm
        mean_share = ((means - means.mean(0)) * y).sum(0) / norm
    r = shares.sum(0) + mean_share
    positive = r > 0
    return r, np.where(positive, shares * r, 0.0), np.where(positive, mean_share * r, 0.0)


def check_time_bases(bases: dict[str, np.ndarray], tolerance: float = 1e-6) -> None:
    """Refuse bands of a time-resolved (``trf``) banded fit whose time bases differ.

    Every band's design rows must be the same (stimulus, bin) pairs: the same bin start times (seconds) at the
    same rate. The trf variant calls this with each band's bin times before lagging.

    Raises
    ------
    ProtocolError
        Naming the two bands and their bins (count, first start, rate).
    """
    def describe(times: np.ndarray) -> str:
        rate = 1.0 / np.median(np.diff(times)) if len(times) > 1 else float("nan")
        return f"{len(times)} bins from {times[0]:.3f} s at {rate:.4g} Hz" if len(times) else "no bins"

    items = [(name, np.asarray(times, dtype=np.float64)) for name, times in bases.items()]
    reference_name, reference = items[0]
    for name, times in items[1:]:
        if times.shape != reference.shape or not np.allclose(times, reference, rtol=0, atol=tolerance):
            raise ProtocolError(f"bands {reference_name!r} and {name!r} have different time bases "
                                f"({describe(reference)} vs {describe(times)}); put every band on the same bins "
                                "(the same --rate and response window) first")
