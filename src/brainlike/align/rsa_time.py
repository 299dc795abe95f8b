"""Time-resolved RSA (methods.md section 9): at each response bin, the neural RDM (pattern over the targets)
against each layer's RDM in the same bin -> rho(b), and against the layer's time-averaged RDM.

RDMs and their comparison are those of :mod:`brainlike.align.rsa` (1 - Pearson after z-scoring each feature across
stimuli; Spearman over the upper triangle). A bin where an RDM is undefined (every stimulus gives the same pattern,
e.g. a model's identical output to the silence after every sound) gets NaN.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from brainlike.align import aggregate as agg
from brainlike.align.rsa import rdm, spearman_upper
from brainlike.align.trf import WINDOW, FrameLayers, response_frames
from brainlike.errors import ProtocolError

__all__ = ["time_resolved_rsa", "rsa_time_records"]


def _rdm_or_none(features: np.ndarray) -> np.ndarray | None:
    try:
        return rdm(features)
    except ProtocolError:
        return None


def _rho(a: np.ndarray | None, b: np.ndarray | None) -> float:
    return np.nan if a is None or b is None else spearman_upper(a, b)


def time_resolved_rsa(features: list[np.ndarray], frame_times: np.ndarray, responses: np.ndarray,
                      times: np.ndarray, rate: float, window: tuple[float, float] = WINDOW
                      ) -> tuple[np.ndarray, np.ndarray]:
    """rho(b) of every layer's per-bin RDM and of its time-averaged RDM with the neural RDM of each bin.

    Parameters
    ----------
    features : list of ndarray (n_stimuli, n_frame_bins, n_features)
    frame_times : ndarray (n_frame_bins,)
    responses : ndarray (n_stimuli, n_bins, n_targets)
    times : ndarray (n_bins,)
        Response bin starts (among the frame bins).
    window : (float, float)
        Bins averaged for the layer's time-averaged RDM (start <= t < stop).

    Returns
    -------
    rho, rho_averaged : ndarray (n_layers, n_bins)
    """
    index = response_frames(frame_times, times, rate, np.array([0]))
    in_window = (np.asarray(times) >= window[0] - 1e-9) & (np.asarray(times) < window[1] - 1e-9)
    if not in_window.any():
        raise ProtocolError(f"no response bin in the window {window[0]:g}:{window[1]:g} s")
    neural = [_rdm_or_none(responses[:, b, :]) for b in range(responses.shape[1])]
    rho = np.full((len(features), len(times)), np.nan)
    rho_averaged = np.full_like(rho, np.nan)
    for li, layer in enumerate(features):
        averaged = _rdm_or_none(np.asarray(layer[:, index[in_window], :], dtype=np.float64).mean(axis=1))
        for b, frame in enumerate(index):
            rho[li, b] = _rho(_rdm_or_none(np.asarray(layer[:, frame, :], dtype=np.float64)), neural[b])
            rho_averaged[li, b] = _rho(averaged, neural[b])
    return rho, rho_averaged


def rsa_time_records(frames, dataset, *, rate: float, window: tuple[float, float] = WINDOW,
                     protocol: str = "trf") -> tuple[list[dict[str, Any]], xr.Dataset]:
    """Records and detail of time-resolved RSA for one model.

    The ``layer-max`` record's ``score`` is the largest, over layers, mean of rho(b) over the window's bins; its
    ``score_time_averaged_rdm`` the same for the layer's time-averaged RDM. Curves go to the detail (``rsa_rho``,
    ``rsa_rho_averaged``: layer x time).
    """
    times = np.asarray(dataset.times, dtype=np.float64)
    rho, rho_averaged = time_resolved_rsa(FrameLayers(frames), frames.bin_times,
                                          dataset.mean_time_courses(), times, rate, window)
    in_window = (times >= window[0] - 1e-9) & (times < window[1] - 1e-9)
    with warnings.catch_warnings():  # a layer whose RDM is undefined in every bin: NaN, said by the NaN itself
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(rho[:, in_window], axis=1)
        means_averaged = np.nanmean(rho_averaged[:, in_window], axis=1)
    best = int(np.nanargmax(np.nan_to_num(means, nan=-np.inf)))
    record = agg.base_record(
        model=frames.model, dataset=dataset.name, metric="rsa", protocol=protocol, selection="layer-max",
        score=float(means[best]), layer=frames.layers[best], n_targets=dataset.n_targets,
        window=f"{window[0]:g}:{window[1]:g}", rate=rate,
        score_time_averaged_rdm=float(np.nanmax(means_averaged)) if np.isfinite(means_averaged).any() else None,
        layer_scores={layer: float(v) for layer, v in zip(frames.layers, means)})
    detail = xr.Dataset({"rsa_rho": (("layer", "time"), rho), "rsa_rho_averaged": (("layer", "time"), rho_averaged)},
                        coords={"layer": list(frames.layers), "time": times})
    return [agg.clean(record)], detail
