"""HEAR API modules as brainlike models: the ``hear:`` family.

Any module following the HEAR 2021 API (https://hearbenchmark.com/hear-api.html) can be scored:

* ``load_model(model_file_path="") -> model`` where ``model.sample_rate`` is the rate it expects;
* ``get_timestamp_embeddings(audio, model) -> (embeddings, timestamps)`` with ``audio`` a float32 torch tensor
  ``(n_sounds, n_samples)``, ``embeddings`` ``(n_sounds, n_timestamps, size)`` and ``timestamps`` in ms;
* optionally ``get_scene_embeddings(audio, model) -> (n_sounds, size)``.

Spec strings: ``hear:<module>`` or ``hear:<module>:<model file>``, where ``<module>`` is an importable dotted name
(``hearbaseline.wav2vec2``) or the path of a ``.py`` file, and ``<model file>`` is passed to ``load_model``.

Layers: ``timestamp_embeddings`` (batch, n_timestamps, size) and, when the module has ``get_scene_embeddings``,
``scene_embeddings`` (batch, 1, size). ``weights_id`` is the sha256 of the model file, or of the module's source
file when no model file is given (so that editing the module invalidates cached activations). There is no random
twin (``hear@random`` is an error): a HEAR module owns its weights.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from brainlike.errors import BrainlikeError, ModelError
from brainlike.models.base import AudioModel
from brainlike.models.registry import FamilyEntry, register_family

ADAPTER_VERSION = 1
REQUIRED = ("load_model", "get_timestamp_embeddings")


def import_hear_module(target: str) -> ModuleType:
    """Import a HEAR module by dotted name or from a ``.py`` file path; check it has the API functions.

    Raises
    ------
    BrainlikeError
        The module cannot be imported or lacks ``load_model`` / ``get_timestamp_embeddings``.
    """
    path = Path(target).expanduser()
    try:
        if target.endswith(".py"):
            module = _import_file(path)
        else:
            module = importlib.import_module(target)
    except BrainlikeError:
        raise
    except Exception as exc:  # ImportError, SyntaxError, errors raised by the module's own top level
        raise BrainlikeError(f"hear: cannot import {target!r}: {type(exc).__name__}: {_first_line(exc)}") from None
    missing = [name for name in REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise BrainlikeError(f"hear: module {target!r} is not a HEAR module (no {', '.join(missing)})")
    return module


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise BrainlikeError(f"hear: module file {path} does not exist")
    path = path.resolve()
    name = f"brainlike_hear_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def split_argument(argument: str) -> tuple[str, str]:
    """``"<module>[:<model file>]"`` -> (module, model file or "")."""
    module, _, model_file = argument.partition(":")
    if not module:
        raise BrainlikeError("hear: needs a module name, e.g. hear:hearbaseline.wav2vec2")
    return module, model_file


class HearModel(AudioModel):
    """A HEAR API module seen through the brainlike model protocol.

    Parameters
    ----------
    target : str
        Dotted module name or ``.py`` path.
    model_file : str
        Passed to the module's ``load_model`` ("" for its default).
    """

    adapter_version = ADAPTER_VERSION
    batch_size = 8

    def __init__(self, target: str, model_file: str = "") -> None:
        self.module = import_hear_module(target)
        self.target, self.model_file = target, model_file
        self.name = f"hear:{target}" + (f":{model_file}" if model_file else "")
        try:
            self.model = self.module.load_model(model_file) if model_file else self.module.load_model()
        except BrainlikeError:
            raise
        except Exception as exc:
            raise BrainlikeError(f"hear: {target}.load_model failed: {type(exc).__name__}: {_first_line(exc)}") from None
        rate = getattr(self.model, "sample_rate", None)
        if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool) or rate <= 0:
            raise ModelError(f"hear: {target}.load_model() returned a model without an integer sample_rate ({rate!r})")
        self.sample_rate = int(rate)
        self.has_scene = callable(getattr(self.module, "get_scene_embeddings", None))
        self.layers = ["timestamp_embeddings"] + (["scene_embeddings"] if self.has_scene else [])
        self.weights_id = _weights_id(self.module, model_file)
        inner = getattr(self.model, "weights_id", None)  # e.g. a brainlike model exported with brainlike.hear_api
        if isinstance(inner, str) and inner:
            self.weights_id = f"{inner}+{self.weights_id}"
        self.preprocessing = {"module": target, "sample_rate": self.sample_rate}
        self.clip_level_layers = ("scene_embeddings",) if self.has_scene else ()
        self._timestamps: np.ndarray | None = None

    def _model_device(self) -> Any:
        parameters = getattr(self.model, "parameters", None)
        if callable(parameters):
            for parameter in parameters():
                return parameter.device
        return "cpu"

    def forward(self, waveforms: np.ndarray) -> dict[str, Any]:
        import torch

        if hasattr(self.model, "eval"):
            self.model.eval()
        with torch.no_grad():
            audio = torch.from_numpy(np.ascontiguousarray(waveforms)).to(self._model_device())
            result = self.module.get_timestamp_embeddings(audio, self.model)
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise ModelError(f"{self.name}: get_timestamp_embeddings must return (embeddings, timestamps)")
            embeddings, timestamps = result
            _check_timestamps(self.name, embeddings, timestamps)
            self._timestamps = np.asarray(timestamps.detach().cpu() if hasattr(timestamps, "detach") else timestamps,
                                          dtype=np.float64)
            outputs = {"timestamp_embeddings": embeddings}
            if self.has_scene:
                scene = self.module.get_scene_embeddings(audio, self.model)
                if getattr(scene, "ndim", None) != 2:
                    raise ModelError(f"{self.name}: get_scene_embeddings must return (n_sounds, size), "
                                     f"got shape {tuple(getattr(scene, 'shape', ()))}")
                outputs["scene_embeddings"] = scene[:, None, :]
        return outputs


    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """The module's own timestamps (ms -> s) of the last batch (HEAR: ``get_timestamp_embeddings``)."""
        stamps = self._timestamps
        if stamps is None or stamps.shape[-1] != n_frames:
            return super().frame_times(layer, n_frames, n_samples)
        if stamps.ndim == 2 and not np.allclose(stamps, stamps[:1]):
            raise ModelError(f"{self.name}: timestamps differ between clips of the same length")
        return (stamps[0] if stamps.ndim == 2 else stamps) / 1000.0


def _check_timestamps(name: str, embeddings: Any, timestamps: Any) -> None:
    shape = tuple(getattr(embeddings, "shape", ()))
    if len(shape) != 3:
        raise ModelError(f"{name}: timestamp embeddings must be (n_sounds, n_timestamps, size), got shape {shape}")
    if tuple(getattr(timestamps, "shape", ())) != shape[:2]:
        raise ModelError(f"{name}: timestamps shape {tuple(getattr(timestamps, 'shape', ()))} does not match "
                         f"embeddings {shape[:2]}")


def _weights_id(module: ModuleType, model_file: str) -> str:
    source = Path(model_file).expanduser() if model_file else Path(getattr(module, "__file__", "") or "")
    if source.is_file():
        digest = hashlib.sha256()
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    return f"module:{module.__name__}:{getattr(module, '__version__', 'unknown')}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def load(argument: str | None, random: bool) -> HearModel:
    """Family loader for ``hear:<module>[:<model file>]``."""
    if random or argument is None:
        raise BrainlikeError("hear: modules have no random-init twin; use hear:<module>")
    return HearModel(*split_argument(argument))


register_family(FamilyEntry(
    prefix="hear",
    load=load,
    description="any HEAR API module (load_model / get_timestamp_embeddings): hear:<module or file.py>[:<model file>]",
))
