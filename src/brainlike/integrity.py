"""File integrity in one place: sha256 of files and bytes, SHA256SUMS listings, verification, atomic writes.

Every module that hashes, verifies or writes a file that must never be seen half-written uses these functions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["atomic_write_bytes", "atomic_write"]


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, fsync, then rename it into place.

    On any error (including KeyboardInterrupt) the temporary file is removed and ``path`` keeps its previous
    content; readers never see a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    atomic_write_bytes(path, lambda handle: handle.write(payload))
