"""Running models over stimuli: batched forward passes, time pooling, validation and caching."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from brainlike import progress
from brainlike.data.audio import check_waveform, resample
from brainlike.data.stimuli import StimulusSet
from brainlike.errors import ModelError
from brainlike.extract.cache import ArrayCache, cache_key
from brainlike.extract.pooling import POOLING, time_average
from brainlike.models.base import AudioModel
from brainlike.models.registry import load_model

__all__ = ["RESAMPLER", "Activations", "model_key_parts", "extract_activations", "embed_clips"]

log = logging.getLogger(__name__)
RESAMPLER = "resample_poly"


@dataclass
class Activations:
    """Time-averaged activations of one model for one stimulus set.

    Attributes
    ----------
    model : str
        Model spec string.
    layers : list of str
        Layer names in model order.
    arrays : dict
        ``{layer: float32 (n_stimuli, features)}``.
    stimulus_ids : list of str
        Row order of every array.
    key : str
        Cache key of this entry.
    info : dict
        Model description and key parts (provenance).
    """

    model: str
    layers: list[str]
    arrays: dict[str, np.ndarray]
    stimulus_ids: list[str]
    key: str
    info: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False


def model_key_parts(model: AudioModel) -> dict[str, Any]:
    """Cache-key parts describing a model's output: spec, adapter version, weights, preprocessing, rate."""
    return {"model": model.name, "adapter_version": model.adapter_version, "weights": model.weights_id,
            "preprocessing": {**model.preprocessing, "sample_rate": model.sample_rate, "resampler": RESAMPLER,
                              "pooling": POOLING}}


def extract_activations(model_or_spec: AudioModel | str, stimuli: StimulusSet, *, cache: bool = True,
                        progress_bar: bool = True, cache_store: ArrayCache | None = None, **_: Any) -> Activations:
    """Time-averaged activations of every layer for every stimulus, from the cache when present.

    Parameters
    ----------
    model_or_spec : AudioModel or str
        A model or a model spec string (``melspec``, ``whisper-base@random``...).
    stimuli : StimulusSet
        The sounds; each is resampled to the model's rate (scipy ``resample_poly`` on float32).
    cache : bool
        Read and write the activation cache (``BRAINLIKE_CACHE``).
    """
    model = load_model(model_or_spec) if isinstance(model_or_spec, str) else model_or_spec
    parts = {**model_key_parts(model), "stimuli": stimuli.checksum, "what": "stimulus-set"}
    key = cache_key(parts)
    store = cache_store or ArrayCache("activations")
    if cache:
        hit = store.load(key)
        if hit is not None:
            arrays, manifest = hit
            log.info("activations of %s from cache (%s)", model.name, key[:12])
            return Activations(model.name, list(manifest["layers"]), arrays, list(manifest["stimulus_ids"]), key,
                               manifest.get("info", {}), from_cache=True)
    arrays = _run_model(model, lambda i: stimuli.waveform(i, model.sample_rate, RESAMPLER), len(stimuli),
                        f"extracting {model.name}", progress_bar)
    info = {**model.describe(), "key_parts": parts}
    if cache:
        store.save(key, arrays, {"model": model.name, "layers": list(model.layers), "stimulus_ids": stimuli.ids,
                                 "info": info})
    return Activations(model.name, list(model.layers), arrays, list(stimuli.ids), key, info)


def embed_clips(model: AudioModel | str, clips: Sequence[np.ndarray], sample_rate: int, *,
                cache_key_parts: dict[str, Any] | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """Time-averaged embeddings ``{layer: (n_clips, features)}`` of arbitrary clips (any lengths).

    Clips are resampled from ``sample_rate`` to the model's rate; clips of equal length are batched together.
    With ``cache_key_parts`` (which must identify the clip set, e.g. a manifest hash) the result is cached, and
    a run that is stopped part-way resumes from its last checkpoint (saved every ``CHECKPOINT_S`` seconds at a
    batch boundary, so the resumed run forms exactly the batches an uninterrupted run forms).
    """
    model = load_model(model) if isinstance(model, str) else model
    store = ArrayCache("embeddings")
    key = None
    if cache_key_parts is not None:
        key = _embedding_key(model, cache_key_parts, sample_rate)
        hit = store.load(key)
        if hit is not None:
            return hit[0]

    def get(i: int) -> np.ndarray:
        clip = np.asarray(clips[i], dtype=np.float32)
        check_waveform(clip, f"clip {i}", allow_silent=True)
        return resample(clip, sample_rate, model.sample_rate, RESAMPLER)

    checkpoint = None if key is None else _Checkpoint(store, key, len(clips))
    arrays = _run_model(model, get, len(clips), f"embedding {model.name}", progress, checkpoint)
    if key is not None:
        store.save(key, arrays, {"model": model.name, "layers": list(model.layers), "n_clips": len(clips),
                                 "info": {**model.describe(), "clips": cache_key_parts}})
        checkpoint.discard()
    return arrays


def _embedding_key(model: AudioModel, cache_key_parts: dict[str, Any], sample_rate: int) -> str:
    return cache_key({**model_key_parts(model), "clips": cache_key_parts, "rate_in": sample_rate, "what": "clips"})


def embedding_cache_state(model: AudioModel, cache_key_parts: dict[str, Any], sample_rate: int) -> str:
    """``"cached"``, ``"partial"`` (a checkpoint of a stopped run) or ``"absent"``: what :func:`embed_clips` with
    these arguments would find in the cache."""
    store, key = ArrayCache("embeddings"), _embedding_key(model, cache_key_parts, sample_rate)
    if store.load(key) is not None:
        return "cached"
    return "partial" if store.load("partial-" + key) is not None else "absent"


CHECKPOINT_S = 300.0


class _Checkpoint:
    """Partial embeddings of an unfinished :func:`embed_clips` run (cache entry ``partial-<key>``).

    Holds the outputs of the first ``done`` clips in the run's processing order (clips sorted by length); saved
    only between batches, so that resuming at ``done`` forms the same batches as an uninterrupted run.
    """

    def __init__(self, store: ArrayCache, key: str, n_clips: int, every_s: float | None = None) -> None:
        self.store, self.key, self.n_clips = store, "partial-" + key, n_clips
        self.every_s = CHECKPOINT_S if every_s is None else every_s
        self.last = time.monotonic()

    def load(self) -> tuple[int, dict[str, np.ndarray]]:
        """``(done, outputs)`` of a saved checkpoint, or ``(0, {})``."""
        hit = self.store.load(self.key)
        if hit is None or hit[1].get("n_clips") != self.n_clips:
            return 0, {}
        log.info("resuming %s after %d of %d clips", self.key[8:20], hit[1]["done"], self.n_clips)
        return int(hit[1]["done"]), hit[0]

    def maybe_save(self, done: int, outputs: dict[str, np.ndarray]) -> None:
        if done < self.n_clips and time.monotonic() - self.last >= self.every_s:
            self.store.save(self.key, outputs, {"n_clips": self.n_clips, "done": done})
            self.last = time.monotonic()

    def discard(self) -> None:
        self.store.remove(self.key)


def _run_model(model: AudioModel, get_clip, n_clips: int, description: str, show: bool,
               checkpoint: _Checkpoint | None = None) -> dict[str, np.ndarray]:
    """Forward all clips in batches of equal length; pool over time; check shapes and finiteness."""
    clips = [get_clip(i) for i in range(n_clips)]
    order = sorted(range(n_clips), key=lambda i: len(clips[i]))
    start, outputs = checkpoint.load() if checkpoint is not None else (0, {})
    batch_size = max(1, int(model.batch_size))
    with progress.task(description, total=n_clips) if (show and progress.enabled()) else _null() as advance:
        advance(start)
        while start < n_clips:
            length = len(clips[order[start]])
            stop = start
            while stop < n_clips and stop - start < batch_size and len(clips[order[stop]]) == length:
                stop += 1
            idx = order[start:stop]
            activations = model(np.stack([clips[i] for i in idx]))
            for layer, values in activations.items():
                pooled = time_average(values)
                _check_pooled(model, layer, pooled, outputs)
                if layer not in outputs:
                    outputs[layer] = np.empty((n_clips, pooled.shape[1]), dtype=np.float32)
                outputs[layer][idx] = pooled
            advance(stop - start)
            start = stop
            if checkpoint is not None:
                checkpoint.maybe_save(start, outputs)
    return {layer: outputs[layer] for layer in model.layers}


def _check_pooled(model: AudioModel, layer: str, pooled: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
    if not np.all(np.isfinite(pooled)):
        raise ModelError(f"model {model.name}: layer {layer!r} produced NaN or Inf activations")
    if layer in outputs and outputs[layer].shape[1] != pooled.shape[1]:
        raise ModelError(f"model {model.name}: layer {layer!r} changed shape between calls "
                         f"({outputs[layer].shape[1]} -> {pooled.shape[1]} features)")


class _null:
    def __enter__(self):
        return lambda n=1: None

    def __exit__(self, *exc):
        return False
