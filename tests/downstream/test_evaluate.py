"""Evaluation records, the global score, and the `brainlike downstream` command end to end on a synthetic set."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from brainlike.downstream.evaluate import evaluate_embeddings, global_scores, read_downstream, summary_table
from brainlike.downstream.tasks import TASKS, Task
from brainlike.results import REQUIRED_KEYS

FREQS = (250.0, 500.0, 1000.0, 2000.0, 4000.0)


def _task(n_per_class: int = 20) -> Task:
    labels = np.repeat([f"c{k}" for k in range(4)], n_per_class)
    folds = np.tile(["1", "2", "3", "4", "5"], len(labels) // 5)
    files = [f"audio/{i}.wav" for i in range(len(labels))]
    return Task(TASKS["esc10"], None, files, labels, folds, ["0" * 64] * len(files))


def test_records_have_one_row_per_fold_and_a_mean_row_with_contract_keys():
    task = _task()
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(4), 20)
    embeddings = {"a": (np.eye(4)[codes] * 5 + rng.normal(size=(80, 4))).astype(np.float32),
                  "b": rng.normal(size=(80, 5)).astype(np.float32)}
    records = evaluate_embeddings(embeddings, task, "linear", model="m")
    assert [r["fold"] for r in records] == ["1", "2", "3", "4", "5", None]
    assert all(set(REQUIRED_KEYS) <= set(r) for r in records)
    folds = [r["score"] for r in records[:5]]
    assert records[-1]["score"] == pytest.approx(np.mean(folds))
    assert records[-1]["sem"] == pytest.approx(np.std(folds) / 2.0)
    assert records[-1]["score"] >= 0.95 and records[0]["chance"] == 0.25
    assert all(r["task"] == "esc10" and r["probe"] == "linear" and r["metric"] == "accuracy" for r in records)


def test_global_score_is_the_mean_of_task_z_scores_across_models():
    scores = {"m1": {"t1": 0.5, "t2": 0.9}, "m2": {"t1": 0.7, "t2": 0.6}, "m3": {"t1": 0.9, "t2": 0.9}}
    records = [{"model": m, "task": t, "probe": "linear", "fold": None, "score": s}
               for m, row in scores.items() for t, s in row.items()]
    out = {r["model"]: r["score"] for r in global_scores(records)}
    t1 = np.array([0.5, 0.7, 0.9])
    t2 = np.array([0.9, 0.6, 0.9])
    z = ((t1 - t1.mean()) / t1.std() + (t2 - t2.mean()) / t2.std()) / 2
    np.testing.assert_allclose([out["m1"], out["m2"], out["m3"]], z, rtol=1e-12)
    assert global_scores(records[:2]) == []  # one model: undefined


def test_global_score_uses_the_tasks_every_model_has(caplog):
    records = [{"model": m, "task": t, "probe": "linear", "fold": None, "score": s}
               for m, t, s in [("m1", "t1", 0.5), ("m1", "t2", 0.9), ("m2", "t1", 0.7), ("m2", "t2", 0.6),
                               ("m3", "t1", 0.9), ("m3", "t2", 0.9), ("m4", "t1", 0.1)]]  # m4 lacks t2
    with caplog.at_level("WARNING"):
        out = {r["model"]: r["score"] for r in global_scores(records)}
    assert "['t2'] dropped: not every model has them" in caplog.text
    t1 = np.array([0.5, 0.7, 0.9, 0.1])
    np.testing.assert_allclose([out[m] for m in ("m1", "m2", "m3", "m4")], (t1 - t1.mean()) / t1.std(), rtol=1e-12)


def test_global_score_drops_a_task_constant_across_models(caplog):
    # the case where the two old rules disagreed: three models, one task where all three score 0.5
    records = [{"model": m, "task": t, "probe": "linear", "fold": None, "score": s}
               for m, t, s in [("a", "t1", 0.5), ("b", "t1", 0.5), ("c", "t1", 0.5),
                               ("a", "t2", 0.2), ("b", "t2", 0.4), ("c", "t2", 0.9)]]
    with caplog.at_level("WARNING"):
        out = {r["model"]: r["score"] for r in global_scores(records)}
    assert "['t1'] dropped: every model scores the same" in caplog.text
    t2 = np.array([0.2, 0.4, 0.9])
    np.testing.assert_allclose([out[m] for m in "abc"], (t2 - t2.mean()) / t2.std(), rtol=1e-12)
    only_constant = [r for r in records if r["task"] == "t1"]
    assert global_scores(only_constant) == []


def _write_tone_esc10(root) -> None:
    import soundfile as sf

    folder = root / "downstream" / "esc10"
    (folder / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(44100 * 5.0)) / 44100
    rows, sums = ["file,label,fold"], []
    for k, freq in enumerate(FREQS):
        for j in range(10):
            wave = 0.1 * np.sin(2 * np.pi * freq * (1 + 0.01 * rng.normal()) * t) + 0.01 * rng.normal(size=t.size)
            rel = f"audio/{j % 5 + 1}-{k}{j}-A.wav"
            sf.write(str(folder / rel), wave.astype(np.float32), 44100)
            rows.append(f"{rel},tone{k},{j % 5 + 1}")
            sums.append(f"{hashlib.sha256((folder / rel).read_bytes()).hexdigest()}  {rel}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n")


def test_downstream_command_end_to_end_on_tones(tmp_path, monkeypatch, capsys):
    from brainlike.cli import main

    _write_tone_esc10(tmp_path / "data")
    monkeypatch.setenv("BRAINLIKE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results"
    assert main(["-q", "downstream", "melspec", "--task", "esc10", "--json", "--out", str(out)]) == 0
    records = json.loads(capsys.readouterr().out)
    mean = [r for r in records if r["fold"] is None]
    assert len(mean) == 1 and mean[0]["score"] == 1.0  # pure tones an octave apart: trivially separable
    assert read_downstream(out) == records
    provenance = json.loads((out / "downstream_provenance.json").read_text())
    assert provenance["tasks"][0]["n_clips"] == 50 and provenance["probe"] == "linear"
    assert (tmp_path / "cache" / "embeddings").is_dir()  # embeddings are cached
    table = summary_table(records)
    assert table.loc[("melspec", "linear"), "esc10"] == 1.0


def test_downstream_command_unknown_task_is_one_line(capsys):
    from brainlike.cli import main

    assert main(["downstream", "melspec", "--task", "esc11"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("brainlike: error: unknown task 'esc11'") and "\n" not in err
