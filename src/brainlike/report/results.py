"""Reading results folders (contracts.md section 2) into tables for the report."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from brainlike.errors import DataError

REQUIRED = ("model", "dataset", "metric", "protocol", "selection", "target", "score", "sem", "layer")
"""Keys every brain-score record carries (contracts.md section 1)."""

DOWNSTREAM_REQUIRED = ("model", "task", "score")
_STEP = re.compile(r"(?:step|ckpt|checkpoint)[-_=]?(\d+)", re.IGNORECASE)


class ReportError(DataError):
    """A results folder that the report cannot read."""


@dataclass
class Results:
    """The contents of one or more results folders.

    Attributes
    ----------
    folders : list of Path
        The folders read.
    records : DataFrame
        Brain-score records (one row per record; the contract's keys plus any optional ones).
    downstream : DataFrame
        Downstream records (``model, task, probe, fold, metric, score``), empty when there are none.
    provenance : list of dict
        ``provenance.json`` of each folder (empty dict where missing).
    detail : list
        Every ``detail*.nc`` of the folders as an ``xarray.Dataset`` (None for a folder without one).
    """

    folders: list[Path]
    records: pd.DataFrame
    downstream: pd.DataFrame
    provenance: list[dict[str, Any]] = field(default_factory=list)
    detail: list[Any] = field(default_factory=list)
    provenance_files: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Every provenance file found (``provenance.json``, ``downstream_provenance.json``) with its path."""

    @property
    def models(self) -> list[str]:
        """Models in order of first appearance."""
        names = list(self.records.get("model", pd.Series(dtype=str))) + list(self.downstream.get("model", []))
        return list(dict.fromkeys(names))


def load_results(*folders: str | Path) -> Results:
    """Read results folders (``records.jsonl``, ``downstream.jsonl``, ``provenance.json``, ``detail.nc``).

    Raises
    ------
    ReportError
        A folder is missing, holds no records, or a record lacks a required key.
    """
    if not folders:
        raise ReportError("no results folder given")
    paths, records, downstream, provenance, detail, files = [], [], [], [], [], []
    for folder in folders:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise ReportError(f"results folder {str(folder)!r} does not exist")
        brain = _read_jsonl(path / "records.jsonl", REQUIRED)
        tasks = _read_jsonl(path / "downstream.jsonl", DOWNSTREAM_REQUIRED)
        if not brain and not tasks:
            raise ReportError(f"{str(folder)!r} holds no records.jsonl or downstream.jsonl: not a results folder")
        paths.append(path)
        records += brain
        downstream += tasks
        provenance.append(_read_json(path / "provenance.json"))
        detail += [_read_detail(p) for p in sorted(path.glob("detail*.nc"))] or [None]
        for name in ("provenance.json", "downstream_provenance.json"):
            if (path / name).exists():
                files.append((str(path / name), _read_json(path / name)))
    return Results(paths, _frame(records, REQUIRED), _frame(downstream, DOWNSTREAM_REQUIRED), provenance, detail,
                   files)


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
            raise ReportError(f"{path}: line {number} is not JSON") from None
        missing = [k for k in required if k not in row]
        if missing:
            raise ReportError(f"{path}: line {number} lacks required key(s) {missing}")
        rows.append(row)
    return rows


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ReportError(f"{path} is not valid JSON") from None


def _read_detail(path: Path) -> Any:
    if not path.exists():
        return None
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="h5netcdf") as dataset:
            return dataset.load()
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path} is not a readable netCDF file: {exc}") from None


def _frame(rows: list[dict[str, Any]], required: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=None if rows else list(required))
    if "score" in frame:
        frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    if "sem" in frame:
        frame["sem"] = pd.to_numeric(frame["sem"], errors="coerce")
    if rows and "step" not in frame:
        steps = frame["model"].astype(str).str.extract(_STEP, expand=False)
        if steps.notna().any():
            frame["step"] = pd.to_numeric(steps)
    return frame
