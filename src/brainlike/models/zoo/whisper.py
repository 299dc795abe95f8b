"""Whisper encoders (base, tiny.en) read from CTranslate2 ``model.bin`` files, with a greedy decoder for checks.

The weights are OpenAI's Whisper checkpoints as converted to CTranslate2 (fp16) and shipped inside the pinned
distributions of :mod:`brainlike.models.zoo.store`. This module parses the CTranslate2 binary format itself
(:func:`read_ct2`), builds a PyTorch encoder and decoder with the same maths (pre-LayerNorm transformer blocks,
GELU, sinusoidal encoder positions) and loads the tensors into them.

Layers: ``log_mel`` (the 80-band log-mel input), ``conv1`` and ``conv2`` (after GELU), ``blocks.0`` ...
``blocks.{L-1}`` and ``ln_post``. As in Whisper, every clip is zero-padded to 30 s before the log-mel transform
(clips longer than 30 s are cut into 30 s windows) and only the frames that carry audio are kept (10 ms per frame
for ``log_mel``/``conv1``, 20 ms from ``conv2`` on).
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.errors import ModelError
from brainlike.models.base import RANDOM_SEED, FrameGrid, TorchAudioModel, seed_everything_for_init
from brainlike.models.registry import ModelEntry, register_model
from brainlike.models.zoo import store

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
CHUNK_SAMPLES = 30 * SAMPLE_RATE  # 480,000: Whisper's fixed input length
N_FRAMES = CHUNK_SAMPLES // HOP  # 3000 mel frames per window
CT2_BINARY_VERSION = 6
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BF16 = 5


@dataclass(frozen=True)
class WhisperDims:
    """Sizes of a Whisper model (``d`` width, ``heads`` attention heads, layer counts, vocabulary)."""

    n_mels: int
    d: int
    heads: int
    encoder_layers: int
    decoder_layers: int = 0
    vocab: int = 0
    n_audio_ctx: int = 1500
    n_text_ctx: int = 448


DIMS = {
    "whisper-tiny.en": WhisperDims(80, 384, 6, 4, 4, 51864),
    "whisper-base": WhisperDims(80, 512, 8, 6, 6, 51865),
}


# ------------------------------------------------------------------------------------------- CTranslate2 file


def read_ct2(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    """Parse a CTranslate2 binary model file (binary version 6).

    Parameters
    ----------
    path : path
        The ``model.bin`` file.

    Returns
    -------
    variables : dict
        ``{name: ndarray}`` in the stored dtype (bfloat16 is widened to float32); rank-0 entries are scalars.
    aliases : dict
        ``{alias name: target name}``.
    spec : str
        The model spec name (``"WhisperSpec"``).

    Raises
    ------
    ModelError
        Wrong binary version, unknown dtype or a truncated file.
    """
    data = Path(path).read_bytes()
    reader = _Reader(data, str(path))
    version = reader.u32()
    if version != CT2_BINARY_VERSION:
        raise ModelError(f"{path}: CTranslate2 binary version {version} is not supported (expected 6)")
    spec = reader.string()
    reader.u32()  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.u32()):
        name = reader.string()
        shape = tuple(reader.u32() for _ in range(reader.u8()))
        dtype_id = reader.u8()
        nbytes = reader.u32()
        variables[name] = _decode_array(reader.take(nbytes), dtype_id, shape, name, path)
    aliases = {}
    if reader.remaining() >= 4:
        for _ in range(reader.u32()):
            alias = reader.string()
            aliases[alias] = reader.string()
    return variables, aliases, spec


class _Reader:
    def __init__(self, data: bytes, label: str) -> None:
        self.data, self.pos, self.label = memoryview(data), 0, label

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ModelError(f"{self.label}: truncated CTranslate2 file (needed {n} bytes at offset {self.pos})")
        chunk = self.data[self.pos: self.pos + n]
        self.pos += n
        return chunk

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.u16()))
        return raw.rstrip(b"\x00").decode("utf-8")


def _decode_array(raw: memoryview, dtype_id: int, shape: tuple, name: str, path: Any) -> np.ndarray:
    if dtype_id == _BF16:
        halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return halves.view(np.float32).reshape(shape)
    if dtype_id not in _CT2_DTYPES:
        raise ModelError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
    dtype = np.dtype(_CT2_DTYPES[dtype_id]).newbyteorder("<")
    count = int(np.prod(shape)) if shape else 1
    if count * dtype.itemsize != len(raw):
        raise ModelError(f"{path}: variable {name!r} holds {len(raw)} bytes, expected {count * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def dims_from_variables(variables: Mapping[str, np.ndarray]) -> WhisperDims:
    """Infer :class:`WhisperDims` from CTranslate2 Whisper variables."""

    def n_layers(prefix: str) -> int:
        pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
        ids = {int(m.group(1)) for m in map(pattern.match, variables) if m}
        return max(ids) + 1 if ids else 0

    d, n_mels, _ = variables["encoder/conv1/weight"].shape
    return WhisperDims(
        n_mels=int(n_mels), d=int(d), heads=int(variables["encoder/num_heads"]),
        encoder_layers=n_layers("encoder"), decoder_layers=n_layers("decoder"),
        vocab=int(variables["decoder/embeddings/weight"].shape[0]) if "decoder/embeddings/weight" in variables else 0,
        n_audio_ctx=int(variables["encoder/position_encodings/encodings"].shape[0]),
        n_text_ctx=int(variables["decoder/position_encodings/encodings"].shape[0])
        if "decoder/position_encodings/encodings" in variables else 448,
    )


# ------------------------------------------------------------------------------------------- front end


def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = 80, fmin: float = 0.0,
                fmax: float | None = None) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular mel filters from ``fmin`` to ``fmax`` (default: Nyquist), shape
    (n_mels, 1 + n_fft//2).

    This is the filter bank of librosa's ``filters.mel`` (defaults: 0 Hz to Nyquist, which Whisper uses).
    """
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)  # = linspace(0, sr / 2) for even n_fft
    mel_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(sample_rate / 2 if fmax is None else fmax), n_mels + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio: Any, filters: Any) -> Any:
    """Whisper log-mel of 30 s windows: tensor (batch, 480000) -> (batch, n_mels, 3000)."""
    import torch

    window = torch.hann_window(N_FFT, periodic=True, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(audio, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec[..., :-1].abs() ** 2
    mel = torch.log10(torch.clamp(filters @ power, min=1e-10))
    floor = mel.amax(dim=(-2, -1), keepdim=True) - 8.0
    return (torch.maximum(mel, floor) + 4.0) / 4.0


def sinusoids(length: int, channels: int) -> np.ndarray:
    """Whisper's encoder positions: sin of the first half of channels, cos of the second, (length, channels)."""
    increment = math.log(10000) / (channels // 2 - 1)
    inv = np.exp(-increment * np.arange(channels // 2))
    scaled = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1).astype(np.float32)


# ------------------------------------------------------------------------------------------- torch modules


def _build_modules(dims: WhisperDims, with_decoder: bool) -> tuple[Any, Any]:
    """Return (encoder, decoder or None) torch modules for ``dims`` (torch imported lazily)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Attention(nn.Module):
        def __init__(self, d: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.query, self.key = nn.Linear(d, d), nn.Linear(d, d, bias=False)
            self.value, self.out = nn.Linear(d, d), nn.Linear(d, d)

        def forward(self, x: torch.Tensor, xa: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
            src = x if xa is None else xa
            q, k, v = (self._split(t) for t in (self.query(x), self.key(src), self.value(src)))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            return self.out(y.transpose(1, 2).flatten(2))

        def _split(self, t: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, heads, T, d/heads)
            return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    class Block(nn.Module):
        def __init__(self, d: int, heads: int, cross: bool) -> None:
            super().__init__()
            self.attn_ln, self.attn = nn.LayerNorm(d), Attention(d, heads)
            self.cross_attn_ln = nn.LayerNorm(d) if cross else None
            self.cross_attn = Attention(d, heads) if cross else None
            self.mlp_ln = nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x: torch.Tensor, xa: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
            x = x + self.attn(self.attn_ln(x), causal=causal)
            if self.cross_attn is not None:
                x = x + self.cross_attn(self.cross_attn_ln(x), xa)
            return x + self.mlp(self.mlp_ln(x))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv1d(dims.n_mels, dims.d, 3, padding=1)
            self.conv2 = nn.Conv1d(dims.d, dims.d, 3, stride=2, padding=1)
            self.register_buffer("positional_embedding", torch.from_numpy(sinusoids(dims.n_audio_ctx, dims.d)))
            self.blocks = nn.ModuleList(Block(dims.d, dims.heads, False) for _ in range(dims.encoder_layers))
            self.ln_post = nn.LayerNorm(dims.d)

        def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
            """(B, n_mels, 3000) -> {stage: (B, time, features)}."""
            out = {"log_mel": mel.transpose(1, 2)}
            x = F.gelu(self.conv1(mel))
            out["conv1"] = x.transpose(1, 2)
            x = F.gelu(self.conv2(x))
            out["conv2"] = x.transpose(1, 2)
            x = out["conv2"] + self.positional_embedding[: x.shape[-1]]
            for i, block in enumerate(self.blocks):
                x = block(x)
                out[f"blocks.{i}"] = x
            out["ln_post"] = self.ln_post(x)
            return out

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token_embedding = nn.Embedding(dims.vocab, dims.d)
            self.positional_embedding = nn.Parameter(torch.zeros(dims.n_text_ctx, dims.d))
            self.blocks = nn.ModuleList(Block(dims.d, dims.heads, True) for _ in range(dims.decoder_layers))
            self.ln = nn.LayerNorm(dims.d)

        def forward(self, tokens: torch.Tensor, xa: torch.Tensor) -> torch.Tensor:
            """tokens (B, n) and encoder output (B, T, d) -> logits (B, n, vocab)."""
            x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[-1]]
            for block in self.blocks:
                x = block(x, xa, causal=True)
            return self.ln(x) @ self.token_embedding.weight.T

    return Encoder(), (Decoder() if with_decoder else None)


def _state_dict(variables: Mapping[str, np.ndarray], aliases: Mapping[str, str], part: str,
                dims: WhisperDims) -> dict[str, Any]:
    """Map CTranslate2 variables of ``part`` ("encoder"/"decoder") to the torch module's state-dict keys."""
    import torch

    def t(name: str) -> torch.Tensor:
        name = aliases.get(name, name)
        return torch.from_numpy(np.asarray(variables[name], dtype=np.float32).copy())

    def linear(dst: str, src: str, rows: slice | None = None, bias: bool = True) -> dict[str, torch.Tensor]:
        w, b = t(src + "/weight"), t(src + "/bias")
        if rows is not None:
            w, b = w[rows], b[rows]
        return {dst + ".weight": w, **({dst + ".bias": b} if bias else {})}

    def ln(dst: str, src: str) -> dict[str, torch.Tensor]:
        return {dst + ".weight": t(src + "/gamma"), dst + ".bias": t(src + "/beta")}

    d, sd = dims.d, {}
    thirds = [slice(0, d), slice(d, 2 * d), slice(2 * d, 3 * d)]
    n_layers = dims.encoder_layers if part == "encoder" else dims.decoder_layers
    for i in range(n_layers):
        src, dst = f"{part}/layer_{i}", f"blocks.{i}"
        sa = src + "/self_attention"
        sd |= ln(dst + ".attn_ln", sa + "/layer_norm")
        for name, rows in zip(("query", "key", "value"), thirds):
            sd |= linear(f"{dst}.attn.{name}", sa + "/linear_0", rows, bias=name != "key")
        sd |= linear(dst + ".attn.out", sa + "/linear_1")
        if part == "decoder":
            ca = src + "/attention"
            sd |= ln(dst + ".cross_attn_ln", ca + "/layer_norm")
            sd |= linear(dst + ".cross_attn.query", ca + "/linear_0")
            sd |= linear(dst + ".cross_attn.key", ca + "/linear_1", thirds[0], bias=False)
            sd |= linear(dst + ".cross_attn.value", ca + "/linear_1", thirds[1])
            sd |= linear(dst + ".cross_attn.out", ca + "/linear_2")
        sd |= ln(dst + ".mlp_ln", src + "/ffn/layer_norm")
        sd |= linear(dst + ".mlp.0", src + "/ffn/linear_0")
        sd |= linear(dst + ".mlp.2", src + "/ffn/linear_1")
    if part == "encoder":
        sd |= linear("conv1", "encoder/conv1") | linear("conv2", "encoder/conv2")
        sd["positional_embedding"] = t("encoder/position_encodings/encodings")
        sd |= ln("ln_post", "encoder/layer_norm")
    else:
        sd["token_embedding.weight"] = t("decoder/embeddings/weight")
        sd["positional_embedding"] = t("decoder/position_encodings/encodings")
        sd |= ln("ln", "decoder/layer_norm")
    return sd


def load_whisper(path: str | Path, *, with_decoder: bool = False) -> tuple[Any, Any, WhisperDims]:
    """Build the torch encoder (and decoder) from a CTranslate2 Whisper ``model.bin``.

    Returns
    -------
    encoder, decoder, dims
        ``decoder`` is None unless ``with_decoder``.
    """
    variables, aliases, spec = read_ct2(path)
    if spec != "WhisperSpec":
        raise ModelError(f"{path}: CTranslate2 spec {spec!r} is not a Whisper model")
    if any(k.endswith("weight_scale") for k in variables):
        raise ModelError(f"{path}: int8-quantised CTranslate2 models are not supported")
    dims = dims_from_variables(variables)
    if variables.get("decoder/activation", 3) != 3 or variables.get("decoder/pre_norm", 1) != 1:
        raise ModelError(f"{path}: unexpected activation / normalisation settings for Whisper")
    encoder, decoder = _build_modules(dims, with_decoder)
    encoder.load_state_dict(_state_dict(variables, aliases, "encoder", dims), strict=True)
    if decoder is not None:
        decoder.load_state_dict(_state_dict(variables, aliases, "decoder", dims), strict=True)
        decoder.eval()
    return encoder.eval(), decoder, dims


# ------------------------------------------------------------------------------------------- adapter


class WhisperEncoderModel(TorchAudioModel):
    """Whisper encoder as a brainlike model (pretrained from the zoo store, or random-init twin).

    Parameters
    ----------
    zoo_name : str
        ``"whisper-base"`` or ``"whisper-tiny.en"``.
    random : bool
        Random-init twin (same architecture, torch default init with seed 0) instead of the pretrained weights.
    """

    adapter_version = 1
    batch_size = 4
    causal = False  # self-attention over the 30 s window

    def __init__(self, zoo_name: str, random: bool = False) -> None:
        import torch

        self.name = zoo_name + ("@random" if random else "")
        self.sample_rate = SAMPLE_RATE
        if random:
            seed_everything_for_init(RANDOM_SEED)
            dims = DIMS[zoo_name]
            self.module, _ = _build_modules(dims, with_decoder=False)
            self.weights_id = f"random:{RANDOM_SEED}"
        else:
            self.module, _, dims = load_whisper(store.weights_path(zoo_name))
            self.weights_id = store.weights_sha256(zoo_name)
        self.module.eval()
        self.dims = dims
        self.layers = ["log_mel", "conv1", "conv2"] + [f"blocks.{i}" for i in range(dims.encoder_layers)] + ["ln_post"]
        self.preprocessing = {"sample_rate": SAMPLE_RATE, "window_s": 30, "n_fft": N_FFT, "hop": HOP,
                              "n_mels": dims.n_mels, "keep": "frames carrying audio"}
        self._filters = torch.from_numpy(mel_filters(SAMPLE_RATE, N_FFT, dims.n_mels))

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        import torch

        n = waveforms.shape[1]
        if n < HOP:
            raise ModelError(f"{self.name}: clip of {n} samples is shorter than one 10 ms frame")
        pieces: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.layers}
        for start in range(0, n, CHUNK_SAMPLES):
            chunk = waveforms[:, start: start + CHUNK_SAMPLES]
            n_mel = max(1, chunk.shape[1] // HOP)
            padded = torch.nn.functional.pad(chunk, (0, CHUNK_SAMPLES - chunk.shape[1]))
            out = self.module(log_mel(padded, self._filters.to(padded.device)))
            for layer in self.layers:
                keep = n_mel if layer in ("log_mel", "conv1") else (n_mel + 1) // 2
                pieces[layer].append(out[layer][:, :keep])
        return {layer: torch.cat(parts, dim=1) for layer, parts in pieces.items()}

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """``log_mel``, ``conv1``: centred STFT (and a kernel-3 padding-1 conv), frame k at sample 160 k; from
        ``conv2`` on (kernel 3, stride 2, padding 1): frame j centred on mel frame 2 j, sample 320 j (20 ms). Full
        30 s windows hold 3000 / 1500 frames, so the grid runs on across windows."""
        grid = FrameGrid(0.0, HOP)
        return (grid if layer in ("log_mel", "conv1") else grid.conv(3, 2, 1)).times(n_frames, self.sample_rate)


# ------------------------------------------------------------------------------------------- decoding


TOKENS = {
    # name: (end of text, greedy prompt)
    "whisper-tiny.en": (50256, [50257, 50362]),
    "whisper-base": (50257, [50258, 50259, 50359, 50363]),
}


def byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-printable-character table (byte-level BPE)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def load_vocabulary(tokenizer_json: str | Path) -> dict[int, str]:
    """Token id -> BPE string from a HuggingFace ``tokenizer.json`` (model vocabulary plus added tokens)."""
    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    vocab = {int(i): tok for tok, i in spec["model"]["vocab"].items()}
    vocab.update({int(t["id"]): t["content"] for t in spec.get("added_tokens", [])})
    return vocab


def decode_tokens(ids: list[int], vocab: Mapping[int, str]) -> str:
    """Turn byte-level BPE token ids into text (ids missing from the vocabulary are skipped)."""
    table = byte_decoder()
    data = bytes(table[ch] for i in ids if i in vocab for ch in vocab[i] if ch in table)
    return data.decode("utf-8", errors="replace")


def greedy_decode(decoder: Any, encoded: Any, prompt: list[int], eot: int, max_tokens: int = 100) -> list[int]:
    """Greedy decoding: append the arg-max token until end-of-text; returns the generated ids (prompt excluded)."""
    import torch

    tokens = torch.tensor([prompt], dtype=torch.long)
    with torch.inference_mode():
        for _ in range(max_tokens):
            next_id = int(decoder(tokens, encoded)[0, -1].argmax())
            if next_id == eot or tokens.shape[1] >= decoder.positional_embedding.shape[0]:
                break
            tokens = torch.cat([tokens, torch.tensor([[next_id]])], dim=1)
    return tokens[0, len(prompt):].tolist()


def transcribe(zoo_name: str, waveform: np.ndarray) -> str:
    """Transcribe a clip (16 kHz mono, <= 30 s) with the installed Whisper weights, greedily (for checks)."""
    import torch

    paths = store.files(zoo_name)
    encoder, decoder, dims = load_whisper(paths["model.bin"], with_decoder=True)
    audio = torch.from_numpy(np.asarray(waveform, dtype=np.float32)[None, :CHUNK_SAMPLES])
    audio = torch.nn.functional.pad(audio, (0, CHUNK_SAMPLES - audio.shape[1]))
    with torch.inference_mode():
        encoded = encoder(log_mel(audio, torch.from_numpy(mel_filters(n_mels=dims.n_mels))))["ln_post"]
    eot, prompt = TOKENS[zoo_name]
    ids = greedy_decode(decoder, encoded, prompt, eot)
    return decode_tokens([i for i in ids if i < eot], load_vocabulary(paths["tokenizer.json"]))


def _register(zoo_name: str, description: str) -> None:
    register_model(ModelEntry(
        name=zoo_name,
        build=lambda random, _n=zoo_name: WhisperEncoderModel(_n, random),
        family="zoo",
        description=description,
        available=lambda _n=zoo_name: store.available_reason(_n),
        metadata={"licence": store.item(zoo_name).licence, "source": "CTranslate2 model.bin"},
    ))


_register("whisper-base", "Whisper base encoder (OpenAI; 680k h web speech), 6 blocks, 512-d")
_register("whisper-tiny.en", "Whisper tiny.en encoder (OpenAI; English speech), 4 blocks, 384-d")
