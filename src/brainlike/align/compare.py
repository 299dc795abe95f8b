"""Does model A beat model B? Paired tests on the pooled out-of-fold predictions (contracts.md section 7).

Two models scored on the same targets have pooled out-of-fold predictions P_A, P_B (sounds x targets) of the
responses Y (the mean over repetitions). A target's score is R2 = max(r, 0)^2 of its predictions (pepino2025); the
aggregate follows the records' rule (median over targets within a subject, then the mean over subjects). For each
pair of models:

* ``difference`` = score_A - score_B per target, and aggregate_A - aggregate_B for ``target: all``;
* ``ci_low, ci_high``: percentile interval (95%) of a paired bootstrap: the same resampled sounds (with
  replacement) for both models, and for the aggregate of a dataset with several subjects the same resampled
  subjects too;
* ``p``: two-sided permutation p-value. Under H0 the two models' predictions are exchangeable sound by sound, so a
  permutation swaps A's and B's predictions (of every target at once) on the sounds where a fair coin says so and
  recomputes the difference; p = (1 + #{|null| >= |observed|}) / (1 + n_permutations);
* ``q``: Benjamini-Hochberg FDR over one family of tests: the per-target tests of every pair (all targets, all
  pairs), and separately the aggregate tests of every pair;
* with several subjects, the aggregate rows also carry the paired Wilcoxon signed-rank test across subjects
  (``wilcoxon_statistic``, ``wilcoxon_p``).

Every draw is batched: with resampling counts W (draws x sounds) and swap masks M (permutations x sounds), the
scores of all draws follow from a few products W @ (sounds x targets) and M @ (sounds x targets).

What the test conditions on: the fitted encoding models. When the two models' predictions carry equal signal with
independent noise, the false-positive rate at 0.05 is 0.056 over 1,000 simulations; predictions of ridge models
refitted per fold also differ by the chance of their fitted weights, which the swap counts as a real difference
(rate 0.059 / 0.080 / 0.124 with 1 / 4 / 16 fitted features per model; benchmarks/compare_calibration.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Sequence

import numpy as np
import xarray as xr

from brainlike.align import aggregate as agg
from brainlike.align.stats import benjamini_hochberg, bootstrap_ci, paired_wilcoxon
from brainlike.errors import BrainlikeError, DataError, ProtocolError

LEVEL = 0.95
PER_TARGET_CI_MAX = 2000
"""Per-target bootstrap intervals are kept for datasets with at most this many targets (larger ones: p and q)."""
CHUNK_VALUES = 4_000_000
"""Draws are processed in chunks of about this many (draw x target) values."""
TEST = "permutation: the two models' out-of-fold predictions swapped per sound"


# ---------------------------------------------------------------------------------------------------------------
# scores of many draws at once


def _pearson_from_sums(n, sx, sy, sxx, syy, sxy) -> np.ndarray:
    cov = n * sxy - sx * sy
    den = np.sqrt(np.maximum(n * sxx - sx ** 2, 0) * np.maximum(n * syy - sy ** 2, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, cov / np.where(den > 0, den, 1.0), 0.0)


def r2(r: np.ndarray) -> np.ndarray:
    """The pepino2025 score: max(r, 0)^2."""
    return np.maximum(r, 0.0) ** 2


def resampled_scores(counts: np.ndarray, predictions: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """R2 per draw and target when sound i is drawn ``counts[d, i]`` times: (draws, targets)."""
    n = counts.sum(axis=1, keepdims=True)
    r = _pearson_from_sums(n, counts @ predictions, counts @ responses, counts @ predictions ** 2,
                           counts @ responses ** 2, counts @ (predictions * responses))
    return r2(r)


def swapped_scores(masks: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray,
                   responses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R2 of A and B per permutation and target after swapping their predictions on the sounds where
    ``masks[k, i]`` is 1: two (permutations, targets) arrays."""
    n = responses.shape[0]
    d = pred_b - pred_a
    m_d, m_dd, m_dy = masks @ d, masks @ (pred_b ** 2 - pred_a ** 2), masks @ (d * responses)
    sy, syy = responses.sum(axis=0), (responses ** 2).sum(axis=0)
    ra = _pearson_from_sums(n, pred_a.sum(0) + m_d, sy, (pred_a ** 2).sum(0) + m_dd, syy,
                            (pred_a * responses).sum(0) + m_dy)
    rb = _pearson_from_sums(n, pred_b.sum(0) - m_d, sy, (pred_b ** 2).sum(0) - m_dd, syy,
                            (pred_b * responses).sum(0) - m_dy)
    return r2(ra), r2(rb)


class Aggregate:
    """The records' aggregate of per-target scores: median within each subject, then the mean over subjects."""

    def __init__(self, subjects: np.ndarray) -> None:
        subjects = np.asarray(subjects).astype(str)
        self.names = list(dict.fromkeys(subjects))
        self.groups = [np.flatnonzero(subjects == s) for s in self.names]

    def per_subject(self, scores: np.ndarray) -> np.ndarray:
        """(draws, targets) -> (draws, subjects)."""
        return np.stack([np.median(scores[:, cols], axis=1) for cols in self.groups], axis=1)

    def __call__(self, scores: np.ndarray, subject_counts: np.ndarray | None = None) -> np.ndarray:
        per_subject = self.per_subject(scores)
        if subject_counts is None:
            return per_subject.mean(axis=1)
        return (per_subject * subject_counts).sum(axis=1) / subject_counts.sum(axis=1)


# ---------------------------------------------------------------------------------------------------------------
# one pair


@dataclass
class PairComparison:
    """Outcome of one pair: per target and aggregate."""

    score_a: np.ndarray
    score_b: np.ndarray
    difference: np.ndarray
    ci: np.ndarray  # (targets, 2), NaN when not computed
    p: np.ndarray
    aggregate: dict[str, Any] = field(default_factory=dict)


@dataclass
class Draws:
    """The random draws shared by every pair (common random numbers, reproducible from ``seed``)."""

    counts: np.ndarray  # (n_bootstrap, sounds)
    subject_counts: np.ndarray | None  # (n_bootstrap, subjects)
    masks: np.ndarray  # (n_permutations, sounds)

    @classmethod
    def make(cls, n_sounds: int, n_subjects: int, n_bootstrap: int, n_permutations: int, seed: int) -> "Draws":
        boot_rng, subject_rng, perm_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
        picks = boot_rng.integers(0, n_sounds, size=(n_bootstrap, n_sounds))
        counts = np.zeros((n_bootstrap, n_sounds))
        np.add.at(counts, (np.arange(n_bootstrap)[:, None], picks), 1.0)
        subject_counts = None
        if n_subjects > 1:
            chosen = subject_rng.integers(0, n_subjects, size=(n_bootstrap, n_subjects))
            subject_counts = np.zeros((n_bootstrap, n_subjects))
            np.add.at(subject_counts, (np.arange(n_bootstrap)[:, None], chosen), 1.0)
        masks = perm_rng.integers(0, 2, size=(n_permutations, n_sounds)).astype(np.float64)
        return cls(counts, subject_counts, masks)


def compare_pair(responses: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, subjects: np.ndarray,
                 draws: Draws, level: float = LEVEL) -> PairComparison:
    """Difference, paired bootstrap interval and permutation p-value of two models' predictions.

    Parameters
    ----------
    responses, pred_a, pred_b : ndarray (sounds, targets)
    subjects : ndarray (targets,)
    draws : Draws
    """
    y, pa, pb = (np.asarray(v, dtype=np.float64) for v in (responses, pred_a, pred_b))
    # shifts leave every correlation unchanged; they keep the sums of squares free of cancellation
    y = y - y.mean(axis=0)
    centre = (pa.mean(axis=0) + pb.mean(axis=0)) / 2
    pa, pb = pa - centre, pb - centre
    aggregate = Aggregate(subjects)
    ones = np.ones((1, y.shape[0]))
    score_a, score_b = resampled_scores(ones, pa, y)[0], resampled_scores(ones, pb, y)[0]
    difference = score_a - score_b
    overall_a, overall_b = float(aggregate(score_a[None])[0]), float(aggregate(score_b[None])[0])
    ci, ci_overall = _bootstrap(draws, pa, pb, y, aggregate, level)
    p, p_overall = _permutation_p(draws.masks, pa, pb, y, aggregate, difference, overall_a - overall_b)
    summary = {"score_a": overall_a, "score_b": overall_b, "difference": overall_a - overall_b,
               "ci_low": ci_overall[0], "ci_high": ci_overall[1], "p": p_overall,
               "per_subject_a": dict(zip(aggregate.names, aggregate.per_subject(score_a[None])[0].tolist())),
               "per_subject_b": dict(zip(aggregate.names, aggregate.per_subject(score_b[None])[0].tolist()))}
    return PairComparison(score_a, score_b, difference, ci, p, summary)


def _chunk(n_targets: int) -> int:
    return max(1, CHUNK_VALUES // n_targets)


def _bootstrap(draws: Draws, pa: np.ndarray, pb: np.ndarray, y: np.ndarray, aggregate: Aggregate,
               level: float) -> tuple[np.ndarray, tuple[float, float]]:
    """Percentile intervals of the per-target differences (targets, 2) and of the aggregate difference."""
    n_draws, n_targets = len(draws.counts), y.shape[1]
    if n_draws == 0:
        return np.full((n_targets, 2), np.nan), (np.nan, np.nan)
    keep_draws = n_targets <= PER_TARGET_CI_MAX
    per_target = np.zeros((n_draws, n_targets)) if keep_draws else None
    overall = np.zeros(n_draws)
    chunk = _chunk(n_targets)
    for start in range(0, n_draws, chunk):
        rows = slice(start, start + chunk)
        sa, sb = resampled_scores(draws.counts[rows], pa, y), resampled_scores(draws.counts[rows], pb, y)
        subject_counts = None if draws.subject_counts is None else draws.subject_counts[rows]
        overall[rows] = aggregate(sa, subject_counts) - aggregate(sb, subject_counts)
        if keep_draws:
            per_target[rows] = sa - sb
    tails = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    ci = np.percentile(per_target, tails, axis=0).T if keep_draws else np.full((n_targets, 2), np.nan)
    low, high = np.percentile(overall, tails)
    return ci, (float(low), float(high))


def _permutation_p(masks: np.ndarray, pa: np.ndarray, pb: np.ndarray, y: np.ndarray, aggregate: Aggregate,
                   difference: np.ndarray, observed: float) -> tuple[np.ndarray, float]:
    """Two-sided prediction-swap p-values per target and of the aggregate difference."""
    n_perm, n_targets = len(masks), y.shape[1]
    if n_perm == 0:
        return np.full(n_targets, np.nan), np.nan
    tolerance = 1e-12  # exact ties (e.g. identical models) count as exceedances
    exceed, exceed_overall = np.zeros(n_targets), 0
    chunk = _chunk(n_targets)
    for start in range(0, n_perm, chunk):
        sa, sb = swapped_scores(masks[start:start + chunk], pa, pb, y)
        exceed += (np.abs(sa - sb) >= np.abs(difference) - tolerance).sum(axis=0)
        exceed_overall += int((np.abs(aggregate(sa) - aggregate(sb)) >= abs(observed) - tolerance).sum())
    return (1 + exceed) / (1 + n_perm), (1 + exceed_overall) / (1 + n_perm)


# ---------------------------------------------------------------------------------------------------------------
# results -> comparison records


@dataclass
class ComparisonInputs:
    """What a comparison of models reads from a results object."""

    detail: xr.Dataset
    dataset: Any  # NeuralDataset aligned to the detail's stimuli and targets
    responses: np.ndarray
    subjects: np.ndarray
    protocol: str | None
    selection: str | None


def compare_models(results, models: Sequence[str], *, metric: str = "regression", dataset: str | None = None,
                   n_bootstrap: int = 1000, n_permutations: int = 1000, seed: int = 0,
                   selection: str | None = None) -> tuple[list[dict[str, Any]], xr.Dataset | None]:
    """Comparison records for every pair of ``models`` (in the given order: A-B, A-C, B-C...).

    Parameters
    ----------
    results : Results
        Scores of the models; ``regression`` needs the detail's pooled out-of-fold ``predictions``.
    models : sequence of str
        Two or more model specs as they appear in the records.
    metric : {"regression", "rsa"}
        ``rsa`` has no predictions: its rows compare per-subject scores (paired Wilcoxon, bootstrap over subjects).
    dataset : str, optional
        Which dataset's scores to compare when the results hold several.

    Returns
    -------
    records : list of dict
        Per-target rows (datasets with at most ``PER_TARGET_ROWS_MAX`` targets) and the aggregate row per pair.
    detail : xarray.Dataset or None
        Per pair and target: ``difference``, ``ci_low``, ``ci_high``, ``p``, ``q`` (regression).
    """
    models = list(dict.fromkeys(models))
    if len(models) < 2:
        raise BrainlikeError("compare needs at least two different models")
    if metric == "rsa":
        return _compare_rsa(results, models, selection or "layer-max", dataset, n_bootstrap, seed), None
    if metric != "regression":
        raise BrainlikeError(f"compare works on metric regression or rsa, not {metric!r}")
    inputs = comparison_inputs(results, models, dataset)
    n_sounds, n_targets = inputs.responses.shape
    draws = Draws.make(n_sounds, len(set(inputs.subjects)), n_bootstrap, n_permutations, seed)
    pairs = list(combinations(models, 2))
    outcomes = {}
    for a, b in pairs:
        pred_a = inputs.detail["predictions"].sel(model=a).values
        pred_b = inputs.detail["predictions"].sel(model=b).values
        outcomes[a, b] = compare_pair(inputs.responses, pred_a, pred_b, inputs.subjects, draws)
    per_target_q = benjamini_hochberg(np.concatenate([o.p for o in outcomes.values()])).reshape(len(pairs), -1)
    aggregate_q = benjamini_hochberg(np.array([o.aggregate["p"] for o in outcomes.values()]))
    common = dict(dataset=inputs.dataset.name, metric="regression", protocol=inputs.protocol,
                  selection=inputs.selection, sem=None, layer=None, n_bootstrap=n_bootstrap,
                  n_permutations=n_permutations, seed=seed, test=TEST)
    records = []
    names = inputs.dataset.target_names
    several = len(set(inputs.subjects)) > 1
    for k, ((a, b), outcome) in enumerate(outcomes.items()):
        pair = dict(common, model=a, model_a=a, model_b=b)
        if n_targets <= agg.PER_TARGET_ROWS_MAX:
            for t, name in enumerate(names):
                records.append(agg.clean(dict(
                    pair, target=name, score=outcome.difference[t], difference=outcome.difference[t],
                    ci_low=outcome.ci[t, 0], ci_high=outcome.ci[t, 1], p=outcome.p[t], q=per_target_q[k, t],
                    score_a=outcome.score_a[t], score_b=outcome.score_b[t], ci="paired bootstrap over sounds")))
        summary = outcome.aggregate
        row = dict(pair, target="all", score=summary["difference"], difference=summary["difference"],
                   ci_low=summary["ci_low"], ci_high=summary["ci_high"], p=summary["p"], q=aggregate_q[k],
                   score_a=summary["score_a"], score_b=summary["score_b"], n_targets=n_targets,
                   n_subjects=len(summary["per_subject_a"]),
                   ci="paired bootstrap over sounds" + (" and subjects" if several else ""))
        if n_targets > agg.PER_TARGET_ROWS_MAX:
            significant = per_target_q[k] < 0.05
            row.update(n_targets_a_better=int((significant & (outcome.difference > 0)).sum()),
                       n_targets_b_better=int((significant & (outcome.difference < 0)).sum()))
        if several:
            row.update(_wilcoxon(summary["per_subject_a"], summary["per_subject_b"]))
        records.append(agg.clean(row))
    detail = xr.Dataset(
        {"difference": (("pair", "target"), np.stack([o.difference for o in outcomes.values()])),
         "ci_low": (("pair", "target"), np.stack([o.ci[:, 0] for o in outcomes.values()])),
         "ci_high": (("pair", "target"), np.stack([o.ci[:, 1] for o in outcomes.values()])),
         "p": (("pair", "target"), np.stack([o.p for o in outcomes.values()])),
         "q": (("pair", "target"), per_target_q)},
        coords={"pair": [f"{a} vs {b}" for a, b in pairs], "model_a": ("pair", [a for a, _ in pairs]),
                "model_b": ("pair", [b for _, b in pairs]), "target": names},
        attrs={"dataset": inputs.dataset.name, "metric": "regression", "test": TEST, "seed": seed,
               "n_bootstrap": n_bootstrap, "n_permutations": n_permutations})
    return records, detail


def _wilcoxon(per_subject_a: dict[str, float], per_subject_b: dict[str, float]) -> dict[str, Any]:
    try:
        outcome = paired_wilcoxon(per_subject_a, per_subject_b)
    except (BrainlikeError, ValueError):
        return {"wilcoxon_statistic": None, "wilcoxon_p": None}
    return {"wilcoxon_statistic": outcome["statistic"], "wilcoxon_p": outcome["p"]}


def comparison_inputs(results, models: Sequence[str], dataset: str | None = None) -> ComparisonInputs:
    """The detail holding every model's predictions and the dataset's responses aligned to it.

    Raises
    ------
    ProtocolError
        No detail with pooled out-of-fold predictions of every model (e.g. tuckute2023 results), or several
        datasets and none chosen.
    DataError
        The dataset's responses no longer match the scores in the results.
    """
    from brainlike.data.neural import NeuralDataset, load_dataset

    candidates = []
    for detail in results.details.values():
        if detail is None or "predictions" not in detail or "model" not in detail["predictions"].dims:
            continue
        have = [str(m) for m in detail["model"].values]
        if all(m in have for m in models) and (dataset is None or detail.attrs.get("dataset") == dataset):
            candidates.append(detail)
    if not candidates:
        present = sorted({str(m) for d in results.details.values() if d is not None and "predictions" in d
                          for m in d["model"].values})
        raise ProtocolError(f"no pooled out-of-fold predictions of {', '.join(models)} in these results "
                            f"(compare needs a regression protocol that keeps them, e.g. pepino2025; models with "
                            f"predictions: {', '.join(present) or 'none'})")
    if len(candidates) > 1:
        names = [str(d.attrs.get("dataset")) for d in candidates]
        raise ProtocolError(f"the results hold predictions on several datasets ({', '.join(names)}): choose one")
    detail = candidates[0]
    name = detail.attrs.get("dataset")
    if not name:
        raise DataError("the results' detail does not name its dataset")
    if tuple(detail["predictions"].dims) != ("model", "stimulus", "target"):
        raise ProtocolError(f"compare needs pooled predictions (model, stimulus, target); these have dims "
                            f"{tuple(detail['predictions'].dims)} (time-resolved protocols are not compared yet)")
    neural = _time_averaged_as_scored(load_dataset(str(name)), results, models)
    neural = neural.align_to([str(s) for s in detail["stimulus"].values])
    targets = [str(t) for t in detail["target"].values]
    index = {t: i for i, t in enumerate(neural.target_names)}
    missing = [t for t in targets if t not in index]
    if missing:
        raise DataError(f"{name} has no target(s) {missing[:3]} of the results (dataset changed?)")
    neural = NeuralDataset(neural.name, neural.responses.sel(target=targets), neural.kind, dict(neural.checksums),
                           neural.synthetic, dict(neural.attrs))
    responses = neural.mean_responses()
    subjects = agg.subject_labels(neural)
    _check_scores(detail, models, responses)
    protocol = detail.attrs.get("protocol")
    selection = next((r.get("selection") for r in results if r.get("metric") == "regression"
                      and r.get("model") in models and r.get("dataset") == name), None)
    return ComparisonInputs(detail, neural, responses, subjects, protocol, selection)


def _time_averaged_as_scored(neural, results, models: Sequence[str]):
    """A time-resolved dataset averaged over the window its time-averaged scores used (records' ``window``)."""
    if not getattr(neural, "time_resolved", False):
        return neural
    from brainlike.data.neural import parse_window

    window = next((r.get("window") for r in results if r.get("model") in models and r.get("window")), None)
    if window is None:
        raise ProtocolError(f"{neural.name} is time-resolved and the records name no averaging window")
    start, stop = parse_window(window)
    return neural.window_average(float(start), float(stop))


def _check_scores(detail: xr.Dataset, models: Sequence[str], responses: np.ndarray) -> None:
    """The scores recomputed from the predictions must be the results' scores (same responses)."""
    if "score" not in detail:
        return
    ones = np.ones((1, responses.shape[0]))
    y = responses - responses.mean(axis=0)
    for model in models:
        predictions = detail["predictions"].sel(model=model).values
        recomputed = resampled_scores(ones, predictions - predictions.mean(axis=0), y)[0]
        stored = detail["score"].sel(model=model).values
        if not np.allclose(recomputed, stored, atol=1e-6, equal_nan=True):
            raise DataError(f"the responses of {detail.attrs.get('dataset')} do not reproduce {model}'s scores in "
                            "these results (was the dataset changed since scoring?)")


def _compare_rsa(results, models: list[str], selection: str, dataset: str | None, n_bootstrap: int,
                 seed: int) -> list[dict[str, Any]]:
    """Per-subject RSA scores compared by the paired Wilcoxon test, with a bootstrap interval over subjects."""
    def per_subject(model: str) -> tuple[dict[str, float], str]:
        rows = [r for r in results if r["model"] == model and r["metric"] == "rsa" and r.get("subject")
                and r.get("roi") is None and r.get("selection") == selection
                and (dataset is None or r["dataset"] == dataset)]
        if not rows:
            raise ProtocolError(f"no per-subject rsa ({selection}) records of {model!r}: RSA comparisons need a "
                                "dataset with several subjects")
        return {r["subject"]: r["score"] for r in rows}, rows[0]["dataset"]

    rows = []
    for a, b in combinations(models, 2):
        (sa, name), (sb, _) = per_subject(a), per_subject(b)
        shared = sorted(set(sa) & set(sb))
        differences = np.array([sa[s] - sb[s] for s in shared])
        low, high = bootstrap_ci(differences, n_boot=n_bootstrap, seed=seed) if len(shared) > 1 else (None, None)
        test = _wilcoxon(sa, sb)
        rows.append(dict(model=a, dataset=name, metric="rsa", protocol=None, selection=selection, target="all",
                         score=float(differences.mean()), sem=agg.sem_over_subjects(differences), layer=None,
                         model_a=a, model_b=b, difference=float(differences.mean()), ci_low=low, ci_high=high,
                         p=test["wilcoxon_p"], n_subjects=len(shared), test="paired Wilcoxon across subjects",
                         ci="bootstrap over subjects", **test))
    q = benjamini_hochberg(np.array([np.nan if r["p"] is None else r["p"] for r in rows]))
    return [agg.clean({**r, "q": q[k]}) for k, r in enumerate(rows)]
