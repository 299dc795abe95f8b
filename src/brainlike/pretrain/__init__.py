"""Pretraining masked-reconstruction audio models and the experiments of Pepino et al. 2025.

Modules
-------
mae
    Span masking, k-means codebooks for discrete targets, FLOP counts. The model itself (log-mel -> patch/frame
    tokens -> transformer or conv encoder -> light decoder) and its safetensors checkpoints are
    :mod:`brainlike.models.nets.mae`; checkpoints load as ``mae:<path>`` (:mod:`brainlike.models.mae`).
presets
    Training configurations ``tiny``, ``small``, ``base``.
corpus
    Corpora from Debian packages (``brainlike corpus setup|build|check``), manifests, the leakage check.
train
    The deterministic, resumable training loop (``brainlike pretrain``).
experiments, finetune
    ``brainlike experiment diversity|checkpoints|architecture|finetune``.
"""

__all__ = ["corpus", "experiments", "finetune", "mae", "presets", "train"]
