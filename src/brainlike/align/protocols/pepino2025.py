"""Protocol ``pepino2025``: nested cross-validation on the stratified folds (engine: :mod:`brainlike.align.pepino2025`).

Options: ``bootstrap`` (N resamples: a percentile CI over stimuli of the aggregate, resampling the pooled
out-of-fold predictions, and over subjects where there are several) and ``permutations`` (N reruns of the whole
protocol on responses with shuffled stimulus labels: a null distribution and a one-sided p-value).

Variance partitioning (``--control``, methods.md section 10): :func:`partition` runs the model, the control and the
joint banded ridge (:mod:`brainlike.align.partition`) on the same folds; records hold one row per part with
bootstrap CIs over stimuli (``bootstrap`` resamples, default 1000).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from brainlike.align import aggregate as agg
from brainlike.align.partition import PARTS
from brainlike.align.pepino2025 import ALPHA_LIMITS, ALPHAS, RegressionResult, run_pepino2025
from brainlike.align.protocols import PartScores, Protocol, RegressionInputs, TargetScores, register_protocol

__all__ = ["parameters", "run", "PROTOCOL"]


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


def partition(inputs: RegressionInputs) -> TargetScores:
    """Variance partitioning of the model against ``inputs.controls`` (one band each)."""
    from brainlike.align.banded import BAND_ALPHAS
    from brainlike.align.partition import DEFAULT_BOOTSTRAP, bootstrap_parts, run_partition

    responses = inputs.dataset.mean_responses()
    result = run_partition(inputs.grams, inputs.control_grams, responses, inputs.folds, inputs.backend)
    n_boot = int(inputs.options.get("bootstrap") or DEFAULT_BOOTSTRAP)
    subjects = agg.subject_labels(inputs.dataset)
    ci = bootstrap_parts(result.predictions, responses, subjects, n_boot, inputs.seed)
    bands = band_labels(inputs)
    model_layers = np.array(inputs.layers)[result.model.layer_index]
    per_band = [np.array(c.layers)[b.layer_index] for c, b in zip(inputs.controls, result.control_bands)]
    control_layers = np.array([["+".join(names) for names in zip(*rows)] for rows in zip(*per_band)])
    split = {band: result.joint.split_r2[i] for i, band in enumerate(bands)}
    split_records = np.array([{band: float(v[t]) for band, v in split.items()}
                              for t in range(responses.shape[1])], dtype=object)
    on_edge = result.joint.on_edge.mean(axis=0)
    scores = PartScores(
        control=inputs.control_name, scores=result.base_scores,
        layers={"model": model_layers, "control": control_layers},
        target_keys={"model": {"r": result.model.r}, "control": {"r": result.control.r},
                     "joint": {"r": result.joint.r, "split_r2": split_records, "alpha_on_edge": on_edge}},
        ci=ci, record_keys={"ci": f"95% percentile bootstrap over stimuli ({n_boot})",
                            **({"control_identical": True} if result.identical else {})})
    detail = _detail(inputs, result.model)
    detail = detail.assign(
        part_score=(("part", "target"), np.stack([result.parts[p] for p in PARTS])),
        predictions_control=(("stimulus", "target"), result.control.predictions),
        predictions_joint=(("stimulus", "target"), result.joint.predictions),
        split_r2=(("band", "target"), result.joint.split_r2),
        split_r2_mean=("target", result.joint.split_r2_mean),
        joint_alpha=(("fold", "band", "target"), result.joint.alphas),
        joint_on_edge=(("fold", "target"), result.joint.on_edge),
        control_layer=(("fold", "target"), control_layers.astype(str)),
    ).assign_coords(part=list(PARTS), band=bands)
    detail.attrs.update(control=inputs.control_name, band_alphas=BAND_ALPHAS.tolist(),
                        band_alphas_unit="relative to each band's kernel scale (trace / n of its centred Gram)")
    return TargetScores(scores=result.model.scores[None, :], layer_index=result.model.layer_index, detail=detail,
                        partition=scores)


def band_labels(inputs: RegressionInputs) -> list[str]:
    """Band names of the joint fit: ``model``, then each control spec (numbered if repeated)."""
    labels = ["model"]
    for control in inputs.controls:
        label = control.model
        while label in labels:
            label = f"{control.model}#{sum(l.startswith(control.model) for l in labels) + 1}"
        labels.append(label)
    return labels


PROTOCOL = register_protocol(Protocol(
    name="pepino2025", selection="nested-cv", run=run, parameters=parameters,
    description="Pepino et al. 2025: 5 stratified folds, inner leave-one-fold-out picks alpha and layer per target",
    options=("bootstrap", "permutations"), partition=partition))
