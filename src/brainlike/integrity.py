"""File integrity in one place: sha256 of files and bytes, SHA256SUMS listings, verification, atomic writes and
safe archive extraction.

Every module that hashes, verifies, writes a file that must never be seen half-written, or takes files out of an
archive uses these functions (docs/contracts.md section 6). Errors are :class:`~brainlike.errors.DataError`
subclasses with one-line messages: :class:`~brainlike.errors.ChecksumError` for a hash that differs,
:class:`~brainlike.errors.UnsafeArchiveError` for an archive member that could escape its destination.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, Callable, Iterator, Mapping

from brainlike.errors import ChecksumError, DataError, UnsafeArchiveError

__all__ = ["CHUNK", "atomic_folder", "atomic_write", "atomic_write_bytes", "check_member_name", "extract_members",
           "format_sums", "is_sha256", "parse_sums", "read_sums", "sha256_bytes", "sha256_file", "verify_file",
           "write_sums"]

CHUNK = 1 << 20
"""Bytes read or copied at a time (1 MiB)."""

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


# ------------------------------------------------------------------------------------------------------------ hashing
def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes | str) -> str:
    """Hex sha256 of bytes (text is hashed as UTF-8)."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def is_sha256(text: str) -> bool:
    """True for exactly 64 hexadecimal characters."""
    return bool(_SHA256.fullmatch(text))


def verify_file(path: str | os.PathLike, expected: str) -> str:
    """Hash ``path`` and compare with the pinned ``expected`` sha256; return the digest.

    Raises
    ------
    DataError
        The file does not exist.
    ChecksumError
        The digest differs (the caller must then not open the file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing file {path}")
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumError(f"{path}: sha256 {actual} does not match the pinned {expected.lower()}; refusing to open it")
    return actual


# ----------------------------------------------------------------------------------------------------- SHA256SUMS
def parse_sums(text: str, source: str = "SHA256SUMS") -> dict[str, str]:
    """Parse a ``sha256sum`` listing (``<64 hex>  <path>`` or ``<64 hex> *<path>`` per line) into ``{path: digest}``.

    Blank lines are skipped; any other line that is not exactly a 64-hex digest, white space and a path raises
    :class:`DataError` naming ``source`` and the line number. Digests are returned in lower case.
    """
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        name = parts[1].strip().removeprefix("*") if len(parts) == 2 else ""
        if not (is_sha256(parts[0]) and name):
            raise DataError(f"{source}:{number}: not a sha256sum line: {line!r}")
        sums[name] = parts[0].lower()
    return sums


def read_sums(path: str | os.PathLike) -> dict[str, str]:
    """:func:`parse_sums` of a file; :class:`DataError` when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checksum list missing: {path}")
    return parse_sums(path.read_text(), str(path))


def format_sums(sums: Mapping[str, str]) -> str:
    """A ``sha256sum`` listing of ``{path: digest}`` in the given order (two spaces, one line each)."""
    return "".join(f"{digest}  {name}\n" for name, digest in sums.items())


def write_sums(path: str | os.PathLike, sums: Mapping[str, str]) -> None:
    """Write :func:`format_sums` atomically."""
    atomic_write(path, format_sums(sums))


# -------------------------------------------------------------------------------------------------------- writes
def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], object], *,
                       expect_sha256: str | None = None) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, fsync, then rename it into place.

    With ``expect_sha256`` the written file is hashed first and renamed only if it matches (else
    :class:`ChecksumError`, nothing written). On any error (including KeyboardInterrupt) the temporary file is
    removed and ``path`` keeps its previous content; readers never see a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if expect_sha256 is not None and (actual := sha256_file(tmp)) != expect_sha256.lower():
            raise ChecksumError(f"{path.name}: the data has sha256 {actual[:12]}..., expected {expect_sha256[:12]}...; "
                                "nothing was written")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    atomic_write_bytes(path, lambda handle: handle.write(payload))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``path``; on success fsync its files and rename it into place.

    Yields the (empty, new) temporary folder. On any error it is removed and ``path`` is left as it was. An existing
    ``path`` is replaced only with ``replace=True`` (otherwise :class:`DataError`, before anything is written).
    """
    path = Path(path)
    if path.exists() and not replace:
        raise DataError(f"{path} already exists; remove it or choose another destination")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        for file in (p for p in tmp.rglob("*") if p.is_file() and not p.is_symlink()):
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------------------ archives
def check_member_name(name: str) -> PurePosixPath:
    """An archive member name as a relative POSIX path; :class:`UnsafeArchiveError` if it could escape.

    Rejected: empty names, NUL bytes, backslashes, absolute paths, ``..`` components and drive-like first parts
    (``C:``).
    """
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeArchiveError(f"archive member {name!r} has an unsafe name; refusing to extract")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"archive member {name!r} points outside the destination; refusing to extract")
    return path


def _plain(name: str) -> str:
    return name.removeprefix("./")


def extract_members(archive: str | os.PathLike, wanted: Mapping[str, str | os.PathLike]) -> dict[str, Path]:
    """Extract chosen regular-file members of a zip/wheel or (compressed) tar archive, each to its own path.

    Every member of the archive is checked before anything is written (:func:`check_member_name`; links, devices,
    FIFOs and other non-regular members anywhere in the archive reject it), then every wanted member must be
    present; only then are the files written, each atomically.

    Parameters
    ----------
    archive : path
        ``.whl``/``.zip`` or ``.tar``/``.tar.gz``/``.tgz`` file (verified by sha256 or accepted by the caller).
    wanted : mapping
        ``{member name as in the archive (a leading "./" ignored): destination file}``.

    Returns
    -------
    dict
        ``{member name: destination path}``.

    Raises
    ------
    UnsafeArchiveError
        A member could escape the destination or is a link or special file.
    DataError
        The file is not a readable archive, or lacks a wanted member.
    """
    archive = Path(archive)
    targets = {_plain(name): Path(dest) for name, dest in wanted.items()}
    opener = _zip_members if zipfile.is_zipfile(archive) else _tar_members
    written: dict[str, Path] = {}
    for name, stream in opener(archive, set(targets)):
        atomic_write_bytes(targets[name], lambda handle, s=stream: shutil.copyfileobj(s, handle, CHUNK))
        written[name] = targets[name]
    return {original: written[_plain(original)] for original in wanted}


def _check_complete(archive: Path, present: set[str], wanted: set[str]) -> None:
    missing = sorted(wanted - present)
    if missing:
        raise DataError(f"{archive.name} does not contain {', '.join(missing[:3])}")


def _zip_members(archive: Path, wanted: set[str]) -> Iterator[tuple[str, IO[bytes]]]:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            check_member_name(info.filename)
            file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver stored permissions only
            if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchiveError(f"archive member {info.filename!r} is a link or special file; "
                                         "refusing to extract")
        files = {_plain(info.filename): info for info in infos if not info.is_dir()}
        _check_complete(archive, set(files), wanted)
        for name in sorted(wanted):
            with zf.open(files[name]) as stream:
                yield name, stream


def _tar_members(archive: Path, wanted: set[str]) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        tf = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{archive.name} is neither a zip nor a readable tar archive ({exc})") from None
    with tf:
        try:
            infos = tf.getmembers()
        except tarfile.TarError as exc:
            raise DataError(f"{archive.name}: not a readable tar archive ({exc})") from None
        for info in infos:
            check_member_name(info.name)
            if not (info.isreg() or info.isdir()):
                raise UnsafeArchiveError(f"archive member {info.name!r} is a link or special file; refusing to extract")
        files = {_plain(info.name): info for info in infos if info.isreg()}
        _check_complete(archive, set(files), wanted)
        for name in sorted(wanted):
            stream = tf.extractfile(files[name])
            if stream is None:  # pragma: no cover - regular members always have a stream
                raise DataError(f"cannot read {name!r} from {archive.name}")
            with stream:
                yield name, stream
