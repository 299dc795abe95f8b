"""Calibration and power of ``brainlike compare`` (issue 16, point 3), measured on simulations in ONE run.

Not a speed benchmark: the false-positive rate at 0.05 and the power of the prediction-swap permutation test
(:func:`brainlike.align.compare.compare_pair`), with the simulations of ``tests/core/compare_sim.py``:

* ``predictions``: each model's out-of-fold predictions carry the signal with strength c plus independent noise
  (the null the test addresses: the two sets of predictions are equally accurate);
* ``refits p=K``: each model has K independent noisy features carrying the same signal, and its out-of-fold
  predictions come from ridge regressions refitted on each of 5 folds. The fitted weights differ between the two
  models by chance, a real difference of the fitted predictors that a per-sound swap does not treat as noise:
  the rate grows with K.

    OMP_NUM_THREADS=1 python benchmarks/compare_calibration.py [--sims 1000] [--refit-sims 4000] [--permutations 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))

from compare_sim import p_values, population_r2, simulate_predictions, simulate_refits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--refit-sims", type=int, default=4000, help="simulations per refit row (rates near 0.05 "
                        "need many: the binomial SD of a rate over 1,000 simulations is 0.007)")
    parser.add_argument("--permutations", type=int, default=1000)
    args = parser.parse_args()
    print(f"{args.sims} simulations, {args.permutations} permutations each, 165 sounds")
    print("| null | false-positive rate at 0.05 | at 0.01 |\n|---|---|---|")
    y, a, b = simulate_predictions(args.sims, 1.0, 1.0, seed=2024)
    p = p_values(y, a, b, args.permutations, seed=2024)
    print(f"| predictions (equal signal, independent noise) | {np.mean(p < 0.05):.3f} | {np.mean(p < 0.01):.3f} |")
    for features in (1, 4, 16):
        y, a, b = simulate_refits(args.refit_sims, 1.0, 1.0, seed=features, n_features=features)
        p = p_values(y, a, b, args.permutations, seed=features)
        print(f"| refits p={features} (ridge per fold, {args.refit_sims} simulations) | {np.mean(p < 0.05):.3f} | "
              f"{np.mean(p < 0.01):.3f} |")
    print("\n| planted difference (population R2 A vs B) | power at 0.05 |\n|---|---|")
    for strength in (1.5, 2.0, 3.0):
        y, a, b = simulate_predictions(args.sims // 2, strength, 1.0, seed=7)
        p = p_values(y, a, b, args.permutations, seed=7)
        print(f"| {population_r2(strength):.3f} vs {population_r2(1.0):.3f} (+{population_r2(strength) - 0.25:.3f})"
              f" | {np.mean(p < 0.05):.3f} |")


if __name__ == "__main__":
    main()
