"""Stimuli, neural data and fetch on the real data folder and on generated fixtures."""

from __future__ import annotations

import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from brainlike.data.fetch import fetch
from brainlike.data.datasets import load_dataset
from brainlike.data.neural import load_nh2015_components
from brainlike.data.stimuli import load_natsound165, stimulus_number
from brainlike.errors import AudioError, ChecksumError, DataError


def test_natsound165_order_categories_folds(data_root):
    stimuli = load_natsound165(data_root)
    assert len(stimuli) == 165
    assert stimuli.ids[:3] == ["stim5_alarm_clock", "stim7_applause", "stim11_baby_crying"]
    assert stimuli.ids[14] == "stim38_boy_speaking" and stimuli.ids[82] == "stim268_piano"
    assert [stimulus_number(i) for i in stimuli.ids] == sorted(stimulus_number(i) for i in stimuli.ids)
    assert len(set(stimuli.categories)) == 11
    assert np.bincount(stimuli.folds).tolist() == [33] * 5
    wave = stimuli.waveform(0, 20000)
    assert wave.dtype == np.float32 and wave.shape == (40000,)
    assert stimuli.waveform(0).shape == (88200,)


def test_components_aligned_by_name_not_position(data_root):
    raw = load_nh2015_components(data_root)
    assert raw.stimulus_ids[0] == "stim28_big_band_music"
    stimuli = load_natsound165(data_root)
    aligned = raw.align_to(stimuli.ids)
    assert aligned.stimulus_ids == stimuli.ids
    row = raw.stimulus_ids.index("stim5_alarm_clock")
    np.testing.assert_array_equal(aligned.mean_responses()[0], raw.mean_responses()[row])
    assert aligned.target_names == ["lowfreq", "highfreq", "envsounds", "pitch", "speech", "music"]


def _copy_data(data_root: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "data"
    shutil.copytree(data_root / "natsound165", dest / "natsound165")
    shutil.copytree(data_root / "nh2015_components", dest / "nh2015_components")
    for path in dest.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return dest


def test_checksum_mismatch_and_corrupt_wav(data_root, tmp_path):
    dest = _copy_data(data_root, tmp_path)
    wav = dest / "natsound165" / "stimuli" / "wav" / "stim5_alarm_clock.wav"
    data = bytearray(wav.read_bytes())
    data[1000] ^= 0xFF
    wav.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="stim5_alarm_clock.wav"):
        load_natsound165(dest)
    wav.write_bytes(b"RIFF not really a wave file")
    stimuli = load_natsound165(dest, verify=False)
    with pytest.raises(AudioError, match="cannot read audio file .*stim5_alarm_clock.wav"):
        stimuli.waveform(0)


def test_missing_data_folder_error(tmp_path):
    with pytest.raises(DataError, match="natsound165 not found"):
        load_natsound165(tmp_path)
    with pytest.raises(DataError, match="components.mat is missing"):
        load_nh2015_components(tmp_path)


def test_mismatched_stimulus_names(data_root):
    stimuli = load_natsound165(data_root)
    components = load_dataset("nh2015-components")
    with pytest.raises(DataError, match="stimulus name"):
        components.align_to(stimuli.ids[:-1] + ["stim999_not_a_sound"])


@pytest.fixture
def http_mirror(data_root):
    """A local HTTP server laid out like the source repository."""
    import tempfile

    root = Path(tempfile.mkdtemp())
    (root / "stimuli").mkdir()
    shutil.copytree(data_root / "natsound165" / "stimuli" / "wav", root / "stimuli" / "wav")
    shutil.copy(data_root / "natsound165" / "stimuli" / "category_labels.csv", root / "stimuli")
    (root / "data").mkdir()
    shutil.copy(data_root / "nh2015_components" / "components.mat", root / "data")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()
    shutil.rmtree(root)


def test_fetch_from_local_http_server_verifies_sha(http_mirror, tmp_path, monkeypatch):
    url, root = http_mirror
    monkeypatch.setenv("BRAINLIKE_MIRROR", url)
    dest = tmp_path / "fetched"
    fetch("natsound165", dest, show_progress=False)
    fetch("nh2015-components", dest, show_progress=False)
    stimuli = load_natsound165(dest)
    assert len(stimuli) == 165
    assert load_nh2015_components(dest).n_targets == 6
    (root / "data" / "components.mat").write_bytes(b"tampered")
    (dest / "nh2015_components" / "components.mat").unlink()
    with pytest.raises(ChecksumError, match="nothing was written"):
        fetch("nh2015-components", dest, show_progress=False)
    assert not (dest / "nh2015_components" / "components.mat").exists()


def test_fetch_from_file_url(data_root, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror" / "data"
    mirror.mkdir(parents=True)
    shutil.copy(data_root / "nh2015_components" / "components.mat", mirror)
    monkeypatch.setenv("BRAINLIKE_MIRROR", (tmp_path / "mirror").as_uri())
    fetch("nh2015-components", tmp_path / "dest", show_progress=False)
    assert (tmp_path / "dest" / "nh2015_components" / "components.mat").is_file()
