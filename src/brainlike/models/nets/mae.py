"""The masked-reconstruction audio model of the ``mae`` family: architecture and checkpoint I/O.

waveform -> log-mel front end (torch) -> patch or frame embedding -> encoder (transformer, or a convolutional variant)
-> light transformer decoder, trained (by :mod:`brainlike.pretrain`) to reconstruct masked tokens:

* ``target="continuous"``: per-token normalised log-mel patches, mean squared error (Dasheng-like);
* ``target="discrete"``: k-means codes of the mel tokens or of a teacher model's layer, cross-entropy
  (EnCodecMAE / HuBERT-like).

A token is ``patch_frames`` consecutive mel frames times all mel bins (``patch_frames=1`` is a frame embedding;
``patch_frames=4`` at a 10 ms hop gives Dasheng's 25 Hz tokens). The transformer encoder sees only the visible tokens
(as in MAE / Dasheng); the convolutional encoder needs a contiguous sequence, so masked tokens are replaced by a learned
mask embedding instead. At inference nothing is masked and every block's output is a layer
(:mod:`brainlike.models.mae`, the ``mae:<checkpoint>`` model family).

Checkpoints are a folder with ``model.safetensors`` (weights, no pickle) and ``config.json``; see
:func:`save_checkpoint` and :func:`load_checkpoint`. Training (span masking, k-means codebooks, the loop) lives in
:mod:`brainlike.pretrain`, which imports this module (never the reverse).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brainlike.errors import ModelError, PretrainError
from brainlike.integrity import atomic_write, sha256_file
from brainlike.models.mel import htk_mel_edges, htk_mel_filterbank

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CONFIG_FILE", "SMALL_CONFIG", "WEIGHTS_FILE", "ConvBlock",
           "LogMel", "MAEConfig", "MaskedAudioModel", "TransformerBlock", "count_parameters", "load_checkpoint",
           "mel_centres", "mel_filterbank", "nearest_centroid", "normalise_patches", "patchify",
           "read_checkpoint_config", "resolve_checkpoint", "save_checkpoint", "sinusoidal_positions", "ENCODERS",
           "TARGETS", "CODE_SOURCES"]

CHECKPOINT_FORMAT = "brainlike-mae"
CHECKPOINT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
ENCODERS = ("transformer", "conv")
TARGETS = ("continuous", "discrete")
CODE_SOURCES = ("mel", "teacher")


@dataclass(frozen=True)
class MAEConfig:
    """Architecture and objective of a masked-reconstruction model (stored in every checkpoint's config.json).

    Attributes
    ----------
    sample_rate, n_fft, hop_length, n_mels, f_min, f_max
        Log-mel front end (Hann window of ``n_fft`` samples, centred frames, HTK mel scale).
    mel_mean, mel_std
        Global normalisation of the log-mel values (estimated from the corpus when training starts).
    patch_frames
        Mel frames per token (all mel bins are in every token).
    encoder
        ``"transformer"`` or ``"conv"``.
    depth, width, heads, mlp_ratio, conv_kernel
        Encoder shape (``heads`` for the transformer, ``conv_kernel`` for the conv variant).
    decoder_depth, decoder_width, decoder_heads
        Light transformer decoder.
    mask_ratio, mask_span
        Fraction of tokens masked (exact, rounded) and span length in tokens.
    target, n_codes, code_source, code_dim, teacher, teacher_layer
        Objective: continuous patches, or ``n_codes`` k-means codes of ``code_source`` features (``code_dim`` wide);
        a teacher is a checkpoint path and layer name.
    unmasked_weight
        Loss weight of visible tokens relative to masked ones (EnCodecMAE uses 0.1 / 0.9; 0 = masked only).
    """

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0
    mel_mean: float = 0.0
    mel_std: float = 1.0
    patch_frames: int = 4
    encoder: str = "transformer"
    depth: int = 4
    width: int = 192
    heads: int = 3
    mlp_ratio: float = 4.0
    conv_kernel: int = 5
    decoder_depth: int = 2
    decoder_width: int = 128
    decoder_heads: int = 2
    mask_ratio: float = 0.75
    mask_span: int = 1
    target: str = "continuous"
    n_codes: int = 0
    code_source: str = "mel"
    code_dim: int = 0
    teacher: str | None = None
    teacher_layer: str | None = None
    unmasked_weight: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    @property
    def patch_dim(self) -> int:
        """Values per token (``n_mels * patch_frames``)."""
        return self.n_mels * self.patch_frames

    @property
    def token_rate(self) -> float:
        """Tokens per second."""
        return self.sample_rate / (self.hop_length * self.patch_frames)

    def validate(self) -> None:
        """Raise :class:`PretrainError` for an inconsistent configuration."""
        _check(self.encoder in ENCODERS, f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        _check(self.target in TARGETS, f"target must be one of {TARGETS}, got {self.target!r}")
        _check(0.0 < self.mask_ratio < 1.0, f"mask_ratio must lie in (0, 1), got {self.mask_ratio}")
        _check(self.mask_span >= 1, f"mask_span must be >= 1, got {self.mask_span}")
        _check(min(self.depth, self.width, self.decoder_depth, self.decoder_width, self.patch_frames) >= 1,
               "depth, width, decoder_depth, decoder_width and patch_frames must be >= 1")
        _check(self.width % self.heads == 0, f"width {self.width} is not divisible by heads {self.heads}")
        _check(self.decoder_width % self.decoder_heads == 0,
               f"decoder_width {self.decoder_width} is not divisible by decoder_heads {self.decoder_heads}")
        _check(self.f_max <= self.sample_rate / 2, f"f_max {self.f_max} exceeds Nyquist ({self.sample_rate / 2})")
        _check(self.mel_std > 0, "mel_std must be positive")
        if self.target == "discrete":
            _check(self.n_codes >= 2, "a discrete target needs n_codes >= 2")
            _check(self.code_source in CODE_SOURCES, f"code_source must be one of {CODE_SOURCES}")
            _check(self.code_source != "teacher" or (self.teacher and self.teacher_layer),
                   "code_source='teacher' needs teacher (a checkpoint path) and teacher_layer")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MAEConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PretrainError(f"unknown MAE config keys {unknown}")
        return cls(**data)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise PretrainError(message)



SMALL_CONFIG = MAEConfig(n_mels=64, patch_frames=4, depth=4, width=192, heads=3, decoder_depth=2, decoder_width=128,
                         decoder_heads=2, mask_ratio=0.75)
"""Architecture of the ``small`` training preset and of ``mae@random``."""


# ----------------------------------------------------------------------------------------------------------- front end
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular HTK-mel filters (peak 1) on the rfft bins (:func:`brainlike.models.mel.htk_mel_filterbank`).

    Returns
    -------
    ndarray, shape (n_fft // 2 + 1, n_mels), float32
        Column ``m`` is the filter with centre ``mel_centres(...)[m]``.
    """
    return htk_mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max).T.astype(np.float32)


def mel_centres(config: MAEConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band."""
    return htk_mel_edges(config.f_min, config.f_max, config.n_mels)[1:-1]


class LogMel(nn.Module):
    """Waveform (batch, samples) -> normalised log-mel (batch, frames, n_mels), always computed in float32."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.register_buffer("filterbank", torch.from_numpy(fb), persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            spec = torch.stft(waveforms.float(), cfg.n_fft, hop_length=cfg.hop_length, window=self.window,
                              center=True, return_complex=True)  # (batch, n_freq, frames)
            power = spec.real.square() + spec.imag.square()
            mel = power.transpose(1, 2) @ self.filterbank  # (batch, frames, n_mels)
            return (torch.log(mel + 1e-6) - cfg.mel_mean) / cfg.mel_std


def patchify(mel: torch.Tensor, patch_frames: int) -> torch.Tensor:
    """(batch, frames, n_mels) -> (batch, tokens, patch_frames * n_mels), dropping trailing frames."""
    batch, frames, n_mels = mel.shape
    tokens = frames // patch_frames
    return mel[:, : tokens * patch_frames].reshape(batch, tokens, patch_frames * n_mels)


def normalise_patches(patches: torch.Tensor) -> torch.Tensor:
    """Per-token normalisation (zero mean, unit variance over the token's values): the continuous target."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True, unbiased=False)
    return (patches - mean) / torch.sqrt(var + 1e-6)


def sinusoidal_positions(n_tokens: int, dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Fixed sinusoidal position embeddings (n_tokens, dim): sin on even, cos on odd features."""
    position = torch.arange(n_tokens, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_tokens, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table



# -------------------------------------------------------------------------------------------------------------- blocks
class TransformerBlock(nn.Module):
    """Pre-norm transformer block (multi-head self-attention + GELU MLP)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (batch, heads, tokens, head_dim)
        attended = F.scaled_dot_product_attention(q, k, v)  # (batch, heads, tokens, head_dim)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, tokens, dim))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ConvBlock(nn.Module):
    """Pre-norm 1-D convolution block over tokens (conv + GELU MLP, both residual): the conv encoder variant."""

    def __init__(self, dim: int, kernel: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.shape[1]
        x = x + F.gelu(self.conv(self.norm1(x).transpose(1, 2))).transpose(1, 2)[:, :tokens]
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


# --------------------------------------------------------------------------------------------------------------- model
class MaskedAudioModel(nn.Module):
    """The masked-reconstruction model: front end, encoder, decoder and (for discrete targets) the codebook."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        self.frontend = LogMel(cfg)
        self.embed = nn.Linear(cfg.patch_dim, cfg.width)
        if cfg.encoder == "transformer":
            self.blocks = nn.ModuleList(TransformerBlock(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        else:
            self.blocks = nn.ModuleList(ConvBlock(cfg.width, cfg.conv_kernel, cfg.mlp_ratio) for _ in range(cfg.depth))
            self.mask_embedding = nn.Parameter(torch.zeros(cfg.width))
        self.norm = nn.LayerNorm(cfg.width)
        self.decoder_embed = nn.Linear(cfg.width, cfg.decoder_width)
        self.decoder_mask = nn.Parameter(torch.zeros(cfg.decoder_width))
        self.decoder_blocks = nn.ModuleList(
            TransformerBlock(cfg.decoder_width, cfg.decoder_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth))
        self.decoder_norm = nn.LayerNorm(cfg.decoder_width)
        self.head = nn.Linear(cfg.decoder_width, cfg.patch_dim if cfg.target == "continuous" else cfg.n_codes)
        if cfg.target == "discrete":
            code_dim = cfg.code_dim or cfg.patch_dim
            self.register_buffer("codebook", torch.zeros(cfg.n_codes, code_dim))
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.decoder_mask, std=0.02)
        if self.config.encoder == "conv":
            nn.init.normal_(self.mask_embedding, std=0.02)

    @property
    def layer_names(self) -> list[str]:
        """``embedding`` then ``block1`` ... ``blockN`` (encoder only)."""
        return ["embedding"] + [f"block{i + 1}" for i in range(len(self.blocks))]

    def tokens(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> mel tokens (batch, tokens, patch_dim)."""
        patches = patchify(self.frontend(waveforms), self.config.patch_frames)
        if patches.shape[1] < 1:
            raise ModelError(f"waveform of {waveforms.shape[1]} samples is shorter than one token")
        return patches

    def layer_outputs(self, waveforms: torch.Tensor) -> list[torch.Tensor]:
        """Unmasked encoder pass: [embedding, block1, ..., blockN], each (batch, tokens, width)."""
        x = self.embed(self.tokens(waveforms))
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        outputs = [x]
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs

    def encode_masked(self, patches: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encoder on a masked batch -> decoder input (batch, tokens, decoder_width) with mask tokens in place."""
        batch, n_tokens, _ = patches.shape
        pos = sinusoidal_positions(n_tokens, self.config.width, patches.device)  # (tokens, width)
        x = self.embed(patches)  # (batch, tokens, width)
        if self.config.encoder == "conv":
            x = torch.where(mask[..., None], self.mask_embedding.to(x.dtype), x) + pos
            for block in self.blocks:
                x = block(x)
            y = self.decoder_embed(self.norm(x))
            return torch.where(mask[..., None], self.decoder_mask.to(y.dtype), y)
        n_keep = n_tokens - int(round(self.config.mask_ratio * n_tokens))  # span_mask's exact count: no sync
        order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # visible first, in position order
        keep = order[:, :n_keep]  # (batch, n_keep)
        x = torch.gather(x + pos, 1, keep[..., None].expand(-1, -1, x.shape[2]))  # (batch, n_keep, width)
        for block in self.blocks:
            x = block(x)
        y = self.decoder_embed(self.norm(x))  # (batch, n_keep, decoder_width)
        full = self.decoder_mask.to(y.dtype).expand(batch, n_tokens, -1).clone()
        return full.scatter(1, keep[..., None].expand(-1, -1, y.shape[2]), y)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder: (batch, tokens, decoder_width) -> predictions (batch, tokens, patch_dim or n_codes)."""
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        for block in self.decoder_blocks:
            x = block(x)
        return self.head(self.decoder_norm(x))

    def forward(self, waveforms: torch.Tensor, mask: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        """Training loss (scalar) on a waveform batch, a mask (batch, tokens) and, for discrete targets, codes."""
        patches = self.tokens(waveforms)  # (batch, tokens, patch_dim)
        mask = mask[:, : patches.shape[1]]
        prediction = self.decode(self.encode_masked(patches, mask))
        if self.config.target == "continuous":
            per_token = (prediction.float() - normalise_patches(patches)).square().mean(dim=-1)
        else:
            if codes is None:
                raise PretrainError("a discrete-target model needs codes")
            per_token = F.cross_entropy(prediction.float().transpose(1, 2), codes[:, : patches.shape[1]],
                                        reduction="none")  # (batch, tokens)
        weights = mask.float() + (~mask).float() * self.config.unmasked_weight
        return (per_token * weights).sum() / weights.sum()

    def quantise(self, features: torch.Tensor) -> torch.Tensor:
        """Nearest codebook entry (batch, tokens) for features (batch, tokens, code_dim)."""
        flat = features.reshape(-1, features.shape[-1]).float()
        return nearest_centroid(flat, self.codebook).reshape(features.shape[:-1])

    def mel_code_features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Features the mel codebook quantises: the normalised mel tokens."""
        return normalise_patches(self.tokens(waveforms))


# ------------------------------------------------------------------------------------------------------------- k-means
def nearest_centroid(features: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (squared Euclidean) for each row of ``features`` (n, d) -> (n,)."""
    distance = (features.square().sum(1, keepdim=True) - 2.0 * features @ centroids.T
                + centroids.square().sum(1)[None, :])  # (n, k)
    return distance.argmin(dim=1)


# --------------------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(model: MaskedAudioModel, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created); returns the directory."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: value.detach().to("cpu").contiguous() for name, value in model.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE))
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model.config.to_dict()}
    payload.update(extra or {})
    atomic_write(directory / CONFIG_FILE, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return directory


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder a user path names.

    Accepts a checkpoint folder, its ``model.safetensors``, or a training output folder (its latest checkpoint).
    """
    path = Path(path).expanduser()
    if path.is_file() and path.name.endswith(".safetensors"):
        path = path.parent
    if (path / WEIGHTS_FILE).is_file():
        if not (path / CONFIG_FILE).is_file():
            raise PretrainError(f"checkpoint {path} has {WEIGHTS_FILE} but no {CONFIG_FILE}")
        return path.resolve()
    steps = sorted((path / "checkpoints").glob("step_*")) if path.is_dir() else []
    steps = [s for s in steps if (s / WEIGHTS_FILE).is_file() and s.name[5:].isdigit()]
    if steps:
        return steps[-1].resolve()
    raise PretrainError(f"no mae checkpoint at {path} (expected {WEIGHTS_FILE} + {CONFIG_FILE}, "
                        f"or a training folder with checkpoints/step_*)")


def read_checkpoint_config(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(checkpoint folder, parsed config.json) for a user path; checks the format marker."""
    directory = resolve_checkpoint(path)
    try:
        payload = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PretrainError(f"unreadable {directory / CONFIG_FILE}: {exc}") from None
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise PretrainError(f"{directory / CONFIG_FILE} is not a {CHECKPOINT_FORMAT} checkpoint")
    return directory, payload


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[MaskedAudioModel, dict[str, Any], str]:
    """Load a checkpoint (no pickle: safetensors only).

    Returns
    -------
    model : MaskedAudioModel
        In eval mode on ``device``.
    payload : dict
        The parsed config.json.
    sha256 : str
        sha256 of ``model.safetensors`` (the weights id).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory, payload = read_checkpoint_config(path)
    model = MaskedAudioModel(MAEConfig.from_dict(payload["model"]))
    try:
        state = load_file(str(directory / WEIGHTS_FILE), device="cpu")
    except SafetensorError as exc:
        raise ModelError(f"{directory / WEIGHTS_FILE} is not a readable safetensors file ({exc})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"checkpoint {directory} does not match its config: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    return model.to(device).eval(), payload, sha256_file(directory / WEIGHTS_FILE)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


