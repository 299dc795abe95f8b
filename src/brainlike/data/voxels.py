"""Voxel datasets of Tuckute et al. 2023: ``nh2015`` (7,694 voxels, 8 subjects) and ``b2021`` (26,792 voxels,
20 subjects), from the McDermott lab archive ``tuckute_feather_2023/data.tar``.

Archive layout used (``data/neural/<NAME>/``): ``voxel_features_array.npy`` (stimuli x voxels x 3 repetitions;
B2021 has 192 stimuli, of which the first 165 are the natsound165 sounds in NH2015's order), ``voxel_features_meta.npy``
(NH2015: structured array with ``subj_idx, hemi, x_ras, y_ras, voxel_id, n_reps``), ``neural_stim_meta.npy``
(NH2015: stimulus file names in the arrays' row order), ``df_roi_meta.pkl`` (pandas pickle: per-voxel subject,
hemisphere, coordinates and ``roi_label_general`` = Primary / Anterior / Lateral / Posterior from Glasser parcels).

``brainlike fetch nh2015 b2021`` downloads the archive (``BRAINLIKE_VOXEL_URL`` overrides the URL), shows its sha256
and records it as accepted (trust on first use; ``--accept-sha256`` pins it in advance), extracts only the needed
files with path-traversal and link checks, and converts everything ONCE into ``<data>/voxels/<name>.nc`` netCDF.
The pickled ROI table is unpickled only during that conversion, only from an archive whose sha256 was accepted.
Loading never unpickles anything.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from brainlike.config import data_root
from brainlike.data.custom import load_dataset_file
from brainlike.data.fetch import download
from brainlike.data.neural import DatasetEntry, NeuralDataset, register_dataset
from brainlike.errors import ChecksumError, DataError
from brainlike.integrity import atomic_write, atomic_write_bytes, extract_members

__all__ = ["DEFAULT_URL", "N_STIMULI", "voxel_file", "convert_archive", "fetch_voxels", "VOXEL_SETS"]

DEFAULT_URL = "https://mcdermottlab.mit.edu//tuckute_feather_2023/data.tar"
N_STIMULI = 165


def voxel_file(name: str, root: Path | None = None) -> Path:
    return (root or data_root()) / "voxels" / f"{name}.nc"


def _available(name: str):
    def check() -> str | None:
        path = voxel_file(name)
        return None if path.is_file() else f"{path} missing (run `brainlike fetch {name}`)"
    return check


def _loader(name: str):
    def load() -> NeuralDataset:
        path = voxel_file(name)
        if not path.is_file():
            raise DataError(f"{name} not found: {path} is missing (run `brainlike fetch {name}`)")
        dataset = load_dataset_file(path)
        dataset.name = name
        return dataset
    return load


register_dataset(DatasetEntry("nh2015", _loader("nh2015"), "NH2015 voxels (7,694 voxels with 3 reps, 8 subjects)",
                              _available("nh2015")))
register_dataset(DatasetEntry("b2021", _loader("b2021"), "B2021 voxels (26,792 voxels, 20 subjects, 165 sounds)",
                              _available("b2021")))


def _stimulus_names(stim_meta: np.ndarray) -> list[str]:
    names = []
    for row in stim_meta:
        value = row[0] if stim_meta.dtype.names else row
        value = value.decode() if isinstance(value, bytes) else str(value)
        names.append(value[:-4] if value.endswith(".wav") else value)
    return names


def convert_archive(neural_dir: Path, name: str, out: Path) -> Path:
    """Convert one dataset folder of the extracted archive to netCDF (the only place a pickle is read)."""
    import pandas as pd

    folder = neural_dir / ("NH2015" if name == "nh2015" else "B2021")
    stim_names = _stimulus_names(np.load(neural_dir / "NH2015" / "neural_stim_meta.npy", allow_pickle=False))
    data = np.load(folder / "voxel_features_array.npy", allow_pickle=False)[:N_STIMULI]
    roi_table = pd.read_pickle(folder / "df_roi_meta.pkl")  # archive sha256 accepted by the caller
    if name == "nh2015":
        meta = np.load(folder / "voxel_features_meta.npy", allow_pickle=False)
        keep = meta["n_reps"] == 3
        data, meta = data[:, keep, :], meta[keep]
        subjects = meta["subj_idx"].astype(int)
        hemi = np.array([h.decode() if isinstance(h, bytes) else str(h) for h in meta["hemi"]])
        voxel_ids = meta["voxel_id"].astype(int)
        x, y = meta["x_ras"], meta["y_ras"]
        roi_table = roi_table.set_index("voxel_id").reindex(voxel_ids) if "voxel_id" in roi_table else roi_table
    else:
        subjects = roi_table["subj_idx"].to_numpy().astype(int)
        hemi = roi_table["hemi"].astype(str).to_numpy()
        voxel_ids = np.arange(data.shape[1])
        x, y = roi_table["x_ras"].to_numpy(), roi_table["y_ras"].to_numpy()
    if len(roi_table) != data.shape[1]:
        raise DataError(f"{name}: ROI table has {len(roi_table)} rows for {data.shape[1]} voxels")
    roi = roi_table["roi_label_general"].astype(object).where(roi_table["roi_label_general"].notna(), "none")
    array = xr.DataArray(
        data.astype(np.float64), dims=("stimulus", "target", "repetition"),
        coords={"stimulus": stim_names, "target": [f"{name}_v{v}" for v in voxel_ids],
                "repetition": np.arange(data.shape[2]),
                "subject": ("target", [f"S{s}" for s in subjects]), "hemisphere": ("target", hemi),
                "roi": ("target", np.asarray(roi).astype(str)), "x_ras": ("target", np.asarray(x, float)),
                "y_ras": ("target", np.asarray(y, float))}, name="responses")
    dataset = xr.Dataset({"responses": array}, attrs={"stimulus_set": "natsound165", "kind": "voxels", "synthetic": 0,
                                                      "source": "tuckute_feather_2023/data.tar"})
    atomic_write_bytes(out, lambda handle: handle.write(dataset.to_netcdf(engine="h5netcdf")))
    return out


def fetch_voxels(name: str, dest: str | Path | None = None, accept_sha256: str | None = None) -> Path:
    """Download the archive, accept its sha256 (trust on first use, or ``accept_sha256``), convert to netCDF."""
    root = Path(dest).resolve() if dest else data_root()
    accepted_file = root / "voxels" / "accepted_archive.json"
    accepted = json.loads(accepted_file.read_text()) if accepted_file.is_file() else {}
    url = os.environ.get("BRAINLIKE_VOXEL_URL", DEFAULT_URL)
    (root / "voxels").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root / "voxels") as tmp:
        archive = Path(tmp) / "data.tar"
        digest = download(url, archive, timeout=120)
        expected = accept_sha256 or accepted.get("sha256")
        if expected and digest != expected:
            raise ChecksumError(f"voxel archive sha256 {digest[:16]}... differs from the accepted {expected[:16]}...; "
                                "nothing was converted")
        print(f"voxel archive sha256 {digest} (accepted; recorded in {accepted_file})")
        needed = ["NH2015/neural_stim_meta.npy"] + [f"{'NH2015' if name == 'nh2015' else 'B2021'}/{f}" for f in
                                                    ("voxel_features_array.npy", "df_roi_meta.pkl")]
        if name == "nh2015":
            needed.append("NH2015/voxel_features_meta.npy")
        wanted = {f"data/neural/{n}": Path(tmp) / "neural" / n for n in needed}
        extract_members(archive, wanted)
        out = convert_archive(Path(tmp) / "neural", name, voxel_file(name, root))
    atomic_write(accepted_file, json.dumps({"sha256": digest, "url": url}, indent=1))
    return out


VOXEL_SETS = ("nh2015", "b2021")
"""Datasets built from the voxel archive (fetched by :func:`fetch_voxels`, never downloaded on demand)."""
