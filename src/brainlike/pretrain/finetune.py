"""Fine-tuning a pretrained ``mae`` encoder on a downstream classification task (for ``experiment finetune``).

The classifier is a linear layer on the time-averaged output of the last encoder block. Accuracy "before" comes from
training the head alone on the frozen encoder (a linear probe); "after" from then fine-tuning encoder and head
together. Both use the task's first split (test fold i, validation fold i + 1, train on the rest) and report test
accuracy at the epoch with the best validation accuracy. The fine-tuned encoder is saved as a new checkpoint, which
loads as ``mae:<folder>`` and can be scored like any model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from brainlike.models.nets.mae import MaskedAudioModel, load_checkpoint, save_checkpoint

__all__ = ["Classifier", "task_arrays", "accuracy", "finetune_checkpoint"]


class Classifier(nn.Module):
    """Encoder + mean over tokens of the last block + linear head."""

    def __init__(self, encoder: MaskedAudioModel, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.width, n_classes)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.layer_outputs(waveforms)[-1].mean(dim=1))


def task_arrays(task_name: str, sample_rate: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """(waveforms (clips, samples) at ``sample_rate``, integer labels, first split) of a downstream task."""
    from brainlike.data.audio import resample
    from brainlike.downstream.tasks import load_task

    task = load_task(task_name)
    clips = [resample(c, task.info.sample_rate, sample_rate) for c in task.waveforms()]
    length = max(len(c) for c in clips)
    waves = np.stack([np.pad(c, (0, length - len(c))) for c in clips]).astype(np.float32)
    classes = task.classes
    labels = np.array([classes.index(v) for v in task.labels.tolist()])
    return waves, labels, task.splits()[0]


def _epoch(model: Classifier, optimizer: torch.optim.Optimizer, waves: np.ndarray, labels: np.ndarray,
           index: np.ndarray, batch: int, rng: np.random.Generator) -> float:
    model.train()
    order = rng.permutation(index)
    total = 0.0
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        loss = nn.functional.cross_entropy(model(torch.from_numpy(waves[rows])), torch.from_numpy(labels[rows]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(rows)
    return total / len(order)


@torch.no_grad()
def accuracy(model: Classifier, waves: np.ndarray, labels: np.ndarray, index: np.ndarray, batch: int = 32) -> float:
    """Fraction of correctly classified clips among ``index``."""
    model.eval()
    preds = [model(torch.from_numpy(waves[index[s:s + batch]])).argmax(1).numpy() for s in range(0, len(index), batch)]
    return float(np.mean(np.concatenate(preds) == labels[index]))


def _fit(model: Classifier, params: list, lr: float, epochs: int, data: tuple, split: Any, seed: int
         ) -> tuple[float, dict[str, torch.Tensor]]:
    """Train ``params``; return the test accuracy and weights of the best-validation epoch."""
    waves, labels = data
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    best = (-1.0, 0.0, {k: v.clone() for k, v in model.state_dict().items()})
    for _ in range(epochs):
        _epoch(model, optimizer, waves, labels, split.train, 16, rng)
        valid = accuracy(model, waves, labels, split.valid)
        if valid > best[0]:
            best = (valid, accuracy(model, waves, labels, split.test),
                    {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    return best[1], best[2]


def finetune_checkpoint(checkpoint: str | Path, task: str, out: str | Path, *, epochs: int = 10, seed: int = 0,
                        lr: float = 1e-4) -> dict[str, Any]:
    """Linear probe then full fine-tuning of a checkpoint on ``task``; saves the fine-tuned encoder to ``out``."""
    encoder, payload, sha = load_checkpoint(checkpoint)
    waves, labels, split = task_arrays(task, encoder.config.sample_rate)
    torch.manual_seed(seed)
    model = Classifier(encoder, int(labels.max()) + 1)
    for p in encoder.parameters():
        p.requires_grad_(False)
    before, _ = _fit(model, list(model.head.parameters()), 1e-3, epochs, (waves, labels), split, seed)
    for p in encoder.parameters():
        p.requires_grad_(True)
    after, _ = _fit(model, list(model.parameters()), lr, epochs, (waves, labels), split, seed + 1)
    extra = {"finetuned": {"from": str(checkpoint), "from_sha256": sha, "task": task, "epochs": epochs, "lr": lr,
                           "test_fold": split.test_fold, "accuracy_before": before, "accuracy_after": after},
             "step": payload.get("step")}
    path = save_checkpoint(model.encoder, out, extra=extra)
    return {"checkpoint": path, "accuracy_before": before, "accuracy_after": after, "task": task,
            "test_fold": split.test_fold, "n_train": len(split.train), "n_test": len(split.test)}
