"""aiSFX: mel front end, blocking, random twin (default); real weights: reference embedding range and an ESC-10
linear probe clearly above the random twin (zoo)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from brainlike.errors import ChecksumError
from brainlike.models.registry import load_model
from brainlike.models.zoo import store
from brainlike.models.zoo.aisfx import LAYERS, AisfxModel, blocks, load_checkpoint, mel_filters, spectrogram

ZOO_ROOT = store.zoo_root()  # resolved before the session fixture isolates BRAINLIKE_CACHE


def pretrained() -> AisfxModel:
    if not store.is_installed("aisfx", root=ZOO_ROOT):
        pytest.skip("aisfx weights not installed (brainlike zoo install aisfx)")
    return AisfxModel(store.weights_path("aisfx", root=ZOO_ROOT), store.weights_sha256("aisfx", root=ZOO_ROOT))


def test_mel_filters_unit_sum_on_htk_scale():
    filters = mel_filters()
    assert filters.shape == (96, 1025)
    np.testing.assert_allclose(filters.sum(axis=1), 1.0, rtol=1e-5)
    # band centres are evenly spaced on the HTK mel scale 2595 log10(1 + f / 700) between 0 and 22,050 Hz
    freqs = np.linspace(0, 22050, 1025)
    mel = 2595 * np.log10(1 + freqs / 700)
    centre = (filters * mel).sum(axis=1)
    assert np.std(np.diff(centre[30:])) / np.mean(np.diff(centre[30:])) < 0.02


@pytest.mark.numerics
def test_spectrogram_of_a_tone_peaks_in_its_band():
    torch = pytest.importorskip("torch")
    t = np.arange(44100) / 44100
    x = torch.from_numpy((0.1 * np.sin(2 * np.pi * 2000 * t)).astype(np.float32))[None]
    spec = spectrogram(x)[0].numpy()
    assert spec.shape == (1 + 44100 // 1024, 96)
    assert mel_filters()[:, round(2000 * 2048 / 44100)].argmax() == spec[10].argmax()
    # peak normalisation: the level of the input does not matter (to float32 rounding of the scaled input: seen
    # 3.9e-6 on values in 0..0.92; without the normalisation they would move by ~4 / SPEC_MAX)
    np.testing.assert_allclose(spectrogram(x * 0.01)[0].numpy(), spec, atol=1e-4)


@pytest.mark.parametrize("frames,n_blocks", [(40, 1), (87, 1), (100, 1), (149, 1), (150, 2), (216, 3), (250, 4)])
def test_blocking_follows_the_package_rule(frames, n_blocks):
    torch = pytest.importorskip("torch")
    spec = torch.arange(frames, dtype=torch.float32)[None, :, None].expand(1, frames, 96)
    out = blocks(spec)
    assert out.shape == (1, n_blocks, 100, 96)
    for b in range(n_blocks):
        expected = np.arange(50 * b, 50 * b + 100, dtype=np.float32)
        expected[expected >= frames] = 0  # zero padding past the end
        np.testing.assert_array_equal(out[0, b, :, 0].numpy(), expected)


def test_random_twin_shapes_determinism_batching():
    model = load_model("aisfx@random")
    assert model.sample_rate == 44100 and model.layers == LAYERS and model.weights_id == "random:0"
    x = np.random.default_rng(3).standard_normal((2, 88200)).astype(np.float32) * 0.1
    out = model(x)
    frames = {1: 100, 2: 50, 3: 25, 4: 12}
    for b in range(1, 5):
        for c in (1, 2):
            assert out[f"block{b}.conv{c}"].shape == (2, frames[b], 6144)
    assert out["embedding"].shape == (2, 1, 512)
    single = load_model("aisfx@random")(x[1:])
    for layer in LAYERS:
        np.testing.assert_allclose(single[layer][0], out[layer][1], rtol=1e-4, atol=1e-5)


def test_tampered_checkpoint_is_never_unpickled(tmp_path):
    bad = tmp_path / "checkpoint.pth"
    bad.write_bytes(b"not the pinned checkpoint")
    with pytest.raises(ChecksumError, match="refusing to open"):
        load_checkpoint(bad)


@pytest.mark.zoo
def test_pretrained_tone_embedding_matches_reference_range():
    from scipy.signal import resample_poly

    t = np.arange(32000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    embedding = pretrained()(resample_poly(x, 441, 160).astype(np.float32)[None])["embedding"][0, 0]
    assert embedding.min() == pytest.approx(0.084, abs=0.002)  # fact sheet: range 0.084 ... 6.97
    assert embedding.max() == pytest.approx(6.97, abs=0.02)


def esc10_probe(model, layers: list[str], data_root) -> dict[str, float]:
    """Mean accuracy over ESC-10's 5 official folds of a standardised logistic regression on time-averaged layers."""
    import pandas as pd
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from brainlike.data.audio import read_audio
    from brainlike.extract import embed_clips

    folder = data_root / "downstream" / "esc10"
    table = pd.read_csv(folder / "labels.csv")
    clips, rates = zip(*(read_audio(folder / f, allow_silent=True) for f in table["file"]))
    assert set(rates) == {44100}
    # cached under BRAINLIKE_CACHE (set BRAINLIKE_TEST_CACHE to keep it across sessions), keyed by the clip set
    clip_set = {"set": "esc10", "sha256sums": store.sha256_file(folder / "SHA256SUMS"), "files": list(table["file"])}
    embeddings = embed_clips(model, list(clips), 44100, cache_key_parts=clip_set, progress=False)
    folds, labels = table["fold"].to_numpy(), table["label"].to_numpy()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # a capped solver is enough for a sanity probe
    scores = {}
    for layer in layers:
        accuracies = []
        for fold in sorted(set(folds)):
            probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300, tol=1e-3))
            probe.fit(embeddings[layer][folds != fold], labels[folds != fold])
            accuracies.append(probe.score(embeddings[layer][folds == fold], labels[folds == fold]))
        scores[layer] = float(np.mean(accuracies))
    return scores


@pytest.mark.zoo
@pytest.mark.slow
def test_pretrained_beats_random_twin_on_esc10(data_root):
    layers = ["block3.conv2", "block4.conv1", "block4.conv2", "embedding"]
    trained = esc10_probe(pretrained(), layers, data_root)
    random = esc10_probe(load_model("aisfx@random"), layers, data_root)
    print("aisfx esc10 accuracy", trained, "random twin", random)
    # observed (capped lbfgs, this machine): embedding 0.930 vs 0.820 for the twin; best layer 0.930 vs 0.818
    assert max(trained.values()) >= 0.85
    assert trained["embedding"] >= random["embedding"] + 0.07
    assert max(trained.values()) >= max(random.values()) + 0.07
