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
from brainlike.models.base import FrameGrid, TorchAudioModel
from brainlike.models.zoo import init_module, register_zoo_model

__all__ = ["NAME", "SAMPLE_RATE", "N_FFT", "HOP", "N_MELS", "SEGMENT", "LAYERS", "CHANNELS", "POOL_AFTER",
           "mel_filters", "mel_power", "log_mel", "load_state", "DnsmosP808Model", "P835_LAYERS", "P835_CHANNELS",
           "P835_POOL_AFTER", "P835_POLYNOMIALS", "frames_320", "load_p835_state", "repeated_segments",
           "DnsmosP835Model"]

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
    from brainlike.models.mel import slaney_mel_filterbank as slaney_filters

    return slaney_filters(SAMPLE_RATE, N_FFT, N_MELS)


def mel_power(waveforms: Any) -> Any:
    """(batch, samples) -> power mel spectrogram (batch, 120, 1 + samples // 160), centred STFT frames."""
    from brainlike.models import mel

    return mel.mel_power(waveforms, mel_filters(), N_FFT, HOP)


def log_mel(waveforms: Any, peak: Any = None) -> Any:
    """(batch, samples) -> DNSMOS P.808 input (batch, 1 + samples // 160, 120).

    ``peak`` (batch, 1, 1): the mel power the dB scale is relative to (default: the clip's own maximum).
    """
    import torch

    mel = mel_power(waveforms)
    peak = mel.amax(dim=(1, 2), keepdim=True) if peak is None else peak
    db = 10 * torch.log10(mel.clamp_min(1e-10))
    ref = 10 * torch.log10(peak.clamp_min(1e-10))
    db = torch.maximum(db - ref, torch.full_like(db, -80.0))
    return ((db + 40) / 40).transpose(1, 2)


def _build_network() -> Any:
    from brainlike.models.nets.dnsmos import P808

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
    causal = False  # centred 20 ms STFT frames, centred 3 x 3 convolutions, dB relative to the clip's maximum
    clip_level_layers = ("dense1", "dense2")  # after global max pooling
    frames_version = 2

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        init_module(self, NAME, _build_network, weights, weights_id, load_state)

    def forward_torch(self, waveforms: Any, peak: Any = None) -> Mapping[str, Any]:
        raw = self.module(log_mel(waveforms, peak))
        out = {layer: raw[layer] for layer in ("dense1", "dense2")}
        for i in range(1, 6):
            value = raw[f"conv{i}"]  # (batch, channels, time, mels)
            out[f"conv{i}"] = value.permute(0, 2, 1, 3).flatten(2)
        return out

    def forward_padded(self, waveforms: np.ndarray, sound: slice) -> Mapping[str, Any]:
        """Sounds in silence, in dB relative to the maximum mel power of the sound alone (the silence sits at the
        -80 dB floor either way)."""
        return self.torch_call(lambda batch: self.forward_torch(
            batch, mel_power(batch[:, sound]).amax(dim=(1, 2), keepdim=True)), waveforms)

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Mel frame f is centred on sample 160 f (centred STFT); the 3 x 3 convolutions (padding 1) keep the grid
        and each 2 x 2 max pooling (after conv1, conv2 and conv4; the layers are taken after it) puts step j
        between the two frames it reads."""
        grid = FrameGrid(0.0, HOP)
        for i in range(1, int(layer[4]) + 1):
            grid = grid.conv(2, 2) if i in POOL_AFTER else grid
        return grid.times(n_frames, self.sample_rate)

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
    from brainlike.models.nets.dnsmos import P835

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
    causal = False  # the 3 x 3 convolutions read the next frame (``logpow`` alone is frame-local: layer_causal)
    clip_level_layers = ("dense1", "dense2", "scores")  # after global max pooling
    frames_version = 2
    # No per-sound normalisation (a learned projection and log power frame by frame): no forward_padded override.

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        init_module(self, "dnsmos-p835", _build_p835, weights, weights_id, load_p835_state)

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        raw = self.module(frames_320(waveforms))
        out = {layer: raw[layer] for layer in ("logpow", "dense1", "dense2", "scores")}
        for i in range(1, 8):
            out[f"conv{i}"] = raw[f"conv{i}"].permute(0, 2, 1, 3).flatten(2)
        return out

    def layer_causal(self, layer: str) -> bool:
        """``logpow``: each frame reads its own 20 ms (10 ms after its centre); the convolutions read ahead."""
        return layer == "logpow"

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Frame t reads samples 160 t ... 160 t + 319: centre 160 t + 159.5; the 3 x 3 convolutions (padding 1)
        keep the grid; conv5, conv6, conv7 follow one, two, three 2 x 2 max poolings (after conv4, conv5, conv6),
        each putting step j between the two steps it reads."""
        grid = FrameGrid().conv(2 * HOP, HOP)
        for i in sorted(P835_POOL_AFTER):
            grid = grid.conv(2, 2) if layer != "logpow" and i < int(layer[4]) else grid
        return grid.times(n_frames, self.sample_rate)

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
