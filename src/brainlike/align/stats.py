"""Statistics on scores: paired Wilcoxon across subjects, bootstrap confidence intervals, permutation nulls, and the
one bootstrap correlation across models (:func:`correlate`)."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import wilcoxon

from brainlike.errors import ProtocolError

__all__ = ["MIN_PAIRS", "paired_wilcoxon", "bootstrap_ci", "bootstrap_stimuli", "permutation_null", "correlate"]

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


FAMILY_KEYS = ("n_families", "pearson_family_ci_low", "pearson_family_ci_high", "spearman_family_ci_low",
               "spearman_family_ci_high")


def correlate(x: np.ndarray, y: np.ndarray, *, n_bootstrap: int = 2000, seed: int = 0,
              level: float = 0.95, groups: np.ndarray | None = None) -> dict[str, float | None]:
    """Correlation across paired values (e.g. models): brainlike's one bootstrap correlation (link and report).

    Pearson r (as ``scipy.stats.linregress``, with slope and intercept) and Spearman rho with their p-values, and
    percentile bootstrap CIs of both: pairs resampled with replacement (``n_bootstrap`` times, ``seed``), resamples
    where either variable is constant are dropped. Fewer than ``MIN_PAIRS`` pairs, or a constant variable, gives
    None for every statistic.

    With ``groups`` (one label per pair, e.g. the model family) a second pair of CIs comes from a cluster
    bootstrap: the groups are resampled with replacement (as many draws as there are groups) and every pair of
    each drawn group enters the resample once per draw (Pearson and Spearman, ties ranked by their average, on the
    resample with its repeats), so that related models (a family) count as one draw.

    Returns
    -------
    dict
        ``n_models, pearson_r, pearson_p, pearson_ci_low, pearson_ci_high, spearman_rho, spearman_p,
        spearman_ci_low, spearman_ci_high, slope, intercept``; with ``groups`` also ``n_families,
        pearson_family_ci_low, pearson_family_ci_high, spearman_family_ci_low, spearman_family_ci_high``.
    """
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out: dict[str, float | None] = {"n_models": int(len(x))}
    if groups is not None:
        groups = np.asarray(groups).astype(str)
        if groups.shape != x.shape:
            raise ProtocolError(f"groups must give one label per pair: {groups.shape} labels, {x.shape} pairs")
        out.update({k: None for k in FAMILY_KEYS})
        out["n_families"] = int(len(np.unique(groups)))
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
    if groups is not None:
        family = family_bootstrap_ci(x, y, groups, n_bootstrap=n_bootstrap, seed=seed, level=level)
        out.update({k.replace("_ci_", "_family_ci_"): v for k, v in family.items()})
    return out


def family_bootstrap_ci(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, n_bootstrap: int = 2000, seed: int = 0,
                        level: float = 0.95) -> dict[str, float | None]:
    """Percentile CIs of Pearson and Spearman under a cluster bootstrap over ``groups`` (see :func:`correlate`).

    Draw ``b`` takes ``rng.integers(0, G, G)[b]`` over the G sorted group labels (``np.unique`` order); a pair whose
    group was drawn ``c`` times enters with weight ``c``. Correlations are computed on the weighted pairs, which is
    the correlation of the resample with its repeats written out (ranks for Spearman: the pairs below plus half of
    the ties, all counted with their weights). Resamples where either variable is constant are dropped.

    Returns
    -------
    dict
        ``pearson_ci_low, pearson_ci_high, spearman_ci_low, spearman_ci_high`` (None when no resample is usable).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    labels, family_of = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(labels), size=(n_bootstrap, len(labels)))
    counts = np.zeros((n_bootstrap, len(labels)))
    np.add.at(counts, (np.arange(n_bootstrap)[:, None], draws), 1.0)
    w = counts[:, family_of]  # (n_bootstrap, n_models): how often each pair is in each resample
    present = w > 0
    varies = [np.where(present, v, -np.inf).max(1) > np.where(present, v, np.inf).min(1) for v in (x, y)]
    keep = varies[0] & varies[1]
    w = w[keep]
    tail = (1 - level) / 2 * 100
    out: dict[str, float | None] = {}
    for name, (a, b) in {"pearson": (np.broadcast_to(x, w.shape), np.broadcast_to(y, w.shape)),
                         "spearman": (_weighted_ranks(x, w), _weighted_ranks(y, w))}.items():
        if len(w) == 0:
            out[f"{name}_ci_low"] = out[f"{name}_ci_high"] = None
            continue
        total = w.sum(1, keepdims=True)
        ac = a - (w * a).sum(1, keepdims=True) / total
        bc = b - (w * b).sum(1, keepdims=True) / total
        r = (w * ac * bc).sum(1) / np.sqrt((w * ac ** 2).sum(1) * (w * bc ** 2).sum(1))
        low, high = np.percentile(np.clip(r, -1.0, 1.0), [tail, 100 - tail])
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(low), float(high)
    return out


def _weighted_ranks(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of ``v`` within each weighted resample (rows of ``w``): ``below + (ties + 1) / 2``."""
    below = (v[None, :] < v[:, None]).astype(float)  # below[i, j]: v_j < v_i
    ties = (v[None, :] == v[:, None]).astype(float)
    return w @ below.T + (w @ ties.T + 1.0) / 2.0


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values): ``q_(i) = min_{j >= i} m p_(j) / j``, at most 1.

    NaN (or None) p-values are left out of the count ``m`` and stay NaN. A test is a discovery at FDR ``alpha``
    when its q-value is at most ``alpha``.
    """
    p = np.array([np.nan if v is None else v for v in np.ravel(p_values)], dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if len(ok) == 0:
        return q.reshape(np.shape(p_values))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(ok)
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return q.reshape(np.shape(p_values))


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
