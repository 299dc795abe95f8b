"""Stimuli, neural datasets (registered, voxel archives, bring-your-own files) and sha256-verified downloads."""

__all__ = ["audio", "custom", "datasets", "fetch", "neural", "simulate", "stimuli", "voxels"]

