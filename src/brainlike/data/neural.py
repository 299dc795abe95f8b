"""Neural datasets: responses[stimulus, target, repetition] as labelled arrays, aligned to stimuli by name.

Built-in: ``nh2015-components`` (6 fMRI components of Norman-Haignere et al. 2015). Voxel datasets register
themselves in :data:`DATASETS` too (:mod:`brainlike.data.voxels`); :func:`brainlike.data.datasets.load_dataset` loads
any of them, or a bring-your-own file (:mod:`brainlike.data.custom`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from brainlike.config import data_root
from brainlike.errors import DataError
from brainlike.integrity import read_sums, verify_file

__all__ = ["COMPONENT_NAMES", "NeuralDataset", "load_nh2015_components", "DatasetEntry", "DATASETS", "register_dataset"]

COMPONENT_NAMES = ("lowfreq", "highfreq", "envsounds", "pitch", "speech", "music")


@dataclass
class NeuralDataset:
    """Responses of neural targets (voxels, components, electrodes) to a set of stimuli.

    Attributes
    ----------
    name : str
        Dataset name or the path the user gave.
    responses : xarray.DataArray, dims (stimulus, target, repetition)
        Coordinates: ``stimulus`` (stimulus names), ``target`` (target names) and per-target coordinates such as
        ``subject``, ``roi``, ``hemisphere``. Missing repetitions are NaN.
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
        if tuple(self.responses.dims) != ("stimulus", "target", "repetition"):
            raise DataError(f"{self.name}: responses must have dims (stimulus, target, repetition), "
                            f"got {self.responses.dims}")
        stimuli = [str(s) for s in self.responses["stimulus"].values]
        if len(set(stimuli)) != len(stimuli):
            dupes = sorted({s for s in stimuli if stimuli.count(s) > 1})
            raise DataError(f"{self.name}: duplicated stimulus IDs {dupes[:5]}")
        targets = [str(t) for t in self.responses["target"].values]
        if len(set(targets)) != len(targets):
            raise DataError(f"{self.name}: duplicated target names")
        values = self.responses.values
        if np.isinf(values).any():
            raise DataError(f"{self.name}: responses contain Inf")
        mean = self.mean_responses()
        if np.isnan(mean).any():
            bad = np.flatnonzero(np.isnan(mean).any(axis=0))
            raise DataError(f"{self.name}: responses contain NaN for every repetition of some stimulus "
                            f"(targets {[targets[i] for i in bad[:5]]})")
        constant = np.flatnonzero(np.ptp(mean, axis=0) == 0)
        if len(constant):
            raise DataError(f"{self.name}: {len(constant)} constant target(s) (e.g. {targets[constant[0]]!r}): "
                            "a constant response cannot be predicted or correlated")

    @property
    def stimulus_ids(self) -> list[str]:
        return [str(s) for s in self.responses["stimulus"].values]

    @property
    def target_names(self) -> list[str]:
        return [str(t) for t in self.responses["target"].values]

    @property
    def n_targets(self) -> int:
        return self.responses.sizes["target"]

    def target_coord(self, name: str) -> np.ndarray | None:
        """Per-target coordinate values (``subject``, ``roi``...) or None if the dataset has none."""
        if name in self.responses.coords and self.responses[name].dims == ("target",):
            return self.responses[name].values
        return None

    def mean_responses(self) -> np.ndarray:
        """Responses averaged over repetitions (NaN repetitions ignored), shape (stimulus, target), float64."""
        values = np.asarray(self.responses.values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            counts = np.sum(~np.isnan(values), axis=2)
            total = np.nansum(values, axis=2)
            return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)

    def align_to(self, stimulus_ids: list[str]) -> "NeuralDataset":
        """Reorder (and subset) stimuli to follow ``stimulus_ids`` exactly, matching by NAME, never by position."""
        have = set(self.stimulus_ids)
        missing = [s for s in stimulus_ids if s not in have]
        if missing:
            raise DataError(f"{self.name}: no responses for {len(missing)} stimulus name(s) of the stimulus set, "
                            f"e.g. {missing[:3]} (stimulus names must match)")
        if len(set(stimulus_ids)) != len(stimulus_ids):
            raise DataError("stimulus set has duplicated stimulus IDs")
        aligned = self.responses.sel(stimulus=list(stimulus_ids))
        return NeuralDataset(self.name, aligned, self.kind, dict(self.checksums), self.synthetic, dict(self.attrs))

    def select_targets(self, mask: np.ndarray) -> "NeuralDataset":
        """A dataset holding only the targets where ``mask`` is True."""
        subset = self.responses.isel(target=np.flatnonzero(mask))
        return NeuralDataset(self.name, subset, self.kind, dict(self.checksums), self.synthetic, dict(self.attrs))


def _resource(*parts: str) -> Path:
    return Path(str(resources.files("brainlike.data").joinpath("resources", *parts)))


def _matlab_strings(array: np.ndarray) -> list[str]:
    return [str(np.asarray(item).ravel()[0]) for item in np.asarray(array, dtype=object).ravel()]


def load_nh2015_components(root: Path | None = None, verify: bool = True) -> NeuralDataset:
    """The 6 fMRI components of NH2015 (``components.mat``: R (165, 6), rows in the file's own stimulus order)."""
    import scipy.io

    from brainlike.data.fetch import fetch_on_demand

    folder = (root or data_root()) / "nh2015_components"
    path = folder / "components.mat"
    if not path.is_file():
        missing = (f"nh2015-components not found: {path} is missing (set BRAINLIKE_DATA to the data folder, "
                   "or run `brainlike fetch nh2015-components`)")
        if root is not None:
            raise DataError(missing)
        fetch_on_demand("nh2015-components", missing)
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
    from brainlike.data.fetch import on_demand

    path = data_root() / "nh2015_components" / "components.mat"
    if path.is_file() or on_demand("nh2015-components"):  # downloaded on first use (pinned by sha256)
        return None
    return f"{path} missing (set BRAINLIKE_DATA or run `brainlike fetch nh2015-components`)"


DATASETS: dict[str, DatasetEntry] = {
    "nh2015-components": DatasetEntry("nh2015-components", load_nh2015_components,
                                      "NH2015 fMRI components (6 components x 165 sounds)", _components_available),
}


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    """Add a dataset to :data:`DATASETS` (dataset modules call this at import; see :mod:`brainlike.data.datasets`)."""
    DATASETS[entry.name] = entry
    return entry
