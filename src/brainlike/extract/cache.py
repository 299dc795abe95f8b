"""The activation cache: content-addressed ``.npz`` entries with a JSON manifest, written atomically.

An entry is keyed by the sha256 of a canonical JSON of its key parts (model spec, adapter version, weights id,
preprocessing, stimulus-set checksum, format version). The array file is written under a temporary name and renamed
into place, then the manifest (holding the array file's sha256) is written the same way: an entry without a
manifest, or whose file no longer matches the manifest's checksum, is treated as absent (and reported by
``brainlike cache verify``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from brainlike.config import cache_root
from brainlike.errors import BrainlikeError
from brainlike.integrity import atomic_write_bytes, sha256_bytes, sha256_file

__all__ = ["FORMAT_VERSION", "cache_key", "ArrayCache"]

FORMAT_VERSION = 1


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (plus the cache format version)."""
    text = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str, separators=(",", ":"))
    return sha256_bytes(text)


class ArrayCache:
    """A folder of cached array bundles: ``<root>/<kind>/<key[:2]>/<key>.npz`` + ``.json`` manifest."""

    def __init__(self, kind: str = "activations", root: Path | None = None) -> None:
        self.kind = kind
        self.root = (root or cache_root()) / kind

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.npz", folder / f"{key}.json"

    def load(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """Arrays and manifest of an entry, or None if absent or corrupt."""
        data_path, manifest_path = self._paths(key)
        if not (data_path.is_file() and manifest_path.is_file()):
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            if sha256_file(data_path) != manifest["sha256"]:
                return None
            with np.load(data_path, allow_pickle=False) as bundle:
                arrays = {name: bundle[f"a{i}"] for i, name in enumerate(manifest["arrays"])}
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None
        return arrays, manifest

    def save(self, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Write an entry atomically (arrays first, manifest last)."""
        data_path, manifest_path = self._paths(key)
        names = list(arrays)
        payload = {f"a{i}": np.ascontiguousarray(arrays[n]) for i, n in enumerate(names)}
        try:
            atomic_write_bytes(data_path, lambda handle: np.savez(handle, **payload))
            manifest = {**meta, "key": key, "arrays": names, "sha256": sha256_file(data_path)}
            text = json.dumps(manifest, sort_keys=True, default=str, indent=1).encode()
            atomic_write_bytes(manifest_path, lambda handle: handle.write(text))
        except OSError as exc:
            raise BrainlikeError(f"cannot write cache entry under {self.root}: {exc.strerror or exc}") from None

    def remove(self, key: str) -> None:
        """Delete an entry (manifest first, so that a half-removed entry reads as absent); absent is fine."""
        for path in reversed(self._paths(key)):
            path.unlink(missing_ok=True)

    def entries(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for manifest in sorted(self.root.glob("*/*.json")):
            yield manifest.stem

    def verify(self) -> list[dict[str, str]]:
        """Check every entry; return one row per entry with ``status`` ok / corrupt / incomplete."""
        rows = []
        if not self.root.is_dir():
            return rows
        keys = {p.stem for p in self.root.glob("*/*.npz")} | {p.stem for p in self.root.glob("*/*.json")}
        for key in sorted(keys):
            data_path, manifest_path = self._paths(key)
            if not (data_path.is_file() and manifest_path.is_file()):
                rows.append({"key": key, "status": "incomplete", "detail": "array file or manifest missing"})
                continue
            try:
                manifest = json.loads(manifest_path.read_text())
                ok = sha256_file(data_path) == manifest["sha256"]
                detail = manifest.get("model", "")
            except (ValueError, KeyError) as exc:
                ok, detail = False, f"unreadable manifest: {exc}"
            rows.append({"key": key, "status": "ok" if ok else "corrupt", "detail": detail})
        return rows
