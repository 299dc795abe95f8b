"""The Python API: ``brainlike.score``, ``brainlike.extract``, ``brainlike.downstream``, ``brainlike.link`` and
``brainlike.compare`` (the command line calls these).

>>> import brainlike
>>> results = brainlike.score(["spectrotemporal", "melspec"], dataset="nh2015-components")   # doctest: +SKIP
>>> results.to_frame().query("target == 'all'")[["model", "metric", "selection", "score"]]  # doctest: +SKIP
>>> results.save("results/baselines")                                                       # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from brainlike.errors import BrainlikeError
from brainlike.results import Results

__all__ = ["SEED", "compare", "downstream", "extract", "link", "score"]

SEED = 0
"""Seed of every random draw in scoring (splits, bootstrap, permutations)."""


def extract(model: str, stimuli: Any = "natsound165", *, cache: bool = True, progress: bool = True,
            frames: bool = False, rate: float = 25.0, pre: float = 0.5, stop: float = 3.0,
            layers: Sequence[str] | None = None):
    """Activations of one model for a stimulus set (cached): time-averaged, or frame-level with ``frames=True``.

    Parameters
    ----------
    model : str
        Model spec (``NAME``, ``NAME@random``, ``FAMILY:PATH``).
    stimuli : str or StimulusSet
        A registered stimulus set name, a folder of audio files, or a loaded :class:`StimulusSet`.
    cache : bool
        Read and write the activation cache.
    progress : bool
        Show a progress bar on stderr.
    frames : bool
        Frame-level activations on time bins (:func:`brainlike.extract.frames.extract_frames`): each sound run with
        ``pre`` s of silence before it and silence up to ``stop`` s after onset, frames put on bins of ``rate`` Hz.
    rate, pre, stop : float
        Time base of the frames (bins per second, seconds before onset, end of the response window).
    layers : sequence of str, optional
        Frames only: restrict to these layers.

    Returns
    -------
    brainlike.extract.Activations or brainlike.extract.frames.FrameActivations
        Time-averaged ``{layer: (n_stimuli, features)}``, or frame-level ``{layer: (n_stimuli, n_bins, features)}``
        with ``bin_times``; with the cache key and provenance.
    """
    from brainlike.data.stimuli import load_stimulus_set
    from brainlike.extract import extract_activations
    from brainlike.models.registry import load_model

    stimulus_set = load_stimulus_set(stimuli) if isinstance(stimuli, (str, Path)) else stimuli
    if frames:
        from brainlike.extract.frames import extract_frames

        return extract_frames(load_model(model), stimulus_set, rate=rate, pre=pre, stop=stop, layers=layers,
                              cache=cache, progress=progress)
    if layers is not None:
        raise BrainlikeError("layers= restricts frame-level extraction only (frames=True)")
    return extract_activations(load_model(model), stimulus_set, cache=cache, progress_bar=progress)


def score(models: Sequence[str] | str, *, dataset: str = "nh2015-components", metric: str = "all",
          protocol: str = "pepino2025", out: str | Path | None = None, device: str = "cpu",
          backend: str | None = None, cache: bool = True, progress: bool = True, bootstrap: int = 0,
          permutations: int = 0, options: dict[str, Any] | None = None,
          window: tuple[float, float] | str | None = None) -> Results:
    """Score audio models against a neural dataset, layer by layer.

    Parameters
    ----------
    models : str or sequence of str
        Model specs (``spectrotemporal``, ``yamnet@random``, ``hf:facebook/wav2vec2-base``...).
    dataset : str
        A registered dataset (``brainlike datasets``) or a bring-your-own ``.nc`` / ``.npz`` file.
    metric : {"all", "regression", "rsa"}
        What to compute; ``all`` gives both.
    protocol : str
        A registered regression protocol (``pepino2025``, ``tuckute2023``; ``brainlike protocols`` lists them).
        RSA records carry it as a label.
    out : path-like, optional
        Also write the results folder here (``records.jsonl/.csv/.parquet``, ``detail.nc``, ``provenance.json``).
    device : {"cpu", "cuda"}
        Where the ridge engine runs.
    backend : {None, "numpy", "torch"}
        Ridge backend; default numpy (float64) on cpu, torch (float32) on cuda.
    cache : bool
        Read and write the activation cache.
    progress : bool
        Progress bars on stderr.
    bootstrap : int
        pepino2025: bootstrap resamples for CIs of the aggregate over stimuli (and subjects).
    permutations : int
        pepino2025: label permutations for a null distribution and p-value of the aggregate.
    options : dict, optional
        Further protocol options (each protocol documents its own).
    window : (float, float) or str, optional
        Time-resolved dataset under a time-averaged protocol (pepino2025, tuckute2023, RSA): responses are averaged
        over the bins starting in [start, stop) seconds from onset; default (0, 2) (``"0:2"``). Records carry
        ``window``. Not allowed for a time-averaged dataset.

    Returns
    -------
    Results
        A list of records (docs/contracts.md section 1: one per model, metric, selection and target, plus
        aggregates, per subject and per ROI) with ``detail`` (per-target arrays incl. pooled out-of-fold
        predictions), ``provenance`` and :meth:`Results.save`.

    Raises
    ------
    BrainlikeError
        Unknown model, dataset, metric or protocol; bad data; too few stimuli for the folds (one-line messages).
    """
    from brainlike.align.protocols import get_protocol
    from brainlike.align.score import METRICS, regression, rsa
    from brainlike.data.neural import load_dataset
    from brainlike.data.stimuli import load_stimulus_set
    from brainlike.extract import extract_activations
    from brainlike.models.registry import load_model
    from brainlike.results import merge_details, now

    models = [models] if isinstance(models, str) else list(models)
    metrics = list(METRICS) if metric == "all" else [metric]
    if any(m not in METRICS for m in metrics):
        raise BrainlikeError(f"unknown metric {metric!r}; choose from all, {', '.join(METRICS)}")
    spec = get_protocol(protocol)
    options = {**(options or {}), **({"bootstrap": bootstrap} if bootstrap else {}),
               **({"permutations": permutations} if permutations else {})}
    started = now()
    neural = load_dataset(dataset)
    stimuli = load_stimulus_set(neural.attrs.get("stimulus_set", "natsound165"))
    neural = neural.align_to(stimuli.ids)
    neural, window_keys = _time_averaged(neural, window, spec.time_resolved)
    loaded = [load_model(name) for name in models]  # fail early on unknown names
    records: list[dict] = []
    details = []
    model_info = {}
    for model in loaded:
        activations = extract_activations(model, stimuli, cache=cache, progress_bar=progress)
        model_info[model.name] = activations.info
        if "regression" in metrics:
            rows, detail = regression(activations, neural, stimuli.folds, spec.name, device, backend, SEED,
                                      options=options)
            records += rows
            details.append(detail)
        if "rsa" in metrics:
            records += rsa(activations, neural, stimuli.folds, spec.name)
    records = [{**record, **window_keys} for record in records]
    provenance = {
        "started": started, "protocol": spec.name, "metrics": metrics, "dataset": neural.name, "seed": SEED,
        "protocol_parameters": spec.parameters(options), "device": device, "backend": backend,
        "bootstrap": bootstrap, "permutations": permutations, "options": options, **window_keys,
        "data_checksums": {"stimuli": stimuli.checksum, **neural.checksums}, "models": model_info,
    }
    results = Results(records, detail=merge_details(details), provenance=provenance)
    if out is not None:
        results.save(out)
    return results


def _time_averaged(neural: Any, window: tuple[float, float] | str | None,
                   time_resolved_protocol: bool) -> tuple[Any, dict[str, str]]:
    """A time-resolved dataset averaged over ``window`` for a time-averaged protocol, and the record keys to add."""
    from brainlike.data.neural import format_window, parse_window
    from brainlike.errors import ProtocolError

    if not neural.time_resolved or time_resolved_protocol:
        if window is not None and not neural.time_resolved:
            raise ProtocolError(f"--window applies to time-resolved datasets; {neural.name} has no time dimension")
        return neural, {}
    start, stop = parse_window(window) if isinstance(window, str) else (window or DEFAULT_WINDOW)
    averaged = neural.window_average(float(start), float(stop))
    return averaged, {"window": format_window(float(start), float(stop))}


DEFAULT_WINDOW = (0.0, 2.0)
"""Seconds from sound onset averaged when a time-resolved dataset meets a time-averaged protocol."""


def downstream(models: Sequence[str] | str, *, tasks: Sequence[str] | str = "all", probe: str = "linear",
               seed: int = 0, max_clips: int | None = None, set_sizes: dict[str, int] | None = None,
               out: str | Path | None = None, progress: bool = True) -> Results:
    """Probe models on downstream audio tasks (embeddings cached; HEAR-style fold protocol).

    Parameters
    ----------
    models : str or sequence of str
        Model specs.
    tasks : str or sequence of str
        Task names (``brainlike tasks list``) or ``all``.
    probe : {"linear", "pepino2025"}
        ``linear``: standardise, PCA, logistic regression with C chosen on the validation fold; ``pepino2025``:
        learned weighted sum of layers and an MLP grid (Pepino et al. 2025).
    seed : int
        Seed of the probes.
    max_clips : int, optional
        Evaluate each task on its fixed balanced subset of at most this many clips.
    set_sizes : dict, optional
        ``{audio set: clips}``: evaluate the tasks of each audio set on the set's fixed balanced subset of that
        many clips, one clip set shared by the set's tasks (:func:`brainlike.downstream.tasks.set_subset`;
        :data:`brainlike.downstream.tasks.STANDARD_SET_SIZES` are the sizes of the published results).
    out : path-like, optional
        Also write ``downstream.jsonl/.csv`` and ``downstream_provenance.json`` here.
    progress : bool
        Progress bars on stderr.

    Returns
    -------
    Results
        No brain records; ``downstream`` holds one record per model, task and test fold, the fold means
        (``fold: None``) and the global score (``task: "global"``, :func:`brainlike.downstream.evaluate.global_scores`).
    """
    from brainlike.downstream.evaluate import run_downstream

    models = [models] if isinstance(models, str) else list(models)
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    run = run_downstream(models, tasks, probe, seed=seed, progress=progress, max_clips=max_clips,
                         set_sizes=set_sizes)
    results = Results(downstream=run.records, downstream_provenance=run.provenance)
    if out is not None:
        results.save(out)
    return results


def link(*results: str | Path | Results, probe: str | None = None, n_bootstrap: int = 2000, seed: int = 0,
         subsets: Sequence[str] | str = "all", out: str | Path | None = None,
         plots: bool = True) -> list[dict[str, Any]]:
    """Correlate brain scores with downstream scores across models (Pepino et al. 2025, Table 1).

    Parameters
    ----------
    *results : path-like or Results
        Results folders (or ``.jsonl`` files, or loaded :class:`Results`) holding brain records and downstream
        records of the same models.
    probe : str, optional
        Downstream probe to use (default: the most frequent).
    n_bootstrap : int
        Bootstrap resamples over models for the CIs.
    seed : int
    subsets : str or sequence of {"all", "trained", "twins"}
        Model subsets to correlate over: every model; pretrained models only (no random twins, baselines or
        random-features); random twins only. The global downstream score is recomputed within each subset.
    out : path-like, optional
        Also write ``link.jsonl/.csv``, ``link_table.md`` and scatter plots here.
    plots : bool
        Write the scatter plots (one per row) with ``out``.

    Returns
    -------
    list of dict
        One row per (subset, brain score, downstream score): Pearson r and Spearman rho with p-values, bootstrap
        CIs over models and over model families (:func:`brainlike.align.stats.correlate`), Benjamini-Hochberg
        q-values of the per-task x per-target rows, the models, their families and both scores per model.
    """
    from brainlike.downstream import link as link_module

    loaded = Results()
    for item in results:
        item = item if isinstance(item, Results) else Results.load(item)
        loaded.extend_results(item)
        loaded.sources += item.sources
    inputs = link_module.LinkInputs(loaded.records, loaded.downstream, [str(s) for s in loaded.sources])
    subsets = [subsets] if isinstance(subsets, str) else list(subsets)
    rows = link_module.link(inputs, probe=probe, n_bootstrap=n_bootstrap, seed=seed, subsets=subsets)
    if out is not None:
        link_module.write_link(rows, out, inputs.sources, plots=plots)
    return rows


def compare(results: str | Path | Results, model_a: str, model_b: str, *, metric: str = "regression",
            selection: str | None = None) -> dict[str, Any]:
    """Is model A better than model B? A paired two-sided Wilcoxon test across subjects.

    Parameters
    ----------
    results : path-like or Results
        Results holding per-subject records of both models (a multi-subject dataset).
    model_a, model_b : str
        Model specs as they appear in the records.
    metric : {"regression", "rsa"}
    selection : str, optional
        Layer selection of the records to compare (default: the metric's main one).

    Returns
    -------
    dict
        ``model_a, model_b, metric, statistic, p, n_subjects, mean_difference``.
    """
    from brainlike.align.stats import paired_wilcoxon

    loaded = results if isinstance(results, Results) else Results.load(results, require="records")
    selection = selection or {"regression": None, "rsa": "layer-max"}.get(metric)

    def per_subject(model: str) -> dict[str, float]:
        rows = [r for r in loaded if r["model"] == model and r["metric"] == metric and r.get("subject")
                and r.get("roi") is None and (selection is None or r["selection"] == selection)]
        if not rows:
            raise BrainlikeError(f"no per-subject {metric} records for model {model!r}")
        return {r["subject"]: r["score"] for r in rows}

    outcome = paired_wilcoxon(per_subject(model_a), per_subject(model_b))
    return {"model_a": model_a, "model_b": model_b, "metric": metric, **outcome}
