"""Bring-your-own neural data: one file per dataset, netCDF (``.nc``) or ``.npz``.

netCDF layout (what ``brainlike simulate`` writes)::

    variable  responses (stimulus, target, repetition)   float; NaN marks a missing repetition
    coords    stimulus  (stimulus)  str   stimulus names of the stimulus set (e.g. stim5_alarm_clock)
              target    (target)    str   target names (voxel ids, electrodes, components, time bins...)
              subject   (target)    str   optional; targets of one subject are aggregated together
              roi       (target)    str   optional; ROI label per target
    attrs     stimulus_set = "natsound165" (default), kind = "voxels" | "electrodes" | "components" | "targets",
              synthetic = 0 | 1, description, citation

``repetition`` may be absent (responses (stimulus, target) = one repetition). ``.npz`` files hold the same arrays
under the same names (``responses``, ``stimulus``, optional ``target``, ``subject``, ``roi``), strings as unicode
arrays (no pickles). Responses are aligned to the stimulus set by stimulus NAME, never by position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from brainlike.data.neural import NeuralDataset
from brainlike.errors import DataError
from brainlike.integrity import sha256_file

__all__ = ["TARGET_COORDS", "load_dataset_file", "validate_file"]

TARGET_COORDS = ("subject", "roi", "hemisphere", "name")


def load_dataset_file(path: str | Path) -> NeuralDataset:
    """Load a bring-your-own dataset file (``.nc`` or ``.npz``); raise :class:`DataError` naming what is wrong."""
    path = Path(path).resolve()
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist")
    array, attrs = (_read_npz(path) if path.suffix == ".npz" else _read_netcdf(path))
    kind = str(attrs.get("kind", "targets"))
    dataset = NeuralDataset(str(path), array, kind=kind, checksums={path.name: sha256_file(path)},
                            synthetic=bool(int(attrs.get("synthetic", 0))),
                            attrs={"stimulus_set": str(attrs.get("stimulus_set", "natsound165")),
                                   **{k: v for k, v in attrs.items() if k != "stimulus_set"}})
    return dataset


def _read_netcdf(path: Path) -> tuple[xr.DataArray, dict]:
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except Exception as exc:
        raise DataError(f"{path}: not a readable netCDF-4 file ({str(exc).splitlines()[0]})") from None
    if "responses" not in ds:
        raise DataError(f"{path}: no variable named 'responses' (found {list(ds.data_vars)})")
    return _normalise(ds["responses"], path), dict(ds.attrs)


def _read_npz(path: Path) -> tuple[xr.DataArray, dict]:
    try:
        bundle = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path}: npz holds pickled objects, which brainlike does not load ({exc})") from None
    except Exception as exc:
        raise DataError(f"{path}: not a readable npz file ({exc})") from None
    with bundle:
        if "responses" not in bundle or "stimulus" not in bundle:
            raise DataError(f"{path}: npz needs arrays 'responses' and 'stimulus' (found {list(bundle.keys())})")
        responses = np.asarray(bundle["responses"], dtype=np.float64)
        if responses.ndim == 2:
            responses = responses[:, :, None]
        if responses.ndim != 3:
            raise DataError(f"{path}: responses must be (stimulus, target[, repetition]); got {responses.shape}")
        n_targets = responses.shape[1]
        targets = bundle["target"].astype(str) if "target" in bundle else np.array([f"t{i}" for i in range(n_targets)])
        coords = {"stimulus": bundle["stimulus"].astype(str), "target": targets,
                  "repetition": np.arange(responses.shape[2])}
        for name in TARGET_COORDS:
            if name in bundle:
                coords[name] = ("target", bundle[name].astype(str))
        attrs = {k: str(bundle[k]) for k in ("stimulus_set", "kind", "synthetic") if k in bundle}
    try:
        array = xr.DataArray(responses, dims=("stimulus", "target", "repetition"), coords=coords, name="responses")
    except ValueError as exc:
        raise DataError(f"{path}: array sizes do not match ({exc})") from None
    return array, attrs


def _normalise(array: xr.DataArray, path: Path) -> xr.DataArray:
    if array.ndim == 2:
        array = array.expand_dims("repetition", axis=2)
    if set(array.dims) != {"stimulus", "target", "repetition"}:
        raise DataError(f"{path}: responses dims must be (stimulus, target[, repetition]); got {array.dims}")
    array = array.transpose("stimulus", "target", "repetition").astype(np.float64)
    for dim in ("stimulus", "target"):
        if dim not in array.coords:
            raise DataError(f"{path}: responses need a '{dim}' coordinate of names")
    array = array.assign_coords(stimulus=array["stimulus"].values.astype(str),
                                target=array["target"].values.astype(str))
    if "repetition" not in array.coords:
        array = array.assign_coords(repetition=np.arange(array.sizes["repetition"]))
    return array


def validate_file(path: str | Path, stimulus_ids: list[str] | None = None) -> list[str]:
    """Problems with a dataset file, as sentences (empty list = valid)."""
    from brainlike.errors import BrainlikeError

    problems: list[str] = []
    try:
        dataset = load_dataset_file(path)
    except BrainlikeError as exc:
        return [str(exc)]
    if stimulus_ids is not None:
        missing = sorted(set(stimulus_ids) - set(dataset.stimulus_ids))
        extra = sorted(set(dataset.stimulus_ids) - set(stimulus_ids))
        if missing:
            problems.append(f"{len(missing)} stimuli of the stimulus set have no responses, e.g. {missing[:3]}")
        if extra:
            problems.append(f"{len(extra)} stimulus names are not in the stimulus set, e.g. {extra[:3]}")
    reps = dataset.responses.sizes["repetition"]
    missing_reps = int(np.isnan(dataset.responses.values).any(axis=(0, 2)).sum())
    if missing_reps:
        problems.append(f"{missing_reps} targets miss some repetitions (NaN); tuckute2023 needs complete "
                        "repetitions")
    if reps == 1:
        problems.append("note: one repetition only: no noise ceiling or noise correction is possible")
    return problems
