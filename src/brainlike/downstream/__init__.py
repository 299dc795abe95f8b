"""Downstream audio tasks: task sets, probes, evaluation and the brain-vs-task link.

The subpackage is also callable: ``brainlike.downstream(models, tasks=..., probe=...)`` is
:func:`brainlike.api.downstream`.
"""

from __future__ import annotations

import sys
import types

__all__ = ["evaluate", "link", "probes", "tasks"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from brainlike.api import downstream

        return downstream(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
