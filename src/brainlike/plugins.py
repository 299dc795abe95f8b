"""Plugin discovery shared by the registries: import every module of a package once, so that each registers itself.

Used by :func:`brainlike.models.registry.discover` (model adapters) and :mod:`brainlike.align.protocols` (protocols).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

__all__ = ["import_submodules"]


def import_submodules(package: str, *, recursive: bool = False,
                      skip: Callable[[str], bool] = lambda name: False) -> list[str]:
    """Import the modules of ``package`` (and of its sub-packages when ``recursive``), in name order.

    ``skip(full module name)`` returning True leaves a module out. Returns the names imported.
    """
    module = importlib.import_module(package)
    walk = pkgutil.walk_packages if recursive else pkgutil.iter_modules
    names = sorted(info.name if recursive else f"{package}.{info.name}"
                   for info in walk(module.__path__, prefix=f"{package}." if recursive else ""))
    imported = [name for name in names if not skip(name)]
    for name in imported:
        importlib.import_module(name)
    return imported
