"""Regression protocol ``tuckute2023`` (Tuckute et al. 2023, repository gretatuckute/auditory_brain_dnn), batched.

* 10 random splits of the stimuli into 83 train / 82 test (``numpy.random.default_rng(0)``; the first 83 of each
  permutation train), one split shared by all targets.
* Per target, ridge alpha chosen among 10^k, k = -50..49, by leave-one-out (generalised CV) mean squared error on
  the training stimuli, with an unpenalised intercept. As in the original (``sklearn.linear_model.RidgeCV`` given
  the alphas from 10^49 down, keeping the first minimum), the scan runs from the largest alpha down and ties go to
  the larger alpha: an alpha replaces the current best only if its LOO error is lower by more than
  ``TIE_TOLERANCE`` times the LOO error of the intercept-only model. A target whose LOO error falls towards the
  intercept-only limit as alpha grows (no usable signal) therefore keeps the largest alpha: its prediction is the
  training mean and its r is 0.
* Test score: Pearson r of predictions, 0 if negative or if the prediction is constant, squared.
* Noise correction per target (targets with >= 2 repetitions): models are also fitted to each repetition alone;
  r_v = median pairwise correlation between repetitions on the training stimuli, r_pred = median pairwise
  correlation of the per-repetition models' test predictions; a correlation with a constant series is NaN and the
  medians skip it (``nanmedian``); both Spearman-Brown corrected (k = 3: 3r / (1 + 2r); in general
  k r / (1 + (k - 1) r)) and floored at 0.182 and 0.183 (a NaN median gives the floor); corrected R2 =
  R2 / (r_v r_pred). A median below -1/(k - 1) (-0.5 for k = 3) lies past the formula's pole and gives a value
  above 1, which shrinks the corrected R2: the original's arithmetic is kept, such cells are counted
  (``pole``) and a warning is issued. Components (one repetition) are scored without correction.
* Layer choice, as the original's ``select_r2_test_CV_splits_nit``: in iteration i (numpy's legacy generator seeded
  with i), every layer and every target gets its own 5/5 assignment of the 10 splits (one ``shuffle`` of
  [0, 1] x 5 each, layers outer in model order, targets inner in row order); the median over the splits marked 1
  picks the layer, the median over those marked 0 at that layer is the score, both medians clipped at 1; ties in
  the pick are broken by a legacy generator seeded with 0, one ``choice`` over the tied layers per target in row
  order. Then median over targets within a subject, mean over the 10 iterations, mean over subjects with the SEM
  across subjects.

LOO errors are computed in the (n - 1)-dimensional centred subspace from one eigendecomposition per split and layer.
The LOO residual r_i / (1 - H_ii) is invariant to a common scale of the shrinkage factors, which are normalised
(largest = 1) in float64 before use, so alphas of 1e-50..1e49 stay exact in float32. For large alphas (every
normalised factor above 1/2) the difference between an alpha's LOO error and the intercept-only error is computed
from the factors' deviations from 1 directly, without cancellation: it is accurate to rounding of the difference
itself, so "a tie with the intercept-only limit" is decided by the exact sign of a small number, not by the
rounding of two nearly equal errors (which is what decides the original's pick among huge alphas, at about 1e-15
of the error in float64). Consecutive alphas whose normalised factors agree to ``GROUP_TOLERANCE`` are evaluated
once (the largest stands for the group, as the descending scan keeps it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
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
TIE_TOLERANCE = 1e-14
"""A smaller alpha beats the current best only if its LOO error is lower by more than this fraction of the
intercept-only LOO error (about ten times the rounding of scikit-learn's float64 LOO errors, 1e-15 relative)."""
GROUP_TOLERANCE = 1e-15
"""Consecutive alphas whose normalised shrinkage factors agree to this are evaluated once."""


def parameters() -> dict[str, Any]:
    return {"splits": N_SPLITS, "n_train": N_TRAIN, "split_seed": 0, "alphas": "10^k, k=-50..49",
            "alpha_choice": "leave-one-out MSE per target (GCV), unpenalised intercept, scanned from the largest "
                            f"alpha down; ties (within {TIE_TOLERANCE:g} of the intercept-only error) go to the "
                            "larger alpha",
            "noise_correction": f"Spearman-Brown, floors {FLOOR_DATA}/{FLOOR_PRED}, NaN correlations skipped",
            "layer_selection": f"split-half over splits, {N_ITERATIONS} iterations (legacy seed = iteration), "
                               "a new 5/5 assignment per layer and target, both medians clipped at 1, "
                               "ties broken at random (legacy seed 0)"}


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
        self.mixing = basis @ vectors  # (n, n-1); mixing @ mixing.T = I - 1 1^T / n
        self.backend = backend

    def factors(self, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised shrinkage factors and their distances to both ends of the alpha range, (n_alpha, n-1) each.

        g_k = (s_min + alpha) / (s_k + alpha) (largest 1), 1 - g_k = (s_k - s_min) / (s_k + alpha) (to the
        intercept-only limit, alpha -> infinity) and g_k - g_k(alpha -> 0) = alpha (s_k - s_min) / (s_k (s_k + alpha))
        (to the ridgeless limit), all in float64 without cancellation.
        """
        alphas = np.asarray(alphas, dtype=np.float64)[:, None]
        s, low = self.values[None, :], self.values.min()
        scale = s + alphas
        with np.errstate(divide="ignore", invalid="ignore"):
            rise = np.where(s > low, alphas * (s - low) / (s * scale), 0.0)
        return (low + alphas) / scale, (s - low) / scale, rise

    def ridgeless_factors(self) -> np.ndarray:
        """Normalised shrinkage factors in the limit alpha -> 0: s_min / s_k (1 where s_k = s_min)."""
        s, low = self.values, self.values.min()
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s > low, low / s, 1.0)

    def loo_gaps(self, y_train, alphas: np.ndarray = ALPHAS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LOO mean squared error minus the intercept-only one, per alpha group and column of ``y_train``.

        Returns
        -------
        alphas : ndarray (n_groups,)
            The largest alpha of each group of equivalent alphas, in descending order.
        gaps : ndarray (n_groups, t) float64
        limit_mse : ndarray (t,)
            LOO mean squared error of the intercept-only model (alpha -> infinity).

        Each gap is computed as the difference from the nearer limit of the alpha range (intercept-only or
        ridgeless) whenever the alpha's factors are within 1/2 of that limit's, so that near-ties are resolved in
        float32 as well.
        """
        b = self.backend
        alphas = np.asarray(alphas, dtype=np.float64)
        descending = alphas[np.argsort(-alphas, kind="stable")]
        g, to_large, to_small = self.factors(descending)
        mixing = b.asarray(self.mixing)
        squared = b.asarray(self.mixing ** 2)
        projected = mixing.T @ y_train  # (n-1, t)
        n = self.mixing.shape[0]
        # intercept-only limit: residual numerators y - mean (= mixing @ projected), hat complement 1 - 1/n
        centred = y_train - y_train.mean(0)
        leverage = b.asarray(np.full(n, 1.0 - 1.0 / n))
        limit = centred / leverage[:, None]
        limit_mse = b.to_numpy((limit ** 2).mean(0)).astype(np.float64)
        references = {"large": (centred, leverage, limit, 0.0)}
        ridgeless = b.asarray(self.ridgeless_factors())
        small_den = squared @ ridgeless
        if b.to_numpy(small_den).min() > 0:
            small_num = mixing @ (ridgeless[:, None] * projected)
            small_res = small_num / small_den[:, None]
            offset = b.to_numpy(((small_res - limit) * (small_res + limit)).mean(0)).astype(np.float64)
            references["small"] = (small_num, small_den, small_res, offset)
        starts = _group_starts(g)
        gaps = np.empty((len(starts), limit_mse.shape[0]))
        for row, a in enumerate(starts):
            large, small = to_large[a].max(), (to_small[a].max() if "small" in references else np.inf)
            if min(large, small) <= 0.5:
                name, step = ("large", -to_large[a]) if large <= small else ("small", to_small[a])
                num, den, res, offset = references[name]
                gaps[row] = _gap_from(num, den, res, b.asarray(step), mixing, squared, projected, b) + offset
            else:
                ga = b.asarray(g[a])
                residual = (mixing @ (ga[:, None] * projected)) / (squared @ ga)[:, None]
                gaps[row] = b.to_numpy((residual ** 2).mean(0)).astype(np.float64) - limit_mse
        return descending[starts], gaps, limit_mse

    def best_alphas(self, y_train, alphas: np.ndarray = ALPHAS) -> np.ndarray:
        """Alpha per column of ``y_train`` with the smallest LOO mean squared error; the larger alpha on ties.

        The scan runs from the largest alpha down; an alpha replaces the current best only where its LOO error is
        lower by more than ``TIE_TOLERANCE`` times the intercept-only LOO error of that column.
        """
        candidates, gaps, limit_mse = self.loo_gaps(y_train, alphas)
        best_gap, best = gaps[0], np.zeros(gaps.shape[1], dtype=int)
        for row in range(1, len(gaps)):
            better = gaps[row] < best_gap - TIE_TOLERANCE * limit_mse
            best_gap = np.where(better, gaps[row], best_gap)
            best = np.where(better, row, best)
        return candidates[best]


def _gap_from(num, den, res, step, mixing, squared, projected, backend) -> np.ndarray:
    """mean(residual^2 - res^2) per column for factors = reference + step, without cancellation (float64 out).

    LOO residual = (num + mixing @ (step z)) / (den + squared @ step) with res = num / den at the reference; the
    difference of residuals is (shift den - num den_shift) / (den (den + den_shift)).
    """
    shift = mixing @ (step[:, None] * projected)
    den_shift = squared @ step
    diff = (shift * den[:, None] - num * den_shift[:, None]) / (den * (den + den_shift))[:, None]
    return backend.to_numpy((diff * (2 * res + diff)).mean(0)).astype(np.float64)


def _group_starts(deviation: np.ndarray) -> list[int]:
    """First index of each run of consecutive rows that agree with the run's first row to GROUP_TOLERANCE."""
    starts = [0]
    for a in range(1, len(deviation)):
        if np.abs(deviation[a] - deviation[starts[-1]]).max() > GROUP_TOLERANCE:
            starts.append(a)
    return starts


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """r between matching columns; NaN where either column is constant (all its values equal), as np.corrcoef."""
    constant = (a.max(0) == a.min(0)) | (b.max(0) == b.min(0))
    a = a - a.mean(0)
    b = b - b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.where(constant, np.nan, r)


def _median_pair_correlation(series: list[np.ndarray]) -> np.ndarray:
    """Median over pairs of series of their column-wise correlations, NaN pairs skipped (NaN if all are)."""
    pairs = [_pearson_columns(series[i], series[j]) for i, j in combinations(range(len(series)), 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, then the floor
        return np.nanmedian(pairs, axis=0)


def spearman_brown(r: np.ndarray, k: int = 3) -> np.ndarray:
    """Spearman-Brown prophecy for k repetitions: k r / (1 + (k - 1) r) (pole at r = -1 / (k - 1))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return k * r / (1 + (k - 1) * r)


@dataclass
class SplitFit:
    """One split, every layer: scores and what the correction used.

    Attributes
    ----------
    raw, corrected : ndarray (n_layers, t)
        R2 and noise-corrected R2 (equal without repetitions).
    alpha : ndarray (n_layers, t)
        Alpha chosen for the model of the mean over repetitions.
    pole : ndarray (n_layers, t) of bool
        The data or prediction reliability median lies below the Spearman-Brown pole (corrected R2 shrunk).
    """

    raw: np.ndarray
    corrected: np.ndarray
    alpha: np.ndarray
    pole: np.ndarray


def fit_split(grams: list[np.ndarray], responses: np.ndarray, train_mask: np.ndarray, backend) -> SplitFit:
    """Fit every layer on one split; responses (n, t, reps) with reps >= 1 (no NaN)."""
    train, test = np.flatnonzero(train_mask), np.flatnonzero(~train_mask)
    n_reps = responses.shape[2]
    mean = responses.mean(axis=2)
    sets = [mean] + ([responses[:, :, k] for k in range(n_reps)] if n_reps > 1 else [])
    stacked = np.concatenate(sets, axis=1)  # (n, t * n_sets)
    train_means = stacked[train].mean(0)
    t = mean.shape[1]
    shape = (len(grams), t)
    raw, corrected, chosen = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    pole = np.zeros(shape, dtype=bool)
    pole_at = -1.0 / (n_reps - 1) if n_reps > 1 else -np.inf
    if n_reps > 1:
        rv_median = _median_pair_correlation([responses[train, :, k] for k in range(n_reps)])
        rv = np.fmax(spearman_brown(rv_median, n_reps), FLOOR_DATA)
    y_train = backend.asarray(stacked[train])
    for layer, gram in enumerate(grams):
        alphas = LooSolver(gram, train, backend).best_alphas(y_train)
        spectrum = split_spectrum(gram, train, test)
        preds = backend.to_numpy(predict_per_target(spectrum, y_train, alphas, backend)).astype(np.float64)
        # alphas so large that every s / (s + alpha) rounds to 0: the intercept-only model, exactly the mean
        s_max = spectrum.values.max() if spectrum.values.size else 0.0
        intercept_only = alphas * np.finfo(np.float64).eps > s_max
        preds[:, intercept_only] = train_means[intercept_only]
        r = _pearson_columns(preds[:, :t], mean[test])
        raw[layer] = np.where(r > 0, r, 0.0) ** 2  # negative, or NaN for a constant prediction: 0
        chosen[layer] = alphas[:t]
        if n_reps > 1:
            rp_median = _median_pair_correlation([preds[:, t * (k + 1): t * (k + 2)] for k in range(n_reps)])
            rp = np.fmax(spearman_brown(rp_median, n_reps), FLOOR_PRED)
            corrected[layer] = raw[layer] / (rv * rp)
            pole[layer] = (rv_median < pole_at) | (rp_median < pole_at)
        else:
            corrected[layer] = raw[layer]
    return SplitFit(raw, corrected, chosen, pole)


def split_scores(grams: list[np.ndarray], responses: np.ndarray, train_mask: np.ndarray, backend
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Raw and noise-corrected R2 (n_layers, t) of one split (see ``fit_split``)."""
    fit = fit_split(grams, responses, train_mask, backend)
    return fit.raw, fit.corrected


def split_half_assignments(n_layers: int, n_targets: int, n_splits: int = N_SPLITS,
                           n_iterations: int = N_ITERATIONS, seed: int = 0) -> np.ndarray:
    """The original's random halves: (n_iterations, n_layers, n_targets, n_splits) bool, True = picks the layer.

    Iteration i seeds numpy's legacy generator with ``seed + i``; then, layers outer and targets inner, one
    ``shuffle`` of [0, 1] x (n_splits / 2) per (layer, target) row; the splits marked 1 pick the layer.
    """
    if n_splits % 2:
        raise ProtocolError(f"split-half layer selection needs an even number of splits; got {n_splits}")
    base = np.tile([0.0, 1.0], n_splits // 2)
    out = np.empty((n_iterations, n_layers, n_targets, n_splits), dtype=bool)
    for i in range(n_iterations):
        rows = np.tile(base, (n_layers * n_targets, 1))
        shuffle = np.random.RandomState(seed + i).shuffle
        for row in rows:  # sequential by nature: each shuffle continues the generator's stream
            shuffle(row)
        out[i] = (rows == 1.0).reshape(n_layers, n_targets, n_splits)
    return out


def _half_medians(scores: np.ndarray, picked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Medians (n_layers, t) over the picked splits and over the others; scores (S, L, t), picked (L, t, S)."""
    values = np.moveaxis(scores, 0, -1)  # (L, t, S)
    half = values.shape[-1] // 2
    order = np.argsort(~picked, axis=-1, kind="stable")  # picked splits first
    ranked = np.take_along_axis(values, order, axis=-1)
    return np.median(ranked[..., :half], axis=-1), np.median(ranked[..., half:], axis=-1)


def _argmax_random_ties(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """Argmax over rows (layers) per column; ties broken as the original: legacy seed, one choice per column.

    numpy's legacy ``choice`` over a single candidate consumes no random numbers, so drawing only where there is
    a tie gives the same stream as drawing for every column.
    """
    top = values.max(axis=0)
    tied = values == top[None, :]
    chosen = np.argmax(tied, axis=0)
    ties = np.flatnonzero(tied.sum(axis=0) > 1)
    if len(ties):
        choice = np.random.RandomState(seed).choice
        for column in ties:
            chosen[column] = choice(np.flatnonzero(tied[:, column]))
    return chosen


def split_half_selection(scores: np.ndarray, n_iterations: int = N_ITERATIONS, seed: int = 0,
                         assignments: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split-half layer choice over splits, as the original draws it (``split_half_assignments``).

    Parameters
    ----------
    scores : ndarray (n_splits, n_layers, t)
    assignments : ndarray (n_iterations, n_layers, t, n_splits) of bool, optional
        Precomputed ``split_half_assignments`` (same seed).

    Returns
    -------
    values : ndarray (n_iterations, t)
        Median over the held-out half at the chosen layer, clipped at 1.
    layers : ndarray (n_iterations, t) of int
    """
    n_splits, n_layers, t = scores.shape
    if assignments is None:
        assignments = split_half_assignments(n_layers, t, n_splits, n_iterations, seed)
    values, layers = [], []
    for picked in assignments:
        pick_median, held_median = _half_medians(scores, picked)
        chosen = _argmax_random_ties(np.minimum(pick_median, 1.0), seed)
        values.append(np.minimum(held_median[chosen, np.arange(t)], 1.0))
        layers.append(chosen)
    return np.array(values), np.array(layers)


def run_tuckute2023(grams: list[np.ndarray], responses: np.ndarray, backend, seed: int = 0
                    ) -> dict[str, np.ndarray]:
    """All splits and layers: raw/corrected R2 (n_splits, n_layers, t) and the split-half selection.

    Also returns ``alpha`` (n_splits, n_layers, t), the alpha of the model of the mean, and ``pole`` (same shape,
    bool), where a reliability median below the Spearman-Brown pole shrank the corrected R2 (a warning says how
    many targets have such a cell).
    """
    responses = np.asarray(responses, dtype=np.float64)
    if np.isnan(responses).any():
        raise ProtocolError("tuckute2023 needs complete repetitions (no NaN); restrict to targets with all reps")
    masks = make_splits(responses.shape[0], seed=seed)
    fits = [fit_split(grams, responses, m, backend) for m in masks]
    raw, corrected = np.array([f.raw for f in fits]), np.array([f.corrected for f in fits])
    pole = np.array([f.pole for f in fits])
    assignments = split_half_assignments(len(grams), responses.shape[1], len(masks), N_ITERATIONS, seed)
    values, layers = split_half_selection(corrected, seed=seed, assignments=assignments)
    raw_values, _ = split_half_selection(raw, seed=seed, assignments=assignments)
    n_pole = int(pole.any(axis=(0, 1)).sum())
    if n_pole:
        warnings.warn(f"tuckute2023: {n_pole} of {pole.shape[2]} targets have a median reliability (of the data or "
                      f"of the per-repetition predictions) below the Spearman-Brown pole -1/(reps-1) in some split; "
                      f"the correction exceeds 1 there and shrinks their corrected R2 (the original's arithmetic, "
                      f"kept; see the detail's sb_pole_cells)", stacklevel=2)
    return {"raw": raw, "corrected": corrected, "values": values, "layers": layers, "raw_values": raw_values,
            "alpha": np.array([f.alpha for f in fits]), "pole": pole}

