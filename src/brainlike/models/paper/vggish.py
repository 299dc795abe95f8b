"""VGGish (Hershey et al. 2017): the AudioSet VGG-like embedding network, as ported to PyTorch by torchvggish.

Front end (as published, ``vggish_input.waveform_to_examples``): 16 kHz, 25 ms periodic-Hann frames every 10 ms,
512-point FFT magnitudes, 64 mel bands from 125 to 7500 Hz (HTK mel, DC bin zeroed), log(mel + 0.01), cut into
non-overlapping 0.96 s examples of 96 frames x 64 bands (clips shorter than one example are zero-padded to one).

Layer map (the names of the original TF ``vggish_slim``): ``conv1, pool1, conv2, pool2, conv3_1, conv3_2, pool3,
conv4_1, conv4_2, pool4, fc1_1, fc1_2, fc2`` (conv and fc outputs after their ReLU, as torchvggish). Conv/pool maps
become (time steps, frequency x channels) with the examples concatenated in time; fc layers give one step per
0.96 s example. The PCA-whitened, 8-bit quantised "postprocessed" embedding is a fixed map of ``fc2`` and not
reported.

Specs: ``vggish@random`` (PyTorch default initialisation, seed 0) and ``vggish:<checkpoint>`` reading the torchvggish
state dict ``vggish-10086976.pth`` (its published sha256 prefix is checked).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from brainlike.models.paper._checkpoint import load_strict, read_checkpoint, resolve_checkpoint, state_dict_from
from brainlike.models.paper._model import PaperModel, build_random
from brainlike.models.registry import FamilyEntry, register_family

SAMPLE_RATE = 16000
FAMILY = "vggish"
ADAPTER_VERSION = 1
WINDOW, HOP, N_FFT, N_MELS = 400, 160, 512, 64
EXAMPLE_FRAMES = 96
LOG_OFFSET = 0.01
CHECKPOINT_NAMES = ("vggish-10086976.pth", "vggish.pth", "pytorch_model.bin", "model.safetensors")
LAYERS = ["conv1", "pool1", "conv2", "pool2", "conv3_1", "conv3_2", "pool3", "conv4_1", "conv4_2", "pool4",
          "fc1_1", "fc1_2", "fc2"]
# index in ``features`` / ``embeddings`` after which each layer is read (after the ReLU for conv and fc layers)
_FEATURE_TAPS = {1: "conv1", 2: "pool1", 4: "conv2", 5: "pool2", 7: "conv3_1", 9: "conv3_2", 10: "pool3",
                 12: "conv4_1", 14: "conv4_2", 15: "pool4"}
_EMBEDDING_TAPS = {1: "fc1_1", 3: "fc1_2", 5: "fc2"}


@lru_cache(maxsize=1)
def mel_matrix() -> np.ndarray:
    """VGGish mel weights (257 FFT bins, 64 bands): HTK-mel triangles between 125 and 7500 Hz, DC row zeroed."""
    def to_mel(hz: np.ndarray) -> np.ndarray:
        return 1127.0 * np.log(1.0 + hz / 700.0)

    bins_mel = to_mel(np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1))[:, None]
    edges = np.linspace(to_mel(np.float64(125.0)), to_mel(np.float64(7500.0)), N_MELS + 2)
    lower, centre, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    weights = np.maximum(0.0, np.minimum((bins_mel - lower) / (centre - lower), (upper - bins_mel) / (upper - centre)))
    weights[0, :] = 0.0
    return weights


def log_mel_examples(waveforms: Any) -> Any:
    """(B, N) float waveforms at 16 kHz -> (B, n_examples, 96, 64) log-mel examples (torch)."""
    import torch

    min_len = WINDOW + (EXAMPLE_FRAMES - 1) * HOP
    if waveforms.shape[-1] < min_len:
        waveforms = torch.nn.functional.pad(waveforms, (0, min_len - waveforms.shape[-1]))
    frames = waveforms.unfold(-1, WINDOW, HOP)  # (B, frames, 400)
    window = torch.hann_window(WINDOW, periodic=True, dtype=frames.dtype, device=frames.device)
    magnitude = torch.fft.rfft(frames * window, n=N_FFT).abs()
    mel = magnitude @ torch.as_tensor(mel_matrix(), dtype=frames.dtype, device=frames.device)
    log_mel = torch.log(mel + LOG_OFFSET)
    n_examples = 1 + (log_mel.shape[1] - EXAMPLE_FRAMES) // EXAMPLE_FRAMES
    return log_mel[:, : n_examples * EXAMPLE_FRAMES].reshape(log_mel.shape[0], n_examples, EXAMPLE_FRAMES, N_MELS)


def _modules() -> dict[str, Any]:
    import torch
    from torch import nn

    class VGGish(nn.Module):
        """VGGish with the parameter names of torchvggish (``features.*``, ``embeddings.*``)."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            channels = 1
            for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"]:
                if v == "M":
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                else:
                    layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU()]
                    channels = v
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                                            nn.Linear(4096, 128), nn.ReLU())

        def layer_outputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
            examples = log_mel_examples(waveforms)  # (B, E, 96, 64)
            b, e = examples.shape[:2]
            x = examples.reshape(b * e, 1, EXAMPLE_FRAMES, N_MELS)
            out: dict[str, torch.Tensor] = {}
            for i, module in enumerate(self.features):
                x = module(x)
                if i in _FEATURE_TAPS:  # (B*E, C, T, F) -> (B, E*T, F*C), channels last as TF
                    out[_FEATURE_TAPS[i]] = x.permute(0, 2, 3, 1).reshape(b, e * x.shape[2], -1)
            x = x.permute(0, 2, 3, 1).reshape(b * e, -1)
            for i, module in enumerate(self.embeddings):
                x = module(x)
                if i in _EMBEDDING_TAPS:
                    out[_EMBEDDING_TAPS[i]] = x.reshape(b, e, -1)
            return out

    return {"VGGish": VGGish}


def build_vggish() -> Any:
    """A VGGish module (eval mode)."""
    return _modules()["VGGish"]().eval()


def load_checkpoint(argument: str) -> tuple[Any, str, dict[str, Any]]:
    """Read the torchvggish state dict; returns (module, sha256, provenance)."""
    path = resolve_checkpoint(argument, CHECKPOINT_NAMES, FAMILY)
    ckpt = read_checkpoint(path)
    state = state_dict_from(ckpt.content, ("state_dict", "model"), path)
    state = {k: v for k, v in state.items() if not k.startswith("pproc.")}
    module = build_vggish()
    load_strict(module, state, label=f"vggish checkpoint {path.name}")
    return module, ckpt.sha256, {"checkpoint": str(path), "checkpoint_sha256": ckpt.sha256}


def _wrap(module: Any, weights_id: str, name: str, provenance: dict[str, Any]) -> PaperModel:
    preprocessing = {"front_end": "log(mel64 125-7500Hz |rfft512| + 0.01), 25ms/10ms", "example_s": 0.96,
                     "short_clips": "zero-padded to one example"}
    model = PaperModel(module, name=name, sample_rate=SAMPLE_RATE, layers=LAYERS, weights_id=weights_id,
                       preprocessing=preprocessing, batch_size=8, provenance=provenance)
    model.adapter_version = ADAPTER_VERSION
    model.frame_rule = layer_samples
    model.frame_edge_s = 1.0  # 0.96 s examples
    return model


def layer_samples(layer: str, n_frames: int, n_samples: int) -> np.ndarray:
    """Centre (input sample) of each step: frame m reads samples ``160 m ... 160 m + 399``; example e holds frames
    ``96 e ... 96 e + 95``; each 2 x 2 max-pool halves the rows of an example; fc layers: the example's centre."""
    from brainlike.models.base import FrameGrid

    grid = FrameGrid().conv(WINDOW, HOP)
    if layer.startswith("fc"):
        return grid.blocks(EXAMPLE_FRAMES, EXAMPLE_FRAMES).times(n_frames, 1.0)
    pools = sum(1 for name in LAYERS[: LAYERS.index(layer) + 1] if name.startswith("pool"))
    rows = EXAMPLE_FRAMES >> pools
    within = grid.conv(2 ** pools, 2 ** pools).times(rows, 1.0) if pools else grid.times(rows, 1.0)
    starts = EXAMPLE_FRAMES * HOP * np.arange(max(1, n_frames // rows))
    return (starts[:, None] + within[None, :]).ravel()[:n_frames]


def _load_family(argument: str | None, random: bool) -> PaperModel:
    if random or argument is None:
        module, weights_id = build_random(build_vggish)
        return _wrap(module, weights_id, f"{FAMILY}@random", {})
    module, sha, provenance = load_checkpoint(argument)
    return _wrap(module, sha, f"{FAMILY}:{argument}", provenance)


register_family(FamilyEntry(prefix=FAMILY, load=_load_family,
                            description="VGGish (torchvggish port) from vggish-10086976.pth; vggish@random"))
