"""The regression-protocol registry, its one result type, and the one place where regression records are built.

A protocol is a small plugin module in this package that calls :func:`register_protocol` with a :class:`Protocol`:
a name, the ``selection`` label of its records, a ``run`` function from :class:`RegressionInputs` to
:class:`TargetScores`, and its parameters (recorded in every results folder). Adding a protocol is one new file here
plus its test: the registry imports every module of this package on first use (brain-score's plain-dict registries,
filled by plugins).

Every protocol returns :class:`TargetScores` and :func:`regression_records` turns it into records
(docs/contracts.md sections 1 and 7): one row per target (datasets with at most ``PER_TARGET_ROWS_MAX`` targets),
the aggregate (``target: all``), one row per subject when there are several, one per ROI. Aggregation rule: per
subject and draw, the median over targets; the mean over draws; the mean over subjects with the SEM across them.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import xarray as xr

from brainlike.align import aggregate as agg
from brainlike.errors import UnknownNameError

__all__ = ["Protocol", "RegressionInputs", "TargetScores", "get_protocol", "list_protocols", "register_protocol",
           "regression_records", "PROTOCOLS"]


@dataclass
class RegressionInputs:
    """Everything a regression protocol may read.

    Attributes
    ----------
    activations : brainlike.extract.Activations
        Per-layer activations, rows in the dataset's stimulus order (time-averaged; time-resolved protocols read
        ``activations.frames`` where the extractor provides them).
    dataset : brainlike.data.neural.NeuralDataset
        Responses aligned to the stimuli by name.
    folds : ndarray (n_stimuli,)
        Fold label per stimulus (the stimulus set's stratified folds).
    backend : NumpyBackend or TorchBackend
        Where the ridge engine runs.
    seed : int
        Seed of every random draw of the protocol.
    options : dict
        Protocol options given by the user (e.g. ``bootstrap``, ``permutations``); each protocol documents its own.
    """

    activations: Any
    dataset: Any
    folds: np.ndarray
    backend: Any
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    _grams: list[np.ndarray] | None = None

    @property
    def grams(self) -> list[np.ndarray]:
        """Gram matrix ``X X^T`` of each layer (model order), computed once."""
        if self._grams is None:
            from brainlike.align.ridge import gram_matrix

            self._grams = [gram_matrix(self.activations.arrays[layer]) for layer in self.activations.layers]
        return self._grams

    @property
    def layers(self) -> list[str]:
        return list(self.activations.layers)


@dataclass
class TargetScores:
    """What every regression protocol returns.

    Attributes
    ----------
    scores : ndarray (n_draws, n_targets)
        Per-target scores of each draw: one draw for protocols scoring pooled out-of-fold predictions
        (pepino2025), one per split-half iteration for tuckute2023. A target's score is its mean over draws.
    layer_index : ndarray (n_choices, n_targets) of int
        The layer chosen for each outer fold (or iteration) and target; records report the most frequent.
    detail : xarray.Dataset
        Per-target labelled arrays (dimension ``target``), written to ``detail.nc`` with a ``model`` dimension.
    target_keys : dict of str to ndarray (n_targets,)
        Extra keys of the per-target records (e.g. ``r``).
    record_keys : dict
        Extra keys of every record of this result (e.g. ``noise_corrected``, ``lags``).
    overall_keys : dict
        Extra keys of the aggregate record only (e.g. bootstrap CIs, a permutation p-value).
    extra_records : list of dict
        Complete additional records (e.g. a baseline row); they pass through unchanged.
    """

    scores: np.ndarray
    layer_index: np.ndarray
    detail: xr.Dataset
    target_keys: dict[str, np.ndarray] = field(default_factory=dict)
    record_keys: dict[str, Any] = field(default_factory=dict)
    overall_keys: dict[str, Any] = field(default_factory=dict)
    extra_records: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scores = np.atleast_2d(np.asarray(self.scores, dtype=np.float64))
        self.layer_index = np.atleast_2d(np.asarray(self.layer_index, dtype=int))

    @property
    def per_target(self) -> np.ndarray:
        """Each target's score: the mean over draws, (n_targets,)."""
        return self.scores.mean(axis=0)


@dataclass(frozen=True)
class Protocol:
    """A registered regression protocol.

    Attributes
    ----------
    name : str
        The ``--protocol`` name and the records' ``protocol``.
    selection : str
        The records' ``selection`` (how layers are chosen: ``nested-cv``, ``split-half``...).
    run : callable
        ``run(inputs: RegressionInputs) -> TargetScores``.
    parameters : callable
        ``parameters(options) -> dict``: the exact protocol parameters for provenance.
    description : str
        One line for ``brainlike protocols`` and the docs.
    time_resolved : bool
        True when the protocol needs time-resolved responses and frame-level activations.
    options : tuple of str
        Option names the protocol understands (others are refused with a clear error).
    """

    name: str
    selection: str
    run: Callable[[RegressionInputs], TargetScores]
    parameters: Callable[[dict[str, Any]], dict[str, Any]]
    description: str
    time_resolved: bool = False
    options: tuple[str, ...] = ()


PROTOCOLS: dict[str, Protocol] = {}
"""Registered protocols by name (filled by the plugin modules of this package)."""

_loaded = False


def register_protocol(protocol: Protocol) -> Protocol:
    """Add a protocol to the registry (a plugin module calls this at import)."""
    PROTOCOLS[protocol.name] = protocol
    return protocol


def _load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        importlib.import_module(f"{__name__}.{module}")


def list_protocols() -> list[Protocol]:
    """Every registered protocol, in name order."""
    _load_plugins()
    return [PROTOCOLS[name] for name in sorted(PROTOCOLS)]


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``.

    Raises
    ------
    UnknownNameError
        No such protocol (the message lists close matches and every protocol).
    """
    _load_plugins()
    if name not in PROTOCOLS:
        close = difflib.get_close_matches(name, list(PROTOCOLS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"unknown protocol {name!r}{hint} (protocols: {', '.join(sorted(PROTOCOLS))})")
    return PROTOCOLS[name]


def regression_records(result: TargetScores, *, model: str, dataset, layers: list[str], protocol: str,
                       selection: str) -> list[dict[str, Any]]:
    """Records of a regression result: per target, aggregate, per subject, per ROI (docs/contracts.md 1 and 7).

    Parameters
    ----------
    result : TargetScores
    model : str
        The model spec as the user gave it.
    dataset : NeuralDataset
        Supplies the dataset name, target names and the ``subject`` / ``roi`` target coordinates.
    layers : list of str
        Layer names in model order (``result.layer_index`` indexes them).
    protocol, selection : str
    """
    subjects = agg.subject_labels(dataset)
    rois = dataset.target_coord("roi")
    common = dict(model=model, dataset=dataset.name, metric="regression", protocol=protocol, selection=selection,
                  **result.record_keys)
    per_target = result.per_target

    def layer_of(cols: np.ndarray) -> str:
        return layers[agg.mode(list(result.layer_index[:, cols].ravel()))]

    def summary(cols: np.ndarray) -> tuple[float, float | None, dict[str, float]]:
        per_subject = {s: float(np.mean(np.median(result.scores[:, cols & (subjects == s)], axis=1)))
                       for s in dict.fromkeys(subjects[cols])}
        values = list(per_subject.values())
        return float(np.mean(values)), agg.sem_over_subjects(values), per_subject

    records = []
    if dataset.n_targets <= agg.PER_TARGET_ROWS_MAX:
        for t, name in enumerate(dataset.target_names):
            keys = {k: v[t] for k, v in result.target_keys.items()}
            records.append(agg.base_record(**common, target=name, score=float(per_target[t]),
                                           layer=layer_of(np.array([t])), **keys))
    everything = _aggregated_targets(dataset)
    score, sem, per_subject = summary(everything)
    records.append(agg.base_record(**common, score=score, sem=sem, layer=layer_of(everything),
                                   n_targets=int(everything.sum()), n_subjects=len(per_subject),
                                   mean_over_targets=float(per_target[everything].mean()), **result.overall_keys))
    if len(per_subject) > 1:
        for subject, value in per_subject.items():
            cols = subjects == subject
            records.append(agg.base_record(**common, score=value, subject=subject, n_targets=int(cols.sum()),
                                           layer=layer_of(cols)))
    if rois is not None and dataset.kind != "components":
        labels = np.asarray(rois).astype(str)
        for roi in dict.fromkeys(labels):
            cols = labels == roi
            score, sem, per_subject = summary(cols)
            records.append(agg.base_record(**common, score=score, sem=sem, roi=roi, n_targets=int(cols.sum()),
                                           n_subjects=len(per_subject), layer=layer_of(cols)))
    return [agg.clean(r) for r in records + list(result.extra_records)]


def _aggregated_targets(dataset) -> np.ndarray:
    """Targets of the ``target: all`` aggregate: every target except those of the dataset's
    ``attrs["aggregate_exclude_roi"]`` (ecog-nh2022-electrodes: the 3 category averages)."""
    mask = np.ones(dataset.n_targets, dtype=bool)
    exclude, rois = dataset.attrs.get("aggregate_exclude_roi"), dataset.target_coord("roi")
    if exclude is not None and rois is not None:
        mask &= np.asarray(rois).astype(str) != str(exclude)
    return mask
