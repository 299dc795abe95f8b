"""brainlike: how brain-like is an audio model, layer by layer?"""

from __future__ import annotations

__version__ = "0.1.0"
