"""The Python API: ``brainlike.score``, ``brainlike.extract``, ``brainlike.downstream``, ``brainlike.link``,
``brainlike.compare``, ``brainlike.similarity`` and ``brainlike.ceiling`` (the command line calls these).

>>> import brainlike
>>> results = brainlike.score(["spectrotemporal", "melspec"], dataset="nh2015-components")   # doctest: +SKIP
>>> results.to_frame().query("target == 'all'")[["model", "metric", "selection", "score"]]  # doctest: +SKIP
>>> results.save("results/baselines")                                                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from brainlike.errors import BrainlikeError
from brainlike.results import Results

__all__ = ["SEED", "ceiling", "compare", "downstream", "extract", "link", "score", "similarity"]

SEED = 0
"""Seed of every random draw in scoring (splits, bootstrap, permutations)."""

log = logging.getLogger(__name__)


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
          window: tuple[float, float] | str | None = None, normalise: str | None = None,
          controls: Sequence[str] | str | None = None) -> Results:
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
        A registered regression protocol (``pepino2025``, ``tuckute2023``, the time-resolved ``trf``; ``brainlike
        protocols`` lists them). RSA records carry it as a label; under ``trf`` RSA is time-resolved.
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
        Further protocol options (each protocol documents its own; ``trf``: ``lags`` ("0:0.5" s), ``rate`` (Hz),
        ``pca`` (components, 0 = off)).
    window : (float, float) or str, optional
        Time-resolved dataset under a time-averaged protocol (pepino2025, tuckute2023, RSA): responses are averaged
        over the bins starting in [start, stop) seconds from onset; default (0, 2) (``"0:2"``). Records carry
        ``window``. Not allowed for a time-averaged dataset.
    normalise : {None, "spearman-brown", "ncsnr", "cc-max"}
        Also divide each regression score by the dataset's noise ceiling of that method (the R2 bound; see
        :func:`ceiling`): the records keep ``score`` and add ``ceiling``, ``method``, ``ceiling_bounds`` and
        ``score_over_ceiling`` (never clipped; above 1 warns). Needs a dataset with repetitions.
    controls : str or sequence of str, optional
        Variance partitioning (methods.md section 10): what each model explains beyond a control and what they
        share. Each control is a model spec or a feature file ``features:PATH.npz`` (rows matched by stimulus
        name); several controls form ONE control with one band each. Regression records then carry ``control``
        (the specs joined by "+") and ``part`` (``model``, ``control``, ``joint``, ``unique_model``,
        ``unique_control``, ``shared``) with bootstrap CIs over stimuli (``bootstrap`` resamples, default 1000).

    Returns
    -------
    Results
        A list of records (docs/contracts.md section 1: one per model, metric, selection and target, plus
        aggregates, per subject and per ROI) with ``detail`` (per-target arrays incl. pooled out-of-fold
        predictions), ``provenance`` and :meth:`Results.save`.

    Raises
    ------
    BrainlikeError
        Unknown model, dataset, metric or protocol; bad data; too few stimuli for the folds; a ceiling asked of a
        dataset without repetitions (one-line messages).
    """
    from brainlike.align.protocols import get_protocol
    from brainlike.align.score import METRICS, regression, rsa
    from brainlike.data.datasets import load_dataset
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
    ceilings = _ceilings_for_normalising(neural, normalise, spec.name, metrics)  # fail before any extraction
    loaded = [load_model(name) for name in models]  # fail early on unknown names
    controls = [controls] if isinstance(controls, str) else list(controls or [])
    if controls and "regression" not in metrics:
        raise BrainlikeError("--control partitions regression scores: use --metric regression or all")
    if controls and spec.time_resolved:
        raise BrainlikeError(f"--control (variance partitioning) is not available for the time-resolved protocol "
                             f"{spec.name}: use pepino2025")
    if controls and normalise:
        raise BrainlikeError("--normalise and --control cannot be combined (partition parts are differences of "
                             "scores); normalise the plain scores in a separate run")
    control_activations = [_control_activations(c, stimuli, cache, progress) for c in controls]
    for model in models:
        if model in controls:
            log.warning("control %s is the model itself: unique parts will be ~0", model)
    records: list[dict] = []
    details = []
    model_info = {}
    if spec.time_resolved:
        _check_time_resolved(spec, neural, loaded)
        if window is not None:  # the window of the time-averaged score (e) and of the time-averaged RDMs
            options["window"] = window
    for c in control_activations:
        model_info[c.model] = c.info
    for model in loaded:
        if spec.time_resolved:
            rows, detail, model_info[model.name] = _score_frames(model, stimuli, neural, spec, metrics, options,
                                                                 device, backend, cache, progress)
            records += rows
            details.append(detail)
            continue
        activations = extract_activations(model, stimuli, cache=cache, progress_bar=progress)
        model_info[model.name] = activations.info
        if "regression" in metrics:
            rows, detail = regression(activations, neural, stimuli.folds, spec.name, device, backend, SEED,
                                      options=options, controls=control_activations)
            if ceilings is not None:
                from brainlike.align.ceilings import normalise_records, per_target_scores

                rows = normalise_records(rows, per_target_scores(detail, [model.name], neural.target_names),
                                         ceilings)
            records += rows
            details.append(detail)
        if "rsa" in metrics:
            records += rsa(activations, neural, stimuli.folds, spec.name)
    records = [{**record, **window_keys} for record in records]
    provenance = {
        "started": started, "protocol": spec.name, "metrics": metrics, "dataset": neural.name, "seed": SEED,
        "protocol_parameters": spec.parameters(options), "device": device, "backend": backend,
        "bootstrap": bootstrap, "permutations": permutations, "options": options, "normalise": normalise,
        "controls": controls, **window_keys,
        "data_checksums": {"stimuli": stimuli.checksum, **neural.checksums}, "models": model_info,
    }
    records = list({json.dumps(r, sort_keys=True, default=str): r for r in records}.values())  # shared rows once
    results = Results(records, detail=merge_details(details), provenance=provenance)
    if out is not None:
        results.save(out)
    return results


def _check_time_resolved(spec, neural, models) -> None:
    """Before any work: a time-resolved protocol needs time-resolved responses and models with a time axis."""
    from brainlike.errors import ProtocolError

    if not getattr(neural, "time_resolved", False):
        raise ProtocolError(f"protocol {spec.name} needs a time-resolved dataset; {neural.name} has no time axis")
    for model in models:
        if not getattr(model, "time_resolved", True):
            raise ProtocolError(f"{model.name} has no time axis (time-averaged features): protocol {spec.name} "
                                "needs frame-level activations; score it with pepino2025 or tuckute2023")


def _score_frames(model, stimuli, neural, spec, metrics, options, device, backend, cache, progress):
    """Records, detail and provenance of one model under a time-resolved protocol (frame-level activations)."""
    import xarray as xr

    from brainlike.align.rsa_time import rsa_time_records
    from brainlike.align.score import regression
    from brainlike.align.trf import at_rate, parse_lags
    from brainlike.extract.frames import extract_frames

    request = spec.frame_request(options, neural)
    frames = extract_frames(model, stimuli, cache=cache, progress=progress, **request)
    records, parts = [], []
    if "regression" in metrics:
        rows, detail = regression(frames, neural, stimuli.folds, spec.name, device, backend, SEED, options=options,
                                  frames=frames, categories=list(stimuli.categories))
        records += rows
        parts.append(detail)
    if "rsa" in metrics:
        rows, detail = rsa_time_records(frames, at_rate(neural, request["rate"]), rate=request["rate"],
                                        window=parse_lags(spec.parameters(options)["window"]), protocol=spec.name)
        records += rows
        parts.append(detail.expand_dims(model=[frames.model]))
    return records, xr.merge(parts, combine_attrs="override"), frames.info
def _control_activations(spec: str, stimuli, cache: bool, progress: bool):
    """Activations of a control: a feature file (aligned by stimulus name) or a model spec (extracted, cached)."""
    from brainlike.extract import extract_activations
    from brainlike.extract.features import is_feature_spec, load_feature_file
    from brainlike.models.registry import load_model

    if is_feature_spec(spec):
        return load_feature_file(spec, stimuli.ids)
    return extract_activations(load_model(spec), stimuli, cache=cache, progress_bar=progress)


def _ceilings_for_normalising(neural, method: str | None, protocol: str, metrics: list[str]):
    """The noise ceilings to normalise regression scores with (None when not asked)."""
    if method is None:
        return None
    from brainlike.align.ceilings import REPETITION_METHODS, noise_ceiling

    if method not in REPETITION_METHODS:
        raise BrainlikeError(f"--normalise takes one of {', '.join(REPETITION_METHODS)}, not {method!r} "
                             "(RSA records of multi-subject datasets carry their leave-one-subject-out ceiling)")
    if "regression" not in metrics:
        raise BrainlikeError("--normalise applies to regression scores: use --metric regression or all")
    if protocol == "tuckute2023":
        raise BrainlikeError("tuckute2023 scores are already noise-corrected (its own Spearman-Brown correction): "
                             "normalising them again would divide by a ceiling twice")
    return noise_ceiling(neural, method)


def ceiling(dataset: str, *, method: str = "ncsnr", out: str | Path | None = None) -> Results:
    """Noise ceilings of a dataset with repetitions, per target and summarised (methods.md section 12).

    Parameters
    ----------
    dataset : str
        A registered dataset or a ``.nc`` / ``.npz`` file with repetitions.
    method : {"spearman-brown", "ncsnr", "cc-max", "loso"}
        ``spearman-brown`` and ``ncsnr`` bound R2, ``cc-max`` bounds r, ``loso`` (leave one subject out) bounds the
        RSA rho; see :mod:`brainlike.align.ceilings` for the formulas.
    out : path-like, optional
        Also write a results folder: ``records.*`` and ``detail-ceiling.nc`` (per-target values).

    Returns
    -------
    Results
        Ceiling records (``metric: ceiling``, ``method``, ``bounds``; per target for datasets with at most 100
        targets, the aggregate, per subject and per ROI) and the per-target detail.

    Raises
    ------
    BrainlikeError
        Unknown dataset or method; a dataset without repetitions (``loso``: fewer than 2 subjects).
    """
    import xarray as xr

    from brainlike.align.ceilings import noise_ceiling
    from brainlike.data.datasets import load_dataset
    from brainlike.results import now

    started = now()
    neural = load_dataset(dataset)
    ceilings = noise_ceiling(neural, method)
    details = {}
    if method != "loso":
        details["ceiling"] = xr.Dataset(
            {"ceiling": ("target", ceilings.values), "n_reps": ("target", ceilings.n_reps),
             **{k: ("target", v) for k, v in ceilings.extra.items()}},
            coords={"target": neural.target_names},
            attrs={"dataset": neural.name, "method": method, "bounds": ceilings.bounds})
    provenance = {"started": started, "dataset": neural.name, "method": method, "bounds": ceilings.bounds,
                  "data_checksums": neural.checksums}
    results = Results(ceilings.records(), details=details, provenance=provenance)
    if out is not None:
        results.save(out)
    return results


def similarity(*feature_sets: str, metric: str = "cka", stimuli: str | None = None,
               layers: dict[str, Sequence[str]] | None = None, layers_from: str | Path | Results | None = None,
               whiten: float = 0.0, out: str | Path | None = None, cache: bool = True,
               progress: bool = True) -> Results:
    """A layer x layer matrix of representational similarity (methods.md section 11).

    Parameters
    ----------
    *feature_sets : str
        Two or more model specs or neural datasets (a registered dataset name or a ``.nc`` / ``.npz`` file: its
        responses, averaged over repetitions, are one "layer"). Two: rows = layers of the first, columns = layers of
        the second (the same spec twice compares a model with itself). More: rows = columns = every layer of every
        set.
    metric : {"cka", "cka-debiased", "procrustes", "procrustes-cv", "rsa"}
        Similarities (1 = same) or, for the Procrustes metrics, angular distances in radians (0 = same shape).
    stimuli : str, optional
        Stimulus set of the models (default: the datasets' own, else ``natsound165``).
    layers : dict of str to list of str, optional
        Only these layers of a model.
    layers_from : path-like or Results, optional
        Keep each model's best layer: the ``layer`` of its aggregate regression record there (e.g. the
        ``brainlike score ... --out`` folder of the same models).
    whiten : float
        Partial whitening of the Procrustes metrics in [0, 1] (0: plain Procrustes).
    out : path-like, optional
        Also write ``records.*``, ``detail-similarity.nc`` and ``similarity-<metric>.png`` here.
    cache : bool
        Read and write the activation cache.
    progress : bool
        Show progress bars while extracting.

    Returns
    -------
    Results
        One record per cell (``model_a, layer_a, model_b, layer_b, score``) and the matrix as
        ``details["similarity"]`` (dims ``row``, ``column``).

    Raises
    ------
    BrainlikeError
        Unknown model or dataset, different stimuli, NaN or constant features, a bad metric or whitening.
    """
    from brainlike.align.geometry import similarity as similarity_matrix
    from brainlike.data.stimuli import load_stimulus_set
    from brainlike.results import now

    if len(feature_sets) < 2:
        raise BrainlikeError("similarity needs at least two feature sets (give a model twice to compare it with "
                             "itself)")
    started = now()
    datasets = {spec: _load_dataset_or_none(spec) for spec in dict.fromkeys(feature_sets)}
    set_name = stimuli or next((d.attrs.get("stimulus_set", "natsound165") for d in datasets.values() if d),
                               "natsound165")
    stimulus_set = load_stimulus_set(set_name)
    chosen = _chosen_layers(layers, layers_from, [s for s, d in datasets.items() if d is None])
    loaded, info = {}, {}
    for spec, neural in datasets.items():
        loaded[spec], info[spec] = _feature_set(spec, neural, stimulus_set, chosen.get(spec), cache, progress)
    sets = [loaded[spec] for spec in feature_sets]
    folds = _folds_by_name(stimulus_set, sets[0].stimulus_ids) if metric == "procrustes-cv" else None
    matrix = similarity_matrix(sets, metric, folds=folds, whiten=whiten, stimulus_set=stimulus_set.name)
    provenance = {"started": started, "metric": metric, "whiten": matrix.whiten, "feature_sets": list(feature_sets),
                  "stimulus_set": stimulus_set.name, "data_checksums": {"stimuli": stimulus_set.checksum},
                  "models": info}
    results = Results(matrix.records(), details={"similarity": matrix.to_dataset()}, provenance=provenance)
    if out is not None:
        from brainlike.report.figures import save_similarity_figure

        folder = results.save(out)
        save_similarity_figure(matrix, folder / f"similarity-{metric}.png")
    return results


def _load_dataset_or_none(spec: str):
    """The neural dataset ``spec`` names (a registered name or a data file), or None for a model spec."""
    from brainlike.data.datasets import list_datasets, load_dataset

    if spec.endswith((".nc", ".npz")) or spec in {row["name"] for row in list_datasets()}:
        return load_dataset(spec)
    return None


def _chosen_layers(layers: dict[str, Sequence[str]] | None, layers_from, models: list[str]) -> dict[str, list[str]]:
    chosen = {k: list(v) for k, v in (layers or {}).items()}
    if layers_from is None:
        return chosen
    source = layers_from if isinstance(layers_from, Results) else Results.load(layers_from, require="records")
    for model in models:
        if model in chosen:
            continue
        rows = [r for r in source if r["model"] == model and r["metric"] == "regression" and r["target"] == "all"
                and r.get("subject") is None and r.get("roi") is None and r.get("layer")]
        if not rows:
            raise BrainlikeError(f"no aggregate regression record of {model!r} with a layer in the results given "
                                 "for the best layers")
        chosen[model] = [rows[0]["layer"]]
    return chosen


def _feature_set(spec: str, neural, stimulus_set, layers: list[str] | None, cache: bool, progress: bool):
    from brainlike.align.geometry import FeatureSet
    from brainlike.extract import extract_activations
    from brainlike.models.registry import load_model

    if neural is not None:
        neural, window = _time_averaged(neural, None, False)  # a time-resolved dataset: its 0-2 s average
        return FeatureSet.from_dataset(neural), {"dataset": neural.name, "checksums": neural.checksums, **window}
    activations = extract_activations(load_model(spec), stimulus_set, cache=cache, progress_bar=progress)
    features = FeatureSet.from_activations(activations)
    return (features.select(layers) if layers else features), activations.info


def _folds_by_name(stimulus_set, stimulus_ids: Sequence[str]):
    import numpy as np

    index = {s: i for i, s in enumerate(stimulus_set.ids)}
    missing = [s for s in stimulus_ids if s not in index]
    if missing:
        raise BrainlikeError(f"no fold labels for {len(missing)} stimulus name(s) of {stimulus_set.name}, e.g. "
                             f"{missing[:3]}")
    return np.asarray(stimulus_set.folds)[[index[s] for s in stimulus_ids]]


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


def compare(results: str | Path | Results, *models: str, metric: str = "regression", dataset: str | None = None,
            n_bootstrap: int = 1000, n_permutations: int = 1000, seed: int = SEED, selection: str | None = None,
            out: str | Path | None = None) -> Results:
    """Does model A beat model B? Every pair of two or more models, per target and overall.

    For each pair: the score difference, a 95% paired bootstrap interval over sounds (and subjects where there are
    several), a two-sided permutation p-value that swaps the two models' pooled out-of-fold predictions sound by
    sound, Benjamini-Hochberg q-values across targets and pairs, and (several subjects) the paired Wilcoxon test
    across subjects (:mod:`brainlike.align.compare`).

    Parameters
    ----------
    results : path-like or Results
        Results of the models (``brainlike score ... --out``) whose detail keeps the pooled out-of-fold
        predictions (pepino2025).
    *models : str
        Two or more model specs as they appear in the records; pairs in order (A-B, A-C, B-C...).
    metric : {"regression", "rsa"}
        ``rsa`` compares per-subject scores only (paired Wilcoxon, bootstrap over subjects).
    dataset : str, optional
        Which dataset when the results hold several.
    n_bootstrap, n_permutations : int
        Resamples for the interval and permutations for the p-value.
    seed : int
    selection : str, optional
        ``rsa``: the layer selection to compare (default ``layer-max``).
    out : path-like, optional
        Also write the results folder with ``comparisons.jsonl/.csv`` and ``detail-compare.nc``.

    Returns
    -------
    Results
        The input results with :attr:`Results.comparisons` (records ``model_a, model_b, metric, target,
        difference, ci_low, ci_high, p, q``...) and the per-target detail ``details["compare"]``.

    Raises
    ------
    BrainlikeError
        Fewer than two models, no predictions (e.g. tuckute2023 results), a dataset that no longer matches.
    """
    from brainlike.align.compare import compare_models

    loaded = results if isinstance(results, Results) else Results.load(results, require="records")
    rows, detail = compare_models(loaded, models, metric=metric, dataset=dataset, n_bootstrap=n_bootstrap,
                                  n_permutations=n_permutations, seed=seed, selection=selection)
    compared = loaded._like(loaded)
    compared.details = dict(loaded.details)
    compared.comparisons = list(rows)
    if detail is not None:
        compared.details["compare"] = detail
    compared.provenance = {**loaded.provenance, "compare": {"models": list(models), "metric": metric,
                                                            "n_bootstrap": n_bootstrap,
                                                            "n_permutations": n_permutations, "seed": seed}}
    if out is not None:
        compared.save(out)
    return compared
