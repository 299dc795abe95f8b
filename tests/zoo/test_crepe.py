"""CREPE full / tiny: framing, pitch decoding, random twins (default) and the 440 Hz check on real weights (zoo)."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.errors import BrainlikeError
from brainlike.models.registry import load_model
from brainlike.models.zoo import store
from brainlike.models.zoo.crepe import CENTS_OFFSET, CrepeModel, frame_audio, salience_to_hz

# Resolved at import (collection), before the session fixture points BRAINLIKE_CACHE at a fresh folder: installed
# weights live in the user's real cache.
ZOO_ROOT = store.zoo_root()
FULL_DIMS = [1024 * 128, 128 * 64, 128 * 32, 128 * 16, 256 * 8, 512 * 4, 360]
TINY_DIMS = [128 * 128, 16 * 64, 16 * 32, 16 * 16, 32 * 8, 64 * 4, 360]


def tone(freq: float = 440.0, seconds: float = 2.0, rate: int = 16000) -> np.ndarray:
    """The fact sheet's test clip: 0.5 sin(2 pi f t) + 0.05 N(0, 1) (numpy default_rng(0))."""
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.05 * np.random.default_rng(0).standard_normal(len(t))
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def pretrained(capacity: str) -> CrepeModel:
    name = f"crepe-{capacity}"
    if not store.is_installed(name, root=ZOO_ROOT):
        pytest.skip(f"{name} weights not installed (brainlike zoo install {name})")
    return CrepeModel(capacity, store.weights_path(name, root=ZOO_ROOT), store.weights_sha256(name, root=ZOO_ROOT))


def test_frame_audio_matches_numpy_framing():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((2, 3000)).astype(np.float32)
    frames = frame_audio(torch.from_numpy(x), 320).numpy()
    assert frames.shape == (2, 1 + 3000 // 320, 1024)
    padded = np.pad(x, ((0, 0), (512, 512)))
    for i in (0, 4, 9):
        ref = padded[:, i * 320 : i * 320 + 1024].astype(np.float64)
        ref = (ref - ref.mean(1, keepdims=True)) / ref.std(1, keepdims=True)
        np.testing.assert_allclose(frames[:, i], ref, atol=2e-5)


def test_salience_decoding_known_bins():
    one_hot = np.eye(360)[[0, 359]]
    np.testing.assert_allclose(salience_to_hz(one_hot), [31.70, 2005.5], rtol=2e-4)
    # a narrow bump centred between bins at the position of 440 Hz decodes to 440 Hz
    position = (1200 * np.log2(440 / 10) - CENTS_OFFSET) / 20
    bump = np.exp(-0.5 * ((np.arange(360) - position) / 0.8) ** 2)
    assert salience_to_hz(bump) == pytest.approx(440.0, rel=1e-3)


@pytest.mark.parametrize("capacity,dims,frames", [("tiny", TINY_DIMS, 13), ("full", FULL_DIMS, 6)])
def test_random_twin_layers_shapes_determinism_batching(capacity, dims, frames):
    model = load_model(f"crepe-{capacity}@random")
    assert model.weights_id == "random:0" and model.sample_rate == 16000
    assert model.layers == ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "classifier"]
    x = np.random.default_rng(2).standard_normal((2, 4000)).astype(np.float32) * 0.1
    out = model(x)
    assert [out[k].shape for k in model.layers] == [(2, frames, d) for d in dims]
    again = load_model(f"crepe-{capacity}@random")(x[1:])
    for layer in model.layers:
        np.testing.assert_allclose(again[layer][0], out[layer][1], rtol=1e-4, atol=1e-5)
    assert np.all((out["classifier"] >= 0) & (out["classifier"] <= 1))


def test_hop_is_recorded_in_preprocessing():
    assert CrepeModel("full").preprocessing["hop_ms"] == 50.0
    assert CrepeModel("tiny").preprocessing["hop_ms"] == 20.0
    assert CrepeModel("tiny", hop_ms=10).hop == 160


def test_pretrained_not_installed_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path))
    with pytest.raises(BrainlikeError, match="brainlike zoo install crepe-tiny"):
        load_model("crepe-tiny")


@pytest.mark.zoo
@pytest.mark.parametrize("capacity,expected", [("tiny", 440.28), ("full", 440.37)])
def test_pretrained_crepe_hears_440_hz(capacity, expected):
    model = pretrained(capacity)
    salience = model(tone()[None])["classifier"][0]
    pitch = float(np.median(salience_to_hz(salience)))
    assert pitch == pytest.approx(440.0, rel=0.01)
    assert pitch == pytest.approx(expected, abs=0.3)  # fact-sheet value at a 10 ms hop
    assert np.median(salience.max(axis=1)) > 0.9
    assert model.weights_id == store.weights_sha256(f"crepe-{capacity}", root=ZOO_ROOT)
