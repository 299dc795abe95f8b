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
from brainlike.models.paper._model import PaperModel, build_random
from brainlike.models.registry import FamilyEntry, ModelEntry, register_family, register_model

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
        indices = [0] + list(range(self.layer_step, self.depth + 1, self.layer_step))
        if indices[-1] != self.depth:
            indices.append(self.depth)
        return [f"layer{i}" for i in indices]


SIZES = {
    "base": DashengConfig(),
    "0.6b": DashengConfig(embed_dim=1280, depth=32, num_heads=16, layer_step=2),
    "1.2b": DashengConfig(embed_dim=1536, depth=40, num_heads=24, layer_step=2),
}


def _modules() -> dict[str, Any]:
    """Build the torch module classes (torch imported lazily)."""
    import torch
    from torch import nn

    from brainlike.models.paper._frontends import htk_mel_filters, power_to_db

    class Spectrogram(nn.Module):
        def __init__(self, win: int) -> None:
            super().__init__()
            self.register_buffer("window", torch.hann_window(win, periodic=True))

    class MelScale(nn.Module):
        def __init__(self, cfg: DashengConfig) -> None:
            super().__init__()
            fb = htk_mel_filters(cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, SAMPLE_RATE)
            self.register_buffer("fb", torch.as_tensor(fb, dtype=torch.float32))

    class MelSpectrogram(nn.Module):
        """Power mel spectrogram; buffers named as torchaudio's (``spectrogram.window``, ``mel_scale.fb``)."""

        def __init__(self, cfg: DashengConfig) -> None:
            super().__init__()
            self.cfg = cfg
            self.spectrogram = Spectrogram(cfg.win_size)
            self.mel_scale = MelScale(cfg)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, n_mels, frames)
            spec = torch.stft(x, self.cfg.n_fft, self.cfg.hop_size, self.cfg.win_size, window=self.spectrogram.window,
                              center=True, pad_mode="reflect", onesided=True, return_complex=True)
            return (spec.abs().pow(2).transpose(-1, -2) @ self.mel_scale.fb).transpose(-1, -2)

    class ToDecibels(nn.Module):
        def __init__(self, top_db: float) -> None:
            super().__init__()
            self.top_db = top_db

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return power_to_db(x, self.top_db)

    class BandNorm(nn.Module):
        """``init_bn``: BatchNorm2d over mel bands (index 1 as in the official Sequential)."""

        def __init__(self, n_mels: int) -> None:
            super().__init__()
            self.register_module("1", nn.BatchNorm2d(n_mels, momentum=0.01))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, F, T)
            return getattr(self, "1")(x.transpose(1, 2)).transpose(1, 2)

    class PatchEmbed(nn.Module):
        def __init__(self, cfg: DashengConfig) -> None:
            super().__init__()
            self.proj = nn.Conv2d(1, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_stride)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(x)

    class Attention(nn.Module):
        def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, n, c = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
            out = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, H, N, D)
            return self.proj(out.transpose(1, 2).reshape(b, n, c))

    class Mlp(nn.Module):
        def __init__(self, dim: int, hidden: int) -> None:
            super().__init__()
            self.fc1 = nn.Linear(dim, hidden)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(hidden, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.act(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self, cfg: DashengConfig) -> None:
            super().__init__()
            self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
            self.attn = Attention(cfg.embed_dim, cfg.num_heads, cfg.qkv_bias)
            self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
            self.mlp = Mlp(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class DashengEncoder(nn.Module):
        """The Dasheng encoder with parameter names of the official checkpoints."""

        def __init__(self, cfg: DashengConfig) -> None:
            super().__init__()
            self.cfg = cfg
            self.front_end = nn.Sequential(MelSpectrogram(cfg), ToDecibels(cfg.top_db))
            self.init_bn = BandNorm(cfg.n_mels)
            self.patch_embed = PatchEmbed(cfg)
            grid = (cfg.n_mels // cfg.patch_stride[0], cfg.target_length // cfg.patch_stride[1])
            if cfg.pooling == "token":
                self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
                self.token_pos_embed = nn.Parameter(torch.randn(1, cfg.embed_dim) * 0.02)
            self.time_pos_embed = nn.Parameter(torch.randn(1, cfg.embed_dim, 1, grid[1]) * 0.02)
            self.freq_pos_embed = nn.Parameter(torch.randn(1, cfg.embed_dim, grid[0], 1) * 0.02)
            self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.depth)])
            self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
            self.apply(_init_weights)

        def spectrogram(self, waveforms: torch.Tensor) -> torch.Tensor:
            """(B, N) -> normalised log-mel (B, 1, n_mels, frames)."""
            return self.init_bn(self.front_end(waveforms).unsqueeze(1))

        def _chunk_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
            """Tokens of one chunk (B, C, F', T') -> [input, block 1, ..., block depth (normed)] each (B, N, C)."""
            t = x.shape[-1]
            x = x + self.time_pos_embed[:, :, :, :t] + self.freq_pos_embed
            x = x.flatten(2).transpose(1, 2)  # (B, F'T', C), frequency-major as in the official rearrange
            if self.cfg.pooling == "token":
                cls = (self.cls_token + self.token_pos_embed).expand(x.shape[0], -1, -1)
                x = torch.cat([cls, x], dim=1)
            outputs = [x]
            for block in self.blocks:
                x = block(x)
                outputs.append(x)
            outputs[-1] = self.norm(x)
            return outputs

        def layer_outputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
            patches = self.patch_embed(self.spectrogram(waveforms))
            chunk = self.cfg.target_length // self.cfg.patch_stride[1]
            per_chunk = [self._chunk_layers(part) for part in patches.split(chunk, dim=-1)]
            wanted = {int(name[5:]): name for name in self.cfg.layer_names()}
            return {name: torch.cat([c[i] for c in per_chunk], dim=1) for i, name in wanted.items()}

        def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
            """The official ``Dasheng.forward``: final normed tokens (B, tokens, embed_dim)."""
            return self.layer_outputs(waveforms)[f"layer{self.cfg.depth}"]

    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

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


def _load_family(argument: str | None, random: bool) -> PaperModel:
    if random or argument is None:
        return _build_size("base", True, f"{FAMILY}@random")
    module, sha, provenance = load_checkpoint(argument)
    return _wrap(module, sha, f"{FAMILY}:{argument}", provenance)


def _no_weights() -> str:
    return "weights are not bundled: load a checkpoint with dasheng:<path or hub id>"


register_family(FamilyEntry(prefix=FAMILY, load=_load_family,
                            description="Dasheng (base/0.6B/1.2B) from an official checkpoint; dasheng@random = base"))
for _size in SIZES:
    register_model(ModelEntry(
        name=f"dasheng-{_size}",
        build=(lambda random, s=_size: _build_size(s, random, f"dasheng-{s}")),
        family=FAMILY,
        description=f"Dasheng {_size} architecture (use @random; weights via dasheng:<checkpoint>)",
        available=_no_weights,
        metadata={"sample_rate": SAMPLE_RATE, "layers": SIZES[_size].layer_names()},
    ))
del _size
