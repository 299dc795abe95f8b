"""Frame-level activations on a dataset's time bins (methods.md section 9), cached per layer in float16.

Each sound runs through the model with silence before it (the pre-onset bins, for the lags) and after it (to the end
of the response window); any per-sound normalisation of the model is computed on the sound alone
(:meth:`~brainlike.models.base.AudioModel.forward_padded`). Frame k of a layer is centred at
``model.frame_times(layer, ...)[k] - onset`` seconds from sound onset. Bins start at ``t_b = k / rate`` for
``k = -ceil(pre * rate) ... ceil(stop * rate) - 1``; bin b covers ``[t_b, t_b + 1 / rate)`` and holds the mean of the
frames whose centre falls in it, or, where no frame centre does (a model slower than ``rate``), the linear
interpolation of the two frames around the bin centre. Every bin therefore reads the model's own output (on the
sound or on silence): nothing is ever filled with a constant. ``EDGE_S`` more seconds of silence on both sides keep
every bin inside the model's frames; a bin beyond the first or last frame centre (models with very long frames) takes
that frame's value and is counted in ``info["held_bins"]``.

Cache: one entry per layer under ``<BRAINLIKE_CACHE>/frames/<key[:2]>/``: ``<key>.npy`` (n_stimuli, n_bins,
features), float16 of the values minus their per-feature mean (float32 when that would overflow float16),
``<key>.offset.npy`` (the per-feature mean, float32) and the ``<key>.json`` manifest (sha256 of both files) written
last. The key covers the model (spec, adapter version, weights, preprocessing, sample rate, resampler), the
stimulus-set checksum, rate, pre, stop, edge, the binning version and the layer. During extraction rows go to a
float32 scratch file on disk, so memory holds one batch of frames, never the whole set.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from brainlike import progress
from brainlike.config import cache_root
from brainlike.data.checksums import sha256_file
from brainlike.data.stimuli import StimulusSet
from brainlike.errors import ModelError, ProtocolError, UnknownNameError
from brainlike.extract.cache import cache_key
from brainlike.extract.extractor import RESAMPLER, model_key_parts
from brainlike.integrity import atomic_write, atomic_write_bytes
from brainlike.models.base import AudioModel
from brainlike.models.registry import load_model

log = logging.getLogger(__name__)

BINNING_VERSION = 1
EDGE_S = 0.5
"""Seconds of silence added beyond the first and last bin (models may ask for more: ``frame_edge_s``)."""
FLOAT16_MAX = 60000.0
"""Centred values beyond this are stored as float32 (float16 saturates at 65,504)."""
_TIME_EPS = 1e-9


@dataclass
class FrameActivations:
    """Frame-level activations of one model on a dataset's time bins.

    Attributes
    ----------
    model : str
        Model spec string.
    layers : list of str
        Layers held (model order).
    arrays : Mapping of str to ndarray
        ``{layer: float32 (n_stimuli, n_bins, features)}``; from the cache each layer is read when accessed (so
        iterating layers holds one at a time).
    bin_times : ndarray (n_bins,)
        Bin starts in seconds from sound onset (negative before onset).
    rate : float
        Bins per second.
    stimulus_ids : list of str
        Row order of every array.
    causal : bool
        Whether every layer held is causal (``info["causal_layers"]`` per layer).
    key : str
        Cache key of this request (model, stimuli, rate, pre, stop, layers).
    info : dict
        Model description, key parts, per-layer causality and frame hops, padding, held bins.
    from_cache : bool
        True when every layer came from the cache.
    """

    model: str
    layers: list[str]
    arrays: Mapping[str, np.ndarray]
    bin_times: np.ndarray
    rate: float
    stimulus_ids: list[str]
    causal: bool
    key: str
    info: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False

    @property
    def n_pre(self) -> int:
        """Number of bins before sound onset."""
        return int(np.sum(self.bin_times < -_TIME_EPS))


def bin_starts(rate: float, pre: float, stop: float) -> np.ndarray:
    """Bin starts ``k / rate`` for ``k = -ceil(pre * rate) ... ceil(stop * rate) - 1`` (seconds from onset)."""
    first = -math.ceil(pre * rate - 1e-9)
    last = math.ceil(stop * rate - 1e-9)
    return np.arange(first, last, dtype=np.float64) / rate


def binning_matrix(frame_times: np.ndarray, bin_times: np.ndarray, rate: float) -> tuple[np.ndarray, int]:
    """Weights (n_bins, n_frames) putting frames on bins, and the number of bins held at an edge frame.

    Bin b = mean of the frames whose centre lies in ``[t_b, t_b + 1 / rate)``; a bin without one gets the linear
    interpolation, at its centre, of the frames just before and after (frames sharing a centre time are averaged
    first); a bin before the first (after the last) frame centre takes the first (last) frame.
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    n_bins, n_frames = len(bin_times), len(frame_times)
    if n_frames == 0:
        raise ModelError("a layer returned no frames")
    weights = np.zeros((n_bins, n_frames))
    index = np.floor((frame_times - bin_times[0]) * rate + _TIME_EPS).astype(np.int64)
    inside = (index >= 0) & (index < n_bins)
    np.add.at(weights, (index[inside], np.flatnonzero(inside)), 1.0)
    counts = weights.sum(axis=1)
    weights[counts > 0] /= counts[counts > 0, None]
    unique, group = np.unique(frame_times, return_inverse=True)
    members = [np.flatnonzero(group == g) for g in range(len(unique))]
    held = 0
    for b in np.flatnonzero(counts == 0):
        centre = bin_times[b] + 0.5 / rate
        j = int(np.searchsorted(unique, centre, side="right"))
        if j == 0 or j == len(unique):
            held += 1
            pairs = [(members[0 if j == 0 else -1], 1.0)]
        else:
            a = (centre - unique[j - 1]) / (unique[j] - unique[j - 1])
            pairs = [(members[j - 1], 1.0 - a), (members[j], a)]
        for frames, weight in pairs:
            weights[b, frames] += weight / len(frames)
    return weights, held


# ----------------------------------------------------------------------------------------------------------------
# cache


class FrameStore:
    """Per-layer frame entries under ``<root>/frames/<key[:2]>/<key>.{npy,offset.npy,json}``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_root()) / "frames"

    def paths(self, key: str) -> tuple[Path, Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.offset.npy", folder / f"{key}.json"

    def manifest(self, key: str) -> dict[str, Any] | None:
        """The manifest of a complete, intact entry, else None (missing files or sha256 mismatch)."""
        data, offset, manifest = self.paths(key)
        if not (data.is_file() and offset.is_file() and manifest.is_file()):
            return None
        try:
            meta = json.loads(manifest.read_text())
            if sha256_file(data) != meta["sha256"] or sha256_file(offset) != meta["offset_sha256"]:
                return None
        except (OSError, ValueError, KeyError):
            return None
        return meta

    def read(self, key: str) -> np.ndarray:
        """The stored layer as float32 (n_stimuli, n_bins, features)."""
        data, offset, _ = self.paths(key)
        values = np.load(data, mmap_mode="r", allow_pickle=False)
        out = np.empty(values.shape, dtype=np.float32)
        centre = np.load(offset, allow_pickle=False).astype(np.float32)
        for i in range(values.shape[0]):  # row by row: never a second full-size temporary
            np.add(values[i], centre, out=out[i], dtype=np.float32)
        del values
        return out

    def verify(self) -> list[dict[str, str]]:
        """One row per entry with ``status`` ok / corrupt / incomplete."""
        rows = []
        if not self.root.is_dir():
            return rows
        keys = {p.name.split(".")[0] for p in self.root.glob("*/*") if not p.name.startswith(".")}
        for key in sorted(keys):
            if not all(p.is_file() for p in self.paths(key)):
                rows.append({"key": key, "status": "incomplete", "detail": "array, offset or manifest missing"})
                continue
            meta = self.manifest(key)
            rows.append({"key": key, "status": "ok" if meta else "corrupt",
                         "detail": (meta or {}).get("model", "sha256 mismatch or unreadable manifest")})
        return rows


class LazyLayers(Mapping):
    """``{layer: float32 array}`` read from the frame cache when accessed (one layer in memory at a time)."""

    def __init__(self, store: FrameStore, keys: dict[str, str]) -> None:
        self._store, self._keys = store, dict(keys)

    def __getitem__(self, layer: str) -> np.ndarray:
        if layer not in self._keys:
            raise KeyError(layer)
        return self._store.read(self._keys[layer])

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class _RowWriter:
    """Rows (n_bins, features) of one layer written to a float32 scratch file, then stored as a cache entry."""

    def __init__(self, folder: Path, n_rows: int) -> None:
        fd, name = tempfile.mkstemp(prefix=".frames.", suffix=".f32", dir=folder)
        self.handle = os.fdopen(fd, "w+b")
        self.path = Path(name)
        self.n_rows = n_rows
        self.shape: tuple[int, int] | None = None
        self.total: np.ndarray | None = None

    def write(self, row: int, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.float32)
        if self.shape is None:
            self.shape = values.shape
            self.total = np.zeros(values.shape[1])
        elif values.shape != self.shape:
            raise ModelError(f"frames changed shape between clips: {self.shape} -> {values.shape}")
        self.handle.seek(row * values.nbytes)
        self.handle.write(values.tobytes())
        self.total += values.sum(axis=0, dtype=np.float64)

    def _rows(self) -> Iterator[np.ndarray]:
        self.handle.flush()
        size = int(np.prod(self.shape))
        for row in range(self.n_rows):
            self.handle.seek(row * size * 4)
            yield np.frombuffer(self.handle.read(size * 4), dtype=np.float32).reshape(self.shape)

    def store(self, store: FrameStore, key: str, meta: dict[str, Any]) -> None:
        """Centre, choose float16 (float32 on overflow) and write the entry atomically (manifest last)."""
        centre = (self.total / (self.n_rows * self.shape[0])).astype(np.float32)
        spread = max(float(np.max(np.abs(rows - centre))) for rows in self._rows())
        dtype = np.float16 if spread < FLOAT16_MAX else np.float32
        data_path, offset_path, manifest_path = store.paths(key)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                  "shape": (self.n_rows, *self.shape)}

        def write_data(handle) -> None:
            np.lib.format.write_array_header_1_0(handle, header)
            for rows in self._rows():
                handle.write((rows - centre).astype(dtype).tobytes())

        atomic_write_bytes(data_path, write_data)
        atomic_write_bytes(offset_path, lambda handle: np.save(handle, centre, allow_pickle=False))
        manifest = {**meta, "key": key, "dtype": np.dtype(dtype).name, "shape": [self.n_rows, *self.shape],
                    "sha256": sha256_file(data_path), "offset_sha256": sha256_file(offset_path)}
        atomic_write(manifest_path, json.dumps(manifest, sort_keys=True, default=str, indent=1))

    def close(self) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------------
# extraction


def frame_layers(model: AudioModel, layers: Sequence[str] | None) -> list[str]:
    """The layers to extract: ``layers`` (checked) or every layer with a time axis, in model order."""
    if not model.time_resolved:
        raise ModelError(f"model {model.name!r} has no time axis (its features are time-averaged): it has no frames "
                         "for time-resolved analyses; use a time-averaged protocol (pepino2025, tuckute2023)")
    timed = [layer for layer in model.layers if layer not in model.clip_level_layers]
    if layers is None:
        return timed
    unknown = [layer for layer in layers if layer not in model.layers]
    if unknown:
        raise UnknownNameError(f"model {model.name!r} has no layer(s) {unknown[:3]}; layers: {', '.join(model.layers)}")
    clip_level = [layer for layer in layers if layer in model.clip_level_layers]
    if clip_level:
        raise ModelError(f"layer(s) {clip_level} of {model.name!r} have one step per clip: no frames")
    return [layer for layer in model.layers if layer in set(layers)]


def _check_time_base(rate: float, pre: float, stop: float) -> None:
    if not (np.isfinite(rate) and rate > 0):
        raise ProtocolError(f"rate must be a positive number of bins per second, got {rate!r}")
    if not (np.isfinite(pre) and pre >= 0):
        raise ProtocolError(f"pre (silence before onset, s) must be >= 0, got {pre!r}")
    if not (np.isfinite(stop) and stop > 0):
        raise ProtocolError(f"stop (end of the response window, s) must be > 0, got {stop!r}")


def extract_frames(model: AudioModel | str, stimuli: StimulusSet, *, rate: float = 25.0, pre: float = 0.5,
                   stop: float = 3.0, layers: Sequence[str] | None = None, cache: bool = True,
                   progress: bool = True, store: FrameStore | None = None) -> FrameActivations:
    """Frame-level activations of a model on the bins of a time-resolved analysis (cached per layer).

    Parameters
    ----------
    model : AudioModel or str
        The model or its spec.
    stimuli : StimulusSet
        The sounds (each resampled to the model's rate with scipy ``resample_poly``).
    rate : float
        Bins per second (the dataset's rate after averaging, e.g. 25).
    pre : float
        Seconds before onset covered by bins (at least the longest lag).
    stop : float
        End of the response window in seconds after onset (bins up to it).
    layers : sequence of str, optional
        Restrict to these layers (default: every layer with a time axis).
    cache : bool
        Read and write the frame cache.
    progress : bool
        Progress bar on stderr.
    store : FrameStore, optional
        Cache location (default ``BRAINLIKE_CACHE/frames``).

    Returns
    -------
    FrameActivations

    Raises
    ------
    ModelError
        A model without a time axis, clip-level layers requested, non-finite frames.
    ProtocolError
        A bad time base (rate, pre, stop).
    """
    model = load_model(model) if isinstance(model, str) else model
    _check_time_base(float(rate), float(pre), float(stop))
    wanted = frame_layers(model, layers)
    rate, pre, stop = float(rate), float(pre), float(stop)
    bins = bin_starts(rate, pre, stop)
    edge = max(EDGE_S, float(getattr(model, "frame_edge_s", EDGE_S)))
    parts = {**model_key_parts(model), "stimuli": stimuli.checksum, "what": "frames", "rate": rate, "pre": pre,
             "stop": stop, "edge": edge, "binning": BINNING_VERSION}
    keys = {layer: cache_key({**parts, "layer": layer}) for layer in wanted}
    key = cache_key({**parts, "layers": wanted})
    store = store or FrameStore()
    info = {**model.describe(), "key_parts": parts, "layer_keys": keys,
            "causal_layers": {layer: model.layer_causal(layer) for layer in wanted}}
    causal = all(info["causal_layers"].values())
    done = {layer: store.manifest(keys[layer]) for layer in wanted} if cache else {}
    missing = [layer for layer in wanted if not done.get(layer)]
    if cache and not missing:
        info.update(_layer_info(done, wanted))
        return FrameActivations(model.name, wanted, LazyLayers(store, keys), bins, rate, list(stimuli.ids), causal,
                                key, info, from_cache=True)
    run = _FrameRun(model, bins, rate, edge, missing, len(stimuli))
    if cache:
        store.root.mkdir(parents=True, exist_ok=True)
        folder = store.root
        writers = {layer: _RowWriter(folder, len(stimuli)) for layer in missing}
        try:
            run.over(lambda i: stimuli.waveform(i, model.sample_rate, RESAMPLER), f"frames of {model.name}",
                     progress, writers)
            for layer in missing:
                meta = {"model": model.name, "layer": layer, "stimulus_ids": list(stimuli.ids),
                        "bin_times": bins.tolist(), "rate": rate, **run.layer_info[layer]}
                writers[layer].store(store, keys[layer], meta)
                done[layer] = store.manifest(keys[layer])
        finally:
            for writer in writers.values():
                writer.close()
        info.update(_layer_info(done, wanted))
        return FrameActivations(model.name, wanted, LazyLayers(store, keys), bins, rate, list(stimuli.ids), causal,
                                key, info)
    arrays = run.over(lambda i: stimuli.waveform(i, model.sample_rate, RESAMPLER), f"frames of {model.name}",
                      progress, None)
    info.update(_layer_info({layer: run.layer_info[layer] for layer in wanted}, wanted))
    return FrameActivations(model.name, wanted, arrays, bins, rate, list(stimuli.ids), causal, key, info)


def _layer_info(meta: dict[str, dict], layers: list[str]) -> dict[str, Any]:
    return {"frame_hop_s": {layer: meta[layer].get("frame_hop_s") for layer in layers},
            "shape": {layer: meta[layer].get("shape") for layer in layers},
            "held_bins": {layer: meta[layer].get("held_bins", 0) for layer in layers},
            "padding_s": next((meta[layer].get("padding_s") for layer in layers), None)}


def frames_of_clips(model: AudioModel | str, clips: Sequence[np.ndarray], *, rate: float = 25.0, pre: float = 0.5,
                    stop: float = 3.0, layers: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Binned frames ``{layer: (n_clips, n_bins, features)}`` of clips already at the model's rate (no cache).

    The same padding and binning as :func:`extract_frames` (bins from :func:`bin_starts`).
    """
    model = load_model(model) if isinstance(model, str) else model
    _check_time_base(float(rate), float(pre), float(stop))
    wanted = frame_layers(model, layers)
    edge = max(EDGE_S, float(getattr(model, "frame_edge_s", EDGE_S)))
    run = _FrameRun(model, bin_starts(rate, pre, stop), float(rate), edge, wanted, len(clips))
    return run.over(lambda i: np.asarray(clips[i], dtype=np.float32), "frames", False, None)


class _FrameRun:
    """One pass of a model over padded clips, binning the frames of ``layers``."""

    def __init__(self, model: AudioModel, bins: np.ndarray, rate: float, edge: float, layers: list[str],
                 n_clips: int) -> None:
        self.model, self.bins, self.rate, self.edge, self.layers = model, bins, rate, edge, layers
        self.n_clips = n_clips
        self.layer_info: dict[str, dict[str, Any]] = {}
        self._weights: dict[tuple, np.ndarray] = {}

    def padding(self, n_sound: int) -> tuple[int, int]:
        """Samples of silence before and after a sound of ``n_sound`` samples."""
        sr = self.model.sample_rate
        before = int(math.ceil((-self.bins[0] + self.edge) * sr - 1e-6))
        after = max(0, int(math.ceil((self.bins[-1] + 1.0 / self.rate + self.edge) * sr - 1e-6)) - n_sound)
        return before, after

    def over(self, get_clip, description: str, show: bool, writers: dict[str, _RowWriter] | None
             ) -> dict[str, np.ndarray]:
        clips = [get_clip(i) for i in range(self.n_clips)]
        order = sorted(range(self.n_clips), key=lambda i: len(clips[i]))
        outputs: dict[str, np.ndarray] = {}
        batch_size = max(1, int(self.model.batch_size))
        bar = progress.task(description, total=self.n_clips) if (show and progress.enabled()) else _NullTask()
        with bar as advance:
            start = 0
            while start < self.n_clips:
                length = len(clips[order[start]])
                stop = start
                while stop < self.n_clips and stop - start < batch_size and len(clips[order[stop]]) == length:
                    stop += 1
                idx = order[start:stop]
                for layer, binned in self._batch([clips[i] for i in idx]).items():
                    if writers is not None:
                        for row, values in zip(idx, binned):
                            writers[layer].write(row, values)
                    else:
                        if layer not in outputs:
                            outputs[layer] = np.empty((self.n_clips, *binned.shape[1:]), dtype=np.float32)
                        outputs[layer][idx] = binned
                advance(stop - start)
                start = stop
        return outputs

    def _batch(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        from brainlike.data.audio import check_waveform

        n_sound = len(clips[0])
        for i, clip in enumerate(clips):
            check_waveform(clip, f"clip {i}", allow_silent=True)
        before, after = self.padding(n_sound)
        batch = np.zeros((len(clips), before + n_sound + after), dtype=np.float32)
        for row, clip in zip(batch, clips):
            row[before: before + n_sound] = clip
        activations = self.model.run_padded(batch, slice(before, before + n_sound))
        onset = before / float(self.model.sample_rate)
        binned = {}
        for layer in self.layers:
            values = activations[layer]
            weights = self._binning(layer, values.shape[1], batch.shape[1], onset)
            out = np.matmul(weights.astype(np.float32), values)  # (bins, frames) @ (batch, frames, features)
            if not np.all(np.isfinite(out)):
                raise ModelError(f"model {self.model.name}: layer {layer!r} produced NaN or Inf frames")
            self.layer_info[layer]["shape"] = [self.n_clips, *out.shape[1:]]
            binned[layer] = out
        return binned

    def _binning(self, layer: str, n_frames: int, n_samples: int, onset: float) -> np.ndarray:
        signature = (layer, n_frames, n_samples)
        if signature not in self._weights:
            times = np.asarray(self.model.frame_times(layer, n_frames, n_samples), dtype=np.float64) - onset
            if times.shape != (n_frames,) or not np.all(np.isfinite(times)):
                raise ModelError(f"model {self.model.name}: frame_times of layer {layer!r} gave shape {times.shape} "
                                 f"for {n_frames} frames")
            weights, held = binning_matrix(times, self.bins, self.rate)
            steps = np.diff(np.unique(times))
            self.layer_info[layer] = {"frame_hop_s": float(np.median(steps)) if len(steps) else None,
                                      "held_bins": int(held), "n_frames": int(n_frames),
                                      "padding_s": [onset, n_samples / float(self.model.sample_rate) - onset]}
            if held:
                log.info("%s %s: %d bin(s) beyond the first/last frame centre take that frame's value",
                         self.model.name, layer, held)
            self._weights[signature] = weights
        return self._weights[signature]


class _NullTask:
    def __enter__(self):
        return lambda n=1: None

    def __exit__(self, *exc):
        return False


__all__ = ["BINNING_VERSION", "FrameActivations", "FrameStore", "bin_starts", "binning_matrix", "extract_frames",
           "frame_layers", "frames_of_clips"]
