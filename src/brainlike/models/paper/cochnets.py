"""Cochleagram CNNs of Tuckute et al. (2023) / Feather et al.: CochCNN9 (Kell et al. 2018) and CochResNet50.

Input (as in cochdnn's ``measure_layer_activations_165_natural_sounds_pytorch.py``): 20 kHz audio, demeaned and set
to RMS 0.1, turned into the compressed cochleagram (211 channels x 200 Hz) of :mod:`brainlike.models.cochleagram`
(shared with the ``spectrotemporal`` baseline). CochCNN9's fully connected layer fixes the input at 2 s, so its clips
are cut or zero-padded to 40,000 samples first; CochResNet50 takes any length.

* ``cochcnn9``: BatchNorm on the cochleagram, then 5 convolutions with TensorFlow-style "same" padding and no biases
  (timm ``create_conv2d_pad``), max/avg pools with "same" padding, a 4096-unit fully connected layer.
* ``cochresnet50``: a torchvision-style ResNet-50 (Bottleneck [3, 4, 6, 3]) on the one-channel cochleagram.

Layer maps (Tuckute et al. 2023): cochcnn9 ``input_after_preproc, relu0, maxpool0, relu1, maxpool1, relu2, relu3,
relu4, avgpool, relufc``; cochresnet50 ``input_after_preproc, conv1_relu1, maxpool1, layer1, layer2, layer3, layer4,
avgpool``. Maps (batch, channels, frequency, time) become (batch, time, channels x frequency), channel-major, so a
time average equals the paper's ``mean over time, then ravel``.

Specs: ``cochcnn9@random`` / ``cochresnet50@random`` and ``cochcnn9:<checkpoint>`` / ``cochresnet50:<checkpoint>``
reading the robustness-library checkpoints (``{"model": state_dict}`` with ``module.model.`` / ``module.attacker.``
prefixes); task heads (``classification.*`` / ``fc.*``) are not layers and are set aside.
"""

from __future__ import annotations

import math
from typing import Any

from brainlike.errors import ModelError
from brainlike.models.paper._checkpoint import load_strict, read_checkpoint, resolve_checkpoint, state_dict_from
from brainlike.models.paper._model import PaperModel, build_random
from brainlike.models.registry import FamilyEntry, register_family

SAMPLE_RATE = 20000
ADAPTER_VERSION = 1
TARGET_RMS = 0.1
KELL_SAMPLES = 40000
KELL_LAYERS = ["input_after_preproc", "relu0", "maxpool0", "relu1", "maxpool1", "relu2", "relu3", "relu4", "avgpool",
               "relufc"]
RESNET_LAYERS = ["input_after_preproc", "conv1_relu1", "maxpool1", "layer1", "layer2", "layer3", "layer4", "avgpool"]
CHECKPOINT_NAMES = ("5_checkpoint.pt", "checkpoint.pt", "checkpoint.pt.best", "model.pt", "model.safetensors")


def same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """Total TensorFlow "SAME" padding of one axis: ``max((ceil(i / s) - 1) s + (k - 1) d + 1 - i, 0)``."""
    return max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def _modules() -> dict[str, Any]:
    import torch
    from torch import nn

    from brainlike.models.cochleagram import cochleagram

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

    return {"cochcnn9": CochCNN9, "cochresnet50": CochResNet50}


ARCHITECTURES = {
    "cochcnn9": {"layers": KELL_LAYERS, "anchor": "conv0.weight", "heads": ("classification.",),
                 "description": "CochCNN9 (Kell et al. 2018 architecture) on the cochleagram"},
    "cochresnet50": {"layers": RESNET_LAYERS, "anchor": "layer1.0.conv1.weight", "heads": ("fc.",),
                     "description": "CochResNet50 on the cochleagram"},
}


def build_network(family: str) -> Any:
    """The torch module of ``cochcnn9`` or ``cochresnet50`` (eval mode)."""
    return _modules()[family]().eval()


def network_state(state: dict[str, Any], family: str) -> tuple[dict[str, Any], list[str]]:
    """The network's own entries of a robustness checkpoint (prefix found from an anchor key), and what was set aside."""
    anchor = ARCHITECTURES[family]["anchor"]
    prefixes = sorted((k[: -len(anchor)] for k in state if k.endswith(anchor) and "attacker" not in k), key=len)
    if not prefixes:
        raise ModelError(f"{family}: checkpoint has no {anchor!r} entry (not a {family} checkpoint?)")
    prefix = prefixes[0]
    heads = ARCHITECTURES[family]["heads"]
    kept, skipped = {}, []
    for key, value in state.items():
        inner = key[len(prefix):] if key.startswith(prefix) else None
        if inner is None or inner.startswith(heads) or (prefix == "" and "attacker" in key):
            skipped.append(key)
        else:
            kept[inner] = value
    return kept, skipped


def load_checkpoint(family: str, argument: str) -> tuple[Any, str, dict[str, Any]]:
    """Read a cochdnn (robustness library) checkpoint; returns (module, sha256, provenance)."""
    path = resolve_checkpoint(argument, CHECKPOINT_NAMES, family)
    ckpt = read_checkpoint(path)
    state, skipped = network_state(state_dict_from(ckpt.content, ("model", "state_dict"), path), family)
    module = build_network(family)
    load_strict(module, state, label=f"{family} checkpoint {path.name}")
    provenance = {"checkpoint": str(path), "checkpoint_sha256": ckpt.sha256, "set_aside_keys": len(skipped)}
    return module, ckpt.sha256, provenance


def _wrap(family: str, module: Any, weights_id: str, name: str, provenance: dict[str, Any]) -> PaperModel:
    preprocessing = {"front_end": "cochleagram_1 (211 ch, 200 Hz, ^0.3), float32", "rms": TARGET_RMS, "demean": True,
                     "crop_or_pad_samples": KELL_SAMPLES if family == "cochcnn9" else None}
    model = PaperModel(module, name=name, sample_rate=SAMPLE_RATE, layers=ARCHITECTURES[family]["layers"],
                       weights_id=weights_id, preprocessing=preprocessing, batch_size=4, provenance=provenance)
    model.adapter_version = ADAPTER_VERSION
    model.clip_level_layers = ("relufc",) if family == "cochcnn9" else ("avgpool",)
    model.frame_rule = kell_frame_samples if family == "cochcnn9" else resnet_frame_samples
    return model


def _cochleagram_grid() -> Any:
    from brainlike.models import cochleagram as coch
    from brainlike.models.base import FrameGrid

    return FrameGrid(coch.KERNEL_SIZE / 2, coch.SAMPLE_RATE // coch.ENV_SAMPLE_RATE)


KELL_TIME_STAGES = [("relu0", 14, 3), ("maxpool0", 5, 2), ("relu1", 8, 2), ("maxpool1", 5, 2), ("relu2", 5, 1),
                    ("relu3", 5, 1), ("relu4", 5, 1), ("avgpool", 5, 2)]
"""(layer, kernel, stride) of CochCNN9 along time, all with TensorFlow "SAME" padding."""


def kell_frame_samples(layer: str, n_frames: int, n_samples: int) -> Any:
    """Centre (input sample) of each CochCNN9 step: cochleagram frame m at ``100 m + 500.5``; each SAME stage pads
    ``same_pad(size, kernel, stride) // 2`` steps before (which depends on the length reaching it)."""
    from brainlike.models import cochleagram as coch

    grid, size = _cochleagram_grid(), coch.n_frames(n_samples)
    for name, kernel, stride in [("input_after_preproc", 1, 1)] + KELL_TIME_STAGES:
        if kernel > 1:
            grid = grid.conv(kernel, stride, same_pad(size, kernel, stride) // 2)
            size = -(-size // stride)
        if name == layer:
            return grid.times(n_frames, 1.0)
    raise KeyError(layer)


def resnet_frame_samples(layer: str, n_frames: int, n_samples: int) -> Any:
    """Centre (input sample) of each CochResNet50 step: the stride-2 stages (conv1 k7 p3, max-pool k3 p1, 3 x 3
    p1 convolutions of layer2-4) keep their centres on the cochleagram grid, every 2^s frames."""
    strides = {"input_after_preproc": 1, "conv1_relu1": 2, "maxpool1": 4, "layer1": 4, "layer2": 8, "layer3": 16,
               "layer4": 32}
    grid = _cochleagram_grid()
    return type(grid)(grid.offset, grid.hop * strides[layer]).times(n_frames, 1.0)


def _family_loader(family: str):
    def load(argument: str | None, random: bool) -> PaperModel:
        if random or argument is None:
            module, weights_id = build_random(lambda: build_network(family))
            return _wrap(family, module, weights_id, f"{family}@random", {})
        module, sha, provenance = load_checkpoint(family, argument)
        return _wrap(family, module, sha, f"{family}:{argument}", provenance)

    return load


for _family, _info in ARCHITECTURES.items():
    register_family(FamilyEntry(prefix=_family, load=_family_loader(_family),
                                description=f"{_info['description']} from a cochdnn checkpoint; {_family}@random"))
del _family, _info
