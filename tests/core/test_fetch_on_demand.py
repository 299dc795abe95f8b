"""Fresh-machine defaults: a pinned dataset missing from the default data folder is downloaded on first use.

A ``file://`` mirror laid out like the source repository stands in for GitHub (``BRAINLIKE_MIRROR``); the default data
folder is redirected to a temporary one (``XDG_DATA_HOME``) and ``BRAINLIKE_DATA`` is unset, as on a new machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from brainlike.data.datasets import load_dataset
from brainlike.data.stimuli import load_natsound165
from brainlike.errors import ChecksumError, DataError


@pytest.fixture
def fresh_machine(tmp_path, monkeypatch):
    """No BRAINLIKE_DATA, an empty default data folder; returns that folder."""
    monkeypatch.delenv("BRAINLIKE_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    from brainlike.config import data_root

    assert data_root() == (tmp_path / "xdg" / "brainlike").resolve()
    return data_root()


@pytest.fixture
def mirror(data_root, tmp_path, monkeypatch):
    """A file:// copy of the source repository's layout; returns its folder."""
    root = tmp_path / "mirror"
    shutil.copytree(data_root / "natsound165" / "stimuli" / "wav", root / "stimuli" / "wav")
    shutil.copy(data_root / "natsound165" / "stimuli" / "category_labels.csv", root / "stimuli")
    (root / "data").mkdir()
    shutil.copy(data_root / "nh2015_components" / "components.mat", root / "data")
    monkeypatch.setenv("BRAINLIKE_MIRROR", root.as_uri())
    return root


def test_scoring_on_a_fresh_machine_fetches_the_pinned_files(fresh_machine, mirror, data_root, capsys,
                                                              monkeypatch):
    import brainlike

    results = brainlike.score(["melspec"], dataset="nh2015-components", cache=False, progress=False)
    fetched = fresh_machine / "nh2015_components" / "components.mat"
    assert fetched.read_bytes() == (data_root / "nh2015_components" / "components.mat").read_bytes()
    assert len(list((fresh_machine / "natsound165" / "stimuli" / "wav").glob("*.wav"))) == 165
    assert "downloading its sha256-pinned files" in capsys.readouterr().err
    monkeypatch.setenv("BRAINLIKE_DATA", str(data_root))  # the same numbers as from the real data folder
    reference = brainlike.score(["melspec"], dataset="nh2015-components", cache=False, progress=False)
    columns = ["model", "layer", "target", "metric", "score"]
    assert results.to_frame()[columns].equals(reference.to_frame()[columns])


def test_offline_keeps_the_clear_error_and_writes_nothing(fresh_machine, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLIKE_MIRROR", (tmp_path / "no-such-mirror").as_uri())
    with pytest.raises(DataError) as info:
        load_dataset("nh2015-components")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("nh2015-components not found") and "brainlike fetch nh2015-components" in message
    assert "the automatic download failed" in message
    assert not list(Path(fresh_machine).rglob("*.mat"))


def test_tampered_mirror_is_refused(fresh_machine, mirror):
    (mirror / "data" / "components.mat").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="nothing was written"):
        load_dataset("nh2015-components")
    assert not (fresh_machine / "nh2015_components" / "components.mat").exists()


def test_an_explicit_data_folder_is_never_filled_unasked(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("BRAINLIKE_DATA", str(tmp_path / "chosen"))
    with pytest.raises(DataError) as info:
        load_natsound165()
    assert "brainlike fetch natsound165" in str(info.value) and "automatic download" not in str(info.value)
    assert not (tmp_path / "chosen").exists()


def test_the_voxel_archive_is_never_fetched_on_demand(fresh_machine, tmp_path, monkeypatch):
    """Trust on first use stays explicit: `brainlike fetch nh2015`, even when the archive URL would answer."""
    archive = tmp_path / "data.tar"
    archive.write_bytes(b"an archive that must not be downloaded")
    monkeypatch.setenv("BRAINLIKE_VOXEL_URL", archive.as_uri())
    with pytest.raises(DataError, match="brainlike fetch nh2015"):
        load_dataset("nh2015")
    assert not (Path(fresh_machine) / "voxels").exists()
