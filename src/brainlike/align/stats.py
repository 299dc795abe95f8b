"""Statistics on scores: paired Wilcoxon across subjects, bootstrap confidence intervals, permutation nulls, and the
one bootstrap correlation across models (:func:`correlate`)."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import wilcoxon

from brainlike.errors import ProtocolError

MIN_PAIRS = 3
"""Fewest pairs for a correlation across models."""


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


def correlate(x: np.ndarray, y: np.ndarray, *, n_bootstrap: int = 2000, seed: int = 0,
              level: float = 0.95) -> dict[str, float | None]:
    """Correlation across paired values (e.g. models): brainlike's one bootstrap correlation (link and report).

    Pearson r (as ``scipy.stats.linregress``, with slope and intercept) and Spearman rho with their p-values, and
    percentile bootstrap CIs of both: pairs resampled with replacement (``n_bootstrap`` times, ``seed``), resamples
    where either variable is constant are dropped. Fewer than ``MIN_PAIRS`` pairs, or a constant variable, gives
    None for every statistic.

    Returns
    -------
    dict
        ``n_models, pearson_r, pearson_p, pearson_ci_low, pearson_ci_high, spearman_rho, spearman_p,
        spearman_ci_low, spearman_ci_high, slope, intercept``.
    """
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out: dict[str, float | None] = {"n_models": int(len(x))}
    if len(x) < MIN_PAIRS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {**out, **{k: None for k in ("pearson_r", "pearson_p", "pearson_ci_low", "pearson_ci_high",
                                            "spearman_rho", "spearman_p", "spearman_ci_low", "spearman_ci_high",
                                            "slope", "intercept")}}
    fit = stats.linregress(x, y)
    rho, rho_p = stats.spearmanr(x, y)
    out.update({"pearson_r": float(fit.rvalue), "pearson_p": float(fit.pvalue), "spearman_rho": float(rho),
                "spearman_p": float(rho_p), "slope": float(fit.slope), "intercept": float(fit.intercept)})
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_bootstrap, len(x)))  # (n_bootstrap, n_models)
    out.update(_bootstrap_ci(x[idx], y[idx], level))
    return out


def _bootstrap_ci(xb: np.ndarray, yb: np.ndarray, level: float) -> dict[str, float | None]:
    """Percentile CIs of Pearson and Spearman over bootstrap resamples ``(n_bootstrap, n_models)``."""
    from scipy import stats

    keep = (np.ptp(xb, axis=1) > 0) & (np.ptp(yb, axis=1) > 0)
    tail = (1 - level) / 2 * 100
    out: dict[str, float | None] = {}
    for name, (a, b) in {"pearson": (xb[keep], yb[keep]),
                         "spearman": (stats.rankdata(xb[keep], axis=1), stats.rankdata(yb[keep], axis=1))}.items():
        if len(a) == 0:
            out[f"{name}_ci_low"] = out[f"{name}_ci_high"] = None
            continue
        ac, bc = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
        r = (ac * bc).sum(1) / np.sqrt((ac ** 2).sum(1) * (bc ** 2).sum(1))
        low, high = np.percentile(r, [tail, 100 - tail])
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(low), float(high)
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg FDR-adjusted p-values (q-values) of a family of tests; NaN entries stay NaN.

    q_(i) = min over j >= i of p_(j) m / j for the ascending p-values p_(1) <= ... <= p_(m), capped at 1.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    values = p[finite]
    if values.size == 0:
        return q
    order = np.argsort(values)
    ranked = values[order] * values.size / np.arange(1, values.size + 1)
    adjusted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    out = np.empty_like(values)
    out[order] = adjusted
    q[finite] = out
    return q
