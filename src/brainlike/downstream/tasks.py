"""Downstream task registry (HEAR-style classification tasks with their own folds or splits).

| task | audio set | label | folds (order used by the probes) | clip length |
|---|---|---|---|---|
| ``esc10`` | esc10 (data) | 10 sound classes | official folds 1-5 | padded/cropped to 5 s |
| ``fsdd`` | fsdd (data) | digit 0-9 | official split: test = recordings 0-4, valid = 5-9, train = 10-49 | 1 s |
| ``fsdd-speaker`` | fsdd (data) | digit 0-9 | leave one speaker out (6 folds, speakers in alphabetical order) | 1 s |
| ``ravdess`` | ravdess (data) | 8 emotions | actor folds 1-5 | cropped to 4 s |
| ``nsynth-pitch`` | nsynth (rendered) | MIDI pitch 48-79 | folds 1-5 by instrument (program) | 1.5 s |
| ``nsynth-instrument`` | nsynth (rendered) | 11 instrument families | folds 1-5 by instrument (program) | 1.5 s |
| ``music-style`` | music-style (rendered) | 5 corpora (composer/collection) | folds 1-5 by piece | 4 s |

Fold protocol (docs/contracts.md section 4): the fold labels are put in their order; the probe tests on fold ``i``,
selects hyper-parameters (and stops early) on fold ``i + 1`` (cyclic) and trains on the others. ``fsdd`` has one
evaluation only: test on ``test``, validate on ``valid``.

Rendered sets live in ``cache_root()/tasks/<set>`` and are made by ``brainlike tasks build``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from brainlike.config import cache_root, data_root
from brainlike.errors import DataError, UnknownNameError
from brainlike.integrity import read_sums, sha256_bytes, verify_file

__all__ = ["TaskInfo", "TASKS", "Split", "Task", "fold_split", "task_names", "resolve_tasks", "set_root", "load_task",
           "verify_task", "build_rendered", "list_tasks", "task_audio_files", "rendered_sources"]


@dataclass(frozen=True)
class TaskInfo:
    """Static description of a task.

    Attributes
    ----------
    name : str
        Task name used on the command line.
    audio_set : str
        Folder of clips the task reads (tasks on the same clips share embeddings).
    source : str
        ``"data"`` (``$BRAINLIKE_DATA/downstream/<set>``) or ``"rendered"`` (``cache_root()/tasks/<set>``).
    label_column, fold_column : str
        Columns of ``labels.csv`` holding the label and the fold.
    metric : str
        ``"accuracy"`` or ``"pitch_accuracy"`` (the same computation, named as in HEAR).
    sample_rate : int
        Rate of the clips (every clip of the set has it).
    min_seconds, max_seconds : float
        Clips are zero-padded at the end to ``min_seconds`` and cropped to ``max_seconds``.
    fold_order : tuple of str or None
        Explicit order of fold labels; None sorts them (numerically where they are integers).
    test_folds : tuple of str or None
        The folds used as test folds; None = every fold.
    description : str
        One line for ``brainlike tasks list``.
    """

    name: str
    audio_set: str
    source: str
    label_column: str
    fold_column: str
    metric: str
    sample_rate: int
    min_seconds: float
    max_seconds: float
    description: str
    fold_order: tuple[str, ...] | None = None
    test_folds: tuple[str, ...] | None = None


TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in [
        TaskInfo("esc10", "esc10", "data", "label", "fold", "accuracy", 44100, 5.0, 5.0,
                 "ESC-10 environmental sounds, 10 classes, 400 clips, official folds 1-5"),
        TaskInfo("fsdd", "fsdd", "data", "label", "fsdd_split", "accuracy", 8000, 1.0, 1.0,
                 "spoken digits, 3000 clips, official split (test = recordings 0-4; valid = 5-9)",
                 fold_order=("test", "valid", "train"), test_folds=("test",)),
        TaskInfo("fsdd-speaker", "fsdd", "data", "label", "speaker", "accuracy", 8000, 1.0, 1.0,
                 "spoken digits, leave one speaker out (6 speakers)"),
        TaskInfo("ravdess", "ravdess", "data", "label", "fold", "accuracy", 16000, 0.0, 4.0,
                 "RAVDESS speech emotion, 8 classes, 1440 clips, actor folds 1-5"),
        TaskInfo("nsynth-pitch", "nsynth", "rendered", "pitch", "fold", "pitch_accuracy", 16000, 1.5, 1.5,
                 "rendered single notes, 32 pitches (MIDI 48-79) x 55 GM programs; folds by instrument"),
        TaskInfo("nsynth-instrument", "nsynth", "rendered", "family", "fold", "accuracy", 16000, 1.5, 1.5,
                 "rendered single notes, 11 instrument families; folds by instrument"),
        TaskInfo("music-style", "music-style", "rendered", "style", "fold", "accuracy", 16000, 4.0, 4.0,
                 "4 s excerpts of music21 corpora (5 composers/collections) in 4 balanced timbres; folds by piece"),
    ]
}


#: Clips per audio set of the published downstream results (docs/results/downstream/README.md: chosen from the
#: measured embedding throughput of every model so that embedding all of them stays within about 6 CPU-hours).
STANDARD_SET_SIZES: dict[str, int] = {"esc10": 350, "fsdd": 350, "ravdess": 350, "nsynth": 350,
                                       "music-style": 350}


@dataclass(frozen=True)
class Split:
    """One evaluation of a task: indices (into the task's clips) of train, validation and test clips."""

    test_fold: str
    valid_fold: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


@dataclass
class Task:
    """A loaded task: clip files, labels, folds and the checksum of its clip set."""

    info: TaskInfo
    root: Path
    files: list[str]
    labels: np.ndarray
    folds: np.ndarray
    file_sha256: list[str]

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def classes(self) -> list[str]:
        """Sorted class labels (numerically when they are integers)."""
        return _sorted_labels(np.unique(self.labels).tolist())

    @property
    def checksum(self) -> str:
        """sha256 over the clip hashes in order and the padding/cropping parameters (identifies the clip set)."""
        text = json.dumps({"files": self.files, "sha256": self.file_sha256, "rate": self.info.sample_rate,
                           "min": self.info.min_seconds, "max": self.info.max_seconds})
        return sha256_bytes(text)

    def fold_order(self) -> list[str]:
        """Fold labels in the order the fold protocol uses."""
        present = _sorted_labels(np.unique(self.folds).tolist())
        if self.info.fold_order is None:
            return present
        return [f for f in self.info.fold_order if f in present]

    def splits(self) -> list[Split]:
        """Test fold ``i``, validation fold ``i + 1`` (cyclic), train on the rest, for every test fold."""
        order = self.fold_order()
        tests = order if self.info.test_folds is None else [f for f in order if f in self.info.test_folds]
        return [fold_split(self.folds, order, order.index(t)) for t in tests]

    def waveforms(self) -> list[np.ndarray]:
        """Clips as float32 mono arrays at ``info.sample_rate``, padded/cropped to the task's clip length."""
        from brainlike.data.audio import read_audio, resample
        from brainlike.progress import task

        rate = self.info.sample_rate
        lo, hi = int(round(self.info.min_seconds * rate)), int(round(self.info.max_seconds * rate))
        clips = []
        with task(f"reading {self.info.audio_set}", total=len(self.files)) as advance:
            for rel in self.files:
                wave, sr = read_audio(self.root / rel)
                if sr != rate:
                    wave = resample(wave, sr, rate)
                wave = wave[:hi]
                if len(wave) < lo:
                    wave = np.pad(wave, (0, lo - len(wave)))
                clips.append(np.ascontiguousarray(wave, dtype=np.float32))
                advance()
        return clips

    def subset(self, max_clips: int | None) -> "Task":
        """A fixed, balanced subset of at most ``max_clips`` clips (the task itself when it is small enough).

        Clips are grouped by (fold, label); within a group they are ordered by the sha256 of their file name; the
        groups are then taken from round-robin, one clip each, until ``max_clips`` are chosen. The subset keeps the
        original clip order, so it is the same on every machine.
        """
        if max_clips is None or max_clips >= len(self.files):
            return self
        if max_clips < 1:
            raise DataError(f"max_clips must be positive, got {max_clips}")
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (fold, label) in enumerate(zip(self.folds, self.labels)):
            groups.setdefault((str(fold), str(label)), []).append(i)
        for members in groups.values():
            members.sort(key=lambda i: sha256_bytes(self.files[i]))
        chosen: list[int] = []
        for depth in range(max(len(m) for m in groups.values())):
            for key in sorted(groups):
                if depth < len(groups[key]) and len(chosen) < max_clips:
                    chosen.append(groups[key][depth])
        keep = sorted(chosen)
        return Task(self.info, self.root, [self.files[i] for i in keep], self.labels[keep], self.folds[keep],
                    [self.file_sha256[i] for i in keep])

    def restrict(self, files: Sequence[str]) -> "Task":
        """The task on the clips ``files`` only (they must be clips of the task), in the task's own clip order."""
        wanted = set(files)
        unknown = wanted - set(self.files)
        if unknown:
            raise DataError(f"{len(unknown)} clips are not clips of task {self.name} (first: {sorted(unknown)[0]})")
        keep = [i for i, f in enumerate(self.files) if f in wanted]
        return Task(self.info, self.root, [self.files[i] for i in keep], self.labels[keep], self.folds[keep],
                    [self.file_sha256[i] for i in keep])

    def describe(self) -> dict:
        """Provenance: name, set, counts, folds and checksum."""
        return {"task": self.name, "audio_set": self.info.audio_set, "n_clips": len(self.files),
                "n_classes": len(self.classes), "folds": self.fold_order(), "metric": self.info.metric,
                "checksum": self.checksum, "chance": round(1.0 / len(self.classes), 6)}


def fold_split(folds: np.ndarray, order: Sequence[str], i: int) -> Split:
    """The split testing on ``order[i]`` and validating on ``order[(i + 1) % K]``; the other folds train."""
    folds = np.asarray(folds).astype(str)
    if len(order) < 3:
        raise DataError(f"the fold protocol needs at least 3 folds, got {list(order)}")
    test, valid = order[i], order[(i + 1) % len(order)]
    index = np.arange(len(folds))
    return Split(test, valid, index[(folds != test) & (folds != valid)], index[folds == valid], index[folds == test])


def task_names() -> list[str]:
    """Registered task names, in table order."""
    return list(TASKS)


def resolve_tasks(names: Sequence[str]) -> list[str]:
    """Expand ``all`` and check names; unknown names raise :class:`UnknownNameError` with close matches."""
    import difflib

    out: list[str] = []
    for name in names:
        if name == "all":
            out.extend(TASKS)
            continue
        if name not in TASKS:
            close = difflib.get_close_matches(name, list(TASKS), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownNameError(f"unknown task {name!r}{hint} (tasks: {', '.join(TASKS)})")
        out.append(name)
    return list(dict.fromkeys(out))


def set_root(info: TaskInfo) -> Path:
    """Folder of a task's audio set."""
    if info.source == "data":
        return data_root() / "downstream" / info.audio_set
    return cache_root() / "tasks" / info.audio_set


def load_task(name: str) -> Task:
    """Load a task's clip list, labels, folds and clip hashes (audio is read later by :meth:`Task.waveforms`)."""
    import pandas as pd

    info = TASKS[resolve_tasks([name])[0]]
    root = set_root(info)
    labels_path = root / "labels.csv"
    if not labels_path.is_file():
        if info.source == "rendered":
            raise DataError(f"task {name!r} has not been rendered yet ({root}); run `brainlike tasks build`")
        raise DataError(f"task data missing: {labels_path} (set BRAINLIKE_DATA to the data folder)")
    table = pd.read_csv(labels_path, dtype=str, keep_default_na=False)
    if info.name.startswith("fsdd"):
        table["fsdd_split"] = [_fsdd_split(f) for f in table["file"]]
    for column in ("file", info.label_column, info.fold_column):
        if column not in table.columns:
            raise DataError(f"{labels_path} has no column {column!r}")
    sums = read_sums(root / "SHA256SUMS")
    missing = [f for f in table["file"] if f not in sums]
    if missing:
        raise DataError(f"{len(missing)} clips of {name} are not in {root / 'SHA256SUMS'} (first: {missing[0]})")
    return Task(info, root, table["file"].tolist(), table[info.label_column].to_numpy(dtype=str),
                table[info.fold_column].to_numpy(dtype=str), [sums[f] for f in table["file"]])


def audio_set_tasks(audio_set: str) -> list[str]:
    """Tasks that read the clips of ``audio_set``, in table order."""
    names = [t.name for t in TASKS.values() if t.audio_set == audio_set]
    if not names:
        raise UnknownNameError(f"unknown audio set {audio_set!r} (sets: {', '.join(audio_sets())})")
    return names


def audio_sets() -> list[str]:
    """Audio sets of the registered tasks, in table order."""
    return list(dict.fromkeys(t.audio_set for t in TASKS.values()))


def set_subset(audio_set: str, n_clips: int | None) -> list[str]:
    """The fixed balanced subset of ``n_clips`` clips of an audio set (every clip when ``n_clips`` is None or at
    least the set's size), shared by every task that reads the set.

    Strata are the combinations of the label and fold of every task on the set (e.g. FSDD: digit x official split
    x speaker; NSynth: pitch x family x instrument fold; ESC-10: class x fold). Clips are taken round-robin over
    the strata, one clip per stratum per round (strata in the order of the sha256 of their name, clips within a
    stratum in the order of the sha256 of their file name), until ``n_clips`` are chosen: every stratum gets
    ``t`` or ``t + 1`` clips, or all of its clips when it has fewer (the rule of :meth:`Task.subset`, applied to
    the joint strata of the set's tasks). Returns file names in the set's clip order.
    """
    tasks = [load_task(name) for name in audio_set_tasks(audio_set)]
    files = tasks[0].files
    if n_clips is None or n_clips >= len(files):
        return list(files)
    if n_clips < 1:
        raise DataError(f"a clip set needs at least one clip, got {n_clips}")
    strata: dict[tuple[str, ...], list[int]] = {}
    columns = [np.asarray(c).astype(str) for t in tasks for c in (t.labels, t.folds)]
    for i in range(len(files)):
        strata.setdefault(tuple(c[i] for c in columns), []).append(i)
    keys = sorted(strata, key=lambda k: sha256_bytes("|".join(k)))
    members = {k: sorted(strata[k], key=lambda i: sha256_bytes(files[i])) for k in keys}
    chosen: list[int] = []
    depth = 0
    while len(chosen) < n_clips:
        for k in keys:
            if depth < len(members[k]) and len(chosen) < n_clips:
                chosen.append(members[k][depth])
        depth += 1
    return [files[i] for i in sorted(chosen)]


def load_task_set(name: str, set_sizes: dict[str, int] | None = None) -> Task:
    """A task on its audio set's fixed balanced subset of ``set_sizes[audio set]`` clips (:func:`set_subset`);
    the whole task when its set is not in ``set_sizes``."""
    task = load_task(name)
    size = (set_sizes or {}).get(task.info.audio_set)
    if size is None or size >= len(task.files):
        return task
    return task.restrict(set_subset(task.info.audio_set, size))


def parse_set_sizes(items: Sequence[str]) -> dict[str, int]:
    """``{audio set: clips}`` from ``SET=N`` items; ``standard`` stands for :data:`STANDARD_SET_SIZES`."""
    sizes: dict[str, int] = {}
    for item in items:
        if item == "standard":
            sizes.update(STANDARD_SET_SIZES)
            continue
        audio_set, _, value = item.partition("=")
        if audio_set not in audio_sets() or not value.isdigit() or int(value) < 1:
            raise DataError(f"bad set size {item!r}: expected SET=N with SET one of {', '.join(audio_sets())} "
                            "and N a positive integer, or 'standard'")
        sizes[audio_set] = int(value)
    return sizes


def _fsdd_split(file: str) -> str:
    """FSDD's official split by recording index (0-4 test), with recordings 5-9 held out for validation."""
    index = int(Path(file).stem.rsplit("_", 1)[1])
    return "test" if index < 5 else ("valid" if index < 10 else "train")


def verify_task(task: Task) -> None:
    """Hash every clip file and compare with the listed sha256; raise :class:`ChecksumError` on a mismatch."""
    for rel, digest in zip(task.files, task.file_sha256):
        verify_file(task.root / rel, digest)


def _sorted_labels(values: list[str]) -> list[str]:
    """Sort labels numerically when all are integers, else as text."""
    try:
        return [str(v) for v in sorted(values, key=lambda v: int(v))]
    except ValueError:
        return sorted(str(v) for v in values)


def build_rendered(names: Sequence[str] | None = None, *, soundfont: str | None = None, force: bool = False) -> list[Path]:
    """Render the rendered audio sets used by ``names`` (default: all) into ``cache_root()/tasks``."""
    from brainlike.downstream.render import build_set

    names = resolve_tasks(names or ["all"])
    sets = list(dict.fromkeys(TASKS[n].audio_set for n in names if TASKS[n].source == "rendered"))
    return [build_set(s, cache_root() / "tasks" / s, soundfont=soundfont, force=force) for s in sets]


def list_tasks() -> list[dict]:
    """One row per task: name, set, source, metric, description, and whether its clips are present here."""
    rows = []
    for info in TASKS.values():
        present = (set_root(info) / "labels.csv").is_file()
        rows.append({"task": info.name, "audio_set": info.audio_set, "source": info.source, "metric": info.metric,
                     "available": present, "description": info.description})
    return rows


def task_audio_files() -> list[Path]:
    """Every task clip present here (data sets and rendered sets), e.g. for the pretraining corpus leakage check."""
    files: list[Path] = []
    for audio_set in dict.fromkeys(info.audio_set for info in TASKS.values()):
        info = next(i for i in TASKS.values() if i.audio_set == audio_set)
        sums = set_root(info) / "SHA256SUMS"
        if sums.is_file():
            files += [set_root(info) / rel for rel in read_sums(sums)]
    return files


def rendered_sources() -> list[str]:
    """Score files (paths relative to the music21 corpus folder) that the rendered music-style set was made from;
    a pretraining corpus that renders music21 scores must leave these out."""
    manifest = cache_root() / "tasks" / "music-style" / "manifest.json"
    if not manifest.is_file():
        from brainlike.downstream.render import music_sources, MUSIC_PIECES_PER_CLASS

        # not rendered here: name the first 2 x the cap candidates of each corpus in build order, a superset of the
        # pieces a build takes unless more than half of them fail to parse (none did with music21 10.5)
        return sorted(rel for rels in music_sources().values() for rel in rels[: 2 * MUSIC_PIECES_PER_CLASS])
    return list(json.loads(manifest.read_text())["sources"])
