"""Exceptions that the CLI turns into one-line messages and a non-zero exit."""

from __future__ import annotations

__all__ = ["BrainlikeError", "DataError", "ChecksumError", "UnsafeArchiveError", "AudioError", "UnknownNameError",
           "ModelError", "PretrainError", "ProtocolError"]


class BrainlikeError(Exception):
    """Base class for every error a user can cause and fix (bad input, missing data...)."""


class DataError(BrainlikeError):
    """Data missing, corrupt, misaligned or otherwise unusable."""


class ChecksumError(DataError):
    """A file's sha256 does not match the pinned value."""


class UnsafeArchiveError(DataError):
    """An archive holds an absolute path, a ``..`` component, a link or another non-regular member."""


class AudioError(DataError):
    """An audio file is unreadable, empty, silent, non-finite or at an unusable rate."""


class UnknownNameError(BrainlikeError):
    """A model, dataset, task or protocol name that is not registered."""


class ModelError(BrainlikeError):
    """A model misbehaves (bad shapes, non-finite outputs, weights that do not match)."""


class PretrainError(BrainlikeError):
    """Bad pretraining configuration, corpus, or checkpoint (also raised by the ``mae`` model family)."""


class ProtocolError(BrainlikeError):
    """An alignment protocol cannot run on the given data (e.g. too few stimuli for the folds)."""
