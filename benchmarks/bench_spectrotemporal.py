"""Spectrotemporal baseline benchmark (issue 2, point 4; spectrotemporal.md).

Times, on the NH2015 sounds (``BRAINLIKE_DATA``), in ONE run:

* the cochleagram front end (211 x 390 per 2-s sound);
* the 111-filter bank by each route, single-threaded, on one sound (best of ``--repeats``) and on all sounds:
  ``fft2`` (the reference: full complex fft2/ifft2 per filter), ``rfft2`` (half plane, rfft2/irfft2) and
  ``factorised`` (the default: half plane, spectral axis shared per scale and direction);
* the whole model (``load_model("spectrotemporal")`` on 20-kHz waveforms, batches of 8, torch's thread count);

and prints the times, the ratios to ``fft2`` and the largest relative difference of each route from ``fft2``.
CPU seconds (``time.process_time``) are the figure to compare on a shared machine; wall seconds are printed too.

    python benchmarks/bench_spectrotemporal.py [--sounds 165] [--repeats 3] [--routes fft2,rfft2,factorised]
                                               [--slow-sounds N]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """Run ``fn`` once; return (result, CPU seconds of this process, wall seconds)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sounds", type=int, default=165, help="how many NH2015 sounds (default all 165)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the single-sound timings (best kept)")
    parser.add_argument("--routes", default="fft2,rfft2,factorised", help="routes to time on all sounds")
    parser.add_argument("--slow-sounds", type=int, default=None,
                        help="time fft2 and rfft2 on only the first N sounds (default: all; they take minutes)")
    args = parser.parse_args()

    import torch

    from brainlike.data.stimuli import load_stimulus_set
    from brainlike.models import cochleagram as coch
    from brainlike.models import spectrotemporal as st
    from brainlike.models.registry import load_model

    stimuli = load_stimulus_set("natsound165")
    raw = np.stack(stimuli.waveforms(coch.SAMPLE_RATE)[: args.sounds])
    prepared = st.prepare_waveforms(raw)
    n = len(prepared)
    threads = torch.get_num_threads()
    print(f"{n} sounds; torch {torch.__version__}, {threads} threads; routes timed single-threaded")

    with st.torch_threads(1):
        coch.cochleagram(prepared[:1])  # build and cache the filterbank before timing
        st.spectrotemporal_features(coch.cochleagram(prepared[:1]))
        cochleagrams, cpu, wall = timed(lambda: np.concatenate([coch.cochleagram(x[None]) for x in prepared]))
        print(f"cochleagram: {cpu:8.2f} s CPU {wall:8.2f} s wall  ({cpu / n:.3f} s CPU per sound)", flush=True)

        single: dict[str, float] = {}
        for route in st.ROUTES:
            runs = [timed(lambda: st.spectrotemporal_features(cochleagrams[:1], route=route))
                    for _ in range(args.repeats)]
            single[route] = min(r[1] for r in runs)
            print(f"one sound, {route:10s}: {single[route]:8.3f} s CPU {min(r[2] for r in runs):8.3f} s wall",
                  flush=True)

        routes = [r for r in args.routes.split(",") if r]
        results: dict[str, tuple[np.ndarray, float, float]] = {}
        for route in routes:
            subset = cochleagrams[: args.slow_sounds] if route in ("fft2", "rfft2") else cochleagrams
            results[route] = timed(lambda: np.concatenate(
                [st.spectrotemporal_features(c[None], route=route) for c in subset]))
            features, cpu, wall = results[route]
            print(f"{len(features)} sounds, {route:10s}: {cpu:8.2f} s CPU {wall:8.2f} s wall "
                  f"({cpu / len(features):.3f} s CPU per sound)", flush=True)

    model = load_model("spectrotemporal")
    _, cpu, wall = timed(lambda: [model(raw[i:i + 8]) for i in range(0, n, 8)])
    print(f"whole model, {n} sounds ({threads} threads): {cpu:8.2f} s CPU {wall:8.2f} s wall")

    print("\nratio to fft2 (CPU time; < 0.5 = under half the cost):")
    per_sound = {route: cpu / len(features) for route, (features, cpu, _) in results.items()}
    for route in ("rfft2", "factorised"):
        line = f"  {route:10s} one sound {single[route] / single['fft2']:.3f}"
        if route in per_sound and "fft2" in per_sound:
            line += f"   per sound over the runs above {per_sound[route] / per_sound['fft2']:.3f}"
        print(line)
    if "fft2" in results:
        reference = results["fft2"][0]
        for route in routes:
            if route != "fft2":
                diff = np.max(np.abs(results[route][0][: len(reference)] - reference) / reference)
                print(f"  max relative difference {route} vs fft2 over {len(reference)} sounds: {diff:.2e}")


if __name__ == "__main__":
    main()
