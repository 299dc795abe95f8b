"""Torch network of :mod:`brainlike.models.zoo.musicnn`, imported by its ``_build_network`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.zoo.musicnn import BN_EPS, VGG_POOLS
from brainlike.models.zoo.tempocnn import keras_same_pad

__all__ = ["Network"]


class Network(nn.Module):
    """The musicnn or VGG network; module names are the TensorFlow variable scopes of the checkpoint."""

    def __init__(self, architecture: str, n_classes: int) -> None:
        super().__init__()
        self.architecture, self.n_classes = architecture, n_classes
        self.tf = nn.ModuleDict()
        getattr(self, f"_init_{architecture}")()

    def _init_musicnn(self) -> None:
        self.tf["batch_normalization"] = nn.BatchNorm2d(1, eps=BN_EPS)
        front = [((7, 38), 204), ((7, 67), 204), ((128, 1), 51), ((64, 1), 51), ((32, 1), 51)]
        for i, (kernel, filters) in enumerate(front):
            self.tf[f"conv2d{'_' + str(i) if i else ''}"] = nn.Conv2d(1, filters, kernel)
            self.tf[f"batch_normalization_{i + 1}"] = nn.BatchNorm2d(filters, eps=BN_EPS)
        for i, width in enumerate((561, 64, 64)):
            self.tf[f"conv2d_{5 + i}"] = nn.Conv2d(1, 64, (7, width))
            self.tf[f"batch_normalization_{6 + i}"] = nn.BatchNorm2d(64, eps=BN_EPS)
        self.tf["batch_normalization_9"] = nn.BatchNorm1d(1506, eps=BN_EPS)
        self.tf["dense"] = nn.Linear(1506, 200)
        self.tf["batch_normalization_10"] = nn.BatchNorm1d(200, eps=BN_EPS)
        self.tf["dense_1"] = nn.Linear(200, self.n_classes)

    def _init_vgg(self) -> None:
        self.tf["batch_normalization"] = nn.BatchNorm2d(1, eps=BN_EPS)
        for i in range(1, 6):
            self.tf[f"{i}CNN"] = nn.Conv2d(1 if i == 1 else 128, 128, (3, 3))
            self.tf[f"batch_normalization_{i}"] = nn.BatchNorm2d(128, eps=BN_EPS)
        self.tf["dense"] = nn.Linear(256, self.n_classes)

    def block(self, conv: str, bn: str, x: torch.Tensor, time_pad: int | None) -> torch.Tensor:
        """conv (time padding: ``time_pad`` zeros each side, or Keras "same" if None) -> ReLU -> batch norm."""
        layer = self.tf[conv]
        if time_pad is None:
            x = keras_same_pad(x, layer.kernel_size)
        else:
            x = nn.functional.pad(x, (0, 0, time_pad, time_pad))
        return self.tf[bn](torch.relu(layer(x)))

    def _forward_musicnn(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(n, time, 96) -> layers; frame layers (n, time, F), clip layers (n, F)."""
        x = self.tf["batch_normalization"](x[:, None])
        front = []
        for i in range(5):
            suffix = "_" + str(i) if i else ""
            y = self.block(f"conv2d{suffix}", f"batch_normalization_{i + 1}", x, 3 if i < 2 else None)
            front.append(y.amax(dim=3).transpose(1, 2))  # max over frequency -> (n, time, filters)
        out = {"timbral": torch.cat(front[:2], dim=2), "temporal": torch.cat(front[2:], dim=2)}
        features = torch.cat(front, dim=2)  # (n, time, 561)
        mid, h = [features], features
        for i in range(3):
            y = self.block(f"conv2d_{5 + i}", f"batch_normalization_{6 + i}", h[:, None], 3)  # (n, 64, time, 1)
            y = y[..., 0].transpose(1, 2)
            h = y if i == 0 else y + h
            out[f"cnn{i + 1}"] = h
            mid.append(h)
        stacked = torch.cat(mid, dim=2)  # (n, time, 753)
        out["max_pool"], out["mean_pool"] = stacked.amax(dim=1), stacked.mean(dim=1)
        pooled = torch.stack([out["max_pool"], out["mean_pool"]], dim=2).flatten(1)  # TF order: max, mean per unit
        dense = torch.relu(self.tf["dense"](self.tf["batch_normalization_9"](pooled)))
        out["penultimate"] = self.tf["batch_normalization_10"](dense)
        out["taggram"] = torch.sigmoid(self.tf["dense_1"](out["penultimate"]))
        return out

    def _forward_vgg(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(n, 187, 96) patches -> pool1-pool5 (n, C, time, freq) and taggram (n, 50)."""
        x = self.tf["batch_normalization"](x[:, None])
        out = {}
        for i, (pool, stride) in enumerate(VGG_POOLS, start=1):
            x = self.block(f"{i}CNN", f"batch_normalization_{i}", x, None)
            x = out[f"pool{i}"] = nn.functional.max_pool2d(x, pool, stride)
        flat = x.permute(0, 2, 3, 1).flatten(1)  # TF flattens (time, freq, channels)
        out["taggram"] = torch.sigmoid(self.tf["dense"](flat))
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return getattr(self, f"_forward_{self.architecture}")(x)
