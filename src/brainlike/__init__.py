"""brainlike: how brain-like is an audio model, layer by layer?"""

from __future__ import annotations

__version__ = "0.1.0"


_API = {"score": "brainlike.api", "extract": "brainlike.api", "load_study": "brainlike.study",
        "run_study": "brainlike.study", "make_report": "brainlike.report"}


def __getattr__(name: str):
    """``brainlike.score``, ``brainlike.extract``, ``brainlike.run_study``... imported on first use (no heavy imports
    at ``import brainlike``)."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'brainlike' has no attribute {name!r}")
