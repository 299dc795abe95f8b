"""Reports: figures, tables and one self-contained HTML page from results folders.

>>> from brainlike.report import make_report
>>> report = make_report("results/baselines")          # doctest: +SKIP
>>> report.html                                         # results/baselines/report/report.html  # doctest: +SKIP

The page embeds every figure (base64 SVG) and needs no network or scripts; the same figures are written as PNG and
SVG under ``figures/`` and the tables as CSV and parquet under ``tables/``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.align.partition import PARTS
from brainlike.integrity import atomic_write
from brainlike.report import figures as builders
from brainlike.report.figures import ReportFigure, aggregates, brain_downstream_table, partition_rows, per_target
from brainlike.report.results import ReportData, ReportError, load_results
from brainlike.report.stats import global_downstream, task_scores
from brainlike.report.time_figures import time_figures

__all__ = ["Report", "ReportData", "ReportError", "beats_table", "comparison_view", "load_results", "make_report",
           "report_tables"]


@dataclass
class Report:
    """What :func:`make_report` wrote.

    Attributes
    ----------
    html : Path
        The self-contained HTML page.
    figures : list of Path
        PNG and SVG files, two per figure.
    tables : list of Path
        CSV and parquet files, two per table.
    slugs : list of str
        The figures' names, in page order.
    """

    html: Path
    figures: list[Path]
    tables: list[Path]
    slugs: list[str]



def all_figures(results: ReportData) -> list[ReportFigure]:
    """Every figure the results support, in report order."""
    steps = [builders.ranking_figures, builders.layer_figures, builders.heatmap_figures, time_figures,
             builders.partition_figures, builders.downstream_figures, builders.checkpoint_figures,
             builders.similarity_figures]
    return [figure for build in steps for figure in build(results)]


def make_report(*results_dirs: str | os.PathLike, out: str | os.PathLike | None = None,
                title: str | None = None) -> Report:
    """Write the report of one or more results folders.

    Parameters
    ----------
    *results_dirs : path-like
        Results folders (docs/contracts.md section 2); several are merged (e.g. a score run and a downstream run).
    out : path-like, optional
        Output folder; default ``<first results folder>/report``.
    title : str, optional
        Page title; default ``brainlike report: <folder name>``.

    Returns
    -------
    Report

    Raises
    ------
    ReportError
        A folder is missing or holds no valid records.
    """
    results = load_results(*results_dirs)
    out_dir = Path(out) if out is not None else results.folders[0] / "report"
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    tables = report_tables(results)
    table_files = [path for name, frame in tables.items() for path in _write_table(frame, out_dir / "tables" / name)]
    figures, figure_files = [], []
    for figure in all_figures(results):
        svg, files = _save_figure(figure, out_dir / "figures")
        figures.append((figure, svg))
        figure_files += files
    from brainlike.report.html import render

    page = render(title or f"brainlike report: {results.folders[0].name}", figures,
                  {"ranking": summary_table(tables.get("ranking", pd.DataFrame())),
                   "downstream": tables.get("brain_vs_downstream", pd.DataFrame()),
                   "partition": partition_summary(tables.get("partition", pd.DataFrame())),
                   "comparisons": comparison_view(tables.get("comparisons", pd.DataFrame()))},
                  results.provenance_files, [str(f) for f in results.folders])
    html = out_dir / "report.html"
    atomic_write(html, page.encode("utf-8"))
    return Report(html, figure_files, table_files, [f.slug for f, _ in figures])


def report_tables(results: ReportData) -> dict[str, pd.DataFrame]:
    """The report's tables: ``ranking``, ``per_target``, ``downstream_tasks``, ``downstream_global``,
    ``brain_vs_downstream``, ``comparisons`` ("A beats B?") and ``ceilings`` (only those with rows)."""
    tables: dict[str, pd.DataFrame] = {}
    rows = aggregates(results.records)
    if not rows.empty:
        columns = [c for c in ("dataset", "metric", "selection", "protocol", "model", "score", "sem", "layer",
                               "ceiling", "method", "score_over_ceiling") if c in rows]
        ranking = rows[columns].sort_values(["dataset", "metric", "selection", "protocol", "score"],
                                            ascending=[True, True, True, True, False], kind="stable")
        ranking.insert(5, "rank", ranking.groupby(["dataset", "metric", "selection", "protocol"]).cumcount() + 1)
        tables["ranking"] = ranking.reset_index(drop=True)
    targets = per_target(results.records)
    if not targets.empty:
        tables["per_target"] = targets.reset_index(drop=True)
    parts = partition_rows(results.records)
    if not parts.empty:
        tables["partition"] = parts.reset_index(drop=True)
    if not results.downstream.empty:
        tables["downstream_tasks"] = task_scores(results.downstream)
        score = global_downstream(results.downstream)
        if not score.empty:
            tables["downstream_global"] = score.rename_axis("model").reset_index()
    link = brain_downstream_table(results)
    if not link.empty:
        tables["brain_vs_downstream"] = link.drop(columns="models")
    if not results.comparisons.empty:
        tables["comparisons"] = beats_table(results.comparisons)
    if not results.records.empty and (results.records["metric"] == "ceiling").any():
        ceilings = results.records[results.records["metric"] == "ceiling"]
        tables["ceilings"] = ceilings.dropna(axis=1, how="all").reset_index(drop=True)
    return tables


def partition_summary(parts: pd.DataFrame) -> pd.DataFrame:
    """Aggregate (``all``) partition scores: one row per dataset, control and model, one column per part
    (``R2 model``, ``R2 control``, ``R2 joint``, ``R2 unique_model``, ...)."""
    if parts.empty:
        return parts
    rows = parts[parts["column"] == "all"]
    table = rows.pivot_table(index=["dataset", "control", "model"], columns="part", values="score", aggfunc="first",
                             sort=False)
    table = table[[p for p in PARTS if p in table]]
    table.columns = [f"R2 {p}" for p in table.columns]
    return table.reset_index()


VERDICT_Q = 0.05
"""A pair is called when its FDR q-value is below this."""


def beats_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """"A beats B?": one row per pair and target with both scores, the difference, its CI, p, q and the verdict
    (``A``, ``B`` or ``no difference``: the better model where q < 0.05)."""
    frame = comparisons.copy()
    for name in ("score_a", "score_b", "ci_low", "ci_high", "dataset"):
        if name not in frame:
            frame[name] = None
    better = np.where(frame["difference"] > 0, frame["model_a"], frame["model_b"])
    significant = pd.to_numeric(frame["q"], errors="coerce") < VERDICT_Q
    frame["verdict"] = np.where(significant, better, "no difference")
    columns = ["dataset", "metric", "target", "model_a", "model_b", "score_a", "score_b", "difference", "ci_low",
               "ci_high", "p", "q", "verdict"]
    return frame[columns].reset_index(drop=True)


def comparison_view(table: pd.DataFrame) -> pd.DataFrame:
    """The "A beats B?" table as shown on the page: overall rows first, p and q to 3 significant digits."""
    if table.empty:
        return table
    view = table.copy()
    view["order"] = (view["target"] != "all").astype(int)
    view = view.sort_values(["dataset", "metric", "order"], kind="stable").drop(columns="order")
    for name in ("p", "q"):
        view[name] = [("" if pd.isna(v) else f"{v:.3g}") for v in view[name]]
    view["95% CI"] = [("" if pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]") for lo, hi in zip(view["ci_low"],
                                                                                        view["ci_high"])]
    return view.drop(columns=["ci_low", "ci_high"])


def summary_table(ranking: pd.DataFrame) -> pd.DataFrame:
    """Wide view of the ranking: one row per model, one column per dataset and metric/selection, cells
    ``score`` or ``score ± sem``; rows sorted by the first column, best first."""
    if ranking.empty:
        return ranking
    frame = ranking.copy()
    several = frame["protocol"].nunique() > 1
    frame["column"] = [f"{d} {m}/{s}" + (f" ({p})" if several else "") for d, m, s, p in
                       frame[["dataset", "metric", "selection", "protocol"]].itertuples(index=False)]
    frame["cell"] = [f"{v:.3f}" + ("" if pd.isna(e) else f" ± {e:.3f}") for v, e in zip(frame["score"], frame["sem"])]
    columns = list(dict.fromkeys(frame["column"]))
    wide = frame.pivot_table(index="model", columns="column", values="cell", aggfunc="first", sort=False)
    order = frame[frame["column"] == columns[0]].sort_values("score", ascending=False)["model"].tolist()
    order += [m for m in wide.index if m not in order]
    return wide.reindex(index=order, columns=columns).rename_axis(None, axis=1).reset_index()


def _write_table(frame: pd.DataFrame, stem: Path) -> list[Path]:
    csv, parquet = stem.with_suffix(".csv"), stem.with_suffix(".parquet")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    atomic_write(csv, buffer.getvalue().encode("utf-8"))
    plain = frame.copy()
    for column in plain.columns[plain.dtypes == object]:  # mixed-type columns: text, keeping missing values
        plain[column] = [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in plain[column]]
    plain.to_parquet(parquet, index=False)
    return [csv, parquet]


def _save_figure(figure: ReportFigure, folder: Path) -> tuple[bytes, list[Path]]:
    """Write ``slug.png`` and ``slug.svg``; return the SVG bytes for embedding."""
    import matplotlib

    files = []
    with matplotlib.rc_context({"svg.hashsalt": "brainlike", "svg.fonttype": "path"}):
        svg = io.BytesIO()
        figure.figure.savefig(svg, format="svg", metadata={"Date": None})
        png = io.BytesIO()
        figure.figure.savefig(png, format="png", dpi=130, metadata={"Software": None})
    for suffix, data in ((".svg", svg.getvalue()), (".png", png.getvalue())):
        path = folder / f"{figure.slug}{suffix}"
        atomic_write(path, data)
        files.append(path)
    return svg.getvalue(), files

