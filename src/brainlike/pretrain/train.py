"""The pretraining loop: deterministic, resumable, checkpointed.

Output folder::

    train.json                    the training configuration and the corpus's manifest sha256 (a resume must match)
    checkpoints/step_000000/      model.safetensors + config.json (a ``mae:`` checkpoint) + trainer.safetensors/.json
    checkpoints/step_000100/ ...  every ``checkpoint_every`` steps and at the end (written to a temporary name, renamed)
    loss.csv                      step, loss, lr, elapsed_s (one row per step)
    loss.png                      the loss curve

Everything random is a function of ``(seed, step)``: the data order is a per-epoch permutation of the corpus's
fixed-length segments, and the masks come from a generator seeded per step. A run killed at any moment (even with
``kill -9``) and started again with the same command resumes from its latest checkpoint and ends with bit-identical
weights on the same machine and thread count. On CUDA the loop uses bf16 autocast and ``torch.compile``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainlike.errors import PretrainError
from brainlike.integrity import atomic_folder, atomic_write
from brainlike.models.nets.mae import WEIGHTS_FILE, LogMel, MaskedAudioModel, load_checkpoint, save_checkpoint
from brainlike.pretrain.corpus import Corpus, load_corpus
from brainlike.pretrain.mae import kmeans, span_mask
from brainlike.pretrain.presets import TrainConfig

__all__ = ["TRAINER_WEIGHTS", "TRAINER_STATE", "TrainResult", "SegmentSampler", "Prefetcher", "learning_rate",
           "mask_generator", "make_optimizer", "save_trainer_state", "load_trainer_state", "latest_resumable",
           "write_checkpoint", "estimate_mel_stats", "code_features", "load_teacher", "fresh_model", "train",
           "LOSS_HEADER", "plot_loss"]

log = logging.getLogger(__name__)
TRAINER_WEIGHTS = "trainer.safetensors"
TRAINER_STATE = "trainer.json"


@dataclass
class TrainResult:
    """Summary of a finished (or resumed and finished) run."""

    out: Path
    checkpoint: Path
    steps: int
    resumed_from: int | None
    final_loss: float
    first_loss: float
    seconds: float
    tokens_per_second: float


class SegmentSampler:
    """Fixed-length segments of the concatenated corpus, in a per-epoch random order fixed by the seed."""

    def __init__(self, corpus: Corpus, clip_samples: int, seed: int) -> None:
        self.stream = np.concatenate(corpus.clips).astype(np.float32)  # (total_samples,)
        self.clip_samples, self.seed = clip_samples, seed
        self.n_segments = len(self.stream) // clip_samples
        if self.n_segments < 1:
            raise PretrainError(f"corpus {corpus.path} ({corpus.seconds:.1f} s) is shorter than one training clip")
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n_segments)}
        return self._perms[epoch]

    def segments(self, indices: np.ndarray) -> np.ndarray:
        """Waveforms (len(indices), clip_samples) for global sample indices (epoch-major)."""
        rows = [self._perm(int(i) // self.n_segments)[int(i) % self.n_segments] for i in indices]
        return np.stack([self.stream[r * self.clip_samples:(r + 1) * self.clip_samples] for r in rows])

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        return self.segments(np.arange(step * batch_size, (step + 1) * batch_size))


class Prefetcher:
    """Prepares the next step's batch (pinned, on a background thread) while the GPU runs the current one.

    The batch of a step depends only on the step, so prefetching changes nothing in the result.
    """

    def __init__(self, sampler: SegmentSampler, batch_size: int, pin: bool) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.sampler, self.batch_size, self.pin = sampler, batch_size, pin
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: dict[int, Any] = {}

    def _load(self, step: int) -> torch.Tensor:
        tensor = torch.from_numpy(self.sampler.batch(step, self.batch_size))
        return tensor.pin_memory() if self.pin else tensor

    def get(self, step: int, last: int) -> torch.Tensor:
        future = self.pending.pop(step, None)
        tensor = future.result() if future is not None else self._load(step)
        if step + 1 < last:
            self.pending[step + 1] = self.pool.submit(self._load, step + 1)
        return tensor

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``min_lr`` at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def mask_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step + 1)


def make_optimizer(model: MaskedAudioModel, config: TrainConfig, device: str) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "mask" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "mask" not in n)]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=device.startswith("cuda"))


# ------------------------------------------------------------------------------------------------- checkpoint state
def save_trainer_state(directory: Path, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Optimizer moments and RNG state as safetensors, counters as JSON (no pickle)."""
    from safetensors.torch import save_file

    tensors = {"rng.torch": torch.get_rng_state()}
    for index, values in optimizer.state_dict()["state"].items():
        for name, value in values.items():
            tensors[f"state.{index}.{name}"] = value.detach().to("cpu").contiguous()
    save_file(tensors, str(directory / TRAINER_WEIGHTS))
    (directory / TRAINER_STATE).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def load_trainer_state(directory: Path, optimizer: torch.optim.Optimizer, device: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    tensors = load_file(str(directory / TRAINER_WEIGHTS))
    torch.set_rng_state(tensors.pop("rng.torch"))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
    full = optimizer.state_dict()
    full["state"] = state
    optimizer.load_state_dict(full)
    return json.loads((directory / TRAINER_STATE).read_text())


def latest_resumable(out: Path) -> Path | None:
    """The newest complete checkpoint with trainer state, if any."""
    steps = sorted(p for p in (out / "checkpoints").glob("step_*") if p.name[5:].isdigit())
    steps = [p for p in steps if (p / TRAINER_STATE).is_file() and (p / WEIGHTS_FILE).is_file()]
    return steps[-1] if steps else None


def write_checkpoint(out: Path, model: MaskedAudioModel, optimizer: torch.optim.Optimizer, step: int,
                     state: dict[str, Any]) -> Path:
    """Atomically write ``checkpoints/step_<step>`` (temporary folder, then rename)."""
    final = out / "checkpoints" / f"step_{step:06d}"
    with atomic_folder(final, replace=True) as tmp:
        save_checkpoint(_plain(model), tmp, extra={"step": step, "train": state["train_json"]})
        save_trainer_state(tmp, optimizer, {k: v for k, v in state.items() if k != "train_json"})
    return final


def _plain(model: Any) -> MaskedAudioModel:
    return getattr(model, "_orig_mod", model)


# ---------------------------------------------------------------------------------------------------- initialisation
def estimate_mel_stats(config: TrainConfig, sampler: SegmentSampler) -> tuple[float, float]:
    """Mean and std of the log-mel values over up to 64 segments (a fixed, seeded sample)."""
    n = min(64, sampler.n_segments)
    picks = np.random.default_rng([config.seed, 7]).choice(sampler.n_segments, n, replace=False)
    frontend = LogMel(replace(config.model, mel_mean=0.0, mel_std=1.0))
    with torch.no_grad():
        values = frontend(torch.from_numpy(sampler.segments(np.sort(picks)))).double()
    return float(values.mean()), float(values.std())


def code_features(model: MaskedAudioModel, teacher: tuple[MaskedAudioModel, int] | None,
                  waveforms: torch.Tensor) -> torch.Tensor:
    """Features the codebook quantises: normalised mel tokens, or the teacher's layer (batch, tokens, code_dim)."""
    with torch.no_grad():
        if teacher is None:
            return _plain(model).mel_code_features(waveforms)
        module, layer = teacher
        return module.layer_outputs(waveforms)[layer].float()


def load_teacher(config: TrainConfig, device: str) -> tuple[MaskedAudioModel, int] | None:
    """The teacher model and layer index for teacher-code targets (token grids must match the student's)."""
    cfg = config.model
    if cfg.target != "discrete" or cfg.code_source != "teacher":
        return None
    teacher, _, _ = load_checkpoint(cfg.teacher, device=device)
    tcfg = teacher.config
    if (tcfg.sample_rate, tcfg.hop_length, tcfg.patch_frames) != (cfg.sample_rate, cfg.hop_length, cfg.patch_frames):
        raise PretrainError("teacher and student must share sample_rate, hop_length and patch_frames (token grid)")
    if cfg.teacher_layer not in teacher.layer_names:
        raise PretrainError(f"teacher has no layer {cfg.teacher_layer!r}; layers: {teacher.layer_names}")
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, teacher.layer_names.index(cfg.teacher_layer)


def fresh_model(config: TrainConfig, sampler: SegmentSampler, teacher: tuple[MaskedAudioModel, int] | None
                ) -> MaskedAudioModel:
    """Initial model: corpus mel statistics, seeded weights, and (discrete targets) the fitted k-means codebook."""
    mean, std = estimate_mel_stats(config, sampler)
    cfg = replace(config.model, mel_mean=round(mean, 6), mel_std=round(std, 6))
    if teacher is not None:
        cfg = replace(cfg, code_dim=teacher[0].config.width)
    torch.manual_seed(config.seed)
    model = MaskedAudioModel(cfg)
    if cfg.target == "discrete":
        n = min(config.kmeans_clips, sampler.n_segments)
        picks = np.sort(np.random.default_rng([config.seed, 11]).choice(sampler.n_segments, n, replace=False))
        device = next(teacher[0].parameters()).device if teacher else "cpu"
        feats = code_features(model, teacher, torch.from_numpy(sampler.segments(picks)).to(device))
        flat = feats.reshape(-1, feats.shape[-1]).cpu()
        model.codebook.copy_(kmeans(flat, cfg.n_codes, iterations=config.kmeans_iterations, seed=config.seed))
    return model


# ----------------------------------------------------------------------------------------------------------- the loop
def train(config: TrainConfig, corpus: str | Path, out: str | Path, *, device: str | None = None,
          compile: bool | None = None, progress: bool = True) -> TrainResult:
    """Train (or resume) a masked-reconstruction model.

    Parameters
    ----------
    config : TrainConfig
        A preset (``brainlike.pretrain.presets.preset``) with any overrides.
    corpus : str or Path
        A corpus folder or name (see :func:`brainlike.pretrain.corpus.resolve_corpus`).
    out : str or Path
        Output folder; if it holds checkpoints of the same configuration and corpus, training resumes.
    device : str, optional
        ``"cuda"`` when available, else ``"cpu"``.
    compile : bool, optional
        ``torch.compile`` the model (default: on CUDA only).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    use_cuda = device.startswith("cuda")
    out = Path(out)
    data = load_corpus(corpus, config.model.sample_rate)
    train_json = {"config": config.to_dict(), "corpus": str(data.path), "corpus_manifest_sha256": data.manifest_sha256}
    _check_run_folder(out, train_json)
    sampler = SegmentSampler(data, config.clip_samples, config.seed)
    teacher = load_teacher(config, device)
    resume = latest_resumable(out)
    if resume is not None:
        model, _, _ = load_checkpoint(resume, device="cpu")
    else:
        model = fresh_model(config, sampler, teacher)
    model = model.to(device).train()
    optimizer = make_optimizer(model, config, device)
    state = {"step": 0, "elapsed_s": 0.0, "train_json": train_json}
    if resume is not None:
        state.update(load_trainer_state(resume, optimizer, device))
        log.info("resuming %s from step %d", out, state["step"])
    else:
        write_checkpoint(out, model, optimizer, 0, state)
    start = int(state["step"])
    rows = _read_loss_rows(out, start)
    step_fn = torch.compile(model) if (compile if compile is not None else use_cuda) else model
    return _loop(config, out, model, step_fn, optimizer, sampler, teacher, state, rows, start, device, progress,
                 resumed=resume is not None)


def _loop(config: TrainConfig, out: Path, model: MaskedAudioModel, step_fn: Any, optimizer: torch.optim.Optimizer,
          sampler: SegmentSampler, teacher: Any, state: dict[str, Any], rows: list[list], start: int, device: str,
          progress: bool, resumed: bool) -> TrainResult:
    from brainlike import progress as bars

    use_cuda = device.startswith("cuda")
    n_tokens = config.tokens_per_clip
    pending: list[tuple[int, torch.Tensor, float]] = []
    clock, elapsed0 = time.perf_counter(), float(state["elapsed_s"])
    bar = bars.task(f"pretraining to step {config.steps}", total=config.steps - start, show=progress)
    _write_loss(out, rows, mode="w")
    prefetch = Prefetcher(sampler, config.batch_size, pin=use_cuda)
    with bar as advance, contextlib.closing(prefetch):
        for step in range(start, config.steps):
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            waves = prefetch.get(step, config.steps).to(device, non_blocking=True)
            mask = span_mask(config.batch_size, n_tokens, config.model.mask_ratio, config.model.mask_span,
                             mask_generator(config.seed, step)).to(device)
            codes = model.quantise(code_features(model, teacher, waves)) if config.model.target == "discrete" else None
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_cuda):
                loss = step_fn(waves, mask, codes)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            pending.append((step, loss.detach(), lr))
            done = step + 1
            if done % config.log_every == 0 or done % config.checkpoint_every == 0 or done == config.steps:
                elapsed = elapsed0 + time.perf_counter() - clock
                new_rows = [[s, float(v), l, round(elapsed, 3)] for s, v, l in pending]
                rows += new_rows
                pending = []
                _write_loss(out, new_rows, mode="a")
            if done % config.checkpoint_every == 0 or done == config.steps:
                state.update(step=done, elapsed_s=elapsed0 + time.perf_counter() - clock)
                write_checkpoint(out, model, optimizer, done, state)
            advance()
    seconds = time.perf_counter() - clock
    plot_loss(out)
    steps_run = config.steps - start
    return TrainResult(out=out, checkpoint=out / "checkpoints" / f"step_{config.steps:06d}", steps=config.steps,
                       resumed_from=start if resumed else None, final_loss=_tail_mean(rows), first_loss=rows[0][1],
                       seconds=seconds, tokens_per_second=steps_run * config.batch_size * n_tokens / max(seconds, 1e-9))


def _tail_mean(rows: list[list], n: int = 10) -> float:
    return float(np.mean([r[1] for r in rows[-n:]]))


def _check_run_folder(out: Path, train_json: dict[str, Any]) -> None:
    path = out / "train.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != json.loads(json.dumps(train_json)):
            raise PretrainError(f"{out} holds a run with a different configuration or corpus; choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(train_json, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------------- loss log
LOSS_HEADER = ["step", "loss", "lr", "elapsed_s"]


def _read_loss_rows(out: Path, upto_step: int) -> list[list]:
    """Rows of loss.csv for steps before ``upto_step`` (rows written after the last checkpoint are dropped)."""
    path = out / "loss.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as handle:
        for record in csv.DictReader(handle):
            try:  # a kill during an append can leave a partial last line
                row = [int(record["step"]), float(record["loss"]), float(record["lr"]), float(record["elapsed_s"])]
            except (TypeError, ValueError):
                continue
            if row[0] < upto_step:
                rows.append(row)
    return rows


def _write_loss(out: Path, rows: list[list], mode: str) -> None:
    """Rewrite loss.csv with ``rows`` (mode ``"w"``, atomically) or append them (mode ``"a"``)."""
    if mode == "a":
        with open(out / "loss.csv", "a", newline="") as handle:
            csv.writer(handle).writerows(rows)
        return
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(LOSS_HEADER)
    writer.writerows(rows)
    atomic_write(out / "loss.csv", text.getvalue())


def plot_loss(out: str | Path) -> Path:
    """Plot loss.csv (per step, and a moving average) to loss.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    out = Path(out)
    table = pd.read_csv(out / "loss.csv")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(table["step"], table["loss"], color="0.75", lw=0.8, label="per step")
    window = max(1, len(table) // 50)
    ax.plot(table["step"], table["loss"].rolling(window, min_periods=1).mean(), color="C0", label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(out.name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=120)
    plt.close(fig)
    return out / "loss.png"
