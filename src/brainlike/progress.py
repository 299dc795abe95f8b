"""Progress bars on stderr (rich), switched off by ``--quiet`` or when stderr is not wanted."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["set_enabled", "enabled", "task"]

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Turn progress bars on or off for this process."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


@contextmanager
def task(description: str, total: int | None, *, show: bool = True) -> Iterator["_Advance"]:
    """Context manager yielding ``advance(n=1)``; shows a rich progress bar on stderr when enabled and ``show``.

    Example
    -------
    >>> with task("extracting melspec", total=165) as advance:
    ...     for clip in clips:
    ...         advance()
    """
    if not (_enabled and show):
        yield _Advance(None, None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as bar:
        task_id = bar.add_task(description, total=total)
        yield _Advance(bar, task_id)


class _Advance:
    def __init__(self, bar, task_id) -> None:
        self._bar, self._task_id = bar, task_id

    def __call__(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task_id, n)
