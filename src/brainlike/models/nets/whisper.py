"""Torch network of :mod:`brainlike.models.zoo.whisper`, imported by its ``_build_modules`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from brainlike.models.zoo.whisper import WhisperDims, sinusoids

__all__ = ["Attention", "Block", "Encoder", "Decoder"]


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
    def __init__(self, dims: WhisperDims) -> None:
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
    def __init__(self, dims: WhisperDims) -> None:
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
