"""``brainlike compare``: the batched statistics against slow loops and scipy, calibration on null simulations,
power on a planted difference, and the command on real results."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from brainlike.align.compare import (Aggregate, Draws, compare_pair, resampled_scores, swapped_scores)
from brainlike.align.stats import benjamini_hochberg
from compare_sim import p_values, population_r2, simulate_predictions

NULL_SIMULATIONS = 1000
PLANTED = (3.0, 1.0)
"""Signal strengths of the planted difference: population R2 0.45 vs 0.25 (a difference of 0.20) with independent
prediction noise, the hardest case for a paired test."""


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, size=10), [1.0, 0.0]])
    np.testing.assert_allclose(benjamini_hochberg(p), false_discovery_control(p, method="bh"), rtol=1e-12)
    with_nan = np.array([0.01, np.nan, 0.04, 0.03])
    q = benjamini_hochberg(with_nan)
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3]], false_discovery_control([0.01, 0.04, 0.03], method="bh"))


def pooled_r2(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = []
    for t in range(y.shape[1]):
        r = np.corrcoef(pred[:, t], y[:, t])[0, 1]
        out.append(max(r, 0.0) ** 2)
    return np.array(out)


@pytest.mark.numerics
def test_resampled_and_swapped_scores_match_slow_loops():
    rng = np.random.default_rng(1)
    n, t = 50, 4
    y = rng.standard_normal((n, t)) + 5
    pa = 0.6 * y + rng.standard_normal((n, t))
    pb = 0.3 * y + rng.standard_normal((n, t)) - 2
    draws = Draws.make(n, 1, 7, 7, seed=3)
    fast = resampled_scores(draws.counts, pa, y)
    for d in range(7):
        rows = np.repeat(np.arange(n), draws.counts[d].astype(int))
        np.testing.assert_allclose(fast[d], pooled_r2(pa[rows], y[rows]), atol=1e-10)
    fast_a, fast_b = swapped_scores(draws.masks, pa, pb, y)
    for k in range(7):
        swap = draws.masks[k].astype(bool)[:, None]
        np.testing.assert_allclose(fast_a[k], pooled_r2(np.where(swap, pb, pa), y), atol=1e-10)
        np.testing.assert_allclose(fast_b[k], pooled_r2(np.where(swap, pa, pb), y), atol=1e-10)


@pytest.mark.numerics
def test_compare_pair_matches_a_slow_permutation_and_bootstrap():
    rng = np.random.default_rng(2)
    n, t = 60, 3
    y = rng.standard_normal((n, t))
    pa, pb = y + rng.standard_normal((n, t)), 0.5 * y + rng.standard_normal((n, t))
    draws = Draws.make(n, 1, 200, 300, seed=4)
    out = compare_pair(y, pa, pb, np.array(["s"] * t), draws)
    observed = pooled_r2(pa, y) - pooled_r2(pb, y)
    np.testing.assert_allclose(out.difference, observed, atol=1e-12)
    null = []
    for k in range(300):
        swap = draws.masks[k].astype(bool)[:, None]
        null.append(pooled_r2(np.where(swap, pb, pa), y) - pooled_r2(np.where(swap, pa, pb), y))
    expected_p = (1 + (np.abs(null) >= np.abs(observed) - 1e-12).sum(0)) / 301
    np.testing.assert_allclose(out.p, expected_p)
    boot = []
    for d in range(200):
        rows = np.repeat(np.arange(n), draws.counts[d].astype(int))
        boot.append(pooled_r2(pa[rows], y[rows]) - pooled_r2(pb[rows], y[rows]))
    np.testing.assert_allclose(out.ci, np.percentile(boot, [2.5, 97.5], axis=0).T, atol=1e-10)
    assert out.aggregate["difference"] == pytest.approx(np.median(pooled_r2(pa, y)) - np.median(pooled_r2(pb, y)))


def test_identical_models_do_not_differ():
    rng = np.random.default_rng(3)
    y = rng.standard_normal((40, 2))
    pred = y + rng.standard_normal((40, 2))
    out = compare_pair(y, pred, pred.copy(), np.array(["a", "b"]), Draws.make(40, 2, 100, 100, seed=0))
    assert np.all(out.difference == 0) and np.all(out.p == 1.0) and out.aggregate["p"] == 1.0
    assert np.all(out.ci == 0) and out.aggregate["ci_low"] == out.aggregate["ci_high"] == 0.0


def test_aggregate_is_median_within_subject_then_mean_and_resamples_subjects():
    scores = np.array([[0.1, 0.3, 0.2, 0.9, 0.5]])
    subjects = np.array(["a", "a", "a", "b", "b"])
    aggregate = Aggregate(subjects)
    assert aggregate(scores)[0] == pytest.approx((0.2 + 0.7) / 2)
    assert aggregate(scores, np.array([[2.0, 0.0]]))[0] == pytest.approx(0.2)


def test_null_simulations_small_sample_sanity():
    """A quick version of the slow calibration (300 simulations, wide bounds)."""
    y, a, b = simulate_predictions(300, 1.0, 1.0, seed=11)
    rate = float(np.mean(p_values(y, a, b, n_permutations=400, seed=11) < 0.05))
    assert 0.02 <= rate <= 0.09


@pytest.mark.slow
def test_false_positive_rate_on_1000_null_simulations():
    """Two models with independent features and equal signal: the false-positive rate at 0.05 is 0.035-0.065."""
    y, a, b = simulate_predictions(NULL_SIMULATIONS, 1.0, 1.0, seed=2024)
    p = p_values(y, a, b, n_permutations=1000, seed=2024)
    rate = float(np.mean(p < 0.05))
    assert 0.035 <= rate <= 0.065, rate
    # the p-values are uniform enough at other levels too
    assert 0.06 <= float(np.mean(p < 0.1)) <= 0.14


@pytest.mark.slow
def test_power_on_a_planted_difference():
    strength_a, strength_b = PLANTED
    assert population_r2(strength_a) - population_r2(strength_b) == pytest.approx(0.20)
    y, a, b = simulate_predictions(500, strength_a, strength_b, seed=7)
    p = p_values(y, a, b, n_permutations=1000, seed=7)
    assert float(np.mean(p < 0.05)) >= 0.8


# ---------------------------------------------------------------------------------------------------------------
# real results


def synthetic_results(tmp_path, n_models: int = 3, n_targets: int = 6, seed: int = 0):
    """A results object of ``n_models`` models with known predictions of a small dataset file (no extraction)."""
    import xarray as xr

    from brainlike.align.compare import r2
    from brainlike.results import Results

    rng = np.random.default_rng(seed)
    n = 60
    responses = rng.standard_normal((n, n_targets))
    stimuli, targets = [f"s{i}" for i in range(n)], [f"t{i}" for i in range(n_targets)]
    path = tmp_path / "toy.nc"
    xr.Dataset({"responses": (("stimulus", "target"), responses)},
               coords={"stimulus": stimuli, "target": targets}).to_netcdf(path, engine="h5netcdf")
    models = [f"m{k}" for k in range(n_models)]
    predictions = np.stack([(1.0 - 0.3 * k) * responses + 0.5 * rng.standard_normal((n, n_targets))
                            for k in range(n_models)])  # m0 best
    scores = np.stack([r2([np.corrcoef(p[:, t], responses[:, t])[0, 1] for t in range(n_targets)])
                       for p in predictions])
    detail = xr.Dataset({"predictions": (("model", "stimulus", "target"), predictions),
                         "score": (("model", "target"), scores)},
                        coords={"model": models, "stimulus": stimuli, "target": targets},
                        attrs={"dataset": str(path), "protocol": "pepino2025", "metric": "regression"})
    records = [{"model": m, "dataset": str(path), "metric": "regression", "protocol": "pepino2025",
                "selection": "nested-cv", "target": t, "score": float(scores[k, j]), "sem": None, "layer": "x"}
               for k, m in enumerate(models) for j, t in enumerate(targets)]
    return Results(records, detail=detail), models, scores


def test_compare_three_models_per_target_and_overall(tmp_path):
    import brainlike

    results, models, scores = synthetic_results(tmp_path)
    rows = brainlike.compare(results, *models, n_bootstrap=300, n_permutations=300).comparisons
    assert len(rows) == 3 * 7  # 3 pairs x (6 targets + all)
    assert [(r["model_a"], r["model_b"]) for r in rows if r["target"] == "all"] == [("m0", "m1"), ("m0", "m2"),
                                                                                   ("m1", "m2")]
    index = {m: k for k, m in enumerate(models)}
    for row in rows:
        if row["target"] == "all":
            expected = np.median(scores[index[row["model_a"]]]) - np.median(scores[index[row["model_b"]]])
        else:
            t = int(row["target"][1:])
            expected = scores[index[row["model_a"]], t] - scores[index[row["model_b"]], t]
        assert row["difference"] == pytest.approx(expected, abs=1e-9)
        assert row["ci_low"] <= row["ci_high"] and 0 < row["p"] <= 1 and row["q"] >= row["p"] - 1e-12
    # q: one family for the 18 per-target tests, one for the 3 aggregates
    per_target = [r for r in rows if r["target"] != "all"]
    np.testing.assert_allclose([r["q"] for r in per_target],
                               false_discovery_control([r["p"] for r in per_target], method="bh"))
    overall = {(r["model_a"], r["model_b"]): r for r in rows if r["target"] == "all"}
    np.testing.assert_allclose([r["q"] for r in overall.values()],
                               false_discovery_control([r["p"] for r in overall.values()], method="bh"))
    assert overall["m0", "m2"]["difference"] > 0.2 and overall["m0", "m2"]["q"] < 0.01


def test_many_targets_give_counts_and_per_target_detail(tmp_path):
    import brainlike

    results, models, _ = synthetic_results(tmp_path, n_models=2, n_targets=120)
    compared = brainlike.compare(results, *models, n_bootstrap=100, n_permutations=100)
    assert len(compared.comparisons) == 1
    row = compared.comparisons[0]
    detail = compared.details["compare"]
    assert detail["q"].shape == (1, 120)
    assert row["n_targets_a_better"] == int(((detail["q"] < 0.05) & (detail["difference"] > 0)).sum())
    assert row["n_targets_a_better"] > 10 and row["n_targets_b_better"] == 0  # m0 is the better model everywhere


def test_compare_refuses_responses_that_no_longer_match(tmp_path):
    import xarray as xr

    import brainlike
    from brainlike.errors import DataError

    results, models, _ = synthetic_results(tmp_path, n_models=2)
    path = tmp_path / "toy.nc"
    with xr.open_dataset(path, engine="h5netcdf") as stored:
        changed = stored.load()
    changed["responses"] = changed["responses"] * 0 + np.random.default_rng(9).standard_normal(
        changed["responses"].shape)
    changed.to_netcdf(path, engine="h5netcdf")
    with pytest.raises(DataError, match="do not reproduce"):
        brainlike.compare(results, *models)


@pytest.fixture(scope="module")
def two_models(data_root, tmp_path_factory):
    import brainlike

    out = tmp_path_factory.mktemp("compare") / "results"
    brainlike.score(["melspec", "random-features"], dataset="nh2015-components", metric="regression",
                    progress=False, out=out)
    return out


def test_cli_compare_writes_comparisons_and_the_report_table(two_models, tmp_path, capsys):
    from brainlike.cli import main
    from brainlike.report import make_report
    from brainlike.results import Results

    out = tmp_path / "compared"
    assert main(["-q", "compare", str(two_models), "melspec", "random-features", "--bootstrap", "200",
                 "--permutations", "200", "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 7 and (out / "comparisons.jsonl").exists() and (out / "detail-compare.nc").exists()
    scores = {(r["model"], r["target"]): r["score"] for r in Results.load(two_models)}
    for row in rows:
        assert row["difference"] == pytest.approx(scores["melspec", row["target"]]
                                                  - scores["random-features", row["target"]], abs=1e-9)
    lowfreq = next(r for r in rows if r["target"] == "lowfreq")  # melspec 0.37, random features 0.01 (README)
    assert lowfreq["difference"] > 0.3 and lowfreq["q"] < 0.05 and lowfreq["ci_low"] > 0.15
    loaded = Results.load(out)
    assert loaded.comparisons == rows and len(loaded) == len(Results.load(two_models))
    report = make_report(out)
    html = report.html.read_text()
    assert "Does A beat B?" in html and "random-features" in html
    table = (report.html.parent / "tables" / "comparisons.csv").read_text()
    assert "verdict" in table.splitlines()[0]


def test_compare_refuses_results_without_predictions(data_root, tmp_path, capsys):
    import brainlike
    from brainlike.cli import main

    brainlike.score(["melspec", "random-features"], dataset="nh2015-components", metric="regression",
                    protocol="tuckute2023", progress=False, out=tmp_path / "tuckute")
    assert main(["-q", "compare", str(tmp_path / "tuckute"), "melspec", "random-features"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no pooled out-of-fold predictions" in err[0]
    assert main(["-q", "compare", str(tmp_path / "tuckute"), "melspec"]) == 2
    assert "at least two different models" in capsys.readouterr().err


@pytest.fixture(scope="module")
def simulated_subjects(data_root, tmp_path_factory):
    import warnings

    import brainlike
    from brainlike.data.simulate import write_simulation

    folder = tmp_path_factory.mktemp("subjects")
    path = write_simulation(folder / "sim.nc", n_voxels=60, n_subjects=4, reliability=0.5, n_reps=3, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = brainlike.score(["melspec", "random-features"], dataset=str(path), progress=False,
                                  normalise="ncsnr")
    return results


def test_several_subjects_add_the_wilcoxon_test_and_subject_resampling(simulated_subjects):
    import brainlike

    rows = brainlike.compare(simulated_subjects, "melspec", "random-features", n_bootstrap=200,
                             n_permutations=200).comparisons
    assert len(rows) == 61  # 60 voxels + the aggregate
    row = next(r for r in rows if r["target"] == "all")
    assert row["n_subjects"] == 4 and row["ci"].endswith("and subjects")
    assert row["wilcoxon_p"] == pytest.approx(0.125)  # 4 subjects, all in one direction: the smallest exact p
    assert all("wilcoxon_p" not in r for r in rows if r["target"] != "all")
    rsa = brainlike.compare(simulated_subjects, "melspec", "random-features", metric="rsa").comparisons
    assert rsa[0]["test"] == "paired Wilcoxon across subjects" and rsa[0]["n_subjects"] == 4


def test_normalised_scores_on_simulated_voxels(simulated_subjects):
    rows = [r for r in simulated_subjects if r["metric"] == "regression"]
    assert all(r["method"] == "ncsnr" and r["ceiling_bounds"] == "R2" for r in rows)
    overall = next(r for r in rows if r["model"] == "melspec" and r.get("subject") is None and r.get("roi") is None)
    assert 0.5 < overall["ceiling"] < 0.9  # true ceiling 0.75 (reliability 0.5, 3 repetitions)
    assert overall["score_over_ceiling"] > overall["score"]
    rsa = [r for r in simulated_subjects if r["metric"] == "rsa"]
    assert all("score_over_ceiling" not in r or r.get("method") != "ncsnr" for r in rsa)
