"""The report's time section: figures of time-resolved (``trf``) results, drawn from ``detail.nc``.

Per model: r(b) per target with the shuffled-sound null band, and the layer x lag heatmap beside the latency of each
layer; per dataset: latency per layer for every model, and time-resolved RSA (rho(b) of each model's best layer and
of its time-averaged RDM).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brainlike.report.figures import COLOURS, CONTROL, ReportFigure, _new_figure, _slug, aggregates, is_control
from brainlike.report.results import ReportData

__all__ = ["SECTION", "MAX_TARGETS", "time_details", "time_figures", "model_layers", "is_causal"]

SECTION = "time"
MAX_TARGETS = 40
"""Targets drawn as r(b) panels per model (electrode sets beyond this show the first ones)."""


def time_details(results: ReportData) -> list[Any]:
    """The detail sets holding time-resolved regression results (``r_time`` per model)."""
    return [d for d in results.detail if d is not None and "r_time" in d.data_vars and "model" in d.dims]


def time_figures(results: ReportData) -> list[ReportFigure]:
    """Every time-section figure the results support (none without time-resolved results)."""
    figures = _raw_figures(results)
    for detail in time_details(results):
        dataset = str(detail.attrs.get("dataset", ""))
        models = [str(m) for m in detail["model"].values]
        for model in models:
            one = detail.sel(model=model)
            figures.append(_curves_figure(one, model, dataset))
            if "lag_profile" in one and np.isfinite(one["lag_profile"].values).any():
                figures.append(_lags_figure(one, model, dataset))
        figures.append(_latency_figure(detail, models, dataset))
        if "rsa_rho" in detail:
            figures.append(_rsa_figure(detail, models, dataset))
    return figures


def model_layers(detail: Any) -> tuple[list[int], list[str]]:
    """Positions (in the detail's ``layer`` coordinate) and names of one model's layers, in model order (the
    coordinate is the union over models after merging)."""
    order = np.asarray(detail["layer_order"].values, dtype=np.float64)
    positions = [int(i) for i in np.argsort(order, kind="stable") if np.isfinite(order[i])]
    return positions, [str(detail["layer"].values[i]) for i in positions]


def is_causal(detail: Any) -> bool | None:
    """True when every layer of the model is causal, False when one is not, None when unknown."""
    flags = np.asarray(detail["layer_causal"].values, dtype=np.float64)
    flags = flags[np.isfinite(flags) & (flags >= 0)]
    return None if flags.size == 0 else bool(np.all(flags == 1))


def _grid(n: int) -> tuple[int, int]:
    columns = min(5, n)
    return int(np.ceil(n / columns)), columns


def _curves_figure(detail: Any, model: str, dataset: str) -> ReportFigure:
    targets = [str(t) for t in detail["target"].values][:MAX_TARGETS]
    rows, columns = _grid(len(targets))
    figure = _new_figure(2.2 * columns, 1.6 * rows + 0.4)
    axes = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    times = detail["time"].values
    for ax, target in zip(axes.ravel(), targets):
        one = detail.sel(target=target)
        ax.fill_between(times, one["r_time_null_low"].values, one["r_time_null_high"].values, color="#d9d9d9",
                        linewidth=0, label="shuffled-sound 95% band")
        ax.plot(times, one["r_time"].values, color=CONTROL if is_control(model) else COLOURS[0], linewidth=1.2,
                label="r(b)")
        ax.axhline(0, color="#888", linewidth=0.5)
        if times[0] < 2.0 < times[-1]:
            ax.axvline(2.0, color="#888", linewidth=0.5, linestyle=":")
        score = float(one["score"].values)
        ax.set_title(f"{target}  R2 {score:.2f}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(targets):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("time from onset (s)", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("r across sounds", fontsize=7)
    axes[0, 0].legend(fontsize=6, loc="upper right", frameon=False)
    caption = (f"{model} on {dataset}: correlation across sounds at each bin between predicted and observed "
               "deviations from the mean time course (out-of-fold, the jointly chosen layer and alpha), with the "
               "2.5-97.5% band of the same curve when the sounds of the predictions are shuffled; the dotted line "
               "marks sound offset (2 s).")
    return ReportFigure(_slug("time-curves", dataset, model), SECTION, f"r(b) per target: {model}", caption,
                        figure)


def _lags_figure(detail: Any, model: str, dataset: str) -> ReportFigure:
    positions, layers = model_layers(detail)
    profile = detail["lag_profile"].values[positions]  # (layer, lag, target)
    peak = profile.max(axis=1, keepdims=True)
    normalised = np.nanmean(np.divide(profile, peak, out=np.zeros_like(profile), where=peak > 0), axis=2)
    lags = detail["lag"].values
    figure = _new_figure(9.0, 0.3 * len(layers) + 1.8)
    heat, line = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    image = heat.imshow(normalised, aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="upper",
                        extent=(lags[0] - 0.5 * _step(lags), lags[-1] + 0.5 * _step(lags), len(layers) - 0.5, -0.5))
    heat.set_yticks(range(len(layers)), layers, fontsize=7)
    if len(lags) <= 16:
        heat.set_xticks(lags, [f"{1000 * lag:.0f}" for lag in lags], fontsize=7)
    heat.set_xlabel("lag (ms)", fontsize=8)
    heat.set_title("weight norm per lag (each target scaled to its peak, mean over targets)", fontsize=8)
    figure.colorbar(image, ax=heat, shrink=0.8)
    latency = detail["layer_latency"].values[positions]  # (layer, target)
    causal = is_causal(detail)
    median = np.median(latency, axis=1)
    low, high = np.percentile(latency, 25, axis=1), np.percentile(latency, 75, axis=1)
    y = np.arange(len(layers))
    line.errorbar(median, y, xerr=[median - low, high - median], fmt="o-", color=COLOURS[1], markersize=3,
                  linewidth=1, capsize=2)
    line.set_yticks(y, layers, fontsize=7)
    line.invert_yaxis()
    line.set_xlim(lags[0] - _step(lags), lags[-1] + _step(lags))
    line.set_xlabel("latency (s): peak lag, median and IQR over targets", fontsize=8)
    line.set_title("latency per layer" + (" (non-causal model: not a neural latency)" if causal is False else ""),
                   fontsize=8)
    caption = (f"{model} on {dataset}: left, norm over components of each lag's ridge weights in the outer refits "
               "(each layer at its own inner-CV alpha); right, the lag of the peak (latency) per layer.")
    return ReportFigure(_slug("time-lags", dataset, model), SECTION, f"Layer x lag: {model}", caption, figure)


def _step(values: np.ndarray) -> float:
    return float(values[1] - values[0]) if len(values) > 1 else 0.04


def _latency_figure(detail: Any, models: list[str], dataset: str) -> ReportFigure:
    figure = _new_figure(7.0, 3.4)
    ax = figure.subplots()
    for i, model in enumerate(models):
        one = detail.sel(model=model)
        positions, _ = model_layers(one)
        if not positions:
            continue
        latency = one["layer_latency"].values[positions]
        depth = np.linspace(0, 1, len(positions)) if len(positions) > 1 else np.array([0.5])
        label = model + (" (non-causal)" if is_causal(one) is False else "")
        colour = CONTROL if is_control(model) else COLOURS[i % len(COLOURS)]
        ax.plot(depth, np.median(latency, axis=1), marker="o", color=colour, markersize=3, linewidth=1,
                label=label, linestyle="--" if is_control(model) else "-")
    ax.set_xlabel("relative layer depth (input to output)")
    ax.set_ylabel("latency (s), median over targets")
    ax.legend(fontsize=7, ncol=2, frameon=False)
    caption = (f"{dataset}: peak lag of each layer's weights, median over targets. Only causal models give neural "
               "latencies; for non-causal ones the peak also absorbs the model's look-ahead.")
    return ReportFigure(_slug("time-latency", dataset), SECTION, f"Latency per layer: {dataset}", caption, figure)


def _rsa_figure(detail: Any, models: list[str], dataset: str) -> ReportFigure:
    figure = _new_figure(7.0, 3.4)
    ax = figure.subplots()
    times = detail["time"].values
    for i, model in enumerate(models):
        one = detail.sel(model=model)
        positions, names = model_layers(one)
        rho = one["rsa_rho"].values[positions]
        means = np.array([np.nanmean(row) if np.isfinite(row).any() else -np.inf for row in rho])
        if not np.isfinite(means).any():
            continue
        best = int(np.argmax(means))
        colour = CONTROL if is_control(model) else COLOURS[i % len(COLOURS)]
        ax.plot(times, rho[best], color=colour, linewidth=1.2, label=f"{model} {names[best]}")
        ax.plot(times, one["rsa_rho_averaged"].values[positions[best]], color=colour, linewidth=0.8, linestyle=":")
    ax.axhline(0, color="#888", linewidth=0.5)
    ax.set_xlabel("time from onset (s)")
    ax.set_ylabel("Spearman rho with the neural RDM")
    ax.legend(fontsize=7, ncol=2, frameon=False)
    caption = (f"{dataset}: time-resolved RSA. Solid: the layer's RDM in the same bin against the neural RDM of "
               "each bin (pattern over targets); dotted: the layer's time-averaged RDM (0-2 s) against the same "
               "neural RDMs. Each model's best layer (highest mean rho).")
    return ReportFigure(_slug("time-rsa", dataset), SECTION, f"Time-resolved RSA: {dataset}", caption, figure)


def _raw_figures(results: ReportData) -> list[ReportFigure]:
    """Per dataset: each model's R2 of deviations from the mean time course and of raw time courses, beside the
    mean time course alone (records of protocol trf, target all)."""
    rows = aggregates(results.records)
    if rows.empty or "score_raw" not in rows:
        return []
    rows = rows[(rows["protocol"] == "trf") & (rows["metric"] == "regression")]
    figures = []
    for dataset, frame in rows.groupby("dataset", sort=False):
        baseline = frame[frame["selection"] == "none"]["score_raw"]
        models = frame[frame["selection"] != "none"].sort_values("score")
        if models.empty:
            continue
        figure = _new_figure(7.5, 0.28 * len(models) + 1.4)
        ax = figure.subplots()
        y = np.arange(len(models))
        colours = [CONTROL if is_control(m) else COLOURS[0] for m in models["model"]]
        ax.barh(y + 0.2, models["score"], height=0.4, color=colours, label="deviations from the mean time course")
        ax.barh(y - 0.2, models["score_raw"], height=0.4, color=colours, alpha=0.45, label="raw time courses")
        if len(baseline):
            ax.axvline(float(baseline.iloc[0]), color=COLOURS[1], linestyle="--", linewidth=1,
                       label="mean time course alone (raw)")
        ax.set_yticks(y, models["model"], fontsize=7)
        ax.set_xlabel("R2, median over targets")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
        caption = (f"{dataset}, protocol trf: out-of-fold R2 of each model's predicted deviations from the training "
                   "sounds' mean time course (the headline score), of its raw predictions (prediction + mean time "
                   "course), and of the mean time course alone (dashed).")
        figures.append(ReportFigure(_slug("time-raw", dataset), SECTION, f"Beyond the mean time course: {dataset}",
                                    caption, figure))
    return figures
