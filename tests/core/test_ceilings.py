"""Noise ceilings (methods.md section 12): hand-worked examples, a slow loop, simulated voxels with a known ceiling,
normalised scores, and the errors of data without repetitions."""

from __future__ import annotations

import statistics
import warnings

import numpy as np
import pytest
import xarray as xr

from brainlike.align.ceilings import (CeilingWarning, cc_max_ceiling, ncsnr_ceiling, noise_ceiling,
                                      normalise_records, spearman_brown_ceiling)
from brainlike.data.neural import NeuralDataset
from brainlike.errors import DataError


def dataset(values: np.ndarray, subjects=None, name: str = "toy") -> NeuralDataset:
    values = np.asarray(values, dtype=float)
    n, t, r = values.shape
    coords = {"stimulus": [f"s{i}" for i in range(n)], "target": [f"t{i}" for i in range(t)],
              "repetition": np.arange(r)}
    if subjects is not None:
        coords["subject"] = ("target", list(subjects))
    return NeuralDataset(name, xr.DataArray(values, dims=("stimulus", "target", "repetition"), coords=coords))


# 4 sounds, 2 repetitions: rep1 = 1 2 3 4, rep2 = 2 1 4 3 (worked by hand in the comments)
HAND = np.array([[1, 2], [2, 1], [3, 4], [4, 3]], dtype=float)[:, None, :]


def test_hand_worked_two_repetitions():
    # mean = 1.5 1.5 3.5 3.5: var_s (ddof 1) = 4/3; var_r per sound = 1/2, so s2_n = 1/2
    # NCSNR: s2_s = 4/3 - (1/2)/2 = 13/12; ceiling = (13/12) / (13/12 + 1/4) = 13/16; ncsnr = sqrt(13/6)
    out = ncsnr_ceiling(HAND)
    assert out["ceiling"][0] == pytest.approx(13 / 16, abs=1e-12)
    assert out["ncsnr"][0] == pytest.approx(np.sqrt(13 / 6), abs=1e-12)
    assert out["noise_variance"][0] == pytest.approx(0.5) and out["signal_variance"][0] == pytest.approx(13 / 12)
    # cc_max: var_s(rep1 + rep2 = 3 3 7 7) = 16/3, var_s(rep1) = var_s(rep2) = 5/3: SP = (16/3 - 10/3) / 2 = 1;
    # cc_max = sqrt(1 / (4/3)) = sqrt(3)/2 (an r bound)
    out = cc_max_ceiling(HAND)
    assert out["sp"][0] == pytest.approx(1.0) and out["ceiling"][0] == pytest.approx(np.sqrt(3) / 2, abs=1e-12)
    # Spearman-Brown: r(rep1, rep2) = 3 / 5 = 0.6; 2 * 0.6 / (1 + 0.6) = 0.75 (an R2 bound) = cc_max^2 for R = 2
    out = spearman_brown_ceiling(HAND)
    assert out["r_pair"][0] == pytest.approx(0.6) and out["ceiling"][0] == pytest.approx(0.75, abs=1e-12)


def test_no_signal_gives_null_or_zero():
    # rep2 = -rep1: anti-correlated repetitions, the mean is flat
    y = np.array([[1, -1], [2, -2], [3, -3], [4, -4]], dtype=float)[:, None, :]
    assert np.isnan(cc_max_ceiling(y)["ceiling"][0])  # SP <= 0: no ceiling
    assert np.isnan(spearman_brown_ceiling(y)["ceiling"][0])
    assert ncsnr_ceiling(y)["ceiling"][0] == 0.0 or np.isnan(ncsnr_ceiling(y)["ceiling"][0])


def slow_ceilings(y: np.ndarray) -> tuple[float, float, float]:
    """Python's statistics module, one target at a time: (ncsnr, cc_max, Spearman-Brown)."""
    n, reps = y.shape
    means = [statistics.fmean(y[s]) for s in range(n)]
    noise = statistics.fmean(statistics.variance(y[s]) for s in range(n))
    signal = max(0.0, statistics.variance(means) - noise / reps)
    ncsnr = signal / (signal + noise / reps)
    sums = [sum(y[s]) for s in range(n)]
    power = (statistics.variance(sums) - sum(statistics.variance(y[:, r]) for r in range(reps))) / (reps * (reps - 1))
    cc_max = (power / statistics.variance(means)) ** 0.5
    pairs = [statistics.correlation(list(y[:, i]), list(y[:, j])) for i in range(reps) for j in range(i + 1, reps)]
    r = statistics.median(pairs)
    return ncsnr, cc_max, reps * r / (1 + (reps - 1) * r)


@pytest.mark.numerics
@pytest.mark.parametrize("reps", [3, 4])
def test_vectorised_estimators_match_a_slow_loop(reps):
    rng = np.random.default_rng(reps)
    signal = rng.standard_normal((30, 5))
    y = signal[:, :, None] + rng.uniform(0.3, 1.5, 5)[None, :, None] * rng.standard_normal((30, 5, reps))
    ncsnr, cc, sb = (ncsnr_ceiling(y)["ceiling"], cc_max_ceiling(y)["ceiling"], spearman_brown_ceiling(y)["ceiling"])
    for t in range(5):
        expected = slow_ceilings(y[:, t])
        np.testing.assert_allclose([ncsnr[t], cc[t], sb[t]], expected, rtol=1e-10)


def test_missing_repetitions_use_the_complete_ones():
    rng = np.random.default_rng(4)
    y = rng.standard_normal((20, 3, 3)) + rng.standard_normal((20, 3, 1))
    y[5, 1, 2] = np.nan  # target 1 loses repetition 2; target 2 keeps only one repetition
    y[:, 2, 1:] = np.nan
    ceilings = noise_ceiling(dataset(y), "ncsnr")
    assert list(ceilings.n_reps) == [3, 2, 1]
    assert ceilings.values[0] == pytest.approx(ncsnr_ceiling(y[:, :1])["ceiling"][0])
    assert ceilings.values[1] == pytest.approx(ncsnr_ceiling(y[:, 1:2, :2])["ceiling"][0])
    assert np.isnan(ceilings.values[2])


@pytest.mark.parametrize("method", ["spearman-brown", "ncsnr", "cc-max"])
def test_a_dataset_without_repetitions_is_refused(method):
    y = np.random.default_rng(5).standard_normal((20, 4, 1))
    with pytest.raises(DataError, match="toy has no repetitions"):
        noise_ceiling(dataset(y), method)


def test_loso_needs_two_subjects():
    y = np.random.default_rng(6).standard_normal((20, 4, 1))
    with pytest.raises(DataError, match="1 subject"):
        noise_ceiling(dataset(y, subjects=["a"] * 4), "loso")
    ceilings = noise_ceiling(dataset(np.random.default_rng(6).standard_normal((20, 6, 1)),
                                     subjects=["a", "a", "a", "b", "b", "b"]), "loso")
    assert ceilings.bounds == "rho" and len(ceilings.values) == 2


# ---------------------------------------------------------------------------------------------------------------
# simulated voxels with a known ceiling (`brainlike simulate`: real component responses x real weights + noise)

SIM_TOLERANCE = {"median_error": 0.01, "median_absolute_error": 0.04, "aggregate_error": 0.01}
"""Stated tolerance (R2 units) on 3,000 simulated voxels, reliability 0.4, 3 repetitions (true ceiling ~0.67)."""


@pytest.fixture(scope="module")
def simulated(data_root):
    from brainlike.data.simulate import simulate_voxels

    return simulate_voxels(n_voxels=3000, n_subjects=4, reliability=0.4, n_reps=3, seed=3)


def test_simulation_exposes_its_true_ceiling(simulated):
    true = simulated["true_ceiling"].values
    # the true ceiling is the Spearman-Brown extension of the single-repetition reliability (ddof 1 vs 0: 1/S)
    np.testing.assert_allclose(true, 3 * 0.4 / (1 + 2 * 0.4), atol=0.003)
    signal, noise = simulated["signal_variance"].values, simulated["noise_variance"].values
    np.testing.assert_allclose(true, signal / (signal + noise / 3), rtol=1e-12)


@pytest.mark.parametrize("method", ["spearman-brown", "ncsnr", "cc-max"])
def test_each_estimator_recovers_the_true_ceiling(simulated, method, tmp_path):
    path = tmp_path / "sim.nc"
    simulated.to_netcdf(path, engine="h5netcdf")
    from brainlike.data.neural import load_dataset

    ceilings = noise_ceiling(load_dataset(str(path)), method)
    estimate, true = ceilings.r2_bound(), simulated["true_ceiling"].values
    error = estimate - true
    assert np.isfinite(estimate).all()
    assert abs(np.median(error)) < SIM_TOLERANCE["median_error"]
    assert np.median(np.abs(error)) < SIM_TOLERANCE["median_absolute_error"]
    overall = next(r for r in ceilings.records() if r["target"] == "all" and r.get("subject") is None
                   and r.get("roi") is None)
    expected = overall["score"] ** 2 if method == "cc-max" else overall["score"]
    true_overall = np.mean([np.median(true[simulated["subject"].values == s])
                            for s in dict.fromkeys(simulated["subject"].values)])
    assert ceilings.bounds == ("r" if method == "cc-max" else "R2")
    # the aggregate of cc-max is the median of r bounds; squaring it is the median of R2 bounds (monotone)
    assert abs(expected - true_overall) < SIM_TOLERANCE["aggregate_error"]


def test_the_three_estimators_agree_up_to_one_over_s(simulated):
    y = simulated["responses"].values
    ncsnr = ncsnr_ceiling(y)["ceiling"]
    cc = cc_max_ceiling(y)["ceiling"] ** 2
    assert np.median(np.abs(ncsnr - cc)) < 5 / y.shape[0]


# ---------------------------------------------------------------------------------------------------------------
# normalised scores


def test_normalised_scores_are_never_clipped_and_warn_above_one():
    rng = np.random.default_rng(7)
    y = rng.standard_normal((40, 3, 1)) + 0.3 * rng.standard_normal((40, 3, 2))  # reliable targets
    data = dataset(y)
    ceilings = noise_ceiling(data, "ncsnr")
    scores = {"m": ceilings.values * np.array([0.5, 1.2, 0.8])}  # the second above its ceiling
    records = [{"model": "m", "dataset": "toy", "metric": "regression", "target": f"t{i}", "score": scores["m"][i]}
               for i in range(3)]
    records.append({"model": "m", "dataset": "toy", "metric": "regression", "target": "all",
                    "score": float(np.median(scores["m"]))})
    records.append({"model": "m", "dataset": "toy", "metric": "rsa", "target": "all", "score": 0.3})
    with pytest.warns(CeilingWarning, match="1 normalised score"):
        out = normalise_records(records, scores, ceilings)
    assert [r["score_over_ceiling"] for r in out[:3]] == pytest.approx([0.5, 1.2, 0.8])
    assert out[3]["score_over_ceiling"] == pytest.approx(0.8)  # median of the per-target ratios
    assert out[3]["ceiling"] == pytest.approx(np.median(ceilings.values))
    assert all(r["method"] == "ncsnr" and r["ceiling_bounds"] == "R2" for r in out[:4])
    assert out[4] == records[4]  # RSA rows pass through


def test_cc_max_normalises_r2_by_its_square():
    rng = np.random.default_rng(8)
    y = rng.standard_normal((40, 2, 1)) + 0.5 * rng.standard_normal((40, 2, 3))
    ceilings = noise_ceiling(dataset(y), "cc-max")
    scores = {"m": np.array([0.2, 0.3])}
    records = [{"model": "m", "dataset": "toy", "metric": "regression", "target": "t0", "score": 0.2}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = normalise_records(records, scores, ceilings)
    assert out[0]["ceiling"] == pytest.approx(ceilings.values[0] ** 2)
    assert out[0]["score_over_ceiling"] == pytest.approx(0.2 / ceilings.values[0] ** 2)


def test_cli_ceiling_and_normalise_refuse_data_without_repetitions(data_root, capsys):
    from brainlike.cli import main

    assert main(["ceiling", "nh2015-components"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nh2015-components has no repetitions" in err[0]
    assert main(["-q", "score", "melspec", "--normalise", "ncsnr"]) == 2
    assert "no repetitions" in capsys.readouterr().err


def test_cli_ceiling_on_simulated_voxels(data_root, tmp_path, capsys):
    import json

    from brainlike.cli import main
    from brainlike.data.simulate import write_simulation

    path = write_simulation(tmp_path / "sim.nc", n_voxels=30, n_subjects=2, reliability=0.5, n_reps=2, seed=1)
    assert main(["ceiling", str(path), "--method", "spearman-brown", "--json", "--out", str(tmp_path / "out")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["metric"] for r in rows} == {"ceiling"} and {r["bounds"] for r in rows} == {"R2"}
    assert sum(r["target"] != "all" for r in rows) == 30
    detail = xr.open_dataset(tmp_path / "out" / "detail-ceiling.nc", engine="h5netcdf")
    assert detail["ceiling"].sizes["target"] == 30 and detail.attrs["method"] == "spearman-brown"
    detail.close()
