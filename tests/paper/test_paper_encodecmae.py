"""EnCodecMAE: names/shapes/counts of the official definition, interleaved heads, ResiDual, chunking, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from brainlike.errors import ModelError
from brainlike.models.paper import encodecmae as ecm
from brainlike.models.registry import load_model
from paper_helpers import make_signal, shapes


def official_shapes(cfg: ecm.EncodecMAEConfig) -> dict[str, tuple[int, ...]]:
    """Encoder state-dict shapes of habla-liaa/encodecmae (models/encoders WavEncoder + models/transformers), by hand."""
    d, f = cfg.model_dim, cfg.ff_dim
    out = {"wav_encoder.post_net.weight": (d, cfg.n_mels), "wav_encoder.post_net.bias": (d,),
           "visible_encoder.positional_encoder.scale": (), "visible_encoder.final_norm.weight": (d,),
           "visible_encoder.final_norm.bias": (d,)}
    for i in range(cfg.num_layers):
        p = f"visible_encoder.encoder_layers.{i}."
        out.update({p + f"att_layer.{w}.weight": (d, d) for w in ("wq", "wk", "wv", "wo")})
        out.update({p + "ff_layer.0.weight": (f, d), p + "ff_layer.0.bias": (f,), p + "ff_layer.2.weight": (d, f),
                    p + "ff_layer.2.bias": (d,)})
        out.update({p + f"{n}.{w}": (d,) for n in ("norm1", "norm2") for w in ("weight", "bias")})
    return out


@pytest.mark.parametrize("size", ["small", "base", "large"])
def test_names_shapes_and_counts(size):
    cfg = ecm.SIZES[size]
    with torch.device("meta"):
        model = ecm.build_encodecmae(cfg)
    assert shapes(model) == official_shapes(cfg)
    d, f, n = cfg.model_dim, cfg.ff_dim, cfg.num_layers
    per_layer = 4 * d * d + 4 * d  # attention (no biases) + two LayerNorms
    expected = d * cfg.n_mels + d + 1 + 2 * d + n * per_layer + (2 * d * f + f + d)  # one shared feed-forward
    assert sum(p.numel() for p in model.parameters()) == expected
    assert ecm.SIZES[size].layer_names()[-1] == f"layer{n}"
    assert len(cfg.layer_names()) == {"small": 5, "base": 10, "large": 10}[size]


def test_attention_heads_are_interleaved_as_official():
    """Feature d * heads + h belongs to head h (the official view(N, T, d, H)); checked head by head."""
    cfg = ecm.EncodecMAEConfig(model_dim=12, num_heads=3, num_layers=1, ff_dim=8, n_mels=4)
    att = ecm.build_encodecmae(cfg).visible_encoder.encoder_layers[0].att_layer
    x = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        merged = torch.zeros(2, 5, 12)
        for h in range(3):
            q, k, v = (x @ w.weight[h::3].T for w in (att.wq, att.wk, att.wv))
            probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1)
            merged[..., h::3] = probs @ v
        assert torch.max(torch.abs(att(x, None) - att.wo(merged))) < 1e-6


def test_residual_streams_and_last_layer():
    cfg = ecm.EncodecMAEConfig(model_dim=16, num_heads=2, num_layers=2, ff_dim=32, n_mels=8)
    enc = ecm.build_encodecmae(cfg).visible_encoder
    x = torch.randn(1, 6, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        acts = enc(x, None)
        h = enc.positional_encoder(x)
        x0, x1 = h, h
        for layer in enc.encoder_layers:  # ResiDual (Xie et al. 2023), written out
            a = layer.att_layer(x0, None)
            x0, x1 = layer.norm1(x0 + a), x1 + a
            ff = layer.ff_layer(x0)
            x0, x1 = layer.norm2(x0 + ff), x1 + ff
        assert torch.allclose(acts[-1], x0 + enc.final_norm(x1), atol=1e-6)
        pos = torch.arange(6)[:, None] * torch.exp(-torch.arange(0, 16, 2) * math.log(10000.0) / 16)
        assert torch.allclose(h[0, :, 0::2] - x[0, :, 0::2], torch.sin(pos), atol=1e-6)


def test_chunking_front_end_rate_and_padding():
    cfg = ecm.EncodecMAEConfig(model_dim=32, num_heads=4, num_layers=2, ff_dim=64)
    net = ecm.build_encodecmae(cfg)
    wave = torch.from_numpy(make_signal(9.0, 24000))[None]
    with torch.no_grad():
        out = net.layer_outputs(wave)["layer2"]
        first = net.layer_outputs(wave[:, :96000])["layer2"]
    # 4 s + 4 s + 1 s chunks: 1 + (96000 - 637) // 318 = 300 frames (75 Hz) twice, then 74
    assert out.shape == (1, 674, 32)
    assert torch.allclose(out[:, :300], first, atol=1e-5)
    with pytest.raises(ModelError, match="shorter than 2049"):
        net.layer_outputs(wave[:, :2000])


def test_checkpoint_round_trip_shared_ff_and_refusals(tmp_path):
    cfg = ecm.EncodecMAEConfig(model_dim=32, num_heads=4, num_layers=3, ff_dim=64)
    net = ecm.build_encodecmae(cfg)
    (tmp_path / "config.gin").write_text("MODEL_DIM=32\nNUM_ENCODER_HEADS=4\n")
    state = {**net.state_dict(), "decoder.encoder_layers.0.att_layer.wq.weight": torch.zeros(32, 32),
             "head.ln.weight": torch.zeros(3)}
    path = tmp_path / "model.pt"
    torch.save({"state_dict": state, "epoch": 1}, path)
    model = load_model(f"encodecmae:{path}")
    assert model.provenance["config"]["shared_ff"] is True and model.provenance["set_aside_keys"] == 2
    assert model.layers == ["layer1", "layer2", "layer3"] and model.provenance["config"]["num_heads"] == 4
    wave = make_signal(2.0, 24000)[None]
    with torch.no_grad():
        assert np.allclose(model(wave)["layer3"], net.layer_outputs(torch.from_numpy(wave))["layer3"].numpy(),
                           atol=1e-5)
    torch.save({"state_dict": {"decoder.x": torch.zeros(3)}}, path)
    with pytest.raises(ModelError, match="neither wav_encoder.post_net nor feat_projector"):
        load_model(f"encodecmae:{path}")
    assert ecm.SIZES["large"].layer_names() == [f"layer{i}" for i in range(2, 21, 2)]
    with pytest.raises(Exception, match="not available"):
        load_model("encodecmae-large")


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_encodec_encoder_equals_official_encodec_package(torchaudio_stub):
    """The EnCodec 24 kHz encoder (input of the original EnCodecMAE) equals encodec's SEANetEncoder (pip, --no-deps)."""
    pytest.importorskip("einops")
    seanet = pytest.importorskip("encodec.modules.seanet")
    torch.manual_seed(0)
    theirs = seanet.SEANetEncoder(channels=1, norm="weight_norm", causal=True).eval()  # as encodec_model_24khz
    cfg = ecm.EncodecMAEConfig(input="encodec", model_dim=64, num_heads=1, num_layers=1, ff_dim=32)
    ours = ecm.build_encodecmae(cfg).wav_encoder.model
    assert shapes(ours) == shapes(theirs)
    ecm.load_strict(ours, theirs.state_dict(), label="encodec")
    wave = torch.from_numpy(make_signal(1.01, 24000))[None, None]
    with torch.inference_mode():
        reference, got = theirs(wave), ours(wave)
    assert got.shape == reference.shape == (1, 128, 76)  # ceil(24240 / 320) frames at 75 Hz
    assert torch.max(torch.abs(got - reference)) <= 1e-4


def test_encodec_input_checkpoint_loads_as_original_variant(tmp_path):
    cfg = ecm.EncodecMAEConfig(input="encodec", model_dim=64, num_heads=1, num_layers=2, ff_dim=32)
    net = ecm.build_encodecmae(cfg)
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {**net.state_dict(), "decoder_projector.weight": torch.zeros(64, 64)}}, path)
    model = load_model(f"encodecmae:{path}")
    assert model.provenance["config"]["input"] == "encodec" and model.provenance["set_aside_keys"] == 1
    assert model(make_signal(1.0, 24000)[None])["layer2"].shape == (1, 75, 64)


def test_per_layer_feed_forwards_are_detected(tmp_path):
    cfg = ecm.EncodecMAEConfig(model_dim=64, num_heads=1, num_layers=2, ff_dim=16, n_mels=8, shared_ff=False)
    net = ecm.build_encodecmae(cfg)
    path = tmp_path / "model.pt"
    torch.save({"state_dict": net.state_dict()}, path)
    model = load_model(f"encodecmae:{path}")
    assert model.provenance["config"]["shared_ff"] is False
    wave = make_signal(1.0, 24000)[None]
    with torch.no_grad():
        assert np.allclose(model(wave)["layer2"], net.layer_outputs(torch.from_numpy(wave))["layer2"].numpy(),
                           atol=1e-5)
