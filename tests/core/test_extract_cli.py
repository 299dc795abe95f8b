"""Extraction cache and the CLI end to end: scores, JSON records, results folder, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brainlike.cli import main
from brainlike.data.stimuli import load_natsound165
from brainlike.errors import ModelError
from brainlike.extract import extract_activations
from brainlike.extract.cache import ArrayCache
from brainlike.models.base import AudioModel
from brainlike.models.baselines import MelSpectrogram


def _small_set(data_root, n=10):
    stimuli = load_natsound165(data_root)
    return stimuli.subset(np.arange(n))


def test_cache_hit_is_identical_and_keys_change_with_preprocessing(data_root, tmp_path):
    stimuli = _small_set(data_root)
    store = ArrayCache("activations", tmp_path)
    first = extract_activations("melspec", stimuli, cache_store=store, progress_bar=False)
    second = extract_activations("melspec", stimuli, cache_store=store, progress_bar=False)
    assert second.from_cache and not first.from_cache
    for layer in first.layers:
        np.testing.assert_array_equal(first.arrays[layer], second.arrays[layer])
    model = MelSpectrogram()
    model.name = "melspec"
    model.preprocessing = {**model.preprocessing, "hop": 320}
    assert extract_activations(model, stimuli, cache_store=store, progress_bar=False).key != first.key
    model = MelSpectrogram()
    model.name, model.adapter_version = "melspec", 2
    assert extract_activations(model, stimuli, cache_store=store, progress_bar=False).key != first.key
    model = MelSpectrogram()
    model.name, model.weights_id = "melspec", "0" * 64  # other weights
    assert extract_activations(model, stimuli, cache_store=store, progress_bar=False).key != first.key
    assert extract_activations("melspec", stimuli.subset(np.arange(9)), cache_store=store,
                               progress_bar=False).key != first.key
    corrupt = next(store.root.glob("*/*.npz"))
    corrupt.write_bytes(b"garbage")
    assert any(row["status"] == "corrupt" for row in store.verify())


class _Shifty(AudioModel):
    name, sample_rate, layers = "shifty", 16000, ["a"]

    def __init__(self):
        self.calls = 0

    def forward(self, waveforms):
        self.calls += 1
        return {"a": np.ones((len(waveforms), 3, 4 + self.calls))}


class _NaNModel(AudioModel):
    name, sample_rate, layers = "nan", 16000, ["a"]

    def forward(self, waveforms):
        return {"a": np.full((len(waveforms), 2, 3), np.nan)}


def test_bad_models_are_rejected_and_nothing_is_cached(data_root, tmp_path):
    stimuli = _small_set(data_root, 4)
    store = ArrayCache("activations", tmp_path)
    shifty = _Shifty()
    shifty.batch_size = 1
    with pytest.raises(ModelError, match="changed shape between calls"):
        extract_activations(shifty, stimuli, cache_store=store, progress_bar=False)
    with pytest.raises(ModelError, match="NaN or Inf"):
        extract_activations(_NaNModel(), stimuli, cache_store=store, progress_bar=False)
    assert not list(tmp_path.rglob("*.npz"))


def _run_cli(args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "brainlike", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_score_json_records_and_results_folder(data_root, tmp_path):
    out = tmp_path / "results"
    proc = _run_cli(["score", "melspec", "random-features", "--dataset", "nh2015-components", "--json",
                     "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    for model in ("melspec", "random-features"):
        rows = [r for r in records if r["model"] == model]
        regression = [r for r in rows if r["metric"] == "regression"]
        assert [r["target"] for r in regression] == ["lowfreq", "highfreq", "envsounds", "pitch", "speech", "music",
                                                     "all"]
        assert {r["selection"] for r in rows if r["metric"] == "rsa"} == {"layer-max", "cv"}
        for r in rows:
            assert set(["model", "dataset", "metric", "protocol", "selection", "target", "score", "sem",
                        "layer"]) <= set(r)
            assert r["sem"] is None
        overall = next(r for r in regression if r["target"] == "all")
        assert overall["score"] == pytest.approx(np.median([r["score"] for r in regression[:-1]]))
    control = [r for r in records if r["model"] == "random-features" and r["target"] == "all"]
    assert all(abs(r["score"]) < 0.05 for r in control)
    melspec_all = next(r for r in records if r["model"] == "melspec" and r["metric"] == "rsa")
    assert melspec_all["score"] > 0.2
    assert (out / "records.jsonl").is_file() and (out / "records.csv").is_file()
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["protocol"] == "pepino2025" and provenance["seed"] == 0
    assert "components.mat" in provenance["data_checksums"]
    import xarray as xr

    detail = xr.open_dataset(out / "detail.nc", engine="h5netcdf")
    assert detail["score"].shape == (2, 6)


@pytest.mark.parametrize("args,message", [
    (["score", "melspek"], "unknown model 'melspek'; did you mean melspec"),
    (["score", "melspec", "--dataset", "nh2015-compnents"], "unknown dataset"),
])
def test_cli_errors_are_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_missing_data_folder_is_a_clear_error(tmp_path):
    proc = _run_cli(["score", "melspec"], {"BRAINLIKE_DATA": str(tmp_path), "BRAINLIKE_CACHE": str(tmp_path / "c")})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not found" in proc.stderr
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").rglob("*.npz"))


def test_models_and_datasets_commands(capsys):
    assert main(["models", "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert {"melspec", "random-features"} <= names
    assert main(["datasets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["name"] == "nh2015-components" and r["available"] for r in rows)


def test_merged_detail_keeps_long_layer_names():
    import xarray as xr

    from brainlike.results import merge_details

    short = xr.Dataset({"layer": (("fold", "target"), np.array([["random"]]))}).expand_dims(model=["a"])
    long = xr.Dataset({"layer": (("fold", "target"), np.array([["logmel128"]]))}).expand_dims(model=["b"])
    merged = merge_details([short, long])
    assert merged["layer"].sel(model="b").item() == "logmel128"
