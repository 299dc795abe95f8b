"""The one results object (brainlike.Results), the protocol registry, and one rule per downstream number."""

from __future__ import annotations

import json

import numpy as np
import pytest

import brainlike
from brainlike.align.protocols import (PROTOCOLS, Protocol, TargetScores, get_protocol, list_protocols,
                                       register_protocol)
from brainlike.errors import UnknownNameError
from brainlike.results import Results, ResultsError


@pytest.fixture(scope="module")
def melspec_results(data_root):
    return brainlike.score("melspec", dataset="nh2015-components", progress=False)


def test_results_is_the_list_of_records_score_always_returned(melspec_results):
    results = melspec_results
    assert isinstance(results, list) and isinstance(results, Results)
    assert all(isinstance(r, dict) for r in results)
    assert json.loads(json.dumps(results)) == list(results)
    overall = next(r for r in results if r["metric"] == "regression" and r["target"] == "all")
    frame = results.to_frame()
    assert list(frame.columns[:9]) == ["model", "dataset", "metric", "protocol", "selection", "target", "score",
                                       "sem", "layer"]
    row = frame[(frame.metric == "regression") & (frame.target == "all")].iloc[0]
    assert row.score == pytest.approx(overall["score"], abs=0)
    assert results.models == ["melspec"]
    assert results.provenance["protocol"] == "pepino2025" and results.provenance["seed"] == 0


def test_detail_holds_pooled_out_of_fold_predictions(melspec_results, data_root):
    from brainlike.data.neural import load_dataset
    from brainlike.data.stimuli import load_stimulus_set

    detail = melspec_results.detail
    predictions = detail["predictions"].sel(model="melspec")
    assert predictions.dims == ("stimulus", "target") and predictions.shape == (165, 6)
    stimuli = load_stimulus_set("natsound165")
    responses = load_dataset("nh2015-components").align_to(stimuli.ids)
    for target in responses.target_names:
        observed = responses.responses.sel(target=target).mean("repetition").values
        predicted = predictions.sel(target=target).sel(stimulus=responses.stimulus_ids).values
        r = np.corrcoef(observed, predicted)[0, 1]
        record = next(x for x in melspec_results if x["metric"] == "regression" and x["target"] == target)
        assert record["score"] == pytest.approx(max(r, 0) ** 2, abs=1e-12)


def test_save_and_load_round_trip(melspec_results, tmp_path):
    folder = melspec_results.save(tmp_path / "out")
    assert {p.name for p in folder.iterdir()} >= {"records.jsonl", "records.csv", "records.parquet", "detail.nc",
                                                   "provenance.json"}
    loaded = Results.load(folder)
    assert loaded == melspec_results
    assert loaded.provenance["protocol_parameters"] == json.loads(json.dumps(
        melspec_results.provenance["protocol_parameters"]))
    np.testing.assert_array_equal(loaded.detail["predictions"].values, melspec_results.detail["predictions"].values)
    assert loaded.sources == [folder]


def test_downstream_records_share_the_folder(tmp_path):
    brain = Results([{"model": "m", "dataset": "d", "metric": "regression", "protocol": "pepino2025",
                      "selection": "nested-cv", "target": "all", "score": 0.5, "sem": None, "layer": "l"}],
                    provenance={"kind": "score"})
    tasks = Results(downstream=[{"model": "m", "task": "t", "probe": "linear", "fold": None, "score": 0.9}],
                    downstream_provenance={"kind": "downstream"})
    brain.save(tmp_path)
    tasks.save(tmp_path)  # leaves records.* alone
    loaded = Results.load(tmp_path)
    assert loaded.records == list(brain) and loaded.downstream == tasks.downstream
    assert loaded.provenance["kind"] == "score" and loaded.downstream_provenance["kind"] == "downstream"


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("", "holds no records.jsonl or downstream.jsonl"),
    ('{"model": "m"}\n', "line 1 lacks required key(s)"),
    ("not json\n", "line 1 is not JSON"),
])
def test_load_refuses_bad_folders(tmp_path, content, message):
    folder = tmp_path / "results"
    if content is not None:
        folder.mkdir()
        if content:
            (folder / "records.jsonl").write_text(content)
    with pytest.raises(ResultsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Results.load(folder)


def test_protocol_registry_lists_and_refuses_unknown_names():
    names = [p.name for p in list_protocols()]
    assert {"pepino2025", "tuckute2023"} <= set(names)
    with pytest.raises(UnknownNameError, match="did you mean pepino2025"):
        get_protocol("pepino2052")


def test_a_new_protocol_is_one_registration(data_root, tmp_path):
    """A protocol registered with one call runs through brainlike.score, records built by the registry."""
    import xarray as xr

    def run(inputs):  # each target scored by its best single layer's squared correlation with the mean feature
        responses = inputs.dataset.mean_responses()
        scores = np.array([[np.corrcoef(inputs.activations.arrays[layer].mean(1), responses[:, t])[0, 1] ** 2
                            for t in range(responses.shape[1])] for layer in inputs.layers])  # (layers, t)
        best = scores.argmax(0)
        detail = xr.Dataset({"score": ("target", scores.max(0))}, coords={"target": inputs.dataset.target_names})
        return TargetScores(scores.max(0)[None], best[None], detail)

    register_protocol(Protocol("toy-mean-feature", "max", run, lambda options: {"toy": True}, "a test protocol"))
    try:
        results = brainlike.score("melspec", dataset="nh2015-components", protocol="toy-mean-feature",
                                  metric="regression", progress=False, out=tmp_path / "toy")
    finally:
        PROTOCOLS.pop("toy-mean-feature")
    per_target = [r for r in results if r["target"] != "all"]
    overall = next(r for r in results if r["target"] == "all")
    assert len(per_target) == 6 and overall["protocol"] == "toy-mean-feature" and overall["selection"] == "max"
    assert overall["score"] == pytest.approx(np.median([r["score"] for r in per_target]), abs=1e-12)
    assert Results.load(tmp_path / "toy").provenance["protocol_parameters"] == {"toy": True}


def test_report_and_link_give_the_same_global_scores_and_correlations(tmp_path):
    """One rule per number: the report's brain-vs-downstream table equals link's rows for the same folder."""
    from brainlike.report import load_results, report_tables

    rng = np.random.default_rng(0)
    models = [f"m{i}" for i in range(6)]
    brain = [{"model": m, "dataset": "d", "metric": "regression", "protocol": "pepino2025", "selection": "nested-cv",
              "target": "all", "score": float(s), "sem": None, "layer": "l"} for m, s in zip(models, rng.random(6))]
    tasks = [{"model": m, "task": t, "probe": "linear", "fold": f, "score": float(rng.random())}
             for m in models for t in ("t1", "t2") for f in (1, 2)]
    tasks += [{"model": m, "task": "t3", "probe": "linear", "fold": None, "score": 0.5} for m in models]  # constant
    Results(brain, provenance={}).save(tmp_path)
    Results(downstream=tasks).save(tmp_path)
    rows = brainlike.link(tmp_path)
    global_row = next(r for r in rows if r["downstream"] == "global")
    table = report_tables(load_results(tmp_path))["brain_vs_downstream"]
    assert len(table) == 1
    assert table.iloc[0]["r"] == pytest.approx(global_row["pearson_r"], abs=1e-12)
    assert table.iloc[0]["low"] == pytest.approx(global_row["pearson_ci_low"], abs=1e-12)
    assert table.iloc[0]["high"] == pytest.approx(global_row["pearson_ci_high"], abs=1e-12)
    assert table.iloc[0]["rho"] == pytest.approx(global_row["spearman_rho"], abs=1e-12)
    report_global = report_tables(load_results(tmp_path))["downstream_global"].set_index("model")["global"]
    for model, value in zip(global_row["models"], global_row["downstream_scores"]):
        assert report_global[model] == pytest.approx(value, abs=1e-12)
