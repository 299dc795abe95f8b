"""tuckute2023: brainlike's batched engine against a literal per-voxel implementation of the original code (issue 18).

On a ``brainlike simulate`` dataset with melspec activations, in ONE run and with the same splits:

* brainlike's engine (numpy float64, and torch float32 on CPU or CUDA),
* the literal loop of ``tests/core/tuckute_literal.py`` (one scikit-learn RidgeCV per voxel, split, layer and
  response set, alphas from 1e49 down; the original's r = 0 / NaN rules; select_r2_test_CV_splits_nit),

and prints the time ratio, the per-split agreement (corrected R2 where the original's alpha is below 1e15, r = 0
above it) and the aggregate scores (median over voxels per pseudo-subject and iteration, mean over iterations and
subjects).

    OMP_NUM_THREADS=1 python benchmarks/bench_tuckute2023.py --voxels 60 --subjects 2 --reps 3 --seed 0 [--device cuda]

``--b2021-targets N`` also times the engine alone (torch float32 on ``--device``) on bench_ridge.py's B2021-sized
problem (165 x N targets x 3 simulated repetitions, 13 layers x 768 random features) and the original's split-half
draws (sequential, on the host) for it; ``--draws-only N`` times only those draws for N targets (no engine run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def load_problem(voxels: int, subjects: int, reps: int, seed: int, model: str):
    """Simulated responses (165, voxels, reps), their pseudo-subjects, and the model's layers (natsound165 order)."""
    from brainlike.api import extract
    from brainlike.data.datasets import load_dataset
    from brainlike.data.simulate import write_simulation
    from brainlike.data.stimuli import load_stimulus_set

    stimuli = load_stimulus_set("natsound165")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_simulation(Path(tmp) / "sim.nc", n_voxels=voxels, n_subjects=subjects, n_reps=reps, seed=seed)
        dataset = load_dataset(str(path)).align_to(stimuli.ids)
    activations = extract(model, stimuli, progress=False)
    subject_labels = np.asarray(dataset.target_coord("subject")).astype(str)
    return np.asarray(dataset.responses.values), subject_labels, [activations.arrays[n] for n in activations.layers]


def timed(function, *args):
    start = time.perf_counter()
    out = function(*args)
    return time.perf_counter() - start, out


def timed_cpu(function, *args):
    """Wall seconds, CPU seconds of this process (less sensitive to other jobs on a shared machine), result."""
    start_cpu = time.process_time()
    wall, out = timed(function, *args)
    return wall, time.process_time() - start_cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=60)
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="melspec")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--b2021-targets", type=int, default=0)
    parser.add_argument("--draws-only", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.draws_only:
        time_draws(args.draws_only)
        return

    import tuckute_literal as literal

    from brainlike.align.backend import NumpyBackend, TorchBackend
    from brainlike.align.ridge import gram_matrix
    from brainlike.align.tuckute2023 import make_splits, run_tuckute2023

    responses, subjects, layers = load_problem(args.voxels, args.subjects, args.reps, args.seed, args.model)
    print(f"problem: {responses.shape[1]} voxels x {responses.shape[2]} reps, {args.model} "
          f"({len(layers)} layers: {', '.join(str(x.shape[1]) for x in layers)} features), 10 splits")

    def engine(backend):
        return run_tuckute2023([gram_matrix(x) for x in layers], responses, backend)

    engine(NumpyBackend())  # warm-up (imports, BLAS)
    t_engine, cpu_engine, result = timed_cpu(engine, NumpyBackend())
    t_torch, cpu_torch, result32 = timed_cpu(engine, TorchBackend(args.device, "float32"))
    t_literal, cpu_literal, reference = timed_cpu(literal.run_literal, layers, responses, make_splits(165))
    values, chosen = literal.split_half(reference["corrected"])

    finite = reference["alpha"] < literal.INTERCEPT_ONLY_ALPHA
    decidable = reference["alpha_min"] >= 1e-8
    compared = finite & decidable
    print(f"time: engine numpy float64 {t_engine:.2f} s, torch float32 {args.device} {t_torch:.2f} s, "
          f"literal loop {t_literal:.1f} s; literal / engine = {t_literal / t_engine:.0f}x "
          f"(/ torch float32: {t_literal / t_torch:.0f}x)")
    print(f"CPU time of this process: engine numpy float64 {cpu_engine:.2f} s, torch float32 {cpu_torch:.2f} s, "
          f"literal loop {cpu_literal:.1f} s; literal / engine = {cpu_literal / cpu_engine:.0f}x "
          f"(/ torch float32: {cpu_literal / cpu_torch:.0f}x)")
    print(f"cells (split x layer x voxel): {finite.size}; original's alpha >= 1e15 (tie with the intercept-only "
          f"limit): {(~finite).sum()}, engine alpha there: {np.unique(result['alpha'][~finite])}, engine raw R2 "
          f"there: max {result['raw'][~finite].max():.1f}")
    print(f"cells where one of scikit-learn's fits chose an alpha below 1e-8 (its float64 LOO errors are rounding "
          f"there): {(~decidable).sum()}, max |corrected diff| in them {np.abs(result['corrected'] - reference['corrected'])[~decidable].max() if (~decidable).any() else 0:.3g}")
    print(f"per-split corrected R2, alpha < 1e15 ({compared.sum()} cells): max |diff| "
          f"{np.abs(result['corrected'] - reference['corrected'])[compared].max():.2e}; raw "
          f"{np.abs(result['raw'] - reference['raw'])[compared].max():.2e}; alphas equal "
          f"{np.mean(result['alpha'][compared] == reference['alpha'][compared]):.1%}")
    score, score_ref = literal.aggregate(result["values"], subjects), literal.aggregate(values, subjects)
    score32 = literal.aggregate(result32["values"], subjects)
    print(f"aggregate: engine {score:.12f}, literal {score_ref:.12f}, |diff| {abs(score - score_ref):.2e}; "
          f"layers chosen equal {np.mean(result['layers'] == chosen):.1%}; torch float32 {score32:.9f} "
          f"(|diff| {abs(score32 - score):.1e})")
    if args.b2021_targets:
        time_b2021(args.b2021_targets, args.device)


def time_b2021(n_targets: int, device: str) -> None:
    from bench_ridge import make_problem

    from brainlike.align.backend import TorchBackend
    from brainlike.align.ridge import gram_matrix
    from brainlike.align.tuckute2023 import run_tuckute2023, split_half_assignments

    layers, responses, _ = make_problem(n_targets)
    reps = responses[:, :, None] + np.random.default_rng(1).standard_normal(responses.shape + (3,))
    grams = [gram_matrix(x) for x in layers]
    elapsed, _ = timed(run_tuckute2023, grams, reps, TorchBackend(device, "float32"))
    draws, _ = timed(split_half_assignments, len(layers), n_targets)
    print(f"B2021-sized tuckute2023 ({n_targets} targets x 3 reps, {len(layers)} layers x 768): torch float32 "
          f"{device} {elapsed:.1f} s, of which the original's split-half draws (host, sequential) {draws:.1f} s")


def time_draws(n_targets: int, n_layers: int = 13) -> None:
    from brainlike.align.tuckute2023 import N_ITERATIONS, split_half_assignments

    elapsed, cpu, _ = timed_cpu(split_half_assignments, n_layers, n_targets)
    print(f"the original's split-half draws for {n_targets} targets x {n_layers} layers x {N_ITERATIONS} iterations "
          f"({n_targets * n_layers * N_ITERATIONS:,} legacy shuffles, host, sequential): {elapsed:.1f} s wall, "
          f"{cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
