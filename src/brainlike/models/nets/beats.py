"""Torch network of :mod:`brainlike.models.paper.beats`, imported by its ``_modules`` when a model is built."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from brainlike.models.paper._frontends import kaldi_fbank
from brainlike.models.paper.beats import FBANK_MEAN, FBANK_STD, SAMPLE_RATE, BEATsConfig

__all__ = ["WeightNormConv1d", "PosConv", "MultiheadAttention", "EncoderLayer", "TransformerEncoder", "BEATs"]


class WeightNormConv1d(nn.Module):
    """Conv1d with weight normalisation over dim 2 (keys ``weight_g``, ``weight_v``, ``bias``)."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        conv = nn.Conv1d(channels, channels, kernel_size=kernel, padding=kernel // 2, groups=groups)
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel * channels)))
        self.padding, self.groups = kernel // 2, groups
        self.weight_v = nn.Parameter(conv.weight.detach().clone())
        self.weight_g = nn.Parameter(self.weight_v.detach().norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        return nn.functional.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class PosConv(nn.Module):
    """``pos_conv``: weight-normed grouped conv, drop the extra frame of an even kernel (SamePad), GELU."""

    def __init__(self, cfg: BEATsConfig) -> None:
        super().__init__()
        self.register_module("0", WeightNormConv1d(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups))
        self.trim = 1 if cfg.conv_pos % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        y = getattr(self, "0")(x)
        if self.trim:
            y = y[:, :, :-self.trim]
        return nn.functional.gelu(y)


class MultiheadAttention(nn.Module):
    def __init__(self, cfg: BEATsConfig, has_bias_table: bool) -> None:
        super().__init__()
        dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.heads, self.head_dim, self.cfg = heads, dim // heads, cfg
        if has_bias_table:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, heads)
        self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.q_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def _buckets(self, length: int, device: Any) -> torch.Tensor:
        """Bidirectional log-spaced relative position buckets (T5 style), (T, T)."""
        pos = torch.arange(length, device=device)
        rel = pos[None, :] - pos[:, None]
        half = self.cfg.num_buckets // 2
        buckets = (rel > 0).long() * half
        rel = rel.abs()
        exact = half // 2
        large = exact + (torch.log(rel.float().clamp(min=1) / exact) / math.log(self.cfg.max_distance / exact)
                         * (half - exact)).long()
        large = torch.clamp(large, max=half - 1)
        return buckets + torch.where(rel < exact, rel, large)

    def position_bias(self, length: int) -> torch.Tensor:
        table = self.relative_attention_bias
        return table(self._buckets(length, table.weight.device)).permute(2, 0, 1)  # (H, T, T)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:  # x (B, T, C)
        b, t, c = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        scores = (q * self.head_dim ** -0.5) @ k.transpose(-1, -2)  # (B, H, T, T)
        if bias is not None:
            if self.cfg.gru_rel_pos:
                gates = torch.sigmoid(self.grep_linear(q).view(b, self.heads, t, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias[None]
            scores = scores + bias
        out = torch.softmax(scores, dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, t, c))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: BEATsConfig, index: int) -> None:
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.self_attn = MultiheadAttention(cfg, cfg.relative_position_embedding and index == 0)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0
        self.pre_norm = cfg.layer_norm_first

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.self_attn(self.self_attn_layer_norm(x), bias)
            return x + self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(x))))
        x = self.self_attn_layer_norm(x * self.alpha + self.self_attn(x, bias))
        return self.final_layer_norm(x * self.alpha + self.fc2(nn.functional.gelu(self.fc1(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: BEATsConfig) -> None:
        super().__init__()
        self.pos_conv = PosConv(cfg)
        self.layers = nn.ModuleList([EncoderLayer(cfg, i) for i in range(cfg.encoder_layers)])
        if cfg.relative_position_embedding:  # one bias table shared by every layer, as in the official code
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(cfg.encoder_embed_dim)
        self.cfg = cfg

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, T, C) -> [input after position conv and norm, layer 1, ..., layer N]."""
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.cfg.layer_norm_first:
            x = self.layer_norm(x)
        bias = self.layers[0].self_attn.position_bias(x.shape[1]) if self.cfg.relative_position_embedding else None
        outputs = [x]
        for layer in self.layers:
            x = layer(x, bias)
            outputs.append(x)
        if self.cfg.layer_norm_first:
            outputs[-1] = self.layer_norm(x)
        return outputs


class BEATs(nn.Module):
    """BEATs with the parameter names of the official checkpoints."""

    def __init__(self, cfg: BEATsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.embed_dim != cfg.encoder_embed_dim:
            self.post_extract_proj = nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, kernel_size=cfg.input_patch_size,
                                         stride=cfg.input_patch_size, bias=cfg.conv_bias)
        self.encoder = TransformerEncoder(cfg)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        if cfg.finetuned_model:
            self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class)
        _init_bert(self)

    @staticmethod
    def preprocess(waveforms: torch.Tensor) -> torch.Tensor:
        """(B, N) in [-1, 1] -> normalised fbank (B, frames, 128), as the official ``preprocess``."""
        fbank = kaldi_fbank(waveforms * 2 ** 15, sample_rate=SAMPLE_RATE, num_mel_bins=128,
                            frame_length_ms=25.0, frame_shift_ms=10.0, window_type="povey")
        return (fbank - FBANK_MEAN) / (2 * FBANK_STD)

    def layer_outputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        patches = self.patch_embedding(self.preprocess(waveforms).unsqueeze(1))  # (B, E, T', F')
        tokens = self.layer_norm(patches.flatten(2).transpose(1, 2))
        if self.cfg.embed_dim != self.cfg.encoder_embed_dim:
            tokens = self.post_extract_proj(tokens)
        return dict(zip(self.cfg.layer_names(), self.encoder(tokens)))


def _init_bert(model: nn.Module) -> None:
    """The official initialisation (``init_bert_params``) for random twins."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
