"""Neural datasets: responses[stimulus, (time,) target, repetition] as labelled arrays, aligned to stimuli by name.

Built-in: ``nh2015-components`` (6 fMRI components of Norman-Haignere et al. 2015). Voxel datasets, the ECoG
datasets (time-resolved) and bring-your-own files register themselves in :data:`DATASETS` too (see
:mod:`brainlike.data.voxels`, :mod:`brainlike.data.ecog`, :mod:`brainlike.data.custom`).

A time-resolved dataset has a ``time`` dimension (bin starts in seconds from sound onset, one fixed rate). The
time-averaged protocols see it averaged over a window (:meth:`NeuralDataset.window_average`, default [0, 2) s).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from brainlike.config import data_root
from brainlike.data.checksums import read_sums, verify_file
from brainlike.errors import DataError, ProtocolError, UnknownNameError

log = logging.getLogger(__name__)
AVERAGED_DIMS = ("stimulus", "target", "repetition")
TIME_DIMS = ("stimulus", "time", "target", "repetition")
COMPONENT_NAMES = ("lowfreq", "highfreq", "envsounds", "pitch", "speech", "music")


@dataclass
class NeuralDataset:
    """Responses of neural targets (voxels, components, electrodes) to a set of stimuli.

    Attributes
    ----------
    name : str
        Dataset name or the path the user gave.
    responses : xarray.DataArray, dims (stimulus, target, repetition) or (stimulus, time, target, repetition)
        Coordinates: ``stimulus`` (stimulus names), ``target`` (target names), per-target coordinates such as
        ``subject``, ``roi``, ``hemisphere`` and, for time-resolved data, ``time``: the START of each bin in seconds
        from sound onset (uniform rate, increasing). Missing repetitions are NaN; a bin may not be NaN in every
        repetition.
    kind : str
        ``components``, ``voxels``, ``electrodes`` or ``targets``.
    checksums : dict
        sha256 of the source files (recorded in provenance).
    synthetic : bool
        True for simulated data (see ``brainlike simulate``).
    """

    name: str
    responses: xr.DataArray
    kind: str = "targets"
    checksums: dict[str, str] = field(default_factory=dict)
    synthetic: bool = False
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        dims = tuple(self.responses.dims)
        if dims not in (AVERAGED_DIMS, TIME_DIMS):
            raise DataError(f"{self.name}: responses must have dims (stimulus, target, repetition) or "
                            f"(stimulus, time, target, repetition), got {dims}")
        stimuli = [str(s) for s in self.responses["stimulus"].values]
        if len(set(stimuli)) != len(stimuli):
            dupes = sorted({s for s in stimuli if stimuli.count(s) > 1})
            raise DataError(f"{self.name}: duplicated stimulus IDs {dupes[:5]}")
        targets = [str(t) for t in self.responses["target"].values]
        if len(set(targets)) != len(targets):
            raise DataError(f"{self.name}: duplicated target names")
        if self.time_resolved:
            check_time_coordinate(self.responses, self.name)
        values = self.responses.values
        if np.isinf(values).any():
            raise DataError(f"{self.name}: responses contain Inf")
        mean = self._repetition_mean()
        if np.isnan(mean).any():
            self._raise_nan(mean, targets)
        spread = np.ptp(mean.reshape(-1, mean.shape[-1]), axis=0)
        constant = np.flatnonzero(spread == 0)
        if len(constant):
            raise DataError(f"{self.name}: {len(constant)} constant target(s) (e.g. {targets[constant[0]]!r}): "
                            "a constant response cannot be predicted or correlated")

    def _raise_nan(self, mean: np.ndarray, targets: list[str]) -> None:
        if not self.time_resolved:
            bad = np.flatnonzero(np.isnan(mean).any(axis=0))
            raise DataError(f"{self.name}: responses contain NaN for every repetition of some stimulus "
                            f"(targets {[targets[i] for i in bad[:5]]})")
        s, b, t = (int(i[0]) for i in np.nonzero(np.isnan(mean)))
        n_bad = int(np.isnan(mean).any(axis=(0, 2)).sum())
        raise DataError(f"{self.name}: {n_bad} NaN time bin(s), e.g. the bin at {float(self.times[b]):g} s of "
                        f"stimulus {self.stimulus_ids[s]!r}, target {targets[t]!r} (NaN in every repetition)")

    @property
    def stimulus_ids(self) -> list[str]:
        return [str(s) for s in self.responses["stimulus"].values]

    @property
    def target_names(self) -> list[str]:
        return [str(t) for t in self.responses["target"].values]

    @property
    def n_targets(self) -> int:
        return self.responses.sizes["target"]

    @property
    def time_resolved(self) -> bool:
        """True when the responses have a ``time`` dimension."""
        return "time" in self.responses.dims

    @property
    def times(self) -> np.ndarray | None:
        """Bin starts in seconds from sound onset (float64), or None for a time-averaged dataset."""
        return np.asarray(self.responses["time"].values, dtype=np.float64) if self.time_resolved else None

    @property
    def rate(self) -> float | None:
        """Bins per second (from the median bin step), or None for a time-averaged dataset."""
        times = self.times
        if times is None:
            return None
        return round(float(1.0 / np.median(np.diff(times))), 6) if len(times) > 1 else None

    def target_coord(self, name: str) -> np.ndarray | None:
        """Per-target coordinate values (``subject``, ``roi``...) or None if the dataset has none."""
        if name in self.responses.coords and self.responses[name].dims == ("target",):
            return self.responses[name].values
        return None

    def _repetition_mean(self) -> np.ndarray:
        """Mean over repetitions (NaN repetitions ignored), float64, all other dims kept."""
        values = np.asarray(self.responses.values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            counts = np.sum(~np.isnan(values), axis=-1)
            total = np.nansum(values, axis=-1)
            return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)

    def mean_responses(self) -> np.ndarray:
        """Responses averaged over repetitions (NaN repetitions ignored), shape (stimulus, target), float64.

        Raises
        ------
        ProtocolError
            For a time-resolved dataset: average it over a window first (:meth:`window_average`).
        """
        if self.time_resolved:
            raise ProtocolError(f"{self.name} is time-resolved: average it over a window first "
                                "(NeuralDataset.window_average, `--window a:b`) or use a time-resolved protocol")
        return self._repetition_mean()

    def mean_time_courses(self) -> np.ndarray:
        """Time courses averaged over repetitions, shape (stimulus, time, target), float64."""
        if not self.time_resolved:
            raise ProtocolError(f"{self.name} has no time dimension (time-averaged responses)")
        return self._repetition_mean()

    def window_average(self, start: float = 0.0, stop: float = 2.0) -> "NeuralDataset":
        """The time-averaged dataset: each repetition's mean over the bins with ``start <= time < stop``.

        ``attrs["window"]`` records the window as ``"start:stop"`` (e.g. ``"0:2"``).
        """
        if not self.time_resolved:
            raise ProtocolError(f"{self.name} has no time dimension: there is no window to average over")
        if not stop > start:
            raise ProtocolError(f"window {start:g}:{stop:g} is empty (the end must be after the start)")
        times = self.times
        keep = (times >= start - TIME_TOLERANCE) & (times < stop - TIME_TOLERANCE)
        if not keep.any():
            raise ProtocolError(f"window {start:g}:{stop:g} s holds no time bin of {self.name} "
                                f"(bins start at {times[0]:g} ... {times[-1]:g} s)")
        subset = self.responses.isel(time=np.flatnonzero(keep))
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (missing) repetitions stay NaN
            averaged = subset.mean(dim="time", skipna=True)
        averaged = averaged.drop_vars("time", errors="ignore").transpose(*AVERAGED_DIMS)
        attrs = {**self.attrs, "window": format_window(start, stop), "time_bins_averaged": int(keep.sum()),
                 "rate": self.rate}
        return NeuralDataset(self.name, averaged, self.kind, dict(self.checksums), self.synthetic, attrs)

    def resample(self, rate: float) -> "NeuralDataset":
        """Average finer bins into bins of ``rate`` Hz aligned at 0 s (bin k covers [k / rate, (k + 1) / rate)).

        A new bin is kept only when every finer bin of it is present. A warning says that the data were averaged.
        A dataset coarser than ``rate`` is an error; one at ``rate`` is returned unchanged.
        """
        if not self.time_resolved:
            raise ProtocolError(f"{self.name} has no time dimension: it cannot be resampled to {rate:g} Hz")
        if not rate > 0:
            raise ProtocolError(f"rate must be positive, got {rate!r}")
        own = self.rate
        if own is None or own < rate * (1 - 1e-6):
            raise ProtocolError(f"{self.name} has {own or 0:g} Hz bins, coarser than the requested {rate:g} Hz: "
                                "brainlike does not upsample responses (choose a rate at most the data's)")
        if own <= rate * (1 + 1e-6):
            return self
        ratio = own / rate
        times = self.times
        index = np.floor(times * rate + TIME_TOLERANCE * rate).astype(int)
        groups = {k: np.flatnonzero(index == k) for k in np.unique(index)}
        full = max(len(g) for g in groups.values())
        kept = [k for k, g in groups.items() if len(g) == full]
        if abs(ratio - round(ratio)) > 1e-6:
            log.warning("%s: %g Hz is not a whole multiple of %g Hz; bins of %d finer bins each are averaged",
                        self.name, own, rate, full)
        values = np.stack([self.responses.isel(time=groups[k]).mean(dim="time").values for k in kept], axis=1)
        coords = {name: coord for name, coord in self.responses.coords.items() if "time" not in coord.dims}
        array = xr.DataArray(values, dims=TIME_DIMS, coords={**coords, "time": np.asarray(kept) / rate},
                             name=self.responses.name)
        log.warning("%s: %g Hz responses averaged into %g Hz bins (%d bins of %d)", self.name, own, rate,
                    len(kept), full)
        attrs = {**self.attrs, "resampled_from_hz": own}
        return NeuralDataset(self.name, array, self.kind, dict(self.checksums), self.synthetic, attrs)

    def align_to(self, stimulus_ids: list[str]) -> "NeuralDataset":
        """Reorder (and subset) stimuli to follow ``stimulus_ids`` exactly, matching by NAME, never by position."""
        have = set(self.stimulus_ids)
        missing = [s for s in stimulus_ids if s not in have]
        if missing:
            raise DataError(f"{self.name}: no responses for {len(missing)} stimulus name(s) of the stimulus set, "
                            f"e.g. {missing[:3]} (stimulus names must match)")
        if len(set(stimulus_ids)) != len(stimulus_ids):
            raise DataError("stimulus set has duplicated stimulus IDs")
        unknown = sorted(have - set(stimulus_ids))
        if unknown:
            log.warning("%s: responses for %d stimulus name(s) not in the stimulus set are left out, e.g. %s",
                        self.name, len(unknown), unknown[:3])
        aligned = self.responses.sel(stimulus=list(stimulus_ids))
        return NeuralDataset(self.name, aligned, self.kind, dict(self.checksums), self.synthetic, dict(self.attrs))

    def select_targets(self, mask: np.ndarray) -> "NeuralDataset":
        """A dataset holding only the targets where ``mask`` is True."""
        subset = self.responses.isel(target=np.flatnonzero(mask))
        return NeuralDataset(self.name, subset, self.kind, dict(self.checksums), self.synthetic, dict(self.attrs))


TIME_TOLERANCE = 1e-6
"""Seconds: bin starts closer than this to a window edge count as on it (float time coordinates)."""


def format_window(start: float, stop: float) -> str:
    """``"0:2"`` for (0.0, 2.0): the form of the ``window`` record key and of ``--window``."""
    return f"{start:g}:{stop:g}"


def parse_window(text: str) -> tuple[float, float]:
    """Parse ``"a:b"`` (seconds from sound onset) into ``(a, b)``; raise ProtocolError naming the problem."""
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = float(parts[0]), float(parts[1])
    except ValueError:
        raise ProtocolError(f"window {text!r} is not of the form START:STOP in seconds (e.g. 0:2)") from None
    if not (np.isfinite(start) and np.isfinite(stop)) or stop <= start:
        raise ProtocolError(f"window {text!r}: STOP must be after START")
    return start, stop


def check_time_coordinate(responses: xr.DataArray, name: str) -> np.ndarray:
    """Check the ``time`` coordinate: numeric, finite, strictly increasing, uniform; return it (float64)."""
    if "time" not in responses.coords:
        raise DataError(f"{name}: time-resolved responses need a 'time' coordinate (bin starts in seconds)")
    try:
        times = np.asarray(responses["time"].values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name}: the time coordinate must be numbers (seconds from onset)") from None
    if times.ndim != 1 or len(times) < 2:
        raise DataError(f"{name}: the time coordinate needs at least 2 bins, got {times.size}")
    if not np.all(np.isfinite(times)):
        raise DataError(f"{name}: the time coordinate contains NaN or Inf")
    steps = np.diff(times)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        raise DataError(f"{name}: the time coordinate is not increasing ({times[i]:g} s then {times[i + 1]:g} s "
                        f"at bins {i} and {i + 1})")
    step = float(np.median(steps))
    worst = int(np.argmax(np.abs(steps - step)))
    if abs(steps[worst] - step) > max(1e-4 * step, TIME_TOLERANCE):
        raise DataError(f"{name}: the time coordinate is not uniform: step {steps[worst]:g} s between bins {worst} "
                        f"and {worst + 1}, {step:g} s elsewhere (one fixed rate is required)")
    return times


def _resource(*parts: str) -> Path:
    return Path(str(resources.files("brainlike.data").joinpath("resources", *parts)))


def _matlab_strings(array: np.ndarray) -> list[str]:
    return [str(np.asarray(item).ravel()[0]) for item in np.asarray(array, dtype=object).ravel()]


def load_nh2015_components(root: Path | None = None, verify: bool = True) -> NeuralDataset:
    """The 6 fMRI components of NH2015 (``components.mat``: R (165, 6), rows in the file's own stimulus order)."""
    import scipy.io

    folder = (root or data_root()) / "nh2015_components"
    path = folder / "components.mat"
    if not path.is_file():
        raise DataError(f"nh2015-components not found: {path} is missing (set BRAINLIKE_DATA to the data folder, "
                        "or run `brainlike fetch nh2015-components`)")
    expected = read_sums(_resource("nh2015_components", "SHA256SUMS"))["components.mat"]
    digest = verify_file(path, expected) if verify else expected
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    responses = np.asarray(mat["R"], dtype=np.float64)
    names = _matlab_strings(mat["stim_names"])
    components = _matlab_strings(mat["component_names"])
    if responses.shape != (len(names), len(components)):
        raise DataError(f"{path}: R has shape {responses.shape}, expected ({len(names)}, {len(components)})")
    array = xr.DataArray(
        responses[:, :, None],
        dims=("stimulus", "target", "repetition"),
        coords={"stimulus": names, "target": components, "repetition": [0],
                "subject": ("target", ["group"] * len(components)),
                "roi": ("target", ["component"] * len(components))},
        name="responses",
    )
    return NeuralDataset("nh2015-components", array, kind="components", checksums={"components.mat": digest},
                         attrs={"citation": "Norman-Haignere, Kanwisher & McDermott 2015, Neuron"})


@dataclass
class DatasetEntry:
    """A registered neural dataset: ``load()`` and ``available()`` (None or a reason it cannot load here)."""

    name: str
    load: Callable[[], NeuralDataset]
    description: str
    available: Callable[[], str | None]
    stimulus_set: str = "natsound165"


def _components_available() -> str | None:
    path = data_root() / "nh2015_components" / "components.mat"
    return None if path.is_file() else f"{path} missing (set BRAINLIKE_DATA or run `brainlike fetch nh2015-components`)"


DATASETS: dict[str, DatasetEntry] = {
    "nh2015-components": DatasetEntry("nh2015-components", load_nh2015_components,
                                      "NH2015 fMRI components (6 components x 165 sounds)", _components_available),
}

_FILE_SUFFIXES = (".nc", ".npz")


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    DATASETS[entry.name] = entry
    return entry


def load_dataset(name: str) -> NeuralDataset:
    """Load a dataset by registered name, or from a bring-your-own file path (``.nc`` / ``.npz``)."""
    _discover()
    if name in DATASETS:
        return DATASETS[name].load()
    if name.endswith(_FILE_SUFFIXES) or Path(name).exists():
        from brainlike.data.custom import load_dataset_file

        return load_dataset_file(name)
    import difflib

    close = difflib.get_close_matches(name, list(DATASETS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownNameError(f"unknown dataset {name!r}{hint} (see `brainlike datasets`)")


def list_datasets() -> list[dict]:
    _discover()
    return [{"name": e.name, "description": e.description, "available": e.available() is None,
             "reason": e.available() or ""} for e in DATASETS.values()]


def _discover() -> None:
    """Import optional dataset modules that register more datasets (voxel archives)."""
    import importlib

    for module in ("brainlike.data.voxels", "brainlike.data.ecog"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
