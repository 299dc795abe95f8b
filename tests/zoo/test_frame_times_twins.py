"""Frame times of Tempo-CNN, musicnn, NSNet2 and DNSMOS (random-init twins, no weights needed).

Two checks per model. Where a click reaches (``twin_support_case``: tests/zoo/conftest.py's cases whose twins differ):
the frames a click changes are centred on it within a sample, from the layer's own ``frame_times``; that set follows
from the architecture alone (hop, window, padding, pooling), so it checks the frame centres exactly. And a click in a clip, through the frame
extractor at 200 Hz (as tests/models/test_frame_times.py): the response of an input-side layer peaks at the click,
within half a frame hop plus the frames a random kernel can move the peak by (``reach``).
"""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.extract.frames import EDGE_S, _FrameRun, bin_starts, frame_layers, frames_of_clips
from brainlike.models.registry import load_model
from brainlike.models.zoo import dnsmos, musicnn, tempocnn

RATE, PRE, STOP = 200.0, 0.2, 1.2
CLICK_S = 0.5013  # not on any model's frame grid
TEMPO_HOP = 512 / 11025
NAMES = [*tempocnn.VARIANTS, *musicnn.CHECKPOINTS, "nsnet2", "dnsmos-p808", "dnsmos-p835"]


@pytest.mark.numerics  # frames outside the click's reach must stay within 1e-6 of the largest change
def test_twin_click_reaches_frames_centred_on_it(twin_support_case, click_support):
    name, n_samples, n_sound, clicks = twin_support_case
    click_support(load_model(f"{name}@random"), name, n_samples, n_sound, clicks)


@pytest.mark.parametrize("spec, layer, hop, reach", [
    # spec, input-side layer, its frame hop (s), frames beyond the nearest a random kernel may peak at
    ("tempocnn-cnn@random", "conv1", TEMPO_HOP, 2),  # 5-frame kernels
    ("tempocnn-fcn@random", "conv1", TEMPO_HOP, 2),
    ("tempocnn-deeptemp@random", "conv0", TEMPO_HOP, 2),
    ("tempocnn-deepsquare@random", "conv0", TEMPO_HOP, 2),
    ("tempocnn-shallowtemp@random", "conv0", TEMPO_HOP, 1),  # 3-frame kernels
    ("tempocnn-mazurka@random", "conv0", TEMPO_HOP, 2),
    ("musicnn-mtt@random", "timbral", 256 / 16000, 3),  # 7-frame kernels
    ("musicnn-vgg-msd@random", "pool1", 512 / 16000, 1),  # 3 x 3 kernels, 4-frame pooling by 2
    ("nsnet2@random", "fc_in", 0.010, 0),  # frame by frame
    ("dnsmos-p808@random", "conv1", 0.020, 1),
    ("dnsmos-p835@random", "logpow", 0.010, 1),  # a learned 320-sample projection: every sample in two frames
])
def test_twin_click_response_peaks_at_the_click(spec, layer, hop, reach):
    model = load_model(spec)
    clip = np.zeros(int(1.0 * model.sample_rate), np.float32)
    clip[int(round(CLICK_S * model.sample_rate))] = 0.5
    values = frames_of_clips(model, [clip], rate=RATE, pre=PRE, stop=STOP, layers=[layer])[layer][0]
    distance = np.linalg.norm(values.astype(np.float64) - values[0], axis=1)
    peak = bin_starts(RATE, PRE, STOP)[np.argmax(distance)] + 0.5 / RATE
    assert abs(peak - CLICK_S) <= hop * (0.5 + reach) + 0.5 / RATE + 1e-3, f"{spec} {layer}: peak at {peak:.4f} s"


def test_causality_and_clip_level_layers_are_declared():
    for name in NAMES:
        model = load_model(f"{name}@random")
        assert model.frames_version == 2, name
        assert model.causal == (name == "nsnet2"), name
        expected_clip_level = {"tempocnn-cnn": ("dense1", "dense2", "output"), "musicnn-mtt": tuple(
            musicnn.MUSICNN_LAYERS[5:]), "musicnn-msd": tuple(musicnn.MUSICNN_LAYERS[5:]), "nsnet2": (),
            "musicnn-vgg-mtt": (), "musicnn-vgg-msd": (), "dnsmos-p808": ("dense1", "dense2"),
            "dnsmos-p835": ("dense1", "dense2", "scores")}.get(name, ("output",))
        assert model.clip_level_layers == expected_clip_level, name
    p835 = load_model("dnsmos-p835@random")
    assert p835.layer_causal("logpow") and not any(p835.layer_causal(f"conv{i}") for i in range(1, 8))


@pytest.mark.parametrize("name", NAMES)
def test_every_bin_lies_between_two_frame_centres(name):
    """The default time base (25 Hz, 0.5 s before onset, to 3 s) on a 2 s sound: no bin beyond the first or last
    frame centre of any layer (``frame_edge_s`` is long enough for the 3 s steps of DeepTemp's conv1x1 and the
    VGG taggram's 3 s patches)."""
    model = load_model(f"{name}@random")
    layers = frame_layers(model, None)
    run = _FrameRun(model, bin_starts(25.0, 0.5, 3.0), 25.0, max(EDGE_S, model.frame_edge_s), layers, 1)
    sound = (0.1 * np.random.default_rng(0).standard_normal(2 * model.sample_rate)).astype(np.float32)
    run.over(lambda i: sound, "", False, None)
    assert {layer: run.layer_info[layer]["held_bins"] for layer in layers} == dict.fromkeys(layers, 0)


@pytest.mark.parametrize("name", NAMES)
def test_frame_times_match_the_frame_counts_on_a_real_stimulus(name, data_root):
    """Natural sound 1 (2 s) padded as the frame extractor pads it (25 Hz, 0.5 s before onset, to 3 s): for every
    layer, the ``frame_times`` of the frames the model gives span the input: the first and last centres lie within
    two and a half steps of its start and end (pooled layers cover a remainder with padding or drop it, VGG drops a
    few rows per 3 s patch, each of Tempo-CNN's stacked even-kernel modules moves its grid half a frame later). A
    wrong hop (a pooling missed, a patch mis-stepped) is off by about half the input."""
    from brainlike.data.stimuli import load_natsound165

    model = load_model(f"{name}@random")
    layers = frame_layers(model, None)
    run = _FrameRun(model, bin_starts(25.0, 0.5, 3.0), 25.0, max(EDGE_S, model.frame_edge_s), layers, 1)
    sound = load_natsound165(data_root).subset([0]).waveform(0, model.sample_rate)
    before, after = run.padding(len(sound))
    padded = np.zeros(before + len(sound) + after, np.float32)
    padded[before: before + len(sound)] = sound
    outputs = model.run_padded(padded[None], slice(before, before + len(sound)))
    duration = len(padded) / model.sample_rate
    for layer in layers:
        n_frames = outputs[layer].shape[1]
        times = model.frame_times(layer, n_frames, len(padded))
        steps = np.diff(times)
        step = float(np.median(steps))
        assert n_frames > 1 and times.shape == (n_frames,) and np.all(steps > 0), f"{name} {layer}"
        assert 0 <= times[0] <= 2.5 * step, f"{name} {layer}: first centre {times[0]:.4f} s, step {step:.4f} s"
        assert abs(times[-1] - duration) <= 2.5 * step, f"{name} {layer}: {n_frames} frames, last {times[-1]:.4f} s"


@pytest.mark.parametrize("name", ["tempocnn-deeptemp", "tempocnn-cnn"])
def test_tempocnn_normalises_frames_with_the_sound_alone(name):
    """8 s of noise after 20 frames of silence and before 4 s more: the padded input needs two 256-frame windows,
    the sound alone one. Normalised with the sound's own statistics (as the time-averaged run does), its frames
    away from the edges are those of the sound alone; the whole-input statistics (more zero frames) would move the
    standardised (DeepTemp) input."""
    import torch

    model = load_model(f"{name}@random")
    layer = "conv0" if "deep" in name else "conv1"
    sound = (0.1 * np.random.default_rng(2).standard_normal(8 * 11025)).astype(np.float32)
    before = 20 * 512
    padded = np.zeros(before + len(sound) + 4 * 11025, np.float32)
    padded[before: before + len(sound)] = sound
    framed = model.run_padded(padded[None], slice(before, before + len(sound)))[layer][0]
    alone = model(sound[None])[layer][0]
    assert len(alone) == 173 and tempocnn.pad_to_windows(torch.zeros(1, 40, len(framed)))[1] == 2
    np.testing.assert_allclose(framed[20 + 10: 20 + 163], alone[10:163], rtol=1e-3, atol=1e-3)
    whole = model(padded[None])[layer][0]
    if model.variant.normaliser == "std":
        assert np.abs(whole[20 + 10: 20 + 163] - alone[10:163]).max() > 0.05


def test_dnsmos_p808_decibels_are_relative_to_the_sound_alone():
    """A click half-way between two frame centres of the sound alone (Hann weight 0.51) lands on a
    frame centre once 80 samples of silence precede it: the dB reference stays the sound's own maximum (numpy
    float64 front end here), not the padded input's (5 dB higher)."""
    import torch
    from scipy import signal

    model = load_model("dnsmos-p808@random")
    sound = (0.01 * np.random.default_rng(3).standard_normal(8000)).astype(np.float32)
    sound[80] = 1.0
    padded = np.concatenate([np.zeros(80, np.float32), sound, np.zeros(8000, np.float32)])
    window = signal.get_window("hann", dnsmos.N_FFT, fftbins=True)

    def mel(x: np.ndarray) -> np.ndarray:
        x = np.pad(x.astype(np.float64), dnsmos.N_FFT // 2)
        frames = np.lib.stride_tricks.sliding_window_view(x, dnsmos.N_FFT)[:: dnsmos.HOP] * window
        return dnsmos.mel_filters().astype(np.float64) @ (np.abs(np.fft.rfft(frames, axis=1)) ** 2).T

    def network_input(reference: float) -> np.ndarray:
        db = 10 * np.log10(np.maximum(mel(padded), 1e-10)) - 10 * np.log10(reference)
        return ((np.maximum(db, -80.0) + 40) / 40).T[None].astype(np.float32)

    sound_peak, padded_peak = mel(sound).max(), mel(padded).max()
    assert padded_peak / sound_peak > 3.0  # the click on a frame centre: about 5 dB more (Hann 0.51 -> 1)
    framed = model.run_padded(padded[None], slice(80, 8080))["conv1"]
    with torch.inference_mode():
        expected = model.module(torch.from_numpy(network_input(sound_peak)))["conv1"]
        whole = model.module(torch.from_numpy(network_input(padded_peak)))["conv1"]
    np.testing.assert_allclose(framed, expected.permute(0, 2, 1, 3).flatten(2).numpy(), rtol=1e-3, atol=1e-4)
    assert np.abs(framed - whole.permute(0, 2, 1, 3).flatten(2).numpy()).max() > 0.01
