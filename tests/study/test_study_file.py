"""Study files: parsing, validation, unit planning and keys, the unit store (no scoring here: fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brainlike.cli import main
from brainlike.study import (UNIT_FORMAT, Study, StudyError, Unit, UnitStore, load_study, study_from_dict)

EXAMPLE = Path(__file__).resolve().parents[2] / "studies" / "example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_example_study_parses_to_the_readme_baselines():
    study = load_study(EXAMPLE)
    assert study.models == ["spectrotemporal", "melspec", "random-features"]
    assert study.datasets == ["nh2015-components"]
    assert study.metric == "all"
    assert [u.label for u in study.units()] == [
        "spectrotemporal x nh2015-components (all, pepino2025)",
        "melspec x nh2015-components (all, pepino2025)",
        "random-features x nh2015-components (all, pepino2025)",
    ]


def test_units_cover_every_combination_in_a_fixed_order(tmp_path):
    study = load_study(write(tmp_path, """
        [study]
        models = ["a", "b"]
        datasets = ["d1", "d2"]
        metrics = ["rsa"]
        protocols = ["pepino2025", "tuckute2023"]
        tasks = ["esc10"]
        probe = "linear"
    """))
    units = study.units()
    assert len(units) == 2 * (2 * 2 + 1)
    assert [(u.kind, u.model, u.target, dict(u.params).get("protocol")) for u in units[:5]] == [
        ("score", "a", "d1", "pepino2025"), ("score", "a", "d1", "tuckute2023"),
        ("score", "a", "d2", "pepino2025"), ("score", "a", "d2", "tuckute2023"), ("downstream", "a", "esc10", None)]
    assert all(dict(u.params)["metric"] == "rsa" for u in units if u.kind == "score")
    assert len({u.key for u in units}) == len(units)


def test_unit_key_is_stable_and_depends_on_what_the_unit_computes():
    unit = Unit("score", "melspec", "nh2015-components", (("metric", "all"), ("protocol", "pepino2025")))
    again = Unit.from_dict(json.loads(json.dumps(unit.to_dict())))
    assert again == unit and again.key == unit.key and len(unit.key) == 16
    other = Unit("score", "melspec", "nh2015-components", (("metric", "rsa"), ("protocol", "pepino2025")))
    assert other.key != unit.key
    odd = Unit("score", "hf:org/model name", "data/my set.nc", ())
    assert "/" not in odd.filename and " " not in odd.filename and odd.filename.endswith(f"{odd.key}.json")


@pytest.mark.parametrize("metrics, expected", [(["regression", "rsa"], "all"), (["all"], "all"),
                                               (["rsa"], "rsa"), (["regression"], "regression")])
def test_metric_argument(metrics, expected):
    assert Study("s", ["m"], ["d"], metrics=metrics).metric == expected


@pytest.mark.parametrize("text, message", [
    ("[study]\ndatasets = ['d']\n", "`models` is empty"),
    ("[study]\nmodels = ['m']\n", "at least one of `datasets` or `tasks`"),
    ("[study]\nmodels = ['m', 'm']\ndatasets = ['d']\n", "lists a name twice"),
    ("[study]\nmodels = ['m']\ndatasets = ['d']\nmetrics = ['accuracy']\n", "unknown metric"),
    ("[study]\nmodels = ['m']\ndatasets = ['d']\nprotocols = ['x']\n", "unknown protocol"),
    ("[study]\nmodels = ['m']\ndatasets = ['d']\ncolour = 1\n", "unknown key(s) ['colour']"),
    ("[study]\nmodels = ['m']\ndatasets = ['d']\n[executor]\nkind = 'slurm'\n", "unknown executor"),
    ("[study]\nmodels = ['m']\ndatasets = ['d']\n[executor]\nworkers = 0\n", "workers must be >= 1"),
    ("[study]\nmodels = [1]\ndatasets = ['d']\n", "list of non-empty strings"),
    ("[study]\nmodels = ['m']\ndatasets = ['d']\n[cluster]\n", "unknown table"),
    ("[study\n", "not valid TOML"),
])
def test_bad_study_files_fail_with_one_clear_line(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    with pytest.raises(StudyError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        load_study(path)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("brainlike: error:")


def test_unknown_names_fail_before_anything_runs(tmp_path, capsys):
    path = write(tmp_path, f"[study]\nmodels = ['melspek']\ndatasets = ['nh2015-components']\nout = '{tmp_path / 'o'}'\n")
    assert main(["run", str(path)]) == 2
    assert "unknown model 'melspek'; did you mean melspec" in capsys.readouterr().err  # (, envelope?)
    assert not (tmp_path / "o").exists()
    path.write_text(f"[study]\nmodels = ['melspec']\ndatasets = ['nh2015-componentz']\nout = '{tmp_path / 'o'}'\n")
    assert main(["run", str(path)]) == 2
    assert "unknown dataset 'nh2015-componentz'; did you mean nh2015-components" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_registered_but_unavailable_dataset_fails_before_running(tmp_path, capsys, monkeypatch):
    from brainlike.data.neural import DATASETS, DatasetEntry

    entry = DatasetEntry("study-test-voxels", lambda: None, "a dataset whose files are absent",
                         lambda: "/nowhere/voxels.nc is missing")
    monkeypatch.setitem(DATASETS, entry.name, entry)
    path = write(tmp_path, f"[study]\nmodels = ['melspec']\ndatasets = ['{entry.name}']\nout = '{tmp_path / 'o'}'\n")
    assert main(["run", str(path)]) == 2
    assert f"dataset '{entry.name}' is not available here: /nowhere/voxels.nc is missing" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_dataset_paths_are_resolved_at_load(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = study_from_dict({"study": {"models": ["m"], "datasets": ["data/my.nc", "nh2015-components"]}})
    assert study.datasets == [str(tmp_path / "data" / "my.nc"), "nh2015-components"]


def result_for(unit: Unit, records: list[dict]) -> dict:
    return {"format": UNIT_FORMAT, "unit": unit.to_dict(), "key": unit.key, "records": records, "provenance": {},
            "detail": None, "seconds": 0.1, "host": "h", "pid": 1}


def test_unit_store_round_trip_and_rejects_corrupt_or_foreign_files(tmp_path):
    store = UnitStore(tmp_path)
    unit = Unit("score", "m", "d", (("metric", "all"), ("protocol", "pepino2025")))
    assert store.load(unit) is None
    store.save(result_for(unit, [{"model": "m", "score": 0.5}]))
    assert store.load(unit)["records"] == [{"model": "m", "score": 0.5}]
    assert not list(tmp_path.glob("units/.*.tmp")), "temporary files must be renamed into place"
    store.path(unit).write_text('{"key": "')  # truncated by a crash of some other tool
    assert store.load(unit) is None
    other = Unit("score", "m", "d", (("metric", "rsa"), ("protocol", "pepino2025")))
    store.path(unit).write_text(json.dumps(result_for(other, [])))  # a file that is not this unit's
    assert store.load(unit) is None


def test_dry_run_lists_units_and_their_state(tmp_path, capsys, data_root):
    out = tmp_path / "out"
    path = write(tmp_path, f"[study]\nmodels = ['melspec', 'random-features']\ndatasets = ['nh2015-components']\n"
                           f"out = '{out}'\n")
    study = load_study(path)
    UnitStore(out).save(result_for(study.units()[1], []))
    assert main(["run", str(path), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "todo  melspec x nh2015-components (all, pepino2025)",
        "done  random-features x nh2015-components (all, pepino2025)"]
