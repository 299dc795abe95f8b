"""Readable tables on the terminal (rich)."""

from __future__ import annotations

import sys
from typing import Iterable, Sequence


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def print_rows(rows: Iterable[dict], columns: Sequence[str], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_fmt(row.get(c)) for c in columns])
    Console(file=sys.stdout, width=160).print(table)


def print_records(records: list[dict]) -> None:
    """One table per (dataset, metric): rows = model x selection x target (plus subject/roi when present)."""
    columns = ["model", "dataset", "metric", "selection", "target", "subject", "roi", "score", "sem", "layer",
               "ceiling", "score_over_ceiling"]
    used = [c for c in columns if any(r.get(c) is not None for r in records)]
    print_rows(records, used, title="brainlike scores")
