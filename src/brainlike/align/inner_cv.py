"""Inner cross-validation of kernel-ridge candidates, batched over targets (used by pepino2025 and banded ridge).

A candidate is a (kernel, alpha) pair: for pepino2025 a (layer, alpha) pair, for banded ridge a direction of the
band alphas (the kernel sum_b K_b alpha_min / alpha_b) and the smallest alpha. Leave one fold out over the
outer-training stimuli; every candidate is scored per target by max(r, 0)^2 of the inner predictions pooled over the
inner folds (``pooled``), or by the mean over inner folds of each fold's Pearson r (``fold-mean-r``, himalaya's
selection score).

How it is computed (the result is that of fitting every candidate and split literally, to float tolerance):

* per split, the prediction operators of all candidates are stacked into one matrix (test rows x candidates,
  training rows), so the inner predictions of a batch of targets are ONE matrix product per split;
* the operator rows are centred over the split's test rows, and one extra row per candidate gives the split mean
  of the predictions minus the training mean: the scores then follow from per-split sums (squared deviations,
  deviations times centred truth, means) without concatenating the pooled predictions and without the
  cancellation of raw sums of squares in float32;
* callers pass targets shifted by their outer-training mean (ridge with an intercept is shift-equivariant), so
  every float32 quantity is a deviation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from brainlike.align.ridge import Spectrum, SpectrumCache, shrinkage

__all__ = ["INNER_SCORES", "FLOAT32_SAFE_ALPHA", "SplitSums", "safe_ratio", "inner_scores", "split_sums",
           "sum_over_rows", "default_target_batch", "inner_splits", "InnerSearch"]

INNER_SCORES = ("pooled", "fold-mean-r")
FLOAT32_SAFE_ALPHA = 1e30


@dataclass
class SplitSums:
    """Sufficient statistics of one inner split, per candidate (leading dims) and target.

    ``dev2``: sum over the split's test rows of squared prediction deviations from their split mean; ``cross``: sum
    of deviations times centred truth; ``pred_mean`` / ``true_mean``: means over the test rows; ``true2``: sum of
    squared centred truth; ``n``: test rows.
    """

    dev2: object
    cross: object
    pred_mean: object
    true_mean: object
    true2: object
    n: int


def safe_ratio(num, den, xp):
    """num / sqrt(den), 0 where den <= 0 (a constant prediction or truth)."""
    if xp is np:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.sqrt(np.where(den > 0, den, 1.0)), 0.0)
    return xp.where(den > 0, num / xp.sqrt(xp.where(den > 0, den, xp.ones_like(den))), xp.zeros_like(den))


def inner_scores(sums: list[SplitSums], inner_score: str, xp):
    """Inner-CV score per candidate and target from per-split sums.

    ``pooled``: max(r, 0)^2 of the predictions concatenated over the splits (within-split plus between-split terms
    of the pooled covariance and variances); ``fold-mean-r``: the mean over splits of each split's Pearson r.
    """
    if inner_score == "fold-mean-r":
        return sum(safe_ratio(s.cross, s.dev2 * s.true2, xp) for s in sums) / len(sums)
    total = sum(s.n for s in sums)
    pred_grand = sum(s.n * s.pred_mean for s in sums) / total
    true_grand = sum(s.n * s.true_mean for s in sums) / total
    var_pred = sum(s.dev2 + s.n * (s.pred_mean - pred_grand) ** 2 for s in sums)
    cov = sum(s.cross + s.n * (s.pred_mean - pred_grand) * (s.true_mean - true_grand) for s in sums)
    var_true = sum(s.true2 + s.n * (s.true_mean - true_grand) ** 2 for s in sums)
    r = safe_ratio(cov, var_pred * var_true, xp)
    return (r * (r > 0)) ** 2


def split_sums(deviations, mean_offset, y_train, y_test, backend) -> SplitSums:
    """Split sums from prediction deviations (n_test, ..., t) from their split mean, and the split mean of the
    predictions minus the training mean (..., t)."""
    true_mean = y_test.mean(0)
    true_c = y_test - true_mean
    return SplitSums(dev2=sum_over_rows(deviations, deviations, backend),
                     cross=sum_over_rows(deviations, true_c, backend),
                     pred_mean=mean_offset + y_train.mean(0), true_mean=true_mean,
                     true2=(true_c * true_c).sum(0), n=y_test.shape[0])


def sum_over_rows(a, b, backend):
    """``(a * b).sum(0)`` for a (n, ..., t) and b (n, ..., t) or (n, t), without an (n, ..., t) temporary.

    On torch, one fused multiply-add per row into a (..., t) accumulator that stays in cache: about 4x faster than
    multiplying and then summing large arrays.
    """
    if backend.name == "numpy":
        flat = a.reshape(a.shape[0], -1, a.shape[-1])
        other = b.reshape(b.shape[0], -1, b.shape[-1])
        if other.shape[1] == 1:
            return np.einsum("ikt,it->kt", flat, other[:, 0]).reshape(a.shape[1:])
        return np.einsum("ikt,ikt->kt", flat, other).reshape(a.shape[1:])
    if a[0].numel() < 2 ** 16:  # small: one vectorised call beats a Python loop over rows
        return (a * (b if b.dim() == a.dim() else b.reshape((b.shape[0],) + (1,) * (a.dim() - 2) + (-1,)))).sum(0)
    total = backend.torch.zeros_like(a[0])
    for row_a, row_b in zip(a, b):
        total.addcmul_(row_a, row_b)
    return total


def default_target_batch(rows: int, backend) -> int:
    """Targets per batch: on CPU about 2^20 / rows (the inner predictions of a batch, 4 MiB in float32, about 300
    targets for 13 layers x 8 alphas, stay in cache while they are reduced; on the engines' one host thread 256-300
    targets took 5.6-5.9 CPU-s for the 26,792-target benchmark against 8.8 s for batches of 2^24 / rows), on CUDA
    2^27 / rows."""
    budget = 2 ** 27 if str(getattr(backend, "device", "cpu")).startswith("cuda") else 2 ** 20
    return int(max(128, min(32768, budget // max(rows, 1))))


def inner_splits(folds: np.ndarray, outer) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Outer-training rows and the leave-one-fold-out splits on them (positions within those rows)."""
    train = np.flatnonzero(folds != outer)
    inner_folds = folds[train]
    return train, [(np.flatnonzero(inner_folds != f), np.flatnonzero(inner_folds == f)) for f in np.unique(inner_folds)]


class InnerSearch:
    """Inner leave-one-fold-out scores of (kernel, alpha) candidates on the outer-training stimuli.

    Parameters
    ----------
    spectra : SpectrumCache
        Decompositions of the kernels (keys of ``spectra.grams``).
    kernels : sequence of hashable
        The kernel keys the candidates use.
    candidate_kernel : ndarray (n_candidates,) of int
        Index into ``kernels`` of each candidate.
    candidate_alpha : ndarray (n_candidates,)
        Ridge alpha of each candidate.
    folds : ndarray (n,)
    outer : fold label held out by the outer loop
    backend : NumpyBackend or TorchBackend
    inner_score : {"pooled", "fold-mean-r"}
    uses : int
        How often each inner training set is asked for over the outer loop (2 in nested CV: kept for the second
        request; 1: not kept).
    """

    def __init__(self, spectra: SpectrumCache, kernels: Sequence[Hashable], candidate_kernel: np.ndarray,
                 candidate_alpha: np.ndarray, folds: np.ndarray, outer, backend, inner_score: str = "pooled",
                 uses: int = 2) -> None:
        if inner_score not in INNER_SCORES:
            raise ValueError(f"unknown inner score {inner_score!r}")
        self.inner_score = inner_score
        self.backend = backend
        self.xp = backend.torch if backend.name == "torch" else np
        self.candidate_kernel = np.asarray(candidate_kernel, dtype=int)
        self.candidate_alpha = np.asarray(candidate_alpha, dtype=np.float64)
        train, self.splits = inner_splits(folds, outer)
        # spectra[kernel][split]
        self.spectra: list[list[Spectrum]] = [[spectra.get(key, train[tr], train[te], uses=uses)
                                               for tr, te in self.splits] for key in kernels]
        self.operators = [self._operator(s) for s in range(len(self.splits))]
        self._arrays: dict[tuple[int, int], tuple] = {}

    @property
    def n_candidates(self) -> int:
        return len(self.candidate_alpha)

    def _operator(self, split: int):
        """Stacked prediction operator of one split (rows by training rows).

        Rows (test row, candidate) give the predictions' deviations from their mean over the split's test rows;
        then one row per candidate gives that mean minus the training mean.
        """
        n_test = self.spectra[0][split].test_proj.shape[0]
        n_train = self.spectra[0][split].train_operator.shape[1]
        deviation_rows = np.zeros((n_test, self.n_candidates, n_train))
        mean_rows = np.zeros((self.n_candidates, n_train))
        for kernel in np.unique(self.candidate_kernel):
            cand = np.flatnonzero(self.candidate_kernel == kernel)
            spectrum = self.spectra[kernel][split]
            alphas = self.candidate_alpha[cand]
            factors = shrinkage(spectrum.values, alphas) * self.common_scale(kernel, alphas)[:, None]
            proj_mean = spectrum.test_proj.mean(axis=0)
            weighted = factors[:, :, None] * spectrum.train_operator[None]  # (c, r, n_train)
            deviation_rows[:, cand] = np.swapaxes((spectrum.test_proj - proj_mean) @ weighted, 0, 1)
            mean_rows[cand] = proj_mean @ weighted
        return self.backend.asarray(np.concatenate([deviation_rows.reshape(-1, n_train), mean_rows]))

    def common_scale(self, kernel: int, alphas: np.ndarray) -> np.ndarray:
        """Per-alpha scale for float32 backends: for alphas above 1e30, whose shrinkage factors 1 / (s + alpha)
        would underflow float32, 1 / (largest factor over the pooled folds); else 1 (unscaled arithmetic agrees best
        with the float64 reference). Every pooled fold's deviations from its training mean change by the same
        constant."""
        alphas = np.asarray(alphas, dtype=np.float64)
        if self.backend.name == "numpy":  # float64 reference: unscaled, the same arithmetic as scikit-learn
            return np.ones_like(alphas)
        smallest = min(sp.values.min() for sp in self.spectra[kernel])
        return np.where(alphas > FLOAT32_SAFE_ALPHA, smallest + alphas, 1.0)

    def grid_scores(self, y, target_batch: int | None = None) -> np.ndarray:
        """Inner scores of every candidate, (n_candidates, t) float64, NaN as 0, for centred targets ``y``
        (backend array, outer-training rows), ``target_batch`` targets at a time."""
        if target_batch is None:
            target_batch = default_target_batch(self.n_candidates * (self.operators[0].shape[0] // self.n_candidates
                                                                     + 1), self.backend)
        if y.shape[1] > target_batch:
            return np.concatenate([self.grid_scores(y[:, i:i + target_batch], target_batch)
                                   for i in range(0, y.shape[1], target_batch)], axis=1)
        sums = []
        for (tr, te), operator in zip(self.splits, self.operators):
            out = operator @ y[tr]
            n_rows = len(te) * self.n_candidates
            deviations = out[:n_rows].reshape(len(te), self.n_candidates, -1)
            sums.append(split_sums(deviations, out[n_rows:], y[tr], y[te], self.backend))
        scores = self.backend.to_numpy(inner_scores(sums, self.inner_score, self.xp))
        return np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)

    def _split_arrays(self, kernel: int, split: int) -> tuple:
        """Backend copies of a split's ``V^T C``, test-centred ``test_proj`` and its mean row (cached)."""
        key = (kernel, split)
        if key not in self._arrays:
            spectrum, b = self.spectra[kernel][split], self.backend
            proj_mean = spectrum.test_proj.mean(axis=0)
            self._arrays[key] = (b.asarray(spectrum.train_operator), b.asarray(spectrum.test_proj - proj_mean),
                                 b.asarray(proj_mean[None]))
        return self._arrays[key]

    def projections(self, y, kernel: int) -> list:
        """``V^T (y_train - mean)`` of every split for one kernel, (r, t) each."""
        return [self._split_arrays(kernel, s)[0] @ y[tr] for s, (tr, _) in enumerate(self.splits)]

    def scores_for_alphas(self, y, projected: list, kernel: int, alphas: np.ndarray,
                          max_values: int = 2 ** 22) -> np.ndarray:
        """Inner scores (k, t) of one kernel with alphas (k, t) per target, from the splits' projections
        (targets in batches of at most ``max_values`` k x r x t values)."""
        k, n_targets = alphas.shape
        rank = max(len(sp.values) for sp in self.spectra[kernel])
        step = max(1, max_values // max(k * rank, 1))
        if n_targets > step:
            return np.concatenate([self.scores_for_alphas(y[:, i:i + step], [p[:, i:i + step] for p in projected],
                                                          kernel, alphas[:, i:i + step], max_values)
                                   for i in range(0, n_targets, step)], axis=1)
        b = self.backend
        scale = self.common_scale(kernel, alphas.ravel()).reshape(alphas.shape)
        movedim = b.torch.movedim if b.name == "torch" else np.moveaxis
        sums = []
        for s, (tr, te) in enumerate(self.splits):
            _, centred_proj, proj_mean = self._split_arrays(kernel, s)
            values = self.spectra[kernel][s].values
            factors = scale[:, None, :] / (values[None, :, None] + alphas[:, None, :])  # float64 (k, r, t)
            weighted = projected[s][None] * b.asarray(factors)
            deviations = movedim(centred_proj @ weighted, 1, 0)  # (n_test, k, t)
            sums.append(split_sums(deviations, (proj_mean @ weighted)[:, 0], y[tr], y[te], b))
        scores = np.asarray(b.to_numpy(inner_scores(sums, self.inner_score, self.xp)), dtype=np.float64)
        return np.nan_to_num(scores, nan=0.0)
