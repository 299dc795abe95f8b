"""Safe archive extraction: regular files only, no absolute paths, no ``..``, no links or devices."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from brainlike.errors import DataError


def safe_member_path(name: str) -> PurePosixPath:
    """Validate an archive member name; raise :class:`DataError` on absolute paths or ``..`` components."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")) or (
            path.parts and ":" in path.parts[0]):
        raise DataError(f"archive member {name!r} would be written outside the destination; refusing to extract")
    return path


def extract_tar_members(archive: Path, wanted: dict[str, Path]) -> dict[str, Path]:
    """Extract selected members of a tar archive to chosen paths.

    Parameters
    ----------
    archive : Path
    wanted : dict
        ``{member name (as in the archive, leading "./" ignored): destination file}``.

    Every member of the archive is checked (paths, type) before anything is written; links, devices and traversal
    are rejected.
    """
    found: dict[str, Path] = {}
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                safe_member_path(member.name)
                if member.issym() or member.islnk() or member.isdev() or member.isfifo():
                    raise DataError(f"archive member {member.name!r} is a link or special file; refusing to extract")
            by_name = {m.name.removeprefix("./"): m for m in members if m.isfile()}
            missing = [name for name in wanted if name not in by_name]
            if missing:
                raise DataError(f"{archive.name} lacks {missing[:3]}")
            for name, dest in wanted.items():
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(by_name[name])
                tmp = dest.with_name(f".{dest.name}.part")
                with open(tmp, "wb") as handle:
                    while block := source.read(1 << 20):
                        handle.write(block)
                tmp.replace(dest)
                found[name] = dest
    except tarfile.TarError as exc:
        raise DataError(f"{archive}: not a readable tar archive ({exc})") from None
    return found
