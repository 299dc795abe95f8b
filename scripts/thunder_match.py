"""Is the megaglest clip that matches stim368_thunder the same recording, or a chance fingerprint match?

Compares the fingerprint match of the corpus leakage check with waveform evidence, with controls. Needs the data
folder (BRAINLIKE_DATA) and the corpus packages (`brainlike corpus setup`). Prints JSON.

    BRAINLIKE_DATA=../shared/data python scripts/thunder_match.py

For each pair (stimulus, game clip): the fingerprint alignment with the lowest bit error rate; the normalised waveform
cross-correlation at that offset (best within +-20 ms) and over all lags; the correlation in 250 ms segments; a
128-tap filter fitted from the stimulus to the clip on the first second and tested on the second (held-out R^2).
Positive control: the lincity duck quack against stim138. Negative controls: stim368 against every other megaglest
common sound that is not an ``archmage_attack`` (the spell family), and every other stimulus against the clip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import signal

from brainlike.config import data_root
from brainlike.data.audio import read_audio, resample
from brainlike.pretrain import corpus as C

RATE = 16000
STIMULI = data_root() / "natsound165" / "stimuli" / "wav"
SOUNDS = Path("/usr/share/games/megaglest/techs/megapack/commondata/sounds")
QUACK = Path("/usr/share/games/lincity-ng/sounds/ParklandLake2.wav")


def load(path: Path) -> np.ndarray:
    waveform, rate = read_audio(path, allow_silent=True)
    return resample(waveform, rate, RATE, method="soxr").astype(np.float64)


def fingerprint_alignment(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(lowest bit error rate over >= 1 s overlaps, offset in samples of b's start into a)."""
    fa, fb = C.fingerprint(a, RATE), C.fingerprint(b, RATE)
    best = (1.0, 0)
    for offset in range(-len(fb) + C.MIN_OVERLAP, len(fa) - C.MIN_OVERLAP + 1):
        qa, qb = max(0, offset), max(0, -offset)
        n = min(len(fa) - qa, len(fb) - qb)
        x, y = fa[qa:qa + n], fb[qb:qb + n]
        keep = (x != 0) | (y != 0)
        if keep.sum() >= C.MIN_OVERLAP:
            best = min(best, (C.bit_error_rate(x[keep], y[keep]), offset))
    return best[0], int(round(best[1] * C.FP_HOP * RATE / C.FP_RATE))


def overlap(a: np.ndarray, b: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The overlapping parts when b starts ``lag`` samples into a (negative: a starts into b)."""
    a, b = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
    n = min(len(a), len(b))
    return a[:n], b[:n]


def corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y) + 1e-30))


def held_out_filter_r2(source: np.ndarray, target: np.ndarray, taps: int = 128) -> float:
    design = np.stack([np.concatenate([np.zeros(k), source[: len(source) - k]]) for k in range(taps)], axis=1)
    half = len(source) // 2
    weights, *_ = np.linalg.lstsq(design[:half], target[:half], rcond=None)
    residual = target[half:] - design[half:] @ weights
    return float(1 - residual @ residual / np.sum((target[half:] - target[half:].mean()) ** 2))


def compare(stimulus: np.ndarray, clip: np.ndarray, detail: bool = False) -> dict:
    ber, lag = fingerprint_alignment(stimulus, clip)
    near = max(range(lag - 320, lag + 321), key=lambda l: abs(corr(*overlap(stimulus, clip, l))))
    out = {"fingerprint_ber": round(ber, 3), "offset_s": round(near / RATE, 4),
           "waveform_r": round(corr(*overlap(stimulus, clip, near)), 3)}
    if detail:
        full = signal.correlate(clip, stimulus, mode="full", method="fft")
        lags = signal.correlation_lags(len(clip), len(stimulus), mode="full")
        x, y = overlap(stimulus, clip, near)
        segment = RATE // 4
        out.update({
            "xcorr_peak_lag_s": round(-float(lags[np.argmax(np.abs(full))]) / RATE, 4),
            "waveform_r_1ms_away": [round(corr(*overlap(stimulus, clip, near + d)), 3) for d in (-16, 16)],
            "segment_r_250ms": [round(corr(x[k:k + segment], y[k:k + segment]), 2)
                                for k in range(0, len(x) - segment + 1, segment)],
            "segment_rms_ratio": [round(float(np.std(y[k:k + segment]) / np.std(x[k:k + segment])), 1)
                                  for k in range(0, len(x) - segment + 1, segment)],
            "filter_r2_held_out": round(held_out_filter_r2(x, y), 3)})
    return out


def main() -> None:
    thunder, quack = load(STIMULI / "stim368_thunder.wav"), load(STIMULI / "stim138_duck_quack.wav")
    clip = load(SOUNDS / "archmage_attack3.wav")
    report = {"stim368 vs archmage_attack3": compare(thunder, clip, detail=True),
              "stim138 vs lincity ParklandLake2 (positive control)": compare(quack, load(QUACK), detail=True),
              "stim368 vs the archmage_attack family": {
                  p.name: compare(thunder, load(p), detail=True)
                  for p in sorted(SOUNDS.glob("archmage_attack*.wav")) if p.name != "archmage_attack3.wav"}}
    x, y = overlap(thunder, clip, int(round(report["stim368 vs archmage_attack3"]["offset_s"] * RATE)))
    report["filter_r2_from_other_stimuli (control)"] = {
        name: round(held_out_filter_r2(load(STIMULI / f"{name}.wav")[: len(y)], y), 3)
        for name in ("stim366_telephone_ringing", "stim117_dog_drinking")}
    others = [compare(thunder, load(p)) for p in sorted(SOUNDS.glob("*.wav"))
              if not p.name.startswith("archmage_attack") and len(load(p)) >= RATE]
    stimuli = [compare(load(p), clip) for p in sorted(STIMULI.glob("*.wav")) if p.name != "stim368_thunder.wav"]
    for name, rows in (("stim368 vs other megaglest common sounds (control)", others),
                       ("other stimuli vs archmage_attack3 (control)", stimuli)):
        bers, rs = [r["fingerprint_ber"] for r in rows], [abs(r["waveform_r"]) for r in rows]
        report[name] = {"n": len(rows), "median_ber": float(np.median(bers)), "lowest_ber": float(min(bers)),
                        "median_abs_waveform_r": float(np.median(rs)), "highest_abs_waveform_r": float(max(rs))}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
