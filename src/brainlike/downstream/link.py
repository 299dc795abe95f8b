"""The link between brain alignment and downstream performance across models (Pepino et al. 2025, Table 1).

Every brain score (one per dataset x metric x protocol x selection [x roi] x target: the aggregate ``target: all``
and, for datasets with at most ``MAX_TARGETS`` targets such as the six NH2015 components, each target; rows of one
subject are left out) is
correlated across models with the global downstream score and with each task's fold-mean score: Pearson r (as
``scipy.stats.linregress``) and Spearman rho, each with its p-value and a percentile bootstrap confidence interval
over models (models resampled with replacement; resamples where either variable is constant are dropped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from brainlike.align.stats import correlate
from brainlike.errors import BrainlikeError

__all__ = ["N_BOOTSTRAP", "BRAIN_KEY", "MAX_TARGETS", "LinkInputs", "read_inputs", "brain_table", "downstream_table",
           "link", "brain_label", "table1", "scatter_plots", "write_link"]

N_BOOTSTRAP = 2000
BRAIN_KEY = ("dataset", "metric", "protocol", "selection", "roi", "control", "part", "target")
MAX_TARGETS = 32


@dataclass
class LinkInputs:
    """Brain and downstream records gathered from results folders or files."""

    brain: list[dict[str, Any]]
    downstream: list[dict[str, Any]]
    sources: list[str]


def read_inputs(paths: Sequence[str | Path]) -> LinkInputs:
    """Read results folders (or ``.jsonl`` files) through :meth:`brainlike.results.Results.load`.

    A file named ``downstream*.jsonl`` is read as downstream records, any other .jsonl as brain records. Later
    inputs override earlier ones for the same model and score.
    """
    from brainlike.results import Results

    results = Results.load(*paths)
    return LinkInputs(results.records, results.downstream, [str(p) for p in results.sources])


def brain_table(records: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, float]]:
    """``{brain key: {model: score}}`` from brain records without a subject: the ``target: all`` aggregates, and
    the per-target rows of datasets with at most ``MAX_TARGETS`` targets (voxel-level rows are left out)."""
    table: dict[tuple, dict[str, float]] = {}
    targets: dict[tuple, set] = {}
    for r in records:
        if r.get("subject") is not None or r.get("score") is None or r.get("target") is None:
            continue
        key = tuple(r.get(k) for k in BRAIN_KEY)
        table.setdefault(key, {})[r["model"]] = float(r["score"])
        if r["target"] != "all":
            targets.setdefault(key[:-1], set()).add(r["target"])
    crowded = {group for group, names in targets.items() if len(names) > MAX_TARGETS}
    ordered = sorted(table, key=lambda k: (k[:-1] in crowded, k[-1] != "all"))  # aggregates first
    return {k: table[k] for k in ordered if k[-1] == "all" or k[:-1] not in crowded}


def downstream_table(records: Sequence[dict[str, Any]], probe: str | None = None) -> tuple[str, dict[str, dict]]:
    """``(probe, {"global" or task: {model: score}})``: fold-mean task scores and the global score recomputed over
    the models present by :func:`brainlike.downstream.evaluate.global_scores` (rows ``task: global`` in the inputs
    are ignored). ``probe`` defaults to the most frequent."""
    from brainlike.downstream.evaluate import global_scores, task_means

    means = task_means(records)
    if not means:
        raise BrainlikeError("no downstream task scores in the inputs (run `brainlike downstream ... --out DIR`)")
    probes = [r["probe"] for r in means]
    probe = probe or max(set(probes), key=probes.count)
    means = [r for r in means if r["probe"] == probe]
    if not means:
        raise BrainlikeError(f"no downstream records for probe {probe!r}")
    columns: dict[str, dict[str, float]] = {}
    for g in global_scores(means, probe):
        columns.setdefault("global", {})[g["model"]] = g["score"]
    for r in means:
        columns.setdefault(r["task"], {})[r["model"]] = float(r["score"])
    return probe, columns


def link(inputs: LinkInputs, *, probe: str | None = None, n_bootstrap: int = N_BOOTSTRAP,
         seed: int = 0) -> list[dict[str, Any]]:
    """One row per (brain score, downstream score) pair with the correlations across their common models."""
    brains = brain_table(inputs.brain)
    if not brains:
        raise BrainlikeError("no aggregate brain scores (target: all) in the inputs (run `brainlike score ... --out`)")
    probe, columns = downstream_table(inputs.downstream, probe)
    rows = []
    for key, brain in brains.items():
        for name in ["global"] + sorted(c for c in columns if c != "global"):
            task = columns.get(name, {})
            models = [m for m in brain if m in task]
            stats_ = correlate(np.array([brain[m] for m in models]), np.array([task[m] for m in models]),
                               n_bootstrap=n_bootstrap, seed=seed)
            rows.append({**dict(zip(("brain_" + k for k in BRAIN_KEY), key)), "downstream": name, "probe": probe,
                         **stats_, "models": models, "brain_scores": [brain[m] for m in models],
                         "downstream_scores": [task[m] for m in models]})
    return rows


def brain_label(row: dict[str, Any]) -> str:
    """Short label of a row's brain score, e.g. ``nh2015-components regression (nested-cv)``."""
    text = f"{row['brain_dataset']} {row['brain_metric']} ({row['brain_selection']}"
    text += f", {row['brain_protocol']})" if row.get("brain_protocol") else ")"
    text += f" {row['brain_roi']}" if row.get("brain_roi") else ""
    text += f" {row['brain_part']} vs {row['brain_control']}" if row.get("brain_part") else ""
    return text + (f" [{row['brain_target']}]" if row.get("brain_target") not in (None, "all") else "")


def table1(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table like the paper's Table 1: Pearson r (95% CI) of each brain score with the global score and
    each task, models in common in the header."""
    if not rows:
        return "(no pairs)"
    columns = list(dict.fromkeys(r["downstream"] for r in rows))
    brains = list(dict.fromkeys(brain_label(r) for r in rows))
    cell = {(brain_label(r), r["downstream"]): r for r in rows}
    lines = ["| brain score | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for b in brains:
        cells = []
        for c in columns:
            r = cell.get((b, c))
            if r is None or r["pearson_r"] is None:
                cells.append("n/a")
                continue
            ci = f" [{r['pearson_ci_low']:.2f}, {r['pearson_ci_high']:.2f}]" if r["pearson_ci_low"] is not None else ""
            stars = "*" if r["pearson_p"] < 0.05 else ""
            cells.append(f"{r['pearson_r']:.2f}{stars}{ci} (n={r['n_models']})")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nPearson r across models [95% bootstrap CI]; * p < 0.05."


def scatter_plots(rows: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """One PNG per pair (brain score on x, downstream score on y, models labelled, least-squares line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(out_dir) / "link_plots"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        if row["pearson_r"] is None:
            continue
        x, y = np.array(row["brain_scores"]), np.array(row["downstream_scores"])
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(x, y, s=18)
        for model, xi, yi in zip(row["models"], x, y):
            ax.annotate(model, (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
        grid = np.linspace(x.min(), x.max(), 2)
        ax.plot(grid, row["intercept"] + row["slope"] * grid, lw=1)
        ax.set_xlabel(brain_label(row))
        ax.set_ylabel(f"{row['downstream']} ({row['probe']} probe)")
        ax.set_title(f"r = {row['pearson_r']:.2f} (p = {row['pearson_p']:.2g}), "
                     f"rho = {row['spearman_rho']:.2f}, n = {row['n_models']}", fontsize=8)
        fig.tight_layout()
        slug = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in f"{brain_label(row)}__{row['downstream']}")
        path = folder / f"{slug}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def write_link(rows: Sequence[dict[str, Any]], out_dir: str | Path, sources: Sequence[str]) -> Path:
    """Write ``link.jsonl``, ``link.csv``, ``link_table.md`` and the scatter plots into ``out_dir``."""
    import pandas as pd

    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "link.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    flat = [{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()} for r in rows]
    pd.DataFrame(flat).to_csv(out / "link.csv", index=False, lineterminator="\n")
    (out / "link_table.md").write_text(table1(rows) + "\n\nInputs: " + ", ".join(sources) + "\n")
    scatter_plots(rows, out)
    return out
