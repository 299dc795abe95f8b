"""Torch network definitions (``nn.Module`` classes at module level), one module per model family.

The adapter modules of :mod:`brainlike.models` (imported by the registry to list models, so kept free of torch at
import time) import these only when a model is built. :func:`brainlike.models.registry.discover` skips this package.
"""

__all__ = ["aisfx", "beats", "cochnets", "crepe", "dasheng", "encodecmae", "fcpe", "mae", "pesto", "resemblyzer",
           "silero_vad", "soundnet", "vggish", "whisper", "yamnet"]
