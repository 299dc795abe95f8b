"""Whisper: the CTranslate2 reader, the encoder maths against a numpy reference, front end and tokenizer pieces,
and the random twins. No downloads: the CTranslate2 files are written here by an independent writer."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from scipy.special import erf

from brainlike.errors import ModelError
from brainlike.models.registry import load_model
from brainlike.models.zoo import whisper

DTYPE_IDS = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
             np.dtype(np.float16): 4}


def _string(text: str) -> bytes:
    raw = text.encode() + b"\x00"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str], *, version: int = 6,
              bf16: set[str] = frozenset()) -> None:
    """CTranslate2 binary v6 writer (format of zoo-architectures.md section 1.2)."""
    out = [struct.pack("<I", version), _string("WhisperSpec"), struct.pack("<I", 3),
           struct.pack("<I", len(variables))]
    for name in sorted(variables):
        array = np.asarray(variables[name])
        out += [_string(name), struct.pack("<B", array.ndim), *(struct.pack("<I", d) for d in array.shape)]
        if name in bf16:
            data = (array.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
            out.append(struct.pack("<B", 5))
        else:
            data = array.astype(array.dtype.newbyteorder("<")).tobytes()
            out.append(struct.pack("<B", DTYPE_IDS[array.dtype]))
        out += [struct.pack("<I", len(data)), data]
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out += [_string(alias), _string(target)]
    path.write_bytes(b"".join(out))


def tiny_whisper(rng: np.random.Generator, d: int = 8, heads: int = 2, n_mels: int = 4, ctx: int = 8,
                 vocab: int = 11, text_ctx: int = 6) -> dict[str, np.ndarray]:
    """Random variables of a 1+1 layer Whisper in CTranslate2 naming (fp16 tensors, as in the real files)."""
    def t(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float16)

    v = {"encoder/conv1/weight": t(d, n_mels, 3), "encoder/conv1/bias": t(d),
         "encoder/conv2/weight": t(d, d, 3), "encoder/conv2/bias": t(d),
         "encoder/position_encodings/encodings": t(ctx, d), "encoder/num_heads": np.int16(heads),
         "encoder/layer_norm/gamma": 1 + t(d), "encoder/layer_norm/beta": t(d),
         "decoder/embeddings/weight": t(vocab, d), "decoder/position_encodings/encodings": t(text_ctx, d),
         "decoder/layer_norm/gamma": 1 + t(d), "decoder/layer_norm/beta": t(d),
         "decoder/num_heads": np.int16(heads), "decoder/activation": np.int8(3), "decoder/pre_norm": np.int8(1)}
    for part in ("encoder", "decoder"):
        p = f"{part}/layer_0"
        qkv_bias = t(3 * d)
        qkv_bias[d: 2 * d] = 0  # Whisper keys have no bias
        v |= {f"{p}/self_attention/layer_norm/gamma": 1 + t(d), f"{p}/self_attention/layer_norm/beta": t(d),
              f"{p}/self_attention/linear_0/weight": t(3 * d, d), f"{p}/self_attention/linear_0/bias": qkv_bias,
              f"{p}/self_attention/linear_1/weight": t(d, d), f"{p}/self_attention/linear_1/bias": t(d),
              f"{p}/ffn/layer_norm/gamma": 1 + t(d), f"{p}/ffn/layer_norm/beta": t(d),
              f"{p}/ffn/linear_0/weight": t(4 * d, d), f"{p}/ffn/linear_0/bias": t(4 * d),
              f"{p}/ffn/linear_1/weight": t(d, 4 * d), f"{p}/ffn/linear_1/bias": t(d)}
    p = "decoder/layer_0/attention"
    kv_bias = t(2 * d)
    kv_bias[:d] = 0
    v |= {f"{p}/layer_norm/gamma": 1 + t(d), f"{p}/layer_norm/beta": t(d), f"{p}/linear_0/weight": t(d, d),
          f"{p}/linear_0/bias": t(d), f"{p}/linear_1/weight": t(2 * d, d), f"{p}/linear_1/bias": kv_bias,
          f"{p}/linear_2/weight": t(d, d), f"{p}/linear_2/bias": t(d)}
    return v


# ----------------------------------------------------------------------------- numpy reference of the maths


def _f(v, name):
    return np.asarray(v[name], dtype=np.float64)


def _conv1d(x, w, b, stride):  # x (Cin, T), w (Cout, Cin, 3), padding 1
    xp = np.pad(x, ((0, 0), (1, 1)))
    n_out = (x.shape[1] + 2 - 3) // stride + 1
    return np.stack([sum(w[:, :, k] @ xp[:, t * stride + k] for k in range(3)) + b for t in range(n_out)], axis=1)


def _gelu(x):
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def _ln(x, g, b):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * g + b


def _mha(x, wqkv, bqkv, wo, bo, heads):
    d = x.shape[1]
    qkv = x @ wqkv.T + bqkv
    q, k, v = qkv[:, :d], qkv[:, d: 2 * d], qkv[:, 2 * d:]
    outs = []
    for h in np.split(np.arange(d), heads):
        s = q[:, h] @ k[:, h].T / np.sqrt(len(h))
        p = np.exp(s - s.max(1, keepdims=True))
        outs.append((p / p.sum(1, keepdims=True)) @ v[:, h])
    return np.concatenate(outs, axis=1) @ wo.T + bo


def reference_encoder(v, mel, heads):
    x = _gelu(_conv1d(mel, _f(v, "encoder/conv1/weight"), _f(v, "encoder/conv1/bias"), 1))
    x = _gelu(_conv1d(x, _f(v, "encoder/conv2/weight"), _f(v, "encoder/conv2/bias"), 2)).T
    x = x + _f(v, "encoder/position_encodings/encodings")[: len(x)]
    p = "encoder/layer_0"
    sa = p + "/self_attention"
    x = x + _mha(_ln(x, _f(v, sa + "/layer_norm/gamma"), _f(v, sa + "/layer_norm/beta")),
                 _f(v, sa + "/linear_0/weight"), _f(v, sa + "/linear_0/bias"),
                 _f(v, sa + "/linear_1/weight"), _f(v, sa + "/linear_1/bias"), heads)
    h = _ln(x, _f(v, p + "/ffn/layer_norm/gamma"), _f(v, p + "/ffn/layer_norm/beta"))
    h = _gelu(h @ _f(v, p + "/ffn/linear_0/weight").T + _f(v, p + "/ffn/linear_0/bias"))
    x = x + h @ _f(v, p + "/ffn/linear_1/weight").T + _f(v, p + "/ffn/linear_1/bias")
    return x, _ln(x, _f(v, "encoder/layer_norm/gamma"), _f(v, "encoder/layer_norm/beta"))


# ----------------------------------------------------------------------------- tests


def test_ct2_reader_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    variables = {"a/w": rng.standard_normal((3, 4)).astype(np.float16),
                 "a/f": rng.standard_normal(5).astype(np.float32),
                 "b/i8": np.arange(-3, 3, dtype=np.int8).reshape(2, 3), "b/n": np.int16(-7), "c/i": np.int32(123456),
                 "d/bf": np.array([1.5, -2.25, 3.0], np.float32)}
    write_ct2(tmp_path / "m.bin", variables, {"alias/x": "a/w"}, bf16={"d/bf"})
    read, aliases, spec = whisper.read_ct2(tmp_path / "m.bin")
    assert spec == "WhisperSpec" and aliases == {"alias/x": "a/w"}
    assert set(read) == set(variables)
    for name, value in variables.items():
        assert read[name].shape == np.shape(value)
        np.testing.assert_array_equal(read[name], value)
    assert read["a/w"].dtype == np.float16 and read["b/i8"].dtype == np.int8 and int(read["b/n"]) == -7


def test_ct2_reader_rejects_bad_files(tmp_path):
    write_ct2(tmp_path / "v5.bin", {"x": np.zeros(2, np.float32)}, {}, version=5)
    with pytest.raises(ModelError, match="binary version 5"):
        whisper.read_ct2(tmp_path / "v5.bin")
    write_ct2(tmp_path / "ok.bin", {"x": np.zeros(64, np.float32)}, {})
    (tmp_path / "cut.bin").write_bytes((tmp_path / "ok.bin").read_bytes()[:100])
    with pytest.raises(ModelError, match="truncated"):
        whisper.read_ct2(tmp_path / "cut.bin")


def test_encoder_matches_numpy_reference(tmp_path):
    import torch

    rng = np.random.default_rng(0)
    variables = tiny_whisper(rng)
    write_ct2(tmp_path / "model.bin", variables, {"decoder/projection/weight": "decoder/embeddings/weight"})
    encoder, decoder, dims = whisper.load_whisper(tmp_path / "model.bin", with_decoder=True)
    assert (dims.d, dims.heads, dims.encoder_layers, dims.decoder_layers, dims.vocab) == (8, 2, 1, 1, 11)
    mel = rng.standard_normal((4, 16))
    with torch.no_grad():
        out = encoder(torch.from_numpy(mel.astype(np.float32))[None])
    block, post = reference_encoder(variables, mel, heads=2)
    np.testing.assert_allclose(out["blocks.0"][0].numpy(), block, atol=2e-5)
    np.testing.assert_allclose(out["ln_post"][0].numpy(), post, atol=2e-5)
    assert out["conv1"].shape == (1, 16, 8) and out["conv2"].shape == (1, 8, 8)
    logits = decoder(torch.tensor([[1, 2, 3]]), out["ln_post"])
    assert logits.shape == (1, 3, 11)
    # causal: the first position's logits do not depend on later tokens
    other = decoder(torch.tensor([[1, 5, 7]]), out["ln_post"])
    torch.testing.assert_close(logits[:, 0], other[:, 0])


def test_mel_filters_are_slaney_area_normalised():
    filters = whisper.mel_filters(16000, 400, 80)
    assert filters.shape == (80, 201) and (filters >= 0).all()
    freqs = np.linspace(0, 8000, 201)
    peaks = freqs[filters.argmax(1)]
    assert np.all(np.diff(peaks) >= 0) and peaks[-1] > 7000
    # Slaney normalisation: each triangle has unit area in Hz (checked on the wide upper filters)
    areas = filters.sum(1) * (freqs[1] - freqs[0])
    np.testing.assert_allclose(areas[41:], 1.0, rtol=0.05)
    # below 1 kHz the Slaney scale is linear: centre spacing constant (200/3 Hz per mel)
    centres = np.array([filters[i].argmax() for i in range(5, 12)])
    assert np.ptp(np.diff(centres)) <= 1


def test_log_mel_known_values():
    import torch

    t = np.arange(whisper.CHUNK_SAMPLES) / 16000
    audio = np.zeros(whisper.CHUNK_SAMPLES, np.float32)
    audio[:32000] = 0.5 * np.sin(2 * np.pi * 1000 * t[:32000])
    filters = torch.from_numpy(whisper.mel_filters())
    mel = whisper.log_mel(torch.from_numpy(audio)[None], filters)[0].numpy()
    assert mel.shape == (80, 3000)
    peak_band = int(mel[:, 50:150].mean(1).argmax())
    centre = np.linspace(0, 8000, 201)[whisper.mel_filters()[peak_band].argmax()]
    assert abs(centre - 1000) < 60
    top = mel.max()
    np.testing.assert_allclose(mel[:, 500:], top - 2.0, atol=1e-6)  # (max - 8 + 4) / 4 == max/4-scaled floor


def test_sinusoids_formula():
    pos = whisper.sinusoids(1500, 512)
    inc = np.log(10000) / 255
    assert pos.shape == (1500, 512)
    np.testing.assert_allclose(pos[7, 3], np.sin(7 * np.exp(-inc * 3)), atol=1e-6)
    np.testing.assert_allclose(pos[7, 256 + 3], np.cos(7 * np.exp(-inc * 3)), atol=1e-6)


def test_byte_level_bpe_decoding():
    table = whisper.byte_decoder()
    assert len(table) == 256 and sorted(table.values()) == list(range(256))
    assert table["Ġ"] == 32 and table["Ċ"] == 10 and table["a"] == 97
    vocab = {0: "ĠThe", 1: "Ġquick", 2: "Ġbrown", 3: ".", 4: "Ġfa", 5: "Ã§", 6: "ade"}
    assert whisper.decode_tokens([0, 1, 2, 3], vocab) == " The quick brown."
    assert whisper.decode_tokens([4, 5, 6], vocab) == " façade"


def test_random_twin_layers_shapes_and_determinism():
    model = load_model("whisper-tiny.en@random")
    assert model.weights_id == "random:0" and model.sample_rate == 16000
    assert model.layers == ["log_mel", "conv1", "conv2", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "ln_post"]
    rng = np.random.default_rng(0)
    clips = (0.1 * rng.standard_normal((2, 16000))).astype(np.float32)
    out = model(clips)
    assert out["log_mel"].shape == (2, 100, 80) and out["conv1"].shape == (2, 100, 384)
    assert all(out[k].shape == (2, 50, 384) for k in model.layers[2:])
    again = load_model("whisper-tiny.en@random")(clips[1:])
    for layer in model.layers:  # same seed -> same weights; batch of 2 == one clip at a time
        np.testing.assert_allclose(again[layer][0], out[layer][1], atol=1e-4)
    assert np.isfinite(out["ln_post"]).all() and out["ln_post"].std() > 0.1


def test_long_clips_are_windowed_in_30s_pieces():
    model = load_model("whisper-tiny.en@random")
    clip = (0.1 * np.random.default_rng(1).standard_normal(whisper.CHUNK_SAMPLES + 8000)).astype(np.float32)
    out = model(clip[None])
    assert out["conv1"].shape[1] == 3000 + 50 and out["ln_post"].shape[1] == 1500 + 25
    with pytest.raises(ModelError, match="shorter"):
        model(np.zeros((1, 100), np.float32))


def test_twin_architectures_have_the_published_sizes():
    """Encoder parameter counts of zoo-architectures.md: tiny.en 7.6 M, base 19.8 M (positions excluded)."""
    for name, expected, blocks in (("whisper-tiny.en@random", 7.6e6, 4), ("whisper-base@random", 19.8e6, 6)):
        model = load_model(name)
        assert model.layers[3:-1] == [f"blocks.{i}" for i in range(blocks)]
        n_params = sum(p.numel() for p in model.module.parameters())
        assert abs(n_params - expected) / expected < 0.01, (name, n_params)
