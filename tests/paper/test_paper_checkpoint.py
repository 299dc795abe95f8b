"""The shared checkpoint loader: hub-cache lookup, safe reading, safetensors, strict matching messages."""

from __future__ import annotations

import hashlib

import pytest
import torch

from brainlike.errors import ChecksumError, ModelError
from brainlike.models.paper import _checkpoint as ck


def _hub_snapshot(root, repo_id, revision, filename, payload):
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True)
    torch.save(payload, snap / filename)
    return repo, snap / filename


def test_hub_cache_prefers_the_main_ref(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo, old = _hub_snapshot(tmp_path, "lpepino/encodecmae-base", "aaa", "model.pt", {"w": torch.zeros(1)})
    (repo / "snapshots" / "bbb").mkdir()
    torch.save({"w": torch.ones(1)}, repo / "snapshots" / "bbb" / "model.pt")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("aaa\n")
    assert ck.resolve_checkpoint("lpepino/encodecmae-base", ("model.pt",), "encodecmae") == old.resolve()
    with pytest.raises(ModelError, match="neither a file nor in the local hub cache"):
        ck.resolve_checkpoint("someone/absent", ("model.pt",), "beats")


def test_sha256_safetensors_and_expected_hash(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"a": torch.arange(3.0)}, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    ckpt = ck.read_checkpoint(path, expected_sha256=digest)
    assert ckpt.sha256 == digest and torch.equal(ckpt.content["a"], torch.arange(3.0))
    with pytest.raises(ChecksumError, match="does not match the pinned"):
        ck.read_checkpoint(path, expected_sha256="0" * 64)


class _Arbitrary:  # any non-tensor object: weights_only=True must refuse to unpickle it
    pass


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "object": _Arbitrary()}, path)
    with pytest.raises(ModelError, match="cannot read checkpoint evil.pt safely"):
        ck.read_checkpoint(path)


def test_strict_message_lists_missing_unexpected_and_shapes():
    module = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    state = {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(4), "1.weight": torch.zeros(1, 3), "2.x": 1}
    with pytest.raises(ModelError) as info:
        ck.load_strict(module, state, label="toy")
    assert str(info.value) == ("toy: checkpoint does not match the architecture; 1 missing: 1.bias; 1 unexpected: 2.x; "
                               "1 shape mismatch: 0.bias (4,) != (3,)")
