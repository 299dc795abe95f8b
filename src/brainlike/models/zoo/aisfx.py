"""aiSFX sound-effects CNN (Ma et al., ISMIR 2020 workshop) read from the aisfx 0.1.2 checkpoint.

Front end (the package's librosa path): 44.1 kHz waveform peak-normalised to max |y| = 1; power STFT (n_fft = window
= 2048, hop 1024, periodic Hann, centred with zero padding); 96 HTK mel bands 0-22,050 Hz, each filter normalised to
unit sum; ``log10(10000 S + 1) / 9.457798957824707`` (the package's "original" normalisation); blocks of 100 frames
(2.32 s) every 50 frames, the last partial block dropped, a clip shorter than one block zero-padded to 100 frames.

Network ("Cnn_9layers", DCASE 2018 cross-task): four blocks of [conv 3x3 -> BN -> ReLU] x 2, max-pool 2x2 after
blocks 1-3; embedding = mean over frequency, then max over time of block 4 (512-d, per spectrogram block). The
classification heads (nine sound-effect libraries, no class names shipped) are not used.

Layers: ``block{B}.conv{1,2}`` (post-ReLU, before pooling; time = blocks x frames in the block, features = channels x
mel positions = 6144 for every layer) and ``embedding`` (time = blocks).

The checkpoint is a pickle holding numpy scalars: it is read only when its sha256 matches :data:`CHECKPOINT_SHA256`,
and then with ``torch.load(weights_only=True)`` and only numpy's scalar/dtype types allowed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.models.base import FrameGrid, TorchAudioModel
from brainlike.models.zoo import init_module, register_zoo_model

NAME = "aisfx"
SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 1024
N_MELS = 96
SPEC_MAX = 9.457798957824707
BLOCK = 100
BLOCK_HOP = 50
CHECKPOINT_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
"""sha256 of ``aisfx/models/checkpoint.pth`` inside aisfx-0.1.2 (checked before unpickling)."""

CHANNELS = [64, 128, 256, 512]
LAYERS = [f"block{b}.conv{c}" for b in range(1, 5) for c in (1, 2)] + ["embedding"]


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """96 HTK-scale triangular filters on the 2048-point rfft grid at 44.1 kHz, each summing to 1: (96, 1025)."""
    from brainlike.models.baselines import mel_filterbank

    filters = np.array(mel_filterbank(N_MELS, N_FFT, SAMPLE_RATE, 0.0, SAMPLE_RATE / 2), dtype=np.float64)
    return (filters / filters.sum(axis=1, keepdims=True)).astype(np.float32)


def spectrogram(waveforms: Any) -> Any:
    """(batch, samples) waveforms -> normalised log-mel (batch, frames, 96), ``frames = 1 + samples // 1024``."""
    import torch

    peak = waveforms.abs().amax(dim=-1, keepdim=True)
    y = waveforms / torch.where(peak > 0, peak, torch.ones_like(peak))
    window = torch.hann_window(N_FFT, periodic=True, dtype=y.dtype, device=y.device)
    stft = torch.stft(y, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    power = stft.real**2 + stft.imag**2
    mel = torch.matmul(torch.as_tensor(mel_filters(), device=y.device), power)
    return (torch.log10(mel * 10000.0 + 1.0) / SPEC_MAX).transpose(1, 2)


def blocks(spec: Any) -> Any:
    """Cut (batch, frames, 96) into (batch, n_blocks, 100, 96): hop 50, partial last block dropped, zero-padded."""
    import torch

    frames = spec.shape[1]
    n_blocks = max(1, (frames - BLOCK) // BLOCK_HOP + 1) if frames >= BLOCK else 1
    needed = (n_blocks - 1) * BLOCK_HOP + BLOCK
    if frames < needed:
        spec = torch.nn.functional.pad(spec, (0, 0, 0, needed - frames))
    return spec.unfold(1, BLOCK, BLOCK_HOP)[:, :n_blocks].transpose(2, 3)


def _build_network() -> Any:
    """The aiSFX embedding CNN as an ``nn.Module`` (names match the checkpoint's ``embedding_net.*``)."""
    import torch
    from torch import nn

    class ConvBlock(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.bn2 = nn.BatchNorm2d(cout)

    class EmbeddingNet(nn.Module):
        """(n, 100, 96) spectrogram blocks -> {layer: (n, C, T, F) maps, "embedding": (n, 512)}."""

        def __init__(self) -> None:
            super().__init__()
            cins = [1] + CHANNELS[:-1]
            for b, (cin, cout) in enumerate(zip(cins, CHANNELS), start=1):
                setattr(self, f"conv_block{b}", ConvBlock(cin, cout))

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            x = x[:, None]
            out: dict[str, torch.Tensor] = {}
            for b in range(1, 5):
                block = getattr(self, f"conv_block{b}")
                x = torch.relu(block.bn1(block.conv1(x)))
                out[f"block{b}.conv1"] = x
                x = torch.relu(block.bn2(block.conv2(x)))
                out[f"block{b}.conv2"] = x
                if b < 4:
                    x = nn.functional.max_pool2d(x, 2)
            out["embedding"] = x.mean(dim=3).amax(dim=2)
            return out

    return EmbeddingNet()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """State dict of the embedding network from ``checkpoint.pth`` (pinned sha256, restricted unpickling)."""
    import torch

    from brainlike.models.zoo.store import verify_file

    try:  # numpy >= 2
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar

    verify_file(path, CHECKPOINT_SHA256)
    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype("int64"))]
    with torch.serialization.safe_globals(allowed):
        state, _heads = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


class AisfxModel(TorchAudioModel):
    """aiSFX embedding CNN as a brainlike model at 44.1 kHz.

    Parameters
    ----------
    weights : path, optional
        ``checkpoint.pth``; None builds the random-init twin (seed 0).
    weights_id : str, optional
        sha256 of ``weights`` (defaults to the pinned value, which loading verifies).
    """

    sample_rate = SAMPLE_RATE
    layers = list(LAYERS)
    adapter_version = 1
    preprocessing = {"frontend": "librosa-htk-mel96", "n_fft": N_FFT, "hop": HOP, "block": BLOCK,
                     "block_hop": BLOCK_HOP, "peak_normalise": True}
    batch_size = 4
    causal = False
    frame_edge_s = 1.5  # 2.32 s blocks every 1.16 s
    # Peak normalisation needs no override for frames: silence does not change a clip's peak.

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        init_module(self, NAME, _build_network, weights, weights_id, load_checkpoint, lambda: CHECKPOINT_SHA256)

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        chunks = blocks(spectrogram(waveforms))
        batch, n_blocks = chunks.shape[:2]
        out = self.module(chunks.reshape(batch * n_blocks, BLOCK, N_MELS))
        result = {"embedding": out.pop("embedding").reshape(batch, n_blocks, -1)}
        for layer, maps in out.items():
            _, channels, frames, freqs = maps.shape
            maps = maps.reshape(batch, n_blocks, channels, frames, freqs).permute(0, 1, 3, 2, 4)
            result[layer] = maps.reshape(batch, n_blocks * frames, channels * freqs)
        return result

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Centred STFT frames every 1024 samples; blocks of 100 frames every 50; in block B (pooled 2 x 2 after
        blocks 1-3) row t covers frames ``t P ... t P + P - 1`` of its block (``P = 2^(B-1)``); ``embedding``: the
        block centre. Blocks overlap, so times repeat (the binning averages frames sharing a bin)."""
        frames = FrameGrid(0.0, HOP)
        if layer == "embedding":
            return frames.blocks(BLOCK, BLOCK_HOP).times(n_frames, self.sample_rate)
        pool = 2 ** (int(layer[5]) - 1)
        rows = BLOCK
        for _ in range(int(layer[5]) - 1):
            rows //= 2
        n_blocks = n_frames // rows
        block_starts = frames.hop * BLOCK_HOP * np.arange(n_blocks)
        within = frames.conv(pool, pool).times(rows, 1.0)
        return (block_starts[:, None] + within[None, :]).ravel() / self.sample_rate


register_zoo_model(NAME, AisfxModel, "aiSFX sound-effects CNN (8 conv + 512-d embedding, 4.7 M params), 44.1 kHz, 96-band log-mel",
                   {"licence": "CC BY 4.0 (weights)", "distribution": "aisfx==0.1.2"})
