"""Faults: kill -9 mid-run, concurrent writers, a failing disk. The cache never holds a corrupt entry and reruns
give identical results."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from brainlike.extract.cache import ArrayCache, cache_key
from brainlike.errors import BrainlikeError


def _spawn(args, cache: Path):
    env = {**os.environ, "BRAINLIKE_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "brainlike", "-q", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)


def _run(args, cache: Path) -> subprocess.CompletedProcess:
    proc = _spawn(args, cache)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _entries(cache: Path) -> dict[str, dict[str, np.ndarray]]:
    store = ArrayCache("activations", cache)
    return {key: store.load(key)[0] for key in store.entries()}


@pytest.mark.parametrize("delay", [1.0, 2.5])
def test_kill_during_extraction_then_rerun_is_identical(tmp_path, data_root, delay):
    killed = tmp_path / "killed"
    proc = _spawn(["extract", "melspec"], killed)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert all(row["status"] == "ok" for row in ArrayCache("activations", killed).verify())
    assert _run(["extract", "melspec"], killed).returncode == 0
    clean = tmp_path / "clean"
    assert _run(["extract", "melspec"], clean).returncode == 0
    a, b = _entries(killed), _entries(clean)
    assert a.keys() == b.keys() and len(a) == 1
    for key in a:
        for layer in a[key]:
            np.testing.assert_array_equal(a[key][layer], b[key][layer])


def test_kill_during_scoring_then_rerun_is_identical(tmp_path, data_root):
    cache, out = tmp_path / "cache", tmp_path / "out"
    proc = _spawn(["score", "melspec", "--json", "--out", str(out)], cache)
    time.sleep(3.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = _run(["score", "melspec", "--json", "--out", str(out)], cache)
    second = _run(["score", "melspec", "--json"], tmp_path / "other")
    assert first.returncode == 0 and second.returncode == 0
    assert json.loads(first.stdout) == json.loads(second.stdout)
    lines = (out / "records.jsonl").read_text().splitlines()
    assert [json.loads(l) for l in lines] == json.loads(first.stdout)


def test_two_processes_writing_the_same_entry(tmp_path, data_root):
    cache = tmp_path / "cache"
    procs = [_spawn(["extract", "random-features"], cache) for _ in range(2)]
    assert all(p.wait(timeout=600) == 0 for p in procs)
    rows = ArrayCache("activations", cache).verify()
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    assert not list(cache.rglob("*.tmp"))


def test_disk_full_keeps_the_previous_entry(tmp_path, monkeypatch):
    store = ArrayCache("activations", tmp_path)
    key = cache_key({"test": 1})
    store.save(key, {"a": np.arange(4.0)}, {"model": "x"})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(BrainlikeError, match="No space left on device"):
        store.save(key, {"a": np.zeros(4)}, {"model": "x"})
    arrays, _ = store.load(key)
    np.testing.assert_array_equal(arrays["a"], np.arange(4.0))
    assert not list(tmp_path.rglob("*.tmp"))
    assert all(r["status"] == "ok" for r in store.verify())


def test_cache_verify_command_flags_tampered_entries(tmp_path, data_root):
    cache = tmp_path / "cache"
    assert _run(["extract", "random-features"], cache).returncode == 0
    assert _run(["cache", "verify"], cache).returncode == 0
    npz = next(cache.rglob("*.npz"))
    npz.write_bytes(npz.read_bytes()[:-10] + b"0123456789")
    result = _run(["cache", "verify"], cache)
    assert result.returncode == 1 and "corrupt" in result.stdout
