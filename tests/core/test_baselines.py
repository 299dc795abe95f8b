"""melspec against an independent float64 loop; random-features determinism; registry errors."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.errors import UnknownNameError
from brainlike.models.baselines import MEL_HOP, MEL_N_FFT, mel_filterbank
from brainlike.models.registry import load_model, parse_spec


def test_melspec_matches_a_plain_numpy_frame_loop():
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    out = load_model("melspec")(wave[None])
    padded = np.pad(wave.astype(np.float64), MEL_N_FFT // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MEL_N_FFT) / MEL_N_FFT)
    frames = [padded[i:i + MEL_N_FFT] * window for i in range(0, len(padded) - MEL_N_FFT + 1, MEL_HOP)]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    ref = 10 * np.log10(np.maximum(power @ mel_filterbank(128).T, 1e-10))
    assert out["logmel128"].shape == (1, len(frames), 128)
    assert np.abs(out["logmel128"][0] - ref).max() < 1e-3
    from scipy.fft import dct

    assert np.abs(out["mfcc20"][0] - dct(ref, norm="ortho", axis=1)[:, :20]).max() < 1e-2


def test_mel_filters_are_triangles_with_unit_area_in_hz():
    filters = mel_filterbank(64)
    hz_step = 16000 / MEL_N_FFT
    areas = filters.sum(axis=1) * hz_step
    assert np.all(filters >= 0)
    assert np.median(areas) == pytest.approx(1.0, rel=0.1)


def test_random_features_deterministic_and_batch_independent():
    rng = np.random.default_rng(1)
    clips = rng.standard_normal((4, 1600)).astype(np.float32)
    model = load_model("random-features")
    batch = model(clips)["random"]
    single = np.concatenate([model(c[None])["random"] for c in clips])
    np.testing.assert_array_equal(batch, single)
    np.testing.assert_array_equal(batch, model(clips)["random"])
    assert abs(np.corrcoef(batch[0, 0], batch[1, 0])[0, 1]) < 0.4


def test_unknown_model_lists_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean melspec"):
        parse_spec("melspek")
    with pytest.raises(UnknownNameError, match="no random-init twin"):
        parse_spec("melspec@random")
