"""Training throughput (tokens/s) and model FLOP utilisation (MFU) of the mae pretraining step.

Runs the real training step of ``brainlike.pretrain`` (log-mel front end, span masking, encoder on visible tokens,
decoder, loss, backward, fused AdamW) on random audio, so no corpus is needed. On CUDA it uses bf16 autocast and,
unless ``--no-compile``, ``torch.compile``; on CPU float32. MFU = model FLOPs per second / peak FLOP/s, where model
FLOPs per step come from :func:`brainlike.pretrain.mae.training_flop_breakdown` (dense matmuls + attention, forward and
backward; checked against torch's FLOP counter in the tests) and the peak is measured with a large bf16 matmul (or
given with ``--peak-tflops``).

Examples::

    python benchmarks/bench_pretrain.py --config base                      # on a GPU: the figure to report
    python benchmarks/bench_pretrain.py --config tiny --steps 5 --warmup 2 # CPU smoke run
    python benchmarks/bench_pretrain.py --config base --batch-size 64 --no-compile --json

Tokens are input tokens (all positions, masked or not) per second, as in the Dasheng-style anchor figure
(batch 128 x 10 s x 25 tokens/s = 32,000 tokens per step).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace

import torch

from brainlike.models.nets.mae import MaskedAudioModel
from brainlike.pretrain.mae import span_mask, training_flop_breakdown
from brainlike.pretrain.presets import preset
from brainlike.pretrain.train import make_optimizer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="base", help="tiny | small | base (default base)")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation, autotuning)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (e.g. max-autotune)")
    p.add_argument("--peak-tflops", type=float, help="peak FLOP/s (TFLOP/s) for MFU; default: measured")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def measure_peak_tflops(device: str, dtype: torch.dtype, n: int = 8192, repeats: int = 20) -> float:
    """Achieved TFLOP/s of a large square matmul (the practical peak used as MFU denominator)."""
    if not device.startswith("cuda"):
        n, repeats = 1024, 5
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e12


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build(args: argparse.Namespace):
    """Model, optimizer, compiled step function and the training configuration."""
    config = preset(args.config)
    if args.batch_size:
        config = replace(config, batch_size=args.batch_size)
    torch.manual_seed(0)
    model = MaskedAudioModel(config.model).to(args.device).train()
    optimizer = make_optimizer(model, config, args.device)
    use_cuda = args.device.startswith("cuda")
    compiled = torch.compile(model, mode=args.compile_mode) if use_cuda and not args.no_compile else model
    return config, model, optimizer, compiled


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = args.device.startswith("cuda")
    if use_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    config, model, optimizer, step_fn = build(args)
    batch, n_tokens = config.batch_size, config.tokens_per_clip
    waves = 0.1 * torch.randn(batch, config.clip_samples, device=args.device)
    masks = [span_mask(batch, n_tokens, config.model.mask_ratio, config.model.mask_span,
                       torch.Generator().manual_seed(i)).to(args.device) for i in range(4)]

    def step(i: int) -> torch.Tensor:
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_cuda):
            loss = step_fn(waves, masks[i % 4])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    start = time.perf_counter()
    for i in range(args.warmup):
        step(i)
    _sync(args.device)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(args.steps):
        loss = step(i)
    _sync(args.device)
    seconds = time.perf_counter() - start
    flops = training_flop_breakdown(config.model, n_tokens)
    step_flops = batch * sum(flops.values())
    peak = args.peak_tflops or measure_peak_tflops(args.device, torch.bfloat16 if use_cuda else torch.float32)
    achieved = step_flops * args.steps / seconds / 1e12
    return {
        "config": args.config, "device": torch.cuda.get_device_name() if use_cuda else platform.processor() or "cpu",
        "dtype": "bf16 autocast" if use_cuda else "float32", "compiled": use_cuda and not args.no_compile,
        "batch_size": batch, "clip_seconds": config.clip_seconds, "tokens_per_clip": n_tokens,
        "visible_tokens": n_tokens - int(round(config.model.mask_ratio * n_tokens)),
        "encoder": f"{config.model.depth} x {config.model.width}",
        "decoder": f"{config.model.decoder_depth} x {config.model.decoder_width}",
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "steps": args.steps, "warmup_s": round(warmup_s, 2), "step_ms": round(1000 * seconds / args.steps, 2),
        "tokens_per_s": round(batch * n_tokens * args.steps / seconds, 1),
        "model_tflop_per_step": round(step_flops / 1e12, 4), "achieved_tflops": round(achieved, 3),
        "peak_tflops": round(peak, 2), "peak_source": "given" if args.peak_tflops else "measured matmul",
        "mfu": round(achieved / peak, 4), "final_loss": round(loss.item(), 4),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    result = run(parse_args(argv))
    if "--json" in (argv if argv is not None else sys.argv[1:]):
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
