"""The committed timed evaluation (docs/results/downstream/rerun-2026-12-06/) covers every model that has committed
downstream results, read every embedding from the cache, and is the figure the docs quote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from load_script import load_script

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "results" / "downstream"
RERUN = DOCS / "rerun-2026-12-06"


@pytest.fixture(scope="module")
def driver():
    return load_script(ROOT / "scripts" / "downstream_full.py")


def _committed_models() -> set[str]:
    return {p.name for p in (DOCS / "models").iterdir() if (p / "downstream.jsonl").is_file()}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_timed_pass_covers_every_committed_model_from_the_cache(driver):
    timing = json.loads((RERUN / "cached_evaluation_timing.json").read_text())
    rows = _jsonl(RERUN / "cached_evaluation_driver_log.jsonl")
    models = _committed_models()
    assert len(models) == 55
    assert timing["cached_only"] and timing["all_embeddings_cached"]
    assert timing["errors"] == 0 and timing["models"] == len(models) == len(rows)
    assert {driver.slug(r["model"]) for r in rows} == models
    assert all(s["cache"] == "cached" and s["n_clips"] == 350 for r in rows for s in r["sets"].values())


def test_fresh_run_embedded_every_committed_model(driver):
    rows = _jsonl(RERUN / "fresh_run_driver_log.jsonl")
    assert {driver.slug(r["model"]) for r in rows} == _committed_models()
    assert all(s["cache"] == "absent" for r in rows for s in r["sets"].values())


def test_docs_quote_the_timed_wall_time():
    wall_s = json.loads((RERUN / "cached_evaluation_timing.json").read_text())["wall_s"]
    figure = f"**{round(wall_s):,} s wall**"
    assert figure in (DOCS / "README.md").read_text()
