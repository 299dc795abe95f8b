"""Dasheng (Dinkel et al. 2024): a masked-autoencoder audio transformer on 64-band mel spectrograms.

Front end (as published): 16 kHz, ``MelSpectrogram(n_fft=512, win=512, hop=160, f_min=0, f_max=8000, n_mels=64)``
with a centred reflect-padded STFT, power to dB (``top_db=120``), then a BatchNorm over mel bands. Patches of
64 x 4 (all bands x 40 ms) give 25 tokens per second; audio is cut into 10.08 s (252-patch) chunks that go through
the encoder separately, as in the official ``Dasheng.forward``. Sizes: base (768 x 12, 12 heads), 0.6B
(1280 x 32, 16 heads), 1.2B (1536 x 40, 24 heads).

Layer map: ``layer0`` (patch embeddings plus positions) and ``layerK`` = output of block K; the last layer is the
model's output (after the final LayerNorm). Base reports every block (13 layers), 0.6B and 1.2B every second block
(``layer0, layer2, ...``), as in Pepino et al. (2025).

Specs: ``dasheng@random`` (base), ``dasheng-base``, ``dasheng-0.6b``, ``dasheng-1.2b`` (``@random`` twins), and
``dasheng:<checkpoint>`` reading the official ``{"model": state_dict, "config": {...}}`` files (dasheng_base.pt,
dasheng_06b.pt, dasheng_12b.pt; the size comes from the checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from brainlike.errors import ModelError
from brainlike.models.paper._checkpoint import load_strict, read_checkpoint, resolve_checkpoint, state_dict_from
from brainlike.models.paper._model import PaperModel, build_random, family_loader, register_sizes, stepped_layers
from brainlike.models.registry import FamilyEntry, register_family

__all__ = ["SAMPLE_RATE", "FAMILY", "ADAPTER_VERSION", "CHECKPOINT_NAMES", "DashengConfig", "SIZES", "build_encoder",
           "config_from_checkpoint", "load_checkpoint", "token_samples"]

SAMPLE_RATE = 16000
FAMILY = "dasheng"
ADAPTER_VERSION = 1
CHECKPOINT_NAMES = ("dasheng_base.pt", "dasheng_06b.pt", "dasheng_12b.pt", "model.pt", "pytorch_model.bin",
                    "model.safetensors")


@dataclass(frozen=True)
class DashengConfig:
    """Encoder hyper-parameters (names as in the official ``AudioTransformerMAE_Encoder``)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    target_length: int = 1008
    patch_size: tuple[int, int] = (64, 4)
    patch_stride: tuple[int, int] = (64, 4)
    n_mels: int = 64
    n_fft: int = 512
    hop_size: int = 160
    win_size: int = 512
    f_min: float = 0.0
    f_max: float = 8000.0
    top_db: float = 120.0
    pooling: str = "mean"
    layer_step: int = 1

    def layer_names(self) -> list[str]:
        """``layer0`` then every ``layer_step``-th block output, always ending with the last block."""
        return stepped_layers(self.depth, self.layer_step, with_input=True)


SIZES = {
    "base": DashengConfig(),
    "0.6b": DashengConfig(embed_dim=1280, depth=32, num_heads=16, layer_step=2),
    "1.2b": DashengConfig(embed_dim=1536, depth=40, num_heads=24, layer_step=2),
}


def _modules() -> dict[str, Any]:
    """Build the torch module classes (torch imported lazily)."""
    from brainlike.models.nets.dasheng import DashengEncoder

    return {"DashengEncoder": DashengEncoder}


def build_encoder(cfg: DashengConfig) -> Any:
    """A Dasheng encoder module (in eval mode) for ``cfg``."""
    return _modules()["DashengEncoder"](cfg).eval()


def config_from_checkpoint(config: dict[str, Any], state: dict[str, Any]) -> DashengConfig:
    """The :class:`DashengConfig` of an official checkpoint (its ``config`` dict, sizes checked on the weights)."""
    try:
        embed_dim = int(state["norm.weight"].shape[0])
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    except (KeyError, ValueError) as exc:
        raise ModelError(f"dasheng: checkpoint lacks encoder weights ({exc})") from None
    size = next((s for s in SIZES.values() if s.embed_dim == embed_dim and s.depth == depth), None)
    base = size or DashengConfig(embed_dim=embed_dim, depth=depth, layer_step=1 if depth <= 12 else 2)
    heads = int(config.get("num_heads", base.num_heads))
    pooling = str(config.get("pooling", "token" if "cls_token" in state else "mean"))
    return replace(base, num_heads=heads, pooling=pooling,
                   target_length=int(config.get("target_length", base.target_length)))


def load_checkpoint(argument: str) -> tuple[Any, str, dict[str, Any]]:
    """Read an official Dasheng checkpoint into our encoder; returns (module, sha256, provenance)."""
    path = resolve_checkpoint(argument, CHECKPOINT_NAMES, FAMILY)
    ckpt = read_checkpoint(path)
    state = state_dict_from(ckpt.content, ("model", "state_dict"), path)
    state = {k[len("encoder."):] if k.startswith("encoder.") else k: v for k, v in state.items()}
    config = ckpt.content.get("config", {}) if isinstance(ckpt.content, dict) else {}
    cfg = config_from_checkpoint(dict(config or {}), state)
    module = build_encoder(cfg)
    load_strict(module, state, label=f"dasheng checkpoint {path.name}")
    provenance = {"checkpoint": str(path), "checkpoint_sha256": ckpt.sha256, "config": cfg.__dict__}
    return module.eval(), ckpt.sha256, provenance


def _wrap(module: Any, weights_id: str, name: str, provenance: dict[str, Any]) -> PaperModel:
    cfg: DashengConfig = module.cfg
    preprocessing = {"front_end": "mel64 n_fft512 hop160 dB top_db120 + BatchNorm", "patch": list(cfg.patch_size),
                     "chunk_s": cfg.target_length * cfg.hop_size / SAMPLE_RATE, "embed_dim": cfg.embed_dim,
                     "depth": cfg.depth}
    batch = 4 if cfg.embed_dim <= 768 else 1
    model = PaperModel(module, name=name, sample_rate=SAMPLE_RATE, layers=cfg.layer_names(), weights_id=weights_id,
                       preprocessing=preprocessing, batch_size=batch, provenance=provenance)
    model.adapter_version = ADAPTER_VERSION
    if cfg.pooling != "token" and cfg.patch_stride[0] >= cfg.n_mels:  # one token per time step, no CLS token
        model.frame_rule = lambda layer, n_frames, n_samples: token_samples(cfg, n_frames)
    return model


def token_samples(cfg: DashengConfig, n_tokens: int) -> Any:
    """Centre (input sample) of each token: centred STFT frames every ``hop_size``; a patch covers
    ``patch_size[1]`` frames every ``patch_stride[1]``; chunks of ``target_length`` frames continue the grid."""
    from brainlike.models.base import FrameGrid

    grid = FrameGrid(0.0, cfg.hop_size).conv(cfg.patch_size[1], cfg.patch_stride[1])
    return grid.times(n_tokens, 1.0)


def _build_size(size: str, random: bool, name: str) -> PaperModel:
    cfg = SIZES[size]
    if not random:
        raise ModelError(f"{name}: no weights bundled; use dasheng:<checkpoint> (e.g. dasheng_{size}.pt) or {name}@random")
    module, weights_id = build_random(lambda: build_encoder(cfg))
    return _wrap(module, weights_id, name, {"config": cfg.__dict__})


register_family(FamilyEntry(
    prefix=FAMILY, load=family_loader(FAMILY, lambda name: _build_size("base", True, name), load_checkpoint, _wrap),
    description="Dasheng (base/0.6B/1.2B) from an official checkpoint; dasheng@random = base"))
register_sizes(FAMILY, "Dasheng", SIZES, _build_size, SAMPLE_RATE)
