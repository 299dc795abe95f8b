"""The model validator catches deliberately broken toy models, passes good ones, and drives validate-model."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from brainlike.cli import main
from brainlike.errors import BrainlikeError
from brainlike.models import registry
from brainlike.models.base import AudioModel
from brainlike.models.validate import ValidationReport, synthetic_clips, validate_model

ALL = ["sample_rate", "layers", "runs", "finite", "stable-shapes", "deterministic", "batch-invariant",
       "input-dependent"]


class Framewise(AudioModel):
    """A correct model: per-frame RMS and log-energy of 10 ms frames, and a (batch, 1, 3) summary layer."""

    name = "framewise"
    sample_rate = 16000
    layers = ["frames", "summary"]

    def frames(self, waveforms: np.ndarray) -> np.ndarray:
        n = waveforms.shape[1] // 160
        framed = waveforms[:, : n * 160].reshape(len(waveforms), n, 160).astype(np.float64)
        rms = np.sqrt(np.mean(framed**2, axis=-1))
        return np.stack([rms, np.log(rms + 1e-6), framed.mean(-1)], axis=-1)

    def forward(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        frames = self.frames(waveforms)
        return {"frames": frames, "summary": frames.mean(axis=1)}


class Nondeterministic(Framewise):
    def __init__(self) -> None:
        self.rng = np.random.default_rng()

    def forward(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        out = super().forward(waveforms)
        out["frames"] = out["frames"] + 0.01 * self.rng.standard_normal(out["frames"].shape)
        return out


class HasNaN(Framewise):
    def forward(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        out = super().forward(waveforms)
        out["summary"][:, 0] = np.nan
        return out


class BatchDependent(Framewise):
    """Normalises over the batch (like batch-norm in training mode)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def forward(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        out = super().forward(waveforms)
        out["frames"] = out["frames"] + self.scale * out["frames"].mean(axis=0, keepdims=True)
        return out


class ShapeChanging(Framewise):
    """Each call returns one more frame than the last."""

    def __init__(self) -> None:
        self.calls = 0

    def forward(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        out = super().forward(waveforms)
        out["frames"] = np.concatenate([out["frames"]] + [out["frames"][:, :1]] * self.calls, axis=1)
        return out


class DuplicateLayers(Framewise):
    layers = ["frames", "frames"]


class BadRate(Framewise):
    sample_rate = 44100.0  # a float


class Constant(Framewise):
    def forward(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        return {"frames": np.ones((len(waveforms), 5, 3)), "summary": np.zeros((len(waveforms), 1, 2))}


class Crashes(Framewise):
    def forward(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        raise RuntimeError("boom")


class WrongBatch(Framewise):
    def forward(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        out = super().forward(waveforms)
        out["frames"] = out["frames"][:1]
        return out


def failing(report: ValidationReport) -> set[str]:
    assert [c.name for c in report.checks] == ALL
    return {c.name for c in report.failed()}


def test_good_model_passes_everything() -> None:
    report = validate_model(Framewise())
    assert report.ok and failing(report) == set()
    assert "3 clips alone == batched" in report.format()


@pytest.mark.parametrize("model, expected", [
    (Nondeterministic(), {"deterministic", "batch-invariant"}),
    (HasNaN(), {"finite"}),
    (BatchDependent(), {"batch-invariant"}),
    (ShapeChanging(), {"stable-shapes", "deterministic", "batch-invariant"}),
    (DuplicateLayers(), {"layers", "runs", "finite", "stable-shapes", "deterministic", "batch-invariant",
                         "input-dependent"}),
    (BadRate(), {"sample_rate", "runs", "finite", "stable-shapes", "deterministic", "batch-invariant",
                 "input-dependent"}),
    (Constant(), {"input-dependent"}),
    (Crashes(), {"runs", "finite", "stable-shapes", "deterministic", "batch-invariant", "input-dependent"}),
    (WrongBatch(), {"runs", "finite", "stable-shapes", "deterministic", "batch-invariant", "input-dependent"}),
], ids=lambda v: type(v).__name__ if isinstance(v, AudioModel) else "")
def test_broken_models_fail_the_right_checks(model: AudioModel, expected: set[str]) -> None:
    report = validate_model(model)
    assert failing(report) == expected
    assert not report.ok


def test_batch_tolerance_is_relative() -> None:
    """A 1e-6 relative batch dependence (float noise) passes; a 1e-2 one fails."""
    assert validate_model(BatchDependent(scale=1e-6)).ok
    assert failing(validate_model(BatchDependent(scale=1e-2))) == {"batch-invariant"}


def test_synthetic_clips() -> None:
    clips = synthetic_clips(16000, seconds=1.0, n=4)
    assert clips.shape == (4, 16000) and clips.dtype == np.float32
    np.testing.assert_allclose(np.sqrt(np.mean(clips[0] ** 2)), 0.3 / np.sqrt(2), rtol=1e-3)
    np.testing.assert_allclose(clips[3], 1.25 * clips[0], rtol=1e-6)
    with pytest.raises(BrainlikeError, match="at least 2 clips"):
        validate_model(Framewise(), n_clips=1)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch):
    """Register toy models as ``toy-good`` / ``toy-batchdep`` for the CLI."""
    registry.discover()
    for name, cls in {"toy-good": Framewise, "toy-batchdep": BatchDependent}.items():
        entry = registry.ModelEntry(name=name, build=lambda random, _c=cls: _c(), family="test",
                                    description="validator test model", has_random_twin=False)
        monkeypatch.setitem(registry.MODELS, name, entry)


def test_cli_exit_codes(registered, capsys) -> None:
    assert main(["-q", "validate-model", "toy-good"]) == 0
    text = capsys.readouterr().out
    assert "PASS  batch-invariant" in text and "toy-good: all checks passed" in text
    assert main(["-q", "validate-model", "toy-batchdep", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["model"] == "toy-batchdep"
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["batch-invariant"]
    assert main(["-q", "validate-model", "no-such-model-xyz"]) == 2  # a user error: one line, exit 2
    assert "unknown model" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="needs transformers")
def test_hf_tiny_models_validate() -> None:
    assert validate_model("hf:random/data2vec-audio?preset=tiny", seconds=0.5).ok
