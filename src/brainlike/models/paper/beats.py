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

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from brainlike.errors import ModelError
from brainlike.models.paper._checkpoint import load_strict, read_checkpoint, resolve_checkpoint, state_dict_from
from brainlike.models.paper._model import PaperModel, build_random
from brainlike.models.registry import FamilyEntry, register_family

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
    import torch
    from torch import nn

    from brainlike.models.paper._frontends import kaldi_fbank

    class WeightNormConv1d(nn.Module):
        """Conv1d with weight normalisation over dim 2 (keys ``weight_g``, ``weight_v``, ``bias``)."""

        def __init__(self, channels: int, kernel: int, groups: int) -> None:
            super().__init__()
            conv = nn.Conv1d(channels, channels, kernel_size=kernel, padding=kernel // 2, groups=groups)
            nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel * channels)))
            self.padding, self.groups = kernel // 2, groups
            self.weight_v = nn.Parameter(conv.weight.detach().clone())
            self.weight_g = nn.Parameter(self.weight_v.detach().norm(dim=(0, 1), keepdim=True))
            self.bias = nn.Parameter(torch.zeros(channels))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
            return nn.functional.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)

    class PosConv(nn.Module):
        """``pos_conv``: weight-normed grouped conv, drop the extra frame of an even kernel (SamePad), GELU."""

        def __init__(self, cfg: BEATsConfig) -> None:
            super().__init__()
            self.register_module("0", WeightNormConv1d(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups))
            self.trim = 1 if cfg.conv_pos % 2 == 0 else 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
            y = getattr(self, "0")(x)
            if self.trim:
                y = y[:, :, :-self.trim]
            return nn.functional.gelu(y)

    class MultiheadAttention(nn.Module):
        def __init__(self, cfg: BEATsConfig, has_bias_table: bool) -> None:
            super().__init__()
            dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
            self.heads, self.head_dim, self.cfg = heads, dim // heads, cfg
            if has_bias_table:
                self.relative_attention_bias = nn.Embedding(cfg.num_buckets, heads)
            self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.q_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
            if cfg.gru_rel_pos:
                self.grep_linear = nn.Linear(self.head_dim, 8)
                self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

        def _buckets(self, length: int, device: Any) -> torch.Tensor:
            """Bidirectional log-spaced relative position buckets (T5 style), (T, T)."""
            pos = torch.arange(length, device=device)
            rel = pos[None, :] - pos[:, None]
            half = self.cfg.num_buckets // 2
            buckets = (rel > 0).long() * half
            rel = rel.abs()
            exact = half // 2
            large = exact + (torch.log(rel.float().clamp(min=1) / exact) / math.log(self.cfg.max_distance / exact)
                             * (half - exact)).long()
            large = torch.clamp(large, max=half - 1)
            return buckets + torch.where(rel < exact, rel, large)

        def position_bias(self, length: int) -> torch.Tensor:
            table = self.relative_attention_bias
            return table(self._buckets(length, table.weight.device)).permute(2, 0, 1)  # (H, T, T)

        def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:  # x (B, T, C)
            b, t, c = x.shape
            q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
            k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
            v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
            scores = (q * self.head_dim ** -0.5) @ k.transpose(-1, -2)  # (B, H, T, T)
            if bias is not None:
                if self.cfg.gru_rel_pos:
                    gates = torch.sigmoid(self.grep_linear(q).view(b, self.heads, t, 2, 4).sum(-1))
                    gate_a, gate_b = gates.chunk(2, dim=-1)
                    bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias[None]
                scores = scores + bias
            out = torch.softmax(scores, dim=-1) @ v
            return self.out_proj(out.transpose(1, 2).reshape(b, t, c))

    class EncoderLayer(nn.Module):
        def __init__(self, cfg: BEATsConfig, index: int) -> None:
            super().__init__()
            dim = cfg.encoder_embed_dim
            self.self_attn = MultiheadAttention(cfg, cfg.relative_position_embedding and index == 0)
            self.self_attn_layer_norm = nn.LayerNorm(dim)
            self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
            self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
            self.final_layer_norm = nn.LayerNorm(dim)
            self.alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0
            self.pre_norm = cfg.layer_norm_first

        def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
            if self.pre_norm:
                x = x + self.self_attn(self.self_attn_layer_norm(x), bias)
                return x + self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(x))))
            x = self.self_attn_layer_norm(x * self.alpha + self.self_attn(x, bias))
            return self.final_layer_norm(x * self.alpha + self.fc2(nn.functional.gelu(self.fc1(x))))

    class TransformerEncoder(nn.Module):
        def __init__(self, cfg: BEATsConfig) -> None:
            super().__init__()
            self.pos_conv = PosConv(cfg)
            self.layers = nn.ModuleList([EncoderLayer(cfg, i) for i in range(cfg.encoder_layers)])
            if cfg.relative_position_embedding:  # one bias table shared by every layer, as in the official code
                for layer in self.layers[1:]:
                    layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
            self.layer_norm = nn.LayerNorm(cfg.encoder_embed_dim)
            self.cfg = cfg

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            """(B, T, C) -> [input after position conv and norm, layer 1, ..., layer N]."""
            x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
            if not self.cfg.layer_norm_first:
                x = self.layer_norm(x)
            bias = self.layers[0].self_attn.position_bias(x.shape[1]) if self.cfg.relative_position_embedding else None
            outputs = [x]
            for layer in self.layers:
                x = layer(x, bias)
                outputs.append(x)
            if self.cfg.layer_norm_first:
                outputs[-1] = self.layer_norm(x)
            return outputs

    class BEATs(nn.Module):
        """BEATs with the parameter names of the official checkpoints."""

        def __init__(self, cfg: BEATsConfig) -> None:
            super().__init__()
            self.cfg = cfg
            if cfg.embed_dim != cfg.encoder_embed_dim:
                self.post_extract_proj = nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
            self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, kernel_size=cfg.input_patch_size,
                                             stride=cfg.input_patch_size, bias=cfg.conv_bias)
            self.encoder = TransformerEncoder(cfg)
            self.layer_norm = nn.LayerNorm(cfg.embed_dim)
            if cfg.finetuned_model:
                self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class)
            _init_bert(self)

        @staticmethod
        def preprocess(waveforms: torch.Tensor) -> torch.Tensor:
            """(B, N) in [-1, 1] -> normalised fbank (B, frames, 128), as the official ``preprocess``."""
            fbank = kaldi_fbank(waveforms * 2 ** 15, sample_rate=SAMPLE_RATE, num_mel_bins=128,
                                frame_length_ms=25.0, frame_shift_ms=10.0, window_type="povey")
            return (fbank - FBANK_MEAN) / (2 * FBANK_STD)

        def layer_outputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
            patches = self.patch_embedding(self.preprocess(waveforms).unsqueeze(1))  # (B, E, T', F')
            tokens = self.layer_norm(patches.flatten(2).transpose(1, 2))
            if self.cfg.embed_dim != self.cfg.encoder_embed_dim:
                tokens = self.post_extract_proj(tokens)
            return dict(zip(self.cfg.layer_names(), self.encoder(tokens)))

    def _init_bert(model: nn.Module) -> None:
        """The official initialisation (``init_bert_params``) for random twins."""
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

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


def _load_family(argument: str | None, random: bool) -> PaperModel:
    if random or argument is None:
        module, weights_id = build_random(lambda: build_beats(BEATsConfig()))
        return _wrap(module, weights_id, f"{FAMILY}@random", {"config": BEATsConfig().__dict__})
    module, sha, provenance = load_checkpoint(argument)
    return _wrap(module, sha, f"{FAMILY}:{argument}", provenance)


register_family(FamilyEntry(prefix=FAMILY, load=_load_family,
                            description="BEATs (iter3, 12 x 768) from an official checkpoint; beats@random = iter3"))


def check_config(cfg: BEATsConfig) -> None:
    """Reject configurations the adapter does not implement (GLU feed-forward)."""
    if cfg.activation_fn != "gelu":
        raise ModelError(f"beats: activation {cfg.activation_fn!r} is not supported (released models use gelu)")
