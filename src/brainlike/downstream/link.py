"""The link between brain alignment and downstream performance across models (Pepino et al. 2025, Table 1).

Every brain score (one per dataset x metric x protocol x selection [x roi] x target: the aggregate ``target: all``
and, for datasets with at most ``MAX_TARGETS`` targets such as the six NH2015 components, each target; rows of one
subject are left out) is
correlated across models with the global downstream score and with each task's fold-mean score: Pearson r (as
``scipy.stats.linregress``) and Spearman rho, each with its p-value and a percentile bootstrap confidence interval
over models (models resampled with replacement; resamples where either variable is constant are dropped), and one
over model families (:data:`FAMILIES`: families resampled with replacement).

Subsets of models (:data:`SUBSETS`): ``all``; ``trained`` (pretrained models only: no random twins, no baselines,
no random-features control); ``twins`` (the random-init twins ``NAME@random`` only). A twin that is the same network
as another (:data:`SAME_NETWORK_TWINS`: one architecture, one seed) counts once, in ``all`` and ``twins``. The
global downstream score
is recomputed within each subset (:func:`brainlike.downstream.evaluate.global_scores` on the subset's records).
Per subset and brain score kind, the per-task x per-target correlations get Benjamini-Hochberg q-values
(``pearson_q``, ``spearman_q``) across tasks x targets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from brainlike.align.stats import correlate
from brainlike.errors import BrainlikeError

__all__ = ["N_BOOTSTRAP", "BRAIN_KEY", "MAX_TARGETS", "LinkInputs", "read_inputs", "brain_table", "downstream_table",
           "link", "brain_label", "table1", "scatter_plots", "write_link", "SAME_NETWORK_TWINS"]

N_BOOTSTRAP = 2000
BRAIN_KEY = ("dataset", "metric", "protocol", "selection", "roi", "control", "part", "target")
MAX_TARGETS = 32
SUBSETS = ("all", "trained", "twins")

#: Model families for the family bootstrap: models that share an architecture design or a training source count as
#: one draw. A random twin ``NAME@random`` belongs to the family of ``NAME`` (it keeps the architecture, the one
#: thing it shares). Models not listed form a family of their own (named after the model).
FAMILIES: dict[str, tuple[str, ...]] = {
    "whisper": ("whisper-base", "whisper-tiny.en"),  # one architecture and training set, two sizes
    "crepe": ("crepe-full", "crepe-tiny"),  # one architecture, two capacities, same training data
    "tempocnn": ("tempocnn-cnn", "tempocnn-fcn", "tempocnn-deeptemp", "tempocnn-deepsquare",
                 "tempocnn-shallowtemp", "tempocnn-mazurka"),  # one author, one task, shared training sets
    "musicnn": ("musicnn-mtt", "musicnn-msd", "musicnn-vgg-mtt", "musicnn-vgg-msd"),  # two architectures x two sets
    "dnsmos": ("dnsmos-p808", "dnsmos-p835"),  # DNS Challenge MOS predictors, same ratings source
}


#: Random twins that are the same network as another twin: the two trained models share one architecture and the
#: twins one seed, so their weights, activations and scores are identical (tested in tests/downstream/test_link.py).
#: The key is dropped from a subset whenever the value is in it, so a pair counts as one model.
SAME_NETWORK_TWINS: dict[str, str] = {
    "musicnn-msd@random": "musicnn-mtt@random",
    "musicnn-vgg-msd@random": "musicnn-vgg-mtt@random",
}


def model_family(spec: str) -> str:
    """The family of a model spec (:data:`FAMILIES`; a twin's family is its model's; else the model itself)."""
    base = spec[: -len("@random")] if spec.endswith("@random") else spec
    for family, members in FAMILIES.items():
        if base in members:
            return family
    return base


def model_kind(spec: str) -> str:
    """``twin`` (``NAME@random``), ``baseline`` (the registry's baseline family, random-features included) or
    ``trained``."""
    from brainlike.models.registry import MODELS, discover

    if spec.endswith("@random"):
        return "twin"
    discover()
    entry = MODELS.get(spec)
    return "baseline" if entry is not None and entry.family == "baseline" else "trained"


def subset_models(models: Sequence[str], subset: str) -> list[str]:
    """The models of ``subset`` (:data:`SUBSETS`) among ``models``, in their order; a twin of
    :data:`SAME_NETWORK_TWINS` is left out when the twin it duplicates is present."""
    if subset not in SUBSETS:
        raise BrainlikeError(f"unknown model subset {subset!r}; choose from {', '.join(SUBSETS)}")
    present = set(models)
    distinct = [m for m in models if SAME_NETWORK_TWINS.get(m) not in present]
    if subset == "all":
        return distinct
    wanted = "trained" if subset == "trained" else "twin"
    return [m for m in distinct if model_kind(m) == wanted]


@dataclass
class LinkInputs:
    """Brain and downstream records gathered from results folders or files."""

    brain: list[dict[str, Any]]
    downstream: list[dict[str, Any]]
    sources: list[str]


def read_inputs(paths: Sequence[str | Path]) -> LinkInputs:
    """Read results folders (or ``.jsonl`` files) through :meth:`brainlike.results.Results.load`.

    A file named ``downstream*.jsonl`` is read as downstream records, any other .jsonl as brain records. Later
    inputs override earlier ones for the same model and score.
    """
    from brainlike.results import Results

    results = Results.load(*paths)
    return LinkInputs(results.records, results.downstream, [str(p) for p in results.sources])


def brain_table(records: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, float]]:
    """``{brain key: {model: score}}`` from brain records without a subject: the ``target: all`` aggregates, and
    the per-target rows of datasets with at most ``MAX_TARGETS`` targets (voxel-level rows are left out)."""
    table: dict[tuple, dict[str, float]] = {}
    targets: dict[tuple, set] = {}
    for r in records:
        if r.get("subject") is not None or r.get("score") is None or r.get("target") is None:
            continue
        key = tuple(r.get(k) for k in BRAIN_KEY)
        table.setdefault(key, {})[r["model"]] = float(r["score"])
        if r["target"] != "all":
            targets.setdefault(key[:-1], set()).add(r["target"])
    crowded = {group for group, names in targets.items() if len(names) > MAX_TARGETS}
    ordered = sorted(table, key=lambda k: (k[:-1] in crowded, k[-1] != "all"))  # aggregates first
    return {k: table[k] for k in ordered if k[-1] == "all" or k[:-1] not in crowded}


def downstream_table(records: Sequence[dict[str, Any]], probe: str | None = None) -> tuple[str, dict[str, dict]]:
    """``(probe, {"global" or task: {model: score}})``: fold-mean task scores and the global score recomputed over
    the models present by :func:`brainlike.downstream.evaluate.global_scores` (rows ``task: global`` in the inputs
    are ignored). ``probe`` defaults to the most frequent."""
    from brainlike.downstream.evaluate import global_scores, task_means

    means = task_means(records)
    if not means:
        raise BrainlikeError("no downstream task scores in the inputs (run `brainlike downstream ... --out DIR`)")
    probes = [r["probe"] for r in means]
    probe = probe or max(set(probes), key=probes.count)
    means = [r for r in means if r["probe"] == probe]
    if not means:
        raise BrainlikeError(f"no downstream records for probe {probe!r}")
    columns: dict[str, dict[str, float]] = {}
    for g in global_scores(means, probe):
        columns.setdefault("global", {})[g["model"]] = g["score"]
    for r in means:
        columns.setdefault(r["task"], {})[r["model"]] = float(r["score"])
    return probe, columns


def link(inputs: LinkInputs, *, probe: str | None = None, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0,
         subsets: Sequence[str] = ("all",)) -> list[dict[str, Any]]:
    """One row per (model subset, brain score, downstream score) with the correlations across their common models.

    For each subset the downstream records are restricted to the subset's models before the global score is
    computed (z-scores within the subset), and only the subset's models enter the correlations. Rows carry
    ``subset``, the family bootstrap CIs (:func:`brainlike.align.stats.correlate` with ``groups``) and the
    Benjamini-Hochberg q-values of :func:`add_fdr`.
    """
    brains = brain_table(inputs.brain)
    if not brains:
        raise BrainlikeError("no aggregate brain scores (target: all) in the inputs (run `brainlike score ... --out`)")
    for subset in subsets:
        subset_models([], subset)  # fail fast on unknown names
    every = list(dict.fromkeys(r["model"] for r in inputs.downstream))
    rows = []
    for subset in subsets:
        keep = set(subset_models(every, subset))
        records = [r for r in inputs.downstream if r["model"] in keep]
        if not records and inputs.downstream:
            raise BrainlikeError(f"no downstream records of the {subset!r} models in the inputs")
        probe_used, columns = downstream_table(records, probe)
        for key, brain in brains.items():
            for name in ["global"] + sorted(c for c in columns if c != "global"):
                task = columns.get(name, {})
                models = [m for m in brain if m in task and m in keep]
                stats_ = correlate(np.array([brain[m] for m in models]), np.array([task[m] for m in models]),
                                   n_bootstrap=n_bootstrap, seed=seed, groups=np.array([model_family(m) for m in models]))
                rows.append({"subset": subset, **dict(zip(("brain_" + k for k in BRAIN_KEY), key)),
                             "downstream": name, "probe": probe_used, **stats_, "models": models,
                             "families": [model_family(m) for m in models],
                             "brain_scores": [brain[m] for m in models],
                             "downstream_scores": [task[m] for m in models]})
    return add_fdr(rows)


def add_fdr(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``pearson_q`` and ``spearman_q`` (Benjamini-Hochberg) to the per-task x per-target rows.

    One family of tests per subset and brain score kind (dataset, metric, protocol, selection, roi): every row
    whose downstream score is a task (not ``global``) and whose brain target is a single target (not ``all``).
    Other rows get None.
    """
    from brainlike.align.stats import benjamini_hochberg

    out = [{**r, "pearson_q": None, "spearman_q": None} for r in rows]
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(out):
        if r["downstream"] != "global" and r.get("brain_target") not in (None, "all"):
            key = (r.get("subset"),) + tuple(r.get("brain_" + k) for k in BRAIN_KEY[:-1])
            groups.setdefault(key, []).append(i)
    for members in groups.values():
        for name in ("pearson", "spearman"):
            q = benjamini_hochberg(np.array([out[i][f"{name}_p"] for i in members], dtype=object))
            for i, value in zip(members, q):
                out[i][f"{name}_q"] = None if np.isnan(value) else float(value)
    return out


def brain_label(row: dict[str, Any]) -> str:
    """Short label of a row's brain score, e.g. ``nh2015-components regression (nested-cv)``."""
    text = f"{row['brain_dataset']} {row['brain_metric']} ({row['brain_selection']}"
    text += f", {row['brain_protocol']})" if row.get("brain_protocol") else ")"
    text += f" {row['brain_roi']}" if row.get("brain_roi") else ""
    text += f" {row['brain_part']} vs {row['brain_control']}" if row.get("brain_part") else ""
    return text + (f" [{row['brain_target']}]" if row.get("brain_target") not in (None, "all") else "")


def table1(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table like the paper's Table 1: Pearson r (95% CI) of each brain score with the global score and
    each task, models in common in the header; one table per model subset when there are several."""
    if not rows:
        return "(no pairs)"
    subsets = list(dict.fromkeys(r.get("subset", "all") for r in rows))
    if len(subsets) > 1:
        return "\n\n".join(f"### {name} models\n\n" + table1([r for r in rows if r.get("subset", "all") == name])
                            for name in subsets)
    columns = list(dict.fromkeys(r["downstream"] for r in rows))
    brains = list(dict.fromkeys(brain_label(r) for r in rows))
    cell = {(brain_label(r), r["downstream"]): r for r in rows}

    def text(b: str, c: str) -> str:
        r = cell.get((b, c))
        if r is None or r["pearson_r"] is None:
            return "n/a"
        ci = f" [{r['pearson_ci_low']:.2f}, {r['pearson_ci_high']:.2f}]" if r["pearson_ci_low"] is not None else ""
        stars = "*" if r["pearson_p"] < 0.05 else ""
        return f"{r['pearson_r']:.2f}{stars}{ci} (n={r['n_models']})"

    lines = _markdown_grid("brain score", brains, columns, text)
    return "\n".join(lines) + "\n\nPearson r across models [95% bootstrap CI]; * p < 0.05."


def _markdown_grid(corner: str, rows: Sequence[str], columns: Sequence[str], text) -> list[str]:
    """Lines of a markdown table: a header of ``columns``, one line per name in ``rows`` with ``text(row, col)``."""
    lines = [f"| {corner} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    return lines + [f"| {name} | " + " | ".join(text(name, c) for c in columns) + " |" for name in rows]


def _ci(row: dict[str, Any], name: str) -> str:
    low, high = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    return "n/a" if low is None else f"[{low:.2f}, {high:.2f}]"


def summary_table(rows: Sequence[dict[str, Any]], downstream: str = "global") -> str:
    """Markdown: per subset and aggregate brain score (target ``all``), Pearson r and Spearman rho with the
    ``downstream`` score, each with its bootstrap CI over models and over families."""
    lines = ["| subset | brain score | n models (families) | Pearson r | CI models | CI families | Spearman rho "
             "| CI models | CI families |", "|---" * 9 + "|"]
    for r in rows:
        if r["downstream"] != downstream or r.get("brain_target") not in (None, "all") or r["pearson_r"] is None:
            continue
        lines.append(f"| {r.get('subset', 'all')} | {brain_label(r)} | {r['n_models']} ({r.get('n_families')}) | "
                     f"{r['pearson_r']:.3f} | {_ci(r, 'pearson')} | {_ci(r, 'pearson_family')} | "
                     f"{r['spearman_rho']:.3f} | {_ci(r, 'spearman')} | {_ci(r, 'spearman_family')} |")
    return "\n".join(lines)


def fdr_table(rows: Sequence[dict[str, Any]], subset: str = "trained", alpha: float = 0.05) -> str:
    """Markdown, one table per brain score kind: tasks x targets, Pearson r with its Benjamini-Hochberg q-value
    (across tasks x targets, :func:`add_fdr`); cells with q <= ``alpha`` in bold."""
    chosen = [r for r in rows if r.get("subset", "all") == subset and r.get("pearson_q") is not None]
    out = []
    for kind in dict.fromkeys(brain_label({**r, "brain_target": "all"}) for r in chosen):
        cells = [r for r in chosen if brain_label({**r, "brain_target": "all"}) == kind]
        targets = list(dict.fromkeys(r["brain_target"] for r in cells))
        tasks = list(dict.fromkeys(r["downstream"] for r in cells))
        lookup = {(r["downstream"], r["brain_target"]): r for r in cells}

        def text(task: str, target: str) -> str:
            r = lookup.get((task, target))
            if r is None or r["pearson_r"] is None:
                return "n/a"
            value = f"{r['pearson_r']:.2f} ({r['pearson_q']:.3f})"
            return f"**{value}**" if r["pearson_q"] <= alpha else value

        lines = [f"**{kind}**, {subset} models (n = {cells[0]['n_models']}): Pearson r (BH q)", ""]
        lines += _markdown_grid("task", tasks, targets, text)
        n_found = sum(r["pearson_q"] <= alpha for r in cells)
        lines += ["", f"{n_found} of {len(cells)} cells at FDR q <= {alpha} (bold)."]
        out.append("\n".join(lines))
    return "\n\n".join(out) if out else "(no per-task x per-target rows)"


def scatter_plots(rows: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """One PNG per pair (brain score on x, downstream score on y, models labelled, least-squares line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(out_dir) / "link_plots"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        if row["pearson_r"] is None:
            continue
        x, y = np.array(row["brain_scores"]), np.array(row["downstream_scores"])
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(x, y, s=18)
        for model, xi, yi in zip(row["models"], x, y):
            ax.annotate(model, (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
        grid = np.linspace(x.min(), x.max(), 2)
        ax.plot(grid, row["intercept"] + row["slope"] * grid, lw=1)
        ax.set_xlabel(brain_label(row))
        ax.set_ylabel(f"{row['downstream']} ({row['probe']} probe)")
        ax.set_title(f"{row.get('subset', 'all')} models: r = {row['pearson_r']:.2f} (p = {row['pearson_p']:.2g}), "
                     f"rho = {row['spearman_rho']:.2f}, n = {row['n_models']}", fontsize=8)
        fig.tight_layout()
        name = f"{brain_label(row)}__{row['downstream']}"
        name = name if row.get("subset", "all") == "all" else f"{row['subset']}__{name}"
        slug = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)
        path = folder / f"{slug}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def _shown_path(source: str) -> str:
    """``source`` relative to the working directory when it lies below it (tables committed from a checkout do not
    carry the machine's absolute paths), else as given."""
    try:
        return str(Path(source).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(source)


def write_link(rows: Sequence[dict[str, Any]], out_dir: str | Path, sources: Sequence[str], *,
               plots: bool = True) -> Path:
    """Write ``link.jsonl``, ``link.csv``, ``link_table.md`` (summary, Table 1, FDR tables) and the scatter plots
    (one per pair; ``plots=False`` skips them) into ``out_dir``."""
    import pandas as pd

    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "link.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    flat = [{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()} for r in rows]
    pd.DataFrame(flat).to_csv(out / "link.csv", index=False, lineterminator="\n")
    text = ("## Global score: correlations with bootstrap CIs over models and over families\n\n"
            + summary_table(rows) + "\n\n## Table 1 (every brain score x task)\n\n" + table1(rows))
    if any(r.get("pearson_q") is not None for r in rows):
        subsets = list(dict.fromkeys(r.get("subset", "all") for r in rows))
        text += "".join(f"\n\n## Per task x per target, Benjamini-Hochberg FDR ({name} models)\n\n"
                        + fdr_table(rows, name) for name in subsets)
    (out / "link_table.md").write_text(text + "\n\nInputs: " + ", ".join(map(_shown_path, sources)) + "\n")
    if plots:
        scatter_plots(rows, out)
    return out
