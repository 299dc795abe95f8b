"""Stimulus sets: ordered sounds with names, categories and cross-validation folds.

The built-in set is ``natsound165`` (Norman-Haignere et al. 2015): 165 natural sounds, 2 s each, in ascending numeric
stimulus-ID order (stim5, stim7, stim11, ...), 11 categories and the 5 stratified folds of Pepino et al. 2025.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from brainlike.config import data_root
from brainlike.data.audio import probe_sample_rate, read_audio, resample
from brainlike.errors import AudioError, DataError, UnknownNameError
from brainlike.integrity import read_sums, sha256_bytes, sha256_file, verify_file

__all__ = ["CATEGORIES_165", "stimulus_number", "StimulusSet", "natsound165_folder", "load_natsound165",
           "STIMULUS_SETS", "AUDIO_SUFFIXES", "N_FOLDS", "load_stimulus_folder", "load_stimulus_set"]

CATEGORIES_165 = ("EngSpeech", "ForSpeech", "HumVoc", "HumNonVoc", "AniVoc", "AniNonVoc", "Nature",
                  "Mechanical", "Song", "Music", "EnvSound")


def stimulus_number(name: str) -> int:
    """Numeric ID of ``stim<ID>_<name>`` (used to sort stimuli: by integer, not as text)."""
    match = re.match(r"stim(\d+)_", name)
    if not match:
        raise DataError(f"stimulus name {name!r} is not of the form stim<ID>_<name>")
    return int(match.group(1))


@dataclass
class StimulusSet:
    """An ordered set of sound files with names, categories and folds.

    Attributes
    ----------
    name : str
        Set name (``natsound165``).
    ids : list of str
        Stimulus names in set order (file stems, e.g. ``stim5_alarm_clock``).
    paths : list of Path
        Audio file per stimulus.
    categories : list of str
        Category label per stimulus.
    folds : ndarray of int, shape (n_stimuli,)
        Cross-validation fold per stimulus (0-based).
    file_sha256 : list of str
        sha256 of each audio file (verified when the set was loaded).
    duration : float or None
        Seconds kept from each file (None = whole file).
    """

    name: str
    ids: list[str]
    paths: list[Path]
    categories: list[str]
    folds: np.ndarray
    file_sha256: list[str]
    duration: float | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(set(self.ids)) != n:
            dupes = sorted({i for i in self.ids if self.ids.count(i) > 1})
            raise DataError(f"stimulus set {self.name}: duplicated stimulus IDs {dupes[:5]}")
        for label, values in (("paths", self.paths), ("categories", self.categories), ("folds", self.folds),
                              ("file_sha256", self.file_sha256)):
            if len(values) != n:
                raise DataError(f"stimulus set {self.name}: {len(values)} {label} for {n} stimuli")
        self.folds = np.asarray(self.folds, dtype=int)

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def checksum(self) -> str:
        """sha256 over the ordered (id, file sha256) pairs and the kept duration: identifies the audio exactly."""
        text = "\n".join(f"{i} {h}" for i, h in zip(self.ids, self.file_sha256)) + f"\nduration={self.duration}"
        return sha256_bytes(text.encode())

    def waveform(self, index: int, sample_rate: int | None = None, resampler: str = "resample_poly") -> np.ndarray:
        """One stimulus as float32 mono at ``sample_rate`` (None = the file's own rate)."""
        waveform, rate = read_audio(self.paths[index])
        if self.duration is not None:
            keep = int(round(rate * self.duration))
            if len(waveform) < keep:
                raise AudioError(f"{self.paths[index]} is {len(waveform) / rate:.3f} s long; "
                                 f"stimulus set {self.name} needs {self.duration} s")
            waveform = waveform[:keep]
        if sample_rate is None or sample_rate == rate:
            return waveform
        return resample(waveform, rate, sample_rate, method=resampler)

    def native_rates(self) -> set[int]:
        import soundfile as sf

        return {sf.info(str(p)).samplerate for p in self.paths}

    def waveforms(self, sample_rate: int | None = None, resampler: str = "resample_poly") -> list[np.ndarray]:
        """All stimuli as float32 mono waveforms at ``sample_rate``."""
        return [self.waveform(i, sample_rate, resampler) for i in range(len(self))]

    def subset(self, indices: list[int] | np.ndarray) -> "StimulusSet":
        """A new set holding the given stimuli (in the given order)."""
        idx = [int(i) for i in indices]
        return StimulusSet(self.name, [self.ids[i] for i in idx], [self.paths[i] for i in idx],
                           [self.categories[i] for i in idx], self.folds[idx], [self.file_sha256[i] for i in idx],
                           self.duration)


def _resource(*parts: str) -> Path:
    return Path(str(resources.files("brainlike.data").joinpath("resources", *parts)))


def natsound165_folder(root: Path | None = None) -> Path:
    """Folder of the natsound165 data (``$BRAINLIKE_DATA/natsound165``), checked to exist.

    Without ``root`` and ``BRAINLIKE_DATA``, missing files are downloaded into the default data folder first
    (:func:`brainlike.data.fetch.fetch_on_demand`).
    """
    from brainlike.data.fetch import fetch_on_demand

    folder = (root or data_root()) / "natsound165"
    if not (folder / "stimuli" / "wav").is_dir():
        missing = (f"natsound165 not found under {folder.parent} (set BRAINLIKE_DATA to the data folder, "
                   "or run `brainlike fetch natsound165`)")
        if root is not None:
            raise DataError(missing)
        fetch_on_demand("natsound165", missing)
    return folder


def load_natsound165(root: Path | None = None, verify: bool = True) -> StimulusSet:
    """Load the 165 natural sounds of NH2015, verifying every file against the sha256 sums shipped in brainlike."""
    folder = natsound165_folder(root)
    wav_sums = read_sums(_resource("natsound165", "stimuli_SHA256SUMS"))
    other_sums = read_sums(_resource("natsound165", "SHA256SUMS"))
    wav_dir = folder / "stimuli" / "wav"
    categories_file = folder / "stimuli" / "category_labels.csv"
    folds_file = folder / "folds.csv"
    if verify:
        verify_file(categories_file, other_sums["stimuli/category_labels.csv"])
        verify_file(folds_file, other_sums["folds.csv"])
    categories = dict(_read_rows(categories_file, header=False))
    folds = {name: int(fold) for name, fold in _read_rows(folds_file, header=True)}
    names = sorted((Path(f).stem for f in wav_sums), key=stimulus_number)
    missing = [n for n in names if n not in categories or n not in folds]
    if missing:
        raise DataError(f"natsound165: no category or fold for {missing[:5]}")
    hashes = []
    for name in names:
        path = wav_dir / f"{name}.wav"
        hashes.append(verify_file(path, wav_sums[f"{name}.wav"]) if verify else wav_sums[f"{name}.wav"])
    return StimulusSet("natsound165", names, [wav_dir / f"{n}.wav" for n in names], [categories[n] for n in names],
                       np.array([folds[n] for n in names]), hashes, duration=2.0)


def _read_rows(path: Path, header: bool) -> list[tuple[str, str]]:
    with open(path, newline="") as handle:
        rows = [tuple(r[:2]) for r in csv.reader(handle) if r]
    return rows[1:] if header else rows


STIMULUS_SETS = {"natsound165": load_natsound165}
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
N_FOLDS = 5


def load_stimulus_folder(folder: str | Path, n_folds: int = N_FOLDS) -> StimulusSet:
    """A bring-your-own stimulus set: a folder of audio files, optionally with ``stimuli.csv``.

    ``stimuli.csv`` (header row) has columns ``stimulus,file`` and optionally ``category`` and ``fold``; without it
    every audio file in the folder is a stimulus named by its stem, in sorted order. Missing folds are assigned
    deterministically: within each category, stimuli in order go to folds 0, 1, ..., n_folds - 1, 0, ...
    All files must share one sample rate; every file is hashed (the set's checksum covers content and order).
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise DataError(f"stimulus folder {folder} does not exist")
    table = folder / "stimuli.csv"
    if table.is_file():
        import pandas as pd

        frame = pd.read_csv(table, dtype=str)
        if not {"stimulus", "file"} <= set(frame.columns):
            raise DataError(f"{table}: needs columns 'stimulus' and 'file' (found {list(frame.columns)})")
        ids = frame["stimulus"].tolist()
        paths = [folder / f for f in frame["file"]]
        categories = frame["category"].fillna("none").tolist() if "category" in frame else ["none"] * len(ids)
        folds = frame["fold"].astype(int).tolist() if "fold" in frame and frame["fold"].notna().all() else None
    else:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        ids, categories, folds = [p.stem for p in paths], ["none"] * len(paths), None
    if not ids:
        raise DataError(f"stimulus folder {folder} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"stimulus files missing: {missing[:3]}")
    rates: dict[int, list[str]] = {}
    for path in paths:
        rates.setdefault(probe_sample_rate(path), []).append(path.name)
    if len(rates) > 1:
        summary = ", ".join(f"{rate} Hz: {len(files)} file(s) e.g. {files[0]}" for rate, files in rates.items())
        raise AudioError(f"stimulus files have mixed sample rates ({summary}); convert them to one rate")
    if folds is None:
        counters: dict[str, int] = {}
        folds = []
        for category in categories:
            folds.append(counters.get(category, 0) % n_folds)
            counters[category] = counters.get(category, 0) + 1
    return StimulusSet(folder.name, ids, paths, categories, np.array(folds), [sha256_file(p) for p in paths])


def load_stimulus_set(name: str = "natsound165", **kwargs) -> StimulusSet:
    """Load a stimulus set by name (``natsound165``) or from a folder of audio files."""
    if name in STIMULUS_SETS:
        return STIMULUS_SETS[name](**kwargs)
    if Path(name).is_dir():
        return load_stimulus_folder(name)
    raise UnknownNameError(f"unknown stimulus set {name!r}; known: {', '.join(STIMULUS_SETS)} or a folder path")
