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
        for u in units:
            yield run_unit(suite, u, policy)
    else:
        yield from _processes(suite, units, policy)


def _processes(suite: SuiteCfg, units: Sequence[Unit], policy: Any) -> Iterator[UnitResult]:
    import multiprocessing as mp

    workers = min(suite.workers, len(units))
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_share_cores,
                             initargs=(workers,)) as pool:
        futures = [pool.submit(run_unit, suite, u, policy) for u in units]
        try:
            for f in as_completed(futures):
                yield f.result()
        finally:  # an error (or the caller stopping early) cancels what has not started
            for f in futures:
                f.cancel()


def _share_cores(workers: int) -> None:
    """Split the cores between workers: torch's default (all cores per process) makes policy inference in several
    workers spin against each other (measured several times slower on 2 cores)."""
    import os

    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _ray(suite: SuiteCfg, units: Sequence[Unit], policy: Any) -> Iterator[UnitResult]:
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("launcher=ray needs Ray: `pip install 'rho-sim[ray]'` (or ray)") from e
    started = not ray.is_initialized()
    if started:
        local = suite.ray_address is None
        ray.init(address=suite.ray_address, num_cpus=suite.workers if local else None, include_dashboard=False,
                 log_to_driver=False)
    task = ray.remote(num_cpus=1, max_retries=0)(run_unit)
    try:
        pending = [task.remote(suite, u, policy) for u in units]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()
