"""Training pieces of the masked-reconstruction (``mae``) models: span masking, k-means codebooks, FLOP counts.

The architecture, its front end and checkpoint I/O are :mod:`brainlike.models.nets.mae` (pretraining imports models,
never the reverse). Masking is span masking with an exact count: ``round(mask_ratio * tokens)`` tokens per example,
in blocks of ``mask_span`` tokens.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from brainlike.errors import PretrainError
from brainlike.models.nets.mae import MAEConfig, nearest_centroid

__all__ = ["kmeans", "span_mask", "training_flop_breakdown", "training_flops_per_clip", "with_overrides"]


# ------------------------------------------------------------------------------------------------------------- masking
def span_mask(batch: int, n_tokens: int, ratio: float, span: int, generator: torch.Generator) -> torch.Tensor:
    """Random span mask with exactly ``round(ratio * n_tokens)`` masked tokens per row.

    The sequence is cut into blocks of ``span`` tokens (with a random offset per row); blocks are masked in a random
    order until the count is reached (the last block chosen may be masked only in part). Adjacent chosen blocks merge
    into longer gaps, as in EnCodecMAE's span masking.

    Returns
    -------
    Tensor, shape (batch, n_tokens), bool (on CPU; True = masked)
    """
    n_mask = int(round(ratio * n_tokens))
    if not 0 < n_mask < n_tokens:
        raise PretrainError(f"mask ratio {ratio} of {n_tokens} tokens masks {n_mask}: need 0 < masked < tokens")
    offset = torch.randint(0, span, (batch, 1), generator=generator)  # (batch, 1)
    block = (torch.arange(n_tokens)[None, :] + offset) // span  # (batch, n_tokens)
    n_blocks = (n_tokens + span - 1) // span + 1
    block_noise = torch.rand(batch, n_blocks, generator=generator)  # (batch, n_blocks)
    order = torch.sort(block_noise.gather(1, block), dim=1, stable=True).indices  # (batch, n_tokens)
    mask = torch.zeros(batch, n_tokens, dtype=torch.bool)
    mask.scatter_(1, order[:, :n_mask], True)
    return mask


def kmeans(features: torch.Tensor, k: int, *, iterations: int = 25, seed: int = 0) -> torch.Tensor:
    """k-means (k-means++ initialisation, Lloyd iterations) on float32 features (n, d); returns centroids (k, d).

    Deterministic for a given seed. Empty clusters are re-seeded with the point farthest from its centroid.
    """
    features = features.float()
    n = features.shape[0]
    if n < k:
        raise PretrainError(f"k-means needs at least k={k} samples, got {n}")
    generator = torch.Generator().manual_seed(seed)
    centroids = features[torch.randint(0, n, (1,), generator=generator)]
    closest = (features - centroids[0]).square().sum(1)  # (n,)
    for _ in range(1, k):
        probs = closest / closest.sum() if closest.sum() > 0 else torch.full_like(closest, 1.0 / n)
        index = torch.multinomial(probs, 1, generator=generator)
        centroids = torch.cat([centroids, features[index]])
        closest = torch.minimum(closest, (features - features[index]).square().sum(1))
    for _ in range(iterations):
        labels = nearest_centroid(features, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, labels, features)
        counts = torch.bincount(labels, minlength=k).float()
        new = sums / counts.clamp(min=1.0)[:, None]
        empty = counts == 0
        if empty.any():
            error = (features - new[labels]).square().sum(1)
            far = torch.argsort(error, descending=True)[: int(empty.sum())]
            new[empty] = features[far]
        if torch.equal(new, centroids):
            break
        centroids = new
    return centroids


def training_flop_breakdown(config: MAEConfig, n_tokens: int) -> dict[str, float]:
    """FLOPs of one training step for one clip, split into dense matmuls and attention (scores + weighted sums).

    Forward + backward: 3 x forward for every layer, except the patch embedding whose input needs no gradient
    (2 x forward). The encoder runs on the visible tokens (transformer) or all tokens (conv variant); decoder and head
    on all tokens. The log-mel front end, norms and element-wise operations are left out (the usual MFU convention).
    """
    n_visible = n_tokens - int(round(config.mask_ratio * n_tokens))
    enc_tokens = n_visible if config.encoder == "transformer" else n_tokens
    width, dec = config.width, config.decoder_width
    hidden, dec_hidden = int(width * config.mlp_ratio), int(dec * config.mlp_ratio)
    mixing = 2 * 4 * width * width if config.encoder == "transformer" else 2 * config.conv_kernel * width * width
    enc_dense = enc_tokens * (mixing + 2 * 2 * width * hidden)  # qkv + proj (or the conv), then the MLP
    enc_attention = 2 * 2 * enc_tokens ** 2 * width if config.encoder == "transformer" else 0
    dec_dense = n_tokens * (2 * 4 * dec * dec + 2 * 2 * dec * dec_hidden)
    dec_attention = 2 * 2 * n_tokens ** 2 * dec
    out = config.patch_dim if config.target == "continuous" else config.n_codes
    embed = 2 * n_tokens * config.patch_dim * width
    dense = (config.depth * enc_dense + 2 * enc_tokens * width * dec + config.decoder_depth * dec_dense
             + 2 * n_tokens * dec * out)
    attention = config.depth * enc_attention + config.decoder_depth * dec_attention
    return {"matmul": 3.0 * dense + 2.0 * embed, "attention": 3.0 * attention}


def training_flops_per_clip(config: MAEConfig, n_tokens: int) -> float:
    """Total model FLOPs of one training step for one clip (see :func:`training_flop_breakdown`)."""
    return float(sum(training_flop_breakdown(config, n_tokens).values()))


def with_overrides(config: MAEConfig, **changes: Any) -> MAEConfig:
    """A copy of ``config`` with the non-None ``changes`` applied (validated)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
