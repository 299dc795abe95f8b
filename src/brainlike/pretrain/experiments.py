"""The pretraining experiments of Pepino et al. 2025, as commands that write tables and plots.

* ``diversity``: one model per corpus (equal duration budgets, equal steps) -> brain scores overall and on the speech
  and music components (plus a downstream probe when ``task`` is given).
* ``checkpoints``: alignment per layer (RSA and regression) versus training step, from a run's saved checkpoints.
* ``architecture``: transformer versus convolutional encoder, same objective, corpus and budget.
* ``finetune``: fine-tune a pretrained model's encoder on a downstream task and compare alignment before and after.

Each writes ``<kind>.csv`` (tidy), ``<kind>.md`` (the table) and ``<kind>.png`` into the experiment folder; trained
models live in ``models/`` below it and are reused when the experiment is run again (training resumes).
Scores come from :func:`brainlike.api.score` (pepino2025 protocol; activations cached).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from brainlike.pretrain.mae import PretrainError

log = logging.getLogger(__name__)
KINDS = ("diversity", "checkpoints", "architecture", "finetune")
DIVERSITY_CORPORA = ("speech", "music", "environmental", "mixture")


def run(kind: str, *, out: str | Path, config: str = "tiny", steps: int | None = None,
        corpora: Sequence[str] | None = None, corpus: str = "mixture", run_dir: str | None = None,
        task: str | None = "esc10", dataset: str = "nh2015-components", batch_size: int | None = None,
        checkpoint_every: int | None = None, epochs: int = 10, seed: int | None = None) -> Path:
    """Run one experiment; returns the path of its markdown table.

    ``config``, ``steps``, ``batch_size`` and ``checkpoint_every`` set how the models it trains are trained
    (a preset name and overrides); ``run_dir`` reuses an existing training folder (checkpoints, finetune).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    training = {"steps": steps, "batch_size": batch_size, "checkpoint_every": checkpoint_every, "seed": seed}
    if kind == "diversity":
        table = diversity(out, corpora or DIVERSITY_CORPORA, config, training, dataset, task)
    elif kind == "checkpoints":
        table = checkpoints(out, run_dir or str(train_model(out, corpus, config, training)), dataset)
    elif kind == "architecture":
        table = architecture(out, corpus, config, training, dataset)
    elif kind == "finetune":
        table = finetune(out, run_dir or str(train_model(out, corpus, config, training)), task or "esc10", dataset,
                         epochs)
    else:
        raise PretrainError(f"unknown experiment {kind!r}; choose from {', '.join(KINDS)}")
    return write_table(table, out, kind)


# ------------------------------------------------------------------------------------------------------------ helpers
def train_model(out: Path, corpus: str, config: str, training: dict[str, Any], name: str | None = None,
                **model_changes: Any) -> Path:
    """Train (or resume) ``models/<name>`` of an experiment (preset ``config`` with ``training`` overrides)."""
    from brainlike.pretrain.presets import override, preset
    from brainlike.pretrain.train import train

    cfg = override(preset(config), model_changes, training)
    folder = out / "models" / (name or f"{Path(corpus).name}-{config}")
    train(cfg, corpus, folder, progress=True)
    return folder


def brain_summary(spec: str, dataset: str) -> dict[str, Any]:
    """Headline scores of one model: regression (all, speech, music components) and RSA (layer-max, cv)."""
    from brainlike.api import score

    records = score([spec], dataset=dataset, metric="all", progress=False)
    row: dict[str, Any] = {}
    for r in records:
        if r["metric"] == "regression" and r.get("subject") is None and r.get("roi") is None:
            row["regression_" + str(r["target"])] = r["score"]
            if r["target"] == "all":
                row["regression_layer"] = r["layer"]
        elif r["metric"] == "rsa" and r.get("subject") is None and r.get("roi") is None:
            row[f"rsa_{r['selection']}"] = r["score"]
    return row


def layerwise_scores(spec: str, dataset: str) -> pd.DataFrame:
    """Per-layer RSA (rho) and regression (R2, median over targets; per ROI when the dataset has ROIs)."""
    from brainlike.align.score import regression, rsa
    from brainlike.api import extract
    from brainlike.data.neural import load_dataset
    from brainlike.data.stimuli import load_stimulus_set

    neural = load_dataset(dataset)
    stimuli = load_stimulus_set(neural.attrs.get("stimulus_set", "natsound165"))
    neural = neural.align_to(stimuli.ids)
    if neural.time_resolved:  # as score() does for time-averaged protocols: the default window
        neural = neural.window_average()
    acts = extract(spec, stimuli, progress=False)
    rows = []
    for layer in acts.layers:
        single = replace(acts, layers=[layer], arrays={layer: acts.arrays[layer]})
        for r in regression(single, neural, stimuli.folds)[0] + rsa(single, neural, stimuli.folds):
            if r.get("subject") is None and (r["target"] == "all" or r.get("roi") is not None):
                if r["metric"] == "rsa" and r["selection"] != "layer-max":
                    continue
                rows.append({"layer": layer, "metric": r["metric"], "roi": r.get("roi") or "all",
                             "score": r["score"]})
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, out: Path, kind: str) -> Path:
    """``<kind>.csv`` and ``<kind>.md``; returns the markdown path."""
    table.to_csv(out / f"{kind}.csv", index=False)
    path = out / f"{kind}.md"
    path.write_text(to_markdown(table) + "\n")
    return path


def to_markdown(table: pd.DataFrame) -> str:
    """A plain markdown table (floats to 3 decimals) without the tabulate dependency."""
    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _plot_bars(table: pd.DataFrame, label: str, columns: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in columns if c in table]
    fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(table), 3.5))
    width = 0.8 / max(1, len(columns))
    x = np.arange(len(table))
    for i, column in enumerate(columns):
        ax.bar(x + i * width, table[column].astype(float), width, label=column)
    ax.set_xticks(x + width * (len(columns) - 1) / 2, table[label], rotation=20)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -------------------------------------------------------------------------------------------------------- experiments
HEADLINE = ["regression_all", "regression_speech", "regression_music", "rsa_layer-max", "rsa_cv"]


def diversity(out: Path, corpora: Sequence[str], config: str, training: dict[str, Any], dataset: str,
              task: str | None = None) -> pd.DataFrame:
    """One model per corpus at equal budget; brain scores (and a downstream linear probe) per corpus.

    The untrained model (step 0 of the first run; every run starts from the same seeded weights) is the baseline.
    """
    rows = []
    for corpus in corpora:
        folder = train_model(out, corpus, config, training)
        if not rows:
            rows.append({"corpus": "untrained (step 0)", **model_summary(f"mae:{_step(folder, 0)}", dataset, task)})
        rows.append({"corpus": Path(corpus).name, **model_summary(f"mae:{folder}", dataset, task)})
    table = pd.DataFrame(rows)
    _plot_bars(table, "corpus", HEADLINE, out / "diversity.png", f"pretraining data vs {dataset}")
    return table


def model_summary(spec: str, dataset: str, task: str | None) -> dict[str, Any]:
    """Brain scores plus, when ``task`` is given, the fold-mean accuracy of a linear probe on that task."""
    row = brain_summary(spec, dataset)
    if task:
        from brainlike.downstream.evaluate import run_downstream

        records = run_downstream([spec], [task], probe="linear", progress=False).records
        row[f"{task}_linear"] = next(r["score"] for r in records if r.get("task") == task and r.get("fold") is None)
    return row


def checkpoints(out: Path, run_dir: str, dataset: str) -> pd.DataFrame:
    """Per-layer alignment of every saved checkpoint of a run (step 0 = initial weights)."""
    steps = sorted(p for p in (Path(run_dir) / "checkpoints").glob("step_*") if p.name[5:].isdigit())
    if not steps:
        raise PretrainError(f"{run_dir} has no checkpoints/step_* folders")
    frames = []
    for folder in steps:
        scores = layerwise_scores(f"mae:{folder}", dataset)
        scores.insert(0, "step", int(folder.name[5:]))
        frames.append(scores)
    table = pd.concat(frames, ignore_index=True)
    _plot_checkpoints(table, out / "checkpoints.png", dataset)
    return table


def _plot_checkpoints(table: pd.DataFrame, path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        part = table[(table["metric"] == metric) & (table["roi"] == "all")]
        for layer, group in part.groupby("layer", sort=False):
            ax.plot(group["step"], group["score"], marker="o", label=layer)
        ax.set_xlabel("training step")
        ax.set_ylabel("Spearman rho" if metric == "rsa" else "R2 (median over targets)")
        ax.set_title(f"{metric} vs {dataset}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def architecture(out: Path, corpus: str, config: str, training: dict[str, Any], dataset: str) -> pd.DataFrame:
    """Transformer versus convolutional encoder (same objective, corpus, steps); untrained twins included."""
    rows = []
    for encoder in ("transformer", "conv"):
        folder = train_model(out, corpus, config, training, name=f"{Path(corpus).name}-{config}-{encoder}",
                             encoder=encoder)
        rows.append({"encoder": encoder, "weights": "untrained", **brain_summary(f"mae:{_step(folder, 0)}", dataset)})
        rows.append({"encoder": encoder, "weights": "pretrained", **brain_summary(f"mae:{folder}", dataset)})
    table = pd.DataFrame(rows)
    table.insert(0, "model", table["encoder"] + " " + table["weights"])
    _plot_bars(table, "model", HEADLINE, out / "architecture.png", f"encoder architecture vs {dataset}")
    return table


def finetune(out: Path, run_dir: str, task: str, dataset: str, epochs: int = 10) -> pd.DataFrame:
    """Fine-tune a pretrained model on a downstream task; alignment and task accuracy before and after."""
    from brainlike.pretrain.finetune import finetune_checkpoint

    before = Path(run_dir)
    result = finetune_checkpoint(before, task, out / "models" / f"{before.name}-finetuned-{task}", epochs=epochs)
    rows = [{"model": "pretrained", "task_accuracy": result["accuracy_before"], **brain_summary(f"mae:{before}", dataset)},
            {"model": f"fine-tuned on {task}", "task_accuracy": result["accuracy_after"],
             **brain_summary(f"mae:{result['checkpoint']}", dataset)}]
    (out / "finetune.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = pd.DataFrame(rows)
    _plot_bars(table, "model", ["task_accuracy"] + HEADLINE, out / "finetune.png", f"fine-tuning on {task}")
    return table


def _step(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}"
