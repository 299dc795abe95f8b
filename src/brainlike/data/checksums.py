"""sha256 helpers: hashing files and verifying them against ``SHA256SUMS`` listings."""

from __future__ import annotations

import hashlib
from pathlib import Path

from brainlike.errors import ChecksumError, DataError

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_sums(path: str | Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style listing into ``{relative path: hex digest}``."""
    sums: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(f"{path}:{number}: not a sha256sum line: {line!r}")
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


def verify_file(path: str | Path, expected: str) -> str:
    """Check a file against its expected sha256; return the digest or raise :class:`ChecksumError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing file {path}")
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumError(f"checksum mismatch for {path}: expected sha256 {expected[:12]}..., got {actual[:12]}...")
    return actual
