"""RSA for multi-subject datasets: one brain RDM per subject (and per ROI), noise ceilings."""

from __future__ import annotations

import numpy as np

from brainlike.align import aggregate as agg
from brainlike.align.rsa import cv_layer_rsa, layer_rhos, leave_one_subject_out_ceiling, rdm
from brainlike.data.neural import NeuralDataset


def subject_rdms(dataset: NeuralDataset, roi: str | None = None) -> tuple[list[str], list[np.ndarray]]:
    """One RDM per subject over that subject's targets (optionally restricted to one ROI)."""
    responses = dataset.mean_responses()
    subjects = agg.subject_labels(dataset)
    rois = dataset.target_coord("roi")
    names, matrices = [], []
    for subject in dict.fromkeys(subjects):
        cols = subjects == subject
        if roi is not None:
            cols &= np.asarray(rois).astype(str) == roi
        if cols.sum() < 2:
            continue
        names.append(str(subject))
        matrices.append(rdm(responses[:, cols]))
    return names, matrices


def rsa_records_voxels(activations, dataset: NeuralDataset, model_rdms: list[np.ndarray], folds: np.ndarray,
                       protocol: str) -> list[dict]:
    """layer-max and cv records overall and per ROI, raw and as a fraction of the leave-one-subject-out ceiling."""
    rois = dataset.target_coord("roi")
    groups = [None] + (list(dict.fromkeys(np.asarray(rois).astype(str))) if rois is not None else [])
    records = []
    for roi in groups:
        subjects, brain = subject_rdms(dataset, roi)
        if not brain:
            continue
        records.extend(_group_records(activations, dataset, model_rdms, folds, protocol, roi, subjects, brain))
    return [agg.clean(r) for r in records]


def _group_records(activations, dataset, model_rdms, folds, protocol, roi, subjects, brain) -> list[dict]:
    layers = activations.layers
    common = dict(model=activations.model, dataset=dataset.name, metric="rsa", protocol=protocol,
                  n_subjects=len(subjects))
    if roi is not None:
        common["roi"] = roi
    ceiling = leave_one_subject_out_ceiling(brain) if len(brain) > 1 else None
    ceiling_mean = float(np.mean(ceiling)) if ceiling is not None else None
    per_subject = np.stack([layer_rhos(model_rdms, b) for b in brain])  # (subjects, layers)
    mean_over_subjects = per_subject.mean(axis=0)
    best = int(np.argmax(mean_over_subjects))
    max_scores = per_subject[:, best]
    cv = [cv_layer_rsa(model_rdms, b, folds) for b in brain]
    cv_scores = np.array([c[0] for c in cv])
    cv_layer = layers[agg.mode([layer for _, chosen in cv for layer in chosen])]
    records = []
    for selection, scores, layer in (("layer-max", max_scores, layers[best]), ("cv", cv_scores, cv_layer)):
        score = float(np.mean(scores))
        records.append(agg.base_record(**common, selection=selection, score=score,
                                       sem=agg.sem_over_subjects(scores), layer=layer, ceiling=ceiling_mean,
                                       method="loso" if ceiling_mean else None,
                                       score_over_ceiling=score / ceiling_mean if ceiling_mean else None))
        for s, subject in enumerate(subjects):
            records.append(agg.base_record(**common, selection=selection, score=float(scores[s]), layer=layer,
                                           subject=subject,
                                           ceiling=float(ceiling[s]) if ceiling is not None else None))
    return records
