"""DNSMOS P.808 speech-quality CNN (Reddy et al. 2021), weights from ``model_v8.onnx`` in speechmos 0.0.1.1, run as
a torch module written here.

Front end (speechmos ``dnsmos.py``): 16 kHz; librosa power mel spectrogram with n_fft 321, hop 160, periodic Hann,
centred with zero padding, 120 Slaney mel bands (Slaney norm, 0-8 kHz); ``(power_to_db(mel, ref=max) + 40) / 40``
(10 log10 relative to the clip's maximum, floored 80 dB below it); input (time, 120).

Network (keras2onnx graph): five 3x3 convs of 32, 32, 32, 32, 64 filters with ReLU ("same" padding), 2x2 max pooling
after the first, second and fourth; global max pooling; dense 64 + ReLU, 64 + ReLU, 1 (the P.808 MOS).

speechmos scores 9.01 s segments (short clips are repeated until they are that long; the last 160 samples of a
segment are dropped); :func:`p808_mos` does the same. The brainlike model runs on the clip as it is: ``conv1``-
``conv5`` (features = channels x mel bins, channel-major; time = frames after pooling), ``dense1``, ``dense2``,
``mos`` (one step per clip).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.errors import ModelError
from brainlike.models.base import TorchAudioModel
from brainlike.models.zoo import init_module, register_zoo_model

NAME = "dnsmos-p808"
SAMPLE_RATE = 16000
N_FFT = 321
HOP = 160
N_MELS = 120
SEGMENT = 144160  # 9.01 s
LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5", "dense1", "dense2", "mos"]
CHANNELS = [(1, 32), (32, 32), (32, 32), (32, 32), (32, 64)]
POOL_AFTER = {1, 2, 4}
_DENSE = "mos_estimator_small_1/dense_{}/{}/ReadVariableOp/resource:0"


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """120 Slaney mel filters (Slaney norm, 0-8 kHz) on the 321-point rfft grid: (120, 161)."""
    from brainlike.models.zoo.whisper import mel_filters as slaney_filters

    return slaney_filters(SAMPLE_RATE, N_FFT, N_MELS)


def log_mel(waveforms: Any) -> Any:
    """(batch, samples) -> DNSMOS P.808 input (batch, 1 + samples // 160, 120)."""
    import torch

    window = torch.hann_window(N_FFT, periodic=True, dtype=waveforms.dtype, device=waveforms.device)
    spec = torch.stft(waveforms, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    mel = torch.matmul(torch.as_tensor(mel_filters(), device=waveforms.device), spec.real**2 + spec.imag**2)
    db = 10 * torch.log10(mel.clamp_min(1e-10))
    ref = 10 * torch.log10(mel.amax(dim=(1, 2), keepdim=True).clamp_min(1e-10))
    db = torch.maximum(db - ref, torch.full_like(db, -80.0))
    return ((db + 40) / 40).transpose(1, 2)


def _build_network() -> Any:
    import torch
    from torch import nn

    class P808(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv2d(cin, cout, 3, padding=1) for cin, cout in CHANNELS])
            self.dense1, self.dense2, self.dense3 = nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 1)

        def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
            out, x = {}, mel[:, None]
            for i, conv in enumerate(self.convs, start=1):
                x = torch.relu(conv(x))
                if i in POOL_AFTER:
                    x = nn.functional.max_pool2d(x, 2)
                out[f"conv{i}"] = x
            out["dense1"] = torch.relu(self.dense1(x.amax(dim=(2, 3))))
            out["dense2"] = torch.relu(self.dense2(out["dense1"]))
            out["mos"] = self.dense3(out["dense2"])
            return out

    return P808()


def load_state(path: Path) -> dict[str, Any]:
    """State dict from ``model_v8.onnx``'s initialisers (conv kernels are already (out, in, kh, kw))."""
    import onnx
    import torch
    from onnx import numpy_helper

    tensors = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    state = {}
    try:
        for i in range(5):
            state[f"convs.{i}.weight"] = tensors[f"conv2d_{5 + i}/kernel:0"]
            state[f"convs.{i}.bias"] = tensors[f"conv2d_{5 + i}/bias:0"]
        for i in range(3):
            state[f"dense{i + 1}.weight"] = tensors[_DENSE.format(3 + i, "MatMul")].T
            state[f"dense{i + 1}.bias"] = tensors[_DENSE.format(3 + i, "BiasAdd")]
    except KeyError as missing:
        raise ModelError(f"{path}: the ONNX graph lacks initialiser {missing}") from None
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}


class DnsmosP808Model(TorchAudioModel):
    """DNSMOS P.808 as a brainlike model (16 kHz).

    Parameters
    ----------
    weights : path, optional
        ``model_v8.onnx``; None builds the random-init twin (seed 0).
    weights_id : str, optional
        sha256 of ``weights`` (computed when not given).
    """

    sample_rate = SAMPLE_RATE
    layers = list(LAYERS)
    adapter_version = 1
    preprocessing = {"mel": "slaney120-power-db-ref-max", "n_fft": N_FFT, "hop": HOP, "segment": None}
    batch_size = 8
    hop_seconds = {f"conv{i}": HOP / SAMPLE_RATE * p for i, p in zip(range(1, 6), (2, 4, 4, 8, 8))}

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        from brainlike.models.zoo.store import sha256_file

        init_module(self, NAME, _build_network, weights, weights_id, load_state, lambda: sha256_file(weights))

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        raw = self.module(log_mel(waveforms))
        out = {layer: raw[layer] for layer in ("dense1", "dense2", "mos")}
        for i in range(1, 6):
            value = raw[f"conv{i}"]  # (batch, channels, time, mels)
            out[f"conv{i}"] = value.permute(0, 2, 1, 3).flatten(2)
        return out

    def p808_mos(self, waveform: np.ndarray) -> float:
        """speechmos's P.808 MOS of a 16 kHz clip: repeated to >= 9.01 s, 9.01 s segments every 1 s, mean."""
        import torch

        audio = np.asarray(waveform, dtype=np.float32)
        while len(audio) < SEGMENT:
            audio = np.append(audio, audio)
        n_segments = int(np.floor(len(audio) / SAMPLE_RATE) - SEGMENT / SAMPLE_RATE) + 1
        segments = np.stack([audio[i * SAMPLE_RATE : i * SAMPLE_RATE + SEGMENT][:-HOP] for i in range(n_segments)
                             if i * SAMPLE_RATE + SEGMENT <= len(audio)])
        with torch.inference_mode():
            mos = self.module(log_mel(torch.from_numpy(segments)))["mos"]
        return float(mos.mean())


register_zoo_model(NAME, DnsmosP808Model,
                   "DNSMOS P.808 speech-quality CNN (5 conv + 3 dense, 55 k params), DNS Challenge ratings, 16 kHz",
                   {"licence": "MIT", "distribution": "speechmos==0.0.1.1"})
