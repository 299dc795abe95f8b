"""Torch network of :mod:`brainlike.models.paper.dasheng`, imported by its ``_modules`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.paper._frontends import htk_mel_filters, power_to_db
from brainlike.models.paper.dasheng import SAMPLE_RATE, DashengConfig

__all__ = ["Spectrogram", "MelScale", "MelSpectrogram", "ToDecibels", "BandNorm", "PatchEmbed", "Attention", "Mlp",
           "Block", "DashengEncoder"]


class Spectrogram(nn.Module):
    def __init__(self, win: int) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(win, periodic=True))


class MelScale(nn.Module):
    def __init__(self, cfg: DashengConfig) -> None:
        super().__init__()
        fb = htk_mel_filters(cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, SAMPLE_RATE)
        self.register_buffer("fb", torch.as_tensor(fb, dtype=torch.float32))


class MelSpectrogram(nn.Module):
    """Power mel spectrogram; buffers named as torchaudio's (``spectrogram.window``, ``mel_scale.fb``)."""

    def __init__(self, cfg: DashengConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.spectrogram = Spectrogram(cfg.win_size)
        self.mel_scale = MelScale(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, n_mels, frames)
        spec = torch.stft(x, self.cfg.n_fft, self.cfg.hop_size, self.cfg.win_size, window=self.spectrogram.window,
                          center=True, pad_mode="reflect", onesided=True, return_complex=True)
        return (spec.abs().pow(2).transpose(-1, -2) @ self.mel_scale.fb).transpose(-1, -2)


class ToDecibels(nn.Module):
    def __init__(self, top_db: float) -> None:
        super().__init__()
        self.top_db = top_db

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return power_to_db(x, self.top_db)


class BandNorm(nn.Module):
    """``init_bn``: BatchNorm2d over mel bands (index 1 as in the official Sequential)."""

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.register_module("1", nn.BatchNorm2d(n_mels, momentum=0.01))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T)
        return getattr(self, "1")(x.transpose(1, 2)).transpose(1, 2)


class PatchEmbed(nn.Module):
    def __init__(self, cfg: DashengConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, H, N, D)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: DashengConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.mlp = Mlp(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DashengEncoder(nn.Module):
    """The Dasheng encoder with parameter names of the official checkpoints."""

    def __init__(self, cfg: DashengConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.front_end = nn.Sequential(MelSpectrogram(cfg), ToDecibels(cfg.top_db))
        self.init_bn = BandNorm(cfg.n_mels)
        self.patch_embed = PatchEmbed(cfg)
        grid = (cfg.n_mels // cfg.patch_stride[0], cfg.target_length // cfg.patch_stride[1])
        if cfg.pooling == "token":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
            self.token_pos_embed = nn.Parameter(torch.randn(1, cfg.embed_dim) * 0.02)
        self.time_pos_embed = nn.Parameter(torch.randn(1, cfg.embed_dim, 1, grid[1]) * 0.02)
        self.freq_pos_embed = nn.Parameter(torch.randn(1, cfg.embed_dim, grid[0], 1) * 0.02)
        self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.apply(_init_weights)

    def spectrogram(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, N) -> normalised log-mel (B, 1, n_mels, frames)."""
        return self.init_bn(self.front_end(waveforms).unsqueeze(1))

    def _chunk_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Tokens of one chunk (B, C, F', T') -> [input, block 1, ..., block depth (normed)] each (B, N, C)."""
        t = x.shape[-1]
        x = x + self.time_pos_embed[:, :, :, :t] + self.freq_pos_embed
        x = x.flatten(2).transpose(1, 2)  # (B, F'T', C), frequency-major as in the official rearrange
        if self.cfg.pooling == "token":
            cls = (self.cls_token + self.token_pos_embed).expand(x.shape[0], -1, -1)
            x = torch.cat([cls, x], dim=1)
        outputs = [x]
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        outputs[-1] = self.norm(x)
        return outputs

    def layer_outputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        patches = self.patch_embed(self.spectrogram(waveforms))
        chunk = self.cfg.target_length // self.cfg.patch_stride[1]
        per_chunk = [self._chunk_layers(part) for part in patches.split(chunk, dim=-1)]
        wanted = {int(name[5:]): name for name in self.cfg.layer_names()}
        return {name: torch.cat([c[i] for c in per_chunk], dim=1) for i, name in wanted.items()}

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """The official ``Dasheng.forward``: final normed tokens (B, tokens, embed_dim)."""
        return self.layer_outputs(waveforms)[f"layer{self.cfg.depth}"]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
