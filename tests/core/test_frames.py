"""Frame-level activations: binning, silence padding, per-sound normalisation, the per-layer float16 cache,
frame times checked with clicks on the baselines, and bad input (one-line errors, exit 2, nothing cached)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from brainlike.data.stimuli import load_stimulus_folder
from brainlike.errors import ModelError, ProtocolError, UnknownNameError
from brainlike.extract.frames import (FrameStore, bin_starts, binning_matrix, extract_frames, frames_of_clips)
from brainlike.models.base import AudioModel, FrameGrid
from brainlike.models.registry import load_model

SR = 16000


def test_bin_starts_cover_pre_and_stop():
    bins = bin_starts(25.0, 0.5, 3.0)
    assert len(bins) == 13 + 75 and bins[0] == pytest.approx(-0.52) and bins[-1] == pytest.approx(2.96)
    assert np.sum(bins < 0) == 13 and bins[13] == 0.0
    np.testing.assert_allclose(bin_starts(100.0, 0.1, 0.05), np.arange(-10, 5) / 100.0)


def test_binning_matrix_known_answers():
    bins = np.arange(4) * 0.1  # 10 Hz bins [0, 0.1), [0.1, 0.2), ...
    # frames every 0.025 s: four per bin, equal weights; a frame on a bin start belongs to that bin
    frames = np.arange(16) * 0.025
    weights, held = binning_matrix(frames, bins, 10.0)
    expected = np.kron(np.eye(4), np.full((1, 4), 0.25))
    np.testing.assert_allclose(weights, expected)
    assert held == 0
    # frames every 0.25 s (slower than the bins): linear interpolation at bin centres 0.05, 0.15, 0.25, 0.35
    slow = np.array([0.0, 0.25, 0.5])
    weights, held = binning_matrix(slow, bins, 10.0)
    values = np.array([1.0, 3.0, 7.0])
    np.testing.assert_allclose(weights @ values, [1.0, 2.2, 3.0, 4.6])  # bins holding a frame: its value
    assert held == 0
    # bins beyond the first / last frame centre take that frame (counted)
    weights, held = binning_matrix(np.array([0.12, 0.22]), bins, 10.0)
    np.testing.assert_allclose(weights @ np.array([5.0, 9.0]), [5.0, 5.0, 9.0, 9.0])
    assert held == 2
    # repeated centres (overlapping blocks) are averaged
    weights, _ = binning_matrix(np.array([0.05, 0.05, 0.31]), bins, 10.0)
    expected = [3.0, 3.0 + (0.15 - 0.05) / 0.26 * 5.0, 3.0 + (0.25 - 0.05) / 0.26 * 5.0, 8.0]
    np.testing.assert_allclose(weights @ np.array([2.0, 4.0, 8.0]), expected)


def test_frame_grid_composition():
    grid = FrameGrid().conv(400, 160)  # non-centred 25 ms window every 10 ms
    assert (grid.offset, grid.hop) == (199.5, 160)
    assert FrameGrid(0.0, 160).conv(3, 2, 1).hop == 320 and FrameGrid(0.0, 160).conv(3, 2, 1).offset == 0.0
    np.testing.assert_allclose(FrameGrid().conv(1024, 320, 512).times(3, 16000), (np.arange(3) * 320 - 0.5) / 16000)


def _click(seconds: float, at: float, rate: int = SR) -> np.ndarray:
    clip = np.zeros(int(seconds * rate), np.float32)
    clip[int(round(at * rate))] = 0.5
    return clip


def _peak_bin(values: np.ndarray, bins: np.ndarray) -> float:
    """Start of the bin whose frame is farthest from the pure-silence first bin."""
    distance = np.linalg.norm(values - values[0], axis=1)
    return float(bins[np.argmax(distance)])


@pytest.mark.parametrize("spec, layer", [("melspec", "logmel128"), ("envelope", "envelope")])
@pytest.mark.parametrize("at, expected", [(1.003, 1.00), (1.008, 1.01), (0.2, 0.2)])
def test_click_lands_in_its_bin_for_10ms_frame_models(spec, layer, at, expected):
    """Frames every 10 ms centred on multiples of 10 ms after onset: a click 3 ms after a frame centre is nearest
    that frame (bin [1.00, 1.01) at 100 Hz), 8 ms after it the next one."""
    out = frames_of_clips(spec, [_click(2.0, at)], rate=100.0, pre=0.5, stop=2.5, layers=[layer])[layer][0]
    values = out[:, :1] if spec == "envelope" else out  # the level (its rise peaks on the first frame reached)
    assert _peak_bin(values, bin_starts(100.0, 0.5, 2.5)) == pytest.approx(expected)


def test_click_lands_in_its_bin_for_the_cochleagram():
    """200 Hz frames (peak of the low-pass at 100 m + 500.5 samples of 20 kHz) on 40 ms bins."""
    out = frames_of_clips("cochleagram", [_click(1.0, 0.52, 20000)], rate=25.0, pre=0.2, stop=1.0)
    assert _peak_bin(out["cochleagram"][0], bin_starts(25.0, 0.2, 1.0)) == pytest.approx(0.52)


def test_silence_bins_come_from_running_the_model_on_silence():
    """Pre-onset bins hold the model's own output on silence (melspec's -100 dB floor, log-mel of zeros), never a
    constant fill: they equal the bins of an all-silent clip, and a model whose silence output is not zero shows
    it (random-features: random numbers in every pre-onset bin)."""
    model = load_model("melspec")
    sound = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    out = frames_of_clips(model, [sound], rate=25.0, pre=0.5, stop=1.5)["logmel64"][0]
    silent = model(np.zeros((1, 4 * SR), np.float32))["logmel64"][0]
    bins = bin_starts(25.0, 0.5, 1.5)
    before = bins < -0.04  # bins whose 25 ms windows cannot reach the sound
    np.testing.assert_allclose(out[before], np.broadcast_to(silent[0], out[before].shape), atol=1e-4)
    assert np.all(out[before] == pytest.approx(-100.0, abs=1e-3))
    noise = frames_of_clips("random-features", [sound], rate=25.0, pre=0.5, stop=1.5)["random"][0]
    assert np.all(np.std(noise[before], axis=1) > 0.5) and len(np.unique(noise[before][:, 0])) == before.sum()


def test_per_sound_normalisation_is_computed_on_the_sound_alone():
    """cochleagram: demean + RMS 0.1 of the sound alone: the sound's frames do not depend on its level nor on how
    much silence surrounds it. A whole-input RMS would scale them by (2.4)^(0.3 / 2) = 14 % here; what remains
    (<= 2 % of the largest value) comes from the filters being sampled on a longer FFT grid."""
    sound = (np.random.default_rng(1).standard_normal(10000) * 0.05).astype(np.float32)
    quiet = frames_of_clips("cochleagram", [sound], rate=50.0, pre=0.2, stop=0.8)["cochleagram"][0]
    loud = frames_of_clips("cochleagram", [sound * 4], rate=50.0, pre=0.2, stop=0.8)["cochleagram"][0]
    long_pad = frames_of_clips("cochleagram", [sound], rate=50.0, pre=0.6, stop=1.6)["cochleagram"][0]
    np.testing.assert_allclose(loud, quiet, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(long_pad[30:70], quiet[10:50], atol=0.02 * np.abs(quiet).max())


@pytest.fixture()
def click_folder(tmp_path) -> Path:
    folder = tmp_path / "stimuli"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        clip = rng.standard_normal(SR).astype(np.float32) * 0.05
        clip[int(0.3 * SR * (i + 1))] = 0.9
        sf.write(folder / f"s{i}.wav", clip, SR)
    return folder


def test_cache_round_trip_float16_and_keys(click_folder, tmp_path):
    stimuli = load_stimulus_folder(click_folder)
    store = FrameStore(tmp_path / "cache")
    first = extract_frames("melspec", stimuli, rate=25.0, pre=0.2, stop=1.5, store=store, progress=False)
    assert not first.from_cache and first.layers == ["logmel128", "logmel64", "mfcc20"]
    exact = extract_frames("melspec", stimuli, rate=25.0, pre=0.2, stop=1.5, cache=False, progress=False)
    for layer in first.layers:
        stored, truth = first.arrays[layer], exact.arrays[layer]
        assert stored.dtype == np.float32 and stored.shape == truth.shape == (3, 5 + 38, truth.shape[2])
        spread = truth.max() - truth.min()
        np.testing.assert_allclose(stored, truth, atol=2e-3 * spread)  # float16 of centred values
    again = extract_frames("melspec", stimuli, rate=25.0, pre=0.2, stop=1.5, store=store, progress=False)
    assert again.from_cache and again.key == first.key
    np.testing.assert_array_equal(again.arrays["mfcc20"], first.arrays["mfcc20"])
    subset = extract_frames("melspec", stimuli, rate=25.0, pre=0.2, stop=1.5, layers=["mfcc20"], store=store,
                            progress=False)
    assert subset.from_cache and subset.layers == ["mfcc20"] and subset.key != first.key
    keys = {first.info["layer_keys"]["mfcc20"]}
    for change in ({"rate": 50.0}, {"pre": 0.3}, {"stop": 2.0}):
        other = extract_frames("melspec", stimuli, **{"rate": 25.0, "pre": 0.2, "stop": 1.5, **change},
                               layers=["mfcc20"], store=store, progress=False)
        assert not other.from_cache
        keys.add(other.info["layer_keys"]["mfcc20"])
    assert len(keys) == 4
    assert all(row["status"] == "ok" for row in store.verify())
    entry = next(store.root.glob("*/*.npy"))
    with open(entry, "r+b") as handle:  # corrupt one entry: it is treated as absent and recomputed
        handle.seek(200)
        handle.write(b"\x00\x01\x02")
    assert any(row["status"] == "corrupt" for row in store.verify())


def test_frames_on_the_real_stimuli_with_the_null_control(data_root, tmp_path):
    from brainlike.data.stimuli import load_natsound165

    stimuli = load_natsound165(data_root).subset([0, 1, 2, 3])
    frames = extract_frames("random-features", stimuli, rate=25.0, store=FrameStore(tmp_path), progress=False)
    values = frames.arrays["random"]
    assert values.shape == (4, 88, 128) and frames.n_pre == 13 and frames.causal
    assert frames.bin_times[0] == pytest.approx(-0.52) and frames.bin_times[-1] == pytest.approx(2.96)
    changes = values - values.mean(axis=1, keepdims=True)  # the frame-to-frame part of the null
    assert np.all(changes.std(axis=1) > 0.2)
    assert abs(np.corrcoef(changes[0].ravel(), changes[1].ravel())[0, 1]) < 0.05


def test_model_without_time_axis_and_bad_requests(click_folder, tmp_path):
    stimuli = load_stimulus_folder(click_folder)
    store = FrameStore(tmp_path / "c")
    with pytest.raises(ModelError, match="no time axis"):
        extract_frames("spectrotemporal", stimuli, store=store)
    with pytest.raises(UnknownNameError, match="no layer"):
        extract_frames("melspec", stimuli, layers=["nope"], store=store)
    for bad in ({"rate": 0.0}, {"pre": -1.0}, {"stop": 0.0}):
        with pytest.raises(ProtocolError):
            extract_frames("melspec", stimuli, store=store, **bad)
    assert not store.root.exists() or not any(store.root.rglob("*"))


class _BreaksOnLoudClips(AudioModel):
    """A tiny real model whose frames turn NaN for loud clips (bad-input path: nothing may be cached)."""

    name, sample_rate, layers = "breaks", SR, ["rms"]

    def forward(self, waveforms):
        frames = np.sqrt(np.mean(waveforms.reshape(len(waveforms), -1, 160) ** 2, axis=2))[..., None]
        return {"rms": np.where(frames.max(axis=1, keepdims=True) > 0.075, np.nan, frames)}  # click: 0.087


def test_failing_extraction_caches_nothing(click_folder, tmp_path):
    stimuli = load_stimulus_folder(click_folder)  # every clip holds a 0.9 click
    store = FrameStore(tmp_path / "c")
    with pytest.raises(ModelError, match="NaN or Inf frames"):
        extract_frames(_BreaksOnLoudClips(), stimuli, store=store, progress=False)
    assert list(store.root.rglob("*")) == []


def test_extract_frames_cli(click_folder, tmp_path):
    env = {"BRAINLIKE_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    ok = subprocess.run([sys.executable, "-m", "brainlike", "-q", "extract", "envelope", "--stimuli",
                         str(click_folder), "--frames", "--rate", "50", "--stop", "1.5"], capture_output=True,
                        text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "100 bins at 50 Hz from -0.5 s, causal; layers: envelope 2 (frames every 10 ms)" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "brainlike", "-q", "extract", "spectrotemporal", "--stimuli",
                          str(click_folder), "--frames"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no time axis" in bad.stderr
    assert not list((tmp_path / "cache").glob("frames/*/*spectro*"))
