"""Torch networks of the downstream probes (imported by :mod:`brainlike.downstream.probes` when a probe trains)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["WeightedSumMLP"]


class WeightedSumMLP(nn.Module):
    """Learned normalised weighted sum of layers followed by an MLP (Pepino et al. 2025's probe).

    Parameters
    ----------
    n_layers, width : int
        Input (batch, n_layers, width).
    n_classes : int
        Output logits.
    hidden : sequence of int
        Hidden sizes; each block is Linear, BatchNorm1d, ReLU, Dropout(``dropout``).
    init : {"xavier_uniform", "xavier_normal"}
        Initialisation of the linear weights (biases zero).
    dropout : float
    """

    def __init__(self, n_layers: int, width: int, n_classes: int, hidden: Sequence[int], init: str,
                 dropout: float) -> None:
        super().__init__()
        self.layer_weights = nn.Parameter(torch.ones(n_layers))
        blocks: list[nn.Module] = []
        size = width
        for h in hidden:
            blocks += [nn.Linear(size, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(dropout)]
            size = h
        blocks.append(nn.Linear(size, n_classes))
        self.mlp = nn.Sequential(*blocks)
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                (nn.init.xavier_uniform_ if init == "xavier_uniform" else nn.init.xavier_normal_)(module.weight)
                nn.init.zeros_(module.bias)

    def normalised_weights(self) -> torch.Tensor:
        w = self.layer_weights.abs()
        return w / w.sum().clamp_min(1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, n_layers, width)
        return self.mlp(torch.einsum("blf,l->bf", x, self.normalised_weights()))
