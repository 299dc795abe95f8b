"""The model protocol every audio model follows.

A model has a ``name``, a ``sample_rate`` (Hz), ordered ``layers`` and is called on a float32 waveform batch
``(batch, samples)`` at that rate, returning ``{layer: (batch, time, features)}``. Calls are deterministic, in eval
mode and without gradients. ``weights_id`` (the sha256 of the weights, or ``random:<seed>``), ``adapter_version``
(bumped whenever the adapter's output changes) and ``preprocessing`` (parameters that change the output) form part
of every cache key.

Frames (time-resolved analyses): every model says whether it has a time axis (``time_resolved``), which layers have
one step per clip (``clip_level_layers``), whether it is causal (``causal``, per layer :meth:`AudioModel.layer_causal`)
and when each output frame happens (:meth:`AudioModel.frame_times`: the centre of frame k in seconds from the START
of the input waveform). The base class places frames evenly over the input; adapters whose hop and padding are known
override it, most through :class:`FrameGrid`. :meth:`AudioModel.forward_padded` runs the model on a sound embedded in
silence with any per-sound normalisation computed on the sound alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from brainlike.errors import ModelError


class AudioModel(ABC):
    """Base class for brainlike models.

    Subclasses set the class or instance attributes below and implement :meth:`forward`.

    Attributes
    ----------
    name : str
        The model spec string this instance was built from (e.g. ``"melspec"``, ``"whisper-base@random"``).
    sample_rate : int
        Sample rate (Hz) the model expects its waveforms at.
    layers : list of str
        Ordered, unique layer names, from input side to output side.
    adapter_version : int
        Bumped whenever the adapter's output for the same weights changes (part of the cache key).
    weights_id : str
        sha256 of the weights file(s), ``"random:<seed>"`` for random-init models, ``"none"`` for parameter-free ones.
    preprocessing : dict
        JSON-serialisable parameters that change the output (hop, padding...), part of the cache key.
    batch_size : int
        How many clips the extractor should pass per call (a memory/speed hint).
    time_resolved : bool
        False for a model without a time axis (e.g. ``spectrotemporal``, time-averaged by construction): it has no
        frames, and frame-level extraction is an error.
    causal : bool
        True when every output frame depends only on input up to the end of its own analysis window (a few tens of
        ms after its centre at most): frame-local front ends, causal convolutions, forward recurrences. Attention
        over the clip, bidirectional or centred convolution stacks and whole-clip filtering are not causal. A lag
        profile's latency is a neural latency only for causal models.
    clip_level_layers : tuple of str
        Layers with one step per clip (pooled embeddings, fully connected heads of a fixed-length input): left out
        of frame-level extraction (:meth:`forward_padded` need not return them).
    frame_edge_s : float
        Seconds of extra silence the frame extractor adds beyond the first and last bin, so that every bin lies
        between two frame centres (larger for models with long frames or patches).
    """

    name: str = ""
    sample_rate: int = 16000
    layers: list[str] = []
    adapter_version: int = 1
    weights_id: str = "none"
    preprocessing: dict[str, Any] = {}
    batch_size: int = 8
    time_resolved: bool = True
    causal: bool = False
    clip_level_layers: tuple[str, ...] = ()
    frame_edge_s: float = 0.5

    @abstractmethod
    def forward(self, waveforms: np.ndarray) -> Mapping[str, Any]:
        """Compute activations.

        Parameters
        ----------
        waveforms : ndarray, shape (batch, samples), float32
            Waveforms at ``self.sample_rate``.

        Returns
        -------
        dict
            ``{layer: array (batch, time, features)}`` (numpy arrays or torch tensors) for every name in ``layers``.
        """

    def __call__(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        waveforms = self._check_batch(waveforms)
        return self._collect(self.forward(waveforms), len(waveforms))

    def run_padded(self, waveforms: np.ndarray, sound: slice) -> dict[str, np.ndarray]:
        """:meth:`forward_padded` with the checks of ``__call__``: ``{layer: float32 (batch, frames, features)}``."""
        waveforms = self._check_batch(waveforms)
        outputs = self.forward_padded(waveforms, sound)
        timed = [layer for layer in self.layers if layer not in self.clip_level_layers]
        return self._collect(outputs, len(waveforms), timed)

    def forward_padded(self, waveforms: np.ndarray, sound: slice) -> Mapping[str, Any]:
        """Activations of sounds embedded in silence (frame-level extraction).

        Parameters
        ----------
        waveforms : ndarray, shape (batch, samples), float32
            Each row: silence, the sound (``waveforms[:, sound]``), silence.
        sound : slice
            Where the sounds lie (the same samples for every row of the batch).

        Any per-sound normalisation of the model (RMS, peak, mean/variance) must be computed on ``waveforms[:,
        sound]`` alone and applied to the whole row; models that normalise override this method. The default runs
        :meth:`forward` unchanged (right for models without per-sound normalisation).
        """
        return self.forward(waveforms)

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Centre time (s) of each output frame of ``layer`` from the START of an input of ``n_samples`` samples.

        Default: ``n_frames`` frames evenly spanning the input, frame k centred at ``(k + 0.5) * duration /
        n_frames``. Adapters override this where their hop, window and padding are known.
        """
        duration = n_samples / float(self.sample_rate)
        return (np.arange(n_frames, dtype=np.float64) + 0.5) * (duration / max(n_frames, 1))

    def layer_causal(self, layer: str) -> bool:
        """Whether ``layer``'s frames are causal (default: the model's ``causal``)."""
        return bool(self.causal)

    def _check_batch(self, waveforms: np.ndarray) -> np.ndarray:
        waveforms = np.asarray(waveforms, dtype=np.float32)
        if waveforms.ndim == 1:
            waveforms = waveforms[None, :]
        if waveforms.ndim != 2:
            raise ModelError(f"{self.name}: waveforms must be (batch, samples), got shape {waveforms.shape}")
        return waveforms

    def _collect(self, outputs: Mapping[str, Any], batch: int,
                 layers: list[str] | None = None) -> dict[str, np.ndarray]:
        activations: dict[str, np.ndarray] = {}
        for layer in self.layers if layers is None else layers:
            if layer not in outputs:
                raise ModelError(f"{self.name}: forward() did not return layer {layer!r}")
            activations[layer] = _to_numpy(outputs[layer], self.name, layer, batch)
        return activations

    def describe(self) -> dict[str, Any]:
        """Provenance of this model (name, rate, layers, versions, weights)."""
        return {
            "name": self.name,
            "class": type(self).__name__,
            "sample_rate": self.sample_rate,
            "layers": list(self.layers),
            "adapter_version": self.adapter_version,
            "weights_id": self.weights_id,
            "preprocessing": dict(self.preprocessing),
            "time_resolved": bool(self.time_resolved),
            "causal": bool(self.causal),
        }


@dataclass(frozen=True)
class FrameGrid:
    """Evenly spaced frames: frame k is centred on input sample ``offset + k * hop`` (fractions allowed).

    ``FrameGrid()`` is the sample grid itself (sample i at time i / rate). :meth:`conv` follows one convolution or
    pooling stage: output j reads inputs ``j * stride - padding ... j * stride - padding + kernel - 1``, so its
    centre is input ``j * stride - padding + (kernel - 1) / 2``. Example: a centred STFT with hop 160 is
    ``FrameGrid(0, 160)``; a non-centred 400-sample window every 160 samples is ``FrameGrid().conv(400, 160)``.
    """

    offset: float = 0.0
    hop: float = 1.0

    def conv(self, kernel: int, stride: int = 1, padding: float = 0) -> "FrameGrid":
        """The grid after a convolution / pooling stage (kernel, stride, left padding) along time."""
        return FrameGrid(self.offset + self.hop * ((kernel - 1) / 2 - padding), self.hop * stride)

    def blocks(self, size: int, step: int) -> "FrameGrid":
        """The grid of blocks of ``size`` frames taken every ``step`` frames (their centres)."""
        return self.conv(size, step)

    def times(self, n_frames: int, sample_rate: float) -> np.ndarray:
        """Centre times (s) of the first ``n_frames`` frames."""
        return (self.offset + self.hop * np.arange(n_frames, dtype=np.float64)) / float(sample_rate)


def _to_numpy(value: Any, model: str, layer: str, batch: int) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().to("cpu").float().numpy()
    array = np.asarray(value, dtype=np.float32)
    if array.ndim == 2:  # (batch, features): a single time step
        array = array[:, None, :]
    if array.ndim != 3 or array.shape[0] != batch:
        raise ModelError(
            f"{model}: layer {layer!r} has shape {array.shape}; expected (batch={batch}, time, features)"
        )
    return array


class TorchAudioModel(AudioModel):
    """An :class:`AudioModel` around a ``torch.nn.Module``: eval mode, no gradients, chosen device.

    Subclasses set ``self.module`` and implement :meth:`forward_torch` taking a float32 tensor (batch, samples)
    on ``self.device`` and returning ``{layer: tensor (batch, time, features)}``.
    """

    device: str = "cpu"

    def to(self, device: str) -> "TorchAudioModel":
        self.device = device
        self.module.to(device)
        return self

    @abstractmethod
    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        """Torch forward pass on (batch, samples) -> {layer: (batch, time, features)}."""

    def forward(self, waveforms: np.ndarray) -> Mapping[str, Any]:
        import torch

        self.module.eval()
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(waveforms)).to(self.device)
            return self.forward_torch(batch)


def seed_everything_for_init(seed: int) -> Any:
    """Return a ``torch.Generator`` seeded for random-init twins and set torch's global seed (used by ``nn`` init)."""
    import torch

    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


RANDOM_SEED = 0
"""Seed used for every ``NAME@random`` twin (recorded as ``weights_id = "random:0"``)."""
