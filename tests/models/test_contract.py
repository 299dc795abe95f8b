"""The model contract, driven by the registry: every registered model's random twin, every baseline and every
family's ``@random`` passes ``validate-model`` on two 2 s clips (the validator's clip length; at 1 s, pesto's log-CQT
of near-silent frames turns float32 rounding differences between batched and single convolutions into 0.017,
above the batch tolerance). A new model is checked here with no new test.

Specs come from :mod:`brainlike.models.registry` at collection time: ``NAME@random`` for a model with a random twin,
``NAME`` for one without (the parameter-free baselines), ``FAMILY@random`` for a family that has a twin and no sized
models of its own (``dasheng@random`` is ``dasheng-base@random``, already listed). A twin that needs installed files
(``basic-pitch@random`` re-draws the weights of the installed ONNX graph) is skipped when they are missing. The
heaviest architectures are marked slow (``HEAVY``).
"""

from __future__ import annotations

import pytest

from brainlike.errors import BrainlikeError
from brainlike.models import registry
from brainlike.models.validate import validate_model

HEAVY = {"dasheng-1.2b@random": "4.9 GB of random weights", "dasheng-0.6b@random": "2.4 GB of random weights",
         "encodecmae-large@random": "1.2 GB of random weights",
         "encodecmae-base@random": "50 s on a loaded 2-core machine; encodecmae-small@random runs the same code"}
"""Specs marked slow, with why (run them with ``-m slow``)."""


def contract_specs() -> list[str]:
    """Every spec the contract covers, from the registry."""
    registry.discover()
    specs = [f"{e.name}@random" if e.has_random_twin else e.name for e in registry.MODELS.values()]
    sized = {e.family for e in registry.MODELS.values()}
    specs += [f"{f.prefix}@random" for f in registry.FAMILIES.values() if f.has_random_twin and f.prefix not in sized]
    return sorted(specs)


def _param(spec: str):
    marks = [pytest.mark.slow] if spec in HEAVY else []
    return pytest.param(spec, marks=marks, id=spec)


def _load(spec: str):
    try:
        return registry.load_model(spec)
    except BrainlikeError as exc:
        if "not installed" in str(exc) or "not available here" in str(exc):
            pytest.skip(f"{spec}: {exc}")
        raise


@pytest.mark.parametrize("spec", [_param(s) for s in contract_specs()])
def test_model_passes_validate_model(spec):
    report = validate_model(_load(spec), seconds=2.0, n_clips=2)
    assert report.ok, report.format()


def test_the_contract_covers_every_kind_of_entry():
    specs = set(contract_specs())
    assert {"melspec", "spectrotemporal", "whisper-base@random", "dasheng-1.2b@random", "mae@random",
            "hf@random", "beats@random"} <= specs
    assert "hear@random" not in specs and "dasheng@random" not in specs
    assert set(HEAVY) <= specs, "a HEAVY entry names a spec the registry no longer has"
