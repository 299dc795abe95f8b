"""ECoG responses to the 165 natural sounds (Norman-Haignere et al. 2022, Current Biology), time-resolved.

Three datasets read from ``BRAINLIKE_DATA/ecog_nh2022`` (the ``data/`` folder of
snormanhaignere/song-ecog-current-biology at the commit pinned in :mod:`brainlike.data.fetch`; every file is checked
against the sha256 sums shipped in brainlike):

``ecog-nh2022``
    the 15 response components (``ecog_component_responses.mat``: ``R`` (165, 75, 15) at 25 Hz), named c01..c15 in
    file order (the file does not name them).
``ecog-nh2022-hypothesis``
    the song-, music- and speech-selective components (``hypothesis_driven_components/{song,music,speech}.mat``:
    ``R`` (165, 75) each), targets ``song``, ``music``, ``speech``.
``ecog-nh2022-electrodes``
    the 36 files of ``individual-electrodes/`` (``R`` (165, 300) at 100 Hz each): 33 single electrodes (targets
    ``speech-elec1`` ...; ``roi`` = their type) and 3 category averages (``speech-average`` ...; ``roi`` =
    ``average``). The aggregate over targets (``target: all``) covers the 33 single electrodes only
    (``attrs["aggregate_exclude_roi"]``).

Every file's ``stim_names`` hold ``.wav`` file names: the extension is stripped and responses are aligned to the
stimuli by NAME. Bin starts come from each file's ``t`` (seconds from sound onset). The files carry no repetitions
(responses are already averaged) and no patient labels. Categories come from the stimulus set (natsound165), not
from the files' own ``C`` struct (which adds a 12th category, ``SfX``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

from brainlike.config import data_root
from brainlike.data.checksums import read_sums, verify_file
from brainlike.data.neural import DatasetEntry, NeuralDataset, register_dataset
from brainlike.errors import DataError

FOLDER = "ecog_nh2022"
COMPONENT_FILE = "ecog_component_responses.mat"
HYPOTHESIS_FILES = {"song": "hypothesis_driven_components/song.mat",
                    "music": "hypothesis_driven_components/music.mat",
                    "speech": "hypothesis_driven_components/speech.mat"}
ELECTRODE_FOLDER = "individual-electrodes"
ELECTRODE_TYPES = ("speech", "music", "song")
AVERAGE_ROI = "average"
CITATION = ("Norman-Haignere, Feather, Boebinger, Brunner, Ritaccio, McDermott, Schalk & Kanwisher 2022, "
            "Current Biology (song-ecog-current-biology)")
FETCH_HINT = "set BRAINLIKE_DATA to the data folder, or run `brainlike fetch ecog-nh2022`"


def shipped_sums() -> dict[str, str]:
    """``{path relative to data/: sha256}`` of every ECoG file (shipped inside brainlike)."""
    return read_sums(Path(str(resources.files("brainlike.data").joinpath("resources", FOLDER, "SHA256SUMS"))))


def electrode_files() -> list[str]:
    """The 36 electrode files (paths relative to ``data/``), 33 single electrodes then the 3 averages."""
    names = [p for p in shipped_sums() if p.startswith(ELECTRODE_FOLDER + "/")]
    return sorted(names, key=_electrode_order)


def _electrode_order(path: str) -> tuple:
    target, roi = electrode_target(path)
    if roi == AVERAGE_ROI:
        return (1, ELECTRODE_TYPES.index(target.split("-")[0]), 0)
    kind, number = target.split("-elec")
    return (0, ELECTRODE_TYPES.index(kind), int(number))


def electrode_target(path: str) -> tuple[str, str]:
    """Target name and ROI of an electrode file: ``speech-elec3-response.mat`` -> (``speech-elec3``, ``speech``);
    ``music-average-response.mat`` -> (``music-average``, ``average``)."""
    stem = Path(path).name.removesuffix(".mat").removesuffix("-response")
    kind = stem.split("-")[0]
    if kind not in ELECTRODE_TYPES:
        raise DataError(f"electrode file {path!r}: type {kind!r} is not one of {', '.join(ELECTRODE_TYPES)}")
    return stem, (AVERAGE_ROI if stem.endswith("-average") else kind)


def _folder(root: Path | None) -> Path:
    return (root or data_root()) / FOLDER


def _read(folder: Path, relative: str, verify: bool) -> tuple[dict, str]:
    """Load one .mat file after checking its sha256; return the variables and the digest."""
    import scipy.io

    path = folder / relative
    if not path.is_file():
        raise DataError(f"ECoG data not found: {path} is missing ({FETCH_HINT})")
    expected = shipped_sums()[relative]
    digest = verify_file(path, expected) if verify else expected
    try:
        return scipy.io.loadmat(str(path)), digest
    except Exception as exc:  # scipy raises ValueError, MatReadError, TypeError on corrupt files
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _names(mat: dict, path: str) -> list[str]:
    """Stimulus names from the top-level ``stim_names`` cell, ``.wav`` stripped."""
    if "stim_names" not in mat:
        raise DataError(f"{path}: no 'stim_names'")
    cells = np.asarray(mat["stim_names"], dtype=object).ravel()
    return [str(np.asarray(c).ravel()[0]).removesuffix(".wav") for c in cells]


def _times(mat: dict, path: str, n_bins: int) -> np.ndarray:
    if "t" not in mat:
        raise DataError(f"{path}: no time vector 't'")
    times = np.asarray(mat["t"], dtype=np.float64).ravel()
    if len(times) != n_bins:
        raise DataError(f"{path}: 't' has {len(times)} bins, R has {n_bins}")
    return times


def _responses(mat: dict, path: str, ndim: int) -> np.ndarray:
    if "R" not in mat:
        raise DataError(f"{path}: no response array 'R'")
    values = np.asarray(mat["R"], dtype=np.float64)
    if values.ndim != ndim:
        raise DataError(f"{path}: R has shape {values.shape}, expected {ndim} dimensions")
    return values


def _dataset(name: str, values: np.ndarray, names: list[str], times: np.ndarray, targets: list[str],
             roi: list[str], subject: str, kind: str, checksums: dict[str, str], **attrs) -> NeuralDataset:
    """values (stimulus, time, target) -> NeuralDataset with one repetition."""
    if values.shape != (len(names), len(times), len(targets)):
        raise DataError(f"{name}: responses of shape {values.shape} do not match {len(names)} stimulus names, "
                        f"{len(times)} bins and {len(targets)} targets")
    array = xr.DataArray(values[..., None], dims=("stimulus", "time", "target", "repetition"),
                         coords={"stimulus": names, "time": times, "target": targets, "repetition": [0],
                                 "subject": ("target", [subject] * len(targets)), "roi": ("target", roi)},
                         name="responses")
    return NeuralDataset(name, array, kind=kind, checksums=checksums,
                         attrs={"citation": CITATION, "stimulus_set": "natsound165", **attrs})


def load_components(root: Path | None = None, verify: bool = True) -> NeuralDataset:
    """``ecog-nh2022``: the 15 ECoG response components (165 sounds x 75 bins at 25 Hz x 15), c01..c15."""
    mat, digest = _read(_folder(root), COMPONENT_FILE, verify)
    values = _responses(mat, COMPONENT_FILE, 3)
    targets = [f"c{i + 1:02d}" for i in range(values.shape[2])]
    return _dataset("ecog-nh2022", values, _names(mat, COMPONENT_FILE), _times(mat, COMPONENT_FILE, values.shape[1]),
                    targets, ["component"] * len(targets), "group", "components", {COMPONENT_FILE: digest})


def load_hypothesis(root: Path | None = None, verify: bool = True) -> NeuralDataset:
    """``ecog-nh2022-hypothesis``: the song-, music- and speech-selective components (165 x 75 bins at 25 Hz)."""
    return _stack_files("ecog-nh2022-hypothesis", HYPOTHESIS_FILES, root, verify, "components",
                        roi=lambda target: "component", subject="group")


def load_electrodes(root: Path | None = None, verify: bool = True) -> NeuralDataset:
    """``ecog-nh2022-electrodes``: 33 selective electrodes and 3 category averages (165 x 300 bins at 100 Hz)."""
    files = {electrode_target(path)[0]: path for path in electrode_files()}
    return _stack_files("ecog-nh2022-electrodes", files, root, verify, "electrodes",
                        roi=lambda target: electrode_target(target)[1], subject="unknown",
                        aggregate_exclude_roi=AVERAGE_ROI)


def _stack_files(name: str, files: dict[str, str], root: Path | None, verify: bool, kind: str, roi, subject: str,
                 **attrs) -> NeuralDataset:
    """One target per file (``R`` (165, bins)); every file must list the same stimuli and bins (by name)."""
    folder = _folder(root)
    columns, checksums = [], {}
    names = times = None
    for target, relative in files.items():
        mat, checksums[relative] = _read(folder, relative, verify)
        values = _responses(mat, relative, 2)
        file_names, file_times = _names(mat, relative), _times(mat, relative, values.shape[1])
        if values.shape[0] != len(file_names):
            raise DataError(f"{relative}: R has {values.shape[0]} rows for {len(file_names)} stimulus names")
        if names is None:
            names, times = file_names, file_times
        else:
            if set(file_names) != set(names):
                raise DataError(f"{relative}: its stimulus names differ from {next(iter(files.values()))}'s")
            if len(file_times) != len(times) or not np.allclose(file_times, times, atol=1e-9):
                raise DataError(f"{relative}: its time bins differ from {next(iter(files.values()))}'s")
            order = {n: i for i, n in enumerate(file_names)}
            values = values[[order[n] for n in names]]  # align rows by name, never by position
        columns.append(values)
    targets = list(files)
    return _dataset(name, np.stack(columns, axis=2), names, times, targets, [roi(t) for t in targets], subject,
                    kind, checksums, **attrs)


def _missing(paths: list[str]) -> str | None:
    folder = _folder(None)
    absent = [p for p in paths if not (folder / p).is_file()]
    if not absent:
        return None
    more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
    return f"{folder / absent[0]} missing{more} ({FETCH_HINT})"


register_dataset(DatasetEntry("ecog-nh2022", load_components,
                              "ECoG response components (NH2022): 15 components x 165 sounds, 25 Hz, 0-3 s",
                              lambda: _missing([COMPONENT_FILE])))
register_dataset(DatasetEntry("ecog-nh2022-hypothesis", load_hypothesis,
                              "ECoG song, music and speech components (NH2022), 25 Hz, 0-3 s",
                              lambda: _missing(list(HYPOTHESIS_FILES.values()))))
register_dataset(DatasetEntry("ecog-nh2022-electrodes", load_electrodes,
                              "ECoG: 33 speech/music/song-selective electrodes + 3 averages (NH2022), 100 Hz, 0-3 s",
                              lambda: _missing(electrode_files())))
