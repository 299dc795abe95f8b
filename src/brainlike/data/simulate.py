"""``brainlike simulate``: a realistic synthetic voxel dataset from the real NH2015 components.

Each synthetic voxel's true response is the real component responses R (165 x 6) times the real voxel weights W
(6 x 11,065) of ``components.mat``; each repetition adds independent Gaussian noise whose variance sets the chosen
single-repetition reliability rho (signal variance / (signal + noise variance)), so the expected test-retest
correlation between two repetitions is rho. The weight voxels carry no subject labels: brainlike assigns
pseudo-subjects by cutting the voxel list into ``n_subjects`` contiguous blocks (voxel order of the file), and a
pseudo-ROI per voxel = the component with the largest absolute weight. The file is labelled ``synthetic = 1``.

The true noise ceiling of each voxel is stored with it (per-target coordinates): ``signal_variance`` (the variance of
its true response over the sounds, ddof 1), ``noise_variance`` (of one repetition) and ``true_ceiling`` =
signal_variance / (signal_variance + noise_variance / n_reps), the fraction of the variance of the n_reps-repetition
mean that is signal: the R2 a perfect model of the mean would reach in expectation (its square root bounds r). It
equals the Spearman-Brown extension of the single-repetition reliability to n_reps repetitions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from brainlike.data.neural import load_nh2015_components
from brainlike.data.stimuli import load_natsound165
from brainlike.errors import BrainlikeError


def simulate_voxels(n_voxels: int | None = None, n_subjects: int = 8, reliability: float = 0.5, n_reps: int = 3,
                    seed: int = 0) -> xr.Dataset:
    """Synthetic voxel responses (stimulus, target, repetition) aligned to natsound165 (ascending id)."""
    import scipy.io

    if not 0 < reliability < 1:
        raise BrainlikeError("reliability must be between 0 and 1 (exclusive)")
    components = load_nh2015_components()
    stimuli = load_natsound165()
    aligned = components.align_to(stimuli.ids)
    from brainlike.config import data_root

    weights = np.asarray(scipy.io.loadmat(str(data_root() / "nh2015_components" / "components.mat"))["W"])
    rng = np.random.default_rng(seed)
    total = weights.shape[1]
    chosen = np.arange(total) if n_voxels is None else np.sort(rng.choice(total, size=n_voxels, replace=False))
    signal = aligned.mean_responses() @ weights[:, chosen]  # (165, v)
    noise_sd = np.sqrt(signal.var(axis=0) * (1 - reliability) / reliability)
    signal_variance = signal.var(axis=0, ddof=1)
    true_ceiling = signal_variance / (signal_variance + noise_sd ** 2 / n_reps)
    responses = signal[:, :, None] + rng.standard_normal(signal.shape + (n_reps,)) * noise_sd[None, :, None]
    subjects = np.array([f"pseudo{1 + int(i * n_subjects / total)}" for i in chosen])
    roi = np.array(aligned.target_names)[np.argmax(np.abs(weights[:, chosen]), axis=0)]
    array = xr.DataArray(responses, dims=("stimulus", "target", "repetition"),
                         coords={"stimulus": stimuli.ids, "target": [f"v{i}" for i in chosen],
                                 "repetition": np.arange(n_reps), "subject": ("target", subjects),
                                 "roi": ("target", roi), "signal_variance": ("target", signal_variance),
                                 "noise_variance": ("target", noise_sd ** 2),
                                 "true_ceiling": ("target", true_ceiling)}, name="responses")
    return xr.Dataset({"responses": array}, attrs={
        "stimulus_set": "natsound165", "kind": "voxels", "synthetic": 1, "reliability": reliability, "seed": seed,
        "description": "SYNTHETIC voxels: real NH2015 component responses x real voxel weights + Gaussian noise; "
                       "pseudo-subjects are contiguous blocks of the weight voxels, pseudo-ROI = dominant component"})


def write_simulation(path: str | Path, **kwargs) -> Path:
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    simulate_voxels(**kwargs).to_netcdf(path, engine="h5netcdf")
    return path
