"""Model validator: does a model follow the brainlike model protocol?

:func:`validate_model` runs a model on a small fixed batch of synthetic clips (a tone, a chirp, noise; 2 s by
default) and checks, in order:

``sample_rate``      an integer between 1,000 and 384,000 Hz;
``layers``           a non-empty list of unique, non-empty strings;
``runs``             a call on the batch returns every layer as a (batch, time >= 1, features >= 1) array;
``finite``           no NaN or Inf in any layer;
``stable-shapes``    a second call on the same batch gives the same shapes;
``deterministic``    and the same values (within tolerance);
``batch-invariant``  each clip run alone gives the same activations as its row in the batch (within tolerance);
``input-dependent``  at least one layer differs between different clips (a constant model scores nothing).

Tolerances: two arrays ``a`` (reference) and ``b`` agree when ``max|a - b| <= atol + rtol * max|a|`` (per layer);
defaults ``atol = 1e-5``, ``rtol = 1e-4`` for determinism and ``rtol = 1e-3`` for batch invariance (batched BLAS
kernels reorder float32 sums). Checks after a failing ``runs`` are reported as skipped (failed). A report is
returned, nothing is raised for a misbehaving model; errors building the model propagate (they are user errors).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from brainlike.errors import BrainlikeError
from brainlike.models.base import AudioModel

__all__ = ["MIN_RATE", "MAX_RATE", "Check", "ValidationReport", "synthetic_clips", "validate_model"]

MIN_RATE, MAX_RATE = 1_000, 384_000


@dataclass
class Check:
    """One validator check: its name, whether it passed and a one-line detail."""

    name: str
    passed: bool
    detail: str


@dataclass
class ValidationReport:
    """The result of :func:`validate_model`."""

    model: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(check.passed for check in self.checks)

    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"model": self.model, "ok": self.ok, "seconds": round(self.seconds, 3),
                "checks": [asdict(check) for check in self.checks]}

    def format(self) -> str:
        """One line per check (``PASS``/``FAIL``), then a summary line."""
        width = max((len(check.name) for check in self.checks), default=0)
        lines = [f"{'PASS' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.detail}" for c in self.checks]
        verdict = "all checks passed" if self.ok else f"{len(self.failed())} of {len(self.checks)} checks failed"
        lines.append(f"{self.model}: {verdict} ({self.seconds:.1f} s)")
        return "\n".join(lines)


def synthetic_clips(sample_rate: int, seconds: float = 2.0, n: int = 3) -> np.ndarray:
    """``n`` fixed synthetic clips (440 Hz tone, 100 Hz-4 kHz chirp, white noise, ...), float32 (n, samples)."""
    samples = max(1, int(round(seconds * sample_rate)))
    t = np.arange(samples) / sample_rate
    top = min(4000.0, 0.4 * sample_rate)
    chirp_phase = 2 * np.pi * (100.0 * t + (top - 100.0) * t**2 / (2 * max(seconds, 1e-9)))
    rng = np.random.default_rng(0)
    makers: list[Callable[[], np.ndarray]] = [
        lambda: 0.3 * np.sin(2 * np.pi * 440.0 * t),
        lambda: 0.3 * np.sin(chirp_phase),
        lambda: 0.1 * rng.standard_normal(samples),
    ]
    clips = [makers[i % len(makers)]() * (1.0 + 0.25 * (i // len(makers))) for i in range(n)]
    return np.stack(clips).astype(np.float32)


def _agree(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> tuple[bool, float]:
    """Agreement with NaN == NaN (the ``finite`` check reports NaNs; here only differences count)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    same_nan = np.isnan(a) & np.isnan(b)
    if not a.size or same_nan.all():
        return True, 0.0
    if np.any(np.isnan(a) != np.isnan(b)):
        return False, float("inf")
    with np.errstate(invalid="ignore"):
        diff = float(np.max(np.where(same_nan | (a == b), 0.0, np.abs(a - b))))  # equal infinities agree
        scale = float(np.max(np.where(np.isfinite(a), np.abs(a), 0.0)))
    return diff <= atol + rtol * scale, diff


class _Validator:
    """Runs the checks in order, collecting them into a report."""

    def __init__(self, model: AudioModel, clips: np.ndarray, atol: float, rtol: float, batch_rtol: float) -> None:
        self.model, self.clips = model, clips
        self.atol, self.rtol, self.batch_rtol = atol, rtol, batch_rtol
        self.report = ValidationReport(model=getattr(model, "name", type(model).__name__) or type(model).__name__)

    def add(self, name: str, passed: bool, detail: str) -> bool:
        self.report.checks.append(Check(name, bool(passed), detail))
        return bool(passed)

    def call(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        return self.model(clips)

    def run(self) -> ValidationReport:
        start = time.perf_counter()
        rate_ok = self.check_sample_rate()
        layers_ok = self.check_layers()
        if not (rate_ok and layers_ok):
            self.add("runs", False, "skipped: fix the sample rate / layer names first")
        first = self.check_runs() if rate_ok and layers_ok else None
        if first is None:
            for name in ("finite", "stable-shapes", "deterministic", "batch-invariant", "input-dependent"):
                self.add(name, False, "skipped: the model did not run")
        else:
            self.check_finite(first)
            self.check_repeat(first)
            self.check_batch(first)
            self.check_input_dependent(first)
        self.report.seconds = time.perf_counter() - start
        return self.report

    def check_sample_rate(self) -> bool:
        rate = getattr(self.model, "sample_rate", None)
        ok = isinstance(rate, (int, np.integer)) and not isinstance(rate, bool) and MIN_RATE <= rate <= MAX_RATE
        return self.add("sample_rate", ok, f"{rate!r} Hz" + ("" if ok else f" (want an int in {MIN_RATE}-{MAX_RATE})"))

    def check_layers(self) -> bool:
        layers = getattr(self.model, "layers", None)
        if not isinstance(layers, (list, tuple)) or not layers:
            return self.add("layers", False, f"layers must be a non-empty list, got {layers!r}")
        bad = [layer for layer in layers if not isinstance(layer, str) or not layer.strip()]
        duplicates = sorted({layer for layer in layers if isinstance(layer, str) and list(layers).count(layer) > 1})
        if bad or duplicates:
            return self.add("layers", False, f"empty or non-string names {bad!r}" if bad else
                            f"duplicate names {', '.join(duplicates)}")
        return self.add("layers", True, f"{len(layers)} unique names ({layers[0]} ... {layers[-1]})")

    def check_runs(self) -> dict[str, np.ndarray] | None:
        try:
            outputs = self.call(self.clips)
        except Exception as exc:  # any failure of the model itself is a failed check, not a crash
            self.add("runs", False, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
            return None
        problems = [f"{k}: {v.shape}" for k, v in outputs.items() if v.ndim != 3 or min(v.shape) < 1]
        if problems:
            self.add("runs", False, "bad shapes " + "; ".join(problems))
            return None
        shapes = {tuple(v.shape[1:]) for v in outputs.values()}
        self.add("runs", True, f"{len(outputs)} layers, (batch, time, features) e.g. "
                               f"{self.model.layers[-1]} {outputs[self.model.layers[-1]].shape}"
                               + (f"; {len(shapes)} distinct shapes" if len(shapes) > 1 else ""))
        return outputs

    def check_finite(self, outputs: dict[str, np.ndarray]) -> bool:
        bad = [k for k, v in outputs.items() if not np.all(np.isfinite(v))]
        return self.add("finite", not bad, "all values finite" if not bad else
                        f"NaN/Inf in {len(bad)} layer(s): {', '.join(bad[:5])}")

    def check_repeat(self, first: dict[str, np.ndarray]) -> None:
        try:
            second = self.call(self.clips)
        except Exception as exc:
            self.add("stable-shapes", False, f"second call failed: {type(exc).__name__}: {exc}")
            self.add("deterministic", False, "second call failed")
            return
        changed = [f"{k}: {first[k].shape} -> {second[k].shape}" for k in first if second[k].shape != first[k].shape]
        self.add("stable-shapes", not changed, "same shapes on a second call" if not changed else "; ".join(changed[:3]))
        worst, failing = 0.0, []
        for k in first:
            if second[k].shape != first[k].shape:
                failing.append(k)
                continue
            ok, diff = _agree(first[k], second[k], self.atol, self.rtol)
            worst = max(worst, diff)
            if not ok:
                failing.append(k)
        self.add("deterministic", not failing, f"max |diff| {worst:.3g} between two calls" if not failing else
                 f"{len(failing)} layer(s) differ between two calls ({', '.join(failing[:5])}); max |diff| {worst:.3g}")

    def check_batch(self, batched: dict[str, np.ndarray]) -> None:
        worst, failing = 0.0, []
        try:
            singles = [self.call(self.clips[i: i + 1]) for i in range(len(self.clips))]
        except Exception as exc:
            self.add("batch-invariant", False, f"one-clip call failed: {type(exc).__name__}: {exc}")
            return
        for k in batched:
            alone = [s[k] for s in singles]
            if any(a.shape[1:] != batched[k].shape[1:] for a in alone):
                failing.append(f"{k} (shape {alone[0].shape[1:]} alone vs {batched[k].shape[1:]} batched)")
                continue
            for i, a in enumerate(alone):
                ok, diff = _agree(a[0], batched[k][i], self.atol, self.batch_rtol)
                worst = max(worst, diff)
                if not ok:
                    failing.append(k)
                    break
        self.add("batch-invariant", not failing,
                 f"{len(self.clips)} clips alone == batched, max |diff| {worst:.3g}" if not failing else
                 f"{len(failing)} layer(s) depend on the batch: {', '.join(failing[:5])}; max |diff| {worst:.3g}")

    def check_input_dependent(self, outputs: dict[str, np.ndarray]) -> bool:
        varying = [k for k, v in outputs.items() if len(v) > 1 and not np.allclose(v[0], v[1:], rtol=0, atol=1e-7)]
        return self.add("input-dependent", bool(varying),
                        f"{len(varying)} of {len(outputs)} layers differ between clips" if varying else
                        "every layer gives the same output for different clips")


def validate_model(model: AudioModel | str, *, seconds: float = 2.0, n_clips: int = 3, atol: float = 1e-5,
                   rtol: float = 1e-4, batch_rtol: float = 1e-3) -> ValidationReport:
    """Check that a model follows the brainlike model protocol.

    Parameters
    ----------
    model : AudioModel or str
        A model, or a spec string loaded with :func:`brainlike.models.registry.load_model`.
    seconds : float
        Length of the synthetic test clips.
    n_clips : int
        Batch size of the test batch (>= 2).
    atol, rtol : float
        Tolerance of the determinism check (see module docstring).
    batch_rtol : float
        Relative tolerance of the batch-invariance check.

    Returns
    -------
    ValidationReport
        ``report.ok`` is True when every check passed; ``report.format()`` prints it.
    """
    if n_clips < 2:
        raise BrainlikeError(f"the validator needs at least 2 clips, got {n_clips}")
    if seconds <= 0:
        raise BrainlikeError(f"test clips must be longer than 0 s, got {seconds}")
    if isinstance(model, str):
        from brainlike.models.registry import load_model

        model = load_model(model)
    rate = getattr(model, "sample_rate", 0)
    clip_rate = int(rate) if isinstance(rate, (int, np.integer)) and MIN_RATE <= rate <= MAX_RATE else 16000
    clips = synthetic_clips(clip_rate, seconds, n_clips)
    return _Validator(model, clips, atol, rtol, batch_rtol).run()
