"""README tables of protocol ``trf`` on ``ecog-nh2022`` (issue 14, item 7), built from the result folders.

Reads ``RESULTS/<model>/records.jsonl`` (written by ``brainlike score MODEL --dataset ecog-nh2022 --protocol trf
--metric regression --out RESULTS/<model>``, see ``scripts/trf_zoo.py``), the time-averaged pepino2025 records of
``--pepino`` (the regression aggregate ``target: all`` of each model) and the timings of ``RESULTS/timings.jsonl``,
and prints markdown:

* scores: per model, trf R2 of the held-out deviations (median over the 15 components, ``all``) with the most chosen
  layer, the R2 of raw time courses, the 15 components, the time-averaged pepino2025 R2 (window 0-2 s) and the
  latency of the reported layer per component summarised as median [min-max] (seconds; the peak of that layer's lag
  profile); the ``mean-time-course`` row once (its raw R2 in every component column);
* latencies: model x component (seconds);
* timings: extraction and score CPU / wall seconds per model, and their sums;
* projection: the trf score CPU seconds of every zoo model and twin, measured where done, else predicted by a cost
  model fitted on the done models (score CPU s = c0 + c1 x layers + c2 x features of layers <= 2048 wide + c3 x
  features of wider layers, which take randomized PCA), from the layer widths of the done twin or trained model,
  of ``benchmarks/bench_trf.py``'s ZOO_WIDTHS, or else the registry's layer count at the median width (an upper
  bound: it counts layers without a time axis); the total against the 60-minute goal.

    python scripts/trf_table.py --results docs/results/trf-ecog \\
        --pepino docs/results/downstream/brain/ecog-nh2022.jsonl [--tables scores,latency,timings]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

TARGETS = [f"c{i:02d}" for i in range(1, 16)]
BASELINE = "mean-time-course"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trf_records(results: Path) -> dict[str, list[dict]]:
    """Regression records of protocol trf per model (the baseline rows under their own name)."""
    from brainlike.results import Results

    by_model: dict[str, list[dict]] = {}
    for folder in sorted(path.parent for path in results.glob("*/records.jsonl")):
        for r in Results.load(folder, require="records"):
            if r.get("protocol") == "trf" and r.get("metric") == "regression":
                by_model.setdefault(r["model"], [])
                if r["model"] == BASELINE and len(by_model[BASELINE]) > len(TARGETS):
                    continue  # the same baseline rows come with every model
                by_model[r["model"]].append(r)
    return by_model


def pepino_scores(path: Path | None) -> dict[str, float]:
    """Time-averaged pepino2025 regression R2 (aggregate ``all``) per model."""
    if path is None or not path.is_file():
        return {}
    from brainlike.results import Results

    return {r["model"]: r["score"] for r in Results.load(path)
            if r.get("metric") == "regression" and r.get("target") == "all" and r.get("protocol") == "pepino2025"}


def order(models: list[str]) -> list[str]:
    """Trained models and their twins side by side, alphabetical; the mean-time-course row last."""
    return sorted((m for m in models if m != BASELINE), key=lambda m: (m.split("@")[0], "@" in m)) + \
        ([BASELINE] if BASELINE in models else [])


def _f(value, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def latencies(rows: list[dict]) -> dict[str, float]:
    return {r["target"]: r["latency"] for r in rows if r.get("target") in TARGETS and r.get("latency") is not None}


def scores_table(by_model: dict[str, list[dict]], pepino: dict[str, float]) -> str:
    head = ["model", "trf R2 all (layer)", "R2 raw all", *TARGETS, "pepino2025 R2 all (0-2 s)",
            "latency median [min-max] s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in order(list(by_model)):
        rows = by_model[model]
        per = {r["target"]: r for r in rows if r.get("target") in TARGETS}
        overall = next((r for r in rows if r.get("target") == "all"), {})
        baseline = model == BASELINE
        key = "score_raw" if baseline else "score"
        lat = np.array(list(latencies(rows).values()), dtype=float)
        lat_text = "" if baseline or lat.size == 0 else \
            f"{np.median(lat):.2f} [{lat.min():.2f}-{lat.max():.2f}]"
        layer = overall.get("layer")
        first = _f(overall.get("score")) + (f" ({layer})" if layer and not baseline else "")
        cells = [model, first, _f(overall.get("score_raw")), *(_f(per.get(t, {}).get(key)) for t in TARGETS),
                 _f(pepino.get(model)), lat_text]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_table(by_model: dict[str, list[dict]]) -> str:
    head = ["model", *TARGETS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in order([m for m in by_model if m != BASELINE]):
        lat = latencies(by_model[model])
        lines.append("| " + " | ".join([model, *(_f(lat.get(t), 2) for t in TARGETS)]) + " |")
    return "\n".join(lines)


def timings_table(results: Path, by_model: dict[str, list[dict]]) -> str:
    """Per model the last timing row with a score step (and the last extraction), and the sums."""
    path = results / "timings.jsonl"
    rows = read_jsonl(path) if path.is_file() else []
    extract, score = {}, {}
    for r in rows:
        if r.get("extract", {}).get("rc") == 0:
            extract[r["model"]] = r["extract"]
        if r.get("score", {}).get("rc") == 0:
            score[r["model"]] = r["score"]
    head = ["model", "layers", "frames: CPU s", "frames: wall s", "frames: peak RSS GB", "trf score: CPU s",
            "trf score: wall s", "trf CPU s per layer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    sums = np.zeros(4)
    for model in order([m for m in set(extract) | set(score) if m != BASELINE]):
        e, s = extract.get(model, {}), score.get(model, {})
        n_layers = _n_layers(results / model)
        per_layer = s["cpu_s"] / n_layers if s and n_layers else None
        lines.append("| " + " | ".join([
            model, str(n_layers or ""), _f(e.get("cpu_s"), 0), _f(e.get("wall_s"), 0),
            _f(e.get("max_rss_mb", np.nan) / 1024 if e else None, 2), _f(s.get("cpu_s"), 0), _f(s.get("wall_s"), 0),
            _f(per_layer, 1)]) + " |")
        sums += [e.get("cpu_s", 0), e.get("wall_s", 0), s.get("cpu_s", 0), s.get("wall_s", 0)]
    lines.append(f"| sum | | {sums[0]:.0f} | {sums[1]:.0f} | | {sums[2]:.0f} | {sums[3]:.0f} | |")
    return "\n".join(lines)


def _n_layers(folder: Path) -> int | None:
    """Number of frame layers the trf engine fitted (the frame shapes in the folder's provenance)."""
    path = folder / "provenance.json"
    if not path.is_file():
        return None
    models = json.loads(path.read_text()).get("models", {})
    shapes = next(iter(models.values()), {}).get("shape", {}) if models else {}
    return len(shapes) or None


REGISTRY_LAYERS = {  # load_model(NAME).layers counts, 2026-12-05 (include layers without a time axis)
    "tempocnn-cnn": 14, "tempocnn-fcn": 10, "tempocnn-deeptemp": 14, "tempocnn-deepsquare": 14,
    "tempocnn-shallowtemp": 4, "tempocnn-mazurka": 14, "musicnn-mtt": 9, "musicnn-msd": 9, "musicnn-vgg-mtt": 6,
    "musicnn-vgg-msd": 6, "nsnet2": 6, "dnsmos-p808": 7, "dnsmos-p835": 11}
ZOO = ["aisfx", "basic-pitch", "crepe-full", "crepe-tiny", "dnsmos-p835", "dnsmos-p808", "fcpe", "musicnn-mtt",
       "musicnn-msd", "musicnn-vgg-mtt", "musicnn-vgg-msd", "nsnet2", "pesto", "resemblyzer", "silero-vad", "soundnet",
       "tempocnn-cnn", "tempocnn-fcn", "tempocnn-deeptemp", "tempocnn-deepsquare", "tempocnn-shallowtemp",
       "tempocnn-mazurka", "whisper-base", "whisper-tiny.en", "yamnet"]


def _widths(folder: Path) -> list[int] | None:
    path = folder / "provenance.json"
    if not path.is_file():
        return None
    models = json.loads(path.read_text()).get("models", {})
    shapes = next(iter(models.values()), {}).get("shape", {}) if models else {}
    return [int(v[2]) for v in shapes.values()] or None


def _cost_features(widths: list[int]) -> list[float]:
    w = np.asarray(widths, dtype=float)
    return [1.0, len(w), w[w <= 2048].sum() / 1000, w[w > 2048].sum() / 1000]


def projection_table(results: Path) -> str:
    """Measured or predicted trf score CPU s of the 50 zoo models and twins; the fit and the total."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_trf import ZOO_WIDTHS

    path = results / "timings.jsonl"
    measured = {r["model"]: r["score"]["cpu_s"] for r in (read_jsonl(path) if path.is_file() else [])
                if r.get("score", {}).get("rc") == 0}
    widths = {m: _widths(results / m) for m in measured}
    fit = [(m, _cost_features(w), measured[m]) for m, w in widths.items() if w]
    coef, *_ = np.linalg.lstsq(np.array([f for _, f, _ in fit]), np.array([y for *_, y in fit]), rcond=None)
    done_widths = [x for w in widths.values() if w for x in w]
    rows, total, predicted_total = [], 0.0, 0.0
    for spec in [m for name in ZOO for m in (name, name + "@random")]:
        base = spec.split("@")[0]
        if spec in measured:
            rows.append((spec, measured[spec], "measured"))
            total += measured[spec]
            continue
        w = widths.get(base) or widths.get(base + "@random")
        source = "widths of the done " + ("twin" if "@" in spec else "trained model") if w else None
        if w is None and base in ZOO_WIDTHS:
            w, source = ZOO_WIDTHS[base], "widths from bench_trf ZOO_WIDTHS"
        if w is None:
            w = [int(np.median(done_widths))] * REGISTRY_LAYERS[base]
            source = f"{REGISTRY_LAYERS[base]} registry layers at the median width {int(np.median(done_widths))}"
        estimate = float(np.array(_cost_features(w)) @ coef)
        rows.append((spec, estimate, "predicted: " + source))
        predicted_total += estimate
    lines = ["| model | trf score CPU s | how |", "|---|---|---|"]
    lines += [f"| {m} | {v:.0f} | {how} |" for m, v, how in rows]
    lines.append(f"| **total** | **{total + predicted_total:.0f}** ({(total + predicted_total) / 60:.1f} min) | "
                 f"measured {total:.0f} s ({sum(1 for r in rows if r[2] == 'measured')} models) + predicted "
                 f"{predicted_total:.0f} s |")
    lines.append("")
    lines.append(f"Cost model (least squares over {len(fit)} done models incl. baselines): score CPU s = "
                 f"{coef[0]:.1f} + {coef[1]:.2f} x layers + {coef[2]:.2f} x (thousand features in layers <= 2048 "
                 f"wide) + {coef[3]:.2f} x (thousand features in wider layers).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="docs/results/trf-ecog")
    parser.add_argument("--pepino", default="docs/results/downstream/brain/ecog-nh2022.jsonl")
    parser.add_argument("--tables", default="scores,latency,timings,projection")
    args = parser.parse_args()
    results = Path(args.results)
    by_model = trf_records(results)
    tables = args.tables.split(",")
    out = []
    if "scores" in tables:
        out.append(scores_table(by_model, pepino_scores(Path(args.pepino))))
    if "latency" in tables:
        out.append(latency_table(by_model))
    if "timings" in tables:
        out.append(timings_table(results, by_model))
    if "projection" in tables:
        out.append(projection_table(results))
    print("\n\n".join(out))


if __name__ == "__main__":
    main()
