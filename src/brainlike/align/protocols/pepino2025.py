"""Protocol ``pepino2025``: nested cross-validation on the stratified folds (engine: :mod:`brainlike.align.pepino2025`).

Options: ``bootstrap`` (N resamples: a percentile CI over stimuli of the aggregate, resampling the pooled
out-of-fold predictions, and over subjects where there are several) and ``permutations`` (N reruns of the whole
protocol on responses with shuffled stimulus labels: a null distribution and a one-sided p-value).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from brainlike.align import aggregate as agg
from brainlike.align.pepino2025 import ALPHA_LIMITS, ALPHAS, RegressionResult, run_pepino2025
from brainlike.align.protocols import Protocol, RegressionInputs, TargetScores, register_protocol


def parameters(options: dict[str, Any] | None = None) -> dict[str, Any]:
    options = options or {}
    return {"alphas": ALPHAS.tolist(), "alpha_limits": list(ALPHA_LIMITS), "outer": "5 stratified folds",
            "inner": "leave one fold out on the other folds", "selection": "joint alpha and layer per target",
            "score": "max(r,0)^2 pooled out-of-fold", "rsa": "z-scored features, 1 - Pearson, Spearman upper",
            "bootstrap": int(options.get("bootstrap") or 0), "permutations": int(options.get("permutations") or 0)}


def run(inputs: RegressionInputs) -> TargetScores:
    responses = inputs.dataset.mean_responses()
    result = run_pepino2025(inputs.grams, responses, inputs.folds, inputs.backend)
    overall: dict[str, Any] = {}
    subjects = agg.subject_labels(inputs.dataset)
    if inputs.options.get("bootstrap"):
        overall.update(_bootstrap(result, responses, subjects, int(inputs.options["bootstrap"]), inputs.seed))
    if inputs.options.get("permutations"):
        observed = agg.median_then_mean(result.scores, subjects)[0]
        overall.update(_permutation(inputs, responses, subjects, observed, int(inputs.options["permutations"])))
    return TargetScores(scores=result.scores[None, :], layer_index=result.layer_index,
                        detail=_detail(inputs, result), target_keys={"r": result.r}, overall_keys=overall)


def _detail(inputs: RegressionInputs, result: RegressionResult) -> xr.Dataset:
    layer_names = np.array(inputs.layers)
    dataset = inputs.dataset
    return xr.Dataset(
        {"score": ("target", result.scores), "r": ("target", result.r),
         "layer": (("fold", "target"), layer_names[result.layer_index].astype(str)),
         "alpha": (("fold", "target"), result.alpha),
         "predictions": (("stimulus", "target"), result.predictions)},
        coords={"target": dataset.target_names, "fold": np.arange(result.alpha.shape[0]),
                "stimulus": dataset.stimulus_ids},
        attrs={"model": inputs.activations.model, "dataset": dataset.name, "protocol": "pepino2025",
               "metric": "regression"},
    )


def _bootstrap(result: RegressionResult, responses: np.ndarray, subjects: np.ndarray, n_boot: int,
               seed: int) -> dict[str, Any]:
    from brainlike.align.backend import NumpyBackend
    from brainlike.align.stats import bootstrap_ci, bootstrap_stimuli

    pearson = NumpyBackend().column_pearson

    def aggregate(idx: np.ndarray) -> float:
        r = np.nan_to_num(pearson(result.predictions[idx], responses[idx]))
        return agg.median_then_mean(np.maximum(r, 0) ** 2, subjects)[0]

    low, high = bootstrap_stimuli(aggregate, len(responses), n_boot=n_boot, seed=seed)
    out = {"ci_low": low, "ci_high": high, "ci": f"95% percentile bootstrap over stimuli ({n_boot})"}
    per_subject = agg.median_then_mean(result.scores, subjects)[2]
    if len(per_subject) > 1:
        out["ci_subjects_low"], out["ci_subjects_high"] = bootstrap_ci(np.array(list(per_subject.values())),
                                                                       n_boot=n_boot, seed=seed)
    return out


def _permutation(inputs: RegressionInputs, responses: np.ndarray, subjects: np.ndarray, observed: float,
                 n_perm: int) -> dict[str, Any]:
    from brainlike.align.stats import permutation_null

    def shuffled_score(order: np.ndarray) -> float:
        shuffled = run_pepino2025(inputs.grams, responses[order], inputs.folds, inputs.backend)
        return agg.median_then_mean(shuffled.scores, subjects)[0]

    null = permutation_null(shuffled_score, len(responses), observed, n_perm=n_perm, seed=inputs.seed)
    return {"p_permutation": null["p"], "null_mean": null["null_mean"], "null_95": null["null_95"],
            "n_permutations": n_perm}


PROTOCOL = register_protocol(Protocol(
    name="pepino2025", selection="nested-cv", run=run, parameters=parameters,
    description="Pepino et al. 2025: 5 stratified folds, inner leave-one-fold-out picks alpha and layer per target",
    options=("bootstrap", "permutations")))
