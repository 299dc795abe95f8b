"""scripts/partition_table.py: the README's variance-partitioning tables from the committed JSON records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from load_script import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "partition_table.py"


@pytest.fixture(scope="module")
def tables():
    return load_script(SCRIPT)


def _folder(tmp_path: Path) -> Path:
    """Two models with three targets each; parts obey the identities of methods.md section 10."""
    folder = tmp_path / "partition-x"
    folder.mkdir()
    for model, (m, c, j) in {"yamnet": (0.8, 0.5, 0.82), "yamnet@random": (0.3, 0.5, 0.55)}.items():
        records = []
        for target in ("a", "b", "c", "all"):
            values = {"model": m, "control": c, "joint": j, "unique_model": j - c, "unique_control": j - m,
                      "shared": m + c - j}
            for part, score in values.items():
                records.append({"model": model, "target": target, "part": part, "score": score,
                                "ci_low": score - 0.05, "ci_high": score + 0.05})
        (folder / f"{model}.json").write_text(json.dumps(records))
    return folder


def test_wide_and_top_rows(tables, tmp_path):
    folder = _folder(tmp_path)
    wide = tables.wide(folder)
    assert wide[0].count("unique a") == 1 and len(wide) == 4
    assert wide[2] == "| yamnet | 0.800 | 0.820 | 0.320 [0.270, 0.370] | 0.480 | 0.020 | 0.320 | 0.320 | 0.320 |"
    top = tables.top(folder, 2)
    assert top[3].startswith("| yamnet@random | 0.300 | 0.550 | 0.050 [0.000, 0.100] | 0.250 | 0.250 |")
    assert top[3].endswith("a 0.050, b 0.050 |")


def test_training_pairs_twins(tables, tmp_path):
    lines = tables.training([_folder(tmp_path)])
    assert lines[2] == "| yamnet | 0.320 | 0.050 |"


def test_committed_records_reproduce_readme(tables):
    """Every row of the README's NH2015 table is what the script prints from docs/results/partition-nh2015."""
    readme = (ROOT / "README.md").read_text()
    for line in tables.wide(ROOT / "docs" / "results" / "partition-nh2015")[2:]:
        assert line in readme.replace("|---|", "| --- |")
