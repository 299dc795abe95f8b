"""brainlike.integrity: hashing against hashlib, strict SHA256SUMS parsing, verification, atomic writes that leave
nothing behind, and the one-implementation rule (no other module hashes files, parses sums or renames into place)."""

from __future__ import annotations

import ast
import hashlib
import os
import re
from pathlib import Path

import pytest

from brainlike import integrity
from brainlike.errors import ChecksumError, DataError, UnsafeArchiveError

SRC = Path(__file__).resolve().parents[2] / "src" / "brainlike"
DIGEST = "ab" * 32


def test_sha256_of_files_and_bytes_equals_hashlib(tmp_path):
    data = os.urandom(3 * integrity.CHUNK + 12345)  # several chunks and a partial one
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert integrity.sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert integrity.sha256_bytes(data) == hashlib.sha256(data).hexdigest()
    assert integrity.sha256_bytes("stim1 é") == hashlib.sha256("stim1 é".encode()).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert integrity.sha256_file(empty) == hashlib.sha256(b"").hexdigest()


def test_sums_round_trip_and_binary_marker():
    sums = {"audio/a.wav": DIGEST, "b c.wav": "cd" * 32}
    assert integrity.parse_sums(integrity.format_sums(sums)) == sums
    assert integrity.parse_sums(f"{DIGEST.upper()} *x.wav\n\n") == {"x.wav": DIGEST}


@pytest.mark.parametrize("line", [f"{DIGEST[:-1]}  a.wav", f"{DIGEST}0  a.wav", f"{DIGEST[:-1]}g  a.wav", DIGEST,
                                  "not a sum line", f"{DIGEST}\ta.wav".replace("\t", "")])
def test_sums_parsing_is_strict(line):
    with pytest.raises(DataError, match=r"LIST:2: not a sha256sum line"):
        integrity.parse_sums(f"{DIGEST}  ok.wav\n{line}\n", "LIST")


def test_read_sums_of_a_missing_list(tmp_path):
    with pytest.raises(DataError, match="checksum list missing"):
        integrity.read_sums(tmp_path / "SHA256SUMS")


def test_verify_file(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    assert integrity.verify_file(path, good.upper()) == good
    with pytest.raises(ChecksumError, match="does not match the pinned .*refusing to open it"):
        integrity.verify_file(path, DIGEST)
    with pytest.raises(DataError, match="missing file") as info:
        integrity.verify_file(tmp_path / "absent", good)
    assert not isinstance(info.value, ChecksumError)


def test_atomic_write_fsyncs_and_leaves_nothing_on_error(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "out.json"
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    integrity.atomic_write(target, "first")
    assert target.read_text() == "first" and len(synced) == 1

    def fails(handle):
        handle.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        integrity.atomic_write_bytes(target, fails)
    assert target.read_text() == "first" and sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
    with pytest.raises(ChecksumError, match="nothing was written"):
        integrity.atomic_write_bytes(target, lambda h: h.write(b"second"), expect_sha256=DIGEST)
    assert target.read_text() == "first" and sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
    integrity.atomic_write_bytes(target, lambda h: h.write(b"second"),
                                 expect_sha256=hashlib.sha256(b"second").hexdigest())
    assert target.read_bytes() == b"second"


def test_atomic_folder(tmp_path):
    dest = tmp_path / "corpus"
    with integrity.atomic_folder(dest) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not dest.exists()
    assert (dest / "a.txt").read_text() == "a"
    with pytest.raises(DataError, match="already exists"):
        with integrity.atomic_folder(dest):
            pass
    with pytest.raises(RuntimeError):
        with integrity.atomic_folder(dest, replace=True) as tmp:
            (tmp / "b.txt").write_text("b")
            raise RuntimeError("build failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"] and (dest / "a.txt").exists()
    with integrity.atomic_folder(dest, replace=True) as tmp:
        (tmp / "b.txt").write_text("b")
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt"]


def test_archive_missing_member_fails_before_writing(tmp_path):
    import zipfile

    archive = tmp_path / "w.whl"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/a.bin", b"a")
    with pytest.raises(DataError, match="does not contain pkg/b.bin"):
        integrity.extract_members(archive, {"pkg/a.bin": tmp_path / "out" / "a", "pkg/b.bin": tmp_path / "out" / "b"})
    assert not (tmp_path / "out").exists()
    for name in ("", "a\x00b", "a\\b", "C:/x", "/etc/x", "a/../../x"):
        with pytest.raises(UnsafeArchiveError):
            integrity.check_member_name(name)


def _functions(tree: ast.Module):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_one_implementation_of_each_integrity_helper():
    """No module but integrity.py streams a sha256 (``hashlib.sha256()`` + ``update``), parses a sums listing,
    renames a temporary file into place or extracts an archive. Reviewed exceptions: the zoo install moves
    verified, staged files into the model folder; YAMNet reads its ONNX graph from the installed (verified) zip into
    memory, writing nothing."""
    allowed_moves = {("models/zoo/store.py", "install")}
    allowed_reads = {("models/zoo/yamnet.py", "load_onnx_model")}
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative == "integrity.py":
            continue
        tree = ast.parse(path.read_text())
        for function in _functions(tree):
            calls = {ast.unparse(c.func) for c in ast.walk(function) if isinstance(c, ast.Call)}
            where = f"{relative}:{function.lineno} {function.name}"
            if "hashlib.sha256" in calls and any(c.endswith(".update") for c in calls):
                problems.append(f"{where} streams a sha256")
            if any(re.search(r"(^|\.)(replace|rename)$", c) and c.startswith(("os.", "tmp", "temporary"))
                   for c in calls) and (relative, function.name) not in allowed_moves:
                problems.append(f"{where} renames into place")
            if any(c.endswith(("extractall", "extractfile", "ZipFile")) for c in calls) and \
                    (relative, function.name) not in allowed_reads:
                problems.append(f"{where} extracts an archive")
            if re.search(r"sha256|sums", function.name) and "split" in {c.rsplit(".", 1)[-1] for c in calls}:
                problems.append(f"{where} parses a sums listing")
    assert not problems, "\n".join(problems)
