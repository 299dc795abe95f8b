"""Hugging Face ``transformers`` audio models: the ``hf:`` model family.

Spec strings
------------
``hf:<hub id>``
    A model from the local Hugging Face hub cache (``$HF_HOME``, default ``~/.cache/huggingface``), e.g.
    ``hf:facebook/wav2vec2-base``. When it is not cached and neither ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``
    nor ``BRAINLIKE_OFFLINE`` is set, it is downloaded into that cache; offline, a missing model is a one-line error.
``hf:<local folder>``
    A folder written by ``save_pretrained`` (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``, and
    ideally ``preprocessor_config.json``).
``hf:<CTranslate2 Whisper model.bin>``
    A file (not a folder): the encoder of a CTranslate2 Whisper model (faster-whisper's ``model.bin``, fp16/fp32)
    converted into transformers' ``WhisperEncoder`` (see :func:`whisper_encoder_from_ctranslate2`).
``hf:random/<arch>`` (``<arch>`` in :data:`ARCHITECTURES`), optionally ``?key=value&key=value``
    A randomly initialised model (seed :data:`~brainlike.models.base.RANDOM_SEED`) built from the default
    ``transformers`` configuration of that architecture (the base-size model), with config fields overridden by the
    query (values parsed as JSON: ``?num_hidden_layers=2&conv_dim=[32,32]``). ``preset=tiny`` selects a small
    configuration (a few layers of width 32) meant for tests. ``hf@random`` is ``hf:random/wav2vec2``.

Layers
------
Every hidden state the model returns is a layer, named ``hidden_states.<i>`` with ``i`` the index in transformers'
``hidden_states`` tuple (0 = the input of the first transformer block). In addition:

* wav2vec2, HuBERT, WavLM, data2vec-audio: ``features`` (output of the convolutional feature encoder);
* Whisper (encoder only): ``conv1`` and ``conv2`` (after their GELU). As in the native ``whisper-*`` adapters, the
  input is padded to the model's 30 s window (longer clips are cut into consecutive windows whose frames are
  concatenated) and every layer is cut to the frames that carry the clip (``samples // 160`` mel frames for
  ``conv1``, half as many, rounded up, from ``conv2`` on);
* AST: patch tokens only (no CLS/distillation tokens), averaged over the frequency patches, so time is the patch
  column; columns that start after the end of the clip are dropped;
* CLAP audio tower: the Swin stages as token grids flattened to ``(batch, tokens, channels)`` (the HTSAT token
  order is not time order; time-averaging gives the global average) and ``audio_embeds`` (the projected clip
  embedding) when the checkpoint has the projection. Clips longer than the 10 s window are cut to their first 10 s
  (the feature extractor would crop at random) and fusion checkpoints get ``is_longer = False`` for every clip.

Waveforms go through the checkpoint's own feature extractor (``preprocessor_config.json``: normalisation, log-mel,
padding, as the model card prescribes); random models use the architecture's default feature extractor.
``whisper_encoder_from_ctranslate2`` converts the encoder of a CTranslate2 Whisper ``model.bin`` into
transformers' ``WhisperEncoder``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import parse_qsl

import numpy as np

from brainlike.errors import BrainlikeError, ModelError
from brainlike.models.base import RANDOM_SEED, FrameGrid, TorchAudioModel, seed_everything_for_init
from brainlike.models.registry import FamilyEntry, register_family

log = logging.getLogger(__name__)

ADAPTER_VERSION = 1
RANDOM_PREFIX = "random/"
DEFAULT_RANDOM_ARCH = "wav2vec2"
OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "BRAINLIKE_OFFLINE")
INSTALL_HINT = "needs transformers: pip install 'brainlike[hf]'"


@dataclass(frozen=True)
class Architecture:
    """How one transformers architecture is built, fed and read out.

    Attributes
    ----------
    model_type : str
        ``config.model_type`` in transformers.
    config_class, model_class, extractor_class : str
        Names of the transformers classes (resolved lazily).
    kind : str
        Read-out family: ``ssl`` (wav2vec2-like), ``whisper``, ``ast``, ``clap`` or ``generic``.
    tiny : dict
        Config overrides of the ``preset=tiny`` configuration.
    """

    model_type: str
    config_class: str
    model_class: str
    extractor_class: str
    kind: str
    tiny: Mapping[str, Any]


_SSL_TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "conv_dim": [32, 32], "conv_kernel": [10, 3], "conv_stride": [5, 2],
             "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}

ARCHITECTURES: dict[str, Architecture] = {
    "wav2vec2": Architecture("wav2vec2", "Wav2Vec2Config", "Wav2Vec2Model", "Wav2Vec2FeatureExtractor", "ssl",
                             _SSL_TINY),
    "hubert": Architecture("hubert", "HubertConfig", "HubertModel", "Wav2Vec2FeatureExtractor", "ssl", _SSL_TINY),
    "wavlm": Architecture("wavlm", "WavLMConfig", "WavLMModel", "Wav2Vec2FeatureExtractor", "ssl",
                          {**_SSL_TINY, "num_buckets": 16, "max_bucket_distance": 64}),
    "data2vec-audio": Architecture("data2vec-audio", "Data2VecAudioConfig", "Data2VecAudioModel",
                                   "Wav2Vec2FeatureExtractor", "ssl",
                                   {**_SSL_TINY, "num_conv_pos_embeddings": 3, "conv_pos_kernel_size": 3}),
    "whisper": Architecture("whisper", "WhisperConfig", "WhisperModel", "WhisperFeatureExtractor", "whisper",
                            {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2,
                             "encoder_ffn_dim": 64, "decoder_layers": 1, "decoder_attention_heads": 2,
                             "decoder_ffn_dim": 64, "max_source_positions": 100}),
    "ast": Architecture("audio-spectrogram-transformer", "ASTConfig", "ASTModel", "ASTFeatureExtractor", "ast",
                        {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 64, "num_mel_bins": 32, "max_length": 300}),
    "clap": Architecture("clap_audio_model", "ClapAudioConfig", "ClapAudioModelWithProjection",
                         "ClapFeatureExtractor", "clap",
                         {"hidden_size": 32, "patch_embeds_hidden_size": 16, "depths": [1, 1], "num_attention_heads": [2, 2],
                          "spec_size": 256, "window_size": 8, "projection_dim": 16}),
}
"""Architectures buildable with ``hf:random/<arch>`` (and recognised in checkpoints by ``model_type``)."""

_BY_MODEL_TYPE = {arch.model_type: arch for arch in ARCHITECTURES.values()}
_BY_MODEL_TYPE["clap"] = ARCHITECTURES["clap"]  # a full CLAP checkpoint: its audio tower is loaded


# ----------------------------------------------------------------------------------------------------------------
# The model


class HFAudioModel(TorchAudioModel):
    """A transformers audio model exposing every hidden state as a layer.

    Parameters
    ----------
    module : torch.nn.Module
        The transformers model (for Whisper: the ``WhisperEncoder``).
    extractor : transformers.FeatureExtractionMixin
        The feature extractor applied to each waveform batch.
    kind : str
        ``ssl``, ``whisper``, ``ast``, ``clap`` or ``generic`` (see module docstring).
    weights_id : str
        sha256 of the weights (``"+"``-joined when there are several files) or ``random:<seed>``.
    """

    adapter_version = ADAPTER_VERSION
    batch_size = 4

    def __init__(self, module: Any, extractor: Any, kind: str, weights_id: str, name: str = "hf") -> None:
        self.module = module.eval()
        self.extractor = extractor
        self.kind = kind
        self.weights_id = weights_id
        self.name = name
        self.sample_rate = int(extractor.sampling_rate)
        self.input_name = extractor.model_input_names[0]
        self._taps: dict[str, Any] = {}
        self._install_taps()
        self.layers = self._layer_names()
        self.preprocessing = {"kind": kind, "extractor": _extractor_digest(extractor), "sample_rate": self.sample_rate}
        self.time_resolved = kind != "clap"  # HTSAT's token grid is not in time order
        self.clip_level_layers = ("audio_embeds",) if "audio_embeds" in self.layers else ()

    # -- layer bookkeeping ----------------------------------------------------------------------------------------
    def _n_hidden(self) -> int:
        config = self.module.config
        if self.kind == "whisper":
            return int(config.encoder_layers) + 1
        if self.kind == "clap":
            return len(config.depths) + 1
        return int(config.num_hidden_layers) + 1

    def _layer_names(self) -> list[str]:
        hidden = [f"hidden_states.{i}" for i in range(self._n_hidden())]
        if self.kind == "ssl":
            return ["features", *hidden]
        if self.kind == "whisper":
            return ["conv1", "conv2", *hidden]
        if self.kind == "clap" and hasattr(self.module, "audio_projection"):
            return [*hidden, "audio_embeds"]
        return hidden

    def _install_taps(self) -> None:
        """Forward hooks for stages transformers does not return (conv encoder, Whisper convolutions)."""
        if self.kind == "ssl":
            self.module.feature_extractor.register_forward_hook(self._tap("features", transpose=True))
        elif self.kind == "whisper":
            self.module.conv1.register_forward_hook(self._tap("conv1", transpose=True, gelu=True))
            self.module.conv2.register_forward_hook(self._tap("conv2", transpose=True, gelu=True))

    def _tap(self, layer: str, *, transpose: bool = False, gelu: bool = False) -> Any:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            import torch.nn.functional as F

            value = F.gelu(output) if gelu else output
            self._taps[layer] = value.transpose(1, 2) if transpose else value  # (batch, C, time) -> (batch, time, C)

        return hook

    # -- forward --------------------------------------------------------------------------------------------------
    def forward(self, waveforms: np.ndarray) -> dict[str, Any]:
        if self.kind == "whisper":
            return self._forward_windows(waveforms)
        return self._forward_once(self._limit_length(waveforms))

    def _forward_once(self, waveforms: np.ndarray) -> dict[str, Any]:
        import torch

        self.module.eval()
        features = self._extract_features([np.asarray(w, dtype=np.float32) for w in waveforms])
        with torch.inference_mode():
            inputs = {k: v.to(self.device) for k, v in features.items()}
            return self.forward_torch(inputs, waveforms.shape[1])

    def _forward_windows(self, waveforms: np.ndarray) -> dict[str, Any]:
        """Whisper: cut clips longer than the window into consecutive windows and concatenate along time."""
        import torch

        window = int(self.extractor.n_samples)
        if waveforms.shape[1] < int(self.extractor.hop_length):
            raise ModelError(f"{self.name}: clip of {waveforms.shape[1]} samples is shorter than one mel frame")
        parts = [self._forward_once(waveforms[:, start: start + window])
                 for start in range(0, waveforms.shape[1], window)]
        return {layer: torch.cat([part[layer] for part in parts], dim=1) for layer in parts[0]}

    def _limit_length(self, waveforms: np.ndarray) -> np.ndarray:
        limit = getattr(self.extractor, "nb_max_samples", None) if self.kind == "clap" else None
        if limit and waveforms.shape[1] > limit:
            log.warning("%s: clips of %.1f s are cut to the model's %.1f s window", self.name,
                        waveforms.shape[1] / self.sample_rate, limit / self.sample_rate)
            return waveforms[:, :limit]
        return waveforms

    def _extract_features(self, clips: list[np.ndarray]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"sampling_rate": self.sample_rate, "return_tensors": "pt"}
        if self.kind == "clap":
            kwargs["truncation"] = "fusion" if getattr(self.module.config, "enable_fusion", False) else "rand_trunc"
        features = dict(self.extractor(clips, **kwargs))
        if self.kind == "clap":  # clips are <= the window: no random fusion flag
            features["is_longer"] = features["is_longer"].zero_()
        return {k: v for k, v in features.items() if k in (self.input_name, "is_longer")}

    def forward_torch(self, inputs: Mapping[str, Any], n_samples: int) -> dict[str, Any]:  # type: ignore[override]
        """Run the module on feature-extractor outputs and collect ``{layer: (batch, time, features)}``."""
        self._taps.clear()
        output = self.module(**inputs, output_hidden_states=True)
        hidden = list(output.hidden_states)
        layers: dict[str, Any] = dict(self._taps)
        if self.kind == "ast":
            hidden = [self._ast_columns(h, n_samples) for h in hidden]
        elif self.kind == "clap":
            hidden = [h.flatten(2).transpose(1, 2) if h.ndim == 4 else h for h in hidden]
            if "audio_embeds" in self.layers:
                layers["audio_embeds"] = output.audio_embeds[:, None, :]
        for i, value in enumerate(hidden):
            layers[f"hidden_states.{i}"] = value
        if self.kind == "whisper":
            layers = self._whisper_trim(layers, n_samples)
        return layers

    def _whisper_trim(self, layers: dict[str, Any], n_samples: int) -> dict[str, Any]:
        hop = int(self.extractor.hop_length)
        mel_frames = min(max(1, n_samples // hop), int(self.extractor.nb_max_frames))
        encoder_frames = (mel_frames + 1) // 2
        return {k: v[:, : (mel_frames if k == "conv1" else encoder_frames)] for k, v in layers.items()}

    def _ast_columns(self, hidden: Any, n_samples: int) -> Any:
        """(batch, 2 + F*T, D) tokens -> (batch, T_clip, D): patch columns averaged over frequency."""
        config = self.module.config
        patch = int(config.patch_size)
        n_freq = (int(config.num_mel_bins) - patch) // int(config.frequency_stride) + 1
        n_time = (int(config.max_length) - patch) // int(config.time_stride) + 1
        grid = hidden[:, 2:].reshape(hidden.shape[0], n_freq, n_time, hidden.shape[-1])
        frames = 1 + (n_samples - 400) // 160 if n_samples >= 400 else 1  # kaldi fbank: 25 ms window, 10 ms shift
        keep = min(n_time, max(1, math.ceil(frames / int(config.time_stride))))
        return grid.mean(dim=1)[:, :keep]


    # -- frames -----------------------------------------------------------------------------------------------------
    def forward_padded(self, waveforms: np.ndarray, sound: slice) -> dict[str, Any]:
        """Sounds in silence, every per-clip normalisation computed on the sound alone: the feature extractor's
        ``do_normalize`` (zero mean, unit variance; the silence stays 0) and, for ``feat_extract_norm = "group"``
        encoders (wav2vec2 base, HuBERT base...), the GroupNorm over time of the first convolution, whose statistics
        come from the frames that lie within the sound."""
        if self.kind != "ssl":
            return self.forward(waveforms)
        normalise = bool(getattr(self.extractor, "do_normalize", False))
        x = np.asarray(waveforms, dtype=np.float32)
        if normalise:
            part = x[:, sound].astype(np.float64)
            scale = np.sqrt(part.var(axis=1, keepdims=True) + 1e-7)  # as Wav2Vec2FeatureExtractor
            x = np.zeros_like(x)
            x[:, sound] = (part - part.mean(axis=1, keepdims=True)) / scale
        hook = self._sound_group_norm(sound)
        self.extractor.do_normalize = False
        try:
            return self.forward(x)
        finally:
            self.extractor.do_normalize = normalise
            if hook is not None:
                hook.remove()

    def _sound_group_norm(self, sound: slice) -> Any:
        """A forward hook making the first conv layer's per-channel GroupNorm use the sound's frames only."""
        import torch

        if getattr(self.module.config, "feat_extract_norm", None) != "group":
            return None
        norm = self.module.feature_extractor.conv_layers[0].layer_norm
        if norm.num_groups != norm.num_channels:
            raise ModelError(f"{self.name}: GroupNorm with {norm.num_groups} groups for {norm.num_channels} channels "
                             "is not supported for frames")
        kernel, stride = int(self.module.config.conv_kernel[0]), int(self.module.config.conv_stride[0])
        first = -(-int(sound.start) // stride)
        last = (int(sound.stop) - kernel) // stride + 1  # frames whose whole window lies in the sound

        def hook(module: Any, inputs: Any, output: Any) -> Any:
            x = inputs[0]
            part = x[..., first:max(last, first + 1)]
            mean = part.mean(dim=-1, keepdim=True)
            var = part.var(dim=-1, unbiased=False, keepdim=True)
            normed = (x - mean) / torch.sqrt(var + module.eps)
            return normed * module.weight[None, :, None] + module.bias[None, :, None]

        return norm.register_forward_hook(hook)

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """ssl: the convolutional encoder's receptive-field centres (no padding; wav2vec2 base: 400 samples every
        320, centre ``320 k + 199.5``); Whisper: centred mel frames every ``hop_length`` for ``conv1``, twice that
        from ``conv2`` on; AST: Kaldi frames of 400 every 160 (not centred), patch columns of ``patch_size`` frames
        every ``time_stride``; other kinds: evenly spread (base default)."""
        config = self.module.config
        if self.kind == "ssl":
            grid = FrameGrid()
            for kernel, stride in zip(config.conv_kernel, config.conv_stride):
                grid = grid.conv(int(kernel), int(stride))
        elif self.kind == "whisper":
            grid = FrameGrid(0.0, int(self.extractor.hop_length))
            grid = grid if layer == "conv1" else grid.conv(3, 2, 1)
        elif self.kind == "ast":
            grid = FrameGrid().conv(400, 160).conv(int(config.patch_size), int(config.time_stride))
        else:
            return super().frame_times(layer, n_frames, n_samples)
        return grid.times(n_frames, self.sample_rate)


def _extractor_digest(extractor: Any) -> str:
    """Short sha256 of the feature extractor's JSON form (part of the cache key)."""
    text = extractor.to_json_string() if hasattr(extractor, "to_json_string") else repr(extractor)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------------
# Building: random configs, local folders, hub cache


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise BrainlikeError(f"hf: models {INSTALL_HINT}") from None
    return transformers


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports (unused text-tower weights...) while loading, then restore."""
    from transformers.utils import logging as tlog

    level, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()


def parse_random_argument(argument: str) -> tuple[str, dict[str, Any]]:
    """Split ``<arch>?k=v&k=v`` into the architecture key and config overrides (``preset=tiny`` expanded).

    Examples
    --------
    >>> parse_random_argument("whisper?encoder_layers=3")
    ('whisper', {'encoder_layers': 3})
    """
    arch, _, query = argument.partition("?")
    arch = arch.strip().lower()
    if arch not in ARCHITECTURES:
        raise BrainlikeError(f"unknown hf architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    overrides: dict[str, Any] = {}
    for key, text in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)) if query else []:
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    preset = overrides.pop("preset", None)
    if preset not in (None, "tiny"):
        raise BrainlikeError(f"unknown hf preset {preset!r}; the only preset is 'tiny'")
    if preset == "tiny":
        overrides = {**ARCHITECTURES[arch].tiny, **overrides}
    return arch, overrides


def random_model(arch: str, overrides: Mapping[str, Any] | None = None, seed: int = RANDOM_SEED) -> HFAudioModel:
    """A randomly initialised ``arch`` model from transformers' default config updated with ``overrides``.

    Parameters
    ----------
    arch : str
        A key of :data:`ARCHITECTURES`.
    overrides : mapping, optional
        Config fields to change (unknown field names are an error).
    seed : int
        Seed of the initialisation (recorded as ``weights_id = "random:<seed>"``).
    """
    transformers = _transformers()
    spec = ARCHITECTURES[arch]
    config_class = getattr(transformers, spec.config_class)
    defaults = config_class().to_dict()
    unknown = sorted(set(overrides or {}) - set(defaults))
    if unknown:
        raise BrainlikeError(f"unknown {spec.config_class} field(s) {', '.join(unknown)}")
    config = config_class(**dict(overrides or {}))
    seed_everything_for_init(seed)
    with _quiet_transformers():
        if spec.kind == "whisper":  # the encoder alone: no decoder to initialise
            from transformers.models.whisper.modeling_whisper import WhisperEncoder

            module = WhisperEncoder(config)
        else:
            module = getattr(transformers, spec.model_class)(config)
    extractor = _default_extractor(transformers, spec, config)
    return HFAudioModel(module, extractor, spec.kind, f"random:{seed}", name=f"hf:random/{arch}")


def _default_extractor(transformers: Any, spec: Architecture, config: Any) -> Any:
    """The architecture's feature extractor, sized to the config (mel bins, Whisper window)."""
    cls = getattr(transformers, spec.extractor_class)
    if spec.kind == "whisper":
        frames = int(config.max_source_positions) * 2  # conv2 has stride 2
        chunk_seconds = frames * 160 / 16000
        if chunk_seconds != int(chunk_seconds):
            raise BrainlikeError(f"whisper max_source_positions={config.max_source_positions} is not a whole number"
                                 " of seconds (use a multiple of 50)")
        return cls(feature_size=int(config.num_mel_bins), chunk_length=int(chunk_seconds))
    if spec.kind == "ast":
        return cls(num_mel_bins=int(config.num_mel_bins), max_length=int(config.max_length))
    if spec.kind == "clap":
        return cls(feature_size=int(config.num_mel_bins))
    return cls()


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in OFFLINE_ENV)


def hub_cache_dir() -> str | None:
    """The hub cache folder as the environment says now (``HF_HUB_CACHE``, else ``HF_HOME/hub``; None: default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def resolve_checkpoint(argument: str) -> Path:
    """The local folder of ``argument``: an existing path, else the hub-cache snapshot of that hub id.

    Downloads into the hub cache when the id is not cached and offline mode (:data:`OFFLINE_ENV`) is off.
    """
    path = Path(argument).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise BrainlikeError(f"hf: {path} has no config.json (expected a folder written by save_pretrained)")
        return path.resolve()
    if argument.startswith((".", "/", "~")) or argument.count("/") > 1:
        raise BrainlikeError(f"hf: checkpoint folder {argument} does not exist")
    _transformers()
    from huggingface_hub import constants, snapshot_download

    patterns = ["*.json", "*.safetensors", "*.txt", "pytorch_model.bin"]
    cache_dir = hub_cache_dir()
    shown = cache_dir or constants.HF_HUB_CACHE
    try:
        return Path(snapshot_download(argument, local_files_only=True, allow_patterns=patterns, cache_dir=cache_dir))
    except Exception:  # LocalEntryNotFoundError, HFValidationError...
        pass
    if _offline():
        raise BrainlikeError(f"hf: {argument!r} is not in the local Hugging Face cache ({shown}) "
                             "and offline mode is on; download it with internet or give a local folder") from None
    try:
        return Path(snapshot_download(argument, allow_patterns=patterns, cache_dir=cache_dir))
    except Exception as exc:
        raise BrainlikeError(f"hf: {argument!r} is not in the local Hugging Face cache ({shown}) "
                             f"and downloading it failed: {_first_line(exc)}") from None


def pretrained_model(argument: str) -> HFAudioModel:
    """Load ``hf:<argument>`` (local folder or hub id) with its own feature extractor."""
    from safetensors import SafetensorError

    transformers = _transformers()
    folder = resolve_checkpoint(argument)
    with _quiet_transformers():
        config = transformers.AutoConfig.from_pretrained(folder)
        spec = _BY_MODEL_TYPE.get(config.model_type)
        try:
            if spec is None:
                log.warning("hf: model_type %r is not one of the tested architectures; reading its hidden states "
                            "generically", config.model_type)
                module = transformers.AutoModel.from_pretrained(folder)
            else:
                module = getattr(transformers, spec.model_class).from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise BrainlikeError(f"hf: cannot load weights from {folder}: {_first_line(exc)}") from None
        except (pickle.UnpicklingError, SafetensorError) as exc:  # weights_only refused a global, or bad safetensors
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
            useful = [ln for ln in lines if not ln.startswith(("Weights only", "Please file", "Check the doc"))]
            detail = ([ln for ln in useful if "GLOBAL" in ln] or useful or [lines[0].split(".")[0]])[0]
            detail = detail.split(". Please")[0]  # not torch's advice to allow-list the blocked global
            raise BrainlikeError(f"hf: cannot load weights from {folder} safely: {detail} (pickles are read "
                                 "with weights_only=True only; convert it to model.safetensors)") from None
        if spec is not None and spec.kind == "whisper":
            module = module.encoder
        extractor = _pretrained_extractor(transformers, folder, spec, module.config)
    return HFAudioModel(module, extractor, spec.kind if spec else "generic", weights_digest(folder))


def _pretrained_extractor(transformers: Any, folder: Path, spec: Architecture | None, config: Any) -> Any:
    if (folder / "preprocessor_config.json").is_file():
        return transformers.AutoFeatureExtractor.from_pretrained(folder)
    if spec is None:
        raise BrainlikeError(f"hf: {folder} has no preprocessor_config.json and its architecture is unknown")
    log.warning("hf: %s has no preprocessor_config.json; using the default %s", folder, spec.extractor_class)
    return _default_extractor(transformers, spec, config)


def weights_digest(folder: Path) -> str:
    """sha256 of the weight files in ``folder`` (hub-cache blobs are named by their sha256, so no re-hashing)."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise BrainlikeError(f"hf: no model.safetensors or pytorch_model.bin in {folder}")
    digests = []
    for file in files:
        blob = file.resolve().name
        if file.is_symlink() and len(blob) == 64 and all(c in "0123456789abcdef" for c in blob):
            digests.append(blob)
        else:
            digests.append(_sha256_file(file))
    return "+".join(digests)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def load(argument: str | None, random: bool) -> HFAudioModel:
    """Family loader for ``hf:<argument>`` and ``hf@random``."""
    if argument is None:
        if not random:
            raise BrainlikeError("hf: needs a hub id, a local folder or random/<arch>")
        return random_model(DEFAULT_RANDOM_ARCH)
    if argument.startswith(RANDOM_PREFIX):
        arch, overrides = parse_random_argument(argument[len(RANDOM_PREFIX):])
        return random_model(arch, overrides)
    if Path(argument).expanduser().is_file():
        return whisper_from_ctranslate2_file(Path(argument).expanduser())
    return pretrained_model(argument)


def _available() -> str | None:
    import importlib.util

    return None if importlib.util.find_spec("transformers") else INSTALL_HINT


register_family(FamilyEntry(
    prefix="hf",
    load=load,
    description="transformers audio models (wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper encoder, AST, CLAP "
                "audio) from a local folder or the HF hub cache; hf:random/<arch> for random init",
    available=_available,
    metadata={"architectures": list(ARCHITECTURES)},
))


# ----------------------------------------------------------------------------------------------------------------
# CTranslate2 Whisper -> transformers WhisperEncoder


def ctranslate2_encoder_state_dict(variables: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, int]]:
    """Map CTranslate2 ``encoder/...`` variables to a transformers ``WhisperEncoder`` state dict.

    Parameters
    ----------
    variables : mapping of str to ndarray
        The variables of a CTranslate2 ``WhisperSpec`` model.bin (any float dtype; converted to float32).

    Returns
    -------
    state_dict : dict of str to torch.Tensor
        Keys of ``WhisperEncoder`` (``conv1.weight``, ``layers.0.self_attn.q_proj.weight``...).
    sizes : dict
        ``d_model``, ``encoder_layers``, ``encoder_attention_heads``, ``encoder_ffn_dim``, ``num_mel_bins``,
        ``max_source_positions`` read from the shapes.
    """
    import torch

    def get(name: str) -> Any:
        if name not in variables:
            raise ModelError(f"CTranslate2 Whisper file lacks variable {name!r}")
        return torch.from_numpy(np.asarray(variables[name], dtype=np.float32).copy())

    indices = [re.match(r"encoder/layer_(\d+)/", k) for k in variables]
    if not any(indices):
        raise ModelError("CTranslate2 file has no encoder/layer_N variables (not a Whisper model?)")
    n_layers = 1 + max(int(m.group(1)) for m in indices if m)
    d_model = int(variables["encoder/conv1/weight"].shape[0])
    state = {
        "conv1.weight": get("encoder/conv1/weight"), "conv1.bias": get("encoder/conv1/bias"),
        "conv2.weight": get("encoder/conv2/weight"), "conv2.bias": get("encoder/conv2/bias"),
        "embed_positions.weight": get("encoder/position_encodings/encodings"),
        "layer_norm.weight": get("encoder/layer_norm/gamma"), "layer_norm.bias": get("encoder/layer_norm/beta"),
    }
    for i in range(n_layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        q, k, v = get(f"{src}/self_attention/linear_0/weight").split(d_model, dim=0)
        qb, _kb, vb = get(f"{src}/self_attention/linear_0/bias").split(d_model, dim=0)  # key bias is zero
        state.update({
            f"{dst}.self_attn.q_proj.weight": q, f"{dst}.self_attn.q_proj.bias": qb,
            f"{dst}.self_attn.k_proj.weight": k,
            f"{dst}.self_attn.v_proj.weight": v, f"{dst}.self_attn.v_proj.bias": vb,
            f"{dst}.self_attn.out_proj.weight": get(f"{src}/self_attention/linear_1/weight"),
            f"{dst}.self_attn.out_proj.bias": get(f"{src}/self_attention/linear_1/bias"),
            f"{dst}.self_attn_layer_norm.weight": get(f"{src}/self_attention/layer_norm/gamma"),
            f"{dst}.self_attn_layer_norm.bias": get(f"{src}/self_attention/layer_norm/beta"),
            f"{dst}.fc1.weight": get(f"{src}/ffn/linear_0/weight"), f"{dst}.fc1.bias": get(f"{src}/ffn/linear_0/bias"),
            f"{dst}.fc2.weight": get(f"{src}/ffn/linear_1/weight"), f"{dst}.fc2.bias": get(f"{src}/ffn/linear_1/bias"),
            f"{dst}.final_layer_norm.weight": get(f"{src}/ffn/layer_norm/gamma"),
            f"{dst}.final_layer_norm.bias": get(f"{src}/ffn/layer_norm/beta"),
        })
    heads = variables.get("encoder/num_heads")
    sizes = {
        "d_model": d_model, "encoder_layers": n_layers,
        "encoder_attention_heads": int(np.asarray(heads)) if heads is not None else d_model // 64,
        "encoder_ffn_dim": int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "num_mel_bins": int(variables["encoder/conv1/weight"].shape[1]),
        "max_source_positions": int(variables["encoder/position_encodings/encodings"].shape[0]),
    }
    return state, sizes


def whisper_encoder_from_ctranslate2(variables: Mapping[str, np.ndarray], weights_id: str,
                                     name: str = "hf:whisper-ct2") -> HFAudioModel:
    """Build an :class:`HFAudioModel` around transformers' ``WhisperEncoder`` holding CTranslate2 weights.

    Parameters
    ----------
    variables : mapping of str to ndarray
        The variables of a CTranslate2 Whisper model.bin.
    weights_id : str
        sha256 of that model.bin (recorded as the model's ``weights_id``).
    name : str
        The model name to report.
    """
    transformers = _transformers()
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    state, sizes = ctranslate2_encoder_state_dict(variables)
    config = transformers.WhisperConfig(**sizes, activation_function="gelu")
    with _quiet_transformers():
        encoder = WhisperEncoder(config)
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("k_proj.bias")]:
        raise ModelError(f"CTranslate2 -> WhisperEncoder mismatch: missing {missing}, unexpected {unexpected}")
    extractor = transformers.WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"])
    return HFAudioModel(encoder, extractor, "whisper", weights_id, name=name)


def whisper_from_ctranslate2_file(path: Path) -> HFAudioModel:
    """``hf:<path to a CTranslate2 Whisper model.bin>``: its encoder in transformers' ``WhisperEncoder``."""
    from brainlike.models.zoo.whisper import read_ct2

    variables, _aliases, spec = read_ct2(path)
    if spec != "WhisperSpec":
        raise ModelError(f"hf: {path} is a CTranslate2 {spec!r} model, not a Whisper model")
    return whisper_encoder_from_ctranslate2(variables, _sha256_file(path), name=f"hf:{path}")
