"""Studies: one TOML file declares a whole evaluation (models x datasets x metrics x protocols x tasks).

A study is split into independent *units*: one brain-scoring unit per (model, dataset, protocol), run through
:func:`brainlike.api.score`, and one downstream unit per (model, task, probe), run through the downstream evaluation.
Each finished unit is written at once, atomically, to ``OUT/units/`` under a key derived from what the unit computes,
so a study is resumable: a rerun (after an interruption, or after adding a model to the file) computes only the
units whose results are missing. Units run on an executor (:mod:`brainlike.executors`): local processes by default,
or Ray tasks on a cluster, all sharing the activation cache (``BRAINLIKE_CACHE``).

Study file
----------
.. code-block:: toml

    [study]
    name = "baselines"
    out = "results/baselines"            # relative to the current directory; `--out` overrides it
    models = ["spectrotemporal", "melspec", "random-features"]
    datasets = ["nh2015-components"]
    metrics = ["regression", "rsa"]      # or ["all"]
    protocols = ["pepino2025"]
    tasks = []                           # downstream tasks, e.g. ["esc10", "fsdd"]
    probe = "linear"

    [executor]
    kind = "local"                       # or "ray"
    workers = 1
    address = ""                         # Ray cluster address; empty starts a local Ray instance

    [resources]                          # per-unit requests for Ray
    num_cpus = 1
    num_gpus = 0
    device = "cpu"                       # ridge engine: cpu, cuda or auto (not part of the unit key)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import sys
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from brainlike import __version__
from brainlike import progress as bars
from brainlike.errors import BrainlikeError
from brainlike.integrity import atomic_write
from brainlike.results import json_default

log = logging.getLogger(__name__)

UNIT_FORMAT = 1
"""Version of the unit-result file format and of the unit key; bumping it recomputes every unit."""

METRICS = ("regression", "rsa")
EXECUTORS = ("local", "ray")
ENV_VARS = ("BRAINLIKE_DATA", "BRAINLIKE_CACHE")
"""Environment variables forwarded to every worker (local processes inherit them; Ray tasks get them explicitly)."""

_STUDY_KEYS = {"name", "out", "models", "datasets", "metrics", "protocols", "tasks", "probe"}
_EXECUTOR_KEYS = {"kind", "workers", "address"}
_RESOURCE_KEYS = {"num_cpus", "num_gpus", "device"}
DEVICES = ("cpu", "cuda", "auto")


class StudyError(BrainlikeError):
    """A study file that cannot be read or does not describe a valid study."""


@dataclass(frozen=True)
class Unit:
    """One independent piece of a study, run on one worker.

    Attributes
    ----------
    kind : str
        ``"score"`` (brain alignment through :func:`brainlike.api.score`) or ``"downstream"`` (task evaluation).
    model : str
        Model spec string, exactly as written in the study.
    target : str
        Dataset name (score units) or task name (downstream units).
    params : tuple of (str, str)
        Sorted parameters: ``metric`` and ``protocol`` for score units, ``probe`` for downstream units.
    """

    kind: str
    model: str
    target: str
    params: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description of the unit (what its key hashes)."""
        return {"kind": self.kind, "model": self.model, "target": self.target, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Unit":
        return cls(data["kind"], data["model"], data["target"], tuple(sorted(dict(data["params"]).items())))

    @property
    def key(self) -> str:
        """Stable 16-hex-digit key over the unit's description, :data:`UNIT_FORMAT` and the brainlike version.

        Code changes within one version are not seen: recompute with ``force=True`` (``--force``) after them.
        """
        payload = json.dumps({"format": UNIT_FORMAT, "brainlike": __version__, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``melspec x nh2015-components (pepino2025, all)``."""
        return f"{self.model} x {self.target} ({', '.join(v for _, v in self.params)})"

    @property
    def filename(self) -> str:
        """File name of the unit's result inside ``OUT/units/``."""
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{self.model}__{self.target}")
        return f"{self.kind}-{slug[:80]}-{self.key}.json"


@dataclass
class Study:
    """A parsed study file (see the module docstring for the format)."""

    name: str
    models: list[str]
    datasets: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=lambda: list(METRICS))
    protocols: list[str] = field(default_factory=lambda: ["pepino2025"])
    tasks: list[str] = field(default_factory=list)
    probe: str = "linear"
    out: Path = Path("results/study")
    executor: str = "local"
    workers: int = 1
    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    device: str = "cpu"
    source: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`StudyError` naming the first problem found."""
        if not self.models:
            raise StudyError(f"study {self.name!r}: `models` is empty")
        if not self.datasets and not self.tasks:
            raise StudyError(f"study {self.name!r}: give at least one of `datasets` or `tasks`")
        for name, values in (("models", self.models), ("datasets", self.datasets), ("tasks", self.tasks),
                             ("metrics", self.metrics), ("protocols", self.protocols)):
            if len(set(values)) != len(values):
                raise StudyError(f"study {self.name!r}: `{name}` lists a name twice: {values}")
        bad = [m for m in self.metrics if m not in (*METRICS, "all")]
        if bad or not self.metrics:
            raise StudyError(f"study {self.name!r}: unknown metric(s) {bad}; choose from {[*METRICS, 'all']}")
        from brainlike.align.protocols import PROTOCOLS, list_protocols

        list_protocols()  # load the registry
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad or (self.datasets and not self.protocols):
            raise StudyError(f"study {self.name!r}: unknown protocol(s) {bad}; choose from {sorted(PROTOCOLS)}")
        if self.executor not in EXECUTORS:
            raise StudyError(f"study {self.name!r}: unknown executor {self.executor!r}; choose from {list(EXECUTORS)}")
        if self.workers < 1:
            raise StudyError(f"study {self.name!r}: workers must be >= 1, got {self.workers}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise StudyError(f"study {self.name!r}: resource requests must be >= 0")
        if self.device not in DEVICES:
            raise StudyError(f"study {self.name!r}: unknown device {self.device!r}; choose from {list(DEVICES)}")

    @property
    def metric(self) -> str:
        """The ``metric`` argument of :func:`brainlike.api.score`: ``regression``, ``rsa`` or ``all``."""
        chosen = set(self.metrics)
        if "all" in chosen or chosen >= set(METRICS):
            return "all"
        return self.metrics[0]

    def units(self) -> list[Unit]:
        """Every unit of the study, in a fixed order (models, then datasets/tasks, then protocols)."""
        units = []
        for model in self.models:
            for dataset in self.datasets:
                for protocol in self.protocols:
                    units.append(Unit("score", model, dataset, (("metric", self.metric), ("protocol", protocol))))
            for task in self.tasks:
                units.append(Unit("downstream", model, task, (("probe", self.probe),)))
        return units


def load_study(path: str | os.PathLike) -> Study:
    """Read a study TOML file.

    Parameters
    ----------
    path : path-like
        The study file.

    Returns
    -------
    Study

    Raises
    ------
    StudyError
        Missing file, TOML syntax error, unknown key or invalid value.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StudyError(f"cannot read study file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"study file {str(path)!r} is not valid TOML: {exc}") from None
    return study_from_dict(data, default_name=path.stem, source=text)


def study_from_dict(data: Mapping[str, Any], default_name: str = "study", source: str = "") -> Study:
    """Build a :class:`Study` from the parsed TOML tables (``study``, ``executor``, ``resources``)."""
    unknown = set(data) - {"study", "executor", "resources"}
    if unknown:
        raise StudyError(f"unknown table(s) {sorted(unknown)} in study file; expected [study], [executor], [resources]")
    body = _table(data, "study", _STUDY_KEYS)
    executor = _table(data, "executor", _EXECUTOR_KEYS)
    resources = _table(data, "resources", _RESOURCE_KEYS)
    name = str(body.get("name", default_name))
    try:
        return Study(
            name=name,
            models=_names(body, "models"),
            datasets=[str(Path(d).expanduser().resolve()) if _is_path(d) else d for d in _names(body, "datasets")],
            metrics=_names(body, "metrics", list(METRICS)),
            protocols=_names(body, "protocols", ["pepino2025"]),
            tasks=_names(body, "tasks"),
            probe=str(body.get("probe", "linear")),
            out=Path(str(body.get("out", f"results/{name}"))),
            executor=str(executor.get("kind", "local")),
            workers=int(executor.get("workers", 1)),
            address=str(executor.get("address", "")) or None,
            num_cpus=float(resources.get("num_cpus", 1)),
            num_gpus=float(resources.get("num_gpus", 0)),
            device=str(resources.get("device", "cpu")),
            source=source,
        )
    except (TypeError, ValueError) as exc:
        raise StudyError(f"study {name!r}: bad value: {exc}") from None


def _table(data: Mapping[str, Any], name: str, allowed: set[str]) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise StudyError(f"[{name}] in the study file must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise StudyError(f"unknown key(s) {sorted(unknown)} in [{name}]; allowed: {sorted(allowed)}")
    return table


def _names(body: Mapping[str, Any], key: str, default: list[str] | None = None) -> list[str]:
    value = body.get(key, default if default is not None else [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise StudyError(f"`{key}` in [study] must be a list of non-empty strings, got {value!r}")
    return [v.strip() for v in value]


# --------------------------------------------------------------------------------------------------------------------
# Running one unit (this is what a worker process or a Ray task executes)


def run_unit(unit: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Compute one unit and return its result; executed on a worker (this process, a local process or a Ray task).

    Parameters
    ----------
    unit : dict
        :meth:`Unit.to_dict` of the unit (plain data, so that it crosses process and machine boundaries), plus
        ``options`` that do not change results beyond rounding (``device``: where the ridge engine runs).
    env : dict, optional
        ``BRAINLIKE_*`` variables to set in the worker before running (Ray workers on other machines).

    Returns
    -------
    dict
        ``format, unit, key, records, provenance, detail`` (netCDF bytes or None), ``seconds, host, pid``.
    """
    for name, value in (env or {}).items():
        os.environ[name] = value
    parsed = Unit.from_dict(unit)
    start = time.perf_counter()
    if parsed.kind == "score":
        records, provenance, detail = _run_score_unit(parsed, _device(dict(unit.get("options") or {})))
    elif parsed.kind == "downstream":
        records, provenance, detail = _run_downstream_unit(parsed)
    else:
        raise StudyError(f"unknown unit kind {parsed.kind!r}")
    return {"format": UNIT_FORMAT, "unit": parsed.to_dict(), "key": parsed.key, "records": _plain(records),
            "provenance": _plain(provenance), "detail": detail, "seconds": round(time.perf_counter() - start, 3),
            "host": platform.node(), "pid": os.getpid()}


def _device(options: Mapping[str, Any]) -> str:
    device = str(options.get("device", "cpu"))
    if device == "auto":
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    return device


def _run_score_unit(unit: Unit, device: str = "cpu") -> tuple[list[dict[str, Any]], dict[str, Any], bytes | None]:
    """Brain scoring through :func:`brainlike.api.score`, keeping its provenance and per-target detail."""
    from brainlike import progress
    from brainlike.api import score

    params = dict(unit.params)
    results = score([unit.model], dataset=unit.target, metric=params["metric"], protocol=params["protocol"],
                    device=device, progress=progress.enabled())
    detail = bytes(results.detail.to_netcdf(engine="h5netcdf")) if results.detail is not None else None
    provenance = json.loads(json.dumps(results.provenance, default=json_default))
    return list(results), provenance, detail


def _run_downstream_unit(unit: Unit) -> tuple[list[dict[str, Any]], dict[str, Any], None]:
    """Task evaluation through :func:`brainlike.downstream.evaluate.run_downstream` (one model, one task)."""
    from brainlike import progress
    from brainlike.downstream.evaluate import run_downstream

    run = run_downstream([unit.model], [unit.target], dict(unit.params)["probe"], progress=progress.enabled())
    records = [r for r in run.records if r.get("task") != "global"]  # global scores need every model: study level
    return records, run.provenance, None


def _plain(value: Any) -> Any:
    """Records as plain JSON data: numpy scalars become Python numbers, NaN and infinities become None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------------------------------
# The unit store: one JSON file per finished unit, written atomically


class UnitStore:
    """Finished units of a study under ``OUT/units/`` (one JSON file each, written to a temporary name and renamed)."""

    def __init__(self, out: Path) -> None:
        self.folder = Path(out) / "units"

    def path(self, unit: Unit) -> Path:
        return self.folder / unit.filename

    def load(self, unit: Unit) -> dict[str, Any] | None:
        """The stored result of ``unit``, or None if missing, unreadable or written for another unit."""
        path = self.path(unit)
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if result.get("key") != unit.key or result.get("format") != UNIT_FORMAT:
            return None
        return result

    def detail_path(self, unit: Unit) -> Path:
        return self.path(unit).with_suffix(".nc")

    def save(self, result: Mapping[str, Any]) -> Path:
        """Write the unit's ``detail.nc`` bytes (if any), then its JSON: the JSON's presence marks the unit done."""
        unit = Unit.from_dict(result["unit"])
        self.folder.mkdir(parents=True, exist_ok=True)
        body = {k: v for k, v in result.items() if k != "detail"}
        if result.get("detail") is not None:
            _atomic_write(self.detail_path(unit), result["detail"])
        body["has_detail"] = result.get("detail") is not None
        path = self.path(unit)
        _atomic_write(path, json.dumps(body, indent=1, allow_nan=False).encode("utf-8"))
        return path

    def load_detail(self, unit: Unit) -> Any:
        """The unit's detail as an ``xarray.Dataset``, or None."""
        path = self.detail_path(unit)
        if not path.exists():
            return None
        import xarray as xr

        with xr.open_dataset(path, engine="h5netcdf") as dataset:
            return dataset.load()


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write(path, data)


# --------------------------------------------------------------------------------------------------------------------
# Running a whole study


@dataclass
class StudyRun:
    """What :func:`run_study` did.

    Attributes
    ----------
    out : Path
        The results folder.
    records : list of dict
        Brain-scoring records of every unit, in the study's unit order.
    downstream : list of dict
        Downstream records of every unit, in the study's unit order.
    computed : list of Unit
        Units computed by this run (the others were already stored).
    reused : list of Unit
        Units whose stored results were reused.
    seconds : float
        Wall time of the run.
    """

    out: Path
    records: list[dict[str, Any]]
    downstream: list[dict[str, Any]]
    computed: list[Unit]
    reused: list[Unit]
    seconds: float


def check_names(study: Study) -> None:
    """Fail before running anything if a model, dataset or task name is unknown (with close matches)."""
    import difflib

    from brainlike.data.neural import DATASETS, list_datasets
    from brainlike.models.registry import parse_spec

    for model in study.models:
        parse_spec(model)
    list_datasets()  # registers optional datasets
    for dataset in study.datasets:
        if dataset not in DATASETS and not _is_path(dataset):
            close = difflib.get_close_matches(dataset, list(DATASETS), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise StudyError(f"study {study.name!r}: unknown dataset {dataset!r}{hint} (see `brainlike datasets`)")
        if dataset in DATASETS and (reason := DATASETS[dataset].available()):
            raise StudyError(f"study {study.name!r}: dataset {dataset!r} is not available here: {reason}")
    if study.tasks:
        from brainlike.downstream.tasks import resolve_tasks

        study.tasks = resolve_tasks(study.tasks)  # expands "all"


def _is_path(name: str) -> bool:
    return name.endswith((".nc", ".npz")) or "/" in name or os.sep in name


def pending_units(study: Study, out: Path | None = None) -> tuple[list[Unit], list[Unit]]:
    """Split the study's units into (pending, done) according to the unit store."""
    check_names(study)
    store = UnitStore(Path(out or study.out))
    pending, done = [], []
    for unit in study.units():
        (done if store.load(unit) is not None else pending).append(unit)
    return pending, done


def run_study(study: Study, *, out: str | os.PathLike | None = None, executor: str | None = None,
              workers: int | None = None, address: str | None = None, force: bool = False,
              progress: bool = True, argv: list[str] | None = None) -> StudyRun:
    """Run (or resume) a study and write its results folder.

    Parameters
    ----------
    study : Study
        The parsed study (see :func:`load_study`).
    out : path-like, optional
        Results folder; default ``study.out``. Relative paths are resolved against the current directory.
    executor : {"local", "ray"}, optional
        Overrides the study's executor.
    workers : int, optional
        Overrides the number of parallel workers (local processes, or the CPUs of a local Ray instance).
    address : str, optional
        Ray cluster address (``"auto"``, ``"HOST:PORT"``); None starts a local Ray instance.
    force : bool
        Recompute every unit even if stored.
    progress : bool
        Show a progress bar over units.
    argv : list of str, optional
        The command line, recorded in the provenance.

    Returns
    -------
    StudyRun
    """
    check_names(study)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    out_dir = Path(out or study.out).expanduser().resolve()
    store = UnitStore(out_dir)
    units = study.units()
    stored = {} if force else {u: r for u in units if (r := store.load(u)) is not None}
    todo = [u for u in units if u not in stored]
    kind = executor or study.executor
    if address and kind != "ray":
        raise StudyError("--address only applies to --executor ray")
    log.info("study %s: %d units, %d stored, %d to compute on %s", study.name, len(units), len(stored), len(todo), kind)
    results = dict(stored)
    was_enabled = bars.enabled()
    bars.set_enabled(was_enabled and progress)  # progress=False also silences the units' own bars
    try:
        where = _compute(study, todo, store, results, kind, workers, address, progress)
    finally:
        bars.set_enabled(was_enabled)
    records = [r for u in units if u.kind == "score" for r in results[u]["records"]]
    downstream = [r for u in units if u.kind == "downstream" for r in results[u]["records"]]
    provenance = study_provenance(study, units, results, where, started, argv)
    write_study_results(out_dir, records, downstream, provenance, _details(store, units))
    return StudyRun(out_dir, records, downstream, todo, [u for u in units if u in stored], time.perf_counter() - t0)


def _compute(study: Study, todo: list[Unit], store: UnitStore, results: dict[Unit, Any], kind: str,
             workers: int | None, address: str | None, progress: bool) -> dict[str, Any]:
    """Run the pending units on the executor, storing each result as soon as it arrives; describe the executor."""
    from brainlike.executors import make_executor

    if not todo:
        return {"kind": kind, "units_run": 0}
    runner = make_executor(kind, workers=workers or study.workers,
                           address=(address or study.address) if kind == "ray" else None,
                           num_cpus=study.num_cpus, num_gpus=study.num_gpus)
    env = {k: os.environ[k] for k in ENV_VARS if k in os.environ}
    with runner:
        where = {**runner.describe(), "units_run": len(todo)}
        items = [{**u.to_dict(), "options": {"device": study.device}} for u in todo]
        for result in runner.map(run_unit, items, env=env, progress=progress,
                                 description=f"study {study.name}"):
            unit = Unit.from_dict(result["unit"])
            store.save(result)
            results[unit] = result
            log.info("finished %s in %.1f s", unit.label, result["seconds"])
    return where


def study_provenance(study: Study, units: list[Unit], results: Mapping[Unit, Mapping[str, Any]],
                     executor: Mapping[str, Any], started: datetime, argv: list[str] | None) -> dict[str, Any]:
    """Provenance of a study run.

    The study file and its sha256, the executor, the ``BRAINLIKE_*`` variables, the seeds, protocol parameters,
    data checksums and models gathered from the units' own provenance, and one entry per unit (timing, host,
    the unit's full provenance). Versions and the command line are added by :func:`brainlike.results.write_results`.
    """
    merged: dict[str, dict[str, Any]] = {"data_checksums": {}, "models": {}, "protocol_parameters": {}, "seeds": {}}
    for unit in units:
        unit_prov = results[unit].get("provenance") or {}
        merged["data_checksums"].update(unit_prov.get("data_checksums") or {})
        merged["models"].update(unit_prov.get("models") or {})
        if "protocol_parameters" in unit_prov:
            merged["protocol_parameters"][unit_prov.get("protocol", dict(unit.params).get("protocol"))] = \
                unit_prov["protocol_parameters"]
        if "seed" in unit_prov:
            merged["seeds"][f"{unit.kind}:{unit.target}"] = unit_prov["seed"]
    return {
        "kind": "study",
        "command": argv if argv is not None else sys.argv,
        "study": {"name": study.name, "sha256": hashlib.sha256(study.source.encode()).hexdigest(),
                  "source": study.source},
        "executor": dict(executor),
        "environment": {k: os.environ.get(k) for k in ENV_VARS},
        **merged,
        "units": [{**u.to_dict(), "key": u.key, "seconds": results[u]["seconds"], "host": results[u]["host"],
                   "provenance": results[u].get("provenance")} for u in units],
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _details(store: UnitStore, units: list[Unit]) -> dict[str, Any]:
    """Per-target detail of the score units, concatenated over models: ``{"dataset protocol": Dataset}``."""
    import xarray as xr

    groups: dict[str, list[Any]] = {}
    for unit in units:
        if unit.kind == "score" and (detail := store.load_detail(unit)) is not None:
            name = Path(unit.target).stem if _is_path(unit.target) else unit.target
            groups.setdefault(f"{name} {dict(unit.params)['protocol']}", []).append(detail)
    merged = {}
    for name, details in groups.items():
        # fixed-width strings (layer names) would be cut to the first dataset's width by concat: use objects
        details = [d.assign({k: v.astype(object) for k, v in d.data_vars.items() if v.dtype.kind == "U"})
                   for d in details]
        try:
            merged[name] = xr.concat(details, dim="model", join="outer") if len(details) > 1 else details[0]
        except (ValueError, KeyError) as exc:  # detail is optional: never fail a study on it
            log.warning("per-target detail of %s not merged: %s", name, exc)
    return merged


def write_study_results(out_dir: Path, records: list[dict[str, Any]], downstream: list[dict[str, Any]],
                        provenance: dict[str, Any], details: Mapping[str, Any] | None = None) -> None:
    """Write the results folder (docs/contracts.md section 2) through :meth:`brainlike.results.Results.save`.

    The detail goes to ``detail.nc`` when the study has one dataset and protocol, else to one
    ``detail-<dataset>-<protocol>.nc`` per pair. Downstream records get the global score rows
    (:func:`brainlike.downstream.evaluate.global_scores` over the study's models).
    """
    from brainlike.results import Results

    details = dict(details or {})
    if len(details) == 1:
        details = {"": next(iter(details.values()))}
    if downstream:
        from brainlike.downstream.evaluate import global_scores

        downstream = downstream + global_scores(downstream)
    Results(records, details=details, provenance=provenance, downstream=downstream,
            downstream_provenance=provenance).save(out_dir)
