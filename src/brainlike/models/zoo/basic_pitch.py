"""Basic Pitch (Spotify's polyphonic transcription CNN) from the ONNX file in ``basic-pitch`` 0.4.0, in onnxruntime.

The graph holds the whole model: a constant-Q transform (hop 256 at 22.05 kHz, 309 bins from 27.5 Hz), a
normalised log, a batch-norm, harmonic stacking and three small convolutional heads (contour, note, onset).
Intermediate tensors are added as graph outputs (in memory). The model takes windows of 43,844 samples; longer
clips are cut as the package does (3,840 zeros prepended, hop 36,164, 15 frames dropped at each window edge, trimmed
to ``floor(N * 172 / 43844)`` frames at 86 frames per second, at least one).

Layers (time = frames; features = channels x bins): ``log_cqt`` (309), ``harmonic_stack`` (8 x 264, after the
learned batch-norm), ``contour_hidden`` (8 x 264), ``contour`` (264), ``note_hidden`` (32 x 88), ``note`` (88,
MIDI 21-108), ``onset_hidden`` (32 x 88), ``onset`` (88).

``basic-pitch@random`` is the same graph with its learned parameters (the six convolutions, Glorot-uniform as Keras
initialises them, zero biases; the batch-norm reset to identity) drawn with seed 0; the fixed CQT kernels are kept.
It needs the installed file for the graph.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from brainlike.errors import ModelError
from brainlike.models.base import RANDOM_SEED, AudioModel
from brainlike.models.registry import ModelEntry, register_model
from brainlike.models.zoo import store
from brainlike.models.zoo.onnx_tools import consumers, glorot_uniform, initializer, replace_initializers, tapped_session

SAMPLE_RATE = 22050
WINDOW = 43844  # 2 s * 22050 - 256
FRAMES_PER_WINDOW = 172
OVERLAP_FRAMES = 30
PREPEND = OVERLAP_FRAMES * 256 // 2  # 3,840 samples
HOP = WINDOW - OVERLAP_FRAMES * 256  # 36,164 samples
CQT_HOP = 256
INPUT = "serving_default_input_2:0"
NOTE_OUTPUT = "StatefulPartitionedCall:1"
_CONV = "model_1/re_lu_3/Relu;model_1/re_lu_3/Relu;model_1/batch_normalization_3/FusedBatchNormV3;" \
        "model_1/batch_normalization_3/FusedBatchNormV3;model_1/conv2d_4/BiasAdd/ReadVariableOp;" \
        "model_1/conv2d_4/BiasAdd/ReadVariableOp;model_1/conv2d_4/BiasAdd;model_1/conv2d_4/BiasAdd;" \
        "model_1/conv2d_2/Conv2D;model_1/conv2d_2/Conv2D;model_1/conv2d_4/Conv2D;model_1/conv2d_4/Conv2D1__376:0"
TAPS = {
    "log_cqt": "model_1/normalized_log_1/Reshape_2;model_1/normalized_log_1/Reshape_2",
    "harmonic_stack": _CONV,
    "contour_hidden": "Relu__38:0",
    "contour": "model_1/contours-reduced/Sigmoid;model_1/contours-reduced/Sigmoid",
    "note_hidden": "Relu__42:0",
    "note": "model_1/conv2d_3/Sigmoid;model_1/conv2d_3/Sigmoid",
    "onset_hidden": "Relu__35:0",
    "onset": "model_1/conv2d_5/Sigmoid;model_1/conv2d_5/Sigmoid",
}
_BATCHNORM = ("model_1/batch_normalization/FusedBatchNormV3;model_1/batch_normalization/FusedBatchNormV3",
              "model_1/batch_normalization/FusedBatchNormV3;model_1/batch_normalization/FusedBatchNormV31")


def windows(waveform: np.ndarray) -> np.ndarray:
    """Cut a 22.05 kHz clip into the model's overlapping input windows, (n_windows, 43844) float32."""
    padded = np.concatenate([np.zeros(PREPEND, np.float32), np.asarray(waveform, np.float32)])
    starts = range(0, len(padded), HOP)
    out = np.zeros((len(starts), WINDOW), np.float32)
    for i, start in enumerate(starts):
        piece = padded[start: start + WINDOW]
        out[i, : len(piece)] = piece
    return out


def unwrap(frames: np.ndarray, n_samples: int) -> np.ndarray:
    """Join per-window outputs (n_windows, 172, F) into (n_frames, F) as the package does."""
    edge = OVERLAP_FRAMES // 2
    joined = frames[:, edge: FRAMES_PER_WINDOW - edge].reshape(-1, frames.shape[-1])
    return joined[: max(1, int(np.floor(n_samples * FRAMES_PER_WINDOW / WINDOW)))]


def _time_features(array: np.ndarray) -> np.ndarray:
    """(W, C, T, F) -> (W, T, C*F); (W, T, F) unchanged."""
    if array.ndim == 4:
        w, c, t, f = array.shape
        return array.transpose(0, 2, 1, 3).reshape(w, t, c * f)
    return array


def randomised_graph(model: Any, seed: int = RANDOM_SEED) -> Any:
    """The same graph with its learned parameters re-drawn (see module docs); the CQT kernels are kept."""
    rng = np.random.default_rng(seed)
    readers = consumers(model)
    values: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or "cq_t2010v2" in node.name:
            continue
        weight, bias = node.input[1], node.input[2]
        for name in (weight, bias):
            if len(readers.get(name, [])) != 1:
                raise ModelError(f"basic-pitch: learned parameter {name!r} is shared; cannot re-initialise")
        values[weight] = glorot_uniform(initializer(model, weight).shape, rng)
        values[bias] = np.zeros_like(initializer(model, bias))
    if len(values) != 12:
        raise ModelError(f"basic-pitch: expected 6 learned convolutions, found {len(values) // 2}")
    scale, shift = _BATCHNORM
    values[scale] = np.ones_like(initializer(model, scale))
    values[shift] = np.zeros_like(initializer(model, shift))
    return replace_initializers(model, values)


class BasicPitchModel(AudioModel):
    """Basic Pitch as a brainlike model (onnxruntime), pretrained or with re-drawn learned parameters."""

    adapter_version = 1
    batch_size = 8
    causal = False

    def __init__(self, random: bool = False) -> None:
        import onnx

        self.name = "basic-pitch@random" if random else "basic-pitch"
        self.sample_rate = SAMPLE_RATE
        self.layers = list(TAPS)
        self.preprocessing = {"sample_rate": SAMPLE_RATE, "window": WINDOW, "hop": HOP, "prepend": PREPEND,
                              "edge_frames": OVERLAP_FRAMES // 2, "layout": "time=frame, features=channel*bin"}
        model = onnx.load(str(store.weights_path("basic-pitch")))
        if random:
            model = randomised_graph(model, RANDOM_SEED)
            self.weights_id = f"random:{RANDOM_SEED}"
        else:
            self.weights_id = store.weights_sha256("basic-pitch")
        self._session = tapped_session(model, list(TAPS.values()))

    def forward(self, waveforms: np.ndarray) -> Mapping[str, Any]:
        n = waveforms.shape[1]
        per_clip = [windows(w) for w in waveforms]
        stacked = np.concatenate(per_clip)[:, :, None]
        outs = self._session.run(list(TAPS.values()), {INPUT: stacked})
        n_win = len(per_clip[0])
        result = {}
        for layer, raw in zip(TAPS, outs):
            frames = _time_features(raw)
            result[layer] = np.stack([unwrap(frames[i * n_win: (i + 1) * n_win], n) for i in range(len(waveforms))])
        return result

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Window w starts at sample ``36164 w - 3840`` of the clip; its CQT frame f (centred, hop 256) sits at
        ``start + 256 f``; frames 15 ... 156 of each window are kept, so joined frame k = 142 w + j is centred on
        sample ``36164 w + 256 j`` (the package's windows overlap by 188 samples more than the frames they keep).
        Every layer keeps the CQT's frames."""
        kept = FRAMES_PER_WINDOW - OVERLAP_FRAMES
        k = np.arange(n_frames)
        return ((k // kept) * HOP + (k % kept) * CQT_HOP) / float(self.sample_rate)


def _available() -> str | None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return "needs onnx and onnxruntime: pip install 'brainlike[zoo]'"
    return store.available_reason("basic-pitch")


register_model(ModelEntry(
    name="basic-pitch",
    build=lambda random: BasicPitchModel(random),
    family="zoo",
    description="Basic Pitch transcription CNN (Spotify; CQT + harmonic stacking), ONNX; twin needs the file",
    available=_available,
    metadata={"licence": store.item("basic-pitch").licence, "source": "basic-pitch 0.4.0 nmp.onnx"},
))
