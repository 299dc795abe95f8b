"""Evaluate models on downstream tasks: embeddings (cached), probes over the fold protocol, tidy records, global score.

Records (one per line of ``downstream.jsonl``) follow docs/contracts.md section 1: ``model, dataset (= task), metric,
protocol (= probe), selection, target, score, sem, layer`` plus ``task, probe, fold``. Per task there is one row per
test fold and one row with ``fold: null`` holding the mean over folds (``sem`` = std / sqrt(K - 1) over folds).
The global score (``task: "global"``, ``metric: "global_z"``) follows the one rule of :func:`global_scores`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from brainlike.downstream.probes import accuracy, check_probe, run_probe
from brainlike.downstream.tasks import Task, load_task, resolve_tasks
from brainlike.errors import BrainlikeError

__all__ = ["EMBED_VERSION", "LazyClips", "embed_task", "encode_labels", "evaluate_embeddings", "task_means",
           "global_scores", "DownstreamRun", "run_downstream", "write_downstream", "read_downstream", "summary_table"]

log = logging.getLogger(__name__)
EMBED_VERSION = 1


class LazyClips:
    """A sequence of a task's clips read on first access (so that a cached embedding never reads audio)."""

    def __init__(self, task: Task) -> None:
        self._task, self._clips = task, None

    def __len__(self) -> int:
        return len(self._task.files)

    def __getitem__(self, i: int) -> np.ndarray:
        if self._clips is None:
            self._clips = self._task.waveforms()
        return self._clips[i]


def _embed_parts(task: Task) -> dict[str, Any]:
    return {"audio_set": task.info.audio_set, "checksum": task.checksum, "embed_version": EMBED_VERSION}


def embed_task(model, task: Task, *, progress: bool = True) -> dict[str, np.ndarray]:
    """Time-averaged embeddings ``{layer: (n_clips, features)}`` of a task's clips, cached by clip-set checksum
    (a stopped run resumes from its last checkpoint)."""
    from brainlike.extract import embed_clips

    return embed_clips(model, LazyClips(task), task.info.sample_rate, cache_key_parts=_embed_parts(task),
                       progress=progress)


def embed_cache_state(model, task: Task) -> str:
    """``cached``, ``partial`` or ``absent``: the state of a task's embeddings in the cache."""
    from brainlike.extract import embedding_cache_state

    return embedding_cache_state(model, _embed_parts(task), task.info.sample_rate)


def cpu_seconds() -> float:
    """User + system CPU time of this process, every thread (the budget measure on a shared machine)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def encode_labels(task: Task) -> np.ndarray:
    """Class codes 0..K-1 in the order of ``task.classes``."""
    lookup = {c: i for i, c in enumerate(task.classes)}
    return np.array([lookup[str(v)] for v in task.labels], dtype=np.int64)


def evaluate_embeddings(embeddings: dict[str, np.ndarray], task: Task, probe: str, *, model: str,
                        seed: int = 0) -> list[dict[str, Any]]:
    """Probe one model's embeddings of one task over the fold protocol; return per-fold and mean records."""
    check_probe(probe)
    layers = list(embeddings)
    arrays = [np.asarray(embeddings[name], dtype=np.float32) for name in layers]
    if any(a.shape[0] != len(task.files) for a in arrays):
        raise BrainlikeError(f"embeddings of {model} have {arrays[0].shape[0]} rows; task {task.name} has "
                             f"{len(task.files)} clips")
    y = encode_labels(task)
    splits = task.splits()
    results = run_probe(probe, arrays, y, splits, n_classes=len(task.classes), seed=seed)
    base = {"model": model, "dataset": task.name, "metric": task.info.metric, "protocol": probe,
            "selection": "validation-fold", "target": "all", "layer": "all", "task": task.name, "probe": probe,
            "n_classes": len(task.classes), "chance": 1.0 / len(task.classes), "n_clips": len(task.files)}
    records = []
    for split, result in zip(splits, results):
        records.append({**base, "fold": split.test_fold, "valid_fold": split.valid_fold,
                        "score": accuracy(result.test_pred, y[split.test]), "sem": None,
                        "valid_score": result.valid_score, "n_test": int(len(split.test)),
                        "params": result.params, **result.extra})
    scores = np.array([r["score"] for r in records])
    sem = float(scores.std() / np.sqrt(len(scores) - 1)) if len(scores) > 1 else None
    records.append({**base, "fold": None, "score": float(scores.mean()), "sem": sem, "n_folds": len(scores)})
    return records


def task_means(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (model, task, probe): the fold-mean row (``fold: null``) where present, else a row with the
    mean over the fold rows. ``task: global`` rows are not tasks and are left out; later rows override earlier."""
    means: dict[tuple, dict[str, Any]] = {}
    folds: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("task") in (None, "global") or r.get("score") is None:
            continue
        key = (r["model"], r["task"], r.get("probe") or "default")
        if r.get("fold") is None:
            means[key] = {**r, "probe": key[2]}
        else:
            folds.setdefault(key, []).append(r)
    for key, rows in folds.items():
        if key not in means:
            means[key] = {**rows[-1], "probe": key[2], "fold": None,
                          "score": float(np.mean([float(r["score"]) for r in rows])), "n_folds": len(rows)}
    return list(means.values())


def global_scores(records: Sequence[dict[str, Any]], probe: str | None = None) -> list[dict[str, Any]]:
    """The global downstream score: brainlike's one rule, used by ``downstream``, ``link``, ``report`` and studies.

    Per probe (or only ``probe``):

    1. each model's fold-mean score per task (:func:`task_means`);
    2. only the tasks that EVERY model has are used (a task missing for some model is dropped with a warning), so
       that all models are scored on the same tasks;
    3. a task on which every model scores the same is dropped with a warning (its z-score is undefined);
    4. each remaining task is z-scored across the models (population standard deviation), and a model's global
       score is its mean z over those tasks.

    Fewer than two models, or no task left, gives no global rows for that probe. The z-scores depend on the set
    of models: compute the score of a subset of models (e.g. trained models only) from that subset's records.

    Returns
    -------
    list of dict
        One record per model: ``task: "global"``, ``metric: "global_z"``, ``score``, ``tasks`` (those used),
        ``n_models``.
    """
    out = []
    means = task_means(records)
    for name in sorted({r["probe"] for r in means}):
        if probe is not None and name != probe:
            continue
        table: dict[str, dict[str, float]] = {}
        for r in means:
            if r["probe"] == name:
                table.setdefault(r["model"], {})[r["task"]] = float(r["score"])
        models = list(table)
        every = sorted({t for row in table.values() for t in row})
        tasks = [t for t in every if all(t in table[m] for m in models)]
        if len(tasks) < len(every):
            log.warning("global score (%s probe): task(s) %s dropped: not every model has them",
                        name, sorted(set(every) - set(tasks)))
        if len(models) < 2 or not tasks:
            continue
        matrix = np.array([[table[m][t] for t in tasks] for m in models])  # (models, tasks)
        std = matrix.std(axis=0)
        constant = std == 0
        if constant.any():
            log.warning("global score (%s probe): task(s) %s dropped: every model scores the same", name,
                        [t for t, c in zip(tasks, constant) if c])
            tasks = [t for t, c in zip(tasks, constant) if not c]
            matrix, std = matrix[:, ~constant], std[~constant]
        if not tasks:
            continue
        z = (matrix - matrix.mean(axis=0)) / std
        for m, row in zip(models, z):
            out.append({"model": m, "dataset": "global", "metric": "global_z", "protocol": name,
                        "selection": "validation-fold", "target": "all", "layer": "all", "task": "global",
                        "probe": name, "fold": None, "score": float(row.mean()), "sem": None, "tasks": tasks,
                        "n_models": len(models)})
    return out


@dataclass
class DownstreamRun:
    """Records of a downstream run plus timings and provenance."""

    records: list[dict[str, Any]]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def load_tasks(names: Sequence[str], *, max_clips: int | None = None,
               set_sizes: dict[str, int] | None = None) -> list[Task]:
    """Tasks on their clip sets: ``set_sizes`` (``{audio set: clips}``, :func:`~brainlike.downstream.tasks.set_subset`,
    one clip set per audio set shared by its tasks) or the older per-task ``max_clips`` subset; not both."""
    from brainlike.downstream.tasks import load_task_set

    if max_clips is not None and set_sizes:
        raise BrainlikeError("give max_clips or set_sizes, not both")
    if set_sizes:
        return [load_task_set(n, set_sizes) for n in resolve_tasks(list(names))]
    return [load_task(n).subset(max_clips) for n in resolve_tasks(list(names))]


def embed_all(model, spec: str, tasks: Sequence[Task], *, progress: bool = True,
              cached_only: bool = False) -> tuple[dict, dict]:
    """Embeddings of every distinct clip set of ``tasks`` and per-set timings: ``{checksum: embeddings}`` and
    ``{audio set: {n_clips, cache, cpu_s, wall_s, clips_per_cpu_s}}`` (``cache``: what the cache held before:
    ``absent``, ``partial`` (resumed; the times cover the rest only) or ``cached``). With ``cached_only`` a clip
    set whose embeddings are not complete in the cache is an error (checked for every set before any is used)."""
    states = {}
    for task in tasks:
        states.setdefault(task.checksum, (task.info.audio_set, embed_cache_state(model, task)))
    missing = [f"{audio_set} ({state})" for audio_set, state in states.values() if state != "cached"]
    if cached_only and missing:
        raise BrainlikeError(f"{spec}: embeddings not in the cache for {', '.join(missing)}; run without "
                             "cached_only (--cached-only) to compute them")
    embeddings, sets = {}, {}
    for task in tasks:
        if task.checksum in embeddings:
            continue
        state = states[task.checksum][1]
        c0, w0 = cpu_seconds(), time.perf_counter()
        embeddings[task.checksum] = embed_task(model, task, progress=progress)
        cpu, wall = cpu_seconds() - c0, time.perf_counter() - w0
        sets[task.info.audio_set] = {"n_clips": len(task.files), "cache": state, "cpu_s": round(cpu, 3),
                                     "wall_s": round(wall, 3),
                                     "clips_per_cpu_s": round(len(task.files) / cpu, 4) if cpu > 0 else None}
        log.info("%s on %s: %s, %.1f CPU s", spec, task.info.audio_set, state, cpu)
    return embeddings, sets


def run_downstream(models: Sequence[str], tasks: Sequence[str] = ("all",), probe: str = "linear", *,
                   seed: int = 0, progress: bool = True, max_clips: int | None = None,
                   set_sizes: dict[str, int] | None = None, cached_only: bool = False) -> DownstreamRun:
    """Embed (cached) and probe every model on every task; add global scores.

    ``set_sizes`` (``{audio set: clips}``) evaluates the tasks of each audio set on the set's fixed balanced
    subset of that many clips (:func:`~brainlike.downstream.tasks.set_subset`); ``max_clips`` (older) on each
    task's fixed balanced subset of at most that many clips (:meth:`Task.subset`). Timings per model: ``embed_s``
    (model loading + embedding, wall, near zero when cached), ``embed_cpu_s`` (CPU, every thread), ``probe_s``,
    ``probe_cpu_s`` and ``sets`` (per audio set, see :func:`embed_all`). ``cached_only`` refuses to embed: a model
    whose embeddings are not all cached raises :class:`~brainlike.errors.BrainlikeError` (timing the evaluation
    proper on cached embeddings).
    """
    from brainlike.models.registry import load_model, parse_spec

    check_probe(probe)
    for spec in models:
        parse_spec(spec)  # fail fast on unknown names
    loaded = load_tasks(tasks, max_clips=max_clips, set_sizes=set_sizes)
    records: list[dict[str, Any]] = []
    timings: dict[str, dict[str, Any]] = {}
    models_info = {}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for spec in models:
        t0, c0 = time.perf_counter(), cpu_seconds()
        model = load_model(spec)
        models_info[spec] = model.describe()
        embeddings, sets = embed_all(model, spec, loaded, progress=progress, cached_only=cached_only)
        t1, c1 = time.perf_counter(), cpu_seconds()
        for task in loaded:
            records += evaluate_embeddings(embeddings[task.checksum], task, probe, model=spec, seed=seed)
        timings[spec] = {"embed_s": round(t1 - t0, 3), "probe_s": round(time.perf_counter() - t1, 3),
                         "embed_cpu_s": round(c1 - c0, 3), "probe_cpu_s": round(cpu_seconds() - c1, 3),
                         "sets": sets}
        log.info("%s: embed %.1f s, probe %.1f s", spec, timings[spec]["embed_s"], timings[spec]["probe_s"])
    records += global_scores(records)
    provenance = {"kind": "downstream", "probe": probe, "seed": seed, "max_clips": max_clips,
                  "set_sizes": dict(set_sizes) if set_sizes else None, "tasks": [t.describe() for t in loaded],
                  "models": models_info, "timings": timings, "start_time": started,
                  "end_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return DownstreamRun(records, timings, provenance)


def write_downstream(run: DownstreamRun, out_dir: str | Path, argv: Sequence[str] | None = None) -> Path:
    """Write ``downstream.jsonl``, ``downstream.csv`` and ``downstream_provenance.json`` into ``out_dir`` (through
    :meth:`brainlike.results.Results.save`; brain-score files of the same folder are left alone). Returns the jsonl
    path."""
    from brainlike.results import Results

    provenance = dict(run.provenance)
    if argv is not None:
        provenance["command"] = list(argv)
    return Results(downstream=run.records, downstream_provenance=provenance).save(out_dir) / "downstream.jsonl"


def read_downstream(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``downstream.jsonl`` file, or of the one inside a results folder."""
    from brainlike.results import Results

    return Results.load(path, require="downstream").downstream


def summary_table(records: Sequence[dict[str, Any]]) -> "Any":
    """A models x tasks table of fold-mean scores (plus ``global`` when present), as a pandas DataFrame."""
    import pandas as pd

    rows = [r for r in records if r.get("fold") is None]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame([{"model": r["model"], "probe": r["probe"], "task": r["task"], "score": r["score"]}
                          for r in rows])
    table = frame.pivot_table(index=["model", "probe"], columns="task", values="score", sort=False)
    order = [t for t in dict.fromkeys(frame["task"]) if t != "global"] + (["global"] if "global" in table else [])
    return table[order]
