"""Feature files as models: the spec ``features:PATH.npz`` (docs/contracts.md section 7).

An ``.npz`` file (read without pickle) holds a ``stimulus`` array of names (strings) and one array per "layer":
(stimulus, features), or (stimulus, time, features) with a ``frame_times`` array (seconds, one per time step).
Rows are matched to a stimulus set BY NAME (``stim5_alarm_clock``; a ``.wav`` suffix is ignored): the file may hold
more stimuli, in any order, but it must hold every stimulus of the set. Time-resolved arrays are averaged over time,
as models' activations are for the time-averaged protocols.

``ecog_acoustic_features`` converts the ECoG repository's ``acoustic_features.mat`` (no names: rows in ascending
stimulus-ID order) into such a file.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from brainlike.errors import DataError
from brainlike.extract.extractor import Activations

__all__ = ["PREFIX", "RESERVED", "is_feature_spec", "feature_path", "read_feature_file", "load_feature_file",
           "write_feature_file", "ECOG_ACOUSTIC_ARRAYS", "ecog_acoustic_features"]

PREFIX = "features:"
RESERVED = ("stimulus", "frame_times")


def is_feature_spec(spec: str) -> bool:
    """Whether a model spec names a feature file."""
    return spec.strip().startswith(PREFIX)


def feature_path(spec: str) -> Path:
    path = Path(spec.strip()[len(PREFIX):]).expanduser()
    if not str(path) or str(path) == ".":
        raise DataError(f"feature spec {spec!r} needs a path after 'features:'")
    return path


def _stem(name: str) -> str:
    return name[:-4] if name.lower().endswith(".wav") else name


def read_feature_file(path: str | Path) -> tuple[list[str], dict[str, np.ndarray], np.ndarray | None]:
    """Names, arrays (file order) and frame times of a feature file; one-line :class:`DataError` on bad content."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"feature file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            contents = {key: npz[key] for key in npz.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise DataError(f"feature file {path}: {exc} (store names as a string array, not objects)") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"feature file {path} is not a readable .npz file ({exc})") from None
    if "stimulus" not in contents:
        raise DataError(f"feature file {path} has no 'stimulus' array of stimulus names")
    names = contents["stimulus"]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(f"feature file {path}: 'stimulus' must be a 1-D array of strings, got {names.dtype} "
                        f"{names.shape}")
    names = [_stem(str(n)) for n in names]
    if len(set(names)) != len(names):
        raise DataError(f"feature file {path}: duplicated stimulus names")
    frame_times = contents.get("frame_times")
    arrays = {k: v for k, v in contents.items() if k not in RESERVED}
    if not arrays:
        raise DataError(f"feature file {path} has no feature arrays besides {', '.join(RESERVED)}")
    for key, value in arrays.items():
        if value.dtype.kind not in "fiu" or value.ndim not in (2, 3) or value.shape[0] != len(names):
            raise DataError(f"feature file {path}: array {key!r} must be numeric (stimulus, features) or (stimulus, "
                            f"time, features) with {len(names)} rows; got {value.dtype} {value.shape}")
        if value.ndim == 3 and (frame_times is None or len(frame_times) != value.shape[1]):
            raise DataError(f"feature file {path}: array {key!r} has a time axis of {value.shape[1]} but "
                            f"'frame_times' {'is missing' if frame_times is None else f'has {len(frame_times)}'}")
        if not np.all(np.isfinite(value)):
            raise DataError(f"feature file {path}: array {key!r} has NaN or Inf values")
    return names, arrays, frame_times


def load_feature_file(spec: str, stimulus_ids: Sequence[str]) -> Activations:
    """Activations of a feature file, rows aligned to ``stimulus_ids`` by name.

    Raises
    ------
    DataError
        Unreadable or malformed file, NaN features, or stimuli of the set missing from the file.
    """
    path = feature_path(spec)
    names, arrays, frame_times = read_feature_file(path)
    position = {name: i for i, name in enumerate(names)}
    missing = [s for s in stimulus_ids if s not in position]
    if missing:
        raise DataError(f"feature file {path} lacks {len(missing)} of the {len(stimulus_ids)} stimuli "
                        f"(e.g. {', '.join(missing[:3])}); rows are matched by stimulus name")
    rows = np.array([position[s] for s in stimulus_ids])
    layers = list(arrays)
    out = {k: np.asarray(v[rows].mean(axis=1) if v.ndim == 3 else v[rows], dtype=np.float32)
           for k, v in arrays.items()}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    info = {"name": spec, "class": "FeatureFile", "path": str(path.resolve()), "sha256": digest, "layers": layers,
            "time_averaged": [k for k, v in arrays.items() if v.ndim == 3],
            "frame_times": None if frame_times is None else [float(frame_times[0]), float(frame_times[-1])]}
    return Activations(spec, layers, out, list(stimulus_ids), f"features:{digest}", info)


def write_feature_file(path: str | Path, stimulus_ids: Sequence[str], arrays: dict[str, np.ndarray]) -> Path:
    """Write a feature file (atomically) with the given names and (stimulus, features) arrays."""
    from brainlike.integrity import atomic_write

    path = Path(path)
    for key in arrays:
        if key in RESERVED:
            raise DataError(f"feature array name {key!r} is reserved")
    buffer = io.BytesIO()
    np.savez(buffer, stimulus=np.array(list(stimulus_ids), dtype=str),
             **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
    atomic_write(path, buffer.getvalue())
    return path


ECOG_ACOUSTIC_ARRAYS = {"cochleagram": "F_coch", "modulation": "F_mod"}


def ecog_acoustic_features(source: str | Path, stimulus_ids: Sequence[str],
                           arrays: Sequence[str] = tuple(ECOG_ACOUSTIC_ARRAYS)) -> dict[str, np.ndarray]:
    """The ECoG repository's acoustic features as named (stimulus, features) arrays.

    ``acoustic_features.mat`` holds ``F_coch`` (165, 6): cochleagram energy in 6 frequency bands, and ``F_mod``
    (165, 7, 9): spectrotemporal modulation energy (flattened to 63 features). Its rows carry no names: they are in
    ascending stimulus-ID order (data/ecog_nh2022/README.md), which is how ``stimulus_ids`` must be given.
    """
    from scipy.io import loadmat

    from brainlike.data.stimuli import stimulus_number

    numbers = [stimulus_number(s) for s in stimulus_ids]
    if numbers != sorted(numbers):
        raise DataError("acoustic_features.mat rows are in ascending stimulus-ID order; give the names in that order")
    try:
        mat = loadmat(str(source))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {source} as a MATLAB file ({exc})") from None
    out = {}
    for name in arrays:
        if name not in ECOG_ACOUSTIC_ARRAYS:
            raise DataError(f"unknown acoustic feature array {name!r} (choose from {', '.join(ECOG_ACOUSTIC_ARRAYS)})")
        key = ECOG_ACOUSTIC_ARRAYS[name]
        if key not in mat:
            raise DataError(f"{source} has no variable {key!r}")
        value = np.asarray(mat[key], dtype=np.float64)
        if value.shape[0] != len(stimulus_ids):
            raise DataError(f"{source}: {key} has {value.shape[0]} rows for {len(stimulus_ids)} stimuli")
        out[name] = value.reshape(value.shape[0], -1)
    return out
