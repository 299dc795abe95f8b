"""Frame times of the adapters, checked with a click: the response of an input-side layer peaks at the frame
centre nearest the click, within half a frame hop (random-init twins: the timing is the architecture's, not the
weights'). Binned at 200 Hz, so slower frames are interpolated and peak at their own centres."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.extract.frames import bin_starts, frames_of_clips
from brainlike.models.registry import load_model

RATE, PRE, STOP = 200.0, 0.2, 1.2
CLICK_S = 0.5013  # not on any model's frame grid

CASES = [
    # spec, layer, frame hop (s): the tolerance is half of it
    ("melspec", "mfcc20", 0.010),
    ("envelope", "envelope", 0.010),
    ("whisper-tiny.en@random", "log_mel", 0.010),
    ("whisper-tiny.en@random", "conv2", 0.020),
    ("yamnet@random", "layer1", 0.020),
    ("crepe-tiny@random", "conv1", 0.020),
    ("silero-vad@random", "stft", 0.032),
    ("soundnet@random", "conv1", 16 / 22050),
    ("soundnet@random", "conv2", 256 / 22050),
    ("fcpe@random", "input_stack", 0.010),
    ("aisfx@random", "block1.conv1", 3 * 1024 / 44100),  # a random 3 x 3 conv may peak one frame off
    ("resemblyzer@random", "lstm0", 0.010),
    ("mae@random", "embedding", 0.040),
    ("dasheng@random", "layer0", 0.040),
    ("vggish@random", "conv1", 0.010),
    ("cochresnet50@random", "conv1_relu1", 0.010),
    ("cochcnn9@random", "input_after_preproc", 0.005),
    ("hf:random/wav2vec2?preset=tiny", "features", 10 / 16000),  # conv kernels [10, 3], strides [5, 2]
    ("hf:random/whisper?preset=tiny", "conv2", 0.020),
]
SLOW = {"whisper-tiny.en@random", "dasheng@random", "cochresnet50@random", "cochcnn9@random", "yamnet@random",
        "hf:random/wav2vec2?preset=tiny"}


def _peak_time(values: np.ndarray, bins: np.ndarray) -> float:
    distance = np.linalg.norm(values.astype(np.float64) - values[0], axis=1)
    return float(bins[np.argmax(distance)] + 0.5 / RATE)


@pytest.mark.parametrize("spec, layer, hop", [pytest.param(*c, marks=pytest.mark.slow) if c[0] in SLOW
                                               else c for c in CASES])
def test_click_response_peaks_at_the_nearest_frame_centre(spec, layer, hop):
    model = load_model(spec)
    clip = np.zeros(int(1.0 * model.sample_rate), np.float32)
    clip[int(round(CLICK_S * model.sample_rate))] = 0.5
    values = frames_of_clips(model, [clip], rate=RATE, pre=PRE, stop=STOP, layers=[layer])[layer][0]
    if spec == "envelope":
        values = values[:, :1]  # the level; its rise peaks on the first frame that reaches the click
    peak = _peak_time(values, bin_starts(RATE, PRE, STOP))
    assert abs(peak - CLICK_S) <= hop / 2 + 0.5 / RATE + 1e-3, f"{spec} {layer}: peak at {peak:.4f} s"


@pytest.mark.slow
def test_patch_models_place_the_click_in_its_patch():
    """BEATs: 16-frame patches (160 ms) of Kaldi frames (400 samples every 160, not centred); the click's patch
    centre is computed here from the padding the extractor uses (before = ceil((pre + edge) * rate) samples)."""
    model = load_model("beats@random")
    clip = np.zeros(16000, np.float32)
    clip[int(CLICK_S * 16000)] = 0.5
    values = frames_of_clips(model, [clip], rate=RATE, pre=PRE, stop=STOP, layers=["layer0"])["layer0"][0]
    before = int(np.ceil((PRE + 0.5) * 16000 - 1e-6))
    sample = before + int(CLICK_S * 16000)
    frames = [m for m in range(sample // 160 - 3, sample // 160 + 1) if 160 * m <= sample < 160 * m + 400]
    patch = frames[len(frames) // 2] // 16
    centre = (160 * (16 * patch + 7.5) + 199.5 - before) / 16000
    assert abs(_peak_time(values, bin_starts(RATE, PRE, STOP)) - centre) <= 0.5 / RATE + 1e-9


def test_causality_and_clip_level_layers_are_declared():
    causal = {"melspec", "envelope", "random-features", "crepe-tiny@random", "silero-vad@random",
              "resemblyzer@random"}
    for spec in ["melspec", "envelope", "random-features", "cochleagram", "whisper-tiny.en@random",
                 "crepe-tiny@random", "silero-vad@random", "soundnet@random", "resemblyzer@random", "mae@random"]:
        assert load_model(spec).causal == (spec in causal), spec
    assert load_model("resemblyzer@random").clip_level_layers == ("embedding",)
    assert load_model("cochcnn9@random").clip_level_layers == ("relufc",)
    assert not load_model("spectrotemporal").time_resolved
    assert not load_model("hf:random/clap?preset=tiny").time_resolved


def test_resemblyzer_level_is_measured_on_the_sound_alone():
    import torch

    from brainlike.models.zoo.resemblyzer import normalize_volume

    sound = torch.from_numpy((np.random.default_rng(0).standard_normal(8000) * 0.003).astype(np.float32))[None]
    padded = torch.nn.functional.pad(sound, (16000, 16000))
    alone = normalize_volume(sound)
    embedded = normalize_volume(padded, padded[:, 16000:24000])
    torch.testing.assert_close(embedded[:, 16000:24000], alone)
    assert float(normalize_volume(padded).abs().max()) > 1.5 * float(alone.abs().max())  # whole-input level differs


@pytest.mark.slow
def test_hf_feature_normalisation_uses_the_sound_alone():
    """wav2vec2's extractor normalises each clip to zero mean, unit variance: in frames, the sound is normalised
    alone, so the amount of silence around it does not change its frames (a whole-input variance would: 3x here)."""
    model = load_model("hf:random/wav2vec2?preset=tiny")
    assert model.extractor.do_normalize
    sound = (np.random.default_rng(1).standard_normal(8000) * 0.1 + 0.02).astype(np.float32)
    short = frames_of_clips(model, [sound], rate=100.0, pre=0.1, stop=0.6, layers=["features"])["features"][0]
    long = frames_of_clips(model, [sound], rate=100.0, pre=0.3, stop=1.6, layers=["features"])["features"][0]
    np.testing.assert_allclose(long[30 + 2:30 + 48], short[10 + 2:10 + 48], rtol=1e-4, atol=1e-5)
    assert model.extractor.do_normalize  # restored after the padded run
