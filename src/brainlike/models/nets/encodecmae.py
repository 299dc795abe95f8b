"""Torch network of :mod:`brainlike.models.paper.encodecmae`, imported by its ``_modules`` when a model is built."""

from __future__ import annotations

import math

import torch
from torch import nn

from brainlike.errors import ModelError
from brainlike.models.paper._frontends import kaldi_fbank
from brainlike.models.paper.encodecmae import (
    CHUNK_SECONDS,
    HOP_LENGTH,
    MIN_CHUNK,
    NORM_MEAN,
    NORM_STD,
    SAMPLE_RATE,
    EncodecMAEConfig,
)

__all__ = ["WavEncoder", "WNConv1d", "reflect_pad", "ResBlock", "SLSTM", "SEANetEncoder", "EncodecWavEncoder",
           "Sinusoidal", "MultiHeadAttention", "TransformerLayer", "feed_forward", "VisibleEncoder", "EncodecMAE"]


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
