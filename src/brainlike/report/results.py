"""The report's view of results folders: the records of :meth:`brainlike.results.Results.load` as tables."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from brainlike.results import COMPARISONS, DOWNSTREAM, Results, ResultsError

ReportError = ResultsError
"""A results folder that the report cannot read (the error :meth:`Results.load` raises)."""

_STEP = re.compile(r"(?:step|ckpt|checkpoint)[-_=]?(\d+)", re.IGNORECASE)


@dataclass
class ReportData:
    """One or more results folders as the report's figures and tables read them.

    Attributes
    ----------
    folders : list of Path
        The folders read.
    records : DataFrame
        Brain-score records (contract keys plus optional ones; ``step`` parsed from checkpoint model names).
    downstream : DataFrame
        Downstream records (``model, task, probe, fold, metric, score``), empty when there are none.
    provenance : list of dict
        ``provenance.json`` of the results.
    detail : list of xarray.Dataset
        Every per-target detail set of the folders.
    provenance_files : list of (str, dict)
        Every provenance file read, with its path.
    comparisons : DataFrame
        Model-comparison records (``brainlike compare``), empty when there are none.
    """

    folders: list[Path]
    records: pd.DataFrame
    downstream: pd.DataFrame
    provenance: list[dict[str, Any]] = field(default_factory=list)
    detail: list[Any] = field(default_factory=list)
    provenance_files: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    results: Results | None = None
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def models(self) -> list[str]:
        """Models in order of first appearance."""
        return self.results.models if self.results is not None else []


def load_results(*folders: str | Path) -> ReportData:
    """Read results folders through :meth:`brainlike.results.Results.load` (the one reader).

    Raises
    ------
    ReportError
        A folder is missing, holds no records, or a record lacks a required key.
    """
    results = Results.load(*folders)
    records = _with_steps(results.to_frame()) if len(results) else results.to_frame().iloc[0:0]
    downstream = results.to_frame(DOWNSTREAM)
    return ReportData(results.sources, records, downstream, [p for _, p in results.provenance_files],
                      list(results.details.values()), results.provenance_files, results,
                      results.to_frame(COMPARISONS) if results.comparisons else pd.DataFrame())


def _with_steps(frame: pd.DataFrame) -> pd.DataFrame:
    if "step" not in frame:
        steps = frame["model"].astype(str).str.extract(_STEP, expand=False)
        if steps.notna().any():
            frame["step"] = pd.to_numeric(steps)
    return frame
