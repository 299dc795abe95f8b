"""Regression protocol ``pepino2025`` (Pepino et al. 2025, repository mrpep/braindnn), batched over targets.

Outer loop: the fixed folds (each the test set once). Inner loop: on the other folds, leave one fold out; every
(alpha, layer) pair of the grid is scored per target by max(r, 0)^2 of the pooled inner out-of-fold predictions. The
grid is alpha-major then layers in model order; ties go to the first pair in grid order. While a target's best alpha
lies on the current edge of its alpha range, (alpha / 2 or alpha * 2, same layer) is appended to its grid and scored,
and the pick is redone (appended pairs win only when strictly better); the range stops growing where alpha / 2 would
fall below 1e-49 or alpha * 2 exceed 1e50. The chosen pair is refitted on all outer-training stimuli; out-of-fold
predictions are pooled over the outer folds and scored by R2 = max(r, 0)^2.

The inner search is :class:`brainlike.align.inner_cv.InnerSearch` (one matrix product per inner split for the whole
(alpha, layer) grid of a batch of targets); one eigendecomposition per layer and training set
(:class:`~brainlike.align.ridge.SpectrumCache`: the inner split holding out fold s inside outer fold o trains on the
same stimuli as the one holding out o inside s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainlike.align.backend import NumpyBackend, host_threads
from brainlike.align.inner_cv import INNER_SCORES, InnerSearch
from brainlike.align.ridge import Spectrum, SpectrumCache, shrinkage
from brainlike.errors import ProtocolError

__all__ = ["ALPHAS", "ALPHA_LIMITS", "RegressionResult", "check_folds", "run_pepino2025"]

ALPHAS = np.array([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 50.0])
ALPHA_LIMITS = (1e-49, 1e50)
EXTENSION_BLOCK = 16
"""Most edge-extension steps scored together (one batched evaluation instead of one per step)."""

@dataclass
class RegressionResult:
    """Per-target outcome of a regression protocol.

    Attributes
    ----------
    scores : ndarray (t,)
        R2 = max(r, 0)^2 of pooled out-of-fold predictions.
    r : ndarray (t,)
        Pearson r of pooled predictions.
    layer_index : ndarray (n_folds, t) of int
        Chosen layer per outer fold and target.
    alpha : ndarray (n_folds, t)
        Chosen alpha per outer fold and target.
    predictions : ndarray (n_stimuli, t)
        Pooled out-of-fold predictions.
    """

    scores: np.ndarray
    r: np.ndarray
    layer_index: np.ndarray
    alpha: np.ndarray
    predictions: np.ndarray


def check_folds(folds: np.ndarray, n_stimuli: int, protocol: str = "pepino2025") -> np.ndarray:
    """Fold labels checked for nested cross-validation: one per stimulus, at least 3 folds of at least 2."""
    folds = np.asarray(folds)
    if folds.shape != (n_stimuli,):
        raise ProtocolError(f"{len(folds)} fold labels for {n_stimuli} stimuli")
    values, counts = np.unique(folds, return_counts=True)
    if len(values) < 3:
        raise ProtocolError(f"{protocol} needs at least 3 folds (outer + leave-one-fold-out inner); got {len(values)}")
    if counts.min() < 2:
        raise ProtocolError(f"fold {values[np.argmin(counts)]} has {counts.min()} stimulus; every fold needs >= 2")
    return folds


def run_pepino2025(grams: list[np.ndarray], responses: np.ndarray, folds: np.ndarray, backend=None,
                   alphas: np.ndarray = ALPHAS, limits: tuple[float, float] = ALPHA_LIMITS,
                   target_batch: int | None = None, inner_score: str = "pooled",
                   threads: int | None = 1) -> RegressionResult:
    """Run the pepino2025 protocol.

    Parameters
    ----------
    grams : list of ndarray (n, n)
        Gram matrix ``X X^T`` of each layer (model order).
    responses : ndarray (n, t)
        Targets (mean over repetitions).
    folds : ndarray (n,)
        Fold label per stimulus.
    backend : NumpyBackend or TorchBackend
    inner_score : {"pooled", "fold-mean-r"}
        ``pooled`` (the protocol): max(r, 0)^2 of inner predictions pooled over the inner folds. ``fold-mean-r``:
        the mean over inner folds of each fold's Pearson r (what himalaya's KernelRidgeCV with ``correlation_score``
        maximises; used by the benchmark to compare both engines on the same problem).
    target_batch : int, optional
        Targets whose inner grid is scored together (bounds memory: about layers x alphas x stimuli x target_batch
        values); by default :func:`~brainlike.align.inner_cv.default_target_batch`.
    threads : int or None
        Host threads (BLAS and CPU torch) inside the engine (:func:`brainlike.align.backend.host_threads`); the
        default 1 is fastest for these small calls on a shared machine (26,792 targets on a 2-core machine under
        load: 8 s on one thread, 54 s on two). ``None``: leave as set.
    """
    backend = backend or NumpyBackend()
    with host_threads(backend, threads):
        return _run_pepino2025(grams, responses, folds, backend, alphas, limits, target_batch, inner_score)


def _run_pepino2025(grams, responses, folds, backend, alphas, limits, target_batch, inner_score) -> RegressionResult:
    if inner_score not in INNER_SCORES:
        raise ValueError(f"unknown inner score {inner_score!r}")
    responses = np.asarray(responses, dtype=np.float64)
    n, n_targets = responses.shape
    folds = check_folds(folds, n)
    fold_values = np.unique(folds)
    alphas = np.asarray(alphas, dtype=np.float64)
    spectra = SpectrumCache(grams)
    predictions = np.zeros((n, n_targets))
    layer_index = np.zeros((len(fold_values), n_targets), dtype=int)
    alpha = np.zeros((len(fold_values), n_targets))
    for o, outer in enumerate(fold_values):
        train, test = np.flatnonzero(folds != outer), np.flatnonzero(folds == outer)
        inner = _LayerSearch(spectra, len(grams), alphas, folds, outer, backend, inner_score)
        outer_spectra = [spectra.get(layer, train, test, uses=1) for layer in range(len(grams))]
        shift = responses[train].mean(axis=0)
        y_train = backend.asarray(responses[train] - shift)
        best_layer, best_alpha = inner.search(y_train, limits, target_batch)
        layer_index[o], alpha[o] = best_layer, best_alpha
        predictions[test] = refit_predictions(outer_spectra, y_train, best_layer, best_alpha, backend) + shift
    r = backend.to_numpy(backend.column_pearson(backend.asarray(predictions), backend.asarray(responses)))
    r = np.asarray(r, dtype=np.float64)
    return RegressionResult(np.maximum(r, 0) ** 2, r, layer_index, alpha, predictions)


def refit_predictions(spectra: list[Spectrum], y_train, best_layer: np.ndarray, best_alpha: np.ndarray,
                      backend) -> np.ndarray:
    """Test predictions (n_test, t) of the refit on all training rows, one (layer, alpha) per target."""
    out = np.zeros((spectra[0].test_proj.shape[0], len(best_layer)))
    for layer in np.unique(best_layer):
        cols = np.flatnonzero(best_layer == layer)
        spectrum = spectra[layer]
        y = y_train[:, cols]
        factors = shrinkage(spectrum.values, best_alpha[cols]).T  # (r, t) float64
        weighted = (backend.asarray(spectrum.train_operator) @ y) * backend.asarray(factors)
        out[:, cols] = backend.to_numpy(backend.asarray(spectrum.test_proj) @ weighted + y.mean(0))
    return out


class _LayerSearch(InnerSearch):
    """The pepino2025 inner search: the (alpha, layer) grid, alpha-major, then the edge extension."""

    def __init__(self, spectra: SpectrumCache, n_layers: int, alphas: np.ndarray, folds: np.ndarray, outer,
                 backend, inner_score: str) -> None:
        self.n_layers = n_layers
        self.alphas = alphas
        super().__init__(spectra, range(n_layers), np.tile(np.arange(n_layers), len(alphas)),
                         np.repeat(alphas, n_layers), folds, outer, backend, inner_score)

    def search(self, y, limits: tuple[float, float], target_batch: int | None = None):
        """Best (layer, alpha) per target for centred training targets ``y`` (backend array).

        Edge extension in blocks of steps (1, 2, 4, ... up to ``EXTENSION_BLOCK``): a target whose best alpha is
        the grid's smallest (largest) keeps halving (doubling) it while each new alpha scores strictly better than
        the best so far; the steps of a block are scored together, and the target keeps the last alpha of the first
        run of strict improvements, which is what stepping one alpha at a time gives.
        """
        alphas = self.alphas
        n_targets = y.shape[1]
        flat = self.grid_scores(y, target_batch)  # alpha-major, then layers
        best = np.argmax(flat, axis=0)
        best_score = flat[best, np.arange(n_targets)]
        best_alpha = alphas[best // self.n_layers].copy()
        best_layer = best % self.n_layers
        step = np.where(best_alpha == alphas.min(), 0.5, np.where(best_alpha == alphas.max(), 2.0, 0.0))
        active = (step > 0) & (best_alpha * step >= limits[0]) & (best_alpha * step <= limits[1])
        projected: dict[int, list] = {}  # per layer: the splits' projections of all targets (alpha-free)
        block = 1
        while active.any():
            idx = np.flatnonzero(active)
            steps = np.arange(1, block + 1)[:, None]
            candidates = best_alpha[idx] * step[idx] ** steps  # (block, n_active), exact powers of two
            valid = (candidates >= limits[0]) & (candidates <= limits[1])
            scores = np.zeros(candidates.shape)
            for layer in np.unique(best_layer[idx]):
                sel = np.flatnonzero(best_layer[idx] == layer)
                cols = idx[sel]
                if layer not in projected:
                    projected[layer] = self.projections(y, int(layer))
                scores[:, sel] = self.scores_for_alphas(y[:, cols], [p[:, cols] for p in projected[layer]],
                                                        int(layer), candidates[:, sel])
            previous = np.concatenate([best_score[idx][None], scores[:-1]])
            accepted = np.cumprod(valid & (scores > previous), axis=0).sum(axis=0)  # length of the improving run
            moved = accepted > 0
            best_alpha[idx[moved]] = candidates[accepted[moved] - 1, moved]
            best_score[idx[moved]] = scores[accepted[moved] - 1, moved]
            active[:] = False
            more = idx[accepted == block]
            block = min(2 * block, EXTENSION_BLOCK)
            active[more] = (best_alpha[more] * step[more] >= limits[0]) & (best_alpha[more] * step[more] <= limits[1])
        return best_layer, best_alpha
