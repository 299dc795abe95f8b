"""Statistics on scores: paired Wilcoxon across subjects, bootstrap confidence intervals, permutation nulls."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import wilcoxon

from brainlike.errors import ProtocolError


def paired_wilcoxon(scores_a: dict[str, float], scores_b: dict[str, float]) -> dict[str, float]:
    """Two-sided paired Wilcoxon signed-rank test between two models' per-subject scores (matched by subject)."""
    subjects = sorted(set(scores_a) & set(scores_b))
    if len(subjects) < 2:
        raise ProtocolError("a paired test needs per-subject scores for at least 2 shared subjects")
    a = np.array([scores_a[s] for s in subjects])
    b = np.array([scores_b[s] for s in subjects])
    result = wilcoxon(a, b, alternative="two-sided")
    return {"statistic": float(result.statistic), "p": float(result.pvalue), "n_subjects": len(subjects),
            "mean_difference": float(np.mean(a - b))}


def bootstrap_ci(values: np.ndarray, statistic: Callable[[np.ndarray], float] = np.mean, n_boot: int = 10000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over the first axis of ``values`` (subjects, stimuli...)."""
    values = np.asarray(values)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    stats = np.array([statistic(values[i]) for i in idx])
    tail = (1 - level) / 2
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1 - tail))


def bootstrap_stimuli(score_fn: Callable[[np.ndarray], float], n_stimuli: int, n_boot: int = 1000,
                      level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of ``score_fn(indices)`` over stimulus resamples (with replacement)."""
    rng = np.random.default_rng(seed)
    stats = np.array([score_fn(rng.integers(0, n_stimuli, n_stimuli)) for _ in range(n_boot)])
    tail = (1 - level) / 2
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1 - tail))


def permutation_null(score_fn: Callable[[np.ndarray], float], n_stimuli: int, observed: float, n_perm: int = 100,
                     seed: int = 0) -> dict[str, float]:
    """Null distribution of ``score_fn(permutation)`` with stimulus labels shuffled; one-sided p-value."""
    rng = np.random.default_rng(seed)
    null = np.array([score_fn(rng.permutation(n_stimuli)) for _ in range(n_perm)])
    p = (1 + np.sum(null >= observed)) / (n_perm + 1)
    return {"observed": float(observed), "null_mean": float(null.mean()), "null_95": float(np.quantile(null, 0.95)),
            "p": float(p), "n_perm": n_perm}
