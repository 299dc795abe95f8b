"""DNSMOS P.808 and P.835: front ends against librosa / a direct framing, random twins (default suite); real
weights: the package's own MOS and clean speech rated above noisy speech (zoo)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from brainlike.models.registry import load_model
from brainlike.models.zoo import dnsmos, store

REFERENCE = Path(__file__).parent / "reference"
ZOO_ROOT = store.zoo_root()


def test_log_mel_matches_librosa():
    librosa = pytest.importorskip("librosa")
    torch = pytest.importorskip("torch")
    x = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    x[8000:] *= 0.001  # a wide dynamic range exercises the -80 dB floor
    ours = dnsmos.log_mel(torch.from_numpy(x)[None])[0].numpy()
    mel = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=321, hop_length=160, n_mels=120)
    theirs = ((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T
    assert ours.shape == theirs.shape == (100, 120)  # odd n_fft: 1 + (16000 + 2 * 160 - 321) // 160
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_random_twin_shapes_batching():
    model = load_model("dnsmos-p808@random")
    assert model.weights_id == "random:0" and model.layers == dnsmos.LAYERS
    clips = (0.1 * np.random.default_rng(1).standard_normal((2, 32000))).astype(np.float32)
    out = model(clips)
    expected = {"conv1": (2, 100, 1920), "conv2": (2, 50, 960), "conv3": (2, 50, 960), "conv4": (2, 25, 480),
                "conv5": (2, 25, 960), "dense1": (2, 1, 64), "dense2": (2, 1, 64)}
    assert {k: v.shape for k, v in out.items()} == expected
    single = load_model("dnsmos-p808@random")(clips[1:])
    for layer in model.layers:
        np.testing.assert_allclose(single[layer][0], out[layer][1], rtol=1e-4, atol=1e-6)
    assert np.isfinite(model.p808_mos(clips[0]))


@pytest.mark.zoo
def test_pretrained_mos_matches_the_package_and_prefers_clean_speech():
    if not store.is_installed("dnsmos-p808", root=ZOO_ROOT):
        pytest.skip("dnsmos-p808 not installed (brainlike zoo install dnsmos-p808)")
    sys.path.insert(0, str(REFERENCE))
    from make_speech_reference import STIMULI, speech_and_noisy

    if not STIMULI.is_dir():
        pytest.skip("NH2015 stimuli not found")
    model = dnsmos.DnsmosP808Model(store.weights_path("dnsmos-p808", root=ZOO_ROOT),
                                   store.weights_sha256("dnsmos-p808", root=ZOO_ROOT))
    reference = np.load(REFERENCE / "speech_reference.npz")
    clean, noisy = speech_and_noisy()
    scores = {"clean": model.p808_mos(clean), "noisy": model.p808_mos(noisy)}
    print("DNSMOS P.808", scores)
    for key, score in scores.items():
        assert score == pytest.approx(float(reference[f"dnsmos-p808/{key}"]), abs=1e-4)
    assert scores["clean"] > 3.5 and scores["noisy"] < scores["clean"] - 1.0


def test_p835_framing_and_twin():
    torch = pytest.importorskip("torch")
    x = np.arange(1000, dtype=np.float32)
    frames = dnsmos.frames_320(torch.from_numpy(x)[None])[0].numpy()
    assert frames.shape == (5, 320)  # (1000 - 160) // 160
    np.testing.assert_array_equal(frames[3], x[480:800])
    model = load_model("dnsmos-p835@random")
    assert model.weights_id == "random:0" and model.layers == dnsmos.P835_LAYERS
    clips = (0.1 * np.random.default_rng(2).standard_normal((2, 16000))).astype(np.float32)
    out = model(clips)
    assert out["logpow"].shape == (2, 99, 161) and out["conv1"].shape == (2, 99, 128 * 161)
    assert out["conv7"].shape == (2, 12, 64 * 20) and out["scores"].shape == (2, 1, 3)
    single = load_model("dnsmos-p835@random")(clips[1:])
    for layer in ("logpow", "conv4", "conv7", "scores"):
        np.testing.assert_allclose(single[layer][0], out[layer][1], rtol=1e-4, atol=1e-5)
    assert set(model.p835_mos(clips[0])) == {"sig", "bak", "ovr"}


@pytest.mark.zoo
def test_pretrained_p835_matches_the_package_and_prefers_clean_speech():
    if not store.is_installed("dnsmos-p835", root=ZOO_ROOT):
        pytest.skip("dnsmos-p835 not installed (brainlike zoo install dnsmos-p835)")
    sys.path.insert(0, str(REFERENCE))
    from make_speech_reference import STIMULI, speech_and_noisy

    if not STIMULI.is_dir():
        pytest.skip("NH2015 stimuli not found")
    model = dnsmos.DnsmosP835Model(store.weights_path("dnsmos-p835", root=ZOO_ROOT),
                                   store.weights_sha256("dnsmos-p835", root=ZOO_ROOT))
    reference = np.load(REFERENCE / "speech_reference.npz")
    clean, noisy = speech_and_noisy()
    scores = {"clean": model.p835_mos(clean), "noisy": model.p835_mos(noisy)}
    print("DNSMOS P.835", scores)
    for key, values in scores.items():
        np.testing.assert_allclose([values["sig"], values["bak"], values["ovr"]], reference[f"dnsmos-p835/{key}"],
                                   atol=1e-4)
    assert scores["clean"]["bak"] > 3.5 and scores["noisy"]["bak"] < 1.5  # background noise rating
    assert scores["clean"]["ovr"] > scores["noisy"]["ovr"] + 1.5
