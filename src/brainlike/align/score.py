"""From activations and a neural dataset to result records: regression under a registered protocol, and RSA."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from brainlike.align import aggregate as agg
from brainlike.align.backend import get_backend
from brainlike.align.protocols import RegressionInputs, get_protocol, list_protocols, regression_records
from brainlike.align.rsa import cv_layer_rsa, layer_rhos, rdm
from brainlike.data.neural import NeuralDataset
from brainlike.errors import ProtocolError
from brainlike.extract import Activations

__all__ = ["METRICS", "protocol_names", "check_inputs", "regression", "rsa"]

METRICS = ("regression", "rsa")


def protocol_names() -> list[str]:
    """Names of the registered regression protocols."""
    return [p.name for p in list_protocols()]


def check_inputs(activations: Activations, dataset: NeuralDataset) -> None:
    if list(activations.stimulus_ids) != dataset.stimulus_ids:
        raise ProtocolError("activations and responses are not in the same stimulus order (align by name first)")
    for layer, values in activations.arrays.items():
        if not np.all(np.isfinite(values)):
            raise ProtocolError(f"{activations.model}: layer {layer!r} has NaN or Inf activations")


def regression(activations: Activations, dataset: NeuralDataset, folds: np.ndarray, protocol: str = "pepino2025",
               device: str = "cpu", backend: str | None = None, seed: int = 0, *,
               options: dict[str, Any] | None = None, frames: Any = None, categories: list[str] | None = None,
               controls: list[Activations] | None = None,
               **legacy_options: Any) -> tuple[list[dict], xr.Dataset]:
    """Regression records and per-target detail of one model under a registered protocol.

    Parameters
    ----------
    activations : Activations
        Rows in the dataset's stimulus order.
    dataset : NeuralDataset
    folds : ndarray (n_stimuli,)
    protocol : str
        A name in :data:`brainlike.align.protocols.PROTOCOLS` (``pepino2025``, ``tuckute2023``...).
    device, backend : str
        Where the ridge engine runs (see :func:`brainlike.align.backend.get_backend`).
    seed : int
    options : dict, optional
        Protocol options (pepino2025: ``bootstrap``, ``permutations``); ``bootstrap=N`` etc. as keywords also work.
    frames : FrameActivations, optional
        Frame-level activations (time-resolved protocols; then ``activations`` may be the same object).
    categories : list of str, optional
        Category of each stimulus (per-category curves of time-resolved protocols).
    controls : list of Activations, optional
        Variance partitioning against these controls (one band each; methods.md section 10): records get ``part``
        and ``control`` (docs/contracts.md section 7). The protocol must support it.

    Returns
    -------
    records : list of dict
    detail : xarray.Dataset
        Per-target arrays with a ``model`` dimension of length one.
    """
    spec = get_protocol(protocol)
    options = {**(options or {}), **{k: v for k, v in legacy_options.items() if v}}
    unknown = sorted(set(k for k, v in options.items() if v) - set(spec.options))
    if unknown:
        raise ProtocolError(f"protocol {protocol!r} takes no option(s) {unknown}"
                            + (f" (it takes {', '.join(spec.options)})" if spec.options else ""))
    if frames is None:
        check_inputs(activations, dataset)
    elif list(frames.stimulus_ids) != dataset.stimulus_ids:  # frames are checked finite when extracted
        raise ProtocolError("frames and responses are not in the same stimulus order (align by name first)")
    controls = list(controls or [])
    if controls and spec.partition is None:
        supported = [p.name for p in list_protocols() if p.partition is not None]
        raise ProtocolError(f"protocol {protocol!r} does not support --control (variance partitioning); "
                            f"use {', '.join(supported)}")
    for control in controls:
        check_inputs(control, dataset)
    inputs = RegressionInputs(activations, dataset, np.asarray(folds), get_backend(device, backend), seed, options,
                              frames=frames, categories=categories, controls=controls)
    result = spec.partition(inputs) if controls else spec.run(inputs)
    records = regression_records(result, model=activations.model, dataset=dataset, layers=activations.layers,
                                 protocol=spec.name, selection=spec.selection)
    return records, result.detail.expand_dims(model=[activations.model])


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
