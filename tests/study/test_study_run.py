"""Running studies for real (random-features and melspec on the NH2015 components): resumability, adding a
model, the local process pool, the Ray executor on a local head at 127.0.0.1, and the report of a real study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from brainlike.api import score
from brainlike.study import load_study, run_study

MODELS = ["random-features", "melspec"]


def study_file(folder: Path, models: list[str], out: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"study-{len(models)}.toml"
    path.write_text(f"[study]\nname = 'small'\nmodels = {json.dumps(models)}\ndatasets = ['nh2015-components']\n"
                    f"metrics = ['regression', 'rsa']\nout = '{out}'\n")
    return path


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory):
    """An uninterrupted in-process run of the two-model study (also warms the activation cache)."""
    root = tmp_path_factory.mktemp("reference")
    run = run_study(load_study(study_file(root, MODELS, root / "out")), progress=False)
    return run


def test_study_records_equal_direct_scoring(reference):
    assert [u.model for u in reference.computed] == MODELS and reference.reused == []
    direct = score(MODELS, dataset="nh2015-components", metric="all", protocol="pepino2025", progress=False)
    assert reference.records == json.loads(json.dumps(direct))
    on_disk = [json.loads(line) for line in (reference.out / "records.jsonl").read_text().splitlines()]
    assert on_disk == reference.records
    provenance = json.loads((reference.out / "provenance.json").read_text())
    assert provenance["study"]["name"] == "small" and len(provenance["units"]) == 2
    assert set(provenance["models"]) == set(MODELS) and "stimuli" in provenance["data_checksums"]
    assert (reference.out / "records.parquet").exists()
    import xarray as xr

    with xr.open_dataset(reference.out / "detail.nc", engine="h5netcdf") as detail:
        assert list(detail["model"].values) == MODELS and detail["layer"].shape == (2, 5, 6)  # model, fold, target
        assert set(detail["layer"].sel(model="melspec").values.ravel()) <= set(provenance["models"]["melspec"]["layers"])
        assert set(detail["layer"].sel(model="random-features").values.ravel()) == {"random"}
        for row in (r for r in reference.records if r["model"] == "melspec" and r["metric"] == "regression"
                    and r["target"] != "all"):
            assert detail["score"].sel(model="melspec", target=row["target"]).item() == pytest.approx(row["score"])


def test_interrupted_study_resumes_to_identical_records(reference, tmp_path):
    out = tmp_path / "out"
    path = study_file(tmp_path, MODELS, out)
    code = "import sys; from brainlike.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-c", code, "-q", "run", str(path)], env=os.environ.copy(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((out / "units").glob("score-random-features*.json")) and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # the hardest interruption: no cleanup at all
    process.wait()
    finished = sorted(p.name for p in (out / "units").glob("*.json"))
    assert any(name.startswith("score-random-features") for name in finished), finished
    assert not (out / "records.jsonl").exists()
    rerun = run_study(load_study(path), progress=False)
    assert [u.model for u in rerun.reused] == ["random-features"]
    assert [u.model for u in rerun.computed] == ([] if len(finished) == 2 else ["melspec"])
    assert rerun.records == reference.records


def test_adding_a_model_computes_only_the_new_unit(reference, tmp_path, capsys):
    out = tmp_path / "out"
    first = run_study(load_study(study_file(tmp_path, MODELS[:1], out)), progress=False)
    assert [u.model for u in first.computed] == ["random-features"]
    stored = (out / "units").glob("score-random-features*.json")
    mtime = next(stored).stat().st_mtime_ns
    second = run_study(load_study(study_file(tmp_path, MODELS, out)), progress=False)
    assert [u.model for u in second.computed] == ["melspec"]
    assert [u.model for u in second.reused] == ["random-features"]
    assert next((out / "units").glob("score-random-features*.json")).stat().st_mtime_ns == mtime
    assert second.records == reference.records
    from brainlike.cli import main

    capsys.readouterr()
    assert main(["-q", "run", str(study_file(tmp_path, MODELS, out)), "--report"]) == 0  # all reused
    captured = capsys.readouterr()
    table = captured.out.splitlines()
    assert "nh2015-components regression/nested-cv" in table[0]
    assert [line.split()[0] for line in table[2:]] == MODELS
    assert "0 units computed, 2 reused" in captured.err and (out / "report" / "report.html").exists()
    assert [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()] == reference.records


def same_records(a: list[dict], b: list[dict], atol: float = 1e-9) -> None:
    """Equal records: every key and non-float value identical, floats within ``atol`` (BLAS thread counts can
    change the last bits of a sum)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], float) and isinstance(y[key], float):
                assert np.isclose(x[key], y[key], rtol=0, atol=atol), (key, x[key], y[key])
            elif isinstance(x[key], dict):
                assert x[key].keys() == y[key].keys()
                assert np.allclose(list(x[key].values()), list(y[key].values()), rtol=0, atol=atol)
            else:
                assert x[key] == y[key], (key, x[key], y[key])


def test_local_process_pool_equals_in_process(reference, tmp_path):
    run = run_study(load_study(study_file(tmp_path, MODELS, tmp_path / "out")), workers=2, progress=False)
    assert len(run.computed) == 2
    same_records(run.records, reference.records)


def test_ray_executor_on_a_local_head_equals_local(reference, tmp_path):
    """`--executor ray --workers 2`: the executor starts a Ray head on 127.0.0.1 with 2 CPUs and stops it after."""
    if "ray" not in sys.modules:  # before ray is imported: a local head on the loopback interface
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = pytest.importorskip("ray")
    t0 = time.perf_counter()
    remote = run_study(load_study(study_file(tmp_path, MODELS, tmp_path / "out")), executor="ray", workers=2,
                       progress=False)
    print(f"\nray: small study (2 units, warm activation cache) on a local head with 2 CPUs: "
          f"{time.perf_counter() - t0:.1f} s including the head's start and stop")
    assert not ray.is_initialized()
    where = json.loads((tmp_path / "out" / "provenance.json").read_text())["executor"]
    assert where["kind"] == "ray" and where["started_here"] and where["address"].startswith("127.0.0.1:")
    assert where["cluster_cpus"] == 2 and where["units_run"] == 2
    pids = {json.loads(p.read_text())["pid"] for p in (tmp_path / "out" / "units").glob("*.json")}
    assert len(remote.computed) == 2 and os.getpid() not in pids  # the units ran in Ray worker processes
    same_records(remote.records, reference.records)


def test_report_of_a_real_study(reference, tmp_path):
    from brainlike.report import make_report

    report = make_report(reference.out, out=tmp_path / "report")
    assert report.slugs[0] == "ranking-nh2015-components"
    assert "layers-nh2015-components-score" in report.slugs  # per-layer RSA of melspec's 3 layers
    ranking = (tmp_path / "report" / "tables" / "ranking.csv").read_text().splitlines()
    regression = [line for line in ranking if ",regression,nested-cv," in line]
    by_score = sorted([r for r in reference.records if r["target"] == "all" and r["metric"] == "regression"],
                      key=lambda r: -r["score"])
    assert [line.split(",")[4] for line in regression] == [r["model"] for r in by_score]


def test_a_failing_unit_leaves_the_others_stored(data_root, tmp_path, capsys):
    from brainlike.cli import main

    path = tmp_path / "study.toml"
    path.write_text(f"[study]\nmodels = ['random-features']\ndatasets = ['nh2015-components', 'missing/data.nc']\n"
                    f"metrics = ['rsa']\nout = '{tmp_path / 'out'}'\n")
    assert main(["-q", "run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("brainlike: error: 1 of 2 units failed: random-features x ")
    assert "missing/data.nc" in err[0] and err[0].endswith("rerun to retry them")
    assert [p.name.split("-")[0] for p in (tmp_path / "out" / "units").glob("*.json")] == ["score"]
    assert not (tmp_path / "out" / "records.jsonl").exists()


def test_downstream_units_write_task_records(data_root, tmp_path):
    from brainlike.report import make_report

    path = tmp_path / "study.toml"
    path.write_text(f"[study]\nmodels = ['random-features']\ntasks = ['esc10']\nout = '{tmp_path / 'out'}'\n")
    run = run_study(load_study(path), progress=False)
    assert [(u.kind, u.target) for u in run.computed] == [("downstream", "esc10")] and run.records == []
    rows = [json.loads(line) for line in (tmp_path / "out" / "downstream.jsonl").read_text().splitlines()]
    folds = [r for r in rows if r["fold"] is not None]
    (mean,) = [r for r in rows if r["fold"] is None]
    assert len(folds) == 5 and sum(r["n_test"] for r in folds) == 400  # ESC-10: 400 clips in 5 official folds
    assert mean["score"] == pytest.approx(np.mean([r["score"] for r in folds]))
    assert abs(mean["score"] - 0.1) < 0.1  # the null control stays near chance (10 classes)
    report = make_report(tmp_path / "out")
    assert report.slugs == [] and "downstream_tasks" in {p.stem for p in report.tables}
