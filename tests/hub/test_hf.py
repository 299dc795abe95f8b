"""hf: family: random-init transformers models from small configs, local folders, the hub cache (offline), errors.

Reference values come from transformers itself, called directly on the module (``output_hidden_states``), and from
arithmetic on the configs (conv output lengths, Whisper/AST frame counts).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402

from brainlike.errors import BrainlikeError  # noqa: E402
from brainlike.models import hf  # noqa: E402
from brainlike.models.registry import load_model  # noqa: E402

SR = 16000
SSL = ["wav2vec2", "hubert", "wavlm", "data2vec-audio"]


def clips(n: int = 2, seconds: float = 1.0, rate: int = SR, seed: int = 0) -> np.ndarray:
    """A 440 Hz tone and white noise (float32)."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    rows = [0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(t.size)]
    return np.stack([rows[i % 2] * (1 + i // 2) for i in range(n)]).astype(np.float32)


def tiny(arch: str) -> hf.HFAudioModel:
    return load_model(f"hf:random/{arch}?preset=tiny")


def conv_length(n: int, kernels: list[int], strides: list[int]) -> int:
    for k, s in zip(kernels, strides):
        n = (n - k) // s + 1
    return n


@pytest.mark.parametrize("arch", SSL)
def test_ssl_layers_shapes_and_hidden_states(arch: str) -> None:
    model = tiny(arch)
    cfg = hf.ARCHITECTURES[arch].tiny
    assert model.name == f"hf:random/{arch}?preset=tiny" and model.weights_id == "random:0"
    assert model.sample_rate == SR
    assert model.layers == ["features"] + [f"hidden_states.{i}" for i in range(cfg["num_hidden_layers"] + 1)]
    x = clips()
    out = model(x)
    frames = conv_length(SR, cfg["conv_kernel"], cfg["conv_stride"])  # 16000 -> 3199 -> 1599
    assert frames == 1599
    assert out["features"].shape == (2, frames, cfg["conv_dim"][-1])
    for i in range(cfg["num_hidden_layers"] + 1):
        assert out[f"hidden_states.{i}"].shape == (2, frames, cfg["hidden_size"])
    # independent reference: the transformers module on the normalised waveform (do_normalize=True)
    normalised = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-7)
    with torch.inference_mode():
        ref = model.module(torch.from_numpy(normalised), output_hidden_states=True)
        conv = model.module.feature_extractor(torch.from_numpy(normalised)).transpose(1, 2)
    np.testing.assert_allclose(out[f"hidden_states.{cfg['num_hidden_layers']}"], ref.last_hidden_state.numpy(),
                               atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out["hidden_states.1"], ref.hidden_states[1].numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out["features"], conv.numpy(), atol=1e-4, rtol=1e-4)


def test_ssl_feature_extractor_normalises_each_clip() -> None:
    """wav2vec2's extractor (do_normalize) makes the output invariant to the clip's gain and offset."""
    model = tiny("wav2vec2")
    x = clips(1)
    a = model(x)["hidden_states.2"]
    b = model(10 * x + 0.01)["hidden_states.2"]
    np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-3)


def test_random_init_is_reproducible_and_differs_by_arch() -> None:
    x = clips(1)
    a = tiny("hubert")(x)["hidden_states.2"]
    b = tiny("hubert")(x)["hidden_states.2"]
    np.testing.assert_array_equal(a, b)
    c = load_model("hf:random/hubert?preset=tiny&hidden_size=16&intermediate_size=32")(x)["hidden_states.2"]
    assert c.shape == (1, 1599, 16)


def test_whisper_encoder_layers_and_frames() -> None:
    model = tiny("whisper")  # max_source_positions 100: a 2 s window
    cfg = hf.ARCHITECTURES["whisper"].tiny
    assert model.layers == ["conv1", "conv2"] + [f"hidden_states.{i}" for i in range(cfg["encoder_layers"] + 1)]
    x = clips(2, seconds=1.0)
    out = model(x)
    assert out["conv1"].shape == (2, 100, 32)  # 16000 // 160 mel frames
    assert all(out[k].shape == (2, 50, 32) for k in model.layers[1:])  # conv2 stride 2
    # reference: transformers' own encoder on the padded log-mel, first 50 frames; last = after the final LayerNorm
    features = model.extractor(list(x), sampling_rate=SR, return_tensors="pt")["input_features"]
    with torch.inference_mode():
        ref = model.module(features, output_hidden_states=True)
    np.testing.assert_allclose(out["hidden_states.2"], ref.last_hidden_state[:, :50].numpy(), atol=1e-5)
    np.testing.assert_allclose(out["hidden_states.0"], ref.hidden_states[0][:, :50].numpy(), atol=1e-5)
    # zero padding inside the window changes nothing in the kept frames
    padded = np.concatenate([x, np.zeros_like(x)], axis=1)
    np.testing.assert_allclose(model(padded)["hidden_states.2"][:, :50], out["hidden_states.2"], atol=1e-5)


def test_whisper_long_clips_are_windowed() -> None:
    model = tiny("whisper")
    x3 = clips(1, seconds=3.0)
    out3 = model(x3)
    assert out3["hidden_states.2"].shape == (1, 150, 32) and out3["conv1"].shape == (1, 300, 32)
    np.testing.assert_allclose(out3["hidden_states.2"][:, :100], model(x3[:, :32000])["hidden_states.2"], atol=1e-5)
    np.testing.assert_allclose(out3["hidden_states.2"][:, 100:], model(x3[:, 32000:])["hidden_states.2"], atol=1e-5)


def test_ast_patch_columns() -> None:
    model = tiny("ast")
    cfg = hf.ARCHITECTURES["ast"].tiny
    assert model.layers == [f"hidden_states.{i}" for i in range(cfg["num_hidden_layers"] + 1)]
    x = clips(2, seconds=1.0)
    out = model(x)
    fbank_frames = 1 + (SR - 400) // 160  # 98 kaldi frames
    assert all(v.shape == (2, math.ceil(fbank_frames / 10), 32) for v in out.values())  # 10 columns
    # reference: tokens 2: are a (freq, time) grid; the layer is its frequency mean over the first columns
    features = model.extractor(list(x), sampling_rate=SR, return_tensors="pt")["input_values"]
    with torch.inference_mode():
        ref = model.module(features, output_hidden_states=True).hidden_states[2]
    n_freq, n_time = (32 - 16) // 10 + 1, (300 - 16) // 10 + 1
    grid = ref[:, 2:].reshape(2, n_freq, n_time, 32).mean(1)[:, :10]
    np.testing.assert_allclose(out["hidden_states.2"], grid.numpy(), atol=1e-5)


@pytest.mark.parametrize("fusion", [False, True])
def test_clap_audio_tower(fusion: bool) -> None:
    model = load_model(f"hf:random/clap?preset=tiny&enable_fusion={'true' if fusion else 'false'}")
    assert model.sample_rate == 48000
    assert model.layers == ["hidden_states.0", "hidden_states.1", "hidden_states.2", "audio_embeds"]
    x = clips(2, seconds=0.5, rate=48000)
    out = model(x)
    assert out["hidden_states.0"].shape == (2, 64 * 64, 16)  # spec_size 256 / patch 4 = 64 x 64 tokens
    assert out["hidden_states.2"].shape == (2, 32 * 32, 32)
    assert out["audio_embeds"].shape == (2, 1, 16)
    # deterministic (no random fusion flag / crop) and batch-invariant
    np.testing.assert_array_equal(model(x)["audio_embeds"], out["audio_embeds"])
    np.testing.assert_allclose(model(x[1:])["audio_embeds"][0], out["audio_embeds"][1], atol=1e-5)


def test_local_folder_roundtrip_and_weights_id(tmp_path) -> None:
    model = tiny("wavlm")
    model.module.save_pretrained(tmp_path)
    model.extractor.save_pretrained(tmp_path)
    loaded = load_model(f"hf:{tmp_path}")
    assert loaded.name == f"hf:{tmp_path}" and loaded.layers == model.layers
    assert loaded.weights_id == hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()
    x = clips(2)
    a, b = model(x), loaded(x)
    for layer in model.layers:
        np.testing.assert_allclose(a[layer], b[layer], atol=1e-6)


def test_local_folder_uses_its_preprocessor_config(tmp_path) -> None:
    """A checkpoint whose extractor has do_normalize=False is fed raw waveforms (gain now matters)."""
    from transformers import Wav2Vec2FeatureExtractor

    model = tiny("hubert")
    model.module.save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(tmp_path)
    loaded = load_model(f"hf:{tmp_path}")
    x = clips(1)
    with torch.inference_mode():
        ref = loaded.module(torch.from_numpy(x), output_hidden_states=True).last_hidden_state.numpy()
    np.testing.assert_allclose(loaded(x)["hidden_states.2"], ref, atol=1e-5)
    assert not np.allclose(loaded(x)["hidden_states.2"], loaded(10 * x)["hidden_states.2"], atol=1e-3)


def test_hub_cache_offline(tmp_path, monkeypatch) -> None:
    """An id is found in a hub-cache snapshot without network; a missing id is a one-line error offline."""
    model = tiny("data2vec-audio")
    repo = tmp_path / "hub" / "models--someone--tiny-d2v"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    model.module.save_pretrained(snapshot)
    model.extractor.save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_model("hf:someone/tiny-d2v")
    x = clips(1)
    np.testing.assert_allclose(loaded(x)["hidden_states.2"], model(x)["hidden_states.2"], atol=1e-6)
    with pytest.raises(BrainlikeError, match="not in the local Hugging Face cache.*offline"):
        load_model("hf:someone/not-there")


@pytest.mark.parametrize("spec, message", [
    ("hf:random/resnet", "unknown hf architecture 'resnet'"),
    ("hf:random/wav2vec2?no_such_field=3", "unknown Wav2Vec2Config field"),
    ("hf:random/wav2vec2?preset=huge", "unknown hf preset"),
    ("hf:./no/such/folder", "does not exist"),
])
def test_bad_specs_fail_with_one_line(spec: str, message: str) -> None:
    with pytest.raises(BrainlikeError, match=message):
        load_model(spec)


def test_folder_without_config(tmp_path) -> None:
    with pytest.raises(BrainlikeError, match="no config.json"):
        load_model(f"hf:{tmp_path}")


def test_parse_random_argument() -> None:
    assert hf.parse_random_argument("whisper?encoder_layers=3&conv_dim=[1,2]&activation_function=relu") == (
        "whisper", {"encoder_layers": 3, "conv_dim": [1, 2], "activation_function": "relu"})
    arch, cfg = hf.parse_random_argument("ast?preset=tiny&num_hidden_layers=1")
    assert arch == "ast" and cfg["num_hidden_layers"] == 1 and cfg["hidden_size"] == 32


def test_ctranslate2_state_dict_maps_fused_qkv() -> None:
    """A synthetic CTranslate2 variable set: the fused QKV rows land in q/k/v, shapes give the config."""
    d, layers, ffn = 8, 2, 32
    rng = np.random.default_rng(1)
    variables = {"encoder/conv1/weight": rng.standard_normal((d, 80, 3)), "encoder/conv1/bias": np.zeros(d),
                 "encoder/conv2/weight": rng.standard_normal((d, d, 3)), "encoder/conv2/bias": np.zeros(d),
                 "encoder/position_encodings/encodings": rng.standard_normal((1500, d)),
                 "encoder/layer_norm/gamma": np.ones(d), "encoder/layer_norm/beta": np.zeros(d),
                 "encoder/num_heads": np.int16(2)}
    for i in range(layers):
        p = f"encoder/layer_{i}"
        variables |= {f"{p}/self_attention/linear_0/weight": np.arange(3 * d * d, dtype=np.float16).reshape(3 * d, d),
                      f"{p}/self_attention/linear_0/bias": np.arange(3 * d, dtype=np.float16),
                      f"{p}/self_attention/linear_1/weight": rng.standard_normal((d, d)),
                      f"{p}/self_attention/linear_1/bias": np.zeros(d),
                      f"{p}/self_attention/layer_norm/gamma": np.ones(d),
                      f"{p}/self_attention/layer_norm/beta": np.zeros(d),
                      f"{p}/ffn/layer_norm/gamma": np.ones(d), f"{p}/ffn/layer_norm/beta": np.zeros(d),
                      f"{p}/ffn/linear_0/weight": rng.standard_normal((ffn, d)), f"{p}/ffn/linear_0/bias": np.zeros(ffn),
                      f"{p}/ffn/linear_1/weight": rng.standard_normal((d, ffn)), f"{p}/ffn/linear_1/bias": np.zeros(d)}
    state, sizes = hf.ctranslate2_encoder_state_dict(variables)
    assert sizes == {"d_model": d, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": ffn,
                     "num_mel_bins": 80, "max_source_positions": 1500}
    k = state["layers.1.self_attn.k_proj.weight"].numpy()
    assert k[0, 0] == d * d and k.shape == (d, d)  # rows d..2d-1 of the fused matrix
    assert state["layers.0.self_attn.v_proj.bias"].numpy()[0] == 2 * d
    assert "layers.0.self_attn.k_proj.bias" not in state
    model = hf.whisper_encoder_from_ctranslate2(variables, "abc")
    assert model.layers[-1] == "hidden_states.2" and model.weights_id == "abc"
    assert model(clips(1, seconds=0.5))["hidden_states.2"].shape == (1, 25, d)


@pytest.mark.slow
@pytest.mark.parametrize("arch", SSL)
def test_default_base_configs(arch: str) -> None:
    """hf:random/<arch> is the base-size model: 12 blocks of 768, 20 ms frames (49 for 1 s), 512-d conv features."""
    model = load_model(f"hf:random/{arch}")
    assert model.layers == ["features"] + [f"hidden_states.{i}" for i in range(13)]
    out = model(clips(1))
    assert out["features"].shape == (1, 49, 512) and out["hidden_states.12"].shape == (1, 49, 768)


@pytest.mark.slow
def test_default_whisper_ast_clap_configs() -> None:
    whisper = load_model("hf:random/whisper")  # transformers' default WhisperConfig, 30 s window
    assert whisper(clips(1))["hidden_states.0"].shape[:2] == (1, 50)
    ast = load_model("hf:random/ast")  # AST base: 12 blocks of 768, 128 mel bins, 1024 frames
    assert len(ast.layers) == 13 and ast(clips(1))["hidden_states.12"].shape == (1, 10, 768)
    clap = load_model("hf:random/clap")  # HTSAT: 4 Swin stages
    out = clap(clips(1, rate=48000))
    assert len(clap.layers) == 6 and out["audio_embeds"].shape[:2] == (1, 1)
