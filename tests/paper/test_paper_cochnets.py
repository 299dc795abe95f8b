"""CochCNN9 / CochResNet50: names, shapes and counts of cochdnn's definitions, TF "same" padding, checkpoint prefixes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlike.models.paper import cochnets
from brainlike.models.registry import load_model
from paper_helpers import make_signal, shapes

KELL_SHAPES = {  # cochdnn robustness/audio_models/kell2018_multi_task.py: convs via timm create_conv2d_pad (no bias)
    "batchnorm0": 1, "conv0.weight": (96, 1, 7, 14), "batchnorm1": 96, "conv1.weight": (256, 96, 4, 8),
    "batchnorm2": 256, "conv2.weight": (512, 256, 2, 5), "conv3.weight": (1024, 512, 2, 5),
    "conv4.weight": (512, 1024, 2, 5), "fullyconnected.weight": (4096, 23040), "fullyconnected.bias": (4096,)}


def _expand(table):
    out = {}
    for key, value in table.items():
        if isinstance(value, int):  # a BatchNorm2d of that many channels
            out.update({f"{key}.weight": (value,), f"{key}.bias": (value,), f"{key}.running_mean": (value,),
                        f"{key}.running_var": (value,), f"{key}.num_batches_tracked": ()})
        else:
            out[key] = value
    return out


def test_cochcnn9_names_shapes_count():
    with torch.device("meta"):
        net = cochnets.build_network("cochcnn9")
    assert shapes(net) == _expand(KELL_SHAPES)
    assert sum(p.numel() for p in net.parameters()) == 106_968_962


def test_cochresnet50_count_is_resnet50_without_head_and_rgb():
    with torch.device("meta"):
        net = cochnets.build_network("cochresnet50")
    # torchvision resnet50: 25,557,032 parameters; minus the 1000-way fc (2,049,000) and 2 of 3 input channels (6,272)
    assert sum(p.numel() for p in net.parameters()) == 25_557_032 - 2_049_000 - 6_272
    keys = shapes(net)
    assert keys["conv1.weight"] == (64, 1, 7, 7) and keys["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert keys["layer3.0.downsample.0.weight"] == (1024, 512, 1, 1) and "layer3.1.downsample.0.weight" not in keys
    assert len([k for k in keys if k.endswith(".conv1.weight")]) == 16  # 3 + 4 + 6 + 3 bottlenecks


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_same_padding_matches_torch_same_for_stride_one_and_tf_shapes():
    conv = cochnets._modules()["cochcnn9"]().conv2  # kernel (2, 5), stride 1
    x = torch.randn(1, 256, 9, 17, generator=torch.Generator().manual_seed(0))
    reference = torch.nn.functional.conv2d(x, conv.weight, None, 1, padding="same")
    assert torch.max(torch.abs(conv(x) - reference)) < 1e-5
    # TF SAME: out = ceil(in / s), pad = (out - 1) s + k - in: (70 * 3 + 7 - 211, 129 * 3 + 14 - 390)
    assert [cochnets.same_pad(211, 7, 3), cochnets.same_pad(390, 14, 3)] == [6, 11]


def test_cochcnn9_forward_shapes_match_the_published_fc_input():
    model = load_model("cochcnn9@random")
    out = model(make_signal(1.5, 20000)[None])  # padded to 2 s
    assert model.layers == cochnets.KELL_LAYERS
    got = {k: v.shape for k, v in out.items()}
    assert got["input_after_preproc"] == (1, 390, 211) and got["relu0"] == (1, 130, 96 * 71)
    assert got["maxpool1"] == (1, 17, 256 * 9) and got["avgpool"] == (1, 9, 512 * 5) and got["relufc"] == (1, 1, 4096)
    # the time average of a (B, T, C*F) layer equals the paper's mean over time then ravel (C, F)
    net_out = model.module.net_outputs(torch.from_numpy(out["input_after_preproc"]).permute(0, 2, 1)[:, None])
    paper = net_out["relu2"].mean(dim=3).reshape(1, -1).detach().numpy()
    assert np.allclose(out["relu2"].mean(axis=1), paper, atol=1e-5)


def test_robustness_checkpoint_prefixes_are_handled(tmp_path):
    net = cochnets.build_network("cochresnet50")
    state = {f"module.model.{k}": v for k, v in net.state_dict().items()}
    state.update({f"module.attacker.model.{k}": v for k, v in net.state_dict().items()})
    state["module.normalizer.new_mean"] = torch.zeros(1)
    state["module.model.fc.noise/labels_binary_via_int.weight"] = torch.zeros(517, 2048)
    path = tmp_path / "5_checkpoint.pt"
    torch.save({"model": state, "epoch": 5}, path)
    model = load_model(f"cochresnet50:{tmp_path}")
    assert model.weights_id == model.provenance["checkpoint_sha256"] and model.provenance["set_aside_keys"] == len(
        net.state_dict()) + 2
    out = model(make_signal(0.5, 20000)[None])
    # 90 cochleagram frames x 211 channels -> /32 in both axes after conv1, maxpool, layer2-4: 3 x 7
    assert out["layer4"].shape == (1, 3, 2048 * 7) and out["avgpool"].shape == (1, 1, 2048)
