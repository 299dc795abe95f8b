"""Checkpoint loading shared by the paper's models: safe reading, sha256, hub cache, strict key/shape matching.

Every official checkpoint is read with ``torch.load(weights_only=True)`` (no arbitrary unpickling) or with
:mod:`safetensors`; its sha256 becomes the model's ``weights_id`` (and so part of every cache key and provenance
record). Where the publisher pins a hash (torch-hub style ``name-<sha256 prefix>.pth`` file names) it is checked.
A spec argument may be a file, a folder, or a model-hub id (``owner/name``) found in the local Hugging Face hub cache
(``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``): nothing is downloaded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from brainlike.errors import ChecksumError, ModelError
from brainlike.integrity import sha256_file, verify_file

__all__ = ["MAX_LISTED", "Checkpoint", "hub_cache_dirs", "find_in_hub_cache", "resolve_checkpoint",
           "check_publisher_hash", "read_checkpoint", "state_dict_from", "strip_prefix", "load_strict",
           "parameter_count"]

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.[a-z]+$")
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")
"""Lines of torch's weights_only error that say nothing about the file (one suggests reloading unsafely)."""
MAX_LISTED = 12


@dataclass
class Checkpoint:
    """A checkpoint file read from disk.

    Attributes
    ----------
    path : Path
        Absolute path of the file read.
    sha256 : str
        sha256 of the file's bytes (hex).
    content : object
        What the file holds (a state dict, or a dict with ``model``/``cfg``/``config``/``state_dict`` entries).
    """

    path: Path
    sha256: str
    content: Any


def hub_cache_dirs() -> list[Path]:
    """Folders where a Hugging Face hub cache may live, in order of precedence."""
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]) / "hub")
    dirs.append(Path.home() / ".cache" / "huggingface" / "hub")
    return [d.expanduser() for d in dirs]


def find_in_hub_cache(repo_id: str, filenames: Sequence[str]) -> Path | None:
    """Return the cached file of ``repo_id`` (first of ``filenames`` present), preferring the ``main`` snapshot."""
    folder_name = "models--" + repo_id.replace("/", "--")
    for root in hub_cache_dirs():
        repo = root / folder_name
        snapshots = repo / "snapshots"
        if not snapshots.is_dir():
            continue
        ordered = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        main_ref = repo / "refs" / "main"
        if main_ref.is_file():
            main = snapshots / main_ref.read_text().strip()
            ordered = [main] + [p for p in ordered if p != main]
        for snapshot in ordered:
            for name in filenames:
                if (snapshot / name).is_file():
                    return (snapshot / name).resolve()
    return None


def resolve_checkpoint(argument: str, filenames: Sequence[str], family: str) -> Path:
    """Turn a spec argument (file, folder or hub id) into an existing checkpoint file.

    Parameters
    ----------
    argument : str
        What followed ``FAMILY:`` in the model spec.
    filenames : sequence of str
        Checkpoint file names to look for inside a folder or a hub snapshot, in order of preference.
    family : str
        Family prefix, for messages.
    """
    path = Path(argument).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        for name in filenames:
            if (path / name).is_file():
                return (path / name).resolve()
        raise ModelError(f"{family}: no checkpoint ({', '.join(filenames)}) in folder {path}")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", argument):
        found = find_in_hub_cache(argument, filenames)
        if found is not None:
            return found
        raise ModelError(
            f"{family}: {argument!r} is neither a file nor in the local hub cache "
            f"({', '.join(str(d) for d in hub_cache_dirs())}); download it first (e.g. `huggingface-cli download "
            f"{argument}`) or give the checkpoint path"
        )
    raise ModelError(f"{family}: checkpoint {argument!r} not found")


def check_publisher_hash(path: Path, sha256: str) -> None:
    """Check a torch-hub style hash prefix in the file name (``name-<hex>.pth``), as the publisher pins it."""
    match = _HASH_IN_NAME.search(path.name)
    if match and not sha256.startswith(match.group(1)):
        raise ChecksumError(
            f"checkpoint {path.name}: sha256 {sha256[:16]}... does not start with the published prefix "
            f"{match.group(1)} (corrupt or different file)"
        )


def read_checkpoint(path: str | Path, *, expected_sha256: str | None = None) -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True`` or safetensors) and hash it.

    Raises :class:`ChecksumError` when ``expected_sha256`` (or a hash prefix in the file name) does not match, and
    :class:`ModelError` when the file cannot be read without unpickling arbitrary objects.
    """
    import torch

    path = Path(path).resolve()
    digest = sha256_file(path) if expected_sha256 is None else verify_file(path, expected_sha256)
    check_publisher_hash(path, digest)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return Checkpoint(path, digest, load_file(str(path), device="cpu"))
        except SafetensorError as exc:
            raise ModelError(f"checkpoint {path.name} is not a readable safetensors file ({exc})") from None
    try:
        content = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError on non-allow-listed globals, corrupt zip...
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        useful = [ln for ln in lines if not ln.startswith(_TORCH_BOILERPLATE)] or [lines[0].split(".")[0]]
        first = next((ln for ln in useful if "GLOBAL" in ln), useful[0])  # the blocked global, when there is one
        first = first.split(". Please")[0]  # not torch's advice to allow-list the blocked global
        raise ModelError(
            f"cannot read checkpoint {path.name} safely (weights_only=True): {first[:200]}; convert it to a plain "
            "state dict (torch.save(model.state_dict())) or to .safetensors"
        ) from None
    return Checkpoint(path, digest, content)


def state_dict_from(content: Any, keys: Iterable[str], path: Path) -> dict[str, Any]:
    """Pick the state dict out of a checkpoint's content: the first of ``keys`` present, or the content itself."""
    if isinstance(content, Mapping):
        for key in keys:
            if key in content and isinstance(content[key], Mapping):
                return dict(content[key])
        if content and all(hasattr(v, "shape") for v in content.values()):
            return dict(content)
    raise ModelError(f"checkpoint {path.name} holds no state dict (looked for {', '.join(keys)} or a flat dict)")


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Keep the entries whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_strict(module: Any, state: Mapping[str, Any], *, label: str) -> None:
    """Load ``state`` into ``module`` requiring identical key sets and shapes.

    Raises :class:`ModelError` listing missing keys, unexpected keys and shape mismatches (up to 12 of each).
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if items:
                shown = ", ".join(items[:MAX_LISTED]) + (f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")
                parts.append(f"{len(items)} {title}: {shown}")
        raise ModelError(f"{label}: checkpoint does not match the architecture; " + "; ".join(parts))
    module.load_state_dict(dict(state), strict=True)


def parameter_count(module: Any) -> int:
    """Number of distinct parameters (shared tensors counted once), as ``sum(p.numel())`` over ``parameters()``."""
    return sum(p.numel() for p in module.parameters())
