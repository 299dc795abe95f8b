"""Voxel datasets from a generated fixture with the McDermott archive's exact file layout."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pandas as pd
import pytest

from brainlike.data.datasets import load_dataset
from brainlike.data.stimuli import load_natsound165
from brainlike.data.voxels import fetch_voxels
from brainlike.errors import ChecksumError, DataError

ROIS = ["Primary", "Anterior", "Lateral", "Posterior", None]


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _pickle(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_pickle(buffer)
    return buffer.getvalue()


def build_archive(path, ids, seed=0):
    """data.tar with data/neural/NH2015 and data/neural/B2021 laid out like the lab's archive (small sizes)."""
    rng = np.random.default_rng(seed)
    order = list(ids)
    rng.shuffle(order)  # the arrays' row order differs from ascending id: loaders must align by name
    stim_meta = np.array([(f"{n}.wav".encode(), 0) for n in order], dtype=[("id", "S64"), ("x", "i4")])
    n_vox = 40
    meta = np.array([(s, b"lh" if v % 2 else b"rh", float(v), float(-v), 100 + v, 3 if v % 10 else 2)
                     for v, s in enumerate(np.repeat(np.arange(1, 5), 10))],
                    dtype=[("subj_idx", "i4"), ("hemi", "S2"), ("x_ras", "f8"), ("y_ras", "f8"),
                           ("voxel_id", "i4"), ("n_reps", "i4")])
    nh_data = rng.standard_normal((165, n_vox, 3))
    nh_roi = pd.DataFrame({"voxel_id": meta["voxel_id"], "subj_idx": meta["subj_idx"],
                           "roi_label_general": [ROIS[v % 5] for v in range(n_vox)]})
    b_data = rng.standard_normal((192, 30, 3))
    b_roi = pd.DataFrame({"subj_idx": np.repeat(np.arange(1, 4), 10), "hemi": ["lh"] * 30,
                          "x_ras": np.arange(30.0), "y_ras": np.arange(30.0),
                          "roi_label_general": [ROIS[v % 4] for v in range(30)]})
    with tarfile.open(path, "w") as tar:
        _add(tar, "data/neural/NH2015/neural_stim_meta.npy", _npy(stim_meta))
        _add(tar, "data/neural/NH2015/voxel_features_array.npy", _npy(nh_data))
        _add(tar, "data/neural/NH2015/voxel_features_meta.npy", _npy(meta))
        _add(tar, "data/neural/NH2015/df_roi_meta.pkl", _pickle(nh_roi))
        _add(tar, "data/neural/B2021/voxel_features_array.npy", _npy(b_data))
        _add(tar, "data/neural/B2021/df_roi_meta.pkl", _pickle(b_roi))
    return order, nh_data, meta, b_data


def test_fetch_convert_and_load_voxel_datasets(tmp_path, data_root, monkeypatch):
    ids = load_natsound165(data_root).ids
    archive = tmp_path / "data.tar"
    order, nh_data, meta, b_data = build_archive(archive, ids)
    monkeypatch.setenv("BRAINLIKE_VOXEL_URL", archive.as_uri())
    dest = tmp_path / "root"
    fetch_voxels("nh2015", dest)
    fetch_voxels("b2021", dest)
    monkeypatch.setenv("BRAINLIKE_DATA", str(dest))
    nh = load_dataset("nh2015").align_to(ids)
    keep = meta["n_reps"] == 3
    assert nh.n_targets == keep.sum() == 36
    row = order.index(ids[0])
    np.testing.assert_allclose(nh.responses.values[0], nh_data[row][keep])
    assert set(nh.target_coord("roi")) == {"Primary", "Anterior", "Lateral", "Posterior", "none"}
    assert len(set(nh.target_coord("subject"))) == 4
    b = load_dataset("b2021").align_to(ids)
    np.testing.assert_allclose(b.responses.values[0], b_data[row])  # first 165 rows, NH2015 order
    assert not list(dest.rglob("*.pkl"))  # pickles are converted, never kept


def test_changed_archive_is_rejected(tmp_path, data_root, monkeypatch):
    ids = load_natsound165(data_root).ids
    archive = tmp_path / "data.tar"
    build_archive(archive, ids)
    monkeypatch.setenv("BRAINLIKE_VOXEL_URL", archive.as_uri())
    dest = tmp_path / "root"
    fetch_voxels("nh2015", dest)
    build_archive(archive, ids, seed=1)
    with pytest.raises(ChecksumError, match="differs from the accepted"):
        fetch_voxels("nh2015", dest)


@pytest.mark.parametrize("bad", ["../evil.npy", "/abs/evil.npy", "link"])
def test_traversal_and_links_rejected(tmp_path, bad, monkeypatch):
    archive = tmp_path / "data.tar"
    with tarfile.open(archive, "w") as tar:
        if bad == "link":
            info = tarfile.TarInfo("data/neural/NH2015/neural_stim_meta.npy")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            _add(tar, bad, b"x")
    monkeypatch.setenv("BRAINLIKE_VOXEL_URL", archive.as_uri())
    with pytest.raises(DataError, match="refusing to extract"):
        fetch_voxels("nh2015", tmp_path / "root")
    assert not (tmp_path / "evil.npy").exists()
