"""BEATs: parameter names/shapes/count of the official definition, Kaldi front end, attention pieces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from brainlike.errors import ModelError
from brainlike.models.paper import beats
from brainlike.models.paper._frontends import kaldi_fbank
from brainlike.models.registry import load_model
from paper_helpers import make_signal, shapes


def official_shapes(cfg: beats.BEATsConfig) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of the official BEATs (microsoft/unilm beats/BEATs.py + backbone.py), written out by hand."""
    e, d, f, h = cfg.embed_dim, cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim, cfg.encoder_attention_heads
    out = {"post_extract_proj.weight": (d, e), "post_extract_proj.bias": (d,),
           "patch_embedding.weight": (e, 1, 16, 16), "layer_norm.weight": (e,), "layer_norm.bias": (e,),
           "encoder.pos_conv.0.bias": (d,), "encoder.pos_conv.0.weight_g": (1, 1, 128),
           "encoder.pos_conv.0.weight_v": (d, d // 16, 128),
           "encoder.layer_norm.weight": (d,), "encoder.layer_norm.bias": (d,)}
    for i in range(cfg.encoder_layers):
        p = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            out[p + f"self_attn.{proj}.weight"], out[p + f"self_attn.{proj}.bias"] = (d, d), (d,)
        out[p + "self_attn.relative_attention_bias.weight"] = (320, h)  # shared module, listed under every layer
        out[p + "self_attn.grep_linear.weight"], out[p + "self_attn.grep_linear.bias"] = (8, d // h), (8,)
        out[p + "self_attn.grep_a"] = (1, h, 1, 1)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            out[p + f"{norm}.weight"], out[p + f"{norm}.bias"] = (d,), (d,)
        out[p + "fc1.weight"], out[p + "fc1.bias"] = (f, d), (f,)
        out[p + "fc2.weight"], out[p + "fc2.bias"] = (d, f), (d,)
    return out


def test_names_shapes_and_count_equal_official_definition():
    cfg = beats.BEATsConfig()
    with torch.device("meta"):
        model = beats.build_beats(cfg)
    assert shapes(model) == official_shapes(cfg)
    # distinct parameters: the shared bias table counts once; the BEATs paper rounds this to 90M
    expected = sum(math.prod(s) for s in official_shapes(cfg).values()) - 11 * 320 * 12
    assert sum(p.numel() for p in model.parameters()) == expected == 90_311_792


@pytest.mark.parametrize("rate, length_ms, shift_ms, window, bins", [
    (16000, 25.0, 10.0, "povey", 100),  # BEATs framing (kaldi-native-fbank refuses 128 bins here: empty filters)
    (24000, 26.56, 13.28, "hanning", 160),  # EnCodecMAE framing (refuses 256 for the same reason)
])
def test_kaldi_fbank_equals_kaldi_native_fbank(torchaudio_stub, rate, length_ms, shift_ms, window, bins):
    wave = make_signal(1.3, rate) * 2 ** 15
    ours = kaldi_fbank(torch.from_numpy(wave[None]).double(), sample_rate=rate, num_mel_bins=bins,
                       frame_length_ms=length_ms, frame_shift_ms=shift_ms, window_type=window)[0]
    ref = torchaudio_stub.compliance.kaldi.fbank(torch.from_numpy(wave)[None], num_mel_bins=bins,
                                                 sample_frequency=rate, frame_length=length_ms,
                                                 frame_shift=shift_ms, window_type=window)
    window_len, shift = int(rate * length_ms / 1000), int(rate * shift_ms / 1000)
    assert ours.shape == ref.shape == (1 + (len(wave) - window_len) // shift, bins)
    assert torch.max(torch.abs(ours.float() - ref)) < 2e-3  # log domain; kaldi-native-fbank runs in float32


def test_kaldi_fbank_128_bins_has_empty_low_filters_as_torchaudio():
    """With 128 bins at 16 kHz the lowest triangles hold no FFT bin: log(float32 eps), as torchaudio returns."""
    out = kaldi_fbank(torch.from_numpy(make_signal(0.5, 16000)[None] * 2 ** 15), sample_rate=16000,
                      num_mel_bins=128)
    empty = (out[0] == math.log(np.finfo(np.float32).eps)).all(dim=0)
    assert torch.nonzero(empty).flatten().tolist() == [3]  # 20 Hz..: filter 3 falls between FFT bins 0 and 1


def test_relative_position_buckets_known_values():
    with torch.device("meta"):
        attn = beats.build_beats(beats.BEATsConfig(encoder_layers=1)).encoder.layers[0].self_attn
    buckets = attn._buckets(900, "cpu")
    # rel = j - i: -1 -> 1, +1 -> 161, +100 -> 160 + 80 + floor(log(100/80)/log(10) * 80) = 247, -799 -> 159
    assert buckets[1, 0] == 1 and buckets[0, 1] == 161 and buckets[0, 100] == 247 and buckets[799, 0] == 159
    assert buckets[0, 0] == 0 and buckets[0, 899] == 319


def test_plain_layer_equals_torch_transformer_layer():
    """Without relative bias and deep norm, a layer is the standard post-LN layer (torch's reference)."""
    cfg = beats.BEATsConfig(encoder_layers=1, relative_position_embedding=False, gru_rel_pos=False, deep_norm=False,
                            encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=4)
    layer = beats.build_beats(cfg).encoder.layers[0]
    ref = torch.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, activation="gelu", batch_first=True).eval()
    a = layer.self_attn
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        ref.self_attn.out_proj.load_state_dict(a.out_proj.state_dict())
        ref.linear1.load_state_dict(layer.fc1.state_dict()), ref.linear2.load_state_dict(layer.fc2.state_dict())
        ref.norm1.load_state_dict(layer.self_attn_layer_norm.state_dict())
        ref.norm2.load_state_dict(layer.final_layer_norm.state_dict())
        x = torch.randn(2, 9, 64, generator=torch.Generator().manual_seed(0))
        assert torch.max(torch.abs(layer(x, None) - ref(x))) < 1e-5


def test_gated_bias_matches_formula():
    cfg = beats.BEATsConfig(encoder_layers=1, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                            encoder_attention_heads=2)
    attn = beats.build_beats(cfg).encoder.layers[0].self_attn
    x = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1))
    bias = attn.position_bias(5)
    with torch.no_grad():
        q = attn.q_proj(x).view(1, 5, 2, 16).transpose(1, 2)
        k = attn.k_proj(x).view(1, 5, 2, 16).transpose(1, 2)
        v = attn.v_proj(x).view(1, 5, 2, 16).transpose(1, 2)
        g = torch.sigmoid(attn.grep_linear(q).view(1, 2, 5, 2, 4).sum(-1))
        gate = g[..., :1] * (g[..., 1:] * attn.grep_a - 1.0) + 2.0
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(16) + gate * bias, dim=-1)
        expected = attn.out_proj((probs @ v).transpose(1, 2).reshape(1, 5, 32))
        assert torch.max(torch.abs(attn(x, bias) - expected)) < 1e-6


def test_random_twin_layers_and_checkpoint_round_trip(tmp_path):
    cfg = beats.BEATsConfig(encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128,
                            encoder_attention_heads=4, embed_dim=32)
    module = beats.build_beats(cfg)
    path = tmp_path / "BEATs_tiny.pt"
    torch.save({"cfg": {**cfg.__dict__, "dropout": 0.1}, "model": module.state_dict()}, path)
    model = load_model(f"beats:{path}")
    assert model.layers == ["layer0", "layer1", "layer2"] and model.weights_id == model.provenance["checkpoint_sha256"]
    out = model(make_signal(1.0, 16000)[None])
    assert out["layer2"].shape == (1, 6 * 8, 64)  # 98 frames -> 6 x 8 patches
    state = module.state_dict()
    state["encoder.layers.0.fc1.weight"] = torch.zeros(3, 3)
    torch.save({"cfg": cfg.__dict__, "model": state}, path)
    with pytest.raises(ModelError, match=r"shape mismatch: encoder.layers.0.fc1.weight \(3, 3\) != \(128, 64\)"):
        load_model(f"beats:{path}")
    twin = load_model("beats@random")
    assert twin.layers == [f"layer{i}" for i in range(13)] and twin.weights_id == "random:0"
