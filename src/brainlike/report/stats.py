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
    """Pearson and Spearman correlation across models with a bootstrap interval for Pearson r.

    The numbers are those of :func:`brainlike.align.stats.correlate` (the one rule ``brainlike link`` uses),
    under the report's short keys; non-finite pairs are left out.

    Returns
    -------
    dict
        ``n, r, p, rho, p_rho, low, high`` (NaN where undefined, e.g. fewer than 3 models).
    """
    from brainlike.align.stats import correlate

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    out = correlate(x[keep], y[keep], n_bootstrap=n_boot, seed=seed, level=level)
    names = {"r": "pearson_r", "p": "pearson_p", "rho": "spearman_rho", "p_rho": "spearman_p",
             "low": "pearson_ci_low", "high": "pearson_ci_high"}
    return {"n": out["n_models"], **{k: float("nan") if out[v] is None else out[v] for k, v in names.items()}}


def task_scores(downstream: pd.DataFrame) -> pd.DataFrame:
    """One score per (model, task, probe) (:func:`brainlike.downstream.evaluate.task_means`)."""
    from brainlike.downstream.evaluate import task_means

    rows = task_means(_records(downstream))
    if not rows:
        return pd.DataFrame(columns=["model", "task", "probe", "score"])
    return pd.DataFrame(rows)[["model", "task", "probe", "score"]]


def global_downstream(downstream: pd.DataFrame, probe: str | None = None) -> pd.Series:
    """Global downstream score per model by brainlike's one rule (:func:`brainlike.downstream.evaluate.global_scores`).

    Parameters
    ----------
    downstream : DataFrame
        Downstream records with ``model, task, score`` (optionally ``probe``, ``fold``).
    probe : str, optional
        The probe to use; default: the most frequent one.

    Returns
    -------
    Series
        Indexed by model; empty when there is no global score (fewer than two models, no usable task).
    """
    from brainlike.downstream.evaluate import global_scores

    scores = task_scores(downstream)
    if scores.empty:
        return pd.Series(dtype=float, name="global")
    probe = probe or scores["probe"].mode().iloc[0]
    rows = global_scores(_records(downstream), probe)
    return pd.Series({r["model"]: r["score"] for r in rows}, dtype=float, name="global")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as record dicts with NaN as None (the downstream functions work on records)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return clean.to_dict("records")
