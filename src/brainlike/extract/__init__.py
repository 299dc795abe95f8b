"""Running models over stimuli, time pooling, and the activation cache.

The subpackage is also callable: ``brainlike.extract(model, stimuli)`` is :func:`brainlike.api.extract`.
"""

from brainlike import _make_callable
from brainlike.extract.extractor import (Activations, embed_clips, embedding_cache_state, extract_activations,
                                         model_key_parts)

__all__ = ["Activations", "embed_clips", "embedding_cache_state", "extract_activations", "model_key_parts"]

_make_callable(__name__)
