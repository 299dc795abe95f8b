"""Alignment of activations with neural responses: the ridge engine and its backends, the registered regression
protocols (:mod:`brainlike.align.protocols`), RSA, aggregation and statistics."""

__all__ = ["aggregate", "backend", "pepino2025", "protocols", "ridge", "rsa", "rsa_voxels", "score", "stats",
           "tuckute2023"]

