"""Executors: where the units of a study run.

``local`` runs units in this process (one worker) or in a pool of local processes (several workers); ``ray`` runs each
unit as a Ray task with CPU/GPU resource requests, on a local Ray instance or on a cluster (``address``). Every
executor yields unit results as they finish, so the caller can store each one at once (resumable studies); workers
share the activation cache through ``BRAINLIKE_CACHE`` (on a cluster: a shared file system).

All executors have the same interface::

    with make_executor("local", workers=2) as runner:
        for result in runner.map(fn, items, env={...}):
            ...

``fn`` must be a module-level function (it crosses process boundaries) taking ``(item, env)``.
"""

from __future__ import annotations

import logging
import os
import sys
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Mapping

from brainlike.errors import BrainlikeError

__all__ = ["UnitFn", "ExecutorError", "UnitFailures", "Executor", "make_executor", "LocalExecutor", "RayExecutor"]

log = logging.getLogger(__name__)

UnitFn = Callable[[Any, Mapping[str, str]], Mapping[str, Any]]


class ExecutorError(BrainlikeError):
    """An executor cannot start, or units failed on it."""


class UnitFailures(ExecutorError):
    """Some units raised; the others finished and were yielded (and stored by the caller)."""

    def __init__(self, failures: list[tuple[Any, str]], total: int) -> None:
        self.failures = failures
        details = "; ".join(f"{_label(item)}: {message}" for item, message in failures[:3])
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        super().__init__(f"{len(failures)} of {total} units failed: {details}{more}; rerun to retry them")


def _label(item: Any) -> str:
    if isinstance(item, Mapping) and {"model", "target"} <= set(item):
        return f"{item['model']} x {item['target']}"
    return repr(item)


class Executor(ABC):
    """Runs a function over items and yields the results as they finish."""

    name = "executor"

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Release workers (processes, a Ray instance this executor started)."""

    def describe(self) -> dict[str, Any]:
        """Where units ran, for the provenance."""
        return {"kind": self.name}

    @abstractmethod
    def map(self, fn: UnitFn, items: list[Any], *, env: Mapping[str, str] | None = None, progress: bool = True,
            description: str = "units") -> Iterator[Mapping[str, Any]]:
        """Yield ``fn(item, env)`` for every item, in order of completion.

        Raises
        ------
        UnitFailures
            After every other item has been yielded, if some items raised.
        """


def make_executor(kind: str, *, workers: int = 1, address: str | None = None, num_cpus: float = 1.0,
                  num_gpus: float = 0.0) -> Executor:
    """Build an executor by name.

    Parameters
    ----------
    kind : {"local", "ray"}
        Local processes or Ray tasks.
    workers : int
        Local: parallel processes (1 = run in this process). Ray: CPUs of the local Ray instance started when no
        ``address`` is given (ignored when connecting to a cluster).
    address : str, optional
        Ray only: cluster address (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:10001"``).
    num_cpus, num_gpus : float
        Ray only: resources each unit requests.
    """
    if kind == "local":
        if address:
            raise ExecutorError("--address only applies to --executor ray")
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address=address, workers=workers, num_cpus=num_cpus, num_gpus=num_gpus)
    raise ExecutorError(f"unknown executor {kind!r}; choose local or ray")


def _call_in_worker(fn: UnitFn, item: Any, env: Mapping[str, str], threads: int) -> Mapping[str, Any]:
    """Run ``fn`` in a worker process: no progress bars, a bounded number of torch threads."""
    from brainlike import progress

    progress.set_enabled(False)
    if threads > 0:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
    return fn(item, env)


class LocalExecutor(Executor):
    """Units in this process (``workers == 1``, progress bars of each unit shown) or in a pool of processes."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ExecutorError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "workers": self.workers}

    def map(self, fn: UnitFn, items: list[Any], *, env: Mapping[str, str] | None = None, progress: bool = True,
            description: str = "units") -> Iterator[Mapping[str, Any]]:
        env = dict(env or {})
        if self.workers == 1 or len(items) == 1:
            yield from self._serial(fn, items, env)
        else:
            yield from self._pool(fn, items, env, progress, description)

    def _serial(self, fn: UnitFn, items: list[Any], env: dict[str, str]) -> Iterator[Mapping[str, Any]]:
        failures = []
        for i, item in enumerate(items, 1):
            log.info("unit %d/%d: %s", i, len(items), _label(item))
            try:
                result = fn(item, env)
            except BrainlikeError as exc:
                failures.append((item, str(exc)))
                log.error("unit %s failed: %s", _label(item), exc)
                continue
            yield result
        if failures:
            raise UnitFailures(failures, len(items))

    def _pool(self, fn: UnitFn, items: list[Any], env: dict[str, str], progress: bool,
              description: str) -> Iterator[Mapping[str, Any]]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from brainlike.progress import task

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        context = multiprocessing.get_context("spawn")  # no fork after torch/BLAS threads have started
        failures = []
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(items)), mp_context=context)
        try:
            futures = {pool.submit(_call_in_worker, fn, item, env, threads): item for item in items}
            with task(description, total=len(items)) if progress else _nullbar() as advance:
                for future in as_completed(futures):
                    advance()
                    try:
                        result = future.result()
                    except Exception as exc:  # a worker's error: report it with the others, keep going
                        failures.append((futures[future], _one_line(exc)))
                        continue
                    yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if failures:
            raise UnitFailures(failures, len(items))


class RayExecutor(Executor):
    """Each unit a Ray task requesting ``num_cpus``/``num_gpus``; starts a local Ray instance when no address."""

    name = "ray"

    def __init__(self, *, address: str | None = None, workers: int = 1, num_cpus: float = 1.0,
                 num_gpus: float = 0.0) -> None:
        self.address, self.workers, self.num_cpus, self.num_gpus = address, workers, num_cpus, num_gpus
        self._started = False

    def __enter__(self) -> "RayExecutor":
        if not self.address and "ray" not in sys.modules:
            # A local instance listens on the loopback interface only (Ray otherwise binds the node's network IP).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise ExecutorError("the ray executor needs Ray: pip install 'brainlike[ray]'") from None
        if ray.is_initialized():
            return self
        try:
            if self.address:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=True)
            else:
                ray.init(num_cpus=self.workers, num_gpus=0 if not self.num_gpus else None,
                         include_dashboard=False, _node_ip_address="127.0.0.1",
                         object_store_memory=256 * 1024 * 1024, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local instance"
            raise ExecutorError(f"cannot start Ray on {where}: {_one_line(exc)}") from None
        self._started = True
        return self

    def describe(self) -> dict[str, Any]:
        import ray

        resources = ray.cluster_resources()
        return {"kind": "ray", "ray": ray.__version__, "address": ray.get_runtime_context().gcs_address,
                "started_here": self._started, "cluster_cpus": resources.get("CPU", 0),
                "cluster_gpus": resources.get("GPU", 0), "nodes": len(ray.nodes()),
                "unit_resources": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}}

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def map(self, fn: UnitFn, items: list[Any], *, env: Mapping[str, str] | None = None, progress: bool = True,
            description: str = "units") -> Iterator[Mapping[str, Any]]:
        import ray

        from brainlike.progress import task

        remote = ray.remote(_call_in_worker).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=1,
            runtime_env={"env_vars": dict(env or {})} if env else None,
        )
        threads = max(1, int(self.num_cpus))
        refs = {remote.remote(fn, item, dict(env or {}), threads): item for item in items}
        pending, failures = list(refs), []
        try:
            with task(description, total=len(items)) if progress else _nullbar() as advance:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    advance()
                    try:
                        result = ray.get(done[0])
                    except Exception as exc:  # RayTaskError wraps the unit's own exception
                        failures.append((refs[done[0]], _one_line(getattr(exc, "cause", None) or exc)))
                        continue
                    yield result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
        if failures:
            raise UnitFailures(failures, len(items))


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [""]
    return lines[0] if isinstance(exc, BrainlikeError) else f"{type(exc).__name__}: {lines[-1]}"


class _nullbar:
    def __enter__(self) -> Callable[..., None]:
        return lambda n=1: None

    def __exit__(self, *exc: Any) -> None:
        return None
