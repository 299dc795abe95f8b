"""VGGish: front end and forward equal to torchvggish (pip, installed --no-deps) on the same random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlike.errors import ChecksumError
from brainlike.models.paper import vggish
from brainlike.models.registry import load_model
from paper_helpers import make_signal, perturb_, shapes


@pytest.fixture(scope="module")
def tv():
    pytest.importorskip("resampy")
    return pytest.importorskip("torchvggish")


def test_front_end_equals_torchvggish(tv):
    wave = make_signal(2.5, 16000).astype(np.float64)
    ref = tv.vggish_input.waveform_to_examples(wave, 16000, return_tensor=False)  # numpy mel_features
    ours = vggish.log_mel_examples(torch.from_numpy(wave[None]))[0].numpy()
    assert ours.shape == ref.shape == (2, 96, 64)
    assert np.max(np.abs(ours - ref)) < 1e-6


def test_names_shapes_and_forward_equal_torchvggish(tv):
    torch.manual_seed(0)
    theirs = tv.torchvggish._vgg(postprocess=False).eval()
    perturb_(theirs, scale=0.01)
    ours = vggish.build_vggish()
    assert shapes(ours) == shapes(theirs)
    assert sum(p.numel() for p in ours.parameters()) == 72_141_184  # the published ~72M
    vggish.load_strict(ours, theirs.state_dict(), label="torchvggish")
    conv2 = []
    theirs.features[4].register_forward_hook(lambda m, a, out: conv2.append(out.clone()))
    wave = make_signal(2.5, 16000)
    examples = tv.vggish_input.waveform_to_examples(wave.astype(np.float64), 16000).detach()
    with torch.inference_mode():
        reference = theirs(examples)  # (2 examples, 128)
        layers = ours.layer_outputs(torch.from_numpy(wave[None]))
    assert layers["fc2"].shape == (1, 2, 128)
    assert torch.max(torch.abs(layers["fc2"][0] - reference)) <= 1e-4
    ref_conv2 = conv2[0].permute(0, 2, 3, 1).reshape(1, 2 * 48, -1)  # (examples*time, freq*channels)
    assert layers["conv2"].shape == (1, 96, 32 * 128)
    assert torch.max(torch.abs(layers["conv2"] - ref_conv2)) <= 1e-4


def test_layer_map_short_clip_padding_and_published_hash(tmp_path):
    model = load_model("vggish@random")
    assert model.layers == vggish.LAYERS and model.weights_id == "random:0"
    out = model(make_signal(0.5, 16000)[None])  # shorter than one example: zero-padded to 0.975 s
    assert {k: v.shape for k, v in out.items() if k in ("pool4", "fc1_1")} == {"pool4": (1, 6, 2048),
                                                                             "fc1_1": (1, 1, 4096)}
    path = tmp_path / "vggish-10086976.pth"
    torch.save(model.module.state_dict(), path)
    with pytest.raises(ChecksumError, match="published prefix 10086976"):
        load_model(f"vggish:{path}")
