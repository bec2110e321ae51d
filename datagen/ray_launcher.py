"""`rho datagen launcher=ray`: the same workers as Ray tasks, one per `workers`, on a Ray cluster.

Each task runs `runner._produce` for its share of attempts (k ≡ w mod workers) and writes its own shards into
`out`, which must be a filesystem every node sees (NFS, Azure Files, blobfuse, ...); the driver gathers finished
attempts through a Ray queue, stops the tasks when the first `num_demos` successes are in, and writes the one
manifest. Resume works as with local workers: attempts in closed shards are skipped.

    rho datagen task=lift_block num_demos=1000 workers=64 launcher=ray ray_address=auto out=/mnt/shared/lift

Without `ray_address` a local cluster is started whose services listen on 127.0.0.1 only (`rho.ray_cluster`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rho.config import config_from_dict, config_to_dict


def _ray_worker(plain: dict[str, Any], worker: int, done: set[int], shard_dir: str, queue, flag) -> dict[str, float]:
    import ray

    from .runner import _produce, datagen_schema

    cfg = config_from_dict(datagen_schema(plain["task"]), plain)
    state = {"t": 0.0, "stop": False}

    def stop() -> bool:  # ask the driver at most every 0.2 s: a remote call per control step would dominate
        now = time.monotonic()
        if now - state["t"] > 0.2:
            state["t"], state["stop"] = now, ray.get(flag.is_set.remote())
        return state["stop"]

    return _produce(cfg, worker, done, Path(shard_dir), lambda *a: queue.put(("attempt", *a)), stop)


def run_ray(cfg, done: set[int], shard_dir: Path, report, stop) -> dict[str, float]:
    from rho.ray_cluster import init_ray

    started = init_ray(cfg.ray_address)  # no address: a local cluster listening on loopback only
    import ray
    from ray.util.queue import Empty, Queue

    @ray.remote
    class Flag:
        def __init__(self):
            self.value = False

        def set(self):
            self.value = True

        def is_set(self):
            return self.value

    flag, queue = Flag.remote(), Queue()
    task = ray.remote(num_cpus=1)(_ray_worker)
    plain = config_to_dict(cfg)
    refs = [task.remote(plain, w, done, str(shard_dir), queue, flag) for w in range(cfg.workers)]
    pending = list(refs)
    try:
        while pending:
            try:
                while True:
                    msg = queue.get(timeout=0.05)
                    report(*msg[1:])
                    if stop():
                        flag.set.remote()
            except Empty:
                pass
            _, pending = ray.wait(pending, timeout=0)
        while not queue.empty():
            report(*queue.get()[1:])
        try:
            timings = ray.get(refs)  # raises the worker's exception, if any
        except ray.exceptions.RayTaskError as e:  # a DatasetError (full disk, ...) is for the user, not a traceback
            from .hdf5 import DatasetError

            cause = getattr(e, "cause", None)
            if isinstance(cause, DatasetError):
                raise DatasetError(f"datagen worker (Ray task): {cause}") from None
            raise
    finally:
        flag.set.remote()
        if started:
            ray.shutdown()
    return {"loop_s": max(t["loop_s"] for t in timings), "write_s": sum(t["write_s"] for t in timings)}
