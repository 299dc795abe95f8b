"""hear: family (a tiny HEAR module written here) and the HEAR export round trip (brainlike.hear_api)."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from brainlike import hear_api
from brainlike.cli import main
from brainlike.errors import BrainlikeError, ModelError
from brainlike.models.registry import load_model

RATE = 8000
FRAME, HOP = 200, 80

TOY_MODULE = textwrap.dedent(f'''
    """A HEAR module: frame RMS and frame mean (200-sample frames, 80-sample hop) at {RATE} Hz, times a gain."""
    import json
    import torch

    class Model(torch.nn.Module):
        sample_rate = {RATE}
        scene_embedding_size = timestamp_embedding_size = 2

        def __init__(self, gain):
            super().__init__()
            self.gain = gain

    def load_model(model_file_path=""):
        gain = json.load(open(model_file_path))["gain"] if model_file_path else 1.0
        return Model(gain)

    def get_timestamp_embeddings(audio, model):
        frames = audio.unfold(1, {FRAME}, {HOP})  # (n, T, {FRAME})
        rms = frames.pow(2).mean(-1).sqrt()
        emb = model.gain * torch.stack([rms, frames.mean(-1)], dim=-1)
        centres = ({FRAME} / 2 + {HOP} * torch.arange(frames.shape[1])) * 1000.0 / {RATE}
        return emb, centres.expand(audio.shape[0], -1)

    def get_scene_embeddings(audio, model):
        emb, _ = get_timestamp_embeddings(audio, model)
        return emb.mean(1)
''')


@pytest.fixture
def toy_module(tmp_path: Path) -> Path:
    path = tmp_path / "toy_hear_rms.py"
    path.write_text(TOY_MODULE)
    return path


def tones() -> np.ndarray:
    """1 s: 500 Hz sine of amplitude 0.5, and a constant 0.25 (DC)."""
    t = np.arange(RATE) / RATE
    return np.stack([0.5 * np.sin(2 * np.pi * 500 * t), np.full(RATE, 0.25)]).astype(np.float32)


@pytest.mark.numerics
def test_hear_module_from_file_known_values(toy_module: Path) -> None:
    model = load_model(f"hear:{toy_module}")
    assert model.sample_rate == RATE
    assert model.layers == ["timestamp_embeddings", "scene_embeddings"]
    assert model.weights_id == hashlib.sha256(toy_module.read_bytes()).hexdigest()
    out = model(tones())
    n_frames = (RATE - FRAME) // HOP + 1
    assert out["timestamp_embeddings"].shape == (2, n_frames, 2)
    assert out["scene_embeddings"].shape == (2, 1, 2)
    # 500 Hz at 8 kHz: 16 samples a period, a 200-sample frame holds 12.5 periods -> RMS within 1% of A/sqrt(2)
    np.testing.assert_allclose(out["timestamp_embeddings"][0, :, 0], 0.5 / np.sqrt(2), rtol=0.01)
    np.testing.assert_allclose(out["timestamp_embeddings"][1], np.tile([0.25, 0.25], (n_frames, 1)), rtol=1e-6)
    # scene = mean over frames, summed in float32 by torch: compare with a float64 mean, to within float32 rounding
    # of a sum of 98 terms (relative to their size: the sine's frame means are near 0)
    timestamps = out["timestamp_embeddings"].astype(np.float64)
    np.testing.assert_allclose(out["scene_embeddings"][:, 0], timestamps.mean(1), rtol=0,
                               atol=1e-5 * np.abs(timestamps).max())


def test_hear_module_by_name_with_model_file(toy_module: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(toy_module.parent))
    weights = tmp_path / "gain.json"
    weights.write_text(json.dumps({"gain": 3.0}))
    plain = load_model("hear:toy_hear_rms")
    scaled = load_model(f"hear:toy_hear_rms:{weights}")
    assert scaled.weights_id == hashlib.sha256(weights.read_bytes()).hexdigest()
    a, b = plain(tones()), scaled(tones())
    np.testing.assert_allclose(b["timestamp_embeddings"], 3 * a["timestamp_embeddings"], rtol=1e-6)


def test_hear_errors(tmp_path: Path) -> None:
    not_hear = tmp_path / "not_hear.py"
    not_hear.write_text("def load_model(model_file_path=''):\n    return None\n")
    with pytest.raises(BrainlikeError, match="not a HEAR module.*get_timestamp_embeddings"):
        load_model(f"hear:{not_hear}")
    with pytest.raises(BrainlikeError, match="does not exist"):
        load_model(f"hear:{tmp_path / 'missing.py'}")
    with pytest.raises(BrainlikeError, match="cannot import 'no_such_hear_module_xyz'"):
        load_model("hear:no_such_hear_module_xyz")
    with pytest.raises(BrainlikeError, match="no random-init twin"):
        load_model("hear@random")
    no_rate = tmp_path / "no_rate.py"
    no_rate.write_text("def load_model(model_file_path=''):\n    return object()\n"
                       "def get_timestamp_embeddings(audio, model):\n    return audio, audio\n")
    with pytest.raises(ModelError, match="integer sample_rate"):
        load_model(f"hear:{no_rate}")


def test_hear_bad_output_shapes(tmp_path: Path) -> None:
    bad = tmp_path / "bad_shapes.py"
    bad.write_text(textwrap.dedent("""
        class M:
            sample_rate = 16000
        def load_model(model_file_path=""):
            return M()
        def get_timestamp_embeddings(audio, model):
            return audio[:, :, None], audio[:, :3]
    """))
    model = load_model(f"hear:{bad}")
    with pytest.raises(ModelError, match="timestamps shape"):
        model(np.ones((2, 100), np.float32))


def test_export_roundtrip_melspec(tmp_path: Path) -> None:
    """Export a brainlike model layer as a HEAR module, score it back via hear:, get the same embeddings."""
    path = hear_api.export_module("melspec", tmp_path, "melspec_hear", layer="logmel64")
    assert path == tmp_path / "melspec_hear.py"
    back = load_model(f"hear:{path}")
    direct = load_model("melspec")
    x = np.random.default_rng(3).standard_normal((3, 16000)).astype(np.float32) * 0.1
    out, ref = back(x), direct(x)["logmel64"]
    assert back.sample_rate == direct.sample_rate == 16000
    np.testing.assert_allclose(out["timestamp_embeddings"], ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["scene_embeddings"][:, 0], ref.mean(1), rtol=1e-5, atol=1e-6)


def test_hear_api_timestamps_and_env(monkeypatch) -> None:
    import torch

    monkeypatch.setenv(hear_api.ENV_MODEL, "melspec#mfcc20")
    model = hear_api.load_model()
    assert (model.sample_rate, model.layer, model.timestamp_embedding_size) == (16000, "mfcc20", 20)
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32))
    emb, ts = hear_api.get_timestamp_embeddings(audio, model)
    assert emb.shape[0] == 2 and emb.shape[2] == 20 and ts.shape == emb.shape[:2]
    step = 500.0 / emb.shape[1]  # 0.5 s spread evenly over the frames, centres
    np.testing.assert_allclose(ts[0].numpy(), (np.arange(emb.shape[1]) + 0.5) * step, rtol=1e-6)
    scene = hear_api.get_scene_embeddings(audio, model)
    np.testing.assert_allclose(scene.numpy(), emb.numpy().mean(1), rtol=1e-5, atol=1e-6)
    assert hear_api.load_model("melspec").layer == "mfcc20"  # default: the last layer
    with pytest.raises(BrainlikeError, match="has no layer 'nope'"):
        hear_api.load_model("melspec#nope")


def test_export_errors(tmp_path: Path) -> None:
    with pytest.raises(BrainlikeError, match="not a Python identifier"):
        hear_api.export_module("melspec", tmp_path, "not-valid")
    with pytest.raises(BrainlikeError, match="has no layer"):
        hear_api.export_module("melspec", tmp_path, "ok_name", layer="missing")


def test_hear_export_cli(tmp_path: Path, capsys) -> None:
    assert main(["-q", "hear-export", "melspec", "--layer", "logmel128", "--name", "cli_hear", "--out",
                 str(tmp_path)]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written == tmp_path / "cli_hear.py"
    assert 'LAYER = \'logmel128\'' in written.read_text()
    assert load_model(f"hear:{written}").layers == ["timestamp_embeddings", "scene_embeddings"]
