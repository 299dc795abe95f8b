"""Frame times of pretrained zoo models, checked with a click (installed weights; ``-m zoo``): the response of an
input-side layer peaks within one frame hop of the click (learned kernels need not be symmetric), binned at 200 Hz."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.extract.frames import bin_starts, frames_of_clips
from brainlike.models.registry import load_model

RATE, PRE = 200.0, 0.2


@pytest.mark.zoo
@pytest.mark.parametrize("name, layer, hop, click", [
    ("whisper-base", "log_mel", 0.010, 0.5013),
    ("whisper-base", "conv2", 0.020, 0.5013),
    ("yamnet", "layer1", 0.020, 0.5013),
    ("silero-vad", "stft", 0.032, 0.5013),
    ("crepe-tiny", "conv1", 0.020, 0.5013),
    ("basic-pitch", "log_cqt", 256 / 22050, 0.5013),
    ("basic-pitch", "log_cqt", 256 / 22050, 2.5013),  # in the second input window
    ("basic-pitch", "log_cqt", 256 / 22050, 3.3013),  # in the third
])
def test_pretrained_click_response_is_at_the_click(real_zoo, name, layer, hop, click):
    real_zoo(name)
    model = load_model(name)
    seconds = 1.0 if click < 1 else 4.0
    clip = np.zeros(int(seconds * model.sample_rate), np.float32)
    clip[int(round(click * model.sample_rate))] = 0.5
    stop = seconds + 0.2
    values = frames_of_clips(model, [clip], rate=RATE, pre=PRE, stop=stop, layers=[layer])[layer][0]
    distance = np.linalg.norm(values.astype(np.float64) - values[0], axis=1)
    peak = bin_starts(RATE, PRE, stop)[np.argmax(distance)] + 0.5 / RATE
    assert abs(peak - click) <= hop + 0.5 / RATE + 1e-3, f"{name} {layer}: peak at {peak:.4f} s"
