"""Results folders (contracts.md section 2): records.jsonl, records.csv, detail.nc, provenance.json."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from brainlike import __version__
from brainlike.extract.cache import atomic_write_bytes

REQUIRED_KEYS = ("model", "dataset", "metric", "protocol", "selection", "target", "score", "sem", "layer")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results."""
    out = {"brainlike": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for name in ("numpy", "scipy", "torch", "xarray", "pandas", "sklearn", "soundfile", "soxr"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        out[name] = getattr(module, "__version__", "?")
    return out


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        return result.stdout.strip() or None if result.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    """Records as a tidy table, required columns first."""
    frame = pd.DataFrame(list(records))
    for key in REQUIRED_KEYS:
        if key not in frame:
            frame[key] = None
    extra = [c for c in frame.columns if c not in REQUIRED_KEYS]
    return frame[list(REQUIRED_KEYS) + extra]


def write_results(records: list[dict], out_dir: str | Path, provenance: dict[str, Any],
                  detail=None, name: str = "records") -> Path:
    """Write a results folder atomically file by file; return its path."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    jsonl = "".join(json.dumps(r, default=_json_default) + "\n" for r in records).encode()
    atomic_write_bytes(out / f"{name}.jsonl", lambda h: h.write(jsonl))
    table = records_frame(records)
    flat = table.map(lambda v: json.dumps(v) if isinstance(v, (dict, list)) else v)
    atomic_write_bytes(out / f"{name}.csv", lambda h: h.write(flat.to_csv(index=False).encode()))
    try:
        atomic_write_bytes(out / f"{name}.parquet", lambda h: h.write(flat.astype(str).to_parquet(index=False)))
    except ImportError:
        pass
    if detail is not None:
        data = detail.to_netcdf(engine="h5netcdf")
        atomic_write_bytes(out / "detail.nc", lambda h: h.write(bytes(data)))
    prov = {"brainlike_version": __version__, "git_commit": git_commit(), "versions": versions(),
            "command": sys.argv, **provenance, "written": now()}
    text = json.dumps(prov, indent=2, default=_json_default).encode()
    atomic_write_bytes(out / "provenance.json", lambda h: h.write(text))
    return out


def read_records(path: str | Path) -> list[dict]:
    """Records of a results folder (``records.jsonl``) or of a .jsonl file."""
    path = Path(path)
    if path.is_dir():
        path = path / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
