"""Torch network of :mod:`brainlike.models.paper.cochnets`, imported by its ``_modules`` when a model is built."""

from __future__ import annotations

import math

import torch
from torch import nn

from brainlike.models.cochleagram import cochleagram
from brainlike.models.paper.cochnets import KELL_SAMPLES, TARGET_RMS, same_pad

__all__ = ["pad_same", "Conv2dSame", "PoolSame", "cochleagram_input", "as_time_major", "CochCNN9", "Bottleneck",
           "CochResNet50", "sound_cochleagram"]


def pad_same(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], value: float = 0.0):
    ph, pw = (same_pad(x.shape[-2 + i], kernel[i], stride[i]) for i in range(2))
    return nn.functional.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2], value=value)


class Conv2dSame(nn.Conv2d):
    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(pad_same(x, self.kernel_size, self.stride), self.weight, None, self.stride)


class PoolSame(nn.Module):
    def __init__(self, kind: str, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        self.kind, self.kernel, self.stride = kind, kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            return nn.functional.max_pool2d(pad_same(x, self.kernel, self.stride, -math.inf), self.kernel,
                                            self.stride)
        return nn.functional.avg_pool2d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


def cochleagram_input(waveforms: torch.Tensor, n_samples: int | None) -> torch.Tensor:
    """Crop/pad (if ``n_samples``), demean, RMS 0.1 (float64), cochleagram in float32 as the original torch
    pipeline (2x faster than float64, within 2e-6) -> (B, 1, 211, frames)."""
    x = waveforms.double()
    if n_samples is not None:
        x = x[:, :n_samples] if x.shape[1] >= n_samples else nn.functional.pad(x, (0, n_samples - x.shape[1]))
    x = x - x.mean(dim=1, keepdim=True)
    rms = x.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
    return cochleagram((x * (TARGET_RMS / rms)).float(), dtype=torch.float32)[:, None]


def sound_cochleagram(waveforms: torch.Tensor, sound: slice) -> torch.Tensor:
    """Cochleagram of sounds in silence: demean and RMS 0.1 computed on the sound alone, silence kept at 0."""
    x = waveforms.double()
    part = x[:, sound]
    part = part - part.mean(dim=1, keepdim=True)
    rms = part.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
    x = torch.zeros_like(x)
    x[:, sound] = part * (TARGET_RMS / rms)
    return cochleagram(x.float(), dtype=torch.float32)[:, None]


def as_time_major(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, T) -> (B, T, C*F), channel-major features; (B, D) -> (B, 1, D)."""
    if x.ndim == 2:
        return x[:, None]
    return x.permute(0, 3, 1, 2).reshape(x.shape[0], x.shape[3], -1)


class CochCNN9(nn.Module):
    """Kell et al. (2018) network as in cochdnn's ``kell2018_multi_task`` (parameter names kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.batchnorm0 = nn.BatchNorm2d(1)
        nn.init.constant_(self.batchnorm0.weight, 0.6180)
        nn.init.constant_(self.batchnorm0.bias, -2.0971)
        self.conv0 = Conv2dSame(1, 96, (7, 14), (3, 3))
        self.maxpool0 = PoolSame("max", (2, 5), (2, 2))
        self.batchnorm1 = nn.BatchNorm2d(96)
        self.conv1 = Conv2dSame(96, 256, (4, 8), (2, 2))
        self.maxpool1 = PoolSame("max", (2, 5), (2, 2))
        self.batchnorm2 = nn.BatchNorm2d(256)
        self.conv2 = Conv2dSame(256, 512, (2, 5), (1, 1))
        self.conv3 = Conv2dSame(512, 1024, (2, 5), (1, 1))
        self.conv4 = Conv2dSame(1024, 512, (2, 5), (1, 1))
        self.avgpool = PoolSame("avg", (2, 5), (2, 2))
        self.fullyconnected = nn.Linear(512 * 9 * 5, 4096)

    def net_outputs(self, coch: torch.Tensor, head: bool = True) -> dict[str, torch.Tensor]:
        """All named stages from the cochleagram (B, 1, 211, 390), each as the official ``all_outputs``
        (``head=False``: without the fully connected ``relufc``)."""
        out = {"input_after_preproc": coch}
        x = self.batchnorm0(coch)
        out["relu0"] = x = torch.relu(self.conv0(x))
        out["maxpool0"] = x = self.maxpool0(x)
        out["relu1"] = x = torch.relu(self.conv1(self.batchnorm1(x)))
        out["maxpool1"] = x = self.maxpool1(x)
        out["relu2"] = x = torch.relu(self.conv2(self.batchnorm2(x)))
        out["relu3"] = x = torch.relu(self.conv3(x))
        out["relu4"] = x = torch.relu(self.conv4(x))
        out["avgpool"] = x = self.avgpool(x)
        if head:
            out["relufc"] = torch.relu(self.fullyconnected(x.reshape(x.shape[0], -1)))
        return out

    def layer_outputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.net_outputs(cochleagram_input(waveforms, KELL_SAMPLES))
        return {k: as_time_major(v) for k, v in outputs.items()}

    def frame_outputs(self, waveforms: torch.Tensor, sound: slice) -> dict[str, torch.Tensor]:
        """Convolutional stages of a sound in silence (no 2 s crop; the fully connected layer is left out)."""
        outputs = self.net_outputs(sound_cochleagram(waveforms, sound), head=False)
        return {k: as_time_major(v) for k, v in outputs.items()}


class Bottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int, downsample: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(planes * 4)) if downsample else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (self.downsample(x) if self.downsample is not None else x))


class CochResNet50(nn.Module):
    """ResNet-50 on the cochleagram as in cochdnn's ``resnet_multi_task50`` (parameter names kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]):
            layers = [Bottleneck(inplanes, planes, stride, True)]
            layers += [Bottleneck(planes * 4, planes, 1, False) for _ in range(blocks - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*layers))
            inplanes = planes * 4
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def net_outputs(self, coch: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"input_after_preproc": coch}
        out["conv1_relu1"] = x = torch.relu(self.bn1(self.conv1(coch)))
        out["maxpool1"] = x = self.maxpool(x)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            out[name] = x = getattr(self, name)(x)
        out["avgpool"] = x.mean(dim=(2, 3))
        return out

    def layer_outputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.net_outputs(cochleagram_input(waveforms, None))
        return {k: as_time_major(v) for k, v in outputs.items()}

    def frame_outputs(self, waveforms: torch.Tensor, sound: slice) -> dict[str, torch.Tensor]:
        """Every stage but the clip-level ``avgpool``, of a sound in silence."""
        outputs = self.net_outputs(sound_cochleagram(waveforms, sound))
        outputs.pop("avgpool")
        return {k: as_time_major(v) for k, v in outputs.items()}
