"""Dasheng: names/shapes/counts and forward equal to the official ``dasheng`` package on the same random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlike.errors import ModelError
from brainlike.models.paper import dasheng
from brainlike.models.paper._model import build_random
from brainlike.models.registry import load_model
from paper_helpers import make_signal, perturb_, shapes


@pytest.fixture(scope="module")
def official(torchaudio_stub):
    pytest.importorskip("einops")
    return pytest.importorskip("dasheng.pretrained.pretrained")


def _official_encoder(official, size: str):
    cfg = dasheng.SIZES[size]
    return official.Dasheng(embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads).eval()


@pytest.mark.parametrize("size", ["base", "0.6b", "1.2b"])
def test_names_shapes_and_counts_equal_official(official, size):
    with torch.device("meta"):
        ours = dasheng.build_encoder(dasheng.SIZES[size])
        theirs = _official_encoder(official, size)
    assert shapes(ours) == shapes(theirs)
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in theirs.parameters())
    # the paper's rounded sizes (86M, 0.6B, 1.2B); exact counts of the official definition
    assert n_ours == {"base": 85_447_808, "0.6b": 630_333_568, "1.2b": 1_134_047_360}[size]


def test_forward_equals_official_on_same_weights(official):
    torch.manual_seed(3)
    cfg = dasheng.DashengConfig(embed_dim=192, depth=4, num_heads=4)  # same code paths as base, 30x cheaper
    theirs = official.Dasheng(embed_dim=192, depth=4, num_heads=4).eval()
    perturb_(theirs)
    ours = dasheng.build_encoder(cfg)
    dasheng.load_strict(ours, theirs.state_dict(), label="official")
    captured = {}
    for i, block in enumerate(theirs.blocks):
        block.register_forward_hook(lambda m, a, out, i=i: captured.setdefault(i, []).append(out))
    wave = torch.from_numpy(make_signal(10.5, 16000))[None]  # > 10.08 s: two chunks, as the official split
    with torch.inference_mode():
        final = theirs(wave)
        layers = ours.layer_outputs(wave)
    assert final.shape == (1, 262, 192)  # 1 + 168000 // 160 = 1051 frames -> 262 patches (252 + 10)
    assert torch.max(torch.abs(layers["layer4"] - final)) <= 1e-4
    for i in (0, 1, 2):  # block i output = our layer i+1 (chunks concatenated in time)
        reference = torch.cat(captured[i], dim=1)
        assert torch.max(torch.abs(layers[f"layer{i + 1}"] - reference)) <= 1e-4


def test_checkpoint_round_trip_and_strict_errors(tmp_path):
    module = dasheng.build_encoder(dasheng.DashengConfig(embed_dim=64, depth=2, num_heads=4))
    state = {k: v.clone() for k, v in module.state_dict().items()}
    path = tmp_path / "tiny.pt"
    torch.save({"model": state, "config": {"embed_dim": 64, "depth": 2, "num_heads": 4}}, path)
    model = load_model(f"dasheng:{path}")
    assert model.layers == ["layer0", "layer1", "layer2"]
    assert len(model.weights_id) == 64 and model.describe()["checkpoint_sha256"] == model.weights_id
    out = model(make_signal(1.0, 16000)[None])
    assert out["layer2"].shape == (1, 25, 64)  # 101 frames -> 25 patches of 40 ms
    del state["blocks.1.mlp.fc2.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save({"model": state, "config": {}}, path)
    with pytest.raises(ModelError, match=r"1 missing: blocks.1.mlp.fc2.bias; 1 unexpected: extra.weight"):
        load_model(f"dasheng:{path}")


def test_random_twins_layer_maps_and_determinism():
    base = load_model("dasheng@random")
    assert base.weights_id == "random:0" and base.layers == [f"layer{i}" for i in range(13)]
    wave = make_signal(1.0, 16000)[None]
    out = base(wave)
    assert out["layer12"].shape == (1, 25, 768) and np.array_equal(out["layer3"], base(wave)["layer3"])
    tiny = dasheng.DashengConfig(embed_dim=32, depth=1, num_heads=2)
    first, again = (build_random(lambda: dasheng.build_encoder(tiny))[0] for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert dasheng.SIZES["0.6b"].layer_names() == ["layer0"] + [f"layer{i}" for i in range(2, 33, 2)]
    assert dasheng.SIZES["1.2b"].layer_names()[-1] == "layer40" and len(dasheng.SIZES["1.2b"].layer_names()) == 21
    with pytest.raises(Exception, match="not available"):
        load_model("dasheng-base")


def test_mel_front_end_equals_librosa():
    librosa = pytest.importorskip("librosa")
    from brainlike.models.paper._frontends import power_to_db, stft_mel

    wave = make_signal(1.0, 16000).astype(np.float64)
    ours = power_to_db(stft_mel(torch.from_numpy(wave[None]), sample_rate=16000, n_fft=512, hop=160, win=512,
                                n_mels=64, f_min=0.0, f_max=8000.0))[0].numpy()
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=512, hop_length=160,
                                                             center=True, pad_mode="reflect", power=2.0, n_mels=64,
                                                             fmin=0.0, fmax=8000.0, htk=True, norm=None),
                              ref=1.0, amin=1e-10, top_db=120.0)
    assert ours.shape == ref.shape == (64, 101)
    assert np.max(np.abs(ours - ref)) < 1e-3  # dB
