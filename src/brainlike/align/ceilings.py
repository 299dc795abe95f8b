"""Noise ceilings of targets with repetitions, and scores normalised by them (methods.md section 12).

Responses ``y[s, t, r]`` of target t to sound s on repetition r (R repetitions, S sounds). Every variance over
sounds (``var_s``) and over repetitions (``var_r``) uses ddof 1. Each method says what it bounds:

``spearman-brown`` (bounds R2)
    r_pair = the median over the R (R - 1) / 2 pairs of single repetitions of their Pearson r across sounds (as
    tuckute2023's r_v, without its floor); the reliability of the R-repetition mean is the Spearman-Brown extension
    R r_pair / (1 + (R - 1) r_pair): the expected correlation between two independent R-repetition means, which
    bounds the R2 of any prediction of the mean (and sqrt of it bounds r). Null where it is <= 0.
``ncsnr`` (bounds R2; Allen et al. 2022)
    s2_n = mean_s var_r(y); s2_s = max(0, var_s(mean_r y) - s2_n / R); ceiling = s2_s / (s2_s + s2_n / R), the
    fraction of the variance of the R-repetition mean that is signal; ``ncsnr`` = sqrt(s2_s / s2_n) is kept too.
``cc-max`` (bounds r; Schoppe et al. 2016, Hsu et al. 2004)
    SP = (var_s(sum_r y) - sum_r var_s(y_r)) / (R (R - 1)); cc_max = sqrt(SP / var_s(mean_r y)); null where
    SP <= 0. cc_max^2 bounds R2 and agrees with the NCSNR ceiling up to O(1 / S).
``loso`` (bounds the RSA rho; section 4)
    Each subject's RDM against the mean RDM of the other subjects (needs >= 2 subjects, no repetitions).

A normalised score divides the R2 of a regression record by the method's R2 bound (``ceiling``, with ``method``
and ``ceiling_bounds: R2``): ``score_over_ceiling``. It is never clipped; values above 1 raise
:class:`CeilingWarning`. Aggregates follow the records' rule: the median over targets within a subject of the
per-target values (targets with a null ceiling left out), then the mean over subjects.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Iterable, Sequence

import numpy as np

from brainlike.align import aggregate as agg
from brainlike.align.tuckute2023 import spearman_brown
from brainlike.errors import DataError, ProtocolError

METHODS = ("spearman-brown", "ncsnr", "cc-max", "loso")
"""Ceiling methods (``brainlike ceiling --method``)."""

REPETITION_METHODS = METHODS[:3]
"""Methods that need repetitions (the others need subjects)."""

BOUNDS = {"spearman-brown": "R2", "ncsnr": "R2", "cc-max": "r", "loso": "rho"}
"""What each method's ceiling value bounds."""


class CeilingWarning(UserWarning):
    """A normalised score above 1 (kept as it is: never clipped)."""


@dataclass
class Ceilings:
    """Per-target noise ceilings of one dataset under one method.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    values : ndarray (n_targets,)
        The ceiling in the unit of :attr:`bounds` (NaN where undefined). For ``loso``: one value per subject.
    bounds : str
        ``R2``, ``r`` or ``rho``.
    dataset : NeuralDataset
    n_reps : ndarray (n_targets,) of int
        Complete repetitions used per target.
    extra : dict of str to ndarray (n_targets,)
        Further per-target quantities (``ncsnr``, ``signal_variance``, ``noise_variance``, ``r_pair``, ``sp``).
    subjects : list of str
        ``loso`` only: the subjects of :attr:`values`.
    """

    method: str
    values: np.ndarray
    bounds: str
    dataset: Any
    n_reps: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)

    def r2_bound(self) -> np.ndarray:
        """The bound on R2 per target (cc_max squared for ``cc-max``)."""
        if self.bounds == "rho":
            raise ProtocolError("a leave-one-subject-out ceiling bounds RSA rho, not a regression R2")
        return self.values ** 2 if self.bounds == "r" else self.values

    def records(self) -> list[dict[str, Any]]:
        """Ceiling records (contracts.md section 7): per target (datasets with at most
        ``PER_TARGET_ROWS_MAX`` targets), the aggregate, per subject and per ROI."""
        if self.method == "loso":
            return self._loso_records()
        dataset = self.dataset
        common = dict(model=None, dataset=dataset.name, metric="ceiling", protocol=None, selection=None,
                      method=self.method, bounds=self.bounds)
        rows = []
        if dataset.n_targets <= agg.PER_TARGET_ROWS_MAX:
            for t, name in enumerate(dataset.target_names):
                extra = {k: v[t] for k, v in self.extra.items()}
                rows.append(agg.base_record(**common, target=name, score=self.values[t],
                                            n_reps=int(self.n_reps[t]), **extra))
        for group in target_groups(dataset):
            score, sem, per_subject = summarise(self.values, dataset, group.mask)
            rows.append(agg.base_record(**common, score=score, sem=sem, n_targets=int(group.mask.sum()),
                                        n_defined=int(np.isfinite(self.values[group.mask]).sum()),
                                        n_subjects=len(per_subject), **group.keys))
        return [agg.clean(r) for r in rows]

    def _loso_records(self) -> list[dict[str, Any]]:
        common = dict(model=None, dataset=self.dataset.name, metric="ceiling", protocol=None, selection=None,
                      method="loso", bounds="rho")
        rows = [agg.base_record(**common, score=float(np.mean(self.values)),
                                sem=agg.sem_over_subjects(self.values), n_subjects=len(self.subjects))]
        rows += [agg.base_record(**common, score=float(v), subject=s) for s, v in zip(self.subjects, self.values)]
        return [agg.clean(r) for r in rows]


@dataclass
class TargetGroup:
    """Targets summarised together: everything, one subject or one ROI (``keys`` go into the record)."""

    mask: np.ndarray
    keys: dict[str, Any]


def target_groups(dataset) -> list[TargetGroup]:
    """The aggregate (all targets), each subject (when there are several) and each ROI (non-component data)."""
    subjects = agg.subject_labels(dataset)
    groups = [TargetGroup(np.ones(dataset.n_targets, dtype=bool), {})]
    if len(set(subjects)) > 1:
        groups += [TargetGroup(subjects == s, {"subject": s}) for s in dict.fromkeys(subjects)]
    rois = dataset.target_coord("roi")
    if rois is not None and dataset.kind != "components":
        labels = np.asarray(rois).astype(str)
        groups += [TargetGroup(labels == roi, {"roi": roi}) for roi in dict.fromkeys(labels)]
    return groups


def summarise(values: np.ndarray, dataset, mask: np.ndarray) -> tuple[float | None, float | None, dict[str, float]]:
    """Median over the finite values of each subject's targets in ``mask``, then the mean over subjects (SEM)."""
    subjects = agg.subject_labels(dataset)
    keep = mask & np.isfinite(values)
    per_subject = {s: float(np.median(values[keep & (subjects == s)])) for s in dict.fromkeys(subjects[keep])}
    if not per_subject:
        return None, None, {}
    scores = list(per_subject.values())
    return float(np.mean(scores)), agg.sem_over_subjects(scores), per_subject


# ---------------------------------------------------------------------------------------------------------------
# estimators on complete repetitions: y (n_sounds, n_targets, R), float64, no NaN


def spearman_brown_ceiling(y: np.ndarray) -> dict[str, np.ndarray]:
    """Spearman-Brown reliability of the R-repetition mean (an R2 bound), from the median pairwise r."""
    y = _check_complete(y)
    r_pairs = np.stack([_pearson_columns(y[:, :, i], y[:, :, j]) for i, j in combinations(range(y.shape[2]), 2)])
    r_pair = np.median(r_pairs, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        reliability = spearman_brown(r_pair, y.shape[2])
    return {"ceiling": np.where(reliability > 0, reliability, np.nan), "r_pair": r_pair}


def ncsnr_ceiling(y: np.ndarray) -> dict[str, np.ndarray]:
    """NCSNR noise ceiling (an R2 bound), with the signal and noise variances and the NCSNR itself."""
    y = _check_complete(y)
    n_reps = y.shape[2]
    noise = y.var(axis=2, ddof=1).mean(axis=0)
    signal = np.maximum(0.0, y.mean(axis=2).var(axis=0, ddof=1) - noise / n_reps)
    total = signal + noise / n_reps
    with np.errstate(invalid="ignore", divide="ignore"):
        ceiling = np.where(total > 0, signal / np.where(total > 0, total, 1.0), np.nan)
        snr = np.where(noise > 0, np.sqrt(signal / np.where(noise > 0, noise, 1.0)), np.inf)
    return {"ceiling": ceiling, "ncsnr": snr, "signal_variance": signal, "noise_variance": noise}


def cc_max_ceiling(y: np.ndarray) -> dict[str, np.ndarray]:
    """cc_max (an r bound) and the signal power SP; null where SP <= 0."""
    y = _check_complete(y)
    n_reps = y.shape[2]
    power = (y.sum(axis=2).var(axis=0, ddof=1) - y.var(axis=0, ddof=1).sum(axis=1)) / (n_reps * (n_reps - 1))
    total = y.mean(axis=2).var(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cc_max = np.where((power > 0) & (total > 0), np.sqrt(np.maximum(power, 0) / np.where(total > 0, total, 1)),
                          np.nan)
    return {"ceiling": cc_max, "sp": power}


ESTIMATORS = {"spearman-brown": spearman_brown_ceiling, "ncsnr": ncsnr_ceiling, "cc-max": cc_max_ceiling}


def _check_complete(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 3 or y.shape[2] < 2:
        raise DataError(f"a noise ceiling needs responses (sounds, targets, repetitions) with >= 2 repetitions; "
                        f"got shape {y.shape}")
    if np.isnan(y).any():
        raise DataError("responses hold NaN: pass complete repetitions only")
    return y


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from brainlike.align.backend import NumpyBackend

    return NumpyBackend().column_pearson(a, b)


# ---------------------------------------------------------------------------------------------------------------
# datasets


def noise_ceiling(dataset, method: str = "ncsnr") -> Ceilings:
    """Per-target noise ceilings of a neural dataset.

    Each target uses its complete repetitions (no NaN for any sound); targets with fewer than 2 get a null ceiling.

    Parameters
    ----------
    dataset : NeuralDataset
    method : {"spearman-brown", "ncsnr", "cc-max", "loso"}

    Raises
    ------
    DataError
        No target has two complete repetitions (``loso``: fewer than 2 subjects).
    ProtocolError
        Unknown method.
    """
    if method not in METHODS:
        raise ProtocolError(f"unknown ceiling method {method!r}; choose from {', '.join(METHODS)}")
    if getattr(dataset, "time_resolved", False):
        raise DataError(f"{dataset.name} is time-resolved: noise ceilings are computed on time-averaged responses "
                        "(score it with --window, or average it first)")
    if method == "loso":
        return _loso(dataset)
    values = np.asarray(dataset.responses.values, dtype=np.float64)  # (S, T, R)
    complete = ~np.isnan(values).any(axis=0)  # (T, R): repetition complete for every sound
    n_reps = complete.sum(axis=1)
    if n_reps.max(initial=0) < 2:
        if dataset.responses.sizes["repetition"] < 2:
            raise DataError(f"{dataset.name} has no repetitions (one response per sound and target): a noise "
                            f"ceiling ({method}) needs targets measured at least twice per sound")
        raise DataError(f"{dataset.name}: no target has 2 repetitions complete for every sound: a noise ceiling "
                        f"({method}) needs them")
    ceilings = np.full(dataset.n_targets, np.nan)
    extra: dict[str, np.ndarray] = {}
    for pattern in np.unique(complete[n_reps >= 2], axis=0):
        cols = np.flatnonzero((complete == pattern).all(axis=1))
        out = ESTIMATORS[method](values[:, cols][:, :, pattern])
        ceilings[cols] = out.pop("ceiling")
        for key, array in out.items():
            extra.setdefault(key, np.full(dataset.n_targets, np.nan))[cols] = array
    return Ceilings(method, ceilings, BOUNDS[method], dataset, n_reps, extra)


def _loso(dataset) -> Ceilings:
    from brainlike.align.rsa import leave_one_subject_out_ceiling
    from brainlike.align.rsa_voxels import subject_rdms

    subjects, rdms = subject_rdms(dataset)
    if len(rdms) < 2:
        raise DataError(f"{dataset.name} has {len(rdms)} subject(s) with >= 2 targets: a leave-one-subject-out "
                        "ceiling needs at least 2")
    values = leave_one_subject_out_ceiling(rdms)
    return Ceilings("loso", values, "rho", dataset, np.zeros(dataset.n_targets, dtype=int), subjects=subjects)


# ---------------------------------------------------------------------------------------------------------------
# normalised scores


def normalise_records(records: Iterable[dict[str, Any]], scores: dict[str, np.ndarray],
                      ceilings: Ceilings) -> list[dict[str, Any]]:
    """Regression records with ``ceiling``, ``method``, ``ceiling_bounds`` and ``score_over_ceiling`` added.

    Parameters
    ----------
    records : iterable of dict
        Records of ``ceilings.dataset`` (other records pass through unchanged).
    scores : dict of str to ndarray (n_targets,)
        Per-target R2 of each model (the detail's ``score``), in the dataset's target order.
    ceilings : Ceilings
        A method that bounds R2 or r (not ``loso``).

    Notes
    -----
    Per-target rows divide their score by the target's R2 bound; aggregate, subject and ROI rows summarise the
    per-target ratios (and the per-target bounds) by the records' aggregation rule. Nothing is clipped: a ratio
    above 1 is kept and raises :class:`CeilingWarning`.
    """
    bound = ceilings.r2_bound()
    dataset = ceilings.dataset
    names = {name: t for t, name in enumerate(dataset.target_names)}
    subjects = agg.subject_labels(dataset)
    rois = dataset.target_coord("roi")
    out, above = [], []
    for record in records:
        model = record.get("model")
        if record.get("metric") != "regression" or record.get("dataset") != dataset.name or model not in scores:
            out.append(record)
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(bound > 0, scores[model] / np.where(bound > 0, bound, 1.0), np.nan)
        if record.get("target") != "all":
            t = names[record["target"]]
            ceiling, value = bound[t], ratio[t]
        else:
            mask = np.ones(dataset.n_targets, dtype=bool)
            if record.get("subject") is not None:
                mask &= subjects == str(record["subject"])
            if record.get("roi") is not None and rois is not None:
                mask &= np.asarray(rois).astype(str) == str(record["roi"])
            ceiling = summarise(bound, dataset, mask)[0]
            value = summarise(ratio, dataset, mask)[0]
        row = agg.clean({**record, "ceiling": ceiling, "method": ceilings.method, "ceiling_bounds": "R2",
                         "score_over_ceiling": value})
        if row["score_over_ceiling"] is not None and row["score_over_ceiling"] > 1:
            above.append(f"{model} {row['target']}" + (f" {row['subject']}" if row.get("subject") else "")
                         + (f" {row['roi']}" if row.get("roi") else ""))
        out.append(row)
    if above:
        warnings.warn(f"{len(above)} normalised score(s) above 1 with the {ceilings.method} ceiling (kept, not "
                      f"clipped): {', '.join(above[:5])}{'...' if len(above) > 5 else ''}", CeilingWarning,
                      stacklevel=2)
    return out


def per_target_scores(detail, models: Sequence[str], target_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each model's per-target ``score`` from a detail set (dims model x target), in ``target_names`` order."""
    if detail is None or "score" not in detail or "target" not in detail["score"].dims:
        raise ProtocolError("this protocol keeps no per-target scores in its detail: nothing to normalise")
    out = {}
    for model in models:
        values = detail["score"].sel(model=model) if "model" in detail["score"].dims else detail["score"]
        out[model] = np.asarray(values.sel(target=list(target_names)).values, dtype=np.float64)
    return out
