"""The brain-vs-downstream link: correlations against scipy, bootstrap CIs, inputs from results folders, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from brainlike.downstream import link as L
from brainlike.errors import BrainlikeError

MODELS = ["m1", "m2", "m3", "m4", "m5", "m6"]
BRAIN = {"m1": 0.10, "m2": 0.25, "m3": 0.22, "m4": 0.40, "m5": 0.38, "m6": 0.55}
TASKS = {"t1": {"m1": 0.2, "m2": 0.4, "m3": 0.5, "m4": 0.6, "m5": 0.7, "m6": 0.9},
         "t2": {"m1": 0.9, "m2": 0.3, "m3": 0.5, "m4": 0.2, "m5": 0.6, "m6": 0.4}}


def test_correlate_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = 0.6 * x + rng.normal(size=12)
    out = L.correlate(x, y, n_bootstrap=500)
    r, p = stats.pearsonr(x, y)
    rho, rho_p = stats.spearmanr(x, y)
    assert out["pearson_r"] == pytest.approx(r) and out["pearson_p"] == pytest.approx(p)
    assert out["spearman_rho"] == pytest.approx(rho) and out["spearman_p"] == pytest.approx(rho_p)
    assert out["pearson_ci_low"] < r < out["pearson_ci_high"]
    assert out["spearman_ci_low"] < rho < out["spearman_ci_high"]
    assert out["slope"] == pytest.approx(stats.linregress(x, y).slope)


def test_bootstrap_ci_of_a_perfect_line_is_one_and_undefined_cases_are_none():
    x = np.arange(8.0)
    out = L.correlate(x, 3 * x + 1, n_bootstrap=200)
    assert out["pearson_r"] == pytest.approx(1.0)
    assert out["pearson_ci_low"] == pytest.approx(1.0) and out["spearman_ci_high"] == pytest.approx(1.0)
    assert L.correlate(x[:2], x[:2])["pearson_r"] is None  # fewer than 3 models
    assert L.correlate(x, np.ones(8))["spearman_rho"] is None  # constant scores


def _results(tmp_path):
    brain = tmp_path / "brain"
    brain.mkdir()
    rows = [{"model": m, "dataset": "nh2015-components", "metric": "regression", "protocol": "pepino2025",
             "selection": "nested-cv", "target": "all", "score": s, "sem": None, "layer": "x"}
            for m, s in BRAIN.items()]
    rows += [{**r, "target": "speech", "score": 1 - r["score"]} for r in rows]  # a per-target brain score
    rows += [{**rows[0], "subject": "s1", "score": 0.9}]  # single-subject rows are left out
    (brain / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    down = tmp_path / "down"
    down.mkdir()
    recs = [{"model": m, "task": t, "probe": "linear", "fold": None, "score": s}
            for t, row in TASKS.items() for m, s in row.items()]
    recs += [{"model": m, "task": "t1", "probe": "linear", "fold": "1", "score": 0.0} for m in MODELS]
    recs += [{"model": "m1", "task": "global", "probe": "linear", "fold": None, "score": 99.0}]  # recomputed
    (down / "downstream.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return brain, down


def test_link_correlates_each_brain_score_with_global_and_every_task(tmp_path):
    rows = L.link(L.read_inputs(_results(tmp_path)), n_bootstrap=300)
    assert [(r["brain_target"], r["downstream"]) for r in rows] == [("all", "global"), ("all", "t1"), ("all", "t2"),
                                                                    ("speech", "global"), ("speech", "t1"),
                                                                    ("speech", "t2")]
    assert rows[3]["pearson_r"] == pytest.approx(-rows[0]["pearson_r"])
    x = np.array([BRAIN[m] for m in MODELS])
    t1, t2 = (np.array([TASKS[t][m] for m in MODELS]) for t in ("t1", "t2"))
    glob = ((t1 - t1.mean()) / t1.std() + (t2 - t2.mean()) / t2.std()) / 2
    assert rows[0]["pearson_r"] == pytest.approx(stats.pearsonr(x, glob)[0])
    assert rows[1]["pearson_r"] == pytest.approx(stats.pearsonr(x, t1)[0])
    assert rows[2]["spearman_rho"] == pytest.approx(stats.spearmanr(x, t2)[0])
    assert rows[0]["models"] == MODELS and rows[0]["brain_metric"] == "regression"
    table = L.table1(rows)
    assert table.splitlines()[0] == "| brain score | global | t1 | t2 |"
    assert f"{rows[1]['pearson_r']:.2f}" in table and "[speech]" in table.splitlines()[3]


def test_link_command_writes_table_rows_and_a_plot_per_pair(tmp_path, capsys):
    from brainlike.cli import main

    brain, down = _results(tmp_path)
    out = tmp_path / "link"
    assert main(["-q", "link", str(brain), str(down), "--json", "--bootstrap", "100", "--out", str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6
    assert len(list((out / "link_plots").glob("*.png"))) == 6
    assert (out / "link_table.md").read_text().startswith("| brain score |")
    assert len((out / "link.jsonl").read_text().splitlines()) == 6


def test_link_without_downstream_records_is_a_clear_error(tmp_path):
    brain, _ = _results(tmp_path)
    with pytest.raises(BrainlikeError, match="no downstream task scores"):
        L.link(L.read_inputs([brain]))
    with pytest.raises(BrainlikeError, match="does not exist"):
        L.read_inputs([tmp_path / "nope"])


def test_voxel_level_targets_are_left_out_but_their_aggregate_kept():
    rows = [{"model": m, "dataset": "voxels", "metric": "regression", "protocol": "p", "selection": "s",
             "target": f"v{k}", "score": 0.1} for m in MODELS for k in range(L.MAX_TARGETS + 1)]
    rows += [{"model": m, "dataset": "voxels", "metric": "regression", "protocol": "p", "selection": "s",
              "target": "all", "score": 0.2} for m in MODELS]
    assert [k[-1] for k in L.brain_table(rows)] == ["all"]
