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
from functools import partial
from typing import Any

from brainlike.errors import ModelError
from brainlike.models.paper._checkpoint import load_strict, read_checkpoint, resolve_checkpoint, state_dict_from
from brainlike.models.paper._model import PaperModel, build_random, family_loader
from brainlike.models.registry import FamilyEntry, register_family

__all__ = ["SAMPLE_RATE", "ADAPTER_VERSION", "TARGET_RMS", "KELL_SAMPLES", "KELL_LAYERS", "RESNET_LAYERS",
           "CHECKPOINT_NAMES", "same_pad", "ARCHITECTURES", "build_network", "network_state", "load_checkpoint",
           "KELL_TIME_STAGES", "kell_frame_samples", "resnet_frame_samples"]

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
    from brainlike.models.nets.cochnets import CochCNN9, CochResNet50

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
    def build_twin(name: str) -> PaperModel:
        module, weights_id = build_random(lambda: build_network(family))
        return _wrap(family, module, weights_id, name, {})

    return family_loader(family, build_twin, partial(load_checkpoint, family), partial(_wrap, family))


for _family, _info in ARCHITECTURES.items():
    register_family(FamilyEntry(prefix=_family, load=_family_loader(_family),
                                description=f"{_info['description']} from a cochdnn checkpoint; {_family}@random"))
del _family, _info
