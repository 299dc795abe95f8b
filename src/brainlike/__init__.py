"""brainlike: how brain-like is an audio model, layer by layer?

The public API (imported on first use, so ``import brainlike`` stays light):

* :func:`brainlike.score` -> :class:`brainlike.Results` (records, per-target detail, provenance)
* :func:`brainlike.extract` -> activations of one model (cached)
* :func:`brainlike.downstream` -> downstream task records (``brainlike.downstream`` is also the subpackage)
* :func:`brainlike.link` -> brain-vs-task correlations across models
* :func:`brainlike.compare` -> does model A beat model B? (every pair: difference, CI, p, FDR q)
* :func:`brainlike.similarity` -> layer x layer CKA / Procrustes / RSA matrices between models or a dataset
* :func:`brainlike.ceiling` -> noise ceilings of a dataset with repetitions
* :class:`brainlike.Results` (``Results.load(folder)``), :func:`brainlike.run_study`, :func:`brainlike.make_report`
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Results", "ceiling", "compare", "downstream", "extract", "link", "load_study", "make_report",
           "run_study", "score", "similarity", "__version__"]

_API = {"score": "brainlike.api", "extract": "brainlike.api", "link": "brainlike.api", "compare": "brainlike.api",
        "similarity": "brainlike.api", "ceiling": "brainlike.api",
        "Results": "brainlike.results", "load_study": "brainlike.study", "run_study": "brainlike.study",
        "make_report": "brainlike.report"}


def __getattr__(name: str):
    """Public names imported on first use (no heavy imports at ``import brainlike``)."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    if name == "downstream":  # the subpackage, callable as brainlike.downstream(...)
        import importlib

        return importlib.import_module("brainlike.downstream")
    raise AttributeError(f"module 'brainlike' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
