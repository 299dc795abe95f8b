"""Task registry and fold protocol on the real data sets (contracts.md section 4)."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.downstream.tasks import TASKS, fold_split, load_task, resolve_tasks
from brainlike.errors import DataError, UnknownNameError


def test_fold_protocol_tests_fold_i_and_validates_on_fold_i_plus_1_cyclic():
    folds = np.array(["1", "2", "3", "4", "5"] * 4)
    order = ["1", "2", "3", "4", "5"]
    for i in range(5):
        split = fold_split(folds, order, i)
        assert split.test_fold == order[i] and split.valid_fold == order[(i + 1) % 5]
        assert set(folds[split.test]) == {order[i]} and set(folds[split.valid]) == {order[(i + 1) % 5]}
        assert len(split.train) == 12
        assert not set(split.train) & (set(split.valid) | set(split.test))
        assert len(split.train) + len(split.valid) + len(split.test) == len(folds)
    assert fold_split(folds, order, 4).valid_fold == "1"


def test_fold_protocol_needs_three_folds():
    with pytest.raises(DataError, match="at least 3 folds"):
        fold_split(np.array(["a", "b"]), ["a", "b"], 0)


def test_resolve_tasks_expands_all_and_suggests_close_names():
    assert resolve_tasks(["all"]) == list(TASKS)
    assert resolve_tasks(["esc10", "all"])[0] == "esc10" and len(resolve_tasks(["esc10", "all"])) == len(TASKS)
    with pytest.raises(UnknownNameError, match="did you mean esc10"):
        resolve_tasks(["esc-10"])


def test_esc10_has_its_official_folds(data_root):
    task = load_task("esc10")
    assert len(task.files) == 400 and len(task.classes) == 10
    assert task.fold_order() == ["1", "2", "3", "4", "5"]
    splits = task.splits()
    assert [(s.test_fold, s.valid_fold) for s in splits] == [("1", "2"), ("2", "3"), ("3", "4"), ("4", "5"),
                                                              ("5", "1")]
    assert all((len(s.train), len(s.valid), len(s.test)) == (240, 80, 80) for s in splits)
    # the fold is the file-name prefix (clips of one Freesound recording stay in one fold)
    assert all(task.files[i].split("/")[1].split("-")[0] == task.folds[i] for i in range(400))


def test_fsdd_official_split_and_speaker_folds(data_root):
    official = load_task("fsdd")
    (split,) = official.splits()
    assert (split.test_fold, split.valid_fold) == ("test", "valid")
    assert (len(split.train), len(split.valid), len(split.test)) == (2400, 300, 300)
    index = np.array([int(f.rsplit("_", 1)[1].split(".")[0]) for f in official.files])
    assert set(index[split.test]) == set(range(5)) and set(index[split.valid]) == set(range(5, 10))
    speaker = load_task("fsdd-speaker")
    splits = speaker.splits()
    assert len(splits) == 6
    names = np.array([f.split("_")[1] for f in speaker.files])
    for s in splits:
        assert set(names[s.test]) == {s.test_fold} and len(s.test) == 500
        assert s.test_fold not in set(names[s.train]) and s.valid_fold not in set(names[s.train])


def test_ravdess_folds_are_actor_independent(data_root):
    task = load_task("ravdess")
    assert len(task.files) == 1440 and len(task.classes) == 8
    actor = np.array([int(f.split("-")[-1].split(".")[0]) for f in task.files])
    for s in task.splits():
        assert not set(actor[s.test]) & set(actor[s.train])
        assert not set(actor[s.valid]) & set(actor[s.train])


def test_waveforms_are_padded_and_cropped_to_the_task_length(data_root):
    task = load_task("fsdd")
    clips = task.subset(12).waveforms()
    assert len(clips) == 12
    assert all(c.dtype == np.float32 and len(c) == 8000 for c in clips)  # 1.0 s at 8 kHz (clips are 0.1-2.3 s)
    ravdess = load_task("ravdess").subset(8).waveforms()
    assert max(len(c) for c in ravdess) <= 64000 and min(len(c) for c in ravdess) > 16000  # cropped to 4 s


def test_subset_is_balanced_fixed_and_identifies_its_clips(data_root):
    task = load_task("esc10")
    sub = task.subset(100)
    assert len(sub.files) == 100
    labels, counts = np.unique(sub.labels, return_counts=True)
    assert len(labels) == 10 and set(counts) == {10}
    assert set(np.unique(sub.folds, return_counts=True)[1]) == {20}
    assert sub.files == task.subset(100).files and sub.checksum != task.checksum
    assert task.subset(None) is task and task.subset(1000) is task


def test_rendered_task_missing_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="brainlike tasks build"):
        load_task("nsynth-pitch")


def test_tasks_list_command_reports_every_task(capsys):
    import json

    from brainlike.cli import main

    assert main(["tasks", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in rows] == list(TASKS)
    assert {r["source"] for r in rows} == {"data", "rendered"}


def test_task_audio_files_lists_the_data_sets(data_root):
    from brainlike.downstream.tasks import task_audio_files

    files = task_audio_files()
    assert sum(f.parent.parent.name == "esc10" for f in files) == 400
    assert sum(f.parent.parent.name == "fsdd" for f in files) == 3000  # listed once although two tasks use it
    assert all(f.is_file() for f in files[:20])


# --------------------------------------------------------------------------------------------------------------------
# Clip sets shared by the tasks of an audio set (set_subset)


def _strata(audio_set):
    from brainlike.downstream.tasks import audio_set_tasks

    tasks = [load_task(n) for n in audio_set_tasks(audio_set)]
    keys = [tuple(str(c[i]) for t in tasks for c in (t.labels, t.folds)) for i in range(len(tasks[0].files))]
    return tasks[0].files, keys


@pytest.mark.parametrize("audio_set, n", [("fsdd", 350), ("esc10", 150), ("ravdess", 500)])
def test_set_subset_is_balanced_over_the_joint_strata(data_root, audio_set, n):
    from collections import Counter

    from brainlike.downstream.tasks import set_subset

    files, keys = _strata(audio_set)
    chosen = set_subset(audio_set, n)
    assert len(chosen) == n == len(set(chosen)) and set(chosen) <= set(files)
    assert chosen == [f for f in files if f in set(chosen)]  # the set's own order
    full, sub = Counter(keys), Counter(k for f, k in zip(files, keys) if f in set(chosen))
    t = min(sub[k] for k in full if sub[k] < full[k])  # the last round-robin level every open stratum reached
    for stratum, size in full.items():  # every stratum: t or t + 1 clips, or all of them
        assert min(size, t) <= sub[stratum] <= min(size, t + 1)
    assert set_subset(audio_set, n) == chosen  # deterministic
    assert set_subset(audio_set, None) == files and set_subset(audio_set, 10 ** 6) == files


def test_set_subset_hand_checked_on_fsdd(data_root):
    """FSDD strata are digit x official split x speaker (180 strata of 5 / 5 / 40 clips): 350 clips are one clip
    of every stratum (180) and a second one of the first 170 strata; both FSDD tasks read them."""
    from collections import Counter

    from brainlike.downstream.tasks import load_task_set, set_subset

    chosen = set(set_subset("fsdd", 350))
    task = load_task("fsdd")
    index = np.array([int(f.rsplit("_", 1)[1].split(".")[0]) for f in task.files])
    keep = np.array([f in chosen for f in task.files])
    split = np.where(index < 5, "test", np.where(index < 10, "valid", "train"))
    digit = np.array([f.split("/")[1].split("_")[0] for f in task.files])
    speaker = np.array([f.split("_")[1] for f in task.files])
    per_stratum = Counter(zip(digit[keep], split[keep], speaker[keep]))
    assert len(per_stratum) == 180 and sorted(Counter(per_stratum.values()).items()) == [(1, 10), (2, 170)]
    for name in ("test", "valid", "train"):
        assert 110 <= int((keep & (split == name)).sum()) <= 120
    a, b = load_task_set("fsdd", {"fsdd": 350}), load_task_set("fsdd-speaker", {"fsdd": 350})
    assert a.files == b.files == [f for f in task.files if f in chosen]
    (only,) = a.splits()
    assert len(only.test) == int((keep & (split == "test")).sum())


def test_data_clip_sets_are_pinned(data_root):
    """The standard clip sets of the data-backed audio sets are the same on every machine (the list of file names
    is pinned by its sha256; the clips themselves are pinned by the sets' SHA256SUMS)."""
    import hashlib

    from brainlike.downstream.tasks import STANDARD_SET_SIZES, set_subset

    digests = {s: hashlib.sha256("\n".join(set_subset(s, STANDARD_SET_SIZES.get(s))).encode()).hexdigest()[:16]
               for s in ("esc10", "fsdd", "ravdess")}
    assert digests == PINNED_CLIP_SETS


PINNED_CLIP_SETS = {"esc10": "f4869d89588e7693", "fsdd": "61754274f5bd726a", "ravdess": "a61ccb70940b2820"}


def test_parse_set_sizes():
    from brainlike.downstream.tasks import STANDARD_SET_SIZES, parse_set_sizes

    assert parse_set_sizes(["fsdd=100", "esc10=40"]) == {"fsdd": 100, "esc10": 40}
    assert parse_set_sizes(["standard"]) == STANDARD_SET_SIZES
    assert parse_set_sizes(["standard", "fsdd=7"])["fsdd"] == 7
    for bad in (["fsd=10"], ["fsdd=0"], ["fsdd"], ["fsdd=x"]):
        with pytest.raises(DataError, match="bad set size"):
            parse_set_sizes(bad)
