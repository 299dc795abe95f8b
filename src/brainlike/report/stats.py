"""Statistics the report draws: bootstrap intervals, correlations across models, the global downstream score."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def bootstrap_median_ci(values: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the median.

    Parameters
    ----------
    values : array, shape (n,)
        Finite values (e.g. per-target scores of one model).
    n_boot : int
        Bootstrap resamples.
    level : float
        Coverage of the interval.
    seed : int
        Seed of the resampling (results are reproducible).

    Returns
    -------
    (low, high) : tuple of float
        NaN, NaN when fewer than two values.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, values.size, size=(n_boot, values.size))  # (n_boot, n)
    medians = np.median(values[index], axis=1)  # (n_boot,)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def correlation(x: np.ndarray, y: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                seed: int = 0) -> dict[str, Any]:
    """Pearson and Spearman correlation across models, with a bootstrap interval for Pearson r.

    The interval resamples models (pairs) with replacement; resamples where x or y is constant are skipped.

    Returns
    -------
    dict
        ``n, r, p, rho, p_rho, low, high`` (NaN where undefined, e.g. fewer than 3 models).
    """
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    nan = float("nan")
    out = {"n": int(x.size), "r": nan, "p": nan, "rho": nan, "p_rho": nan, "low": nan, "high": nan}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
    out.update(r=float(pearson.statistic), p=float(pearson.pvalue), rho=float(spearman.statistic),
               p_rho=float(spearman.pvalue))
    rng = np.random.default_rng(seed)
    index = rng.integers(0, x.size, size=(n_boot, x.size))  # (n_boot, n)
    xs, ys = x[index], y[index]
    xc, yc = xs - xs.mean(1, keepdims=True), ys - ys.mean(1, keepdims=True)
    denom = np.sqrt((xc**2).sum(1) * (yc**2).sum(1))
    valid = denom > 0
    r_boot = (xc * yc).sum(1)[valid] / denom[valid]  # (n_valid,)
    tail = (1 - level) / 2 * 100
    out["low"], out["high"] = (float(v) for v in np.percentile(r_boot, [tail, 100 - tail]))
    return out


def task_scores(downstream: pd.DataFrame) -> pd.DataFrame:
    """One score per (model, task, probe): rows without a fold where present, else the mean over folds."""
    frame = downstream.copy()
    if "task" in frame:  # the evaluation's own global-score rows are not a task
        frame = frame[frame["task"] != "global"]
    if "probe" not in frame:
        frame["probe"] = "default"
    frame["probe"] = frame["probe"].fillna("default")
    if "fold" in frame:
        whole = frame[frame["fold"].isna()]
        folds = frame[frame["fold"].notna()]
        keys = set(map(tuple, whole[["model", "task", "probe"]].to_numpy()))
        folds = folds[[(m, t, p) not in keys for m, t, p in folds[["model", "task", "probe"]].to_numpy()]]
        frame = pd.concat([whole, folds])
    return frame.groupby(["model", "task", "probe"], sort=False, as_index=False)["score"].mean()


def global_downstream(downstream: pd.DataFrame, probe: str | None = None) -> pd.Series:
    """Global downstream score per model: each task z-scored across models, then the mean over tasks.

    Only tasks that every model has are used (a z-score across different model sets is not comparable).

    Parameters
    ----------
    downstream : DataFrame
        Downstream records with ``model, task, score`` (optionally ``probe``, ``fold``).
    probe : str, optional
        The probe to use; default: the most frequent one.

    Returns
    -------
    Series
        Indexed by model; empty when fewer than two models.
    """
    scores = task_scores(downstream)
    if scores.empty:
        return pd.Series(dtype=float)
    probe = probe or scores["probe"].mode().iloc[0]
    table = scores[scores["probe"] == probe].pivot(index="model", columns="task", values="score")
    table = table.dropna(axis=1)
    if len(table) < 2 or table.shape[1] == 0:
        return pd.Series(dtype=float)
    std = table.std(axis=0, ddof=0).replace(0, np.nan)
    z = (table - table.mean(axis=0)) / std  # (models, tasks)
    return z.mean(axis=1, skipna=True).rename("global")
