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
    text = (out / "link_table.md").read_text()
    assert text.startswith("## Global score") and "\n| brain score | global | t1 | t2 |" in text
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


# --------------------------------------------------------------------------------------------------------------------
# Family bootstrap, Benjamini-Hochberg, model subsets


def _slow_family_ci(x, y, groups, n_bootstrap, seed, level=0.95):
    """Reference: the resample written out (each drawn family's models repeated), scipy's Pearson and Spearman."""
    labels = sorted(set(groups))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(labels), size=(n_bootstrap, len(labels)))
    rs, rhos = [], []
    for row in draws:
        idx = [i for f in row for i in range(len(x)) if groups[i] == labels[f]]
        xs, ys = np.asarray(x, dtype=np.float64)[idx], np.asarray(y, dtype=np.float64)[idx]
        if np.ptp(xs) == 0 or np.ptp(ys) == 0:
            continue
        rs.append(stats.pearsonr(xs, ys)[0])
        rhos.append(stats.spearmanr(xs, ys)[0])
    tail = (1 - level) / 2 * 100
    return (*np.percentile(rs, [tail, 100 - tail]), *np.percentile(rhos, [tail, 100 - tail]))


def test_family_bootstrap_matches_a_slow_reference_with_ties():
    from brainlike.align.stats import family_bootstrap_ci

    rng = np.random.default_rng(3)
    groups = np.array(["a", "a", "a", "b", "c", "c", "d", "e", "e", "e", "f", "g"])
    x = np.round(rng.normal(size=12), 1)  # rounded: ties within and across families
    x[4] = x[0]
    y = np.round(0.7 * x + rng.normal(size=12), 1)
    y[9] = y[3]
    fast = family_bootstrap_ci(x, y, groups, n_bootstrap=400, seed=5)
    slow = _slow_family_ci(x, y, list(groups), 400, 5)
    assert [fast[k] for k in ("pearson_ci_low", "pearson_ci_high", "spearman_ci_low", "spearman_ci_high")] == \
        pytest.approx(slow, abs=1e-9)


def test_singleton_families_reproduce_the_model_bootstrap():
    """With one model per family (labels sorting in model order) the family draws are the model draws."""
    from brainlike.align.stats import correlate

    rng = np.random.default_rng(1)
    x = rng.normal(size=15)
    y = x + rng.normal(size=15)
    out = correlate(x, y, n_bootstrap=300, seed=2, groups=np.array([f"m{i:02d}" for i in range(15)]))
    assert out["n_families"] == 15
    for name in ("pearson", "spearman"):
        for end in ("low", "high"):
            assert out[f"{name}_family_ci_{end}"] == pytest.approx(out[f"{name}_ci_{end}"], abs=1e-12)


def test_family_ci_is_wider_when_the_link_is_carried_by_families():
    """Planted: three families; within each the brain and task scores move together and the families differ a lot.
    Three independent draws make the family bootstrap far less sure than the 30 models suggest."""
    from brainlike.align.stats import correlate

    rng = np.random.default_rng(0)
    groups = np.repeat(["f1", "f2", "f3"], 10)
    centre = np.repeat([0.0, 1.0, 5.0], 10)
    x = centre + 0.1 * rng.normal(size=30)
    y = centre + 0.1 * rng.normal(size=30)
    out = correlate(x, y, n_bootstrap=1000, seed=0, groups=groups)
    assert out["pearson_r"] > 0.99 and out["n_families"] == 3
    model_width = out["pearson_ci_high"] - out["pearson_ci_low"]
    family_width = out["pearson_family_ci_high"] - out["pearson_family_ci_low"]
    assert model_width < 0.02 and family_width > 10 * model_width


def test_benjamini_hochberg_by_hand_and_against_scipy():
    from brainlike.align.stats import benjamini_hochberg

    # m = 5; sorted p: .001 .008 .039 .041 .20 -> m p / rank: .005 .020 .065 .05125 .20; running min from the top:
    # .005 .020 .05125 .05125 .20
    p = np.array([0.039, 0.001, 0.20, 0.008, 0.041])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.05125, 0.005, 0.20, 0.020, 0.05125])
    rng = np.random.default_rng(0)
    many = np.concatenate([rng.uniform(0, 0.01, 20), rng.uniform(0, 1, 80)])
    np.testing.assert_allclose(benjamini_hochberg(many), stats.false_discovery_control(many), rtol=1e-12)
    with_nan = np.array([0.01, np.nan, 0.04])
    q = benjamini_hochberg(with_nan)
    assert np.isnan(q[1]) and q[[0, 2]] == pytest.approx([0.02, 0.04])  # m = 2
    assert benjamini_hochberg(np.array([0.9, 0.95])).max() <= 1.0


def _subset_inputs():
    """Trained models a-e, their twins, and the melspec baseline: brain scores and two tasks."""
    trained = ["whisper-base", "whisper-tiny.en", "crepe-full", "yamnet", "soundnet"]
    twins = [m + "@random" for m in trained]
    models = trained + twins + ["melspec"]
    rng = np.random.default_rng(4)
    brain = dict(zip(models, rng.uniform(0, 1, len(models))))
    tasks = {t: dict(zip(models, rng.uniform(0, 1, len(models)))) for t in ("t1", "t2")}
    brain_rows = [{"model": m, "dataset": "d", "metric": "regression", "protocol": "p", "selection": "s",
                   "target": target, "score": v + shift, "sem": None, "layer": "x"} for m, v in brain.items()
                  for target, shift in (("all", 0.0), ("c1", 0.1), ("c2", -0.2))]
    brain_rows += [{**r, "target": "c2", "score": rng.uniform()} for r in brain_rows if r["target"] == "all"]
    down = [{"model": m, "task": t, "probe": "linear", "fold": None, "score": s}
            for t, row in tasks.items() for m, s in row.items()]
    return trained, twins, brain, tasks, L.LinkInputs(brain_rows, down, ["test"])


def test_subsets_select_their_models_and_recompute_the_global_score():
    trained, twins, brain, tasks, inputs = _subset_inputs()
    rows = L.link(inputs, n_bootstrap=200, subsets=["all", "trained", "twins"])
    glob = {r["subset"]: r for r in rows if r["downstream"] == "global" and r["brain_target"] == "all"}
    assert glob["all"]["models"] == trained + twins + ["melspec"]
    assert glob["trained"]["models"] == trained and glob["twins"]["models"] == twins
    for subset, models in (("trained", trained), ("twins", twins)):
        t1, t2 = (np.array([tasks[t][m] for m in models]) for t in ("t1", "t2"))
        z = ((t1 - t1.mean()) / t1.std() + (t2 - t2.mean()) / t2.std()) / 2  # z-scores within the subset
        assert glob[subset]["downstream_scores"] == pytest.approx(list(z))
        assert glob[subset]["pearson_r"] == pytest.approx(stats.pearsonr([brain[m] for m in models], z)[0])
    assert glob["all"]["n_families"] == 5 and glob["trained"]["families"][:2] == ["whisper", "whisper"]
    assert glob["twins"]["families"] == ["whisper", "whisper", "crepe", "yamnet", "soundnet"]


def test_fdr_runs_across_tasks_x_targets_within_each_subset():
    from brainlike.align.stats import benjamini_hochberg

    *_, inputs = _subset_inputs()
    rows = L.link(inputs, n_bootstrap=100, subsets=["all", "trained"])
    for subset in ("all", "trained"):
        cells = [r for r in rows if r["subset"] == subset and r["downstream"] != "global"
                 and r["brain_target"] != "all"]
        assert len(cells) == 2 * 2  # tasks t1, t2 x targets c1, c2
        q = benjamini_hochberg(np.array([r["pearson_p"] for r in cells]))
        assert [r["pearson_q"] for r in cells] == pytest.approx(list(q))
    assert all(r["pearson_q"] is None for r in rows if r["downstream"] == "global" or r["brain_target"] == "all")
    text = L.fdr_table(rows, "trained")
    assert "| t1 |" in text and "of 4 cells at FDR" in text


def test_model_families_and_kinds():
    assert L.model_family("musicnn-vgg-msd@random") == L.model_family("musicnn-mtt") == "musicnn"
    assert L.model_family("yamnet@random") == "yamnet" and L.model_family("hf:x/y") == "hf:x/y"
    assert [L.model_kind(m) for m in ("yamnet", "yamnet@random", "melspec", "random-features", "spectrotemporal")] \
        == ["trained", "twin", "baseline", "baseline", "baseline"]
    with pytest.raises(BrainlikeError, match="unknown model subset"):
        L.subset_models(["yamnet"], "pretrained")


def test_same_network_twins_count_once():
    models = ["musicnn-mtt", "musicnn-mtt@random", "musicnn-msd@random", "musicnn-vgg-msd@random", "yamnet@random"]
    assert L.subset_models(models, "twins") == ["musicnn-mtt@random", "musicnn-vgg-msd@random", "yamnet@random"]
    assert L.subset_models(models, "all") == ["musicnn-mtt", "musicnn-mtt@random", "musicnn-vgg-msd@random",
                                              "yamnet@random"]
    # alone, a duplicate twin stays
    assert L.subset_models(["musicnn-msd@random"], "twins") == ["musicnn-msd@random"]


@pytest.mark.parametrize("twin, same", sorted(L.SAME_NETWORK_TWINS.items()))
def test_declared_same_network_twins_are_one_network(twin, same):
    """The declaration holds: both twins have identical parameters and buffers (and a different model does not)."""
    torch = pytest.importorskip("torch")
    from brainlike.models.registry import load_model

    first, second = load_model(twin), load_model(same)
    a, b = first.module.state_dict(), second.module.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = load_model("musicnn-vgg-mtt@random" if "vgg" not in twin else "musicnn-mtt@random").module.state_dict()
    assert list(other) != list(a)


def test_link_command_with_subsets(tmp_path, capsys):
    from brainlike.cli import main

    *_, inputs = _subset_inputs()
    brain, down = tmp_path / "brain", tmp_path / "down"
    for folder, name, rows in ((brain, "records.jsonl", inputs.brain), (down, "downstream.jsonl", inputs.downstream)):
        folder.mkdir()
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "link"
    assert main(["-q", "link", str(brain), str(down), "--subsets", "all", "trained", "twins", "--bootstrap", "50",
                 "--no-plots", "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["subset"] for r in rows} == {"all", "trained", "twins"}
    text = (out / "link_table.md").read_text()
    assert "CI families" in text and "### trained models" in text and "Benjamini-Hochberg FDR (trained models)" in text
    assert not (out / "link_plots").exists()


def test_link_table_lists_inputs_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "brain").mkdir()
    L.write_link([], "link", [str(tmp_path / "brain" / "x.jsonl"), "/elsewhere/y"], plots=False)
    assert (tmp_path / "link" / "link_table.md").read_text().endswith("Inputs: brain/x.jsonl, /elsewhere/y\n")
