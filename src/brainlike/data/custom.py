"""Bring-your-own neural data: one file per dataset, netCDF (``.nc``) or ``.npz``.

netCDF layout (what ``brainlike simulate`` writes)::

    variable  responses (stimulus, [time,] target, repetition)   float; NaN marks a missing repetition
    coords    stimulus  (stimulus)  str   stimulus names of the stimulus set (e.g. stim5_alarm_clock)
              time      (time)      float optional; bin STARTS in seconds from sound onset (time-resolved data):
                                          one fixed rate, increasing, no bin NaN in every repetition
              target    (target)    str   target names (voxel ids, electrodes, components...)
              subject   (target)    str   optional; targets of one subject are aggregated together
              roi       (target)    str   optional; ROI label per target
    attrs     stimulus_set = "natsound165" (default), kind = "voxels" | "electrodes" | "components" | "targets",
              synthetic = 0 | 1, description, citation

``repetition`` may be absent (responses (stimulus, [time,] target) = one repetition). ``.npz`` files hold the same
arrays under the same names (``responses``, ``stimulus``, optional ``time``, ``target``, ``subject``, ``roi``),
strings as unicode arrays (no pickles); with a ``time`` array, ``responses`` is (stimulus, time, target[,
repetition]). Responses are aligned to the stimulus set by stimulus NAME, never by position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from brainlike.data.checksums import sha256_file
from brainlike.data.neural import NeuralDataset
from brainlike.errors import DataError

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
        timed = "time" in bundle
        dims = ("stimulus", "time", "target", "repetition") if timed else ("stimulus", "target", "repetition")
        if responses.ndim == len(dims) - 1:
            responses = responses[..., None]
        if responses.ndim != len(dims):
            expected = "(stimulus, time, target[, repetition])" if timed else "(stimulus, target[, repetition])"
            raise DataError(f"{path}: responses must be {expected}; got shape {responses.shape}")
        n_targets = responses.shape[dims.index("target")]
        targets = bundle["target"].astype(str) if "target" in bundle else np.array([f"t{i}" for i in range(n_targets)])
        coords = {"stimulus": bundle["stimulus"].astype(str), "target": targets,
                  "repetition": np.arange(responses.shape[-1])}
        if timed:
            coords["time"] = _time_values(bundle["time"], path)
        for name in TARGET_COORDS:
            if name in bundle:
                coords[name] = ("target", bundle[name].astype(str))
        attrs = {k: str(bundle[k]) for k in ("stimulus_set", "kind", "synthetic") if k in bundle}
    try:
        array = xr.DataArray(responses, dims=dims, coords=coords, name="responses")
    except ValueError as exc:
        raise DataError(f"{path}: array sizes do not match ({exc})") from None
    return array, attrs


def _time_values(values: np.ndarray, path: Path) -> np.ndarray:
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.timedelta64):  # netCDF "seconds" units decode to timedeltas
        return values / np.timedelta64(1, "s")
    if np.issubdtype(values.dtype, np.datetime64):
        raise DataError(f"{path}: the time coordinate holds dates; give bin starts in seconds from sound onset")
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: the time coordinate must be numbers (bin starts in seconds)") from None


def _normalise(array: xr.DataArray, path: Path) -> xr.DataArray:
    timed = "time" in array.dims
    base = {"stimulus", "time", "target"} if timed else {"stimulus", "target"}
    if set(array.dims) == base:
        array = array.expand_dims("repetition", axis=array.ndim)
    if set(array.dims) != base | {"repetition"}:
        expected = "(stimulus, time, target[, repetition])" if timed else "(stimulus, target[, repetition])"
        raise DataError(f"{path}: responses dims must be {expected}; got {array.dims}")
    order = ("stimulus", "time", "target", "repetition") if timed else ("stimulus", "target", "repetition")
    array = array.transpose(*order).astype(np.float64)
    for dim in ("stimulus", "target") + (("time",) if timed else ()):
        if dim not in array.coords:
            raise DataError(f"{path}: responses need a '{dim}' coordinate"
                            + (" (bin starts in seconds)" if dim == "time" else " of names"))
    array = array.assign_coords(stimulus=array["stimulus"].values.astype(str),
                                target=array["target"].values.astype(str))
    if timed:
        array = array.assign_coords(time=_time_values(array["time"].values, path))
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
    values = dataset.responses.transpose(..., "target", "repetition").values
    missing_reps = int(np.isnan(values.reshape(-1, values.shape[-2], values.shape[-1])).any(axis=(0, 2)).sum())
    if missing_reps:
        problems.append(f"{missing_reps} targets miss some repetitions (NaN); tuckute2023 needs complete "
                        "repetitions")
    if reps == 1:
        problems.append("note: one repetition only: no noise ceiling or noise correction is possible")
    if dataset.time_resolved:
        times = dataset.times
        problems.append(f"note: time-resolved: {len(times)} bins at {dataset.rate:g} Hz from {times[0]:g} s "
                        "(time-averaged protocols average the bins starting in [0, 2) s unless --window says "
                        "otherwise)")
    return problems
