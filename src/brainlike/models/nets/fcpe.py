"""Torch network of :mod:`brainlike.models.zoo.fcpe`, imported by its ``_build_network`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.zoo.fcpe import HIDDEN, N_BINS, N_LAYERS, N_MELS

__all__ = ["ConformerConv", "EncoderLayer", "FCPE"]


class ConformerConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        inner = 2 * HIDDEN
        # indices 0, 2, 4, 6 carry weights in the checkpoint (Sequential with Transpose/GLU/SiLU between)
        self.net = nn.ModuleDict({
            "0": nn.LayerNorm(HIDDEN),
            "2": nn.Conv1d(HIDDEN, 2 * inner, 1),
            "4": nn.ModuleDict({"conv": nn.Conv1d(inner, inner, 31, padding=15, groups=inner)}),
            "6": nn.Conv1d(inner, HIDDEN, 1),
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net["0"](x).transpose(1, 2)
        h = nn.functional.glu(self.net["2"](h), dim=1)
        h = nn.functional.silu(self.net["4"]["conv"](h))
        return self.net["6"](h).transpose(1, 2)


class EncoderLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conformer = ConformerConv()


class FCPE(nn.Module):
    """(batch, frames, 128) log-mel -> {layer: (batch, frames, features)}."""

    def __init__(self) -> None:
        super().__init__()
        self.input_stack = nn.ModuleDict({
            "0": nn.Conv1d(N_MELS, HIDDEN, 3, 1, 1),
            "1": nn.GroupNorm(4, HIDDEN),
            "3": nn.Conv1d(HIDDEN, HIDDEN, 3, 1, 1),
        })
        self.net = nn.Module()
        self.net.encoder_layers = nn.ModuleList([EncoderLayer() for _ in range(N_LAYERS)])
        self.norm = nn.LayerNorm(HIDDEN)
        self.output_proj = nn.Linear(HIDDEN, N_BINS)

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        stack = self.input_stack
        h = nn.functional.leaky_relu(stack["1"](stack["0"](mel.transpose(1, 2))), 0.01)
        x = stack["3"](h).transpose(1, 2)
        out = {"input_stack": x}
        for i, layer in enumerate(self.net.encoder_layers):
            x = x + layer.conformer(x)
            out[f"encoder{i}"] = x
        out["output"] = torch.sigmoid(self.output_proj(self.norm(x)))
        return out
