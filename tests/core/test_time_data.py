"""Time-resolved neural data: the time dimension of NeuralDataset, bring-your-own time coordinates, the ECoG
datasets (real shared files and electrode fixtures in the README's exact format), fetch, and --window."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from brainlike.data import ecog
from brainlike.data.custom import load_dataset_file, validate_file
from brainlike.data.neural import NeuralDataset, load_dataset, parse_window
from brainlike.errors import ChecksumError, DataError, ProtocolError

STIMULI = [f"stim{i}_sound" for i in range(6)]


def _timed(values: np.ndarray, times: np.ndarray, name: str = "t") -> NeuralDataset:
    """(stimulus, time, target[, repetition]) values -> NeuralDataset."""
    if values.ndim == 3:
        values = values[..., None]
    array = xr.DataArray(values, dims=("stimulus", "time", "target", "repetition"),
                         coords={"stimulus": STIMULI[: values.shape[0]], "time": times,
                                 "target": [f"x{i}" for i in range(values.shape[2])],
                                 "repetition": np.arange(values.shape[3])})
    return NeuralDataset(name, array)


def test_time_dimension_window_average_and_resample_known_answers():
    rng = np.random.default_rng(0)
    times = np.arange(300) / 100.0  # 100 Hz, 0.00 .. 2.99
    values = rng.standard_normal((6, 300, 2, 2))
    data = _timed(values, times)
    assert data.time_resolved and data.rate == 100.0 and data.times[-1] == pytest.approx(2.99)
    np.testing.assert_allclose(data.mean_time_courses(), values.mean(axis=3))
    with pytest.raises(ProtocolError, match="average it over a window"):
        data.mean_responses()
    averaged = data.window_average(0.0, 2.0)
    assert averaged.attrs["window"] == "0:2" and averaged.attrs["time_bins_averaged"] == 200
    np.testing.assert_allclose(averaged.mean_responses(), values[:, :200].mean(axis=(1, 3)))
    late = data.window_average(0.5, 1.25)  # bins 0.50 .. 1.24
    np.testing.assert_allclose(late.mean_responses(), values[:, 50:125].mean(axis=(1, 3)))
    coarse = data.resample(25.0)  # 4 bins each, aligned at 0
    assert coarse.rate == 25.0 and coarse.responses.sizes["time"] == 75
    np.testing.assert_allclose(coarse.times, np.arange(75) / 25.0)
    np.testing.assert_allclose(coarse.responses.values, values.reshape(6, 75, 4, 2, 2).mean(axis=2))
    assert data.resample(100.0) is data
    with pytest.raises(ProtocolError, match="coarser than the requested 200 Hz"):
        data.resample(200.0)


def test_resample_warns_that_data_were_averaged(caplog):
    data = _timed(np.random.default_rng(1).standard_normal((6, 8, 1)), np.arange(8) / 100.0)
    with caplog.at_level("WARNING"):
        data.resample(50.0)
    assert "averaged into 50 Hz bins" in caplog.text


@pytest.mark.parametrize("times, message", [
    (np.array([0.0, 0.1, 0.25, 0.3]), "not uniform"),
    (np.array([0.0, 0.1, 0.1, 0.2]), "not increasing"),
    (np.array([0.3, 0.2, 0.1, 0.0]), "not increasing"),
    (np.array([0.0, np.nan, 0.2, 0.3]), "NaN or Inf"),
])
def test_bad_time_coordinates_are_one_line_errors(times, message):
    with pytest.raises(DataError, match=message) as info:
        _timed(np.random.default_rng(2).standard_normal((6, 4, 2)), times)
    assert "\n" not in str(info.value)


def test_nan_bin_is_an_error_but_a_missing_repetition_is_not():
    values = np.random.default_rng(3).standard_normal((6, 5, 2, 2))
    values[1, 2, 0, 0] = np.nan  # one repetition missing: fine
    _timed(values, np.arange(5) / 10.0)
    values[1, 2, 0, 1] = np.nan  # every repetition: a NaN bin
    with pytest.raises(DataError, match=r"NaN time bin.*0\.2 s of stimulus 'stim1_sound', target 'x0'"):
        _timed(values, np.arange(5) / 10.0)


def test_unknown_stimulus_names_are_said_and_missing_ones_are_errors(caplog):
    data = _timed(np.random.default_rng(11).standard_normal((6, 4, 2)), np.arange(4) / 10.0)
    with caplog.at_level("WARNING"):
        aligned = data.align_to(STIMULI[:4])
    assert aligned.stimulus_ids == STIMULI[:4] and "2 stimulus name(s) not in the stimulus set" in caplog.text
    with pytest.raises(DataError, match="no responses for 1 stimulus name"):
        data.align_to(STIMULI + ["stim99_other"])


def test_window_parsing_and_empty_windows():
    assert parse_window("0:2") == (0.0, 2.0) and parse_window("-0.1:0.5") == (-0.1, 0.5)
    for bad in ("2", "a:b", "2:1", "1:1"):
        with pytest.raises(ProtocolError):
            parse_window(bad)
    data = _timed(np.random.default_rng(4).standard_normal((6, 10, 2)), np.arange(10) / 10.0)
    with pytest.raises(ProtocolError, match="holds no time bin"):
        data.window_average(5.0, 6.0)


# ---------------------------------------------------------------------------------------------- bring your own


def _write_nc(path: Path, values: np.ndarray, times: np.ndarray, stimuli=STIMULI) -> Path:
    array = xr.DataArray(values, dims=("stimulus", "time", "target"),
                         coords={"stimulus": stimuli, "time": times, "target": ["a", "b"]}, name="responses")
    array.to_dataset().to_netcdf(path, engine="h5netcdf")
    return path


def test_byo_netcdf_and_npz_with_time(tmp_path):
    rng = np.random.default_rng(5)
    values, times = rng.standard_normal((6, 10, 2)), np.arange(10) / 20.0
    nc = load_dataset_file(_write_nc(tmp_path / "d.nc", values, times))
    assert nc.time_resolved and nc.rate == 20.0 and nc.responses.dims == ("stimulus", "time", "target", "repetition")
    np.testing.assert_allclose(nc.mean_time_courses(), values)
    np.savez(tmp_path / "d.npz", responses=values, stimulus=np.array(STIMULI), time=times)
    npz = load_dataset_file(tmp_path / "d.npz")
    np.testing.assert_allclose(npz.mean_time_courses(), values)
    assert any("time-resolved: 10 bins at 20 Hz" in p for p in validate_file(tmp_path / "d.npz", STIMULI))


@pytest.mark.parametrize("case", ["nonuniform", "decreasing", "nan-bin"])
def test_validate_data_cli_rejects_bad_time(tmp_path, case):
    rng = np.random.default_rng(6)
    values, times = rng.standard_normal((6, 10, 2)), np.arange(10) / 20.0
    if case == "nonuniform":
        times[4] += 0.01
    elif case == "decreasing":
        times = times[::-1].copy()
    else:
        values[0, 3, 1] = np.nan
    path = _write_nc(tmp_path / "bad.nc", values, times)
    run = subprocess.run([sys.executable, "-m", "brainlike", "-q", "validate-data", str(path)], capture_output=True,
                         text=True)
    assert run.returncode == 1
    assert {"nonuniform": "not uniform", "decreasing": "not increasing", "nan-bin": "NaN time bin"}[case] in run.stdout


# ---------------------------------------------------------------------------------------------- ECoG, real files


@pytest.fixture(scope="module")
def ecog_root(data_root):
    if not (data_root / "ecog_nh2022" / ecog.COMPONENT_FILE).is_file():
        pytest.skip("ecog_nh2022 not in the data folder")
    return data_root


def test_ecog_components_from_the_real_file(ecog_root):
    import scipy.io

    from brainlike.data.stimuli import load_natsound165

    data = load_dataset("ecog-nh2022")
    assert data.kind == "components" and data.target_names == [f"c{i:02d}" for i in range(1, 16)]
    assert data.responses.shape == (165, 75, 15, 1) and data.rate == 25.0
    np.testing.assert_allclose(data.times, np.arange(75) * 0.04, atol=1e-9)
    assert data.times[-1] == pytest.approx(2.96)
    stimuli = load_natsound165(ecog_root)
    aligned = data.align_to(stimuli.ids)
    raw = scipy.io.loadmat(str(ecog_root / "ecog_nh2022" / ecog.COMPONENT_FILE))
    names = [str(np.asarray(c).ravel()[0]) for c in raw["stim_names"].ravel()]
    row = names.index("stim268_piano.wav")  # aligned by NAME (.wav stripped)
    np.testing.assert_allclose(aligned.mean_time_courses()[stimuli.ids.index("stim268_piano")], raw["R"][row],
                               rtol=1e-6)


def test_ecog_hypothesis_components(ecog_root):
    data = load_dataset("ecog-nh2022-hypothesis")
    assert data.target_names == ["song", "music", "speech"] and data.responses.shape == (165, 75, 3, 1)
    averaged = data.window_average()
    assert averaged.mean_responses().shape == (165, 3)


def _write_electrode_fixtures(ecog_root: Path, dest: Path, rng) -> dict[str, np.ndarray]:
    """The 36 electrode files in the README's format: R float64 (165, 300), t (1, 300), stim_names (1, 165) cell of
    '.wav' names, C (the components file's struct), MATLAB v5; rows in a shuffled stimulus order per file."""
    import scipy.io

    source = scipy.io.loadmat(str(ecog_root / "ecog_nh2022" / ecog.COMPONENT_FILE))
    names = [str(np.asarray(c).ravel()[0]) for c in source["stim_names"].ravel()]
    truth = {}
    for relative in ecog.electrode_files():
        order = rng.permutation(165)
        values = rng.standard_normal((165, 300))
        cells = np.empty((1, 165), dtype=object)
        for j, i in enumerate(order):
            cells[0, j] = np.array([names[i]])
        path = dest / "ecog_nh2022" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(str(path), {"R": values, "t": (np.arange(300) / 100.0)[None, :], "stim_names": cells,
                                     "C": source["C"]}, format="5")
        target = ecog.electrode_target(relative)[0]
        truth[target] = {names[i].removesuffix(".wav"): values[j] for j, i in enumerate(order)}
    return truth


def test_ecog_electrodes_from_fixtures_in_the_readme_format(ecog_root, tmp_path, monkeypatch):
    truth = _write_electrode_fixtures(ecog_root, tmp_path, np.random.default_rng(7))
    sums = {relative: __import__("brainlike.data.checksums", fromlist=["sha256_file"]).sha256_file(
        tmp_path / "ecog_nh2022" / relative) for relative in ecog.electrode_files()}
    monkeypatch.setattr(ecog, "shipped_sums", lambda: sums)
    data = ecog.load_electrodes(tmp_path)
    assert data.kind == "electrodes" and data.responses.shape == (165, 300, 36, 1) and data.rate == 100.0
    assert data.target_names[:2] == ["speech-elec1", "speech-elec2"] and data.target_names[-3:] == [
        "speech-average", "music-average", "song-average"]
    rois = list(data.target_coord("roi"))
    assert rois.count("average") == 3 and rois.count("speech") + rois.count("music") + rois.count("song") == 33
    assert data.attrs["aggregate_exclude_roi"] == "average"
    for target in ("music-elec4", "song-average"):  # every file's rows aligned by name
        t = data.target_names.index(target)
        for stim in ("stim5_alarm_clock", "stim268_piano"):
            s = data.stimulus_ids.index(stim)
            np.testing.assert_allclose(data.mean_time_courses()[s, :, t], truth[target][stim])
    coarse = data.resample(25.0)
    assert coarse.responses.sizes["time"] == 75
    np.testing.assert_allclose(coarse.times, np.arange(75) * 0.04, atol=1e-12)


def test_ecog_electrode_checksums_are_verified(ecog_root, tmp_path):
    _write_electrode_fixtures(ecog_root, tmp_path, np.random.default_rng(8))
    with pytest.raises(ChecksumError, match="speech-elec1-response.mat"):
        ecog.load_electrodes(tmp_path)  # the fixtures are not the pinned files


def test_aggregate_of_electrodes_leaves_out_the_averages():
    from brainlike.align.protocols import TargetScores, regression_records

    rois = ["speech"] * 2 + ["music"] * 2 + ["average"]
    array = xr.DataArray(np.random.default_rng(9).standard_normal((6, 4, 5, 1)),
                         dims=("stimulus", "time", "target", "repetition"),
                         coords={"stimulus": STIMULI, "time": np.arange(4) / 10, "target": list("abcde"),
                                 "repetition": [0], "roi": ("target", rois), "subject": ("target", ["u"] * 5)})
    data = NeuralDataset("e", array, kind="electrodes", attrs={"aggregate_exclude_roi": "average"})
    scores = np.array([[0.1, 0.2, 0.3, 0.4, 0.9]])
    result = TargetScores(scores, np.zeros((1, 5), dtype=int), xr.Dataset())
    records = regression_records(result, model="m", dataset=data, layers=["l"], protocol="p", selection="s")
    overall = next(r for r in records if r["target"] == "all" and "roi" not in r)
    assert overall["n_targets"] == 4 and overall["score"] == pytest.approx(0.25)
    assert {r["roi"] for r in records if "roi" in r} == {"speech", "music", "average"}


def test_fetch_ecog_from_a_mirror_verifies_every_sha256(ecog_root, tmp_path, monkeypatch):
    from brainlike.data import fetch as fetch_module

    mirror = tmp_path / "mirror"
    for relative in ("ecog_component_responses.mat", "hypothesis_driven_components/song.mat"):
        (mirror / "data" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ecog_root / "ecog_nh2022" / relative, mirror / "data" / relative)
    monkeypatch.setenv("BRAINLIKE_MIRROR", mirror.as_uri())
    wanted = {"ecog_component_responses.mat", "hypothesis_driven_components/song.mat"}
    files = [f for f in fetch_module._ecog_files(lambda p: p in wanted)()]
    assert all(f.base == fetch_module.ECOG_BASE and fetch_module.ECOG_COMMIT in f.base for f in files)
    monkeypatch.setitem(fetch_module.FETCHABLE, "ecog-test", (lambda: files, fetch_module._ecog_local))
    root = fetch_module.fetch("ecog-test", tmp_path / "out", show_progress=False)
    assert (root / "ecog_nh2022" / "ecog_component_responses.mat").read_bytes() == (
        ecog_root / "ecog_nh2022" / "ecog_component_responses.mat").read_bytes()
    assert (root / "ecog_nh2022" / "SHA256SUMS").is_file()
    # a tampered mirror file is rejected and nothing is written
    (mirror / "data" / "hypothesis_driven_components" / "song.mat").write_bytes(b"tampered")
    (root / "ecog_nh2022" / "hypothesis_driven_components" / "song.mat").unlink()
    with pytest.raises(ChecksumError):
        fetch_module.fetch("ecog-test", tmp_path / "out", show_progress=False)
    assert not (root / "ecog_nh2022" / "hypothesis_driven_components" / "song.mat").exists()


def test_every_ecog_file_is_fetchable_from_the_pinned_commit():
    from brainlike.data.fetch import ECOG_COMMIT, FETCHABLE

    assert ECOG_COMMIT == "03bb41e95d04c191acd3b76b1c11d7185096f1f3"
    files = FETCHABLE["ecog-nh2022"][0]()
    assert len(files) == 42 and len(FETCHABLE["ecog-nh2022-electrodes"][0]()) == 36
    assert all(f.source == "data/" + f.dest.removeprefix("ecog_nh2022/") for f in files)


# ---------------------------------------------------------------------------------------------- scoring


def test_time_averaged_view_of_a_time_resolved_dataset():
    from brainlike.api import _time_averaged

    data = _timed(np.random.default_rng(10).standard_normal((6, 75, 2)), np.arange(75) / 25.0)
    averaged, keys = _time_averaged(data, None, time_resolved_protocol=False)
    assert keys == {"window": "0:2"} and averaged.attrs["time_bins_averaged"] == 50
    averaged, keys = _time_averaged(data, "1:2.5", time_resolved_protocol=False)
    assert keys == {"window": "1:2.5"} and averaged.attrs["time_bins_averaged"] == 38
    same, keys = _time_averaged(data, None, time_resolved_protocol=True)
    assert same is data and keys == {}


@pytest.mark.slow
def test_score_time_resolved_dataset_under_time_averaged_protocols(ecog_root, tmp_path):
    run = subprocess.run([sys.executable, "-m", "brainlike", "-q", "score", "random-features", "--dataset",
                          "ecog-nh2022-hypothesis", "--json", "--window", "0.5:1.5"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    records = json.loads(run.stdout)
    assert records and all(r["window"] == "0.5:1.5" for r in records)
    assert {r["metric"] for r in records} == {"regression", "rsa"}
    import brainlike

    default = brainlike.score("random-features", dataset="ecog-nh2022-hypothesis", metric="regression",
                              progress=False)
    assert all(r["window"] == "0:2" for r in default)
    bad = subprocess.run([sys.executable, "-m", "brainlike", "-q", "score", "random-features", "--window", "0:2"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no time dimension" in bad.stderr
