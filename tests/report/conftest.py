"""Fixtures of the report tests: a results folder in the contracts.md format (see report_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from report_fixtures import write_results


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return write_results(tmp_path / "results")
