"""PESTO: VQT front end and decoding known answers, random twin (default); real weights: 440 Hz (zoo)."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.errors import ChecksumError
from brainlike.models.registry import load_model
from brainlike.models.zoo import store
from brainlike.models.zoo.pesto import (
    LAYERS,
    PestoModel,
    activations_to_hz,
    cqt_kernels,
    load_checkpoint,
    log_power_cqt,
    midi_from_activations,
)

ZOO_ROOT = store.zoo_root()  # resolved before the session fixture isolates BRAINLIKE_CACHE


def tone(freq: float = 440.0, seconds: float = 2.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.05 * np.random.default_rng(0).standard_normal(len(t))
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def pretrained() -> PestoModel:
    if not store.is_installed("pesto", root=ZOO_ROOT):
        pytest.skip("pesto weights not installed (brainlike zoo install pesto)")
    return PestoModel(store.weights_path("pesto", root=ZOO_ROOT), store.weights_sha256("pesto", root=ZOO_ROOT))


def test_kernels_are_l1_normalised_with_the_variable_q_lengths():
    kernels, lengths = cqt_kernels(16000)
    assert kernels.shape == (502, 4096)
    complex_kernels = kernels[:251] - 1j * kernels[251:]
    np.testing.assert_allclose(np.abs(complex_kernels).sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_array_equal((np.abs(complex_kernels) > 0).sum(axis=1), lengths - 1)  # Hann ends at 0
    alpha = 2 ** (1 / 36) - 1
    freqs = 27.5 / 2 ** (1 / 36) * 2 ** (np.arange(251) / 36)
    np.testing.assert_array_equal(lengths, np.ceil(16000 / alpha / (freqs + 7 / alpha)))


@pytest.mark.parametrize("freq", [220.0, 440.0, 1000.0])
def test_cqt_of_a_tone_peaks_at_its_bin(freq):
    torch = pytest.importorskip("torch")
    cqt = log_power_cqt(torch.from_numpy(tone(freq, 1.0))[None])[0].numpy()
    assert cqt.shape == (101, 219)
    # bin k of the cropped CQT is centred at 27.5 * 2 ** ((k + 16 - 1) / 36) Hz
    expected = round(36 * np.log2(freq / 27.5)) + 1 - 16
    assert np.all(cqt[10:-10].argmax(axis=1) == expected)


def test_alwa_decoding_known_answers():
    np.testing.assert_allclose(midi_from_activations(np.eye(384)[[207, 0, 383]]), [69.0, 0.0, 383 / 3])
    assert activations_to_hz(np.eye(384)[207]) == pytest.approx(440.0)
    two = np.zeros(384)
    two[[207, 208]] = 0.5
    assert midi_from_activations(two) == pytest.approx(69 + 1 / 6)


@pytest.mark.numerics
def test_random_twin_shapes_determinism_batching():
    model = load_model("pesto@random")
    assert model.sample_rate == 16000 and model.layers == LAYERS and model.weights_id == "random:0"
    x = np.random.default_rng(3).standard_normal((2, 8000)).astype(np.float32) * 0.1
    out = model(x)
    dims = [40 * 219] * 3 + [30 * 219, 30 * 219, 10 * 219, 3 * 219, 384]
    assert [out[k].shape for k in LAYERS] == [(2, 51, d) for d in dims]
    np.testing.assert_allclose(out["output"].sum(-1), 1.0, atol=1e-5)
    single = load_model("pesto@random")(x[1:])
    for layer in LAYERS:  # float32 kernels for 1 vs 2 clips round differently, in proportion to the layer's scale
        scale = float(np.abs(out[layer][1]).max())  # (seen: differences up to 2.3e-6 of it, near-zero values too)
        np.testing.assert_allclose(single[layer][0], out[layer][1], rtol=0, atol=1e-4 * scale)


def test_tampered_checkpoint_is_never_unpickled(tmp_path):
    bad = tmp_path / "mir-1k_g7.ckpt"
    bad.write_bytes(b"not the pinned checkpoint")
    with pytest.raises(ChecksumError, match="refusing to open"):
        load_checkpoint(bad)


@pytest.mark.zoo
def test_checkpoint_reads_without_omegaconf():
    if not store.is_installed("pesto", root=ZOO_ROOT):
        pytest.skip("pesto weights not installed")
    state, shift = load_checkpoint(store.weights_path("pesto", root=ZOO_ROOT))
    assert shift == pytest.approx(6.678, abs=1e-3)
    assert state["fc.weight"].shape == (1, 1, 1040)


@pytest.mark.zoo
def test_pretrained_pesto_hears_440_hz():
    out = pretrained()(tone()[None])["output"][0]
    pitch = float(np.median(activations_to_hz(out)))
    assert pitch == pytest.approx(440.0, rel=0.01)
    assert pitch == pytest.approx(440.0, abs=0.2)  # fact sheet: 440.00 Hz
