"""TorchFCPE: mel front end, checkpoint mapping (weight-norm folding), decoding, random twin (default); real
weights: 440 Hz (zoo)."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.models.registry import load_model
from brainlike.models.zoo import store
from brainlike.models.zoo.fcpe import LAYERS, FcpeModel, load_state, log_mel, salience_to_hz

ZOO_ROOT = store.zoo_root()  # resolved before the session fixture isolates BRAINLIKE_CACHE


def tone(freq: float = 440.0, seconds: float = 2.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.05 * np.random.default_rng(0).standard_normal(len(t))
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def pretrained() -> FcpeModel:
    if not store.is_installed("fcpe", root=ZOO_ROOT):
        pytest.skip("fcpe weights not installed (brainlike zoo install fcpe)")
    return FcpeModel(store.weights_path("fcpe", root=ZOO_ROOT), store.weights_sha256("fcpe", root=ZOO_ROOT))


def test_log_mel_frames_and_tone_band():
    torch = pytest.importorskip("torch")
    mel = log_mel(torch.from_numpy(tone(1000.0, 1.0))[None])[0].numpy()
    assert mel.shape == (16000 // 160 + 1, 128)
    np.testing.assert_array_equal(mel[-1], mel[-2])  # the last computed frame is repeated
    # Slaney scale, 128 bands over mel 0 ... 45.245: 1 kHz (mel 15) sits at band ~ 15 / 45.245 * 129 - 1
    assert abs(int(np.median(mel.argmax(axis=1))) - (15 / 45.245 * 129 - 1)) <= 1.5
    assert mel.min() >= np.log(1e-5) - 1e-6


def test_decoding_known_answers():
    np.testing.assert_allclose(salience_to_hz(np.eye(360)[[0, 359]] * 0.9), [32.7, 1975.5], rtol=1e-6)
    assert salience_to_hz(np.full(360, 0.005)) == 0.0  # below the 0.006 voicing threshold
    cents = 1200 * np.log2(440 / 10)
    table = np.linspace(1200 * np.log2(3.27), 1200 * np.log2(197.55), 360)
    bump = np.exp(-0.5 * ((table - cents) / 15.0) ** 2)
    assert salience_to_hz(bump) == pytest.approx(440.0, rel=1e-3)


def test_checkpoint_mapping_folds_weight_norm(tmp_path):
    torch = pytest.importorskip("torch")
    model = FcpeModel()
    state = {key: value.clone() for key, value in model.module.state_dict().items()}
    weight = state.pop("output_proj.weight")
    g = torch.rand(360, 1) + 0.5
    state["output_proj.weight_g"] = g
    state["output_proj.weight_v"] = weight * 3.0
    for i in range(6):  # attention-only norms and decoding buffers in the real file are ignored
        state[f"net.encoder_layers.{i}.norm.weight"] = torch.ones(512)
        state[f"net.encoder_layers.{i}.norm.bias"] = torch.zeros(512)
    state["cent_table"] = torch.zeros(360)
    state["gaussian_blurred_cent_mask"] = torch.tensor(1.0)
    path = tmp_path / "fcpe.pt"
    torch.save({"global_step": 1, "model": state, "config_dict": {}}, path)
    loaded = load_state(path)
    expected = g * weight / weight.norm(dim=1, keepdim=True)
    torch.testing.assert_close(loaded["output_proj.weight"], expected)
    assert FcpeModel(path).weights_id == store.sha256_file(path)


def test_random_twin_shapes_determinism_batching():
    model = load_model("fcpe@random")
    assert model.sample_rate == 16000 and model.layers == LAYERS and model.weights_id == "random:0"
    x = np.random.default_rng(3).standard_normal((2, 8000)).astype(np.float32) * 0.1
    out = model(x)
    assert [out[k].shape for k in LAYERS] == [(2, 51, 512)] * 7 + [(2, 51, 360)]
    single = load_model("fcpe@random")(x[1:])
    for layer in LAYERS:
        np.testing.assert_allclose(single[layer][0], out[layer][1], rtol=1e-4, atol=1e-5)


@pytest.mark.zoo
def test_pretrained_fcpe_hears_440_hz():
    salience = pretrained()(tone()[None])["output"][0]
    pitch = float(np.median(salience_to_hz(salience)))
    assert pitch == pytest.approx(440.0, rel=0.01)
    assert pitch == pytest.approx(440.31, abs=0.2)  # fact sheet: 440.31 Hz
