"""One results object: :class:`Results` (records, per-target detail, provenance) and its folder format.

A results folder (docs/contracts.md section 2) holds ``records.jsonl`` / ``.csv`` / ``.parquet`` (brain-score
records), ``detail.nc`` (or ``detail-<name>.nc`` per dataset and protocol: labelled per-target arrays),
``provenance.json``, and for downstream runs ``downstream.jsonl`` / ``.csv`` and ``downstream_provenance.json``.
:meth:`Results.save` is the only writer of that format and :meth:`Results.load` the only reader; ``score``,
``downstream``, ``link``, ``compare``, ``report`` and ``study`` all go through them.

>>> import brainlike
>>> results = brainlike.score("melspec")              # doctest: +SKIP
>>> results[0]["score"], results.to_frame().shape      # doctest: +SKIP
>>> results.save("results/melspec")                    # doctest: +SKIP
>>> brainlike.Results.load("results/melspec") == results   # doctest: +SKIP
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from brainlike import __version__
from brainlike.errors import DataError
from brainlike.integrity import atomic_write_bytes

__all__ = ["REQUIRED_KEYS", "DOWNSTREAM_REQUIRED_KEYS", "Results", "ResultsError", "read_records",
           "records_frame", "write_results"]

REQUIRED_KEYS = ("model", "dataset", "metric", "protocol", "selection", "target", "score", "sem", "layer")
"""Keys every brain-score record carries (docs/contracts.md section 1)."""

DOWNSTREAM_REQUIRED_KEYS = ("model", "task", "score")
"""Keys every downstream record carries."""

COMPARISON_REQUIRED_KEYS = ("model_a", "model_b", "metric", "target", "difference", "p", "q")
"""Keys every model-comparison record carries (contracts.md section 7)."""

RECORDS, DOWNSTREAM, COMPARISONS = "records", "downstream", "comparisons"
DETAIL_DEFAULT = ""
"""Key of ``detail.nc`` in :attr:`Results.details` (other keys name ``detail-<key>.nc`` files)."""


class ResultsError(DataError):
    """A results folder or records file that cannot be read."""


class Results(list):
    """Scoring results: a list of record dicts plus per-target detail and provenance.

    It behaves as the list of records ``brainlike.score`` always returned (indexing, iteration, ``len``, JSON
    serialisation, equality with a list), and adds:

    Attributes
    ----------
    downstream : list of dict
        Downstream task records (``model, task, probe, fold, score``...), empty for a brain-scoring run.
    details : dict of str to xarray.Dataset
        Labelled per-target arrays; key ``""`` is ``detail.nc``, other keys ``detail-<key>.nc``. For regression
        these include ``score``, ``r``, chosen ``layer`` and ``alpha`` per fold, and the pooled out-of-fold
        ``predictions`` (stimulus x target, per model).
    provenance : dict
        Versions, command, seeds, protocol parameters, data and weight checksums.
    downstream_provenance : dict
        Provenance of the downstream records (empty when there are none).
    comparisons : list of dict
        Model-comparison records (``brainlike compare``: ``model_a, model_b, metric, target, difference, ci_low,
        ci_high, p, q``), kept apart from the score records (``comparisons.jsonl``) so that no reader of scores
        counts them.
    sources : list of Path
        Folders or files the results were read from (empty for results computed in this process).
    """

    def __init__(self, records: Iterable[Mapping[str, Any]] = (), *, detail: Any = None,
                 details: Mapping[str, Any] | None = None, provenance: Mapping[str, Any] | None = None,
                 downstream: Iterable[Mapping[str, Any]] = (),
                 downstream_provenance: Mapping[str, Any] | None = None,
                 sources: Sequence[str | Path] = (), comparisons: Iterable[Mapping[str, Any]] = ()) -> None:
        super().__init__(dict(r) for r in records)
        self.details: dict[str, Any] = dict(details or {})
        if detail is not None:
            self.details[DETAIL_DEFAULT] = detail
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.downstream: list[dict[str, Any]] = [dict(r) for r in downstream]
        self.downstream_provenance: dict[str, Any] = dict(downstream_provenance or {})
        self.comparisons: list[dict[str, Any]] = [dict(r) for r in comparisons]
        self.sources: list[Path] = [Path(s) for s in sources]
        self.provenance_files: list[tuple[str, dict[str, Any]]] = []
        """Every provenance file read by :meth:`load` with its path (the report lists them)."""

    # ---------------------------------------------------------------------------------------------------------
    # views

    @property
    def records(self) -> list[dict[str, Any]]:
        """The brain-score records as a plain list."""
        return list(self)

    @property
    def detail(self) -> Any:
        """The per-target detail (``detail.nc``); with several detail sets and none default, the first."""
        if DETAIL_DEFAULT in self.details:
            return self.details[DETAIL_DEFAULT]
        return next(iter(self.details.values()), None)

    @detail.setter
    def detail(self, value: Any) -> None:
        if value is None:
            self.details.pop(DETAIL_DEFAULT, None)
        else:
            self.details[DETAIL_DEFAULT] = value

    @property
    def models(self) -> list[str]:
        """Model specs in order of first appearance (brain records, then downstream records)."""
        models = [r["model"] for r in self] + [r["model"] for r in self.downstream]
        return list(dict.fromkeys(m for m in models if m is not None))

    def to_frame(self, kind: str = RECORDS) -> pd.DataFrame:
        """The records as a tidy pandas table (required columns first; ``kind="downstream"`` for task records)."""
        if kind == RECORDS:
            return records_frame(self)
        if kind == DOWNSTREAM:
            return _frame(self.downstream, DOWNSTREAM_REQUIRED_KEYS)
        if kind == COMPARISONS:
            return _frame(self.comparisons, COMPARISON_REQUIRED_KEYS)
        raise ValueError(f"kind must be {RECORDS!r}, {DOWNSTREAM!r} or {COMPARISONS!r}, not {kind!r}")

    def select(self, **criteria: Any) -> "Results":
        """Records whose keys equal every ``key=value`` given (a missing key counts as None); detail is kept."""
        rows = [r for r in self if all(r.get(k) == v for k, v in criteria.items())]
        return self._like(rows)

    def extend_results(self, other: "Results") -> "Results":
        """Append another result's records, downstream records and detail (in place; returns self)."""
        self.extend(other)
        self.downstream.extend(other.downstream)
        self.comparisons.extend(other.comparisons)
        for key, value in other.details.items():
            self.details[key] = _concat_models([self.details[key], value]) if key in self.details else value
        return self

    def _like(self, rows: Iterable[Mapping[str, Any]]) -> "Results":
        out = Results(rows, details=self.details, provenance=self.provenance, downstream=self.downstream,
                      downstream_provenance=self.downstream_provenance, sources=self.sources,
                      comparisons=self.comparisons)
        out.provenance_files = list(self.provenance_files)
        return out

    def __repr__(self) -> str:
        return (f"Results({len(self)} records, {len(self.downstream)} downstream records, "
                f"models={self.models[:5]}{'...' if len(self.models) > 5 else ''})")

    # ---------------------------------------------------------------------------------------------------------
    # the folder format

    def save(self, out_dir: str | Path) -> Path:
        """Write the results folder (each file atomically) and return its path.

        Brain records go to ``records.*`` with ``provenance.json`` (only when there are brain records or detail);
        downstream records to ``downstream.*`` with ``downstream_provenance.json``; comparison records to
        ``comparisons.*``. Files of the other kind already in the folder are left alone, so a score run and a
        downstream run can share one folder.
        """
        out = Path(out_dir).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        if len(self) or self.details or not (self.downstream or self.comparisons):
            _write_records(out, RECORDS, self)
            for key, dataset in self.details.items():
                name = "detail.nc" if key == DETAIL_DEFAULT else f"detail-{_slug(key)}.nc"
                data = bytes(dataset.to_netcdf(engine="h5netcdf"))
                atomic_write_bytes(out / name, lambda h, d=data: h.write(d))
            _write_json(out / "provenance.json", _stamp(self.provenance))
        if self.downstream:
            _write_records(out, DOWNSTREAM, self.downstream)
            _write_json(out / "downstream_provenance.json", _stamp(self.downstream_provenance or self.provenance))
        if self.comparisons:
            _write_records(out, COMPARISONS, self.comparisons)
        return out

    @classmethod
    def load(cls, *paths: str | Path, require: str | None = None) -> "Results":
        """Read one or more results folders (or ``.jsonl`` record files) into one object.

        Parameters
        ----------
        *paths : path-like
            Results folders, or ``.jsonl`` files (a file named ``downstream*.jsonl`` holds downstream records, any
            other brain records). Several are merged in order.
        require : {None, "records", "downstream"}
            Raise :class:`ResultsError` unless records of that kind were found.

        Raises
        ------
        ResultsError
            A path is missing, a folder holds no records, a line is not JSON or lacks a required key.
        """
        if not paths:
            raise ResultsError("no results folder given")
        out = cls()
        for given in paths:
            path = Path(given).expanduser().resolve()
            if path.is_dir():
                out._read_folder(path, str(given))
            elif path.is_file():
                kind = DOWNSTREAM if path.name.startswith(DOWNSTREAM) else RECORDS
                rows = _read_jsonl(path, DOWNSTREAM_REQUIRED_KEYS if kind == DOWNSTREAM else REQUIRED_KEYS)
                (out.downstream if kind == DOWNSTREAM else out).extend(rows)
            else:
                raise ResultsError(f"results folder {str(given)!r} does not exist")
            out.sources.append(path)
        if require == RECORDS and not len(out):
            raise ResultsError(f"no brain-score records in {', '.join(map(str, paths))} "
                               "(run `brainlike score ... --out DIR`)")
        if require == DOWNSTREAM and not out.downstream:
            raise ResultsError(f"no downstream records in {', '.join(map(str, paths))} "
                               "(run `brainlike downstream ... --out DIR`)")
        return out

    def _read_folder(self, path: Path, given: str) -> None:
        brain = _read_jsonl(path / "records.jsonl", REQUIRED_KEYS)
        tasks = _read_jsonl(path / "downstream.jsonl", DOWNSTREAM_REQUIRED_KEYS)
        comparisons = _read_jsonl(path / "comparisons.jsonl", COMPARISON_REQUIRED_KEYS)
        if not brain and not tasks and not comparisons:
            raise ResultsError(f"{given!r} holds no records.jsonl or downstream.jsonl: not a results folder")
        self.extend(brain)
        self.downstream.extend(tasks)
        self.comparisons.extend(comparisons)
        for name in ("provenance.json", "downstream_provenance.json"):
            if (path / name).exists():
                provenance = _read_json(path / name)
                self.provenance_files.append((str(path / name), provenance))
                target = self.provenance if name == "provenance.json" else self.downstream_provenance
                if not target:
                    target.update(provenance)
        for file in sorted(path.glob("detail*.nc")):
            key = DETAIL_DEFAULT if file.name == "detail.nc" else file.stem[len("detail-"):]
            dataset = _read_detail(file)
            self.details[key] = _concat_models([self.details[key], dataset]) if key in self.details else dataset


# -------------------------------------------------------------------------------------------------------------
# helpers (module level so that tests and the study can use them)


def records_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Records as a tidy table, required columns first."""
    return _frame(list(records), REQUIRED_KEYS)


def write_results(records: Sequence[Mapping[str, Any]], out_dir: str | Path, provenance: Mapping[str, Any],
                  detail: Any = None) -> Path:
    """Write a results folder (a shorthand for ``Results(records, ...).save(out_dir)``)."""
    return Results(records, detail=detail, provenance=provenance).save(out_dir)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Brain-score records of a results folder or a ``.jsonl`` file."""
    return Results.load(path).records


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results."""
    out = {"brainlike": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for name in ("numpy", "scipy", "torch", "xarray", "pandas", "sklearn", "soundfile", "soxr"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        out[name] = getattr(module, "__version__", "?")
    return out


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        return result.stdout.strip() or None if result.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def json_default(value: Any) -> Any:
    """JSON encoding of numpy scalars and arrays and of paths."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _stamp(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """Provenance with versions, commit and command line (kept where the caller gave them) and the write time."""
    base = {"brainlike_version": __version__, "git_commit": git_commit(), "versions": versions(),
            "command": sys.argv}
    return {**base, **provenance, "written": now()}


def _write_records(out: Path, name: str, records: Sequence[Mapping[str, Any]]) -> None:
    jsonl = "".join(json.dumps(r, default=json_default) + "\n" for r in records).encode()
    atomic_write_bytes(out / f"{name}.jsonl", lambda h: h.write(jsonl))
    required = {RECORDS: REQUIRED_KEYS, DOWNSTREAM: DOWNSTREAM_REQUIRED_KEYS, COMPARISONS: COMPARISON_REQUIRED_KEYS}
    table = _frame(list(records), required[name])
    flat = table.map(lambda v: json.dumps(v, default=json_default) if isinstance(v, (dict, list)) else v)
    atomic_write_bytes(out / f"{name}.csv", lambda h: h.write(flat.to_csv(index=False, lineterminator="\n").encode()))
    if name == RECORDS:
        try:
            parquet = flat.astype(str).to_parquet(index=False)
        except ImportError:  # pyarrow is a dependency, but a results folder must not fail on it
            return
        atomic_write_bytes(out / f"{name}.parquet", lambda h: h.write(parquet))


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = (json.dumps(data, indent=2, default=json_default) + "\n").encode()
    atomic_write_bytes(path, lambda h: h.write(text))


def _frame(rows: list[Mapping[str, Any]], required: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for key in required:
        if key not in frame:
            frame[key] = None
    for key in ("score", "sem"):
        if key in frame:
            frame[key] = pd.to_numeric(frame[key], errors="coerce")
    extra = [c for c in frame.columns if c not in required]
    return frame[list(required) + extra]


def _read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ResultsError(f"{path}: line {number} is not JSON") from None
        if not isinstance(row, dict):
            raise ResultsError(f"{path}: line {number} is not a JSON object")
        missing = [k for k in required if k not in row]
        if missing:
            raise ResultsError(f"{path}: line {number} lacks required key(s) {missing}")
        rows.append(row)
    return rows


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ResultsError(f"{path} is not valid JSON") from None
    return data if isinstance(data, dict) else {}


def _read_detail(path: Path) -> Any:
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="h5netcdf") as dataset:
            return dataset.load()
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path} is not a readable netCDF file: {exc}") from None


def _concat_models(details: list[Any]) -> Any:
    """Concatenate per-model detail sets along ``model`` (outer join on targets and folds)."""
    import xarray as xr

    details = [d for d in details if d is not None]
    if len(details) <= 1:
        return details[0] if details else None
    # fixed-width strings (layer names) would be cut to the first model's width by concat: use objects
    details = [d.map(lambda v: v.astype(object) if v.dtype.kind == "U" else v) for d in details]
    details = [d if "model" in d.dims else d.expand_dims(model=[d.attrs.get("model", f"model{i}")])
               for i, d in enumerate(details)]
    try:
        return xr.concat(details, dim="model", join="outer", combine_attrs="drop_conflicts")
    except (ValueError, KeyError):  # different layouts (e.g. other protocols): keep the first
        return details[0]


def merge_details(details: Sequence[Any]) -> Any:
    """Per-model detail sets merged along ``model`` (None when there are none)."""
    return _concat_models(list(details))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
