"""The report's figures, drawn with matplotlib's object API (no pyplot state, no display needed).

Every builder takes :class:`~brainlike.report.results.ReportData` and returns a list of :class:`ReportFigure` (empty
when the results hold nothing to draw, e.g. no downstream records).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from brainlike.report.results import ReportData as Results
from brainlike.report.stats import bootstrap_median_ci, correlation, global_downstream

__all__ = ["PER_LAYER", "MAX_HEATMAP_TARGETS", "CONTROL", "COLOURS", "ReportFigure", "panel_label",
           "aggregates", "per_target", "is_control", "ranking_figures", "layer_profiles", "SELECTION", "layer_figures",
           "heatmap_figures", "brain_downstream_table", "downstream_figures", "checkpoint_figures"]

PER_LAYER = ("layer", "per-layer", "fixed")
"""``selection`` values that mark a record as the score of one fixed layer (a point of a layer profile)."""

MAX_HEATMAP_TARGETS = 40
CONTROL = "#9a9a9a"
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22"]


@dataclass
class ReportFigure:
    """One figure of the report.

    Attributes
    ----------
    slug : str
        File stem of its PNG and SVG files.
    section : str
        Report section (``ranking``, ``layers``, ``heatmaps``, ``time``, ``downstream``, ``checkpoints``).
    title, caption : str
        Shown above and below the figure.
    figure : matplotlib.figure.Figure
    """

    slug: str
    section: str
    title: str
    caption: str
    figure: Figure


# ------------------------------------------------------------------------------------------------------------------
# helpers


def panel_label(metric: str, selection: Any, protocol: Any, protocols: int = 1) -> str:
    """``regression / nested-cv`` (with the protocol appended when several are present)."""
    label = f"{metric} / {selection}" if isinstance(selection, str) and selection else str(metric)
    return f"{label} ({protocol})" if protocols > 1 else label


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)


PLAIN_KEY = ["model", "dataset", "metric", "protocol", "selection", "target", "roi", "subject"]


def plain_scores(records: pd.DataFrame) -> pd.DataFrame:
    """Records without variance-partitioning parts (docs/contracts.md section 7): plain scores, plus the ``part: model``
    rows of models that have no plain row (the same number), so that no score is counted twice."""
    if records.empty or "part" not in records or records["part"].isna().all():
        return records
    plain = records[records["part"].isna()]
    model_part = records[records["part"] == "model"]
    key = [k for k in PLAIN_KEY if k in records]
    seen = set(map(tuple, plain[key].astype(str).to_numpy()))
    extra = model_part[[tuple(row) not in seen for row in model_part[key].astype(str).to_numpy()]]
    extra = extra.drop_duplicates(key)
    return pd.concat([plain, extra]).drop(columns=[c for c in ("part", "control") if c in records])


def score_rows(records: pd.DataFrame) -> pd.Series:
    """Rows that are brain scores: not noise ceilings (``metric: ceiling``) nor similarities (``model_b``)."""
    return (records["metric"] != "ceiling") & _column(records, "model_b").isna()


def aggregates(records: pd.DataFrame) -> pd.DataFrame:
    """Whole-dataset rows: ``target == "all"``, not per ROI, subject, fold or fixed layer."""
    records = plain_scores(records)
    if records.empty:
        return records
    keep = (records["target"] == "all") & ~records["selection"].isin(PER_LAYER) & score_rows(records)
    for name in ("roi", "subject", "fold", "task"):
        keep &= _column(records, name).isna()
    return records[keep]


def per_target(records: pd.DataFrame) -> pd.DataFrame:
    """Per-target rows (one target each), not per fold or fixed layer."""
    records = plain_scores(records)
    if records.empty:
        return records
    keep = ((records["target"] != "all") & ~records["selection"].isin(PER_LAYER) & _column(records, "fold").isna()
            & score_rows(records))
    return records[keep]


def without_baselines(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of fitted models only: baseline rows (``selection: none``, e.g. trf's mean time course, whose ``score``
    is 0 by construction) are drawn in the time section against ``score_raw`` instead."""
    return frame[frame["selection"] != "none"] if not frame.empty else frame


def _with_panel(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    protocols = frame["protocol"].nunique()
    frame["panel"] = [panel_label(m, s, p, protocols) for m, s, p in
                      frame[["metric", "selection", "protocol"]].itertuples(index=False)]
    return frame


def is_control(model: str) -> bool:
    """Null controls and random-init twins are drawn in grey."""
    return model.endswith("@random") or model.startswith("random-")


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", "_".join(parts)).strip("-").lower()


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return figure


# ------------------------------------------------------------------------------------------------------------------
# ranking


def ranking_figures(results: Results) -> list[ReportFigure]:
    """Per dataset: models ranked by their aggregate score, one panel per metric/selection, with error bars."""
    rows = without_baselines(aggregates(results.records))
    figures = []
    for dataset, frame in (_with_panel(rows).groupby("dataset", sort=False) if not rows.empty else []):
        panels = list(dict.fromkeys(frame["panel"]))
        n_models = frame["model"].nunique()
        figure = _new_figure(4.2 * len(panels), 0.32 * n_models + 1.4)
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        notes = set()
        for ax, panel in zip(axes, panels):
            notes |= _ranking_panel(ax, frame[frame["panel"] == panel], results.records)
            ax.set_title(panel, fontsize=10)
        caption = (f"Models ranked by their aggregate score on {dataset} (target = all). "
                   + " ".join(sorted(notes)) + " Grey bars: null controls and random-init twins.")
        figures.append(ReportFigure(_slug("ranking", dataset), "ranking", f"Model ranking: {dataset}",
                                    caption.strip(), figure))
    return figures


def _ranking_panel(ax: Any, panel: pd.DataFrame, records: pd.DataFrame) -> set[str]:
    panel = panel.drop_duplicates("model").sort_values("score")
    low, high, notes = [], [], set()
    for row in panel.itertuples(index=False):
        lo, hi, note = _error_bar(row, records)
        low.append(lo)
        high.append(hi)
        if note:
            notes.add(note)
    y = np.arange(len(panel))
    colours = [CONTROL if is_control(m) else COLOURS[0] for m in panel["model"]]
    ax.barh(y, panel["score"], color=colours, height=0.7)
    err = np.array([low, high])  # (2, n_models): distances below and above the score
    if np.isfinite(err).any():
        ax.errorbar(panel["score"], y, xerr=np.nan_to_num(err), fmt="none", ecolor="black", capsize=2, lw=0.8)
    if "ceiling" in panel and panel["ceiling"].notna().any():
        ax.axvline(float(panel["ceiling"].dropna().median()), color="black", ls="--", lw=0.8)
        notes.add("Dashed line: noise ceiling.")
    ax.set_yticks(y, panel["model"], fontsize=8)
    ax.set_xlabel("R2" if panel["metric"].iloc[0] == "regression" else "Spearman rho")
    ax.axvline(0, color="black", lw=0.5)
    return notes


def _error_bar(row: Any, records: pd.DataFrame) -> tuple[float, float, str]:
    """(below, above, note): SEM across subjects, else a bootstrap CI of the median over targets, else none."""
    if row.sem is not None and np.isfinite(row.sem):
        return row.sem, row.sem, "Error bars: SEM across subjects."
    if row.metric == "regression":
        targets = per_target(records)
        targets = targets[(targets["model"] == row.model) & (targets["dataset"] == row.dataset)
                          & (targets["metric"] == row.metric) & (targets["protocol"] == row.protocol)
                          & (targets["selection"] == row.selection)]
        low, high = bootstrap_median_ci(targets["score"].to_numpy())
        if np.isfinite(low):
            return max(row.score - low, 0.0), max(high - row.score, 0.0), \
                "Error bars (one-subject datasets): bootstrap 95% CI of the median over targets (2,000 resamples, seed 0)."
    return np.nan, np.nan, ""


# ------------------------------------------------------------------------------------------------------------------
# layer profiles


def layer_profiles(results: Results) -> pd.DataFrame:
    """Score per layer: ``model, dataset, panel, layer, depth, score, kind``.

    ``kind`` is ``score`` for per-layer scores (records whose ``selection`` is in :data:`PER_LAYER`, records with a
    ``layer_scores`` dict, float ``detail.nc`` variables with a ``layer`` dimension) and ``chosen`` for the share of
    targets (and folds) whose selected layer it was (per-target records).
    """
    order = _layer_orders(results)
    parts = [_profiles_from_records(results.records), *(_profiles_from_detail(d) for d in results.detail)]
    scored = pd.concat([p for p in parts if not p.empty] or [pd.DataFrame()], ignore_index=True)
    chosen = _choices_from_detail(results.detail)
    from_records = _profiles_from_choices(results.records, order)
    if not chosen.empty and not from_records.empty:  # the detail counts every fold: prefer it
        have = set(zip(chosen["model"], chosen["dataset"]))
        from_records = from_records[[(m, d) not in have for m, d in zip(from_records["model"], from_records["dataset"])]]
    chosen = pd.concat([f for f in (chosen, from_records) if not f.empty] or [pd.DataFrame()], ignore_index=True)
    if not chosen.empty:  # a single-layer model always "chooses" its layer: no profile
        seen = chosen.groupby("model")["layer"].transform("nunique")
        known = chosen["model"].map(lambda m: len(order.get(m, [])))
        chosen = chosen[(known > 1) | ((known == 0) & (seen > 1))]
    frames = [f for f in (scored, chosen) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["model", "dataset", "panel", "layer", "depth", "score", "kind"])
    profiles = pd.concat(frames, ignore_index=True)
    profiles["depth"] = [_depth(order, m, layer, profiles) for m, layer in zip(profiles["model"], profiles["layer"])]
    return profiles


def _profiles_from_records(records: pd.DataFrame) -> pd.DataFrame:
    """Per-layer scores from fixed-layer records and from ``layer_scores`` dicts (``{layer: score}``, e.g. RSA)."""
    if records.empty:
        return pd.DataFrame()
    whole = records[(records["target"] == "all") & _column(records, "roi").isna() & _column(records, "subject").isna()]
    fixed = whole[whole["selection"].isin(PER_LAYER)]
    rows = [fixed[["model", "dataset", "metric", "protocol", "layer", "score"]]]
    if "layer_scores" in whole:
        listed = whole[[isinstance(v, dict) and bool(v) for v in whole["layer_scores"]]]
        rows.append(pd.DataFrame([{"model": r.model, "dataset": r.dataset, "metric": r.metric, "protocol": r.protocol,
                                   "layer": layer, "score": value}
                                  for r in listed.itertuples(index=False) for layer, value in r.layer_scores.items()]))
    rows = pd.concat([r for r in rows if not r.empty] or [pd.DataFrame()], ignore_index=True)
    if rows.empty:
        return pd.DataFrame()
    rows = _with_panel(rows.assign(selection="per layer", score=pd.to_numeric(rows["score"], errors="coerce")))
    out = rows.groupby(["model", "dataset", "panel", "layer"], sort=False, as_index=False)["score"].mean()
    return out.assign(kind="score")


def _profiles_from_detail(detail: Any) -> pd.DataFrame:
    """Float variables of ``detail.nc`` with a ``layer`` dimension (e.g. per-layer RSA rho), averaged over the
    dimensions other than ``model``, ``dataset`` and ``layer``; the variable's name becomes the panel."""
    if detail is None:
        return pd.DataFrame()
    frames = []
    for name, array in detail.data_vars.items():
        if "layer" not in array.dims or array.dtype.kind != "f" or array.attrs.get("layer_profile") == "no":
            continue
        if "model" not in array.dims and "model" not in detail.attrs:
            continue
        other = [d for d in array.dims if d not in ("model", "layer", "dataset")]
        frame = array.mean(other, skipna=True).to_dataframe(name="score").reset_index()
        if "model" not in frame:
            frame["model"] = detail.attrs["model"]
        if "dataset" not in frame:
            frame["dataset"] = detail.attrs.get("dataset", "")
        frame["panel"] = str(array.attrs.get("long_name", name))
        frames.append(frame[["model", "dataset", "panel", "layer", "score"]].dropna(subset=["score"]))
    return pd.concat(frames, ignore_index=True).assign(kind="score") if frames else pd.DataFrame()


def _profiles_from_choices(records: pd.DataFrame, orders: dict[str, list[str]]) -> pd.DataFrame:
    rows = per_target(records)
    rows = rows[rows["layer"].notna()] if not rows.empty else rows
    if rows.empty:
        return pd.DataFrame()
    rows = _with_panel(rows)
    chosen = rows.groupby("model")["layer"].transform("nunique")
    layers = rows["model"].map(lambda m: len(orders.get(m, [])))
    rows = rows[(layers > 1) | ((layers == 0) & (chosen > 1))]  # a single-layer model has no profile
    if rows.empty:
        return pd.DataFrame()
    counts = rows.groupby(["model", "dataset", "panel", "layer"], sort=False).size().rename("n").reset_index()
    counts["score"] = counts["n"] / counts.groupby(["model", "dataset", "panel"])["n"].transform("sum")
    return counts.drop(columns="n").assign(kind="chosen")


SELECTION = {"pepino2025": "nested-cv", "tuckute2023": "split-half"}


def _choices_from_detail(details: list[Any]) -> pd.DataFrame:
    """Share of (fold, target) pairs choosing each layer, from ``detail.nc`` string variables ``layer``."""
    frames = []
    for detail in details:
        if detail is None or "layer" not in detail.data_vars or "model" not in detail["layer"].dims:
            continue
        array = detail["layer"]
        panel = panel_label(detail.attrs.get("metric", "regression"),
                            SELECTION.get(detail.attrs.get("protocol", ""), ""), detail.attrs.get("protocol"))
        for model in array["model"].values:
            values = np.asarray(array.sel(model=model).values).astype(str).ravel()
            values = values[(values != "") & (values != "nan")]
            if values.size == 0 or len(set(values)) == 0:
                continue
            names, counts = np.unique(values, return_counts=True)
            frames.append(pd.DataFrame({"model": str(model), "dataset": detail.attrs.get("dataset", ""),
                                        "panel": panel, "layer": names, "score": counts / counts.sum()}))
    return pd.concat(frames, ignore_index=True).assign(kind="chosen") if frames else pd.DataFrame()


def _layer_orders(results: Results) -> dict[str, list[str]]:
    """Layer order per model, from any ``{"name": ..., "layers": [...]}`` found in the provenance."""
    orders: dict[str, list[str]] = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("name"), str) and isinstance(node.get("layers"), list):
                orders.setdefault(node["name"], [str(x) for x in node["layers"]])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(results.provenance)
    for detail in results.detail:
        if detail is not None and "layer" in getattr(detail, "coords", {}):
            for model in detail.coords.get("model", []).values.tolist() if "model" in detail.coords else []:
                orders.setdefault(str(model), [str(x) for x in detail.coords["layer"].values])
    return orders


def _depth(orders: dict[str, list[str]], model: str, layer: str, profiles: pd.DataFrame) -> float:
    names = orders.get(model) or list(dict.fromkeys(profiles.loc[profiles["model"] == model, "layer"]))
    if layer not in names:
        return float("nan")
    return names.index(layer) / max(len(names) - 1, 1)


def layer_figures(results: Results) -> list[ReportFigure]:
    """Per dataset: score (or share of targets choosing the layer) against relative layer depth, one line per model."""
    profiles = layer_profiles(results)
    figures = []
    for (dataset, kind), frame in profiles.groupby(["dataset", "kind"], sort=False):
        panels = list(dict.fromkeys(frame["panel"]))
        figure = _new_figure(4.2 * len(panels), 3.4)
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            _profile_panel(ax, frame[frame["panel"] == panel], kind)
            ax.set_title(panel, fontsize=10)
        axes[-1].legend(fontsize=7, loc="best")
        what = ("score of each layer" if kind == "score"
                else "share of targets (and folds) whose selected layer it was")
        caption = (f"Layer profiles on {dataset}: {what}, against relative depth (0 = first layer, 1 = last). "
                   "Single-layer models are drawn as points.")
        figures.append(ReportFigure(_slug("layers", dataset, kind), "layers", f"Layer profiles: {dataset}",
                                    caption, figure))
    return figures


def _profile_panel(ax: Any, frame: pd.DataFrame, kind: str) -> None:
    for i, (model, rows) in enumerate(frame.groupby("model", sort=False)):
        rows = rows.sort_values("depth")
        colour = CONTROL if is_control(model) else COLOURS[i % len(COLOURS)]
        ax.plot(rows["depth"], rows["score"], marker="o", ms=3, color=colour, label=model)
    ax.set_xlabel("relative layer depth")
    panel = str(frame["panel"].iloc[0]) if len(frame) else ""
    unit = "Spearman rho" if panel.startswith("rsa") else "R2" if panel.startswith("regression") else "score"
    ax.set_ylabel(unit if kind == "score" else "share of targets")
    ax.set_xlim(-0.05, 1.05)


# ------------------------------------------------------------------------------------------------------------------
# heatmaps


def heatmap_figures(results: Results) -> list[ReportFigure]:
    """Per-target (component) heatmaps for datasets with few targets, and ROI heatmaps where ROIs are present."""
    return _target_heatmaps(results.records) + _roi_heatmaps(results.records)


def _target_heatmaps(records: pd.DataFrame) -> list[ReportFigure]:
    rows = without_baselines(per_target(records))
    if rows.empty:
        return []
    rows = _with_panel(rows[_column(rows, "roi").isna() & _column(rows, "subject").isna()])
    figures = []
    for (dataset, panel), frame in rows.groupby(["dataset", "panel"], sort=False):
        if frame["target"].nunique() > MAX_HEATMAP_TARGETS:
            continue
        table = frame.pivot_table(index="model", columns="target", values="score", aggfunc="mean", sort=False)
        figure = _heatmap(table, f"{panel}")
        caption = f"Per-target scores on {dataset} ({panel}): one row per model, one column per target."
        figures.append(ReportFigure(_slug("targets", dataset, panel), "heatmaps", f"Per-target scores: {dataset}",
                                    caption, figure))
    return figures


def _roi_heatmaps(records: pd.DataFrame) -> list[ReportFigure]:
    records = plain_scores(records)
    if records.empty or "roi" not in records or records["roi"].isna().all():
        return []
    rows = records[records["roi"].notna() & ~records["selection"].isin(PER_LAYER)]
    if (rows["target"] == "all").any():
        rows = rows[rows["target"] == "all"]
    rows = _with_panel(rows)
    figures = []
    for (dataset, panel), frame in rows.groupby(["dataset", "panel"], sort=False):
        table = frame.pivot_table(index="model", columns="roi", values="score", aggfunc="mean", sort=False)
        caption = (f"Scores by region of interest on {dataset} ({panel}); the mean over subjects where the records "
                   "are per subject.")
        figures.append(ReportFigure(_slug("roi", dataset, panel), "heatmaps", f"ROI scores: {dataset}", caption,
                                    _heatmap(table, panel)))
    return figures


def _heatmap(table: pd.DataFrame, title: str) -> Figure:
    figure = _new_figure(1.0 + 0.75 * table.shape[1] + 1.6, 0.34 * table.shape[0] + 1.6)
    ax = figure.subplots()
    values = table.to_numpy(dtype=float)  # (models, targets)
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), [str(i) for i in table.index], fontsize=8)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > middle else "white")
    ax.set_title(title, fontsize=10)
    figure.colorbar(image, ax=ax, shrink=0.8)
    return figure


# ------------------------------------------------------------------------------------------------------------------
# variance partitioning

PART_STACK = (("unique_model", "#1f77b4", "unique to the model"), ("shared", "#9467bd", "shared"),
              ("unique_control", "#9a9a9a", "unique to the control"))


def partition_rows(records: pd.DataFrame) -> pd.DataFrame:
    """Partition records per target (components) or per ROI (voxels), plus the aggregate, without per-subject rows:
    ``dataset, control, model, column, part, score, ci_low, ci_high``."""
    if records.empty or "part" not in records or records["part"].isna().all():
        return pd.DataFrame()
    rows = records[records["part"].notna() & _column(records, "subject").isna()].copy()
    roi = _column(rows, "roi")
    rows["column"] = np.where(roi.notna(), roi.astype(str), rows["target"].astype(str))
    rows = rows[(roi.notna() & (rows["target"] == "all")) | roi.isna()]
    for name in ("ci_low", "ci_high"):
        rows[name] = _column(rows, name)
    return rows[["dataset", "control", "model", "column", "part", "score", "ci_low", "ci_high"]]


def partition_figures(results: Results) -> list[ReportFigure]:
    """Per dataset and control: for each model, stacked bars of unique-to-model, shared and unique-to-control R2
    per component or ROI (and ``all``), the joint R2 as a dot with its bootstrap CI."""
    rows = partition_rows(results.records)
    figures = []
    for (dataset, control), frame in (rows.groupby(["dataset", "control"], sort=False) if not rows.empty else []):
        models = list(dict.fromkeys(frame["model"]))
        columns = list(dict.fromkeys(frame["column"]))
        columns = [c for c in columns if c != "all"] + (["all"] if "all" in columns else [])
        n_cols = min(3, len(models))
        n_rows = int(np.ceil(len(models) / n_cols))
        figure = _new_figure(0.45 * len(columns) * n_cols + 1.5 * n_cols, 2.4 * n_rows + 0.8)
        axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
        for ax, model in zip(axes, models):
            _partition_panel(ax, frame[frame["model"] == model], columns)
            ax.set_title(model, fontsize=9)
        for ax in axes[len(models):]:
            ax.set_axis_off()
        handles = [axes[0].bar([0], [0], color=colour, label=label) for _, colour, label in PART_STACK]
        figure.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
        caption = (f"What each model explains beyond {control} on {dataset}: R2 unique to the model (joint - "
                   f"control), shared (model + control - joint) and unique to the control (joint - model), stacked "
                   "(negative parts below zero); the dot is the joint R2 with its 95% bootstrap CI over sounds. "
                   "Columns: components or ROIs, and the aggregate (all).")
        figures.append(ReportFigure(_slug("partition", dataset, control), "partition",
                                    f"Variance partitioning: {dataset} against {control}", caption, figure))
    return figures


def _partition_panel(ax: Any, frame: pd.DataFrame, columns: list[str]) -> None:
    table = frame.pivot_table(index="column", columns="part", values="score", aggfunc="first").reindex(columns)
    x = np.arange(len(columns))
    up, down = np.zeros(len(columns)), np.zeros(len(columns))
    for part, colour, _ in PART_STACK:
        values = np.nan_to_num(table[part].to_numpy(dtype=float)) if part in table else np.zeros(len(columns))
        base = np.where(values >= 0, up, down)
        ax.bar(x, values, bottom=base, color=colour, width=0.75)
        up, down = up + np.maximum(values, 0), down + np.minimum(values, 0)
    joint = frame[frame["part"] == "joint"].set_index("column").reindex(columns)
    if not joint.empty:
        err = np.array([joint["score"] - joint["ci_low"], joint["ci_high"] - joint["score"]], dtype=float)
        ax.errorbar(x, joint["score"], yerr=np.nan_to_num(np.maximum(err, 0)), fmt="o", color="black", ms=3,
                    capsize=2, lw=0.8)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xticks(x, columns, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("R2", fontsize=8)


# ------------------------------------------------------------------------------------------------------------------
# brain versus downstream


def brain_downstream_table(results: Results) -> pd.DataFrame:
    """Across models: each aggregate brain score against the global downstream score (r, CI, rho, p, n)."""
    score = global_downstream(results.downstream) if not results.downstream.empty else pd.Series(dtype=float)
    rows = aggregates(results.records)
    if score.empty or rows.empty:
        return pd.DataFrame()
    out = []
    for (dataset, panel), frame in _with_panel(rows).groupby(["dataset", "panel"], sort=False):
        brain = frame.drop_duplicates("model").set_index("model")["score"]
        models = [m for m in brain.index if m in score.index]
        stats = correlation(brain[models].to_numpy(), score[models].to_numpy())
        if stats["n"] >= 3:
            out.append({"dataset": dataset, "brain": panel, **stats, "models": models})
    return pd.DataFrame(out)


def downstream_figures(results: Results) -> list[ReportFigure]:
    """Scatter of each aggregate brain score against the global downstream score, with Pearson r and its CI."""
    table = brain_downstream_table(results)
    if table.empty:
        return []
    score = global_downstream(results.downstream)
    rows = _with_panel(aggregates(results.records))
    n = len(table)
    cols = min(n, 3)
    figure = _new_figure(4.0 * cols, 3.6 * int(np.ceil(n / cols)))
    axes = figure.subplots(int(np.ceil(n / cols)), cols, squeeze=False).ravel()
    for ax, link in zip(axes, table.itertuples(index=False)):
        brain = rows[(rows["dataset"] == link.dataset) & (rows["panel"] == link.brain)]
        brain = brain.drop_duplicates("model").set_index("model")["score"][link.models]
        _scatter(ax, score[link.models].to_numpy(), brain.to_numpy(), link.models)
        ax.set_title(f"{link.dataset}: {link.brain}\nr = {link.r:.2f} [{link.low:.2f}, {link.high:.2f}], "
                     f"n = {link.n}", fontsize=9)
        ax.set_xlabel("global downstream score (z)")
        ax.set_ylabel("brain score")
    for ax in axes[n:]:
        ax.set_visible(False)
    caption = ("Brain alignment against downstream performance across models. Global downstream score: each task "
               "z-scored across models, then averaged over tasks. r: Pearson; brackets: bootstrap 95% CI over models "
               "(2,000 resamples, seed 0); line: least-squares fit.")
    return [ReportFigure("brain-vs-downstream", "downstream", "Brain alignment versus downstream performance",
                         caption, figure)]


def _scatter(ax: Any, x: np.ndarray, y: np.ndarray, labels: list[str]) -> None:
    colours = [CONTROL if is_control(m) else COLOURS[0] for m in labels]
    ax.scatter(x, y, c=colours, s=18)
    for xi, yi, label in zip(x, y, labels):
        ax.annotate(label, (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
    if np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), 2)
        ax.plot(grid, slope * grid + intercept, color="black", lw=0.8)


# ------------------------------------------------------------------------------------------------------------------
# checkpoints


def checkpoint_figures(results: Results) -> list[ReportFigure]:
    """Score against training step, for records with a ``step`` (key, or ``step``/``ckpt`` + digits in the model)."""
    records = results.records
    if records.empty or "step" not in records or records["step"].isna().all():
        return []
    rows = records[records["step"].notna() & (records["target"] == "all")]
    rows = pd.concat([rows, _explode_layer_scores(rows)], ignore_index=True)
    rows["series"] = [_series(m, s, layer) for m, s, layer in rows[["model", "selection", "layer"]].itertuples(index=False)]
    if "roi" in rows:
        rows["series"] = [s if pd.isna(r) else f"{s} {r}" for s, r in zip(rows["series"], rows["roi"])]
    rows = _with_panel(rows.assign(selection=[s if s not in PER_LAYER else "per layer" for s in rows["selection"]]))
    figures = []
    for dataset, frame in rows.groupby("dataset", sort=False):
        panels = list(dict.fromkeys(frame["panel"]))
        figure = _new_figure(4.2 * len(panels), 3.4)
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            for i, (series, line) in enumerate(frame[frame["panel"] == panel].groupby("series", sort=False)):
                line = line.groupby("step", as_index=False)["score"].mean().sort_values("step")
                ax.plot(line["step"], line["score"], marker="o", ms=3, color=COLOURS[i % len(COLOURS)], label=series)
            ax.set_title(panel, fontsize=10)
            ax.set_xlabel("training step")
            ax.set_ylabel("score")
        axes[-1].legend(fontsize=7)
        figures.append(ReportFigure(_slug("checkpoints", dataset), "checkpoints", f"Checkpoint curves: {dataset}",
                                    f"Alignment on {dataset} against pretraining step, one line per model "
                                    "(and per layer where the records are per layer).", figure))
    return figures


def _explode_layer_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """One fixed-layer row per entry of each record's ``layer_scores`` (``{layer: score}``)."""
    if "layer_scores" not in rows:
        return pd.DataFrame()
    out = [{**row, "selection": "layer", "layer": layer, "score": float(value), "layer_scores": None}
           for row in rows.to_dict("records") if isinstance(row.get("layer_scores"), dict)
           for layer, value in row["layer_scores"].items()]
    return pd.DataFrame(out)


def _series(model: str, selection: str, layer: Any) -> str:
    family = re.sub(r"(step|ckpt|checkpoint)[-_=]?\d+", r"\1*", model, flags=re.IGNORECASE)
    return f"{family} {layer}" if selection in PER_LAYER and isinstance(layer, str) else family


# ------------------------------------------------------------------------------------------------------------------
# representational similarity


def similarity_figures(results: Results) -> list[ReportFigure]:
    """One heatmap per similarity matrix in the records (``brainlike similarity``: ``model_a/layer_a`` rows,
    ``model_b/layer_b`` columns)."""
    records = results.records
    if records.empty or "model_b" not in records:
        return []
    rows = records[records["model_b"].notna()].copy()
    rows["whiten"] = _column(rows, "whiten").fillna(0.0)
    figures = []
    for (metric, dataset, whiten), frame in rows.groupby(["metric", "dataset", "whiten"], sort=False):
        frame = frame.assign(row=[_cell_label(m, l) for m, l in zip(frame["model_a"], _column(frame, "layer_a"))],
                             column=[_cell_label(m, l) for m, l in zip(frame["model_b"], _column(frame, "layer_b"))])
        table = frame.pivot_table(index="row", columns="column", values="score", aggfunc="first", sort=False)
        figure = similarity_heatmap(table.to_numpy(dtype=float), list(table.index), list(table.columns), metric)
        title = f"{metric}" + (f" (whitening {whiten:g})" if whiten else "")
        caption = (f"Representational {'distance' if metric.startswith('procrustes') else 'similarity'} between "
                   f"feature sets on {dataset} ({title}): rows and columns are model/layer.")
        figures.append(ReportFigure(_slug("similarity", metric, str(dataset), f"{whiten:g}"), "similarity",
                                    f"Similarity: {title}", caption, figure))
    return figures


def _cell_label(model: Any, layer: Any) -> str:
    return str(model) if layer is None or (isinstance(layer, float) and np.isnan(layer)) else f"{model}/{layer}"


def similarity_heatmap(matrix: np.ndarray, rows: list[str], columns: list[str], metric: str) -> Figure:
    """Heatmap of a layer x layer matrix (cells annotated when small enough to read)."""
    distance = metric.startswith("procrustes")
    size = max(len(rows), len(columns))
    figure = _new_figure(2.5 + 0.32 * len(columns) + 1.0, 1.8 + 0.3 * len(rows))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="magma_r" if distance else "viridis", aspect="auto",
                      vmin=0.0, vmax=np.pi / 2 if distance else 1.0)
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    if size <= 16:
        for (i, j), value in np.ndenumerate(matrix):
            if np.isfinite(value):
                light = value > 0.5 if not distance else value < 0.6
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if light else "white")
    figure.colorbar(image, ax=ax, shrink=0.8, label="radians" if distance else metric)
    ax.set_title(metric, fontsize=10)
    return figure


def save_similarity_figure(similarity: Any, path: Any) -> None:
    """Write the heatmap of a :class:`brainlike.align.geometry.Similarity` as PNG (atomically)."""
    import io
    from pathlib import Path

    from brainlike.align.geometry import label
    from brainlike.integrity import atomic_write

    figure = similarity_heatmap(similarity.matrix, [label(m, l) for m, l in similarity.rows],
                                [label(m, l) for m, l in similarity.columns], similarity.metric)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=130, metadata={"Software": None})
    atomic_write(Path(path), buffer.getvalue())
