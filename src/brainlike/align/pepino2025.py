"""Regression protocol ``pepino2025`` (Pepino et al. 2025, repository mrpep/braindnn), batched over targets.

Outer loop: the fixed folds (each the test set once). Inner loop: on the other folds, leave one fold out; every
(alpha, layer) pair of the grid is scored per target by max(r, 0)^2 of the pooled inner out-of-fold predictions. The
grid is alpha-major then layers in model order; ties go to the first pair in grid order. While a target's best alpha
lies on the current edge of its alpha range, (alpha / 2 or alpha * 2, same layer) is appended to its grid and scored,
and the pick is redone (appended pairs win only when strictly better); the range stops growing where alpha / 2 would
fall below 1e-49 or alpha * 2 exceed 1e50. The chosen pair is refitted on all outer-training stimuli; out-of-fold
predictions are pooled over the outer folds and scored by R2 = max(r, 0)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainlike.align.backend import NumpyBackend
from brainlike.align.ridge import Spectrum, predict_alphas, predict_per_target, split_spectrum
from brainlike.errors import ProtocolError

__all__ = ["ALPHAS", "ALPHA_LIMITS", "FLOAT32_SAFE_ALPHA", "RegressionResult", "check_folds", "run_pepino2025"]

ALPHAS = np.array([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 50.0])
ALPHA_LIMITS = (1e-49, 1e50)
FLOAT32_SAFE_ALPHA = 1e30


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
                   target_batch: int = 8192, inner_score: str = "pooled") -> RegressionResult:
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
    target_batch : int
        Targets processed together (bounds memory: n_alpha x n x target_batch values per layer).
    """
    backend = backend or NumpyBackend()
    responses = np.asarray(responses, dtype=np.float64)
    n, n_targets = responses.shape
    folds = check_folds(folds, n)
    fold_values = np.unique(folds)
    predictions = np.zeros((n, n_targets))
    layer_index = np.zeros((len(fold_values), n_targets), dtype=int)
    alpha = np.zeros((len(fold_values), n_targets))
    for o, outer in enumerate(fold_values):
        train, test = np.flatnonzero(folds != outer), np.flatnonzero(folds == outer)
        inner = _InnerSearch(grams, folds[train], train, backend, inner_score)
        outer_spectra = [split_spectrum(g, train, test) for g in grams]
        for start in range(0, n_targets, target_batch):
            cols = slice(start, min(start + target_batch, n_targets))
            y_train = responses[train, cols]
            best_layer, best_alpha = inner.search(y_train, np.asarray(alphas, float), limits)
            layer_index[o, cols], alpha[o, cols] = best_layer, best_alpha
            predictions[test, cols] = _refit(outer_spectra, backend.asarray(y_train), best_layer, best_alpha,
                                             backend)
    r = backend.to_numpy(backend.column_pearson(backend.asarray(predictions), backend.asarray(responses)))
    r = np.asarray(r, dtype=np.float64)
    return RegressionResult(np.maximum(r, 0) ** 2, r, layer_index, alpha, predictions)


def _refit(spectra: list[Spectrum], y_train, best_layer: np.ndarray, best_alpha: np.ndarray, backend) -> np.ndarray:
    out = np.zeros((spectra[0].test_proj.shape[0], len(best_layer)))
    for layer in np.unique(best_layer):
        cols = np.flatnonzero(best_layer == layer)
        preds = predict_per_target(spectra[layer], y_train[:, cols], best_alpha[cols], backend)
        out[:, cols] = backend.to_numpy(preds)
    return out


class _InnerSearch:
    """Leave-one-fold-out search over (alpha, layer) on the outer-training stimuli."""

    def __init__(self, grams: list[np.ndarray], inner_folds: np.ndarray, train: np.ndarray, backend,
                 inner_score: str = "pooled") -> None:
        if inner_score not in ("pooled", "fold-mean-r"):
            raise ValueError(f"unknown inner score {inner_score!r}")
        self.inner_score = inner_score
        self.backend = backend
        self.n_layers = len(grams)
        self.splits = []  # (inner train positions, inner test positions) within the outer-training rows
        for fold in np.unique(inner_folds):
            self.splits.append((np.flatnonzero(inner_folds != fold), np.flatnonzero(inner_folds == fold)))
        # spectra[layer][split]
        self.spectra = [[split_spectrum(g, train[tr], train[te]) for tr, te in self.splits] for g in grams]
        self.order = np.concatenate([te for _, te in self.splits])

    def scores(self, y, layer: int, alphas: np.ndarray):
        """max(r, 0)^2 of pooled inner predictions, (n_alpha, t) backend array, for one layer."""
        scale = self.common_scale(layer, alphas)
        pooled = [predict_alphas(self.spectra[layer][s], y[tr], alphas, self.backend, scale)
                  for s, (tr, _) in enumerate(self.splits)]
        preds = self.backend.torch.cat(pooled, 1) if self.backend.name == "torch" else np.concatenate(pooled, 1)
        stack = self.backend.torch.stack if self.backend.name == "torch" else np.stack
        if self.inner_score == "fold-mean-r":
            per_fold = [stack([self.backend.column_pearson(p[a], y[te]) for a in range(len(alphas))])
                        for p, (_, te) in zip(pooled, self.splits)]
            return sum(per_fold) / len(per_fold)
        truth = y[self.order]
        r = stack([self.backend.column_pearson(preds[a], truth) for a in range(len(alphas))])
        return (r * (r > 0)) ** 2

    def common_scale(self, layer: int, alphas: np.ndarray) -> np.ndarray:
        """Per-alpha scale for float32 backends: for alphas above 1e30, whose shrinkage factors 1 / (s + alpha)
        would underflow float32, 1 / (largest factor over the pooled folds); else 1 (unscaled arithmetic agrees best
        with the float64 reference). Every pooled fold's predictions change by the same constant, so correlations
        do not change."""
        alphas = np.asarray(alphas, dtype=np.float64)
        if self.backend.name == "numpy":  # float64 reference: unscaled, the same arithmetic as scikit-learn
            return np.ones_like(alphas)
        smallest = min(sp.values.min() for sp in self.spectra[layer])
        return np.where(alphas > FLOAT32_SAFE_ALPHA, smallest + alphas, 1.0)

    def scores_per_target(self, y, layer: int, alpha_per_target: np.ndarray):
        """max(r, 0)^2 of pooled inner predictions, (t,), with one alpha per target (one matmul per split)."""
        b = self.backend
        scale = self.common_scale(layer, alpha_per_target)
        pooled = []
        for s, (tr, _) in enumerate(self.splits):
            spectrum = self.spectra[layer][s]
            y_tr = y[tr]
            mean = y_tr.mean(0)
            projected = b.asarray(spectrum.vectors.T) @ (y_tr - mean)  # (r, t)
            factors = scale[None, :] / (spectrum.values[:, None] + alpha_per_target[None, :])  # float64 (r, t)
            pooled.append(b.asarray(spectrum.test_proj) @ (b.asarray(factors) * projected) + mean)
        if self.inner_score == "fold-mean-r":
            return sum(b.column_pearson(p, y[te]) for p, (_, te) in zip(pooled, self.splits)) / len(pooled)
        preds = b.torch.cat(pooled, 0) if b.name == "torch" else np.concatenate(pooled, 0)
        r = b.column_pearson(preds, y[self.order])
        return (r * (r > 0)) ** 2

    def search(self, y_train: np.ndarray, alphas: np.ndarray, limits: tuple[float, float]):
        y = self.backend.asarray(y_train)
        n_targets = y_train.shape[1]
        grid = np.stack([self.backend.to_numpy(self.scores(y, layer, alphas)) for layer in range(self.n_layers)],
                        axis=1).astype(np.float64)  # (n_alpha, n_layers, t)
        flat = np.nan_to_num(grid.reshape(-1, n_targets), nan=0.0)
        best = np.argmax(flat, axis=0)
        best_score = flat[best, np.arange(n_targets)]
        best_alpha = alphas[best // self.n_layers].copy()
        best_layer = best % self.n_layers
        low = np.full(n_targets, alphas.min())
        high = np.full(n_targets, alphas.max())
        while True:
            at_low, at_high = best_alpha == low, best_alpha == high
            active = (at_low | at_high) & (best_alpha / 2 >= limits[0]) & (best_alpha * 2 <= limits[1])
            if not active.any():
                break
            new_alpha = np.where(at_low, best_alpha / 2, best_alpha * 2)
            low = np.where(active & at_low, new_alpha, low)
            high = np.where(active & ~at_low & at_high, new_alpha, high)
            idx = np.flatnonzero(active)
            for layer in np.unique(best_layer[idx]):
                cols = idx[best_layer[idx] == layer]
                score = self.backend.to_numpy(self.scores_per_target(y[:, cols], int(layer), new_alpha[cols]))
                score = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0)
                better = score > best_score[cols]
                best_score[cols[better]] = score[better]
                best_alpha[cols[better]] = new_alpha[cols[better]]
        return best_layer, best_alpha
