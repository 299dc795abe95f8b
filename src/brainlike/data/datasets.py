"""Every neural dataset by name: the registry's front door (load, list, fetch).

:data:`brainlike.data.neural.DATASETS` holds the registered datasets (``nh2015-components`` from
:mod:`brainlike.data.neural`, the voxel sets ``nh2015`` and ``b2021`` from :mod:`brainlike.data.voxels`, the ECoG
sets ``ecog-nh2022*`` from :mod:`brainlike.data.ecog`); a path to
a ``.nc`` / ``.npz`` file is a bring-your-own dataset (:mod:`brainlike.data.custom`). This module sits above those
(it imports them; they never import it), so the data modules have no import cycle.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from brainlike.data import ecog, voxels  # noqa: F401  (they register their datasets)
from brainlike.data.custom import load_dataset_file
from brainlike.data.fetch import FETCHABLE, fetch
from brainlike.data.neural import DATASETS, NeuralDataset
from brainlike.errors import UnknownNameError

__all__ = ["DATASETS", "fetch_dataset", "list_datasets", "load_dataset", "FILE_SUFFIXES"]

FILE_SUFFIXES = (".nc", ".npz")


def load_dataset(name: str) -> NeuralDataset:
    """Load a dataset by registered name, or from a bring-your-own file path (``.nc`` / ``.npz``).

    Parameters
    ----------
    name : str
        ``nh2015-components``, ``nh2015``, ``b2021`` (see :func:`list_datasets`) or a file path.

    Returns
    -------
    NeuralDataset

    Raises
    ------
    UnknownNameError
        Neither a registered name nor an existing file (the message suggests close names).
    DataError
        The dataset's files are missing or do not match their pinned sha256.
    """
    if name in DATASETS:
        return DATASETS[name].load()
    if name.endswith(FILE_SUFFIXES) or Path(name).exists():
        return load_dataset_file(name)
    close = difflib.get_close_matches(name, list(DATASETS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownNameError(f"unknown dataset {name!r}{hint} (see `brainlike datasets`)")


def list_datasets() -> list[dict]:
    """One row per registered dataset: ``name``, ``description``, ``available`` (bool) and ``reason``."""
    return [{"name": e.name, "description": e.description, "available": e.available() is None,
             "reason": e.available() or ""} for e in DATASETS.values()]


def fetch_dataset(name: str, dest: str | Path | None = None, *, show_progress: bool = True,
                  accept_sha256: str | None = None) -> Path:
    """Download dataset ``name`` into ``dest`` (default: the data root); return the folder.

    ``natsound165`` and ``nh2015-components`` are pinned by sha256 (:func:`brainlike.data.fetch.fetch`);
    the voxel sets ``nh2015`` and ``b2021`` come from one archive accepted on first use or by ``accept_sha256``
    (:func:`brainlike.data.voxels.fetch_voxels`).
    """
    if name in FETCHABLE:
        return fetch(name, dest, show_progress=show_progress)
    if name in voxels.VOXEL_SETS:
        return voxels.fetch_voxels(name, dest, accept_sha256)
    raise UnknownNameError(f"nothing to fetch for {name!r}; fetchable: {', '.join([*FETCHABLE, *voxels.VOXEL_SETS])}")
