"""Fan units out: in this process (workers=1), over local worker processes (spawn: MuJoCo, numba and GL contexts do
not survive fork), or as Ray tasks (launcher=ray; a local cluster when `ray_address` is None). Results come back
as they finish; the caller orders them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from .rollout import Unit, UnitResult, run_unit
from .suite import SuiteCfg


def run_units(suite: SuiteCfg, units: Sequence[Unit], policy: Any) -> Iterator[UnitResult]:
    if suite.launcher == "ray":
        yield from _ray(suite, units, policy)
    elif suite.workers <= 1 or len(units) <= 1:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads_per_worker(suite, 1))
        try:
            for u in units:
                yield run_unit(suite, u, policy)
        finally:
            torch.set_num_threads(before)
    else:
        yield from _processes(suite, units, policy)


def _processes(suite: SuiteCfg, units: Sequence[Unit], policy: Any) -> Iterator[UnitResult]:
    import multiprocessing as mp

    workers = min(suite.workers, len(units))
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_share_cores,
                             initargs=(threads_per_worker(suite, workers),)) as pool:
        futures = [pool.submit(run_unit, suite, u, policy) for u in units]
        try:
            for f in as_completed(futures):
                yield f.result()
        finally:  # an error (or the caller stopping early) cancels what has not started
            for f in futures:
                f.cancel()


def cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's count)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def threads_per_worker(suite: SuiteCfg, workers: int) -> int:
    """Torch threads per eval worker: `suite.torch_threads`, or cores / workers capped at 1. Never more than the
    cores a worker has: torch's default (all cores per process) spins against the other workers and any other job
    on the machine (a policy step measured 172 ms with 2 threads on a busy 2-core machine, 12 ms with 1)."""
    share = max(1, cores() // max(1, workers))
    return min(suite.torch_threads, share) if suite.torch_threads else min(1, share)


def _share_cores(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _ray(suite: SuiteCfg, units: Sequence[Unit], policy: Any) -> Iterator[UnitResult]:
    from rho.ray_cluster import init_ray

    started = init_ray(suite.ray_address, num_cpus=suite.workers)  # no address: a local cluster on loopback only
    import ray

    task = ray.remote(num_cpus=1, max_retries=0)(run_unit)
    try:
        pending = [task.remote(suite, u, policy) for u in units]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()
