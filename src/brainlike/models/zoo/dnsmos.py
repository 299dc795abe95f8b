"""DNSMOS speech-quality CNNs (Reddy et al. 2021, 2022) from speechmos 0.0.1.1, run as torch modules written here
with the weights of the ONNX files' initialisers: ``dnsmos-p808`` (``model_v8.onnx``, P.808 MOS from a log-mel) and
``dnsmos-p835`` (``sig_bak_ovr.onnx``, P.835 SIG/BAK/OVR from a learned log-power STFT).

DNSMOS P.808 (``dnsmos-p808``).

Front end (speechmos ``dnsmos.py``): 16 kHz; librosa power mel spectrogram with n_fft 321, hop 160, periodic Hann,
centred with zero padding, 120 Slaney mel bands (Slaney norm, 0-8 kHz); ``(power_to_db(mel, ref=max) + 40) / 40``
(10 log10 relative to the clip's maximum, floored 80 dB below it); input (time, 120).

Network (keras2onnx graph): five 3x3 convs of 32, 32, 32, 32, 64 filters with ReLU ("same" padding), 2x2 max pooling
after the first, second and fourth; global max pooling; dense 64 + ReLU, 64 + ReLU, 1 (the P.808 MOS).

speechmos scores 9.01 s segments (short clips are repeated until they are that long; the last 160 samples of a
segment are dropped); :func:`p808_mos` does the same. The brainlike model runs on the clip as it is: ``conv1``-
``conv5`` (features = channels x mel bins, channel-major; time = frames after pooling), ``dense1``, ``dense2`` (one
step per clip); the 1-d MOS itself is not a layer (one feature has no RSA structure): :meth:`p808_mos`.

DNSMOS P.835 (``dnsmos-p835``): frames of 320 samples every 160 (frame t = samples 160 t ... 160 t + 319, no padding;
``(N - 160) // 160`` frames), a *learned* real/imaginary projection to 161 bins (the graph's ``time2freq`` kernels,
not a DFT), ``log10(max(re^2 + im^2, 1e-12))``; seven 3x3 convs (128, 64, 64, 32, 32, 32, 64 filters, ReLU, "same"),
2x2 max pooling after the 4th, 5th and 6th; global max pooling; dense 128, 64 (ReLU) and 3 raw scores (SIG, BAK,
OVR; speechmos maps them through fixed polynomials: :data:`P835_POLYNOMIALS`). Layers: ``logpow`` (161), ``conv1``-
``conv7``, ``dense1``, ``dense2``, ``scores`` (3, raw).
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
LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5", "dense1", "dense2"]
"""The 1-d MOS output is not a layer (a single feature has no correlation structure for RSA); see :meth:`p808_mos`."""
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
        out = {layer: raw[layer] for layer in ("dense1", "dense2")}
        for i in range(1, 6):
            value = raw[f"conv{i}"]  # (batch, channels, time, mels)
            out[f"conv{i}"] = value.permute(0, 2, 1, 3).flatten(2)
        return out

    def p808_mos(self, waveform: np.ndarray) -> float:
        """speechmos's P.808 MOS of a 16 kHz clip: repeated to >= 9.01 s, 9.01 s segments every 1 s, mean."""
        import torch

        segments = repeated_segments(waveform)[:, :-HOP]
        with torch.inference_mode():
            mos = self.module(log_mel(torch.from_numpy(segments)))["mos"]
        return float(mos.mean())


P835_LAYERS = ["logpow"] + [f"conv{i}" for i in range(1, 8)] + ["dense1", "dense2", "scores"]
P835_CHANNELS = [(1, 128), (128, 64), (64, 64), (64, 32), (32, 32), (32, 32), (32, 64)]
P835_POOL_AFTER = {4, 5, 6}
P835_POLYNOMIALS = {"sig": (-0.08397278, 1.22083953, 0.0052439), "bak": (-0.13166888, 1.60915514, -0.39604546),
                    "ovr": (-0.06766283, 1.11546468, 0.04602535)}
"""speechmos's (non-personalised) quadratic maps from raw SIG/BAK/OVR to MOS, highest power first."""
_P835_DENSE = "mos_estimator_logpow/dense{}/{}/ReadVariableOp/resource:0"


def frames_320(waveforms: Any) -> Any:
    """(batch, samples) -> (batch, (samples - 160) // 160, 320) frames hopping by 160 (the P.835 graph's framing)."""
    n_frames = max(1, (waveforms.shape[-1] - HOP) // HOP)
    import torch

    needed = (n_frames + 1) * HOP
    waveforms = torch.nn.functional.pad(waveforms, (0, max(0, needed - waveforms.shape[-1])))
    return waveforms[:, :needed].unfold(-1, 2 * HOP, HOP)


def _build_p835() -> Any:
    import torch
    from torch import nn

    class P835(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stft_real = nn.Linear(2 * HOP, 161, bias=False)
            self.stft_imag = nn.Linear(2 * HOP, 161, bias=False)
            self.convs = nn.ModuleList([nn.Conv2d(cin, cout, 3, padding=1) for cin, cout in P835_CHANNELS])
            self.dense1, self.dense2, self.dense3 = nn.Linear(64, 128), nn.Linear(128, 64), nn.Linear(64, 3)

        def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
            power = self.stft_real(frames) ** 2 + self.stft_imag(frames) ** 2
            out = {"logpow": torch.log10(power.clamp_min(1e-12))}
            x = out["logpow"][:, None]
            for i, conv in enumerate(self.convs, start=1):
                x = out[f"conv{i}"] = torch.relu(conv(x))
                if i in P835_POOL_AFTER:
                    x = nn.functional.max_pool2d(x, 2)
            out["dense1"] = torch.relu(self.dense1(x.amax(dim=(2, 3))))
            out["dense2"] = torch.relu(self.dense2(out["dense1"]))
            out["scores"] = self.dense3(out["dense2"])
            return out

    return P835()


def load_p835_state(path: Path) -> dict[str, Any]:
    """State dict from ``sig_bak_ovr.onnx``'s initialisers."""
    import onnx
    import torch
    from onnx import numpy_helper

    tensors = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    state = {}
    try:
        state["stft_real.weight"] = tensors["time2freq/stft-real/kernel:0"][:, :, 0]
        state["stft_imag.weight"] = tensors["time2freq/stft-imag/kernel:0"][:, :, 0]
        for i in range(7):
            suffix = f"_{i}" if i else ""
            state[f"convs.{i}.weight"] = tensors[f"conv2d{suffix}/kernel:0"]
            state[f"convs.{i}.bias"] = tensors[f"conv2d{suffix}/bias:0"]
        for i, suffix in enumerate(("", "_1", "_3"), start=1):
            state[f"dense{i}.weight"] = tensors[_P835_DENSE.format(suffix, "MatMul")].T
            state[f"dense{i}.bias"] = tensors[_P835_DENSE.format(suffix, "BiasAdd")]
    except KeyError as missing:
        raise ModelError(f"{path}: the ONNX graph lacks initialiser {missing}") from None
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}


def repeated_segments(waveform: np.ndarray) -> np.ndarray:
    """speechmos's segments of a 16 kHz clip: repeated until >= 9.01 s, 9.01 s windows every 1 s, (n, 144160)."""
    audio = np.asarray(waveform, dtype=np.float32)
    while len(audio) < SEGMENT:
        audio = np.append(audio, audio)
    n_segments = int(np.floor(len(audio) / SAMPLE_RATE) - SEGMENT / SAMPLE_RATE) + 1
    return np.stack([audio[i * SAMPLE_RATE : i * SAMPLE_RATE + SEGMENT] for i in range(n_segments)
                     if i * SAMPLE_RATE + SEGMENT <= len(audio)])


class DnsmosP835Model(TorchAudioModel):
    """DNSMOS P.835 (SIG, BAK, OVR) as a brainlike model (16 kHz).

    Parameters
    ----------
    weights : path, optional
        ``sig_bak_ovr.onnx``; None builds the random-init twin (seed 0; the learned STFT kernels are random too).
    weights_id : str, optional
        sha256 of ``weights`` (computed when not given).
    """

    sample_rate = SAMPLE_RATE
    layers = list(P835_LAYERS)
    adapter_version = 1
    preprocessing = {"frames": "320/160 no padding", "features": "learned-stft-log10-power", "segment": None}
    batch_size = 4
    hop_seconds = {layer: HOP / SAMPLE_RATE * (1, 1, 1, 1, 1, 2, 4, 8)[i] for i, layer in enumerate(P835_LAYERS[:8])}

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        from brainlike.models.zoo.store import sha256_file

        init_module(self, "dnsmos-p835", _build_p835, weights, weights_id, load_p835_state,
                    lambda: sha256_file(weights))

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        raw = self.module(frames_320(waveforms))
        out = {layer: raw[layer] for layer in ("logpow", "dense1", "dense2", "scores")}
        for i in range(1, 8):
            out[f"conv{i}"] = raw[f"conv{i}"].permute(0, 2, 1, 3).flatten(2)
        return out

    def p835_mos(self, waveform: np.ndarray) -> dict[str, float]:
        """speechmos's SIG, BAK, OVR MOS of a 16 kHz clip (repeated 9.01 s segments, polynomial maps, mean)."""
        import torch

        with torch.inference_mode():
            raw = self.module(frames_320(torch.from_numpy(repeated_segments(waveform))))["scores"].double().numpy()
        return {key: float(np.polyval(P835_POLYNOMIALS[key], raw[:, k]).mean())
                for k, key in enumerate(("sig", "bak", "ovr"))}


register_zoo_model("dnsmos-p835", DnsmosP835Model,
                   "DNSMOS P.835 speech-quality CNN (learned STFT + 7 conv + 3 dense, 0.29 M params), DNS Challenge "
                   "ratings, 16 kHz", {"licence": "MIT", "distribution": "speechmos==0.0.1.1"})

register_zoo_model(NAME, DnsmosP808Model,
                   "DNSMOS P.808 speech-quality CNN (5 conv + 3 dense, 55 k params), DNS Challenge ratings, 16 kHz",
                   {"licence": "MIT", "distribution": "speechmos==0.0.1.1"})
