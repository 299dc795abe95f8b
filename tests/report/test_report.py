"""The report: statistics against independent references, figures and tables from a results folder written by the
test itself (conftest.py), errors, and the HTML page."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainlike.cli import main
from brainlike.report import ReportError, load_results, make_report, report_tables
from brainlike.report.stats import bootstrap_median_ci, correlation, global_downstream

from report_fixtures import DOWNSTREAM, MODELS, R2, RSA, browse, write_results

EXPECTED_FIGURES = {
    "ranking-nh2015-components", "ranking-toy-voxels", "layers-nh2015-components-score",
    "layers-nh2015-components-chosen", "targets-nh2015-components-regression-nested-cv",
    "roi-toy-voxels-regression-nested-cv", "brain-vs-downstream", "checkpoints-nh2015-components",
}


def test_bootstrap_median_interval():
    assert bootstrap_median_ci(np.full(6, 0.3)) == (0.3, 0.3)
    values = np.random.default_rng(1).normal(0.5, 0.1, 200)
    low, high = bootstrap_median_ci(values)
    assert low < np.median(values) < high
    assert 0.005 < high - low < 0.05  # about 2 x 1.25 x 0.1 x 1.96 / sqrt(200) = 0.035
    assert bootstrap_median_ci(values, seed=3) != (low, high) and bootstrap_median_ci(values) == (low, high)
    assert np.isnan(bootstrap_median_ci(np.array([1.0]))[0])


def test_correlation_matches_scipy_and_bounds_its_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = 0.7 * x + rng.normal(scale=0.5, size=12)
    out = correlation(x, y)
    assert out["n"] == 12
    assert out["r"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert out["p"] == pytest.approx(stats.pearsonr(x, y).pvalue, abs=1e-12)
    assert out["rho"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert -1 <= out["low"] < out["r"] < out["high"] <= 1
    line = correlation(x, 2 * x + 1)
    assert line["r"] == pytest.approx(1) and line["low"] == pytest.approx(1) and line["high"] == pytest.approx(1)
    assert np.isnan(correlation(x[:2], y[:2])["r"]) and np.isnan(correlation(x, np.ones(12))["r"])


def test_global_downstream_score_by_hand():
    rows = [{"model": m, "task": t, "probe": "linear", "fold": None, "score": s}
            for t, scores in {"a": [0.2, 0.4, 0.6], "b": [0.9, 0.5, 0.1]}.items()
            for m, s in zip(["m1", "m2", "m3"], scores)]
    z = 1 / np.sqrt(2 / 3)  # (0.6 - 0.4) / population std of (0.2, 0.4, 0.6)
    expected = {"m1": (-z + z) / 2, "m2": 0.0, "m3": (z - z) / 2}
    got = global_downstream(pd.DataFrame(rows))
    assert got.to_dict() == pytest.approx(expected, abs=1e-12)
    folds = [{"model": m, "task": "a", "probe": "linear", "fold": f, "score": s + d}
             for m, s in zip(["m1", "m2"], [0.2, 0.8]) for f, d in ((1, -0.1), (2, 0.1))]
    assert global_downstream(pd.DataFrame(folds)).to_dict() == pytest.approx({"m1": -1.0, "m2": 1.0})


def test_tables_reproduce_the_records(results_dir):
    tables = report_tables(load_results(results_dir))
    ranking = tables["ranking"]
    regression = ranking[(ranking["dataset"] == "nh2015-components") & (ranking["metric"] == "regression")]
    order = np.argsort(-np.median(R2, axis=1))
    assert regression["model"].tolist() == [MODELS[i] for i in order]
    assert regression["rank"].tolist() == [1, 2, 3, 4, 5]
    assert regression["score"].to_numpy() == pytest.approx(np.median(R2, axis=1)[order])
    assert len(tables["per_target"]) == len(MODELS) * 6
    tasks = pd.DataFrame(DOWNSTREAM, index=MODELS)
    z = (tasks - tasks.mean()) / tasks.std(ddof=0)
    glob = tables["downstream_global"].set_index("model")["global"]
    assert glob.loc[MODELS].to_numpy() == pytest.approx(z.mean(axis=1).to_numpy(), abs=1e-9)
    link = tables["brain_vs_downstream"].set_index(["dataset", "brain"])
    r = link.loc[("nh2015-components", "rsa / layer-max"), "r"]
    assert r == pytest.approx(stats.pearsonr(RSA, z.mean(axis=1).to_numpy()).statistic, abs=1e-9)
    assert link.loc[("nh2015-components", "regression / nested-cv"), "n"] == len(MODELS)


def test_report_writes_html_figures_and_tables(results_dir, tmp_path):
    report = make_report(results_dir, out=tmp_path / "report", title="Toy study")
    assert set(report.slugs) == EXPECTED_FIGURES
    assert report.html == tmp_path / "report" / "report.html"
    for slug in report.slugs:
        png = (tmp_path / "report" / "figures" / f"{slug}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        root = ET.fromstring((tmp_path / "report" / "figures" / f"{slug}.svg").read_bytes())
        assert root.tag.endswith("svg")
    for name in ("ranking", "per_target", "downstream_tasks", "downstream_global", "brain_vs_downstream"):
        csv = pd.read_csv(tmp_path / "report" / "tables" / f"{name}.csv")
        parquet = pd.read_parquet(tmp_path / "report" / "tables" / f"{name}.parquet")
        assert len(csv) == len(parquet) > 0
    html = report.html.read_text()
    assert html.count('<figure id="fig-') == len(EXPECTED_FIGURES)
    assert html.count("data:image/svg+xml;base64,") == len(EXPECTED_FIGURES)
    assert not re.search(r"""(src|href)=["'](https?:|//)""", html), "the page must not load anything external"
    assert "<script" not in html
    for text in ("Toy study", "Provenance", "nh2015-components", "cd" * 32, "2.13.0", "0.725"):
        assert text in html


def test_report_without_downstream_or_checkpoints(tmp_path):
    folder = write_results(tmp_path / "results", downstream=False)
    rows = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if "step_" not in r["model"]))
    report = make_report(folder)
    assert "brain-vs-downstream" not in report.slugs and not any(s.startswith("checkpoints") for s in report.slugs)
    assert report.html == folder / "report" / "report.html"


def test_cli_report(results_dir, capsys):
    assert main(["-q", "report", str(results_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(results_dir / "report" / "report.html")


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("", "holds no records.jsonl or downstream.jsonl"),
    ('{"model": "m"}\n', "line 1 lacks required key(s)"),
    ("not json\n", "line 1 is not JSON"),
])
def test_bad_results_folders(tmp_path, capsys, content, message):
    folder = tmp_path / "results"
    if content is not None:
        folder.mkdir()
        if content:
            (folder / "records.jsonl").write_text(content)
    with pytest.raises(ReportError, match=re.escape(message)):
        make_report(folder)
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.browser
def test_report_in_headless_chromium(results_dir, tmp_path):
    """The page opens in Debian chromium without console errors; every figure is present, decoded and visible."""
    report = make_report(results_dir, out=tmp_path / "report")
    shot = tmp_path / "report.png"
    figures, messages = browse(report.html, screenshot=shot)
    assert messages == []
    assert {f["id"] for f in figures} == {f"fig-{s}" for s in EXPECTED_FIGURES}
    for figure in figures:
        assert figure["complete"] and figure["natural"] > 100, figure
        assert figure["width"] > 100 and figure["height"] > 100, figure
        assert figure["display"] != "none" and figure["visibility"] == "visible", figure
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_checkpoint_curves_per_layer_from_layer_scores(tmp_path):
    """Checkpoints named .../step_N: one curve for the layer-max score and one per layer of ``layer_scores``."""
    from brainlike.report.figures import checkpoint_figures

    folder = tmp_path / "results"
    folder.mkdir()
    rho = {0: {"block2": 0.20, "block4": 0.21}, 1000: {"block2": 0.30, "block4": 0.42}, 5000: {"block2": 0.33, "block4": 0.50}}
    rows = [{"model": f"mae:runs/tiny/checkpoints/step_{step}", "dataset": "nh2015-components", "metric": "rsa",
             "protocol": "pepino2025", "selection": "layer-max", "target": "all", "score": max(layers.values()),
             "sem": None, "layer": max(layers, key=layers.get), "layer_scores": layers} for step, layers in rho.items()]
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (figure,) = checkpoint_figures(load_results(folder))
    axes = [ax for ax in figure.figure.axes if ax.get_lines()]
    curves = {ax.get_title(): {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
                               for line in ax.get_lines()} for ax in axes}
    family = "mae:runs/tiny/checkpoints/step*"
    assert curves["rsa / layer-max"] == {family: ([0, 1000, 5000], [0.21, 0.42, 0.50])}
    assert curves["rsa / per layer"] == {f"{family} block2": ([0, 1000, 5000], [0.20, 0.30, 0.33]),
                                         f"{family} block4": ([0, 1000, 5000], [0.21, 0.42, 0.50])}
