"""Protocol ``trf``: time-resolved encoding with lagged ridge and nested cross-validation by sound (engine:
:mod:`brainlike.align.trf`; methods.md section 9, records: docs/contracts.md section 7).

Options: ``lags`` (``"0:0.5"`` seconds, negative starts allowed), ``rate`` (Hz, default 25: finer datasets are
averaged into bins of that rate first), ``pca`` (at most K components per layer, default 128, 0 = off) and
``window`` (``"0:2"``: the window of the time-averaged score (e)).

Records: the usual regression keys with ``score`` = R2 of the deviations from the mean time course, plus ``lags``,
``rate``, ``pca``, ``causal``, and per target ``score_raw``, ``score_time_averaged``, ``r`` and ``latency``
(seconds, peak of the reported layer's lag profile; a neural latency only for a causal model); one extra set of
rows with model ``mean-time-course`` (its ``score`` is 0 by construction: it predicts no deviation; its
``score_raw`` is the R2 of the training sounds' mean time course on raw time courses).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from brainlike.align import aggregate as agg
from brainlike.align import trf as engine
from brainlike.align.protocols import Protocol, RegressionInputs, TargetScores, register_protocol
from brainlike.data.neural import format_window, parse_window
from brainlike.errors import ProtocolError

__all__ = ["BASELINE_MODEL", "settings", "parameters", "frame_request", "run", "baseline_records", "PROTOCOL"]

BASELINE_MODEL = "mean-time-course"


def settings(options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The protocol's settings from the user's options (checked)."""
    options = options or {}
    rate = float(options.get("rate") or engine.RATE)
    if not np.isfinite(rate) or rate <= 0:
        raise ProtocolError(f"--rate must be a positive number of Hz, got {options.get('rate')!r}")
    pca = options.get("pca")
    pca = engine.PCA_COMPONENTS if pca is None else int(pca)
    if pca < 0:
        raise ProtocolError(f"--pca must be >= 0 (0 = off), got {pca}")
    lags = engine.parse_lags(options.get("lags") or engine.LAGS)
    window = options.get("window") or engine.WINDOW
    window = parse_window(window) if isinstance(window, str) else tuple(float(w) for w in window)
    return {"lags": lags, "rate": rate, "pca": pca, "window": window}


def parameters(options: dict[str, Any] | None = None) -> dict[str, Any]:
    s = settings(options)
    return {"lags": _text(s["lags"]), "lag_bins": engine.lag_bins(s["lags"], s["rate"]).tolist(), "rate": s["rate"],
            "pca": s["pca"], "alphas": engine.ALPHAS.tolist(), "window": _text(s["window"]),
            "outer": "the stimulus set's folds", "inner": "leave one fold out on the other folds",
            "selection": "joint alpha and layer per target, max(r,0)^2 of pooled inner deviations",
            "score": "max(r,0)^2 of pooled out-of-fold deviations from the training mean time course",
            "zscore": "per training set, over its sounds' response bins", "pca_exact_max": engine.EXACT_PCA_MAX,
            "pca_randomized": dict(engine.RANDOMIZED_PCA), "null": f"{engine.N_NULL} sound shuffles"}


def frame_request(options: dict[str, Any], dataset) -> dict[str, Any]:
    """extract_frames arguments: silence before onset for the longest lag, frames to the end of the response
    (plus any negative lag). Checks the options first, so that bad ones fail before any extraction."""
    s = settings(options)
    times = np.asarray(dataset.times, dtype=np.float64)
    end = float(times[-1] + 1.0 / float(dataset.rate))
    engine.check_lag_window(engine.lag_bins(s["lags"], s["rate"]), round((end - times[0]) * s["rate"]), s["rate"])
    if float(dataset.rate) < s["rate"] * (1 - 1e-6):
        raise ProtocolError(f"{dataset.name} has {float(dataset.rate):g} Hz bins, coarser than --rate {s['rate']:g}")
    # at least the default 0.5 s before onset, so that shorter lag windows reuse the same cached frames
    return {"rate": s["rate"], "pre": max(s["lags"][1], engine.parse_lags(engine.LAGS)[1]),
            "stop": end + max(-s["lags"][0], 0.0)}


def run(inputs: RegressionInputs) -> TargetScores:
    s = settings(inputs.options)
    dataset = engine.at_rate(inputs.dataset, s["rate"])
    frames = inputs.frames
    if frames is None:
        raise ProtocolError("protocol trf needs frame-level activations (extract_frames)")
    if abs(float(frames.rate) - s["rate"]) > 1e-6 * s["rate"]:
        raise ProtocolError(f"{frames.model}: frames at {float(frames.rate):g} Hz for --rate {s['rate']:g}")
    lags = engine.lag_bins(s["lags"], s["rate"])
    responses = dataset.mean_time_courses()
    result = engine.run_trf(engine.FrameLayers(frames, decode=False), frames.bin_times, responses,
                            dataset.times, inputs.folds, lags=lags, rate=s["rate"], pca=s["pca"],
                            backend=inputs.backend, layers=frames.layers, seed=inputs.seed)
    times = np.asarray(dataset.times, dtype=np.float64)
    summary = _summary(result, times, s["window"])
    causal = getattr(frames, "causal", None)
    record_keys = {"lags": _text(s["lags"]), "rate": s["rate"], "pca": s["pca"],
                   "causal": None if causal is None else bool(causal)}
    detail = _detail(result, summary, inputs, dataset, times, s, causal)
    return TargetScores(
        scores=result.scores[None, :], layer_index=result.layer_index, detail=detail,
        target_keys={"r": result.r, "score_raw": result.score_raw,
                     "score_time_averaged": summary["score_time_averaged"], "latency": summary["latency"]},
        record_keys=record_keys,
        overall_keys={"score_raw": float(np.median(result.score_raw)),
                      "score_time_averaged": float(np.median(summary["score_time_averaged"]))},
        extra_records=baseline_records(result, dataset, record_keys))


def _summary(result: engine.TRFResult, times: np.ndarray, window: tuple[float, float]) -> dict[str, np.ndarray]:
    layer_latency = engine.latencies(result.lag_profiles, result.lag_seconds)  # (n_layers, t)
    reported = [agg.mode(list(result.layer_index[:, t])) for t in range(len(result.scores))]
    return {
        "layer_latency": layer_latency,
        "latency": np.array([layer_latency[layer, t] for t, layer in enumerate(reported)]),
        "score_time_averaged": engine.window_score(result.predictions + result.baseline,
                                                   result.observed + result.baseline,
                                                   times, window),
    }


def baseline_records(result: engine.TRFResult, dataset, record_keys: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the mean-time-course baseline: per target and the aggregate (median over targets)."""
    keys = {k: v for k, v in record_keys.items() if k != "causal"}
    common = dict(model=BASELINE_MODEL, dataset=dataset.name, metric="regression", protocol="trf",
                  selection="none", **keys)
    rows = []
    if dataset.n_targets <= agg.PER_TARGET_ROWS_MAX:
        rows = [agg.base_record(**common, target=name, score=0.0, score_raw=float(result.baseline_raw[t]))
                for t, name in enumerate(dataset.target_names)]
    rows.append(agg.base_record(**common, score=0.0, score_raw=float(np.median(result.baseline_raw)),
                                n_targets=dataset.n_targets))
    return [agg.clean(r) for r in rows]


def _detail(result: engine.TRFResult, summary: dict[str, np.ndarray], inputs: RegressionInputs, dataset,
            times: np.ndarray, s: dict[str, Any], causal) -> xr.Dataset:
    layers = np.array(result.layers)
    per_layer = engine.layer_scores(result)
    low, high = engine.null_band(result.predictions, result.observed, seed=inputs.seed)
    data = {
        "score": ("target", result.scores), "r": ("target", result.r), "score_raw": ("target", result.score_raw),
        "baseline_raw": ("target", result.baseline_raw),
        "score_time_averaged": ("target", summary["score_time_averaged"]),
        "latency": ("target", summary["latency"]),
        "chosen_layer": (("fold", "target"), layers[result.layer_index].astype(str)),
        "alpha": (("fold", "target"), result.alpha),
        "alpha_edge": (("fold", "target"), result.alpha_edge),
        "inner_score": (("fold", "alpha_grid", "layer", "target"), result.inner_scores),
        "layer_alpha": (("fold", "layer", "target"), result.layer_alpha),
        "layer_score": (("layer", "target"), per_layer),
        "layer_latency": (("layer", "target"), summary["layer_latency"]),
        "lag_profile": (("layer", "lag", "target"), result.lag_profiles.mean(axis=1)),
        "r_time": (("time", "target"), engine.time_curves(result.predictions, result.observed)),
        "r_time_null_low": (("time", "target"), low),
        "r_time_null_high": (("time", "target"), high),
        "layer_r_time": (("layer", "time", "target"),
                         np.stack([engine.time_curves(p, result.observed) for p in result.layer_predictions])),
        "predictions": (("stimulus", "time", "target"), result.predictions),
        "mean_course": (("stimulus", "time", "target"), result.baseline),
    }
    causal_layers = (getattr(inputs.frames, "info", None) or {}).get("causal_layers", {})
    data["layer_order"] = ("layer", np.arange(len(layers)))
    data["layer_causal"] = ("layer", np.array([int(bool(causal_layers.get(str(layer), causal)))
                                               if causal_layers.get(str(layer), causal) is not None else -1
                                               for layer in layers]))
    coords = {"target": dataset.target_names, "fold": np.arange(result.alpha.shape[0]), "layer": layers,
              "alpha_grid": engine.ALPHAS, "lag": result.lag_seconds, "time": times,
              "stimulus": dataset.stimulus_ids}
    if inputs.categories is not None:
        names, curves = engine.category_curves(result.predictions, result.observed, inputs.categories)
        data["r_time_category"] = (("category", "time", "target"), curves)
        data["layer_r_time_category"] = (("layer", "category", "time", "target"), np.stack(
            [engine.category_curves(p, result.observed, inputs.categories)[1] for p in result.layer_predictions]))
        coords["category"] = names
    detail = xr.Dataset(data, coords=coords, attrs={
        "model": inputs.frames.model, "dataset": dataset.name, "protocol": "trf", "metric": "regression",
        "causal": -1 if causal is None else int(bool(causal)), "lags": _text(s["lags"]), "rate": s["rate"],
        "pca": s["pca"], "window": _text(s["window"]), "ridge_form": result.form,
        "pca_solver": json.dumps(result.pca_solver)})
    for name in detail.data_vars:  # the report's layer profiles show the per-layer R2 only
        if "layer" in detail[name].dims and name != "layer_score":
            detail[name].attrs["layer_profile"] = "no"
    detail["layer_score"].attrs["long_name"] = "trf R2 per layer (own alpha)"
    return detail


def _text(pair: tuple[float, float]) -> str:
    return format_window(*pair)


PROTOCOL = register_protocol(Protocol(
    name="trf", selection="nested-cv", run=run, parameters=parameters,
    description="time-resolved lagged ridge (methods 9): per-fit z-score and PCA, lags 0:0.5 s, deviations from "
                "the mean time course, joint alpha and layer by nested CV over sounds",
    time_resolved=True, options=("lags", "rate", "pca", "window"), frame_request=frame_request))
