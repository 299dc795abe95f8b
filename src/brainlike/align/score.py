"""From activations and a neural dataset to result records: regression (pepino2025, tuckute2023) and RSA."""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainlike.align import aggregate as agg
from brainlike.align.backend import get_backend
from brainlike.align.pepino2025 import RegressionResult, run_pepino2025
from brainlike.align.ridge import gram_matrix
from brainlike.align.rsa import cv_layer_rsa, layer_rhos, rdm
from brainlike.data.neural import NeuralDataset
from brainlike.errors import ProtocolError
from brainlike.extract import Activations

PROTOCOLS = ("pepino2025", "tuckute2023")
METRICS = ("regression", "rsa")


def check_inputs(activations: Activations, dataset: NeuralDataset) -> None:
    if list(activations.stimulus_ids) != dataset.stimulus_ids:
        raise ProtocolError("activations and responses are not in the same stimulus order (align by name first)")
    for layer, values in activations.arrays.items():
        if not np.all(np.isfinite(values)):
            raise ProtocolError(f"{activations.model}: layer {layer!r} has NaN or Inf activations")


def regression(activations: Activations, dataset: NeuralDataset, folds: np.ndarray, protocol: str = "pepino2025",
               device: str = "cpu", backend: str | None = None, seed: int = 0, bootstrap: int = 0,
               permutations: int = 0) -> tuple[list[dict], xr.Dataset]:
    """Voxel/component-wise regression records and per-target detail.

    With ``bootstrap`` > 0 (pepino2025) the overall record gains a percentile CI over stimuli (resampling the pooled
    out-of-fold predictions) and, for several subjects, over subjects; with ``permutations`` > 0 the whole protocol
    is rerun on responses with shuffled stimulus labels, giving a null distribution and a one-sided p-value.
    """
    check_inputs(activations, dataset)
    grams = [gram_matrix(activations.arrays[layer]) for layer in activations.layers]
    engine = get_backend(device, backend)
    if protocol == "pepino2025":
        responses = dataset.mean_responses()
        result = run_pepino2025(grams, responses, folds, engine)
        records = _pepino_records(activations, dataset, result)
        overall = next(r for r in records if r["target"] == "all" and "subject" not in r and "roi" not in r)
        if bootstrap:
            overall.update(_bootstrap(result, responses, agg.subject_labels(dataset), bootstrap, seed))
        if permutations:
            overall.update(_permutation(grams, responses, folds, engine, agg.subject_labels(dataset),
                                        overall["score"], permutations, seed))
        return records, _pepino_detail(activations, dataset, result)
    if protocol == "tuckute2023":
        from brainlike.align.tuckute2023 import tuckute_records

        return tuckute_records(activations, dataset, grams, engine, seed=seed)
    raise ProtocolError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def _bootstrap(result: RegressionResult, responses: np.ndarray, subjects: np.ndarray, n_boot: int,
               seed: int) -> dict:
    from brainlike.align.stats import bootstrap_ci, bootstrap_stimuli

    def aggregate(idx: np.ndarray) -> float:
        r = np.nan_to_num(agg_columns_r(result.predictions[idx], responses[idx]))
        return agg.median_then_mean(np.maximum(r, 0) ** 2, subjects)[0]

    low, high = bootstrap_stimuli(aggregate, len(responses), n_boot=n_boot, seed=seed)
    out = {"ci_low": low, "ci_high": high, "ci": f"95% percentile bootstrap over stimuli ({n_boot})"}
    per_subject = agg.median_then_mean(result.scores, subjects)[2]
    if len(per_subject) > 1:
        out["ci_subjects_low"], out["ci_subjects_high"] = bootstrap_ci(np.array(list(per_subject.values())),
                                                                       n_boot=n_boot, seed=seed)
    return out


def agg_columns_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns (0 for constant columns)."""
    from brainlike.align.backend import NumpyBackend

    return NumpyBackend().column_pearson(a, b)


def _permutation(grams, responses, folds, engine, subjects, observed: float, n_perm: int, seed: int) -> dict:
    from brainlike.align.stats import permutation_null

    def shuffled_score(order: np.ndarray) -> float:
        return agg.median_then_mean(run_pepino2025(grams, responses[order], folds, engine).scores, subjects)[0]

    null = permutation_null(shuffled_score, len(responses), observed, n_perm=n_perm, seed=seed)
    return {"p_permutation": null["p"], "null_mean": null["null_mean"], "null_95": null["null_95"],
            "n_permutations": n_perm}


def _pepino_records(activations: Activations, dataset: NeuralDataset, result: RegressionResult) -> list[dict]:
    layers = activations.layers
    subjects = agg.subject_labels(dataset)
    rois = dataset.target_coord("roi")
    common = dict(model=activations.model, dataset=dataset.name, metric="regression", protocol="pepino2025",
                  selection="nested-cv")
    records = []
    if dataset.n_targets <= agg.PER_TARGET_ROWS_MAX:
        for t, name in enumerate(dataset.target_names):
            records.append(agg.base_record(**common, target=name, score=float(result.scores[t]),
                                           layer=layers[agg.mode(list(result.layer_index[:, t]))],
                                           r=float(result.r[t])))
    score, sem, per_subject = agg.median_then_mean(result.scores, subjects)
    all_layer = layers[agg.mode(list(result.layer_index.ravel()))]
    records.append(agg.base_record(**common, score=score, sem=sem, layer=all_layer, n_targets=dataset.n_targets,
                                   n_subjects=len(per_subject), mean_over_targets=float(result.scores.mean())))
    if len(per_subject) > 1:
        for subject, value in per_subject.items():
            cols = subjects == subject
            records.append(agg.base_record(**common, score=value, subject=subject, n_targets=int(cols.sum()),
                                           layer=layers[agg.mode(list(result.layer_index[:, cols].ravel()))]))
    if rois is not None and dataset.kind != "components":
        for roi in dict.fromkeys(np.asarray(rois).astype(str)):
            cols = np.asarray(rois).astype(str) == roi
            score, sem, per_subject = agg.median_then_mean(result.scores[cols], subjects[cols])
            records.append(agg.base_record(**common, score=score, sem=sem, roi=roi, n_targets=int(cols.sum()),
                                           n_subjects=len(per_subject),
                                           layer=layers[agg.mode(list(result.layer_index[:, cols].ravel()))]))
    return [agg.clean(r) for r in records]


def _pepino_detail(activations: Activations, dataset: NeuralDataset, result: RegressionResult) -> xr.Dataset:
    targets = dataset.target_names
    layer_names = np.array(activations.layers)
    return xr.Dataset(
        {"score": ("target", result.scores), "r": ("target", result.r),
         "layer": (("fold", "target"), layer_names[result.layer_index].astype(str)),
         "alpha": (("fold", "target"), result.alpha)},
        coords={"target": targets, "fold": np.arange(result.alpha.shape[0])},
        attrs={"model": activations.model, "dataset": dataset.name, "protocol": "pepino2025",
               "metric": "regression"},
    )


def rsa(activations: Activations, dataset: NeuralDataset, folds: np.ndarray, protocol: str = "pepino2025",
        roi: str | None = None) -> list[dict]:
    """RSA records: ``layer-max`` and ``cv`` rows (one RDM over all targets per subject)."""
    from brainlike.align.rsa_voxels import subject_rdms, rsa_records_voxels

    check_inputs(activations, dataset)
    model_rdms = [rdm(activations.arrays[layer]) for layer in activations.layers]
    subjects, brain = subject_rdms(dataset)
    if len(subjects) > 1 or dataset.target_coord("roi") is not None and dataset.kind != "components":
        return rsa_records_voxels(activations, dataset, model_rdms, folds, protocol)
    common = dict(model=activations.model, dataset=dataset.name, metric="rsa", protocol=protocol)
    rhos = layer_rhos(model_rdms, brain[0])
    best = int(np.argmax(rhos))
    rho_cv, chosen = cv_layer_rsa(model_rdms, brain[0], folds)
    records = [
        agg.base_record(**common, selection="layer-max", score=float(rhos[best]), layer=activations.layers[best],
                        n_targets=dataset.n_targets, layer_scores={l: float(r) for l, r in
                                                                   zip(activations.layers, rhos)}),
        agg.base_record(**common, selection="cv", score=rho_cv, layer=activations.layers[agg.mode(chosen)],
                        n_targets=dataset.n_targets),
    ]
    return [agg.clean(r) for r in records]
