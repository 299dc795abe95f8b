"""EnCodecMAE (Pepino et al. 2023/2025): a masked-prediction transformer with EnCodec-token targets.

Input variants: ``mel`` (default), the 256-band mel one used in Pepino et al. (2025) (``configs/features/mel.gin``):
24 kHz audio, Kaldi fbank (256 mel bins, 26.56 ms Hann window, 13.28 ms shift = 75 Hz, dither 0, no energy) of the
float waveform, normalised ``(x + 6.12) / 4.82``, projected to the model width (``wav_encoder.post_net``), plus a
sinusoidal position embedding with a learnt scale, into a transformer with ResiDual normalisation (Xie et al. 2023:
a post-LN stream and an un-normalised residual stream), bias-free attention projections (heads interleaved:
feature = d x heads + h, as in the official view) and a ReLU feed-forward (4096). As in the official
``TransformerEncoder`` built without ``ff_layer``, one feed-forward module is shared by all layers
(``shared_ff``; a checkpoint whose layers differ loads with per-layer feed-forwards). Audio is processed in 4 s chunks
(the official ``extract_features_from_array`` with the training ``max_length``), chunks shorter than 2048 samples
are dropped, and frames past ``samples // 320`` are masked as padding, as in the official code.

Sizes: small (768 x 5), base (768 x 10), large (1024 x 20, 16 heads). Layer map (Pepino et al. 2025): ``layerK`` =
output of encoder layer K (the post-LN stream), the last one being the model output ``x0 + final_norm(x1)``; small
and base report every layer, large every second layer.

Specs: ``encodecmae@random`` (base), ``encodecmae-small``, ``encodecmae-base``, ``encodecmae-large`` (``@random``) and
``encodecmae:<checkpoint>``: the official ``model.pt`` (``{"state_dict": ...}``; only the encoder part is used:
``wav_encoder.*`` and ``visible_encoder.*``; decoder, heads, masker and EnCodec target keys are set aside). The
original checkpoints with EnCodec-encoder input (``feat_projector``, ``wav_encoder.model.model.*``: the causal
EnCodec 24 kHz SEANet encoder, written here too) load as the ``encodec`` input variant; in that (older) code the
position embedding is applied before the encoder and every layer, the last included, is the post-LN stream.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brainlike.errors import ModelError
from brainlike.models.paper._checkpoint import load_strict, read_checkpoint, resolve_checkpoint, state_dict_from
from brainlike.models.paper._model import PaperModel, build_random
from brainlike.models.registry import FamilyEntry, ModelEntry, register_family, register_model

SAMPLE_RATE = 24000
FAMILY = "encodecmae"
ADAPTER_VERSION = 1
NORM_MEAN, NORM_STD = -6.12, 4.82
HOP_LENGTH = 320
CHUNK_SECONDS = 4.0
MIN_CHUNK = 2048
CHECKPOINT_NAMES = ("model.pt", "model.safetensors", "pytorch_model.bin")
ENCODER_PREFIXES = ("wav_encoder.", "visible_encoder.", "feat_projector.", "positional_encoder.")


@dataclass(frozen=True)
class EncodecMAEConfig:
    """Encoder hyper-parameters (gin names of the official configs)."""

    model_dim: int = 768
    num_layers: int = 10
    num_heads: int = 12
    ff_dim: int = 4096
    n_mels: int = 256
    shared_ff: bool = True
    layer_step: int = 1
    input: str = "mel"
    positional: bool = True

    def layer_names(self) -> list[str]:
        indices = list(range(self.layer_step, self.num_layers + 1, self.layer_step))
        if indices[-1] != self.num_layers:
            indices.append(self.num_layers)
        return [f"layer{i}" for i in indices]


SIZES = {
    "small": EncodecMAEConfig(num_layers=5),
    "base": EncodecMAEConfig(),
    "large": EncodecMAEConfig(model_dim=1024, num_layers=20, num_heads=16, layer_step=2),
}


def _modules() -> dict[str, Any]:
    import torch
    from torch import nn

    from brainlike.models.paper._frontends import kaldi_fbank

    class WavEncoder(nn.Module):
        """Mel features (computed by the official data pipeline) -> ``post_net`` Linear to the model width."""

        def __init__(self, cfg: EncodecMAEConfig) -> None:
            super().__init__()
            self.post_net = nn.Linear(cfg.n_mels, cfg.model_dim)

        def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
            fbank = kaldi_fbank(waveforms, sample_rate=SAMPLE_RATE, num_mel_bins=self.post_net.in_features,
                                frame_length_ms=26.56, frame_shift_ms=13.28, window_type="hanning")
            return self.post_net((fbank - NORM_MEAN) / NORM_STD)

    class WNConv1d(nn.Module):
        """EnCodec ``SConv1d`` (weight norm, causal reflect padding); keys ``conv.conv.weight_g/weight_v/bias``."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1) -> None:
            super().__init__()
            self.conv = nn.Module()
            self.conv.conv = nn.Module()
            weight = torch.empty(cout, cin, kernel)
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            self.conv.conv.weight_v = nn.Parameter(weight)
            self.conv.conv.weight_g = nn.Parameter(weight.norm(dim=(1, 2), keepdim=True))
            self.conv.conv.bias = nn.Parameter(torch.zeros(cout))
            self.kernel, self.stride, self.dilation = kernel, stride, dilation

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            c = self.conv.conv
            weight = c.weight_v * (c.weight_g / c.weight_v.norm(dim=(1, 2), keepdim=True))
            total = (self.kernel - 1) * self.dilation - (self.stride - 1)
            n_frames = (x.shape[-1] - self.kernel + total) / self.stride + 1
            extra = (math.ceil(n_frames) - 1) * self.stride + (self.kernel - total) - x.shape[-1]
            x = reflect_pad(x, total, extra)  # causal: all the padding on the left, alignment padding on the right
            return nn.functional.conv1d(x, weight, c.bias, self.stride, dilation=self.dilation)

    def reflect_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
        """Reflect padding that also works when the signal is shorter than the padding (zero-extended first)."""
        length, widest = x.shape[-1], max(left, right)
        extra = widest - length + 1 if length <= widest else 0
        if extra:
            x = nn.functional.pad(x, (0, extra))
        padded = nn.functional.pad(x, (left, right), mode="reflect")
        return padded[..., : padded.shape[-1] - extra]

    class ResBlock(nn.Module):
        """SEANet residual block: ELU, conv k3 (dim -> dim/2), ELU, conv k1 (-> dim), plus a 1x1 conv shortcut."""

        def __init__(self, dim: int) -> None:
            super().__init__()
            self.block = nn.Sequential(nn.ELU(), WNConv1d(dim, dim // 2, 3), nn.ELU(), WNConv1d(dim // 2, dim, 1))
            self.shortcut = WNConv1d(dim, dim, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shortcut(x) + self.block(x)

    class SLSTM(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.lstm = nn.LSTM(dim, dim, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.permute(2, 0, 1)
            return (self.lstm(x)[0] + x).permute(1, 2, 0)

    class SEANetEncoder(nn.Module):
        """The EnCodec 24 kHz encoder (causal, weight norm, ratios 2-4-5-8 = hop 320, 2-layer LSTM, 128 dims)."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = [WNConv1d(1, 32, 7)]
            width = 32
            for ratio in (2, 4, 5, 8):
                layers += [ResBlock(width), nn.ELU(), WNConv1d(width, width * 2, ratio * 2, stride=ratio)]
                width *= 2
            layers += [SLSTM(width), nn.ELU(), WNConv1d(width, 128, 7)]
            self.model = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

    class EncodecWavEncoder(nn.Module):
        """``EncodecEncoder``: the frozen EnCodec encoder, output (B, T, 128) at 75 Hz."""

        def __init__(self) -> None:
            super().__init__()
            self.model = SEANetEncoder()

        def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
            return self.model(waveforms[:, None]).permute(0, 2, 1)

    class Sinusoidal(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(1.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _, t, d = x.shape
            position = torch.arange(t, device=x.device, dtype=torch.float32)[:, None]
            div = torch.exp(torch.arange(0, d, 2, device=x.device, dtype=torch.float32) * -(math.log(10000.0) / d))
            pe = torch.zeros(t, d, device=x.device, dtype=x.dtype)
            pe[:, 0::2] = torch.sin(position * div)
            pe[:, 1::2] = torch.cos(position * div)
            return x + self.scale * pe

    class MultiHeadAttention(nn.Module):
        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            self.heads, self.head_dim = heads, dim // heads
            self.wq, self.wk = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
            self.wv, self.wo = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)

        def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
            n, t, _ = x.shape

            def split(y: torch.Tensor) -> torch.Tensor:  # feature d * heads + h -> (N, H, T, D)
                return y.view(n, t, self.head_dim, self.heads).permute(0, 3, 1, 2)

            att = split(self.wq(x)) @ split(self.wk(x)).transpose(-1, -2) * self.head_dim ** -0.5
            if key_mask is not None:
                att = att + key_mask[:, None, None, :].to(att.dtype) * -1e9
            out = torch.softmax(att, dim=-1) @ split(self.wv(x))  # (N, H, T, D)
            return self.wo(out.permute(0, 2, 3, 1).reshape(n, t, -1))

    class TransformerLayer(nn.Module):
        def __init__(self, cfg: EncodecMAEConfig, ff_layer: nn.Module) -> None:
            super().__init__()
            self.att_layer = MultiHeadAttention(cfg.model_dim, cfg.num_heads)
            self.ff_layer = ff_layer
            self.norm1, self.norm2 = nn.LayerNorm(cfg.model_dim), nn.LayerNorm(cfg.model_dim)

        def forward(self, x: tuple[torch.Tensor, torch.Tensor], key_mask: torch.Tensor | None):
            """ResiDual: x[0] post-LN stream, x[1] plain residual stream."""
            att = self.att_layer(x[0], key_mask)
            x0, x1 = self.norm1(x[0] + att), x[1] + att
            ff = self.ff_layer(x0)
            return self.norm2(x0 + ff), x1 + ff

    def feed_forward(cfg: EncodecMAEConfig) -> nn.Module:
        return nn.Sequential(nn.Linear(cfg.model_dim, cfg.ff_dim), nn.ReLU(), nn.Linear(cfg.ff_dim, cfg.model_dim))

    class VisibleEncoder(nn.Module):
        def __init__(self, cfg: EncodecMAEConfig) -> None:
            super().__init__()
            shared = feed_forward(cfg) if cfg.shared_ff else None
            self.encoder_layers = nn.ModuleList(
                [TransformerLayer(cfg, shared if shared is not None else feed_forward(cfg)) for _ in
                 range(cfg.num_layers)])
            if cfg.input == "mel" and cfg.positional:  # newer code: the position embedding lives in the encoder
                self.positional_encoder = Sinusoidal()
            self.final_norm = nn.LayerNorm(cfg.model_dim)
            self.postnorm_last = cfg.input == "mel"

        def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> list[torch.Tensor]:
            """Activations of every layer (post-LN stream; for mel models the last is ``x0 + final_norm(x1)``)."""
            if hasattr(self, "positional_encoder"):
                x = self.positional_encoder(x)
            state = (x, x)
            activations = []
            for layer in self.encoder_layers:
                state = layer(state, key_mask)
                activations.append(state[0])
            if self.postnorm_last:
                activations[-1] = state[0] + self.final_norm(state[1])
            return activations

    class EncodecMAE(nn.Module):
        """The EnCodecMAE encoder (mel input) with the parameter names of the official checkpoints."""

        def __init__(self, cfg: EncodecMAEConfig) -> None:
            super().__init__()
            self.cfg = cfg
            if cfg.input == "encodec":  # original EnCodecMAE: EnCodec encoder features, projected
                self.wav_encoder = EncodecWavEncoder()
                self.feat_projector = nn.Linear(128, cfg.model_dim)
                self.positional_encoder = Sinusoidal()
            else:
                self.wav_encoder = WavEncoder(cfg)
            self.visible_encoder = VisibleEncoder(cfg)
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)

        def _chunk(self, waveforms: torch.Tensor) -> list[torch.Tensor]:
            features = self.wav_encoder(waveforms)  # (B, T, D)
            if self.cfg.input == "encodec":
                features = self.positional_encoder(self.feat_projector(features))
            features_len = waveforms.shape[1] // HOP_LENGTH
            key_mask = torch.arange(features.shape[1], device=features.device)[None, :] >= features_len
            key_mask = key_mask.expand(features.shape[0], -1)
            return self.visible_encoder(features, key_mask if bool(key_mask.any()) else None)

        def layer_outputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
            chunk = int(CHUNK_SECONDS * SAMPLE_RATE)
            pieces = [waveforms[:, i:i + chunk] for i in range(0, waveforms.shape[1], chunk)]
            if self.cfg.input == "mel":  # the newer extractor drops short tails; the original one kept them
                pieces = [p for p in pieces if p.shape[1] > MIN_CHUNK]
            if not pieces:
                raise ModelError(f"encodecmae: clip of {waveforms.shape[1]} samples is shorter than {MIN_CHUNK + 1}")
            per_chunk = [self._chunk(p) for p in pieces]
            wanted = {name: int(name[5:]) - 1 for name in self.cfg.layer_names()}
            return {name: torch.cat([c[i] for c in per_chunk], dim=1) for name, i in wanted.items()}

    return {"EncodecMAE": EncodecMAE}


def build_encodecmae(cfg: EncodecMAEConfig) -> Any:
    """An EnCodecMAE encoder module (eval mode)."""
    return _modules()["EncodecMAE"](cfg).eval()


def heads_from_gin(path: Path) -> int | None:
    """``NUM_ENCODER_HEADS`` from the ``config.gin`` published beside ``model.pt``, if present."""
    if not path.is_file():
        return None
    match = re.search(r"^\s*NUM_ENCODER_HEADS\s*=\s*(\d+)", path.read_text(errors="replace"), re.MULTILINE)
    return int(match.group(1)) if match else None


def config_from_state(state: dict[str, Any], num_heads: int | None = None) -> EncodecMAEConfig:
    """Infer the configuration from the encoder weights.

    Heads cannot be read off the weights: ``num_heads`` (from ``config.gin``) or 64-wide heads (768 -> 12, 1024 -> 16).
    """
    if "feat_projector.weight" in state:
        kind, dim, n_mels = "encodec", int(state["feat_projector.weight"].shape[0]), EncodecMAEConfig.n_mels
    elif "wav_encoder.post_net.weight" in state:
        kind = "mel"
        dim, n_mels = (int(s) for s in state["wav_encoder.post_net.weight"].shape)
    else:
        raise ModelError("encodecmae: checkpoint has neither wav_encoder.post_net nor feat_projector weights "
                         "(not an EnCodecMAE model?)")
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("visible_encoder.encoder_layers."))
    ff = state["visible_encoder.encoder_layers.0.ff_layer.0.weight"]
    shared = all(
        state[f"visible_encoder.encoder_layers.{i}.ff_layer.0.weight"].data_ptr() == ff.data_ptr()
        or bool((state[f"visible_encoder.encoder_layers.{i}.ff_layer.0.weight"] == ff).all())
        for i in range(1, layers))
    return EncodecMAEConfig(model_dim=dim, num_layers=layers, n_mels=n_mels, ff_dim=int(ff.shape[0]),
                            num_heads=num_heads or max(1, dim // 64), shared_ff=shared,
                            layer_step=2 if layers > 10 else 1, input=kind,
                            positional=kind == "encodec" or "visible_encoder.positional_encoder.scale" in state)


def load_checkpoint(argument: str) -> tuple[Any, str, dict[str, Any]]:
    """Read an official EnCodecMAE ``model.pt``; returns (module, sha256, provenance)."""
    path = resolve_checkpoint(argument, CHECKPOINT_NAMES, FAMILY)
    ckpt = read_checkpoint(path)
    full = state_dict_from(ckpt.content, ("state_dict", "model"), path)
    state = {k: v for k, v in full.items() if k.startswith(ENCODER_PREFIXES)}
    cfg = config_from_state(full, heads_from_gin(path.parent / "config.gin"))
    module = build_encodecmae(cfg)
    load_strict(module, state, label=f"encodecmae checkpoint {path.name}")
    provenance = {"checkpoint": str(path), "checkpoint_sha256": ckpt.sha256, "config": cfg.__dict__,
                  "set_aside_keys": len(full) - len(state)}
    return module, ckpt.sha256, provenance


def _wrap(module: Any, weights_id: str, name: str, provenance: dict[str, Any]) -> PaperModel:
    cfg: EncodecMAEConfig = module.cfg
    preprocessing = {"front_end": f"kaldi fbank{cfg.n_mels} 24kHz 26.56/13.28ms hanning, (x+6.12)/4.82",
                     "chunk_s": CHUNK_SECONDS, "model_dim": cfg.model_dim, "num_layers": cfg.num_layers}
    model = PaperModel(module, name=name, sample_rate=SAMPLE_RATE, layers=cfg.layer_names(), weights_id=weights_id,
                       preprocessing=preprocessing, batch_size=4, provenance=provenance)
    model.adapter_version = ADAPTER_VERSION
    if cfg.input == "mel":  # the EnCodec-input variant keeps the evenly spread default
        model.frame_rule = lambda layer, n_frames, n_samples: mel_frame_samples(n_frames, n_samples)
    return model


def mel_frame_samples(n_frames: int, n_samples: int) -> Any:
    """Centre (input sample) of each frame of the ``mel`` variant: 4 s chunks (tails of <= 2048 samples dropped),
    Kaldi frames of 637 samples every 318 within each chunk (snip edges): frame m of chunk c at
    ``96000 c + 318 m + 318``. Falls back to evenly spread frames if the count differs."""
    import numpy as np

    from brainlike.models.base import FrameGrid

    chunk = int(CHUNK_SECONDS * SAMPLE_RATE)
    window, shift = int(SAMPLE_RATE * 26.56e-3), int(SAMPLE_RATE * 13.28e-3)
    grid = FrameGrid().conv(window, shift)
    times = []
    for start in range(0, n_samples, chunk):
        length = min(chunk, n_samples - start)
        if length > MIN_CHUNK:
            times.append(start + grid.times(1 + (length - window) // shift, 1.0))
    times = np.concatenate(times) if times else np.zeros(0)
    if len(times) != n_frames:
        return (np.arange(n_frames) + 0.5) * n_samples / max(n_frames, 1)
    return times


def _build_size(size: str, random: bool, name: str) -> PaperModel:
    if not random:
        raise ModelError(f"{name}: no weights bundled; use encodecmae:<model.pt or hub id> or {name}@random")
    cfg = SIZES[size]
    module, weights_id = build_random(lambda: build_encodecmae(cfg))
    return _wrap(module, weights_id, name, {"config": cfg.__dict__})


def _load_family(argument: str | None, random: bool) -> PaperModel:
    if random or argument is None:
        return _build_size("base", True, f"{FAMILY}@random")
    module, sha, provenance = load_checkpoint(argument)
    return _wrap(module, sha, f"{FAMILY}:{argument}", provenance)


register_family(FamilyEntry(prefix=FAMILY, load=_load_family,
                            description="EnCodecMAE (mel256; small/base/large) from model.pt; encodecmae@random = base"))
for _size in SIZES:
    register_model(ModelEntry(
        name=f"encodecmae-{_size}",
        build=(lambda random, s=_size: _build_size(s, random, f"encodecmae-{s}")),
        family=FAMILY,
        description=f"EnCodecMAE {_size} architecture (use @random; weights via encodecmae:<checkpoint>)",
        available=lambda: "weights are not bundled: load a checkpoint with encodecmae:<path or hub id>",
        metadata={"sample_rate": SAMPLE_RATE, "layers": SIZES[_size].layer_names()},
    ))
del _size
