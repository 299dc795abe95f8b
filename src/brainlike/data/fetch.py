"""``brainlike fetch``: download data files from their source repositories, verified by sha256 before use.

Sources (contracts.md section 6): raw files of snormanhaignere/natsound165-neuron2015 and (ECoG) of
snormanhaignere/song-ecog-current-biology, each at a pinned commit. ``BRAINLIKE_MIRROR`` replaces the base URL of
both (a local HTTP server or a ``file://`` URL in tests; the repositories' paths do not collide: ``stimuli/...``,
``data/components.mat``, ``data/ecog_*.mat``, ...). Every file goes to a temporary name, is checked against the
sha256 shipped inside brainlike, and only then renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from brainlike import progress
from brainlike.config import data_root
from brainlike.data.checksums import read_sums, sha256_file
from brainlike.errors import ChecksumError, DataError, UnknownNameError

NATSOUND_COMMIT = "b41b99ff620d7997dbf278fc770f58566707726a"
DEFAULT_BASE = f"https://raw.githubusercontent.com/snormanhaignere/natsound165-neuron2015/{NATSOUND_COMMIT}/"
ECOG_COMMIT = "03bb41e95d04c191acd3b76b1c11d7185096f1f3"
ECOG_BASE = f"https://raw.githubusercontent.com/snormanhaignere/song-ecog-current-biology/{ECOG_COMMIT}/"


@dataclass(frozen=True)
class RemoteFile:
    source: str  # path relative to the base URL
    dest: str  # path relative to the data root
    sha256: str
    base: str = DEFAULT_BASE  # the source repository at its pinned commit (BRAINLIKE_MIRROR replaces it)


def _resource(*parts: str) -> Path:
    return Path(str(resources.files("brainlike.data").joinpath("resources", *parts)))


def _natsound_files() -> list[RemoteFile]:
    wav = read_sums(_resource("natsound165", "stimuli_SHA256SUMS"))
    other = read_sums(_resource("natsound165", "SHA256SUMS"))
    files = [RemoteFile(f"stimuli/wav/{name}", f"natsound165/stimuli/wav/{name}", digest)
             for name, digest in sorted(wav.items())]
    files.append(RemoteFile("stimuli/category_labels.csv", "natsound165/stimuli/category_labels.csv",
                            other["stimuli/category_labels.csv"]))
    return files


def _component_files() -> list[RemoteFile]:
    digest = read_sums(_resource("nh2015_components", "SHA256SUMS"))["components.mat"]
    return [RemoteFile("data/components.mat", "nh2015_components/components.mat", digest)]


def _natsound_local() -> list[tuple[Path, str]]:
    """Files shipped inside brainlike itself (folds.csv and the checksum listings)."""
    return [(_resource("natsound165", "folds.csv"), "natsound165/folds.csv"),
            (_resource("natsound165", "SHA256SUMS"), "natsound165/SHA256SUMS"),
            (_resource("natsound165", "stimuli_SHA256SUMS"), "natsound165/stimuli/SHA256SUMS")]


def _ecog_files(select: Callable[[str], bool]) -> Callable[[], list[RemoteFile]]:
    def files() -> list[RemoteFile]:
        from brainlike.data.ecog import FOLDER, shipped_sums

        return [RemoteFile(f"data/{path}", f"{FOLDER}/{path}", digest, ECOG_BASE)
                for path, digest in sorted(shipped_sums().items()) if select(path)]

    return files


def _ecog_local() -> list[tuple[Path, str]]:
    return [(_resource("ecog_nh2022", "SHA256SUMS"), "ecog_nh2022/SHA256SUMS")]


FETCHABLE: dict[str, tuple[Callable[[], list[RemoteFile]], Callable[[], list[tuple[Path, str]]]]] = {
    "natsound165": (_natsound_files, _natsound_local),
    "nh2015-components": (_component_files, lambda: [(_resource("nh2015_components", "SHA256SUMS"),
                                                      "nh2015_components/SHA256SUMS")]),
    "ecog-nh2022": (_ecog_files(lambda path: True), _ecog_local),
    "ecog-nh2022-hypothesis": (_ecog_files(lambda path: path.startswith("hypothesis_driven_components/")),
                               _ecog_local),
    "ecog-nh2022-electrodes": (_ecog_files(lambda path: path.startswith("individual-electrodes/")), _ecog_local),
}
"""Sets pinned by sha256 (auto-fetch on first use may download these, never the trust-on-first-use archives).
``ecog-nh2022`` fetches every ECoG file (components, hypothesis components, electrodes, weights, features)."""


def base_url(default: str = DEFAULT_BASE) -> str:
    """``BRAINLIKE_MIRROR`` if set, else ``default`` (a source repository at its pinned commit), ending in '/'."""
    base = os.environ.get("BRAINLIKE_MIRROR", default)
    return base if base.endswith("/") else base + "/"


def fetch(name: str, dest: str | Path | None = None, show_progress: bool = True,
          accept_sha256: str | None = None) -> Path:
    """Download dataset ``name`` into ``dest`` (default: the data root); files already present and valid are kept."""
    if name not in FETCHABLE:
        extra = _voxel_fetcher(name)
        if extra is not None:
            return extra(dest, accept_sha256)
        raise UnknownNameError(f"nothing to fetch for {name!r}; fetchable: {', '.join(FETCHABLE)}, nh2015, b2021")
    remote, local = FETCHABLE[name]
    root = Path(dest).resolve() if dest else data_root()
    files = remote()
    with progress.task(f"fetching {name}", total=len(files)) if show_progress else _Null() as advance:
        for item in files:
            target = root / item.dest
            if not (target.is_file() and sha256_file(target) == item.sha256):
                download_verified(base_url(item.base) + item.source, target, item.sha256)
            advance()
    for source, relative in local():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return root


def download_verified(url: str, target: Path, sha256: str, timeout: float = 60.0) -> None:
    """Download ``url`` to a temporary file, verify its sha256, then rename it to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, handle)
        actual = sha256_file(tmp)
        if actual != sha256:
            raise ChecksumError(f"download of {url} has sha256 {actual[:12]}..., expected {sha256[:12]}...; "
                                "nothing was written")
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _voxel_fetcher(name: str):
    try:
        from brainlike.data.voxels import FETCHERS
    except ImportError:
        return None
    return FETCHERS.get(name)


class _Null:
    def __enter__(self):
        return lambda n=1: None

    def __exit__(self, *exc):
        return False
