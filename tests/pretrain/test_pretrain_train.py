"""Training: the loss goes down, resuming after kill -9 is bit-identical, checkpoints score as models."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from brainlike.pretrain.corpus import build_synthetic
from brainlike.pretrain.mae import PretrainError
from brainlike.pretrain.presets import preset
from brainlike.pretrain.train import SegmentSampler, learning_rate, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_synthetic(tmp_path_factory.mktemp("corpus") / "synthetic", n_clips=24, seconds=4.0, seed=0)


@pytest.fixture(scope="module")
def tiny_run(corpus, tmp_path_factory) -> Path:
    """A tiny run of 80 steps (checkpoints at 0, 40, 80)."""
    out = tmp_path_factory.mktemp("run") / "tiny"
    train(replace(preset("tiny"), steps=80, checkpoint_every=40), corpus, out, progress=False)
    return out


def _losses(run: Path) -> list[tuple[int, float]]:
    with open(run / "loss.csv") as handle:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(handle)]


@pytest.mark.numerics
def test_loss_goes_down_on_synthetic_corpus(tiny_run):
    losses = [loss for _, loss in _losses(tiny_run)]
    assert len(losses) == 80
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])  # seen 0.25-0.29 over 20 training seeds
    assert (tiny_run / "loss.png").stat().st_size > 1000
    assert sorted(p.name for p in (tiny_run / "checkpoints").iterdir()) == ["step_000000", "step_000040",
                                                                              "step_000080"]


@pytest.mark.numerics
def test_discrete_target_from_mel_codes_trains(corpus, tmp_path):
    config = replace(preset("tiny"), steps=30, checkpoint_every=30, kmeans_clips=8)
    config = replace(config, model=replace(config.model, target="discrete", n_codes=16, unmasked_weight=0.1))
    result = train(config, corpus, tmp_path / "discrete", progress=False)
    # cross-entropy over 16 codes at the start: about log(16), above it by the spread of untrained logits (over 20
    # training seeds 3.08-4.40 = log(16) + 0.3 ... + 1.6); then it falls (final / first 0.27-0.47 over those seeds)
    assert 0.8 * np.log(16) < result.first_loss < 2 * np.log(16)
    assert result.final_loss < 0.75 * result.first_loss


def test_teacher_codes_need_a_matching_teacher(corpus, tiny_run, tmp_path):
    config = replace(preset("tiny"), steps=10, checkpoint_every=10, kmeans_clips=8)
    config = replace(config, model=replace(config.model, target="discrete", n_codes=8, code_source="teacher",
                                           teacher=str(tiny_run), teacher_layer="block2"))
    result = train(config, corpus, tmp_path / "student", progress=False)
    assert np.isfinite(result.final_loss)
    bad = replace(config, model=replace(config.model, teacher_layer="block9"))
    with pytest.raises(PretrainError, match="no layer 'block9'"):
        train(bad, corpus, tmp_path / "student2", progress=False)


def test_data_order_and_schedule():
    sampler = SegmentSampler(type("C", (), {"clips": [np.arange(100, dtype=np.float32)], "path": "x",
                                            "seconds": 1.0})(), 10, seed=0)
    first_epoch = np.concatenate([sampler.batch(s, 5)[:, 0] for s in range(2)])
    assert sorted(first_epoch.tolist()) == list(range(0, 100, 10))  # one epoch = every segment once
    cfg = preset("tiny")
    assert learning_rate(cfg, 0) == pytest.approx(cfg.lr / cfg.warmup_steps)
    assert learning_rate(cfg, cfg.warmup_steps) == pytest.approx(cfg.lr)
    assert learning_rate(cfg, cfg.steps) == pytest.approx(cfg.min_lr)


def test_changed_config_in_same_folder_fails(corpus, tiny_run):
    with pytest.raises(PretrainError, match="different configuration"):
        train(replace(preset("tiny"), steps=81, checkpoint_every=40), corpus, tiny_run, progress=False)


def _pretrain_cmd(corpus: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", "import sys; from brainlike.cli import main; sys.exit(main())", "-q", "pretrain", "--config", "tiny", "--corpus", str(corpus),
            "--out", str(out), "--steps", "60", "--checkpoint-every", "10", "--threads", "1"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_after_kill_gives_identical_weights(corpus, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_pretrain_cmd(corpus, straight), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(_pretrain_cmd(corpus, killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "step_000010").is_dir():
        assert proc.poll() is None and time.time() < deadline, "training ended before the first checkpoint"
        time.sleep(0.05)
    still_running = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert still_running and not (killed / "checkpoints" / "step_000060").exists()
    done = subprocess.run(_pretrain_cmd(corpus, killed) + ["--json"], check=True, env=env, capture_output=True,
                          text=True)
    summary = json.loads(done.stdout)
    assert summary["resumed_from"] is not None and summary["resumed_from"] < 60
    for step in ("step_000010", "step_000060"):
        assert _sha(straight / "checkpoints" / step / "model.safetensors") == \
            _sha(killed / "checkpoints" / step / "model.safetensors")
    assert _losses(straight) == _losses(killed)


def test_tiny_checkpoints_score_as_brainlike_models(tiny_run, data_root, tmp_path):
    """The mae: checkpoints go through the scoring API; the checkpoints experiment tabulates layers x steps."""
    from brainlike.api import score
    from brainlike.pretrain.experiments import run

    records = score([f"mae:{tiny_run}"], dataset="nh2015-components", metric="all", progress=False)
    overall = [r for r in records if r["metric"] == "regression" and r["target"] == "all"]
    assert len(overall) == 1 and 0.0 < overall[0]["score"] <= 1.0
    assert overall[0]["layer"] in ("embedding", "block1", "block2")
    table_path = run("checkpoints", out=tmp_path / "exp", run_dir=str(tiny_run))
    import pandas as pd

    table = pd.read_csv(tmp_path / "exp" / "checkpoints.csv")
    assert sorted(table["step"].unique()) == [0, 40, 80]
    assert set(table["layer"]) == {"embedding", "block1", "block2"}
    assert set(table["metric"]) == {"regression", "rsa"}
    assert table["score"].between(-1, 1).all() and table_path.read_text().startswith("| step |")
    assert (tmp_path / "exp" / "checkpoints.png").is_file()


@pytest.mark.slow
def test_finetune_changes_weights_and_saves_a_loadable_checkpoint(tiny_run, data_root, tmp_path):
    from brainlike.models.registry import load_model
    from brainlike.pretrain.finetune import finetune_checkpoint

    result = finetune_checkpoint(tiny_run, "esc10", tmp_path / "ft", epochs=1)
    assert 0.0 <= result["accuracy_before"] <= 1.0 and 0.0 <= result["accuracy_after"] <= 1.0
    assert result["n_test"] == 80  # esc10: one fold of 80 clips
    before, after = load_model(f"mae:{tiny_run}"), load_model(f"mae:{tmp_path / 'ft'}")
    assert before.weights_id != after.weights_id and before.layers == after.layers
