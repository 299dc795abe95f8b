"""The self-contained HTML page: inline CSS, figures embedded as base64 SVG, no scripts, no external resources."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from html import escape
from typing import Any

import pandas as pd

from brainlike import __version__

SECTIONS = {
    "ranking": "Model ranking",
    "layers": "Layer profiles",
    "heatmaps": "Components and regions",
    "downstream": "Brain alignment and downstream performance",
    "checkpoints": "Checkpoint curves",
    "comparisons": "Does A beat B? (paired tests on out-of-fold predictions)",
    "similarity": "Representational similarity",
}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:1.5rem;
color:#222;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
nav ul{columns:2;padding-left:1.2rem}figure{margin:1.2rem 0;padding:.6rem;border:1px solid #eee;border-radius:6px}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}figcaption{font-size:.9rem;color:#444;margin-top:.4rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}th,td{border:1px solid #ddd;padding:.2rem .5rem;
text-align:left;vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-size:.8rem;background:#f7f7f7}pre{padding:.5rem;overflow-x:auto}.muted{color:#777}
"""


def render(title: str, figures: list[tuple[Any, bytes]], tables: dict[str, pd.DataFrame],
           provenance: list[tuple[str, dict[str, Any]]], folders: list[str]) -> str:
    """Build the HTML page.

    Parameters
    ----------
    title : str
        Page title.
    figures : list of (ReportFigure, svg bytes)
        Figures in report order with their SVG rendering.
    tables : dict
        ``{"ranking": frame, ...}`` shown in their sections (``ranking``, ``downstream``).
    provenance : list of (str, dict)
        Each provenance file (``provenance.json``, ``downstream_provenance.json``) and its contents.
    folders : list of str
        The results folders the report was made from.
    """
    by_section: dict[str, list[tuple[Any, bytes]]] = {}
    for figure, svg in figures:
        by_section.setdefault(figure.section, []).append((figure, svg))
    body = [_header(title, folders), _toc(by_section, tables)]
    for section, heading in SECTIONS.items():
        if section in by_section or (section in tables and not tables[section].empty):
            body.append(_section(section, heading, by_section.get(section, []), tables.get(section)))
    body.append(_provenance(provenance))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>{CSS}</style>\n</head>\n"
            "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def _header(title: str, folders: list[str]) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sources = ", ".join(f"<code>{escape(f)}</code>" for f in folders)
    return (f"<header><h1>{escape(title)}</h1><p class=\"muted\">brainlike {escape(__version__)}, generated {when} "
            f"from {sources}.</p></header>")


def _toc(by_section: dict[str, list[Any]], tables: dict[str, pd.DataFrame]) -> str:
    items = []
    for section, heading in SECTIONS.items():
        if section in by_section or (section in tables and not tables[section].empty):
            items.append(f"<li><a href=\"#{section}\">{escape(heading)}</a></li>")
    items.append("<li><a href=\"#provenance\">Provenance</a></li>")
    return "<nav><ul>" + "".join(items) + "</ul></nav>"


def _section(section: str, heading: str, figures: list[tuple[Any, bytes]], table: pd.DataFrame | None) -> str:
    parts = [f"<section id=\"{section}\"><h2>{escape(heading)}</h2>"]
    if table is not None and not table.empty:
        parts.append(table_html(table))
    for figure, svg in figures:
        parts.append(_figure(figure, svg))
    parts.append("</section>")
    return "\n".join(parts)


def _figure(figure: Any, svg: bytes) -> str:
    data = base64.b64encode(svg).decode("ascii")
    links = (f" <a href=\"figures/{escape(figure.slug)}.png\">PNG</a> "
             f"<a href=\"figures/{escape(figure.slug)}.svg\">SVG</a>")
    return (f"<figure id=\"fig-{escape(figure.slug)}\" class=\"report-figure\"><h3>{escape(figure.title)}</h3>"
            f"<img alt=\"{escape(figure.title)}\" src=\"data:image/svg+xml;base64,{data}\">"
            f"<figcaption>{escape(figure.caption)}{links}</figcaption></figure>")


def table_html(frame: pd.DataFrame, digits: int = 3) -> str:
    """A plain HTML table; floats rounded, missing values empty."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                text = "" if pd.isna(value) else f"{value:.{digits}f}"
                cells.append(f"<td class=\"num\">{text}</td>")
            else:
                cells.append(f"<td>{escape('' if value is None else str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


KEY_FACTS = ("brainlike_version", "brainlike", "git_commit", "versions", "python", "command", "kind", "executor",
             "study.name", "study.sha256", "seed", "seeds", "protocol", "metrics", "protocol_parameters", "probe",
             "data_checksums", "data", "device", "started", "start_time", "finished", "end_time", "written")


def _provenance(files: list[tuple[str, dict[str, Any]]]) -> str:
    parts = ["<section id=\"provenance\"><h2>Provenance</h2>",
             "<p>Versions, seeds, protocol parameters, data checksums and model weights recorded with each results "
             "folder; the full files are folded below each table.</p>"]
    if not files:
        parts.append("<p class=\"muted\">no provenance file in the results folder(s)</p>")
    for path, record in files:
        parts.append(f"<h3><code>{escape(path)}</code></h3>")
        rows = [(k, v) for k, v in _flatten(record) if k.startswith(KEY_FACTS)]
        rows += [(f"models.{name}.weights_id", str(info.get("weights_id")))
                 for name, info in _models(record).items()]
        parts.append("<table>" + "".join(f"<tr><th>{escape(k)}</th><td><code>{escape(v)}</code></td></tr>"
                                         for k, v in rows) + "</table>")
        text = json.dumps(record, indent=1, default=str)
        parts.append(f"<details><summary>full file ({len(text):,} characters)</summary><pre>{escape(text)}</pre>"
                     "</details>")
    parts.append("</section>")
    return "\n".join(parts)


def _models(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    models = record.get("models")
    if isinstance(models, dict):
        return {str(k): v for k, v in models.items() if isinstance(v, dict)}
    if isinstance(models, list):
        return {str(m.get("name")): m for m in models if isinstance(m, dict)}
    return {}


def _flatten(node: Any, prefix: str = "", limit: int = 400) -> list[tuple[str, str]]:
    """``[("versions.numpy", "2.4.0"), ...]``; lists of scalars stay one row; long values are shortened."""
    if isinstance(node, dict) and node:
        return [pair for key, value in node.items() for pair in _flatten(value, f"{prefix}{key}.", limit)]
    if isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        return [pair for i, value in enumerate(node) for pair in _flatten(value, f"{prefix}{i}.", limit)]
    text = node if isinstance(node, str) else json.dumps(node)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text)} characters)"
    return [(prefix.rstrip("."), text)]
