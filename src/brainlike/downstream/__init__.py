"""Downstream audio tasks: task sets, probes, evaluation and the brain-vs-task link.

The subpackage is also callable: ``brainlike.downstream(models, tasks=..., probe=...)`` is
:func:`brainlike.api.downstream`.
"""

from __future__ import annotations

from brainlike import _make_callable

__all__ = ["evaluate", "link", "networks", "probes", "render", "tasks"]

_make_callable(__name__)
