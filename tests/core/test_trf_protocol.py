"""Protocol ``trf`` end to end on the real ECoG components (ecog-nh2022) with a real time-resolved baseline
(``envelope``: frames of the broadband envelope), records (contracts.md section 7), detail.nc and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import brainlike
from brainlike.data.datasets import load_dataset
from brainlike.errors import ProtocolError

pytestmark = pytest.mark.usefixtures("data_root")


@pytest.fixture(scope="module")
def envelope_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("trf")
    results = brainlike.score("envelope", dataset="ecog-nh2022", protocol="trf", progress=False,
                              options={"pca": 0}, out=out)
    return results, out


def test_records_follow_contract_section_7(envelope_results):
    results, _ = envelope_results
    rows = [r for r in results if r["metric"] == "regression" and r["model"] == "envelope"]
    per_target = [r for r in rows if r["target"] != "all"]
    assert [r["target"] for r in per_target] == [f"c{i:02d}" for i in range(1, 16)]
    for row in rows:
        assert row["protocol"] == "trf" and row["selection"] == "nested-cv"
        assert row["lags"] == "0:0.5" and row["rate"] == 25.0 and row["pca"] == 0 and row["causal"] is True
        assert 0 <= row["score"] <= 1 and 0 <= row["score_raw"] <= 1
    for row in per_target:
        assert row["latency"] in [round(k / 25, 2) for k in range(13)] or np.isclose(row["latency"] * 25,
                                                                                     round(row["latency"] * 25))
        assert row["layer"] == "envelope"
    overall = next(r for r in rows if r["target"] == "all")
    assert overall["score"] == pytest.approx(np.median([r["score"] for r in per_target]))
    assert overall["score_raw"] == pytest.approx(np.median([r["score_raw"] for r in per_target]))
    baseline = [r for r in results if r["model"] == "mean-time-course"]
    assert len(baseline) == 16 and all(r["score"] == 0.0 for r in baseline)
    # methods.md section 9: the mean time course alone reaches a median R2 ~ 0.2 over the 15 components and ~0.8
    # on some
    base_all = next(r for r in baseline if r["target"] == "all")
    assert 0.12 < base_all["score_raw"] < 0.3
    assert max(r["score_raw"] for r in baseline) > 0.6
    rsa = [r for r in results if r["metric"] == "rsa"]
    assert len(rsa) == 1 and rsa[0]["selection"] == "layer-max" and np.isfinite(rsa[0]["score"])


def test_detail_holds_curves_nulls_profiles_and_choices(envelope_results):
    results, out = envelope_results
    detail = xr.open_dataset(Path(out) / "detail.nc").load()
    for name in ("score", "score_raw", "baseline_raw", "latency", "chosen_layer", "alpha", "alpha_edge",
                 "inner_score", "layer_alpha", "layer_score", "layer_latency", "lag_profile", "r_time",
                 "r_time_null_low", "r_time_null_high", "layer_r_time", "r_time_category", "predictions",
                 "mean_course", "rsa_rho", "rsa_rho_averaged"):
        assert name in detail, name
    assert detail.sizes["time"] == 75 and detail.sizes["lag"] == 13 and detail.sizes["category"] == 11
    assert detail.sizes["alpha_grid"] >= 20
    assert np.log10(detail["alpha_grid"].max() / detail["alpha_grid"].min()) >= 10
    low, high = detail["r_time_null_low"].values, detail["r_time_null_high"].values
    assert np.all(low < 0) and np.all(high > 0) and np.all(high < 0.3)
    # the saved predictions reproduce the headline score: pooled deviations from the training mean course
    responses = load_dataset("ecog-nh2022").mean_time_courses()
    pred = detail["predictions"].values[0]
    obs = responses - detail["mean_course"].values[0]
    r = [np.corrcoef(pred[..., t].ravel(), obs[..., t].ravel())[0, 1] for t in range(15)]
    np.testing.assert_allclose(np.maximum(r, 0) ** 2, detail["score"].values[0], atol=1e-10)
    loaded = brainlike.Results.load(out)
    assert len(loaded) == len(results)


def test_spectrotemporal_has_no_time_axis_and_nothing_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path))
    with pytest.raises(ProtocolError, match="spectrotemporal has no time axis"):
        brainlike.score("spectrotemporal", dataset="ecog-nh2022", protocol="trf", progress=False)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("options, message", [
    ({"lags": "0:4"}, "longer than the response"),
    ({"lags": "0.5:0"}, "START:STOP"),
    ({"rate": 50}, "coarser than --rate"),
    ({"pca": -1}, "--pca must be >= 0"),
])
def test_bad_protocol_options_fail_before_extraction(tmp_path, monkeypatch, options, message):
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path))
    with pytest.raises(ProtocolError, match=message):
        brainlike.score("envelope", dataset="ecog-nh2022", protocol="trf", progress=False, options=options)
    assert not any(tmp_path.iterdir())


def test_time_averaged_dataset_refused():
    with pytest.raises(ProtocolError, match="needs a time-resolved dataset"):
        brainlike.score("envelope", dataset="nh2015-components", protocol="trf", progress=False)


def test_finer_dataset_is_averaged_to_rate(tmp_path, caplog):
    """A bring-your-own dataset at 50 Hz under --rate 25: averaged into 25 Hz bins (said so) and scored."""
    ecog = load_dataset("ecog-nh2022")
    fine = np.repeat(ecog.mean_time_courses()[:, :, :2], 2, axis=1)  # each 25 Hz bin as two 50 Hz bins
    path = tmp_path / "fine.nc"
    xr.DataArray(fine[..., None], dims=("stimulus", "time", "target", "repetition"),
                 coords={"stimulus": ecog.stimulus_ids, "time": np.arange(150) / 50.0, "target": ["a", "b"],
                         "repetition": [0]}).to_dataset(name="responses").to_netcdf(path)
    with caplog.at_level("WARNING"):
        coarse = brainlike.score("envelope", dataset=str(path), protocol="trf", progress=False, metric="regression",
                                 options={"pca": 0})
    assert any("50 Hz responses averaged into 25 Hz bins" in m for m in caplog.messages), caplog.messages
    reference = brainlike.score("envelope", dataset="ecog-nh2022", protocol="trf", progress=False,
                                metric="regression", options={"pca": 0})
    scores = {r["target"]: r["score"] for r in coarse if r["model"] == "envelope"}
    expected = {r["target"]: r["score"] for r in reference if r["model"] == "envelope"}
    assert scores["a"] == pytest.approx(expected["c01"], abs=1e-9)
    assert scores["b"] == pytest.approx(expected["c02"], abs=1e-9)


def test_cli_flags_and_exit_status():
    env_cmd = [sys.executable, "-m", "brainlike", "score", "envelope", "--dataset", "ecog-nh2022", "--protocol",
               "trf", "--lags", "0:0.2", "--pca", "0", "--rate", "25", "--metric", "regression", "--json"]
    done = subprocess.run(env_cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {r["lags"] for r in rows} == {"0:0.2"}
    bad = subprocess.run(env_cmd[:-1] + ["--lags", "0:9"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "longer than the response" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    other = subprocess.run([sys.executable, "-m", "brainlike", "score", "envelope", "--dataset", "nh2015-components",
                            "--lags", "0:0.2"], capture_output=True, text=True)
    assert other.returncode == 2 and "takes no option" in other.stderr
