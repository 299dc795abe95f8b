"""Protocol ``tuckute2023``: random splits, leave-one-out alpha, noise correction, split-half layer choice (engine:
:mod:`brainlike.align.tuckute2023`). Targets with repetitions are noise-corrected; components are not."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from brainlike.align.protocols import Protocol, RegressionInputs, TargetScores, register_protocol
from brainlike.align.tuckute2023 import parameters as engine_parameters
from brainlike.align.tuckute2023 import run_tuckute2023

__all__ = ["parameters", "run", "PROTOCOL"]


def parameters(options: dict[str, Any] | None = None) -> dict[str, Any]:
    return engine_parameters()


def run(inputs: RegressionInputs) -> TargetScores:
    dataset = inputs.dataset
    result = run_tuckute2023(inputs.grams, np.asarray(dataset.responses.values), inputs.backend, inputs.seed)
    detail = xr.Dataset(
        {"score": ("target", result["values"].mean(axis=0)),
         "corrected_r2": (("split", "layer", "target"), result["corrected"]),
         "raw_r2": (("split", "layer", "target"), result["raw"]),
         "alpha": (("split", "layer", "target"), result["alpha"]),
         "sb_pole_cells": ("target", result["pole"].sum(axis=(0, 1)))},
        coords={"target": dataset.target_names, "layer": inputs.layers,
                "split": np.arange(result["raw"].shape[0])},
        attrs={"model": inputs.activations.model, "dataset": dataset.name, "protocol": "tuckute2023",
               "metric": "regression"})
    return TargetScores(scores=result["values"], layer_index=result["layers"], detail=detail,
                        record_keys={"noise_corrected": bool(dataset.responses.sizes["repetition"] > 1)},
                        overall_keys={"n_targets_sb_pole": int(result["pole"].any(axis=(0, 1)).sum())})


PROTOCOL = register_protocol(Protocol(
    name="tuckute2023", selection="split-half", run=run, parameters=parameters,
    description="Tuckute et al. 2023: 10 random 83/82 splits, leave-one-out alpha, Spearman-Brown noise correction, "
                "split-half layer choice"))
