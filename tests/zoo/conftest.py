"""Fixtures for the zoo tests: the real zoo folder (installed weights), an espeak-ng sentence and a 440 Hz tone.

The session conftest gives every test run a fresh ``BRAINLIKE_CACHE``, which holds no weights. Tests marked
``zoo`` use the zoo folder that was in force when the tests were collected (``$BRAINLIKE_ZOO`` or the user's cache):
install it first with ``brainlike zoo install all``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from brainlike.models.zoo import store

REAL_ZOO = store.zoo_root()  # evaluated at collection, before the session fixture swaps BRAINLIKE_CACHE
SENTENCE = "the quick brown fox jumps over the lazy dog"


@pytest.fixture
def real_zoo(monkeypatch: pytest.MonkeyPatch):
    """Point brainlike at the installed zoo; ``real_zoo(name)`` skips the test when ``name`` is not installed."""
    monkeypatch.setenv("BRAINLIKE_ZOO", str(REAL_ZOO))

    def require(*names: str) -> Path:
        for name in names:
            if not store.is_installed(name):
                pytest.skip(f"{name} not installed in {REAL_ZOO}: run `brainlike zoo install {name}`")
        return REAL_ZOO

    return require


@pytest.fixture(scope="session")
def speech_clip(tmp_path_factory) -> np.ndarray:
    """The sentence above, synthesised by espeak-ng and resampled to 16 kHz (float32)."""
    from brainlike.data.audio import read_audio, resample

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not found (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("espeak") / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True, capture_output=True)
    audio, rate = read_audio(path)
    return resample(audio, rate, 16000).astype(np.float32)


@pytest.fixture(scope="session")
def tone() -> np.ndarray:
    """2 s at 16 kHz: 0.5 sin(2 pi 440 t) + 0.05 white noise (seed 0), as in zoo-architectures.md."""
    t = np.arange(32000) / 16000
    noise = np.random.default_rng(0).standard_normal(32000)
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# frame times: where a click reaches (tests/zoo/test_frame_times_twins.py and test_frame_times_pretrained.py)

SUPPORT_CASES = [
    # (model, input samples, sound samples (the normalisation statistics come from them), {layer: click sample}): a
    # click on a layer's frame grid, far from the input (window, patch) edges and, for frame-rate layers, away from
    # the middle of the input (where frames spread evenly over the input would happen to be centred right too).
    # Tempo-CNN: 255 x 512 samples = 256 frames, one window; spectrogram frame f centred on 512 f; clicks at frame 72
    # and, for pooling by 2, 4, 8, 16, at 128.5, 129.5, 131.5, 135.5 (centres of the pooled grids). "conv4[:192]":
    # the first multi-filter branch (24 channels x 8 mel bands; kernel 32, Keras "same": half a frame later); the
    # wider branches span the whole window.
    ("tempocnn-cnn", 130560, 11025, {"conv1": 36864, "conv2": 36864, "conv3": 36864, "conv4[:192]": 36864}),
    ("tempocnn-fcn", 130560, 11025, {f"conv{i}": 36864 for i in range(1, 10)}),
    *[(name, 130560, 11025, {"conv0": 36864, "conv1": 36864, "conv2": 65792, "conv3": 65792, "conv4": 66304,
                             "conv5": 66304, "conv6": 67328, "conv7": 67328, "conv8": 69376, "conv9": 69376})
      for name in ("tempocnn-deeptemp", "tempocnn-deepsquare", "tempocnn-mazurka")],
    ("tempocnn-shallowtemp", 130560, 11025, {"conv0": 36864}),  # conv2's 256-frame kernel spans the window
    # musicnn: 376 frames, click at frame 120 (sample 30720); the temporal branch and the mid-end also at 120.5
    ("musicnn-mtt", 96000, 16000, {"timbral": 30720, "temporal": 30848, "cnn1": 30720, "cnn2": 30848,
                                   "cnn3": 30720}),
    ("musicnn-msd", 96000, 16000, {"timbral": 30720, "temporal": 30848, "cnn3": 30720}),
    # VGG: 375 frames (three patches, the last of one frame); patch 1 = frames 187-373; pool1-pool4 rows at frames
    # 2j + 1.5, 4j + 2.5, 8j + 4.5, 16j + 8.5 of it; pool5's two rows (32.5, 96.5) and the taggram both centre on
    # frame 64.5 of the patch (sample 64384)
    *[(name, 95744, 16000, {"pool1": 71808, "pool2": 72064, "pool3": 71552, "pool4": 70528, "pool5": 64384,
                            "taggram": 64384}) for name in ("musicnn-vgg-mtt", "musicnn-vgg-msd")],
    # NSNet2: frame 100 = samples 16000-16319; the GRUs and what follows them: from that frame on (ONSET_LAYERS)
    ("nsnet2", 32000, 8000, {"fc_in": 16160, "gru1": 16160, "gru2": 16160, "fc_out1": 16160, "fc_out2": 16160,
                             "gain": 16160}),
    # DNSMOS P.808: mel frame f centred on 160 f; pooled grids 320 j + 80, 640 j + 240, 1280 j + 560
    ("dnsmos-p808", 32000, 8000, {"conv1": 16080, "conv2": 16240, "conv3": 16240, "conv4": 15920, "conv5": 15920}),
    # DNSMOS P.835: frame t = samples 160 t ... 160 t + 319, every sample in two frames: clicks half-way between two
    # centres (frames 59 and 60 at 9679.5); pooled grids 320 j + 239.5, 640 j + 399.5, 1280 j + 719.5
    ("dnsmos-p835", 32000, 8000, {"logpow": 9680, "conv1": 9680, "conv4": 9680, "conv5": 16240, "conv6": 16400,
                                  "conv7": 16080}),
]
"""Where a click reaches: per model, layers and the click sample placed on their frame grid."""
ONSET_LAYERS = {("nsnet2", layer) for layer in ("gru1", "gru2", "fc_out1", "fc_out2", "gain")}
"""Forward recurrences: a click changes every frame from the one whose window holds it to the end."""


SAME_TWIN = {"musicnn-msd", "musicnn-vgg-msd"}
"""Random twins identical to another's (same architecture and output size, seed 0): left out of ``twin_support_case``."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``support_case``: every :data:`SUPPORT_CASES` entry; ``twin_support_case``: those with distinct twins."""
    for argument, cases in [("support_case", SUPPORT_CASES),
                            ("twin_support_case", [case for case in SUPPORT_CASES if case[0] not in SAME_TWIN])]:
        if argument in metafunc.fixturenames:
            metafunc.parametrize(argument, cases, ids=[case[0] for case in cases])


def check_click_support(model, name: str, n_samples: int, n_sound: int, clicks: dict[str, int]) -> None:
    """For each layer: the frames a click changes (any feature, beyond 1e-6 of the largest change) are centred on
    the click within a sample (their first and last frame centres, from ``model.frame_times``); the change must stop
    short of both input ends (a receptive field cut by the edges has no centre to check). Which frames change does
    not depend on the weights, so random and pretrained weights must agree.

    The sound (noise at the start of the input) sets any per-sound normalisation through ``run_padded``; each click
    is added to a copy of the input (one batch), so a row differs from the first by its click alone.
    """
    rng = np.random.default_rng(0)
    base = np.zeros(n_samples, np.float32)
    base[:n_sound] = 0.1 * rng.standard_normal(n_sound)
    rate = float(model.sample_rate)
    samples = sorted(set(clicks.values()))
    rows = np.stack([base] * (1 + len(samples)))
    for row, click in enumerate(samples, start=1):
        rows[row, click] += 0.5
    outputs = model.run_padded(rows, slice(0, n_sound))
    for spec, click in clicks.items():
        layer, _, features = spec.partition("[:")
        values = outputs[layer].astype(np.float64)
        if features:
            values = values[:, :, : int(features.rstrip("]"))]
        change = np.abs(values[1 + samples.index(click)] - values[0]).max(axis=1)
        hit = np.flatnonzero(change > 1e-6 * change.max())
        times = model.frame_times(layer, values.shape[1], n_samples) * rate
        assert change.max() > 0 and hit[0] > 0, f"{name} {spec}: the change reaches the start"
        if (name, layer) in ONSET_LAYERS:
            assert hit[-1] == values.shape[1] - 1
            # the first frame changed is the one whose window (320 samples) holds the click
            assert abs(times[hit[0]] - click) <= 160, f"{name} {spec}: first change at {times[hit[0]]}"
            continue
        assert hit[-1] < values.shape[1] - 1, f"{name} {spec}: the change reaches the end"
        middle = (times[hit[0]] + times[hit[-1]]) / 2
        assert abs(middle - click) <= 1.0, f"{name} {spec}: frames {hit[0]}-{hit[-1]} centre on {middle}"


@pytest.fixture
def click_support():
    """:func:`check_click_support` (models, layers and clicks: the ``support_case`` parameter)."""
    return check_click_support
