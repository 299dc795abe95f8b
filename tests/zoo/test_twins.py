"""YAMNet and Silero VAD without downloads: front ends against independent references, random twins' layers,
shapes, determinism and batch consistency."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from brainlike.models.registry import load_model
from brainlike.models.zoo import silero_vad, yamnet


def _noise(n: int, seed: int, batch: int = 1) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((batch, n))).astype(np.float32)


def test_yamnet_log_mel_matches_scipy_stft():
    x = _noise(32000, 0)[0]
    patches = yamnet.log_mel_patches(x)
    assert patches.shape == (3, 96, 64)  # 198 frames -> patches at 0, 48, 96
    window = signal.get_window("hann", 400, fftbins=True)
    _, _, spec = signal.stft(x.astype(np.float64), window=window, nperseg=400, noverlap=240, nfft=512,
                             boundary=None, padded=False)
    magnitude = np.abs(spec).T * window.sum()  # scipy scales by 1/sum(window)
    assert magnitude.shape[0] == 198
    expected = np.log(magnitude @ yamnet.htk_mel_filters().T.astype(np.float64) + 0.001)
    np.testing.assert_allclose(patches[1], expected[48:144], atol=1e-4)
    assert yamnet.log_mel_patches(x[:8000]).shape == (1, 96, 64)  # short clips are padded to one patch


def test_yamnet_htk_filters_peak_at_their_centres():
    filters = yamnet.htk_mel_filters()
    assert filters.shape == (64, 257) and filters.max() <= 1.0 + 1e-6
    mel = np.linspace(2595 * np.log10(1 + 125 / 700), 2595 * np.log10(1 + 7500 / 700), 66)
    centres = 700 * (10 ** (mel[1:-1] / 2595) - 1)
    peaks = np.linspace(0, 8000, 257)[filters.argmax(1)]
    assert np.all(np.abs(peaks - centres) <= 15.7)  # within half an FFT bin (31.25 Hz)


def test_yamnet_twin_layers_shapes_determinism():
    model = load_model("yamnet@random")
    assert model.weights_id == "random:0" and len(model.layers) == 29
    assert model.layers[:3] == ["layer1", "layer2.depthwise", "layer2.pointwise"]
    assert model.layers[-3:] == ["layer14.pointwise", "embedding", "logits"]
    clips = _noise(32000, 1, batch=2)
    out = model(clips)
    expected = {"layer1": (2, 144, 1024), "layer2.pointwise": (2, 144, 2048), "layer3.depthwise": (2, 72, 1024),
                "layer7.pointwise": (2, 18, 2048), "layer14.pointwise": (2, 9, 2048), "embedding": (2, 3, 1024),
                "logits": (2, 3, 521)}
    for layer, shape in expected.items():
        assert out[layer].shape == shape, layer
    # He initialisation keeps the deep layers alive (not collapsed to a constant)
    assert out["layer14.pointwise"].std() > 1e-3 and np.abs(out["embedding"][0] - out["embedding"][1]).max() > 1e-4
    again = load_model("yamnet@random")(clips[1:])
    for layer in model.layers:
        np.testing.assert_allclose(again[layer][0], out[layer][1], rtol=1e-5, atol=1e-6)


def test_silero_dft_basis_is_the_windowed_rfft():
    basis = silero_vad.dft_basis()[:, 0]
    frame = np.random.default_rng(3).standard_normal(256)
    spectrum = np.fft.rfft(frame * signal.get_window("hann", 256, fftbins=True))
    np.testing.assert_allclose(basis[:129] @ frame, spectrum.real, atol=1e-4)
    np.testing.assert_allclose(basis[129:] @ frame, spectrum.imag, atol=1e-4)


def test_silero_twin_layers_shapes_state_and_determinism():
    model = load_model("silero-vad@random")
    assert model.layers == ["stft", "conv1", "conv2", "conv3", "conv4", "lstm"]
    clips = _noise(32000, 4, batch=2)
    out = model(clips)
    sizes = {"stft": 516, "conv1": 512, "conv2": 128, "conv3": 64, "conv4": 128, "lstm": 128}
    for layer, size in sizes.items():
        assert out[layer].shape == (2, 62, size), layer
    prob = model.speech_probability(clips[0])
    assert prob.shape == (62,) and ((prob > 0) & (prob < 1)).all()
    again = load_model("silero-vad@random")(clips[:1])
    for layer in model.layers:
        np.testing.assert_allclose(again[layer][0], out[layer][0], rtol=1e-5, atol=1e-6)
    # chunk k sees 64 samples of context only, but the LSTM state carries the whole past
    changed = clips[:1].copy()
    changed[0, :512] = 0.0
    other = model(changed)
    np.testing.assert_allclose(other["conv4"][0, 5:], out["conv4"][0, 5:], atol=1e-6)
    assert np.abs(other["lstm"][0, 5] - out["lstm"][0, 5]).max() > 1e-6


@pytest.mark.parametrize("n", [300, 1000])
def test_silero_short_clips_give_one_chunk(n):
    out = load_model("silero-vad@random")(_noise(n, 5))
    assert out["lstm"].shape == (1, 1, 128)
