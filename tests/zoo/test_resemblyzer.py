"""Resemblyzer: front end, partial windows, split LSTM == stacked LSTM (default); real weights: two clips of one
espeak-ng voice embed closer than clips of two voices (zoo)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from brainlike.models.registry import load_model
from brainlike.models.zoo import store
from brainlike.models.zoo.resemblyzer import (
    LAYERS,
    ResemblyzerModel,
    load_state,
    mel_spectrogram,
    normalize_volume,
    partial_slices,
)

ZOO_ROOT = store.zoo_root()  # resolved before the session fixture isolates BRAINLIKE_CACHE


def pretrained() -> ResemblyzerModel:
    if not store.is_installed("resemblyzer", root=ZOO_ROOT):
        pytest.skip("resemblyzer weights not installed (brainlike zoo install resemblyzer)")
    return ResemblyzerModel(store.weights_path("resemblyzer", root=ZOO_ROOT),
                            store.weights_sha256("resemblyzer", root=ZOO_ROOT))


@pytest.mark.parametrize("n_samples,expected", [
    (32000, [(0, 160), (77, 237)]),  # 2 s: the second window covers 77 % >= 75 %: kept
    (31680, [(0, 160), (77, 237)]),  # fact sheet: 2 s tone after Resemblyzer's trimming
    (8000, [(0, 160)]),  # shorter than one window: one zero-padded window
    (48000, [(0, 160), (77, 237), (154, 314)]),
])
def test_partial_windows(n_samples, expected):
    assert partial_slices(n_samples) == expected


def test_volume_normalisation_raises_quiet_clips_only():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    quiet = torch.from_numpy((0.001 * rng.standard_normal((1, 16000))).astype(np.float32))
    loud = torch.from_numpy((0.5 * rng.standard_normal((1, 16000))).astype(np.float32))
    out = normalize_volume(torch.cat([quiet, loud, torch.zeros(1, 16000)]))
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(out[0].numpy().astype(np.float64) ** 2)))
    assert rms_dbfs == pytest.approx(-30.0, abs=1e-3)
    np.testing.assert_array_equal(out[1].numpy(), loud[0].numpy())
    assert np.all(out[2].numpy() == 0)


def test_mel_of_a_tone_peaks_in_its_band():
    torch = pytest.importorskip("torch")
    t = np.arange(16000) / 16000
    mel = mel_spectrogram(torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32))[None])[0].numpy()
    assert mel.shape == (101, 40)
    # Slaney scale: linear below 1 kHz (66.7 Hz per mel) -> 1 kHz = mel 15; 40 bands span mel 0 ... 45.2
    centres = np.linspace(0, 45.245, 42)[1:-1]
    assert abs(mel[50].argmax() - np.argmin(np.abs(centres - 15.0))) <= 1


def test_split_lstm_equals_stacked_lstm(tmp_path):
    """The three exposed layers are exactly torch's 3-layer LSTM loaded with the checkpoint's key names."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    stacked = torch.nn.LSTM(40, 256, num_layers=3, batch_first=True)
    linear = torch.nn.Linear(256, 256)
    state = {f"lstm.{k}": v for k, v in stacked.state_dict().items()}
    state.update({f"linear.{k}": v for k, v in linear.state_dict().items()})
    state.update({"similarity_weight": torch.tensor([10.0]), "similarity_bias": torch.tensor([-5.0])})
    path = tmp_path / "pretrained.pt"
    torch.save({"step": 1, "model_state": state}, path)
    model = ResemblyzerModel(path)
    x = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32) * 0.1
    out = model(x)
    with torch.inference_mode():
        mel = mel_spectrogram(normalize_volume(torch.from_numpy(x)))
        ref, (hidden, _) = stacked(mel)
    np.testing.assert_allclose(out["lstm2"], ref.numpy(), atol=1e-5)
    assert set(load_state(path)) == set(model.module.state_dict())
    embedding = out["embedding"][:, 0]
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)
    assert np.all(embedding >= 0)


def test_random_twin_shapes_determinism_batching():
    model = load_model("resemblyzer@random")
    assert model.sample_rate == 16000 and model.layers == LAYERS and model.weights_id == "random:0"
    x = np.random.default_rng(3).standard_normal((2, 16000)).astype(np.float32) * 0.1
    out = model(x)
    assert {k: v.shape for k, v in out.items()} == {
        "lstm0": (2, 101, 256), "lstm1": (2, 101, 256), "lstm2": (2, 101, 256), "embedding": (2, 1, 256)}
    single = load_model("resemblyzer@random")(x[1:])
    for layer in LAYERS:
        np.testing.assert_allclose(single[layer][0], out[layer][1], rtol=1e-4, atol=1e-5)


def espeak(text: str, voice: str) -> np.ndarray:
    """A 16 kHz float32 rendering of ``text`` by espeak-ng with ``voice``."""
    from brainlike.data.audio import resample

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    raw = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    import io

    import soundfile as sf

    audio, rate = sf.read(io.BytesIO(raw), dtype="float32")
    return resample(audio, rate, 16000)


@pytest.mark.zoo
def test_one_voice_embeds_closer_than_two_voices():
    model = pretrained()
    sentences = ["the quick brown fox jumps over the lazy dog",
                 "she sells sea shells by the sea shore every morning"]
    emb = {}
    for voice in ("en-us", "en-us+f3"):
        for k, text in enumerate(sentences):
            emb[voice, k] = model(espeak(text, voice)[None])["embedding"][0, 0]
    same = [emb["en-us", 0] @ emb["en-us", 1], emb["en-us+f3", 0] @ emb["en-us+f3", 1]]
    different = [emb["en-us", i] @ emb["en-us+f3", j] for i in (0, 1) for j in (0, 1)]
    print("resemblyzer cosine same voice", same, "different voices", different)
    assert min(same) > max(different) + 0.1
