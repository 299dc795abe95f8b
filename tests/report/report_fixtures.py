"""A results folder in the contracts.md format, written by the tests themselves (small, synthetic, known numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

COMPONENTS = ["lowfreq", "highfreq", "envsounds", "pitch", "speech", "music"]
MODELS = ["spectrotemporal", "melspec", "random-features", "melspec@random", "whisper-base"]
# per-component R2 of each model (rows follow MODELS, columns COMPONENTS)
R2 = np.array([
    [0.80, 0.70, 0.60, 0.40, 0.30, 0.35],
    [0.75, 0.60, 0.55, 0.35, 0.25, 0.30],
    [0.05, 0.02, 0.01, 0.00, 0.03, 0.04],
    [0.50, 0.40, 0.30, 0.20, 0.10, 0.15],
    [0.85, 0.75, 0.70, 0.55, 0.80, 0.45],
])
RSA = np.array([0.30, 0.25, 0.01, 0.12, 0.45])
DOWNSTREAM = {  # task -> per-model accuracy (mean over folds); ordered like MODELS
    "esc10": [0.60, 0.55, 0.12, 0.30, 0.80],
    "fsdd": [0.50, 0.60, 0.10, 0.25, 0.90],
    "ravdess": [0.30, 0.35, 0.13, 0.20, 0.55],
}
LAYERS = {"spectrotemporal": ["avgpool"], "melspec": ["mel128", "mel64", "mfcc"],
          "random-features": ["features"], "melspec@random": ["mel128", "mel64", "mfcc"],
          "whisper-base": ["conv", "block1", "block2", "block3"]}


def record(model: str, dataset: str, metric: str, selection: str, target: str, score: float, **extra) -> dict:
    row = {"model": model, "dataset": dataset, "metric": metric, "protocol": "pepino2025", "selection": selection,
           "target": target, "score": float(score), "sem": None, "layer": LAYERS[model][-1]}
    row.update(extra)
    return row


def brain_records() -> list[dict]:
    rows = []
    for i, model in enumerate(MODELS):
        for j, component in enumerate(COMPONENTS):
            rows.append(record(model, "nh2015-components", "regression", "nested-cv", component, R2[i, j],
                               layer=LAYERS[model][j % len(LAYERS[model])]))
        rows.append(record(model, "nh2015-components", "regression", "nested-cv", "all", np.median(R2[i])))
        rows.append(record(model, "nh2015-components", "rsa", "layer-max", "all", RSA[i]))
        rows.append(record(model, "nh2015-components", "rsa", "cv", "all", RSA[i] - 0.02))
        # a voxel dataset with subjects and ROIs: aggregate with an SEM, one row per ROI
        rows.append(record(model, "toy-voxels", "regression", "nested-cv", "all", R2[i].mean(), sem=0.02,
                           n_subjects=3))
        for k, roi in enumerate(["Primary", "Anterior", "Lateral", "Posterior"]):
            rows.append(record(model, "toy-voxels", "regression", "nested-cv", "all", R2[i].mean() - 0.05 * k,
                               sem=0.01, roi=roi))
    for step, rho in ((0, 0.20), (1000, 0.35), (2000, 0.45)):  # checkpoint curves, per layer
        for layer, offset in (("block2", 0.0), ("block4", 0.05)):
            row = record("melspec", "nh2015-components", "rsa", "layer", "all", rho + offset)
            row.update(model=f"mae:runs/tiny/step_{step}.pt", layer=layer)
            rows.append(row)
    return rows


def downstream_records() -> list[dict]:
    rows = []
    for task, scores in DOWNSTREAM.items():
        for model, score in zip(MODELS, scores):
            for fold, delta in zip(range(1, 6), (-0.02, -0.01, 0.0, 0.01, 0.02)):  # fold mean = score
                rows.append({"model": model, "task": task, "probe": "linear", "fold": fold, "metric": "accuracy",
                             "score": score + delta})
    return rows


def provenance() -> dict:
    return {"brainlike": "0.1.0", "python": "3.11.2", "versions": {"numpy": "2.4.0", "torch": "2.13.0"},
            "command": ["brainlike", "score", *MODELS], "seeds": {"random": 0},
            "protocol": {"pepino2025": {"alphas": [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 50], "folds": 5}},
            "data": {"natsound165": "ab" * 32, "nh2015-components": "cd" * 32},
            "models": [{"name": m, "layers": LAYERS[m], "weights_id": "none"} for m in MODELS]}


def write_results(folder: Path, *, downstream: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in brain_records()))
    if downstream:
        (folder / "downstream.jsonl").write_text("".join(json.dumps(r) + "\n" for r in downstream_records()))
    (folder / "provenance.json").write_text(json.dumps(provenance()))
    return folder




TRF_MODELS = {"whisper-base": True, "melspec@random": False}  # model -> whether its frames drive the responses


def write_trf_results(folder: Path) -> Path:
    """A time-resolved results folder made by the real trf protocol and time-resolved RSA on synthetic frames
    (a planted lag filter on one model's first layer; the other model is noise) and a synthetic dataset."""
    import sys

    import xarray as xr

    from brainlike.align.rsa_time import rsa_time_records
    from brainlike.align.score import regression
    from brainlike.data.neural import NeuralDataset
    from brainlike.extract.frames import FrameActivations
    from brainlike.results import Results, merge_details

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
    from trf_literal import synthetic_problem

    records, details = [], []
    dataset = None
    for seed, (model, drives) in enumerate(TRF_MODELS.items()):
        problem = synthetic_problem(n_stimuli=40, n_features=6, n_layers=3, n_targets=3, seed=11)
        if not drives:  # another model's frames: unrelated to the responses
            problem["features"] = synthetic_problem(n_stimuli=40, n_features=6, n_layers=3, seed=12 + seed)["features"]
        ids = [f"stim{i}" for i in range(40)]
        if dataset is None:
            dataset = NeuralDataset("toy-ecog", xr.DataArray(
                problem["responses"][..., None], dims=("stimulus", "time", "target", "repetition"),
                coords={"stimulus": ids, "time": problem["times"], "target": ["c01", "c02", "c03"],
                        "repetition": [0]}), kind="components")
        layers = ["conv", "block1", "block2"]
        frames = FrameActivations(model, layers, dict(zip(layers, problem["features"])), problem["frame_times"],
                                  25.0, ids, causal=drives, key="synthetic",
                                  info={"causal_layers": {layer: drives for layer in layers}})
        rows, detail = regression(frames, dataset, problem["folds"], "trf", frames=frames,
                                  categories=["speech" if i % 2 else "music" for i in range(40)],
                                  options={"lags": "0:0.2", "pca": 0})
        rsa_rows, rsa_detail = rsa_time_records(frames, dataset, rate=25.0, window=(0.0, 0.64))
        records += rows + rsa_rows
        details.append(xr.merge([detail, rsa_detail.expand_dims(model=[model])], combine_attrs="override"))
    unique = list({json.dumps(r, sort_keys=True): r for r in records}.values())
    Results(unique, detail=merge_details(details), provenance={"protocol": "trf"}).save(folder)
    return folder


def browse(html: Path, selector: str = "figure.report-figure", screenshot: Path | None = None
           ) -> tuple[list[dict], list[str]]:
    """Open a report page in Debian chromium (the test is skipped where it or playwright is missing); return the
    figures matched by ``selector`` (id, decoded, size, display, visibility; each scrolled to and checked visible)
    and the console errors and warnings."""
    import pytest

    playwright = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    messages: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
        page.on("requestfailed", lambda r: messages.append(f"requestfailed: {r.url}"))
        page.goto(html.as_uri(), wait_until="load")
        figures = page.evaluate("""(selector) => Array.from(document.querySelectorAll(selector)).map(f => {
            const img = f.querySelector('img'); const box = img.getBoundingClientRect();
            return {id: f.id, complete: img.complete, natural: img.naturalWidth, width: box.width,
                    height: box.height, display: getComputedStyle(img).display,
                    visibility: getComputedStyle(img).visibility};
        })""", selector)
        for figure in figures:
            page.locator(f"#{figure['id']} img").scroll_into_view_if_needed()
            assert page.locator(f"#{figure['id']} img").is_visible(), figure
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return figures, messages
