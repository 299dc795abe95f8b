"""Plain-dict model registry and the model spec grammar (docs/contracts.md section 3).

Spec strings:

* ``NAME``: a registered model; ``NAME@random``: its random-init twin (fixed seed).
* ``FAMILY:<checkpoint path or hub id>``: a family that loads weights (``hf:``, ``hear:``, ``mae:``, ``beats:``...).
* ``FAMILY@random``: the family's default configuration with random weights.

Every module in :mod:`brainlike.models` (and its sub-packages) is imported on first use and registers its models by
calling :func:`register_model` / :func:`register_family` at import time. Adding a model is one file: heavy imports
(torch, onnxruntime, transformers) belong inside the builder functions, not at module level.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from brainlike.errors import BrainlikeError, UnknownNameError
from brainlike.models.base import AudioModel
from brainlike.plugins import import_submodules

__all__ = ["RANDOM_SUFFIX", "NETWORKS", "ModelEntry", "FamilyEntry", "MODELS", "FAMILIES", "register_model",
           "register_family", "discover", "ModelSpec", "parse_spec", "load_model", "list_models"]

RANDOM_SUFFIX = "@random"
NETWORKS = "brainlike.models.nets"
"""Package of torch network definitions, imported by adapters when a model is built (never by :func:`discover`)."""


@dataclass
class ModelEntry:
    """A registered model.

    ``build(random)`` returns the model with pretrained weights (``random=False``) or its random-init twin.
    ``available()`` returns ``None`` when the model can run here, else a short reason (e.g. weights not installed).
    """

    name: str
    build: Callable[[bool], AudioModel]
    family: str
    description: str
    available: Callable[[], str | None] = lambda: None
    has_random_twin: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class FamilyEntry:
    """A model family addressed as ``PREFIX:<argument>`` (``load(argument, random)``; argument None = default).

    ``has_random_twin`` is False for families without a ``PREFIX@random`` (``hear``: a module owns its weights).
    """

    prefix: str
    load: Callable[[str | None, bool], AudioModel]
    description: str
    available: Callable[[], str | None] = lambda: None
    metadata: dict[str, Any] = field(default_factory=dict)
    has_random_twin: bool = True


MODELS: dict[str, ModelEntry] = {}
FAMILIES: dict[str, FamilyEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add a model to the registry (called by model modules at import time)."""
    if entry.name in MODELS and MODELS[entry.name].build is not entry.build:
        raise ValueError(f"model {entry.name!r} registered twice")
    MODELS[entry.name] = entry
    return entry


def register_family(entry: FamilyEntry) -> FamilyEntry:
    """Add a model family (``PREFIX:...`` specs) to the registry."""
    if entry.prefix in FAMILIES and FAMILIES[entry.prefix].load is not entry.load:
        raise ValueError(f"model family {entry.prefix!r} registered twice")
    FAMILIES[entry.prefix] = entry
    return entry


@functools.cache
def discover() -> None:
    """Import every module under :mod:`brainlike.models` once so that they register themselves."""
    import_submodules("brainlike.models", recursive=True, skip=lambda name: name.startswith(NETWORKS)
                      or name.rsplit(".", 1)[-1] in {"base", "registry"})


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec string."""

    text: str
    name: str  # registered name or family prefix
    argument: str | None  # the part after "FAMILY:", if any
    random: bool
    is_family: bool


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec string; raise :class:`UnknownNameError` (with close matches) if nothing matches."""
    discover()
    text = spec.strip()
    if not text:
        raise UnknownNameError("empty model name")
    if ":" in text:
        prefix, argument = text.split(":", 1)
        if prefix in FAMILIES:
            if not argument:
                raise UnknownNameError(f"model spec {text!r} needs a checkpoint path or hub id after '{prefix}:'")
            return ModelSpec(text, prefix, argument, False, True)
        raise UnknownNameError(_unknown_message(prefix, list(FAMILIES), kind="model family"))
    random = text.endswith(RANDOM_SUFFIX)
    name = text[: -len(RANDOM_SUFFIX)] if random else text
    if name in MODELS:
        if random and not MODELS[name].has_random_twin:
            raise UnknownNameError(f"model {name!r} has no random-init twin")
        return ModelSpec(text, name, None, random, False)
    if random and name in FAMILIES:
        return ModelSpec(text, name, None, True, True)
    choices = list(MODELS) + [f + RANDOM_SUFFIX for f in FAMILIES] + [f + ":" for f in FAMILIES]
    raise UnknownNameError(_unknown_message(text, choices, kind="model"))


def _unknown_message(name: str, choices: list[str], kind: str) -> str:
    close = difflib.get_close_matches(name, choices, n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (see `brainlike models`)"


def load_model(spec: str) -> AudioModel:
    """Build the model named by a spec string; its ``name`` is set to the spec exactly as given."""
    parsed = parse_spec(spec)
    entry = FAMILIES[parsed.name] if parsed.is_family else MODELS[parsed.name]
    reason = entry.available()
    if reason and not parsed.random:
        raise BrainlikeError(f"model {spec!r} is not available here: {reason}")
    if parsed.is_family:
        model = FAMILIES[parsed.name].load(parsed.argument, parsed.random)
    else:
        model = MODELS[parsed.name].build(parsed.random)
    model.name = parsed.text
    return model


def list_models() -> list[dict[str, Any]]:
    """One row per registered model and family: name, family, description, availability."""
    discover()
    rows = []
    for entry in MODELS.values():
        reason = entry.available()
        rows.append({"name": entry.name, "family": entry.family, "description": entry.description,
                     "available": reason is None, "reason": reason or "", "random_twin": entry.has_random_twin})
    for fam in FAMILIES.values():
        reason = fam.available()
        rows.append({"name": fam.prefix + ":<path or id>", "family": fam.prefix, "description": fam.description,
                     "available": reason is None, "reason": reason or "", "random_twin": fam.has_random_twin})
    return rows
