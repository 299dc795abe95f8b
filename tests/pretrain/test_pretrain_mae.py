"""The mae model: masking, front end, k-means, FLOP count, checkpoints and the `mae:` model family."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from brainlike.errors import BrainlikeError
from brainlike.pretrain.mae import (MAEConfig, MaskedAudioModel, PretrainError, kmeans, load_checkpoint,
                                    mel_centres, mel_filterbank, nearest_centroid, patchify, save_checkpoint,
                                    span_mask, training_flop_breakdown)
from brainlike.pretrain.presets import preset
from near_ties import assert_picks_near_best

torch.set_num_threads(1)
TINY = preset("tiny")


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("span", [1, 3, 15])
@pytest.mark.parametrize("n_tokens", [50, 250, 333])
def test_span_mask_masks_exact_count(ratio, span, n_tokens):
    mask = span_mask(8, n_tokens, ratio, span, torch.Generator().manual_seed(1))
    assert mask.shape == (8, n_tokens) and mask.dtype == torch.bool
    assert (mask.sum(1) == int(round(ratio * n_tokens))).all()


def _runs(row: np.ndarray) -> list[int]:
    edges = np.diff(np.concatenate([[0], row.astype(int), [0]]))
    return list(np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0])


def test_span_mask_gaps_are_spans():
    """With span s, masked runs are whole blocks: at most one run per row is shorter than s (cut block)
    besides runs cut by the sequence edges."""
    span, n_tokens = 15, 300
    mask = span_mask(32, n_tokens, 0.5, span, torch.Generator().manual_seed(0)).numpy()
    for row in mask:
        runs = _runs(row)
        starts = np.nonzero(np.diff(np.concatenate([[0], row.astype(int)])) == 1)[0]
        short = [r for r, s in zip(runs, starts) if r < span and s != 0 and s + r != n_tokens]
        assert len(short) <= 1
        assert np.mean(runs) >= span


def test_span_mask_is_deterministic_and_rejects_degenerate_ratios():
    a = span_mask(4, 100, 0.6, 5, torch.Generator().manual_seed(3))
    b = span_mask(4, 100, 0.6, 5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(PretrainError):
        span_mask(1, 4, 0.1, 1, torch.Generator())  # rounds to 0 masked tokens


def test_mel_filterbank_partition_of_unity_and_tone_peak():
    cfg = TINY.model
    fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
    freqs = np.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    centres = mel_centres(cfg)
    inside = (freqs >= centres[0]) & (freqs <= centres[-1])
    np.testing.assert_allclose(fb[inside].sum(1), 1.0, atol=1e-6)  # adjacent triangles sum to one
    model = MaskedAudioModel(cfg)
    for f0 in (250.0, 1000.0, 3000.0):
        t = np.arange(cfg.sample_rate) / cfg.sample_rate
        tone = torch.from_numpy(np.sin(2 * np.pi * f0 * t).astype(np.float32))[None]
        band = int(model.frontend(tone)[0, 10:-10].mean(0).argmax())
        assert abs(centres[band] - f0) <= np.max(np.diff(centres))


def test_log_mel_matches_numpy_reference():
    """torch front end == an independent numpy STFT (reflect padding, periodic Hann, |X|^2, mel, log)."""
    cfg = replace(TINY.model, mel_mean=-3.0, mel_std=2.0)
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    n_fft, hop = cfg.n_fft, cfg.hop_length
    padded = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([padded[i * hop:i * hop + n_fft] * window for i in range(1 + len(wave) // hop)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    fb = mel_filterbank(cfg.sample_rate, n_fft, cfg.n_mels, cfg.f_min, cfg.f_max).astype(np.float64)
    expected = (np.log(power @ fb + 1e-6) + 3.0) / 2.0
    got = MaskedAudioModel(cfg).frontend(torch.from_numpy(wave)[None])[0].numpy()
    np.testing.assert_allclose(got, expected, atol=2e-3)


@pytest.mark.numerics
def test_kmeans_recovers_separated_clusters_and_nearest_matches_bruteforce():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + 0.3 * rng.standard_normal((200, 2)) for c in centres])
    found = kmeans(torch.tensor(points, dtype=torch.float32), 3, seed=0).numpy()
    order = [int(np.argmin(np.linalg.norm(found - c, axis=1))) for c in centres]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(found[order], centres, atol=0.1)
    feats = rng.standard_normal((500, 7)).astype(np.float32)
    cents = rng.standard_normal((12, 7)).astype(np.float32)
    squared = ((feats[:, None, :].astype(np.float64) - cents[None].astype(np.float64)) ** 2).sum(-1)  # (500, 12)
    # float32 |x|^2 - 2 x.c + |c|^2 is exact to a few eps * (|x|^2 + |c|^2) (~1e-5 here): equal picks but at near ties
    chosen = nearest_centroid(torch.from_numpy(feats), torch.from_numpy(cents)).numpy()
    assert_picks_near_best(chosen, squared.argmin(1), squared, 0.0, atol=1e-4, max_near_ties=5)


@pytest.mark.parametrize("encoder", ["transformer", "conv"])
def test_flop_formula_matches_torch_flop_counter(encoder):
    """Dense matmul FLOPs of a training step equal torch's FlopCounterMode (which skips CPU attention kernels)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = replace(TINY.model, encoder=encoder)
    model = MaskedAudioModel(cfg)
    n_tokens, batch = TINY.tokens_per_clip, 3
    wave = 0.1 * torch.randn(batch, TINY.clip_samples)
    mask = span_mask(batch, n_tokens, cfg.mask_ratio, 1, torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model(wave, mask).backward()
    frames = TINY.clip_samples // cfg.hop_length + 1
    frontend = 2 * batch * frames * (cfg.n_fft // 2 + 1) * cfg.n_mels
    expected = training_flop_breakdown(cfg, n_tokens)
    assert counter.get_total_flops() - frontend == pytest.approx(batch * expected["matmul"], rel=1e-9)
    assert expected["attention"] > 0


def test_visible_encoder_ignores_masked_tokens():
    """The transformer encoder sees visible tokens only: changing masked patches leaves visible outputs unchanged."""
    model = MaskedAudioModel(TINY.model).eval()
    patches = torch.randn(2, 40, TINY.model.patch_dim)
    mask = span_mask(2, 40, 0.5, 4, torch.Generator().manual_seed(0))
    changed = torch.where(mask[..., None], torch.randn_like(patches), patches)
    with torch.no_grad():
        a, b = model.encode_masked(patches, mask), model.encode_masked(changed, mask)
    torch.testing.assert_close(a[~mask], b[~mask])
    torch.testing.assert_close(a[mask], model.decoder_mask.expand(int(mask.sum()), -1))


@pytest.mark.parametrize("encoder,target", [("transformer", "discrete"), ("conv", "continuous"),
                                            ("conv", "discrete")])
def test_variants_give_finite_losses_and_gradients(encoder, target):
    torch.manual_seed(0)  # weights, clips and codes: the same draws whichever tests ran before
    cfg = replace(TINY.model, encoder=encoder, target=target, n_codes=8 if target == "discrete" else 0)
    model = MaskedAudioModel(cfg)
    wave = 0.1 * torch.randn(2, TINY.clip_samples)
    mask = span_mask(2, TINY.tokens_per_clip, cfg.mask_ratio, 2, torch.Generator().manual_seed(0))
    codes = torch.randint(0, 8, (2, TINY.tokens_per_clip)) if target == "discrete" else None
    loss = model(wave, mask, codes)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    if target == "discrete":  # cross-entropy of untrained logits against random codes: about log(8), not far above
        # (over 30 seeds log(8) + 0.12 ... + 1.80: Jensen puts the mean above log(8), logit spread adds the rest)
        assert 0.8 * np.log(8) < loss.item() < 2 * np.log(8)


def test_config_validation_errors():
    with pytest.raises(PretrainError, match="mask_ratio"):
        MAEConfig(mask_ratio=1.0)
    with pytest.raises(PretrainError, match="divisible"):
        MAEConfig(width=100, heads=3)
    with pytest.raises(PretrainError, match="n_codes"):
        MAEConfig(target="discrete")
    with pytest.raises(PretrainError, match="unknown MAE config"):
        MAEConfig.from_dict({"depth": 2, "colour": "blue"})


def test_checkpoint_round_trip_and_model_family(tmp_path):
    from brainlike.models.registry import load_model
    from brainlike.pretrain.mae import file_sha256

    torch.manual_seed(0)
    cfg = replace(TINY.model, target="discrete", n_codes=4)
    module = MaskedAudioModel(cfg).eval()
    module.codebook.copy_(torch.randn(4, cfg.patch_dim))
    folder = save_checkpoint(module, tmp_path / "ckpt", extra={"step": 7})
    reloaded, payload, sha = load_checkpoint(folder)
    assert payload["step"] == 7 and sha == file_sha256(folder / "model.safetensors")
    torch.testing.assert_close(reloaded.codebook, module.codebook)
    wave = (0.1 * np.random.default_rng(0).standard_normal((2, 32000))).astype(np.float32)
    with torch.no_grad():
        expected = [o.numpy() for o in module.layer_outputs(torch.from_numpy(wave))]
    model = load_model(f"mae:{folder}")
    assert model.name == f"mae:{folder}" and model.weights_id == sha
    assert model.layers == ["embedding", "block1", "block2"]
    outputs = model(wave)
    for layer, ref in zip(model.layers, expected):
        assert outputs[layer].shape == (2, 50, cfg.width)
        np.testing.assert_allclose(outputs[layer], ref, atol=1e-6)
    assert load_model(f"mae:{folder / 'model.safetensors'}").weights_id == sha


def test_random_twin_is_deterministic_and_bad_paths_fail_in_one_line(tmp_path):
    from brainlike.models.registry import load_model

    a, b = load_model("mae@random"), load_model("mae@random")
    assert a.weights_id == "random:0" and a.name == "mae@random"
    wave = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32) * 0.1
    np.testing.assert_array_equal(a(wave)["block4"], b(wave)["block4"])
    with pytest.raises(BrainlikeError, match="no mae checkpoint"):
        load_model(f"mae:{tmp_path / 'missing'}")


def test_patchify_drops_trailing_frames():
    mel = torch.arange(2 * 10 * 3, dtype=torch.float32).reshape(2, 10, 3)
    tokens = patchify(mel, 4)
    assert tokens.shape == (2, 2, 12)
    torch.testing.assert_close(tokens[0, 1], mel[0, 4:8].reshape(-1))
