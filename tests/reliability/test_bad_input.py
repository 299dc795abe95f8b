"""Bad input: each case gives a one-line error naming the problem, a non-zero exit, and nothing cached."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 16000


def _tone(seconds=0.5, rate=RATE, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _good_folder(folder: Path, n=10, rate=RATE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(folder / f"s{i:02d}.wav", _tone(freq=200 + 50 * i, rate=rate), rate, subtype="PCM_16")
    return folder


def _break(folder: Path, case: str) -> str:
    target = folder / "s03.wav"
    if case == "corrupt":
        data = bytearray(target.read_bytes())
        data[:64] = os.urandom(64)
        target.write_bytes(bytes(data))
    elif case == "truncated":
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif case == "empty":
        target.write_bytes(b"")
    elif case == "silent":
        sf.write(target, np.zeros(RATE // 2, np.float32), RATE, subtype="PCM_16")
    elif case == "non-audio":
        target.write_text("this is a text file, not audio\n" * 20)
    elif case == "nan":
        wave = _tone()
        wave[100] = np.nan
        sf.write(target, wave, RATE, subtype="FLOAT")
    elif case == "mixed-rates":
        sf.write(target, _tone(rate=22050), 22050, subtype="PCM_16")
    return target.name


CASES = {"corrupt": "cannot read audio file", "truncated": "is truncated", "empty": "is empty",
         "silent": "is silent", "non-audio": "cannot read audio file", "nan": "NaN or Inf",
         "mixed-rates": "mixed sample rates"}


def _cli(args, cache: Path):
    env = {**os.environ, "BRAINLIKE_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "brainlike", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_audio_is_a_one_line_error_and_nothing_is_cached(case, tmp_path):
    folder = _good_folder(tmp_path / "stimuli")
    name = _break(folder, case)
    cache = tmp_path / "cache"
    proc = _cli(["extract", "melspec", "--stimuli", str(folder)], cache)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert CASES[case] in lines[0]
    assert name in lines[0] or case == "mixed-rates"
    assert not list(cache.rglob("*.npz"))


def test_good_folder_extracts_and_caches(tmp_path):
    folder = _good_folder(tmp_path / "stimuli")
    cache = tmp_path / "cache"
    proc = _cli(["extract", "melspec", "--stimuli", str(folder)], cache)
    assert proc.returncode == 0, proc.stderr
    assert len(list(cache.rglob("*.npz"))) == 1


def _dataset(tmp_path, ids, values, name="d.npz"):
    path = tmp_path / name
    np.savez(path, responses=values, stimulus=np.array(ids))
    return path


@pytest.fixture(scope="module")
def natsound_ids():
    from brainlike.data.stimuli import load_natsound165

    return load_natsound165().ids


@pytest.mark.parametrize("case,message", [
    ("nan", "NaN for every repetition"), ("inf", "Inf"), ("constant", "constant target"),
    ("duplicated", "duplicated stimulus IDs"), ("missing", "no responses for 1 stimulus name"),
])
def test_bad_responses(case, message, tmp_path, natsound_ids, data_root):
    rng = np.random.default_rng(0)
    values = rng.standard_normal((165, 5, 2))
    ids = list(natsound_ids)
    if case == "nan":
        values[7, 2, :] = np.nan
    elif case == "inf":
        values[7, 2, 0] = np.inf
    elif case == "constant":
        values[:, 1, :] = 3.0
    elif case == "duplicated":
        ids[5] = ids[6]
    elif case == "missing":
        values, ids = values[1:], ids[1:]
    path = _dataset(tmp_path, ids, values)
    cache = tmp_path / "cache"
    proc = _cli(["score", "random-features", "--dataset", str(path)], cache)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not list(cache.rglob("*.npz"))


def test_stimulus_order_is_aligned_by_id_not_position(tmp_path, natsound_ids, data_root):
    from brainlike.api import score

    rng = np.random.default_rng(1)
    values = rng.standard_normal((165, 4, 1))
    straight = _dataset(tmp_path, natsound_ids, values, "a.npz")
    order = rng.permutation(165)
    shuffled = _dataset(tmp_path, [natsound_ids[i] for i in order], values[order], "b.npz")
    a = score("melspec", dataset=str(straight), metric="regression", progress=False)
    b = score("melspec", dataset=str(shuffled), metric="regression", progress=False)
    assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-12)


def test_too_few_stimuli_for_the_folds(tmp_path):
    from brainlike.align.pepino2025 import run_pepino2025
    from brainlike.align.tuckute2023 import make_splits
    from brainlike.errors import ProtocolError

    x = np.random.default_rng(0).standard_normal((6, 3))
    with pytest.raises(ProtocolError, match="every fold needs >= 2"):
        run_pepino2025([x @ x.T], np.random.default_rng(1).standard_normal((6, 2)), np.array([0, 1, 2, 3, 4, 4]))
    with pytest.raises(ProtocolError, match="at least 3 train and 3 test"):
        make_splits(5)
    folder = _good_folder(tmp_path / "few", n=4)
    from brainlike.data.stimuli import load_stimulus_folder

    assert load_stimulus_folder(folder).folds.tolist() == [0, 1, 2, 3]
