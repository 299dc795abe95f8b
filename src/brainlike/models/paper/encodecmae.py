"""EnCodecMAE (Pepino et al. 2023/2025): a masked-prediction transformer with EnCodec-token targets.

Input variants: ``mel`` (default), the 256-band mel one used in Pepino et al. (2025) (``configs/features/mel.gin``):
24 kHz audio, Kaldi fbank (256 mel bins, 26.56 ms Hann window, 13.28 ms shift = 75 Hz, dither 0, no energy) of the
float waveform, normalised ``(x + 6.12) / 4.82``, projected to the model width (``wav_encoder.post_net``), plus a
sinusoidal position embedding with a learnt scale, into a transformer with ResiDual normalisation (Xie et al. 2023:
a post-LN stream and an un-normalised residual stream), bias-free attention projections (heads interleaved:
feature = d x heads + h, as in the official view) and a ReLU feed-forward (4096). As in the official
``TransformerEncoder`` built without ``ff_layer``, one feed-forward module is shared by all layers
(``shared_ff``; a checkpoint whose layers differ loads with per-layer feed-forwards). Audio is processed in 4 s chunks
(the official ``extract_features_from_array`` with the training ``max_length``), chunks shorter than 2048 samples
are dropped, and frames past ``samples // 320`` are masked as padding, as in the official code.

Sizes: small (768 x 5), base (768 x 10), large (1024 x 20, 16 heads). Layer map (Pepino et al. 2025): ``layerK`` =
output of encoder layer K (the post-LN stream), the last one being the model output ``x0 + final_norm(x1)``; small
and base report every layer, large every second layer.

Specs: ``encodecmae@random`` (base), ``encodecmae-small``, ``encodecmae-base``, ``encodecmae-large`` (``@random``) and
``encodecmae:<checkpoint>``: the official ``model.pt`` (``{"state_dict": ...}``; only the encoder part is used:
``wav_encoder.*`` and ``visible_encoder.*``; decoder, heads, masker and EnCodec target keys are set aside). The
original checkpoints with EnCodec-encoder input (``feat_projector``, ``wav_encoder.model.model.*``: the causal
EnCodec 24 kHz SEANet encoder, written here too) load as the ``encodec`` input variant; in that (older) code the
position embedding is applied before the encoder and every layer, the last included, is the post-LN stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brainlike.errors import ModelError
from brainlike.models.paper._checkpoint import load_strict, read_checkpoint, resolve_checkpoint, state_dict_from
from brainlike.models.paper._model import PaperModel, build_random, family_loader, register_sizes, stepped_layers
from brainlike.models.registry import FamilyEntry, register_family

__all__ = ["SAMPLE_RATE", "FAMILY", "ADAPTER_VERSION", "NORM_MEAN", "NORM_STD", "HOP_LENGTH", "CHUNK_SECONDS",
           "MIN_CHUNK", "CHECKPOINT_NAMES", "ENCODER_PREFIXES", "EncodecMAEConfig", "SIZES", "build_encodecmae",
           "heads_from_gin", "config_from_state", "load_checkpoint", "mel_frame_samples"]

SAMPLE_RATE = 24000
FAMILY = "encodecmae"
ADAPTER_VERSION = 1
NORM_MEAN, NORM_STD = -6.12, 4.82
HOP_LENGTH = 320
CHUNK_SECONDS = 4.0
MIN_CHUNK = 2048
CHECKPOINT_NAMES = ("model.pt", "model.safetensors", "pytorch_model.bin")
ENCODER_PREFIXES = ("wav_encoder.", "visible_encoder.", "feat_projector.", "positional_encoder.")


@dataclass(frozen=True)
class EncodecMAEConfig:
    """Encoder hyper-parameters (gin names of the official configs)."""

    model_dim: int = 768
    num_layers: int = 10
    num_heads: int = 12
    ff_dim: int = 4096
    n_mels: int = 256
    shared_ff: bool = True
    layer_step: int = 1
    input: str = "mel"
    positional: bool = True

    def layer_names(self) -> list[str]:
        """Every ``layer_step``-th encoder layer, always ending with the last."""
        return stepped_layers(self.num_layers, self.layer_step)


SIZES = {
    "small": EncodecMAEConfig(num_layers=5),
    "base": EncodecMAEConfig(),
    "large": EncodecMAEConfig(model_dim=1024, num_layers=20, num_heads=16, layer_step=2),
}


def _modules() -> dict[str, Any]:
    from brainlike.models.nets.encodecmae import EncodecMAE

    return {"EncodecMAE": EncodecMAE}


def build_encodecmae(cfg: EncodecMAEConfig) -> Any:
    """An EnCodecMAE encoder module (eval mode)."""
    return _modules()["EncodecMAE"](cfg).eval()


def heads_from_gin(path: Path) -> int | None:
    """``NUM_ENCODER_HEADS`` from the ``config.gin`` published beside ``model.pt``, if present."""
    if not path.is_file():
        return None
    match = re.search(r"^\s*NUM_ENCODER_HEADS\s*=\s*(\d+)", path.read_text(errors="replace"), re.MULTILINE)
    return int(match.group(1)) if match else None


def config_from_state(state: dict[str, Any], num_heads: int | None = None) -> EncodecMAEConfig:
    """Infer the configuration from the encoder weights.

    Heads cannot be read off the weights: ``num_heads`` (from ``config.gin``) or 64-wide heads (768 -> 12, 1024 -> 16).
    """
    if "feat_projector.weight" in state:
        kind, dim, n_mels = "encodec", int(state["feat_projector.weight"].shape[0]), EncodecMAEConfig.n_mels
    elif "wav_encoder.post_net.weight" in state:
        kind = "mel"
        dim, n_mels = (int(s) for s in state["wav_encoder.post_net.weight"].shape)
    else:
        raise ModelError("encodecmae: checkpoint has neither wav_encoder.post_net nor feat_projector weights "
                         "(not an EnCodecMAE model?)")
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("visible_encoder.encoder_layers."))
    ff = state["visible_encoder.encoder_layers.0.ff_layer.0.weight"]
    shared = all(
        state[f"visible_encoder.encoder_layers.{i}.ff_layer.0.weight"].data_ptr() == ff.data_ptr()
        or bool((state[f"visible_encoder.encoder_layers.{i}.ff_layer.0.weight"] == ff).all())
        for i in range(1, layers))
    return EncodecMAEConfig(model_dim=dim, num_layers=layers, n_mels=n_mels, ff_dim=int(ff.shape[0]),
                            num_heads=num_heads or max(1, dim // 64), shared_ff=shared,
                            layer_step=2 if layers > 10 else 1, input=kind,
                            positional=kind == "encodec" or "visible_encoder.positional_encoder.scale" in state)


def load_checkpoint(argument: str) -> tuple[Any, str, dict[str, Any]]:
    """Read an official EnCodecMAE ``model.pt``; returns (module, sha256, provenance)."""
    path = resolve_checkpoint(argument, CHECKPOINT_NAMES, FAMILY)
    ckpt = read_checkpoint(path)
    full = state_dict_from(ckpt.content, ("state_dict", "model"), path)
    state = {k: v for k, v in full.items() if k.startswith(ENCODER_PREFIXES)}
    cfg = config_from_state(full, heads_from_gin(path.parent / "config.gin"))
    module = build_encodecmae(cfg)
    load_strict(module, state, label=f"encodecmae checkpoint {path.name}")
    provenance = {"checkpoint": str(path), "checkpoint_sha256": ckpt.sha256, "config": cfg.__dict__,
                  "set_aside_keys": len(full) - len(state)}
    return module, ckpt.sha256, provenance


def _wrap(module: Any, weights_id: str, name: str, provenance: dict[str, Any]) -> PaperModel:
    cfg: EncodecMAEConfig = module.cfg
    preprocessing = {"front_end": f"kaldi fbank{cfg.n_mels} 24kHz 26.56/13.28ms hanning, (x+6.12)/4.82",
                     "chunk_s": CHUNK_SECONDS, "model_dim": cfg.model_dim, "num_layers": cfg.num_layers}
    model = PaperModel(module, name=name, sample_rate=SAMPLE_RATE, layers=cfg.layer_names(), weights_id=weights_id,
                       preprocessing=preprocessing, batch_size=4, provenance=provenance)
    model.adapter_version = ADAPTER_VERSION
    if cfg.input == "mel":  # the EnCodec-input variant keeps the evenly spread default
        model.frame_rule = lambda layer, n_frames, n_samples: mel_frame_samples(n_frames, n_samples)
    return model


def mel_frame_samples(n_frames: int, n_samples: int) -> Any:
    """Centre (input sample) of each frame of the ``mel`` variant: 4 s chunks (tails of <= 2048 samples dropped),
    Kaldi frames of 637 samples every 318 within each chunk (snip edges): frame m of chunk c at
    ``96000 c + 318 m + 318``. Falls back to evenly spread frames if the count differs."""
    import numpy as np

    from brainlike.models.base import FrameGrid

    chunk = int(CHUNK_SECONDS * SAMPLE_RATE)
    window, shift = int(SAMPLE_RATE * 26.56e-3), int(SAMPLE_RATE * 13.28e-3)
    grid = FrameGrid().conv(window, shift)
    times = []
    for start in range(0, n_samples, chunk):
        length = min(chunk, n_samples - start)
        if length > MIN_CHUNK:
            times.append(start + grid.times(1 + (length - window) // shift, 1.0))
    times = np.concatenate(times) if times else np.zeros(0)
    if len(times) != n_frames:
        return (np.arange(n_frames) + 0.5) * n_samples / max(n_frames, 1)
    return times


def _build_size(size: str, random: bool, name: str) -> PaperModel:
    if not random:
        raise ModelError(f"{name}: no weights bundled; use encodecmae:<model.pt or hub id> or {name}@random")
    cfg = SIZES[size]
    module, weights_id = build_random(lambda: build_encodecmae(cfg))
    return _wrap(module, weights_id, name, {"config": cfg.__dict__})


register_family(FamilyEntry(
    prefix=FAMILY, load=family_loader(FAMILY, lambda name: _build_size("base", True, name), load_checkpoint, _wrap),
    description="EnCodecMAE (mel256; small/base/large) from model.pt; encodecmae@random = base"))
register_sizes(FAMILY, "EnCodecMAE", SIZES, _build_size, SAMPLE_RATE)
