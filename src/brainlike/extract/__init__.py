"""Running models over stimuli, time pooling, and the activation cache."""

from brainlike.extract.extractor import (Activations, embed_clips, embedding_cache_state, extract_activations,
                                         model_key_parts)

__all__ = ["Activations", "embed_clips", "embedding_cache_state", "extract_activations", "model_key_parts"]
