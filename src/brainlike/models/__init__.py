"""Audio models behind one protocol (:mod:`brainlike.models.base`): baselines, the zoo, the paper's models, hub and
HEAR models, the ``mae`` family; the registry and the validator."""

__all__ = ["base", "baselines", "cochleagram", "hear", "hf", "mae", "mel", "nets", "paper", "registry",
           "spectrotemporal", "validate", "zoo"]

