"""Comparing selections across precisions and CPUs: equal picks except at near ties measured by the score gap.

A float32 path (or a float64 path on another CPU, whose BLAS rounds differently) may pick a different candidate
than a float64 reference when two candidates score within rounding of each other. What matters is that its pick
scores (by the reference's own scores) within a tolerance of the best; where the best wins by more than that
tolerance, the picks must be identical.
"""

from __future__ import annotations

import numpy as np


def near_tie_targets(scores: np.ndarray, rtol: float, *, atol: float = 0.0, lower_is_better: bool = True
                     ) -> np.ndarray:
    """Targets whose second-best candidate scores within ``rtol * |best| + atol`` of the best.

    scores : (n_targets, n_candidates) reference scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    ordered = np.sort(scores if lower_is_better else -scores, axis=1)
    gap = np.abs(ordered[:, 1] - ordered[:, 0])
    return gap <= rtol * np.abs(ordered[:, 0]) + atol


def assert_picks_near_best(chosen: np.ndarray, reference: np.ndarray, scores: np.ndarray, rtol: float, *,
                           atol: float = 0.0, lower_is_better: bool = True, max_near_ties: int | None = None) -> None:
    """Assert ``chosen`` (candidate index per target) is as good as the reference pick, up to near ties.

    * every chosen candidate's reference score is within ``rtol * |best| + atol`` of the best score of its target;
    * where the best wins by more than that (no near tie), ``chosen`` equals ``reference`` exactly;
    * the reference itself picks a best candidate (a check of the reference and of ``scores``);
    * at most ``max_near_ties`` targets are near ties (default: fewer than half), so the test stays informative.
    """
    chosen, reference = np.asarray(chosen), np.asarray(reference)
    scores = np.asarray(scores, dtype=np.float64)
    rows = np.arange(len(scores))
    best = scores.min(axis=1) if lower_is_better else scores.max(axis=1)
    allowed = rtol * np.abs(best) + atol
    for name, picks in (("reference", reference), ("chosen", chosen)):
        shortfall = (scores[rows, picks] - best) * (1 if lower_is_better else -1)
        bad = np.flatnonzero(shortfall > allowed)
        assert bad.size == 0, (f"{name} pick scores worse than the best by more than rtol={rtol:g}, atol={atol:g} "
                               f"for targets {bad.tolist()}: shortfall {shortfall[bad].tolist()}, "
                               f"best {best[bad].tolist()}")
    near = near_tie_targets(scores, rtol, atol=atol, lower_is_better=lower_is_better)
    clear = ~near
    assert np.array_equal(chosen[clear], reference[clear]), (
        f"picks differ where the best wins clearly: targets {np.flatnonzero(clear & (chosen != reference)).tolist()}")
    limit = max_near_ties if max_near_ties is not None else (len(scores) - 1) // 2
    assert near.sum() <= limit, f"{near.sum()} of {len(scores)} targets are near ties: the test compares little"
