"""PESTO self-supervised pitch estimator (Riou et al. 2023) read from pesto-pitch 2.0.1 ``mir-1k_g7.ckpt``.

Front end: variable-Q transform (nnAudio-style time-domain kernels, built here from the formula, not stored): 16 kHz,
hop 160 (10 ms), 251 bins at 36 per octave from 27.5 / 2^(1/36) Hz, Q = 1 / (2^(1/36) - 1), kernel length
``ceil(Q sr / (f_k + gamma / alpha))`` with gamma = 7 and alpha = 2^(1/36) - 1, periodic Hann times a complex
exponential divided by its length, L1-normalised, centred in a 4096-sample frame; conv with reflect padding 2048,
times ``sqrt(length_k)``; ``ln |X|^2`` (PESTO's dB values times ln(10)/10), bins 16...234 kept (219 bins).

Encoder (``Resnet1d``): LayerNorm over the 219 bins; conv 1->40 k39 + LeakyReLU(0.3); two residual prefilter convs
40->40 k39 + LeakyReLU; four 1x1 convs 40->30->30->10->3 each + LeakyReLU; flatten (3 x 219); shift-equivariant
"Toeplitz" linear 657->384 (a conv with a 1040 tap kernel); softmax; rolled by -round(3 x shift) bins so that bin k
is MIDI pitch k / 3.

Layers (time = 10 ms frames): ``conv1``, ``prefilt1``, ``prefilt2`` (40 x 219 features), ``pointwise1`` ...
``pointwise4`` (30, 30, 10, 3 channels x 219) and ``output`` (384 pitch probabilities). The voicing-confidence head
is not exposed.

The checkpoint is a Lightning pickle that names omegaconf classes. It is read only when its sha256 matches
:data:`CHECKPOINT_SHA256`, with ``torch.load(weights_only=True)`` where those classes are replaced by inert
placeholders (omegaconf is not needed and nothing from the file is executed).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.models.base import RANDOM_SEED, FrameGrid, TorchAudioModel, seed_everything_for_init
from brainlike.models.zoo import register_zoo_model

NAME = "pesto"
SAMPLE_RATE = 16000
HOP = 160
BINS_PER_SEMITONE = 3
BINS_PER_OCTAVE = 12 * BINS_PER_SEMITONE
N_BINS = 251
FMIN = 27.5
GAMMA = 7.0
CROP = 16
N_BINS_IN = N_BINS - 2 * CROP
CHANNELS = [40, 30, 30, 10, 3]
KERNEL = 39
OUTPUT_DIM = 384
LEAKY_SLOPE = 0.3
CHECKPOINT_SHA256 = "16c32e06ddd950e3e4866dfa3c7f8a87c4988f8adf43e57977b189f031f26f3e"
"""sha256 of ``pesto/weights/mir-1k_g7.ckpt`` inside pesto-pitch 2.0.1 (checked before unpickling)."""
HCQT_PARAMS = {"harmonics": [1], "fmin": FMIN, "fmax": None, "bins_per_semitone": BINS_PER_SEMITONE,
               "n_bins": N_BINS, "center_bins": True, "gamma": 7, "center": True}
LAYERS = ["conv1", "prefilt1", "prefilt2", "pointwise1", "pointwise2", "pointwise3", "pointwise4", "output"]
_OMEGACONF_NAMES = ["omegaconf.listconfig.ListConfig", "omegaconf.dictconfig.DictConfig",
                    "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata", "omegaconf.nodes.AnyNode"]


@lru_cache(maxsize=4)
def cqt_kernels(sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """PESTO's variable-Q kernels at ``sample_rate``.

    Returns
    -------
    kernels : ndarray, shape (2 * 251, width), float32
        Real parts then minus imaginary parts (conv weights giving Re and Im of the transform).
    lengths : ndarray, shape (251,)
        Kernel lengths in samples (the output is scaled by their square roots).
    """
    from scipy.signal import get_window

    fmin = FMIN / 2 ** ((BINS_PER_SEMITONE - 1) / (24 * BINS_PER_SEMITONE))
    freqs = fmin * 2.0 ** (np.arange(N_BINS) / BINS_PER_OCTAVE)
    alpha = 2.0 ** (1.0 / BINS_PER_OCTAVE) - 1.0
    lengths = np.ceil((1.0 / alpha) * sample_rate / (freqs + GAMMA / alpha))
    width = int(2 ** np.ceil(np.log2(lengths.max())))
    kernels = np.zeros((N_BINS, width), dtype=np.complex128)
    for k, (freq, length) in enumerate(zip(freqs, lengths.astype(int))):
        start = int(np.ceil(width / 2 - length / 2)) - (1 if length % 2 == 1 else 0)
        times = np.arange(-(length // 2) - (length % 2), length // 2)
        sig = get_window("hann", length, fftbins=True) * np.exp(2j * np.pi * freq * times / sample_rate) / length
        kernels[k, start : start + length] = sig / np.abs(sig).sum()
    weights = np.concatenate([kernels.real, -kernels.imag]).astype(np.float32)
    return weights, lengths


def log_power_cqt(waveforms: Any) -> Any:
    """(batch, samples) at 16 kHz -> ``ln |X|^2`` of the cropped CQT, (batch, 1 + samples // 160, 219)."""
    import torch

    kernels, lengths = cqt_kernels(SAMPLE_RATE)
    weight = torch.as_tensor(kernels, device=waveforms.device)[:, None, :]
    pad = kernels.shape[-1] // 2
    mode = "reflect" if waveforms.shape[-1] > pad else "constant"
    x = torch.nn.functional.pad(waveforms[:, None], (pad, pad), mode=mode)
    out = torch.nn.functional.conv1d(x, weight, stride=HOP)  # (batch, 2 * bins, frames)
    scale = torch.as_tensor(np.sqrt(lengths), dtype=out.dtype, device=out.device)[:, None]
    real, imag = out[:, :N_BINS] * scale, out[:, N_BINS:] * scale
    magnitude = torch.sqrt(real**2 + imag**2)
    db = 20 * torch.log10(magnitude.clamp_min(torch.finfo(torch.float32).eps))
    return (db * (math.log(10) / 10)).transpose(1, 2)[..., CROP : N_BINS - CROP]


def _build_network() -> Any:
    """PESTO's ``Resnet1d`` encoder as an ``nn.Module`` (names match ``encoder.*`` in the checkpoint)."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        """(n, 219) log-power CQT frames -> {layer: (n, features)}."""

        def __init__(self) -> None:
            super().__init__()
            self.layernorm = nn.LayerNorm([1, N_BINS_IN])
            self.conv1 = nn.Sequential(nn.Conv1d(1, CHANNELS[0], KERNEL, padding=KERNEL // 2))
            self.prefilt_layers = nn.ModuleList(
                [nn.Sequential(nn.Conv1d(CHANNELS[0], CHANNELS[0], KERNEL, padding=KERNEL // 2)) for _ in range(2)]
            )
            pointwise = {}
            for i, (cin, cout) in enumerate(zip(CHANNELS[:-1], CHANNELS[1:])):
                pointwise[str(3 * i)] = nn.Conv1d(cin, cout, 1)
            self.conv_layers = nn.ModuleDict(pointwise)
            n_in = N_BINS_IN * CHANNELS[-1]
            self.fc = nn.Conv1d(1, 1, n_in + OUTPUT_DIM - 1, padding=OUTPUT_DIM - 1, bias=False)

        def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
            act = lambda t: nn.functional.leaky_relu(t, LEAKY_SLOPE)  # noqa: E731
            x = act(self.conv1(self.layernorm(frames[:, None])))
            out = {"conv1": x}
            for i, layer in enumerate(self.prefilt_layers, start=1):
                x = x + act(layer(x))
                out[f"prefilt{i}"] = x
            for i, conv in enumerate(self.conv_layers.values(), start=1):
                x = act(conv(x))
                out[f"pointwise{i}"] = x
            logits = self.fc(x.flatten(1)[:, None])[:, 0]
            out["output"] = torch.softmax(logits, dim=-1)
            return {k: v.flatten(1) for k, v in out.items()}

    return Encoder()


def load_checkpoint(path: Path) -> tuple[dict[str, Any], float]:
    """Encoder state dict and the pitch ``shift`` buffer from ``mir-1k_g7.ckpt`` (pinned sha256, no omegaconf).

    Raises
    ------
    ChecksumError
        The file is not the pinned one (it is then never unpickled).
    ValueError
        The checkpoint's CQT parameters differ from the ones this adapter implements.
    """
    import collections
    import typing

    import torch

    from brainlike.models.zoo.store import verify_file

    verify_file(path, CHECKPOINT_SHA256)
    allowed: list[Any] = [(type(name.rsplit(".", 1)[1], (_Placeholder,), {}), name) for name in _OMEGACONF_NAMES]
    allowed += [(typing.Any, "typing.Any"), collections.defaultdict, list, dict, int]
    with torch.serialization.safe_globals(allowed):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if dict(checkpoint["hcqt_params"]) != HCQT_PARAMS:
        raise ValueError(f"unexpected PESTO CQT parameters {checkpoint['hcqt_params']}")
    state = checkpoint["state_dict"]
    encoder = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    return encoder, float(state["shift"])


class _Placeholder:
    """Inert stand-in for the omegaconf objects in PESTO's hyper-parameters (state stored, never used)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def midi_from_activations(activations: np.ndarray) -> np.ndarray:
    """Fractional MIDI pitch per frame from PESTO output probabilities (..., 384) by "alwa".

    Argmax-local weighted average of ``bin / 3`` over the argmax +- 2 bins (indices clamped), as PESTO's default.
    """
    activations = np.asarray(activations, dtype=np.float64)
    peak = activations.argmax(axis=-1)
    index = np.clip(peak[..., None] + np.arange(-(BINS_PER_SEMITONE - 1), BINS_PER_SEMITONE), 0, OUTPUT_DIM - 1)
    weights = np.take_along_axis(activations, index, axis=-1)
    return (weights * index / BINS_PER_SEMITONE).sum(-1) / np.maximum(weights.sum(-1), 1e-12)


def activations_to_hz(activations: np.ndarray) -> np.ndarray:
    """Pitch (Hz) per frame from PESTO output probabilities: ``440 * 2 ** ((midi - 69) / 12)``."""
    return 440.0 * 2.0 ** ((midi_from_activations(activations) - 69.0) / 12.0)


class PestoModel(TorchAudioModel):
    """PESTO (mir-1k_g7) as a brainlike model (16 kHz, 10 ms frames).

    Parameters
    ----------
    weights : path, optional
        ``mir-1k_g7.ckpt``; None builds the random-init twin (seed 0, no pitch shift).
    weights_id : str, optional
        sha256 of ``weights`` (defaults to the pinned value, which loading verifies).
    """

    sample_rate = SAMPLE_RATE
    layers = list(LAYERS)
    adapter_version = 1
    preprocessing = {"cqt": "vqt-36bpo-251-gamma7", "hop": HOP, "crop": CROP}
    causal = False  # each frame reads a 4096-sample (256 ms) window centred on it
    batch_size = 8

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        self.name = NAME + ("@random" if weights is None else "")
        seed_everything_for_init(RANDOM_SEED)
        self.module = _build_network()
        if weights is None:
            self.shift_bins = 0
            self.weights_id = f"random:{RANDOM_SEED}"
        else:
            state, shift = load_checkpoint(weights)
            self.module.load_state_dict(state, strict=True)
            self.shift_bins = round(shift * BINS_PER_SEMITONE)
            self.weights_id = weights_id or CHECKPOINT_SHA256
        self.module.eval()

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        cqt = log_power_cqt(waveforms)
        batch, n_frames = cqt.shape[:2]
        out = self.module(cqt.reshape(batch * n_frames, N_BINS_IN))
        out["output"] = out["output"].roll(-self.shift_bins, dims=-1)
        return {k: v.reshape(batch, n_frames, -1) for k, v in out.items()}

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """4096-sample kernels, reflect padding 2048, stride 160: frame k centred on sample ``160 k - 0.5``."""
        width = cqt_kernels(SAMPLE_RATE)[0].shape[-1]
        return FrameGrid().conv(width, HOP, width // 2).times(n_frames, self.sample_rate)


register_zoo_model(NAME, PestoModel, "PESTO self-supervised pitch estimator (VQT + 7 conv + Toeplitz linear, 130 k params), 16 kHz",
                   {"licence": "LGPL-3.0", "distribution": "pesto-pitch==2.0.1"})
