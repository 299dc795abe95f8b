"""Any brainlike model as a HEAR 2021 API module (https://hearbenchmark.com/hear-api.html).

This module *is* a HEAR module: ``load_model``, ``get_timestamp_embeddings`` and ``get_scene_embeddings``. The model
is chosen by the ``model_file_path`` argument of :func:`load_model` (which hear-eval-kit fills from ``--model``) or,
when that is empty, by the environment variable ``BRAINLIKE_HEAR_MODEL``. Its form is ``<model spec>[#<layer>]``,
e.g. ``whisper-base#blocks.3`` or ``hf:random/wav2vec2?preset=tiny#hidden_states.2``; without ``#<layer>`` the
model's last layer is used.

* timestamp embeddings: the layer's frames ``(n_sounds, n_frames, features)``; timestamps (ms) place the frames
  evenly over the clip, at their centres (``(i + 0.5) * duration / n_frames``), an approximation for layers whose
  frames do not tile the clip exactly;
* scene embeddings: the time average of the timestamp embeddings (what brainlike scores).

:func:`export_module` (command ``brainlike hear-export``) writes a small stand-alone module that fixes the spec and
layer, for tools that take a module name only, e.g. ``python -m heareval.embeddings.runner my_model``.
"""

from __future__ import annotations

import keyword
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainlike.errors import BrainlikeError
from brainlike.integrity import atomic_write
from brainlike.models.base import AudioModel

__all__ = ["ENV_MODEL", "LAYER_SEPARATOR", "split_target", "BrainlikeHearModel", "load_model",
           "get_timestamp_embeddings", "get_scene_embeddings", "export_module"]

ENV_MODEL = "BRAINLIKE_HEAR_MODEL"
LAYER_SEPARATOR = "#"
_PROBE_SECONDS = 1.0


def split_target(target: str) -> tuple[str, str | None]:
    """``"<spec>#<layer>"`` -> (spec, layer); (spec, None) without a layer."""
    spec, separator, layer = target.rpartition(LAYER_SEPARATOR)
    if not separator:
        return target.strip(), None
    if not spec.strip() or not layer.strip():
        raise BrainlikeError(f"HEAR model {target!r} must be '<model spec>#<layer>' or '<model spec>'")
    return spec.strip(), layer.strip()


class BrainlikeHearModel(torch.nn.Module):
    """A brainlike model and one of its layers, with the attributes HEAR asks for.

    Attributes
    ----------
    sample_rate : int
    timestamp_embedding_size, scene_embedding_size : int
        The layer's feature count.
    spec, layer, weights_id : str
    """

    def __init__(self, model: AudioModel, layer: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.layer = layer if layer is not None else model.layers[-1]
        if self.layer not in model.layers:
            raise BrainlikeError(f"model {model.name!r} has no layer {self.layer!r}; layers: {', '.join(model.layers)}")
        self.spec = model.name
        self.weights_id = f"{model.weights_id}#{self.layer}"
        self.sample_rate = int(model.sample_rate)
        probe = _probe_clip(self.sample_rate)
        size = int(model(probe)[self.layer].shape[-1])
        self.timestamp_embedding_size = self.scene_embedding_size = size

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Layer frames ``(n_sounds, n_frames, features)`` for float32 audio ``(n_sounds, n_samples)``."""
        step = max(1, int(getattr(self.model, "batch_size", 8)))
        parts = [self.model(audio[i: i + step])[self.layer] for i in range(0, len(audio), step)]
        return np.concatenate(parts, axis=0)


def _probe_clip(sample_rate: int) -> np.ndarray:
    """A fixed low-level noise clip used to learn the layer's width."""
    rng = np.random.default_rng(0)
    return (0.01 * rng.standard_normal((1, int(_PROBE_SECONDS * sample_rate)))).astype(np.float32)


def load_model(model_file_path: str = "") -> BrainlikeHearModel:
    """HEAR ``load_model``: ``model_file_path`` (or ``$BRAINLIKE_HEAR_MODEL``) is ``<model spec>[#<layer>]``."""
    from brainlike.models.registry import load_model as load_brainlike_model

    target = model_file_path or os.environ.get(ENV_MODEL, "")
    if not target:
        raise BrainlikeError(f"brainlike.hear_api.load_model needs '<model spec>[#<layer>]' as model_file_path "
                             f"or in ${ENV_MODEL}")
    spec, layer = split_target(target)
    return BrainlikeHearModel(load_brainlike_model(spec), layer)


def _audio_array(audio: Any, model: BrainlikeHearModel) -> np.ndarray:
    array = audio.detach().to("cpu").float().numpy() if hasattr(audio, "detach") else np.asarray(audio, np.float32)
    if array.ndim != 2:
        raise BrainlikeError(f"HEAR audio must be (n_sounds, n_samples), got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def get_timestamp_embeddings(audio: Any, model: BrainlikeHearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """HEAR ``get_timestamp_embeddings``.

    Returns
    -------
    embeddings : Tensor, shape (n_sounds, n_frames, features), float32
    timestamps : Tensor, shape (n_sounds, n_frames), frame centres in ms
    """
    array = _audio_array(audio, model)
    frames = model.embed(array)
    duration_ms = 1000.0 * array.shape[1] / model.sample_rate
    centres = (np.arange(frames.shape[1]) + 0.5) * (duration_ms / frames.shape[1])
    timestamps = np.broadcast_to(centres, frames.shape[:2]).astype(np.float32)
    return torch.from_numpy(frames), torch.from_numpy(np.ascontiguousarray(timestamps))


def get_scene_embeddings(audio: Any, model: BrainlikeHearModel) -> torch.Tensor:
    """HEAR ``get_scene_embeddings``: the time average of the timestamp embeddings, (n_sounds, features)."""
    frames = model.embed(_audio_array(audio, model))
    return torch.from_numpy(frames.mean(axis=1, dtype=np.float64).astype(np.float32))


_TEMPLATE = '''"""HEAR API module for the brainlike model {spec!r}, layer {layer!r} (generated by brainlike {version}).

Use it like any HEAR module: ``load_model()``, ``get_timestamp_embeddings(audio, model)``,
``get_scene_embeddings(audio, model)``; ``load_model("<spec>#<layer>")`` picks another brainlike model.
"""

from brainlike import hear_api as _hear_api

SPEC = {spec!r}
LAYER = {layer!r}


def load_model(model_file_path: str = ""):
    return _hear_api.load_model(model_file_path or SPEC + "#" + LAYER)


get_timestamp_embeddings = _hear_api.get_timestamp_embeddings
get_scene_embeddings = _hear_api.get_scene_embeddings
'''


def export_module(spec: str, out_dir: str | os.PathLike, module_name: str, layer: str | None = None) -> Path:
    """Write ``<out_dir>/<module_name>.py``, a HEAR module serving one brainlike model layer.

    The model is loaded once to check the spec and layer (and to resolve the default: the last layer).

    Parameters
    ----------
    spec : str
        A brainlike model spec (``whisper-base``, ``hf:facebook/wav2vec2-base``...).
    out_dir : path
        Folder to write into (created if needed); put it on ``sys.path`` / ``PYTHONPATH`` to import the module.
    module_name : str
        A Python identifier.
    layer : str, optional
        Layer to serve; default the model's last layer.

    Returns
    -------
    Path
        The written file.
    """
    from brainlike import __version__
    from brainlike.models.registry import load_model as load_brainlike_model

    if not module_name.isidentifier() or keyword.iskeyword(module_name):
        raise BrainlikeError(f"HEAR module name {module_name!r} is not a Python identifier")
    if LAYER_SEPARATOR in spec:
        raise BrainlikeError(f"model spec {spec!r} contains {LAYER_SEPARATOR!r}; pass the layer separately")
    model = load_brainlike_model(spec)
    chosen = layer if layer is not None else model.layers[-1]
    if chosen not in model.layers:
        raise BrainlikeError(f"model {spec!r} has no layer {chosen!r}; layers: {', '.join(model.layers)}")
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{module_name}.py"
    atomic_write(path, _TEMPLATE.format(spec=spec, layer=chosen, version=__version__))
    return path
