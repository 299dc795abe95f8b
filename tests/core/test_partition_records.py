"""Variance partitioning end to end: ``brainlike score MODEL --control CONTROL`` records, feature files as controls,
bad input (contracts.md section 7, methods.md section 10)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import brainlike
from brainlike.align.banded import check_time_bases
from brainlike.align.partition import PARTS
from brainlike.cli import main
from brainlike.errors import DataError, ProtocolError
from brainlike.extract.features import load_feature_file, write_feature_file


@pytest.fixture(scope="module")
def melspec_arrays(data_root):
    from brainlike.api import extract

    activations = extract("melspec", progress=False)
    return activations.stimulus_ids, activations.arrays


@pytest.fixture(scope="module")
def partition(data_root):
    return brainlike.score("random-features", controls=["melspec"], metric="regression", progress=False,
                           bootstrap=200)


def _rows(results, target="all"):
    return {r["part"]: r for r in results if r["target"] == target and r.get("part")}


def test_records_have_every_part_with_cis_and_exact_identities(partition):
    for target in ["all", *partition.detail.target.values.tolist()]:
        rows = _rows(partition, target)
        assert set(rows) == set(PARTS)
        s = {part: row["score"] for part, row in rows.items()}
        assert s["unique_model"] == s["joint"] - s["control"]
        assert s["unique_control"] == s["joint"] - s["model"]
        assert s["shared"] == s["model"] + s["control"] - s["joint"]
        for row in rows.values():
            assert row["control"] == "melspec" and row["model"] == "random-features"
            assert row["ci_low"] <= row["ci_high"]
    overall = _rows(partition)
    m = {part: row["mean_over_targets"] for part, row in overall.items()}
    assert m["shared"] == pytest.approx(m["model"] + m["control"] - m["joint"], abs=1e-12)


def test_model_and_control_parts_equal_the_plain_protocol(partition, data_root):
    plain = brainlike.score(["random-features", "melspec"], metric="regression", progress=False)
    by_model = {r["model"]: r["score"] for r in plain if r["target"] == "all"}
    rows = _rows(partition)
    assert rows["model"]["score"] == pytest.approx(by_model["random-features"], abs=1e-12)
    assert rows["control"]["score"] == pytest.approx(by_model["melspec"], abs=1e-12)
    detail = partition.detail
    assert {"part_score", "predictions_joint", "split_r2", "joint_alpha"} <= set(detail.data_vars)
    split = detail["split_r2"].sel(model="random-features").values.sum(0) + \
        detail["split_r2_mean"].sel(model="random-features").values
    joint = detail["part_score"].sel(model="random-features", part="joint").values
    np.testing.assert_allclose(split, joint, atol=1e-10)


def test_feature_file_control_is_aligned_by_name(melspec_arrays, tmp_path):
    ids, arrays = melspec_arrays
    order = np.random.default_rng(0).permutation(len(ids))
    extra = {k: np.concatenate([v[order], np.ones((1, v.shape[1]))]) for k, v in arrays.items()}
    path = write_feature_file(tmp_path / "shuffled.npz", [ids[i] + ".wav" for i in order] + ["stim999_extra"], extra)
    loaded = load_feature_file(f"features:{path}", ids)
    for layer, values in arrays.items():
        np.testing.assert_array_equal(loaded.arrays[layer], values)
    results = brainlike.score("random-features", controls=[f"features:{path}"], metric="regression",
                              progress=False, bootstrap=50)
    reference = brainlike.score("random-features", controls=["melspec"], metric="regression", progress=False,
                                bootstrap=50)
    got, ref = _rows(results), _rows(reference)
    for part in PARTS:
        assert got[part]["score"] == pytest.approx(ref[part]["score"], abs=1e-6)
    assert got["joint"]["control"] == f"features:{path}"


def test_shuffled_feature_file_control_is_near_zero(melspec_arrays, tmp_path, partition):
    """Real data: melspec against its own features with the stimulus names shuffled (the feature file is read by
    name, so the rows no longer belong to their sounds): the control explains nothing on any component, and in the
    aggregate nothing is unique to it or shared. (Per component, unique_control moves by up to ~0.1 here: the joint's
    fixed relative grid is not the protocol's own grid, see docs/protocols.md.)"""
    ids, arrays = melspec_arrays
    names = [ids[i] for i in np.random.default_rng(1).permutation(len(ids))]
    path = write_feature_file(tmp_path / "shuffled.npz", names, arrays)
    results = brainlike.score("melspec", controls=[f"features:{path}"], metric="regression", progress=False,
                              bootstrap=200)
    for target in ["all", *partition.detail.target.values.tolist()]:
        assert _rows(results, target)["control"]["score"] < 0.01
    rows = _rows(results)
    s = {part: row["score"] for part, row in rows.items()}
    assert s["model"] > 0.04  # melspec's overall score on the components (README: 0.047)
    assert abs(s["unique_control"]) < 0.01 and abs(s["shared"]) < 0.01
    assert s["unique_model"] == pytest.approx(s["model"], abs=0.01)
    assert rows["control"]["ci_low"] <= 0.01


def test_two_control_flags_form_one_control_with_two_bands(melspec_arrays, tmp_path):
    """--control A --control B: one control (a banded ridge over its two bands), named "A+B"; the joint has three
    bands whose split R2 plus the mean's share add up to the joint R2; the identities hold in every record."""
    ids, arrays = melspec_arrays
    path = write_feature_file(tmp_path / "mfcc.npz", ids, {"mfcc20": arrays["mfcc20"]})
    results = brainlike.score("random-features", controls=["melspec", f"features:{path}"], metric="regression",
                              progress=False, bootstrap=50)
    rows = _rows(results)
    assert {row["control"] for row in rows.values()} == {f"melspec+features:{path}"}
    s = {part: row["score"] for part, row in rows.items()}
    assert s["unique_model"] == s["joint"] - s["control"] and s["shared"] == s["model"] + s["control"] - s["joint"]
    detail = results.detail.sel(model="random-features")
    assert detail["split_r2"].shape[0] == 3 and detail["joint_alpha"].shape[1] == 3
    np.testing.assert_allclose(detail["split_r2"].values.sum(0) + detail["split_r2_mean"].values,
                               detail["part_score"].sel(part="joint").values, atol=1e-10)
    assert s["control"] > 0.04  # melspec's bands carry the control (README: melspec alone 0.047)


@pytest.mark.parametrize("problem,message", [
    ("missing", "lacks 1 of the 165 stimuli"),
    ("nan", "NaN or Inf"),
    ("object", "string array"),
    ("no-names", "no 'stimulus' array"),
])
def test_bad_feature_files_fail_with_one_line(melspec_arrays, tmp_path, capsys, problem, message):
    ids, arrays = melspec_arrays
    values = arrays["mfcc20"].copy()
    path = tmp_path / f"{problem}.npz"
    if problem == "missing":
        np.savez(path, stimulus=np.array(ids[1:]), mfcc20=values[1:])
    elif problem == "nan":
        values[3, 2] = np.nan
        np.savez(path, stimulus=np.array(ids), mfcc20=values)
    elif problem == "object":
        np.savez(path, stimulus=np.array(ids, dtype=object), mfcc20=values)
    else:
        np.savez(path, mfcc20=values)
    with pytest.raises(DataError, match=message):
        load_feature_file(f"features:{path}", ids)
    out = tmp_path / "out"
    assert main(["-q", "score", "random-features", "--control", f"features:{path}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("brainlike: error:") and message in err and len(err.splitlines()) == 1
    assert not out.exists()  # nothing written half-way


def test_control_identical_to_model_warns_and_leaves_nothing_unique(data_root, caplog):
    with caplog.at_level(logging.WARNING):
        results = brainlike.score("melspec", controls=["melspec"], metric="regression", progress=False,
                                  bootstrap=50)
    assert "control melspec is the model itself" in caplog.text
    assert "repeats the model" in caplog.text
    rows = _rows(results)
    assert rows["joint"]["control_identical"] is True
    # the joint fit's fixed relative grid differs from the protocol's own: R2 moves by a few 0.01, no more
    assert abs(rows["unique_model"]["score"]) < 0.05 and abs(rows["unique_control"]["score"]) < 0.05
    assert rows["shared"]["score"] == pytest.approx(rows["model"]["score"], abs=0.05)


def test_protocol_without_partitioning_is_refused(data_root, capsys):
    assert main(["-q", "score", "random-features", "--control", "melspec", "--protocol", "tuckute2023",
                 "--metric", "regression"]) == 2
    assert "does not support --control" in capsys.readouterr().err


def test_cli_json_records(data_root, capsys, tmp_path):
    assert main(["-q", "score", "random-features", "--control", "melspec", "--metric", "regression",
                 "--bootstrap", "20", "--json", "--out", str(tmp_path / "res")]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["part"] for r in records} == set(PARTS)
    loaded = brainlike.Results.load(tmp_path / "res")
    assert "predictions_joint" in loaded.detail.data_vars


def test_trf_bands_with_different_time_bases_are_refused():
    bins = np.arange(-12, 75) / 25.0
    check_time_bases({"model": bins, "control": bins.copy()})
    with pytest.raises(ProtocolError, match="different time bases"):
        check_time_bases({"model": bins, "control": np.arange(-50, 300) / 100.0})
    with pytest.raises(ProtocolError, match="different time bases"):
        check_time_bases({"model": bins, "control": bins + 0.02})


def test_ecog_acoustic_features_convert(data_root, tmp_path, capsys):
    if not (data_root / "ecog_nh2022" / "acoustic_features.mat").is_file():
        pytest.skip("ecog_nh2022 not in the data folder")
    out = tmp_path / "acoustic.npz"
    assert main(["features", "convert-ecog-acoustics", str(out)]) == 0
    with np.load(out, allow_pickle=False) as npz:
        names = list(npz["stimulus"])
        assert npz["cochleagram"].shape == (165, 6) and npz["modulation"].shape == (165, 63)
    numbers = [int(n.split("_")[0][4:]) for n in names]
    assert numbers == sorted(numbers) and names[0] == "stim5_alarm_clock"


def test_report_draws_stacked_partition_bars_and_counts_each_score_once(partition, tmp_path):
    from brainlike.report import make_report, report_tables
    from brainlike.report.results import load_results

    folder = tmp_path / "res"
    partition.save(folder)
    report = make_report(folder, out=tmp_path / "report")
    assert any(slug.startswith("partition") for slug in report.slugs)
    assert "variance partitioning" in report.html.read_text().lower()
    tables = report_tables(load_results(folder))
    ranking = tables["ranking"]
    assert list(ranking["model"]) == ["random-features"]  # the model part only, once
    assert ranking["score"].iloc[0] == _rows(partition)["model"]["score"]
    parts = tables["partition"]
    assert set(parts["part"]) == set(PARTS) and "all" in set(parts["column"])
