"""``brainlike fetch``: download data files from their source repositories, verified by sha256 before use.

Sources (docs/contracts.md section 6): raw files of snormanhaignere/natsound165-neuron2015 and (ECoG) of
snormanhaignere/song-ecog-current-biology, each at a pinned commit. ``BRAINLIKE_MIRROR`` replaces the base URL of
both (a local HTTP server or a ``file://`` URL in tests; the repositories' paths do not collide: ``stimuli/...``,
``data/components.mat``, ``data/ecog_*.mat``, ...). Every file goes to a temporary name, is checked against the
sha256 shipped inside brainlike, and only then renamed into place.

Fresh-machine default: when ``BRAINLIKE_DATA`` is not set, loading a pinned dataset whose files are missing from the
default data folder downloads them (:func:`fetch_on_demand`); offline, the loader's error names what is missing and
why the download failed. The voxel archive is never downloaded on demand (its sha256 is accepted on first use, an
explicit ``brainlike fetch nh2015``).
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from brainlike import progress
from brainlike.config import data_root
from brainlike.errors import ChecksumError, DataError, UnknownNameError
from brainlike.integrity import CHUNK, atomic_write_bytes, read_sums, sha256_file

__all__ = ["NATSOUND_COMMIT", "DEFAULT_BASE", "ECOG_COMMIT", "ECOG_BASE", "ECOG_FOLDER", "RemoteFile", "FETCHABLE",
           "base_url", "ecog_sums", "fetch", "download", "download_verified", "on_demand", "fetch_on_demand"]

NATSOUND_COMMIT = "b41b99ff620d7997dbf278fc770f58566707726a"
DEFAULT_BASE = f"https://raw.githubusercontent.com/snormanhaignere/natsound165-neuron2015/{NATSOUND_COMMIT}/"
ECOG_COMMIT = "03bb41e95d04c191acd3b76b1c11d7185096f1f3"
ECOG_BASE = f"https://raw.githubusercontent.com/snormanhaignere/song-ecog-current-biology/{ECOG_COMMIT}/"
ECOG_FOLDER = "ecog_nh2022"
"""Folder of the ECoG files in the data root (the repository's ``data/`` layout below it)."""


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


def ecog_sums() -> dict[str, str]:
    """``{path relative to data/: sha256}`` of every ECoG file (shipped inside brainlike)."""
    return read_sums(_resource(ECOG_FOLDER, "SHA256SUMS"))


def _ecog_files(select: Callable[[str], bool]) -> Callable[[], list[RemoteFile]]:
    def files() -> list[RemoteFile]:
        return [RemoteFile(f"data/{path}", f"{ECOG_FOLDER}/{path}", digest, ECOG_BASE)
                for path, digest in sorted(ecog_sums().items()) if select(path)]

    return files


def _ecog_local() -> list[tuple[Path, str]]:
    return [(_resource(ECOG_FOLDER, "SHA256SUMS"), f"{ECOG_FOLDER}/SHA256SUMS")]


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


def fetch(name: str, dest: str | Path | None = None, show_progress: bool = True) -> Path:
    """Download the sha256-pinned dataset ``name`` into ``dest`` (default: the data root); return the root.

    Files already present and valid are kept; every download is verified before it appears under its name.
    (:func:`brainlike.data.datasets.fetch_dataset` also fetches the voxel sets.)
    """
    if name not in FETCHABLE:
        raise UnknownNameError(f"nothing to fetch for {name!r} by sha256; pinned datasets: {', '.join(FETCHABLE)}")
    remote, local = FETCHABLE[name]
    root = Path(dest).resolve() if dest else data_root()
    files = remote()
    with progress.task(f"fetching {name}", total=len(files), show=show_progress) as advance:
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


def download(url: str, target: Path, sha256: str | None = None, timeout: float = 60.0) -> str:
    """Download ``url`` to ``target`` atomically; with ``sha256``, only a file with that digest is kept.

    Returns the digest. A failed download or a digest that differs leaves ``target`` as it was (nothing written).
    """
    def write(handle) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, handle, CHUNK)

    try:
        atomic_write_bytes(target, write, expect_sha256=sha256)
    except ChecksumError as exc:
        raise ChecksumError(f"download of {url}: {exc}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None
    return sha256.lower() if sha256 is not None else sha256_file(target)


def download_verified(url: str, target: Path, sha256: str, timeout: float = 60.0) -> None:
    """Download ``url``, verify its sha256, and only then let it appear as ``target``."""
    download(url, target, sha256, timeout)


def on_demand(name: str) -> bool:
    """True when a missing ``name`` would be downloaded on first use: a pinned dataset and no ``BRAINLIKE_DATA``."""
    return name in FETCHABLE and not os.environ.get("BRAINLIKE_DATA")


def fetch_on_demand(name: str, missing: str) -> Path:
    """Fetch the pinned dataset ``name`` into the default data folder on first use, or raise ``DataError(missing)``.

    Only when :func:`on_demand` holds (with ``BRAINLIKE_DATA`` set, the user chose the folder: nothing is downloaded
    into it unasked). Offline, the error is ``missing`` followed by why the download failed; a file whose sha256
    differs raises :class:`ChecksumError` and is never written.
    """
    if not on_demand(name):
        raise DataError(missing)
    root = data_root()
    print(f"{name}: not found under {root}; downloading its sha256-pinned files (set BRAINLIKE_DATA to use another "
          "data folder)", file=sys.stderr)
    try:
        return fetch(name, root, show_progress=progress.enabled())
    except ChecksumError:
        raise
    except DataError as exc:
        raise DataError(f"{missing}; the automatic download failed ({exc})") from None
