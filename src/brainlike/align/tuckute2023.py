"""Regression protocol ``tuckute2023`` (Tuckute et al. 2023, repository gretatuckute/auditory_brain_dnn), batched.

* 10 random splits of the stimuli into 83 train / 82 test (``numpy.random.default_rng(0)``; the first 83 of each
  permutation train), one split shared by all targets.
* Per target, ridge alpha chosen among 10^k, k = -50..49, by leave-one-out (generalised CV) mean squared error on
  the training stimuli, with an unpenalised intercept (as ``sklearn.linear_model.RidgeCV`` with
  ``alpha_per_target``); ties go to the smaller alpha.
* Test score: Pearson r of predictions, 0 if negative or if the prediction is constant, squared.
* Noise correction per target (targets with >= 2 repetitions): models are also fitted to each repetition alone;
  r_v = median pairwise correlation between repetitions on the training stimuli, r_pred = median pairwise
  correlation of the per-repetition models' test predictions; both Spearman-Brown corrected (k = 3: 3r / (1 + 2r);
  in general k r / (1 + (k - 1) r)) and floored at 0.182 and 0.183; corrected R2 = R2 / (r_v r_pred).
  Components (one repetition) are scored without correction.
* Layer choice: 10 times, split the 10 splits 5/5 at random (seed 0): the median over one half picks the layer per
  target, the median over the other half at that layer is its score, clipped at 1; median over targets within a
  subject; mean over the 10 iterations; mean over subjects, with the SEM across subjects.

LOO errors are computed in the (n - 1)-dimensional centred subspace from one eigendecomposition per split and layer;
for each alpha the LOO residual r_i / (1 - H_ii) is invariant to a common scale of the shrinkage factors, which are
therefore normalised in float64 before use, so alphas of 1e-50..1e49 stay exact in float32. Consecutive alphas whose
normalised factors agree to 1e-10 give the same LOO errors to that precision and are evaluated once (the smallest
stands for the group, as a strict-improvement scan in ascending order would pick it).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
from scipy.linalg import null_space

from brainlike.align.ridge import NULL_TOLERANCE, centered_kernels, predict_per_target, split_spectrum
from brainlike.errors import ProtocolError

__all__ = ["ALPHAS", "N_SPLITS", "N_TRAIN", "N_ITERATIONS", "FLOOR_DATA", "FLOOR_PRED", "parameters", "make_splits",
           "LooSolver", "spearman_brown", "split_scores", "split_half_selection", "run_tuckute2023"]

ALPHAS = 10.0 ** np.arange(-50, 50)
N_SPLITS, N_TRAIN = 10, 83
N_ITERATIONS = 10
FLOOR_DATA, FLOOR_PRED = 0.182, 0.183


def parameters() -> dict[str, Any]:
    return {"splits": N_SPLITS, "n_train": N_TRAIN, "split_seed": 0, "alphas": "10^k, k=-50..49",
            "alpha_choice": "leave-one-out MSE per target (GCV), unpenalised intercept",
            "noise_correction": f"Spearman-Brown, floors {FLOOR_DATA}/{FLOOR_PRED}",
            "layer_selection": f"split-half over splits, {N_ITERATIONS} iterations, seed 0, clip at 1"}


def make_splits(n: int, n_splits: int = N_SPLITS, n_train: int | None = None, seed: int = 0) -> list[np.ndarray]:
    """Boolean train masks of ``n_splits`` random splits (first ``n_train`` of each permutation train)."""
    n_train = n_train if n_train is not None else (N_TRAIN if n == 165 else int(round(n * N_TRAIN / 165)))
    if n_train < 3 or n - n_train < 3:
        raise ProtocolError(f"tuckute2023 needs at least 3 train and 3 test stimuli; got {n} stimuli")
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(n_splits):
        mask = np.zeros(n, dtype=bool)
        mask[rng.permutation(n)[:n_train]] = True
        masks.append(mask)
    return masks


class LooSolver:
    """Leave-one-out alpha choice for one split and layer (centred subspace eigenbasis)."""

    def __init__(self, gram: np.ndarray, train: np.ndarray, backend) -> None:
        k_train, _ = centered_kernels(gram, train, train[:1])
        basis = null_space(np.ones((1, len(train))))  # (n, n-1) orthonormal, orthogonal to the constant
        values, vectors = np.linalg.eigh(basis.T @ k_train @ basis)
        tol = NULL_TOLERANCE * len(values) * np.finfo(np.float64).eps * max(values.max(), 0.0)
        self.values = np.where(values > tol, values, 0.0)
        self.mixing = basis @ vectors  # (n, n-1)
        self.backend = backend

    def factors(self, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised shrinkage factors g/max(g) (n_alpha, n-1) and the representative alpha index per group."""
        g = alphas[:, None] / (self.values[None, :] + alphas[:, None])
        g = g / g.max(axis=1, keepdims=True)
        keep = [0]
        for a in range(1, len(alphas)):
            if np.abs(g[a] - g[keep[-1]]).max() > 1e-10:
                keep.append(a)
        return g, np.array(keep)

    def best_alphas(self, y_train, alphas: np.ndarray = ALPHAS) -> np.ndarray:
        """Alpha (per column of y_train) with the smallest LOO mean squared error; first in order on ties."""
        b = self.backend
        g, keep = self.factors(alphas)
        mixing = b.asarray(self.mixing)
        z = mixing.T @ y_train  # (n-1, t): centring is implicit (basis orthogonal to the constant)
        squared = b.asarray(self.mixing ** 2)
        best_mse, best = None, None
        for a in keep:
            ga = b.asarray(g[a])
            residual = mixing @ (ga[:, None] * z)  # (n, t)
            diag = squared @ ga  # (n,)
            mse = ((residual / diag[:, None]) ** 2).mean(0)
            mse = b.to_numpy(mse).astype(np.float64)
            if best_mse is None:
                best_mse, best = mse, np.zeros(len(mse), dtype=int)
            else:
                better = mse < best_mse
                best_mse = np.where(better, mse, best_mse)
                best = np.where(better, a, best)
        return alphas[best]


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """r between matching columns; 0 where a column of ``a`` (the prediction) is constant."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    constant = np.sqrt((a * a).sum(0)) <= 1e-13 * np.maximum(np.abs(a).max(0), 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1), 0.0)
    return np.where(constant, 0.0, r)


def spearman_brown(r: np.ndarray, k: int = 3) -> np.ndarray:
    """Spearman-Brown prophecy for k repetitions: k r / (1 + (k - 1) r)."""
    return k * r / (1 + (k - 1) * r)


def split_scores(grams: list[np.ndarray], responses: np.ndarray, train_mask: np.ndarray, backend
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Raw and noise-corrected R2 (n_layers, t) of one split.

    responses: (n, t, reps) with reps >= 1 (NaN repetitions are not supported here).
    """
    train, test = np.flatnonzero(train_mask), np.flatnonzero(~train_mask)
    n_reps = responses.shape[2]
    mean = responses.mean(axis=2)
    sets = [mean] + ([responses[:, :, k] for k in range(n_reps)] if n_reps > 1 else [])
    stacked = np.concatenate(sets, axis=1)  # (n, t * n_sets)
    t = mean.shape[1]
    raw = np.zeros((len(grams), t))
    corrected = np.zeros((len(grams), t))
    if n_reps > 1:
        pairs = list(combinations(range(n_reps), 2))
        rv = np.nanmedian([_pearson_columns(responses[train, :, i], responses[train, :, j]) for i, j in pairs], 0)
        rv = np.fmax(spearman_brown(rv, n_reps), FLOOR_DATA)
    for layer, gram in enumerate(grams):
        y_train = backend.asarray(stacked[train])
        alphas = LooSolver(gram, train, backend).best_alphas(y_train)
        spectrum = split_spectrum(gram, train, test)
        preds = backend.to_numpy(predict_per_target(spectrum, y_train, alphas, backend)).astype(np.float64)
        r = np.maximum(_pearson_columns(preds[:, :t], mean[test]), 0.0)
        raw[layer] = r ** 2
        if n_reps > 1:
            rep_preds = [preds[:, t * (k + 1): t * (k + 2)] for k in range(n_reps)]
            rp = np.nanmedian([_pearson_columns(rep_preds[i], rep_preds[j]) for i, j in pairs], 0)
            rp = np.fmax(spearman_brown(rp, n_reps), FLOOR_PRED)
            corrected[layer] = raw[layer] / (rv * rp)
        else:
            corrected[layer] = raw[layer]
    return raw, corrected


def split_half_selection(scores: np.ndarray, n_iterations: int = N_ITERATIONS, seed: int = 0
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Split-half layer choice over splits.

    Parameters
    ----------
    scores : ndarray (n_splits, n_layers, t)

    Returns
    -------
    values : ndarray (n_iterations, t)
        Held-out-half median at the chosen layer, clipped at 1.
    layers : ndarray (n_iterations, t) of int
    """
    n_splits = scores.shape[0]
    rng = np.random.default_rng(seed)
    values, layers = [], []
    for _ in range(n_iterations):
        order = rng.permutation(n_splits)
        pick, held = order[: n_splits // 2], order[n_splits // 2:]
        chosen = np.argmax(np.median(scores[pick], axis=0), axis=0)
        held_median = np.median(scores[held], axis=0)[chosen, np.arange(scores.shape[2])]
        values.append(np.minimum(held_median, 1.0))
        layers.append(chosen)
    return np.array(values), np.array(layers)


def run_tuckute2023(grams: list[np.ndarray], responses: np.ndarray, backend, seed: int = 0
                    ) -> dict[str, np.ndarray]:
    """All splits and layers: raw/corrected R2 (n_splits, n_layers, t) and the split-half selection."""
    responses = np.asarray(responses, dtype=np.float64)
    if np.isnan(responses).any():
        raise ProtocolError("tuckute2023 needs complete repetitions (no NaN); restrict to targets with all reps")
    masks = make_splits(responses.shape[0], seed=seed)
    raw, corrected = zip(*[split_scores(grams, responses, m, backend) for m in masks])
    raw, corrected = np.array(raw), np.array(corrected)
    values, layers = split_half_selection(corrected, seed=seed)
    raw_values, _ = split_half_selection(raw, seed=seed)
    return {"raw": raw, "corrected": corrected, "values": values, "layers": layers, "raw_values": raw_values}
