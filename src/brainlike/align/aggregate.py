"""Aggregation of per-target scores into result records (docs/contracts.md section 1)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

__all__ = ["PER_TARGET_ROWS_MAX", "sem_over_subjects", "mode", "subject_labels", "median_then_mean", "base_record",
           "clean"]

PER_TARGET_ROWS_MAX = 100
"""Datasets with at most this many targets get one record per target (components, electrodes); larger ones
(voxels) get per-subject and per-ROI records, and per-target detail in ``detail.nc``."""


def sem_over_subjects(values: Sequence[float]) -> float | None:
    """std / sqrt(n - 1) across subjects (= sample std / sqrt(n)); None for a single subject."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    return float(values.std() / np.sqrt(len(values) - 1))


def mode(items: Sequence[Any]) -> Any:
    """Most frequent item; ties go to the first seen."""
    if len(items) == 0:
        return None
    counts = Counter(items)
    top = max(counts.values())
    return next(item for item in items if counts[item] == top)


def subject_labels(dataset) -> np.ndarray:
    labels = dataset.target_coord("subject")
    return np.asarray(labels if labels is not None else ["all"] * dataset.n_targets).astype(str)


def median_then_mean(scores: np.ndarray, subjects: np.ndarray) -> tuple[float, float | None, dict[str, float]]:
    """Median over targets within each subject, then mean over subjects; SEM across subjects."""
    per_subject = {s: float(np.median(scores[subjects == s])) for s in dict.fromkeys(subjects)}
    values = list(per_subject.values())
    return float(np.mean(values)), sem_over_subjects(values), per_subject


def base_record(model: str, dataset: str, metric: str, protocol: str, selection: str, **extra: Any) -> dict:
    record = {"model": model, "dataset": dataset, "metric": metric, "protocol": protocol, "selection": selection,
              "target": "all", "score": None, "sem": None, "layer": None}
    record.update(extra)
    return record


def clean(record: dict) -> dict:
    """Replace NaN by None and numpy scalars by Python ones (records are JSON)."""
    out = {}
    for key, value in record.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        out[key] = value
    return out
