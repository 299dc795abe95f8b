"""Markdown tables of variance-partitioning records (the README's "Beyond acoustics" tables).

Each folder holds one ``NAME.json`` per model: the ``--json`` output of

    brainlike score NAME --control spectrotemporal --dataset DATASET --metric regression --json > FOLDER/NAME.json

(pepino2025 folds, the default 1000 bootstrap draws). Rows: trained zoo models (registry order), then the random
twins, then anything else (``melspec``); models whose file is missing are listed on stderr.

    python scripts/partition_table.py wide docs/results/partition-nh2015          # every component as a column
    python scripts/partition_table.py top docs/results/partition-ecog-nh2022 --top 3  # overall + top-3 components
    python scripts/partition_table.py training docs/results/partition-nh2015 docs/results/partition-ecog-nh2022
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def registry_order() -> list[str]:
    """Trained zoo models then their random twins, in registry order (empty if brainlike is not importable)."""
    try:
        from brainlike.models.registry import list_models
    except ImportError:
        return []
    zoo = [m["name"] for m in list_models() if m["family"] == "zoo" and ":" not in m["name"]]
    return zoo + [name + "@random" for name in zoo]


def load(folder: Path) -> dict[str, list[dict]]:
    """Records per model name (file stem)."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def ordered(names: list[str]) -> list[str]:
    """Registry order first, then the rest alphabetically."""
    order = registry_order()
    known = [name for name in order if name in names]
    return known + sorted(name for name in names if name not in order)


def parts(records: list[dict]) -> dict[str, dict[str, dict]]:
    """``{target: {part: record}}`` (target ``all`` is the aggregate, the median over targets)."""
    out: dict[str, dict[str, dict]] = {}
    for record in records:
        out.setdefault(record["target"], {})[record["part"]] = record
    return out


def targets(records: list[dict]) -> list[str]:
    """Per-target names in file order (the aggregate ``all`` left out)."""
    seen: list[str] = []
    for record in records:
        if record["target"] != "all" and record["target"] not in seen:
            seen.append(record["target"])
    return seen


def overall_cells(table: dict[str, dict[str, dict]]) -> list[str]:
    """R2 model, joint, unique model [CI], shared, unique control of the aggregate."""
    agg = table["all"]
    unique = agg["unique_model"]
    return [f"{agg['model']['score']:.3f}", f"{agg['joint']['score']:.3f}",
            f"{unique['score']:.3f} [{unique['ci_low']:.3f}, {unique['ci_high']:.3f}]",
            f"{agg['shared']['score']:.3f}", f"{agg['unique_control']['score']:.3f}"]


HEAD = ["model", "R² model", "R² joint", "unique model [95% CI]", "shared", "unique spectrotemporal"]


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def wide(folder: Path) -> list[str]:
    """One column of unique-model R2 per target."""
    data = load(folder)
    names = ordered(list(data))
    tnames = targets(data[names[0]])
    lines = [row(HEAD + [f"unique {t}" for t in tnames]), row(["---"] * (len(HEAD) + len(tnames)))]
    for name in names:
        table = parts(data[name])
        lines.append(row([name] + overall_cells(table)
                         + [f"{table[t]['unique_model']['score']:.3f}" for t in tnames]))
    return lines


def top(folder: Path, k: int) -> list[str]:
    """Overall columns plus the k targets with the largest unique-model R2 (and the median over targets)."""
    data = load(folder)
    names = ordered(list(data))
    lines = [row(HEAD + [f"largest unique model (top {k} components)"]), row(["---"] * (len(HEAD) + 1))]
    for name in names:
        table = parts(data[name])
        best = sorted(targets(data[name]), key=lambda t: -table[t]["unique_model"]["score"])[:k]
        lines.append(row([name] + overall_cells(table)
                         + [", ".join(f"{t} {table[t]['unique_model']['score']:.3f}" for t in best)]))
    return lines


def control_line(folder: Path) -> str:
    """The control's own R2 (overall and per target), identical in every file."""
    data = load(folder)
    table = parts(next(iter(data.values())))
    per = ", ".join(f"{t} {table[t]['control']['score']:.3f}" for t in targets(next(iter(data.values()))))
    return f"spectrotemporal alone: {table['all']['control']['score']:.3f} overall ({per})"


def training(folders: list[Path]) -> list[str]:
    """Overall unique-model R2 of each trained model next to its random twin, one pair of columns per folder."""
    datas = [load(folder) for folder in folders]
    trained = [n for n in ordered(sorted(set().union(*datas))) if not n.endswith("@random") and n != "melspec"]
    head = ["model"]
    for folder in folders:
        head += [f"{folder.name}: trained", "twin"]
    lines = [row(head), row(["---"] * len(head))]

    def cell(data: dict, name: str) -> str:
        return f"{parts(data[name])['all']['unique_model']['score']:.3f}" if name in data else "-"

    for name in trained:
        cells = [name]
        for data in datas:
            cells += [cell(data, name), cell(data, name + "@random")]
        lines.append(row(cells))
    return lines


def missing(folder: Path) -> list[str]:
    have = set(load(folder))
    return [name for name in registry_order() + ["melspec"] if name not in have]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["wide", "top", "training", "control"])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=3, help="components listed by `top` (default 3)")
    args = parser.parse_args(argv)
    if args.kind == "training":
        lines = training(args.folders)
    else:
        lines = []
        for folder in args.folders:
            if args.kind == "wide":
                lines += wide(folder)
            elif args.kind == "top":
                lines += top(folder, args.top)
            else:
                lines.append(control_line(folder))
    print("\n".join(lines))
    for folder in args.folders:
        gone = missing(folder)
        if gone:
            print(f"{folder}: missing {len(gone)}: {' '.join(gone)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
