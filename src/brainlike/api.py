"""The Python API: ``brainlike.api.score`` and ``brainlike.api.extract`` (the CLI calls these)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr

from brainlike.align.score import METRICS, PROTOCOLS, regression, rsa
from brainlike.data.neural import load_dataset
from brainlike.data.stimuli import StimulusSet, load_stimulus_set
from brainlike.errors import BrainlikeError
from brainlike.extract import Activations, extract_activations
from brainlike.models.registry import load_model
from brainlike.results import now, write_results

SEED = 0


def extract(model: str, stimuli: str | StimulusSet = "natsound165", cache: bool = True,
            progress: bool = True) -> Activations:
    """Time-averaged activations of ``model`` for a stimulus set (cached)."""
    stimulus_set = load_stimulus_set(stimuli) if isinstance(stimuli, str) else stimuli
    return extract_activations(load_model(model), stimulus_set, cache=cache, progress_bar=progress)


def score(models: list[str] | str, dataset: str = "nh2015-components", metric: str = "all",
          protocol: str = "pepino2025", out: str | Path | None = None, device: str = "cpu",
          backend: str | None = None, cache: bool = True, progress: bool = True, bootstrap: int = 0,
          permutations: int = 0) -> list[dict]:
    """Score models against a neural dataset; return result records (contracts.md section 1).

    Parameters
    ----------
    models : str or list of str
        Model spec strings.
    dataset : str
        Registered dataset name or a bring-your-own file path.
    metric : {"all", "regression", "rsa"}
    protocol : {"pepino2025", "tuckute2023"}
    out : path, optional
        Results folder to write (records.jsonl, records.csv, detail.nc, provenance.json).
    device : {"cpu", "cuda"}
        Where the ridge engine runs.
    bootstrap, permutations : int
        Bootstrap resamples (CIs over stimuli and subjects) and label permutations (null, p-value) for the
        overall regression record (pepino2025).
    """
    models = [models] if isinstance(models, str) else list(models)
    metrics = list(METRICS) if metric == "all" else [metric]
    if any(m not in METRICS for m in metrics):
        raise BrainlikeError(f"unknown metric {metric!r}; choose from all, {', '.join(METRICS)}")
    if protocol not in PROTOCOLS:
        raise BrainlikeError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    started = now()
    neural = load_dataset(dataset)
    stimuli = load_stimulus_set(neural.attrs.get("stimulus_set", "natsound165"))
    neural = neural.align_to(stimuli.ids)
    loaded = [load_model(spec) for spec in models]  # fail early on unknown names
    records: list[dict] = []
    details: list[xr.Dataset] = []
    model_info = {}
    for model in loaded:
        activations = extract_activations(model, stimuli, cache=cache, progress_bar=progress)
        model_info[model.name] = activations.info
        if "regression" in metrics:
            rows, detail = regression(activations, neural, stimuli.folds, protocol, device, backend, SEED,
                                      bootstrap=bootstrap, permutations=permutations)
            records += rows
            details.append(detail.expand_dims(model=[model.name]))
        if "rsa" in metrics:
            records += rsa(activations, neural, stimuli.folds, protocol)
    if out is not None:
        provenance = {
            "started": started, "protocol": protocol, "metrics": metrics, "dataset": neural.name, "seed": SEED,
            "protocol_parameters": protocol_parameters(protocol), "device": device,
            "bootstrap": bootstrap, "permutations": permutations,
            "data_checksums": {"stimuli": stimuli.checksum, **neural.checksums},
            "models": model_info,
        }
        detail = _merge_details(details)
        write_results(records, out, provenance, detail)
    return records


def protocol_parameters(protocol: str) -> dict[str, Any]:
    if protocol == "pepino2025":
        from brainlike.align.pepino2025 import ALPHA_LIMITS, ALPHAS

        return {"alphas": ALPHAS.tolist(), "alpha_limits": list(ALPHA_LIMITS), "outer": "5 stratified folds",
                "inner": "leave one fold out on the other folds", "selection": "joint alpha and layer per target",
                "score": "max(r,0)^2 pooled out-of-fold", "rsa": "z-scored features, 1 - Pearson, Spearman upper"}
    from brainlike.align.tuckute2023 import parameters

    return parameters()


def _merge_details(details: list[xr.Dataset]) -> xr.Dataset | None:
    if not details:
        return None
    # fixed-width string variables would be cut to the first model's width by concat: use object dtype
    details = [d.map(lambda v: v.astype(object) if v.dtype.kind == "U" else v) for d in details]
    try:
        return xr.concat(details, dim="model", join="outer")
    except Exception:  # detail is optional; layer names may not align across models
        return details[0]
