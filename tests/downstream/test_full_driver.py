"""scripts/downstream_full.py: gathering brain records, the link three ways and the paper side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from brainlike.results import Results
from load_script import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "downstream_full.py"
TRAINED = {"yamnet": 0.50, "aisfx": 0.42, "soundnet": 0.30, "silero-vad": 0.36}
TWINS = {"yamnet@random": 0.20, "aisfx@random": 0.26, "soundnet@random": 0.12}


@pytest.fixture(scope="module")
def driver():
    return load_script(SCRIPT)


def _brain_folders(root: Path) -> None:
    """``root/<dataset>/<model>/`` results folders as ``brainlike score --out`` writes them."""
    for dataset in ("nh2015-components", "ecog-nh2022"):
        for model, score in {**TRAINED, **TWINS}.items():
            rows = [{"model": model, "dataset": dataset, "metric": "regression", "protocol": "pepino2025",
                     "selection": "nested-cv", "target": "all", "score": score, "sem": None, "layer": "x"},
                    {"model": model, "dataset": dataset, "metric": "rsa", "protocol": "pepino2025",
                     "selection": "cv", "target": "all", "score": score / 2, "sem": None, "layer": "x"}]
            Results(rows).save(root / dataset / model.replace("@", "_"))


def _downstream_folders(root: Path) -> None:
    """One folder per model; task scores rise with the brain score (t1) or fall with it (t2)."""
    for model, score in {**TRAINED, **TWINS}.items():
        recs = [{"model": model, "task": "t1", "probe": "linear", "fold": None, "score": score,
                 "chance": 0.1},
                {"model": model, "task": "t2", "probe": "linear", "fold": None, "score": 1 - score ** 2,
                 "chance": 0.1}]
        Results(downstream=recs, downstream_provenance={"kind": "downstream"}).save(root / model.replace("@", "_"))


def test_brain_gathers_one_jsonl_per_dataset(driver, tmp_path):
    _brain_folders(tmp_path / "scores")
    assert driver.main(["brain", "--scores", str(tmp_path / "scores"), "--brain", str(tmp_path / "brain")]) == 0
    files = sorted(p.name for p in (tmp_path / "brain").iterdir())
    assert files == ["ecog-nh2022.jsonl", "nh2015-components.jsonl"]
    back = Results.load(tmp_path / "brain" / "nh2015-components.jsonl", require="records")
    assert {(r["model"], r["metric"]): r["score"] for r in back} == {
        **{(m, "regression"): s for m, s in {**TRAINED, **TWINS}.items()},
        **{(m, "rsa"): s / 2 for m, s in {**TRAINED, **TWINS}.items()}}


def test_link_three_ways_and_side_by_side(driver, tmp_path):
    _brain_folders(tmp_path / "scores")
    _downstream_folders(tmp_path / "models")
    driver.main(["brain", "--scores", str(tmp_path / "scores"), "--brain", str(tmp_path / "brain")])
    out = tmp_path / "link"
    assert driver.main(["link", "--out", str(tmp_path / "models"), "--brain", str(tmp_path / "brain"),
                        "--link-out", str(out), "--bootstrap", "200"]) == 0
    rows = [json.loads(line) for line in (out / "link.jsonl").read_text().splitlines()]
    assert {r["subset"] for r in rows} == {"all", "trained", "twins"}
    row = next(r for r in rows if r["subset"] == "trained" and r["downstream"] == "t1"
               and r["brain_dataset"] == "nh2015-components" and r["brain_metric"] == "regression")
    assert sorted(row["models"]) == sorted(TRAINED) and row["pearson_r"] == pytest.approx(1.0)
    # the global score within the subset: mean of the task z-scores; its r with the brain score against scipy
    glob = next(r for r in rows if r["subset"] == "twins" and r["downstream"] == "global"
                and r["brain_dataset"] == "ecog-nh2022" and r["brain_metric"] == "rsa")
    x = [TWINS[m] / 2 for m in glob["models"]]
    t1, t2 = [TWINS[m] for m in glob["models"]], [1 - TWINS[m] ** 2 for m in glob["models"]]
    z = [(a + b) / 2 for a, b in zip(stats.zscore(t1), stats.zscore(t2))]  # population SD, twins only
    assert glob["downstream_scores"] == pytest.approx(z)
    assert glob["pearson_r"] == pytest.approx(stats.pearsonr(x, glob["downstream_scores"])[0])
    text = (out / "paper_side_by_side.md").read_text()
    assert "| nh2015-components | regression | 0.902 | 0.895 |" in text
    assert "| ecog-nh2022 | regression | n/a | n/a |" in text  # the paper's voxel numbers only beside NH2015
    assert "global downstream score (linear probe," in text
    primary = sorted(p.name for p in (out / "link_plots").iterdir())
    assert len(primary) == 3 * 2 * 2  # subsets x datasets x (regression nested-cv, rsa cv)


def _run_script(args: list[str], env: dict[str, str]) -> int:
    """The driver as a program (its worker processes must import it)."""
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, timeout=600).returncode


def test_run_cached_only_refuses_to_embed_then_reproduces_the_records(driver, tmp_path):
    """The timed full evaluation: ``--cached-only`` never embeds; on cached embeddings it repeats a run exactly."""
    from test_evaluate import _write_tone_esc10

    _write_tone_esc10(tmp_path / "data")
    env = {**os.environ, "BRAINLIKE_DATA": str(tmp_path / "data"), "BRAINLIKE_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    base = ["run", "melspec", "envelope", "--task", "esc10", "--workers", "1"]
    timing = tmp_path / "timing.json"
    assert _run_script(base + ["--cached-only", "--out", str(tmp_path / "refused"), "--timing", str(timing)],
                       env) == 0
    refused = json.loads(timing.read_text())
    assert refused["errors"] == 2 and refused["models"] == 0 and not (tmp_path / "refused" / "melspec").exists()
    log = [json.loads(line) for line in (tmp_path / "refused" / "driver_log.jsonl").read_text().splitlines()]
    assert all("embeddings not in the cache for esc10 (absent)" in row["error"] for row in log)

    assert _run_script(base + ["--out", str(tmp_path / "first")], env) == 0
    assert _run_script(base + ["--cached-only", "--out", str(tmp_path / "again"), "--timing", str(timing)],
                       env) == 0
    again = json.loads(timing.read_text())
    assert again["errors"] == 0 and again["models"] == 2 and again["all_embeddings_cached"] is True
    assert again["workers_cpu_s"] >= again["probe_cpu_s"] > 0
    assert driver.main(["compare", str(tmp_path / "first"), str(tmp_path / "again")]) == 0
    # a changed score is reported
    folder = tmp_path / "again" / "melspec"
    changed = Results.load(folder, require="downstream")
    records = [{**r, "score": r["score"] - 0.1} if r["fold"] is None else r for r in changed.downstream]
    Results(downstream=records, downstream_provenance=changed.downstream_provenance).save(folder)
    assert driver.main(["compare", str(tmp_path / "first"), str(tmp_path / "again")]) == 1


def test_summary_takes_embedding_times_from_provenance_when_the_log_lacks_them(driver, tmp_path):
    """A worker that outlived its driver leaves no log line; its provenance still holds the embedding times."""
    sets = {"esc10": {"n_clips": 4, "cache": "absent", "cpu_s": 2.0, "wall_s": 2.5, "clips_per_cpu_s": 2.0},
            "fsdd": {"n_clips": 4, "cache": "cached", "cpu_s": 0.01, "wall_s": 0.01, "clips_per_cpu_s": 400.0}}
    for model, log_it in (("yamnet", True), ("aisfx", False)):
        timing = {"embed_s": 2.5, "probe_s": 1.0, "embed_cpu_s": 2.0, "probe_cpu_s": 1.0, "sets": sets}
        recs = [{"model": model, "task": "esc10", "probe": "linear", "fold": None, "score": 0.5, "chance": 0.1}]
        prov = {"kind": "downstream", "runs": {"linear": {"timings": {model: timing}}}}
        Results(downstream=recs, downstream_provenance=prov).save(tmp_path / model)
        if log_it:
            entry = {"model": model, "probe": "linear", **timing, "finished": "2026-12-05T00:00:00Z"}
            (tmp_path / "driver_log.jsonl").write_text(json.dumps(entry) + "\n")
    assert driver.main(["summary", "--out", str(tmp_path)]) == 0
    import pandas as pd

    frame = pd.read_csv(tmp_path / "throughput.csv")
    assert sorted(frame["model"]) == ["aisfx", "yamnet"]  # one row each: the cached set and duplicates dropped
    assert frame["cpu_s"].tolist() == [2.0, 2.0]
    assert "2 models" in (tmp_path / "throughput.md").read_text()
