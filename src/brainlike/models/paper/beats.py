"""BEATs (Chen et al. 2023): an audio transformer pre-trained to predict acoustic-tokenizer labels of masked patches.

Front end (as published): the waveform times 2**15, Kaldi fbank (16 kHz, 128 mel bins, 25 ms povey window, 10 ms
shift, dither 0), normalised as ``(fbank - 15.41663) / (2 * 6.55582)``. 16 x 16 patches (8 frequency rows per 160 ms)
are embedded to 512, layer-normed, projected to 768 and run through a 12-layer post-LN ("deep norm") transformer with a
convolutional position embedding (kernel 128, 16 groups, weight norm) and gated relative position bias
(320 buckets, max distance 800).

Layer map (Pepino et al. 2025: 13 outputs): ``layer0`` = the encoder input after the convolutional position embedding
and layer norm, ``layerK`` = output of transformer layer K (1..12). Tokens are the patches in time-major order
(8 frequency patches per 160 ms step), so time-averaging averages over all patches.

Specs: ``beats@random`` (the BEATs iter3 configuration, seed 0) and ``beats:<checkpoint>`` reading the official
``{"cfg": {...}, "model": state_dict}`` files (BEATs_iter3.pt, BEATs_iter3_plus_AS2M.pt, fine-tuned ones too).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from brainlike.errors import ModelError
from brainlike.models.paper._checkpoint import load_strict, read_checkpoint, resolve_checkpoint, state_dict_from
from brainlike.models.paper._model import PaperModel, build_random, family_loader
from brainlike.models.registry import FamilyEntry, register_family

__all__ = ["SAMPLE_RATE", "FAMILY", "ADAPTER_VERSION", "FBANK_MEAN", "FBANK_STD", "CHECKPOINT_NAMES", "BEATsConfig",
           "build_beats", "load_checkpoint", "check_config", "token_samples"]

SAMPLE_RATE = 16000
FAMILY = "beats"
ADAPTER_VERSION = 1
FBANK_MEAN, FBANK_STD = 15.41663, 6.55582
CHECKPOINT_NAMES = ("BEATs_iter3_plus_AS2M.pt", "BEATs_iter3.pt", "model.pt", "pytorch_model.bin", "model.safetensors")


@dataclass(frozen=True)
class BEATsConfig:
    """Hyper-parameters, named as in the official ``BEATsConfig`` (defaults: the released iter3 models)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    finetuned_model: bool = False
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> "BEATsConfig":
        """Keep the keys we model (the official cfg also holds dropouts and training settings)."""
        names = {f.name for f in fields(cls)}
        return replace(cls(), **{k: v for k, v in cfg.items() if k in names})

    def layer_names(self) -> list[str]:
        return [f"layer{i}" for i in range(self.encoder_layers + 1)]


def _modules() -> dict[str, Any]:
    from brainlike.models.nets.beats import BEATs

    return {"BEATs": BEATs}


def build_beats(cfg: BEATsConfig) -> Any:
    """A BEATs module (eval mode) for ``cfg``."""
    return _modules()["BEATs"](cfg).eval()


def _rename_weight_norm(state: dict[str, Any]) -> dict[str, Any]:
    """Accept new-style ``parametrizations.weight.original0/1`` keys for the position conv."""
    renames = {"encoder.pos_conv.0.parametrizations.weight.original0": "encoder.pos_conv.0.weight_g",
               "encoder.pos_conv.0.parametrizations.weight.original1": "encoder.pos_conv.0.weight_v"}
    return {renames.get(k, k): v for k, v in state.items()}


def load_checkpoint(argument: str) -> tuple[Any, str, dict[str, Any]]:
    """Read an official BEATs checkpoint; returns (module, sha256, provenance)."""
    path = resolve_checkpoint(argument, CHECKPOINT_NAMES, FAMILY)
    ckpt = read_checkpoint(path)
    state = _rename_weight_norm(state_dict_from(ckpt.content, ("model", "state_dict"), path))
    raw_cfg = ckpt.content.get("cfg", {}) if isinstance(ckpt.content, dict) else {}
    cfg = BEATsConfig.from_dict(dict(raw_cfg or {}))
    check_config(cfg)
    if "predictor.weight" in state:
        cfg = replace(cfg, finetuned_model=True, predictor_class=int(state["predictor.weight"].shape[0]))
    module = build_beats(cfg)
    load_strict(module, state, label=f"beats checkpoint {path.name}")
    return module, ckpt.sha256, {"checkpoint": str(path), "checkpoint_sha256": ckpt.sha256, "config": cfg.__dict__}


def _wrap(module: Any, weights_id: str, name: str, provenance: dict[str, Any]) -> PaperModel:
    preprocessing = {"front_end": "kaldi fbank128 25ms/10ms povey x2^15, (x-15.41663)/(2*6.55582)",
                     "patch": module.cfg.input_patch_size, "tokens": "patches, time-major"}
    model = PaperModel(module, name=name, sample_rate=SAMPLE_RATE, layers=module.cfg.layer_names(),
                       weights_id=weights_id, preprocessing=preprocessing, batch_size=4, provenance=provenance)
    model.adapter_version = ADAPTER_VERSION
    model.frame_rule = lambda layer, n_frames, n_samples: token_samples(module.cfg, n_frames)
    return model


def token_samples(cfg: Any, n_tokens: int) -> Any:
    """Centre (input sample) of each token: Kaldi frame m reads samples ``160 m ... 160 m + 399``; a patch covers
    ``input_patch_size`` frames; tokens are time-major with ``128 / input_patch_size`` frequency patches per step."""
    import numpy as np

    from brainlike.models.base import FrameGrid

    per_step = 128 // cfg.input_patch_size
    grid = FrameGrid().conv(400, 160).conv(cfg.input_patch_size, cfg.input_patch_size)
    return np.repeat(grid.times(-(-n_tokens // per_step), 1.0), per_step)[:n_tokens]


def _build_twin(name: str) -> PaperModel:
    module, weights_id = build_random(lambda: build_beats(BEATsConfig()))
    return _wrap(module, weights_id, name, {"config": BEATsConfig().__dict__})


register_family(FamilyEntry(prefix=FAMILY, load=family_loader(FAMILY, _build_twin, load_checkpoint, _wrap),
                            description="BEATs (iter3, 12 x 768) from an official checkpoint; beats@random = iter3"))


def check_config(cfg: BEATsConfig) -> None:
    """Reject configurations the adapter does not implement (GLU feed-forward)."""
    if cfg.activation_fn != "gelu":
        raise ModelError(f"beats: activation {cfg.activation_fn!r} is not supported (released models use gelu)")
