"""`rho bench datagen`: what recording costs, what a demo weighs, how fast training can read frames back.

Figures (medians over `repeats`, one process per core for reads):
    rollout_steps_per_s       expert rollout, 1 env, three 128² cameras + touch, nothing recorded (control steps/s)
    record_steps_per_s        the same episodes through `rho datagen` (recorded, written to HDF5)
    recording_overhead        rollout / record rate                            (target ≤ 1.3)
    demos_per_hour_per_core   recorded demos per hour on one core
    bytes_per_demo, write_mb_per_s
    read_samples_per_s        random frames (every key, images decoded) per second, `read_procs` processes
                              together                                         (target ≥ 2000 on 2 cores)
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CAMS = "env.cameras={cam_high: {width: 128, height: 128}, cam_left_wrist: {width: 128, height: 128}, " \
       "cam_right_wrist: {width: 128, height: 128}}"


def _cfg(out: Path, task: str, demos: int, seed: int):
    from rho.config import load_config
    from rho.datagen.runner import datagen_schema

    return load_config(datagen_schema(task), yaml="datagen",
                       overrides=[f"out={out}", f"task={task}", f"num_demos={demos}", "num_envs=1", f"seed={seed}",
                                  CAMS])


def rollout_rate(task: str, demos: int, seed: int) -> tuple[float, int]:
    """Control steps/s of the expert over the same episodes datagen records (attempt seeds), unrecorded."""
    from rho.datagen.runner import _env_for, attempt_seed

    cfg = _cfg(Path("/unused"), task, demos, seed)
    entry, env = _env_for(cfg)
    expert = entry.expert_cls(env)
    attempts = iter(range(10**9))
    env.episode_seed_fn = lambda slot: attempt_seed(seed, next(attempts))
    obs, _ = env.reset()
    steps = episodes = 0
    t = time.perf_counter()
    while episodes < demos:
        obs, _, term, trunc, _ = env.step(expert.act(obs))
        steps += 1
        if (term | trunc).any():
            episodes += int((term | trunc).sum())
            expert.reset(np.flatnonzero(term | trunc))
    rate = steps / (time.perf_counter() - t)
    env.close()
    return rate, steps


def record(task: str, demos: int, seed: int, out: Path) -> dict[str, Any]:
    from rho.datagen.runner import generate

    return generate(_cfg(out, task, demos, seed), progress=False)


def _read_worker(path: str, n: int, seed: int, queue) -> None:
    from rho.datagen.hdf5 import Dataset

    ds = Dataset(path)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ds), n)
    ds.frame(int(idx[0]))  # open files
    t = time.perf_counter()
    for i in idx:
        ds.frame(int(i))
    queue.put(n / (time.perf_counter() - t))


def read_rate(path: Path, procs: int, n: int = 2000) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ps = [ctx.Process(target=_read_worker, args=(str(path), n, s, q)) for s in range(procs)]
    for p in ps:
        p.start()
    rates = [q.get() for _ in ps]
    for p in ps:
        p.join()
    return float(sum(rates))


def bench_datagen(task: str = "lift_block", demos: int = 10, repeats: int = 3, read_procs: int = 2) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"roll": [], "rec": [], "ratio": [], "bytes": [], "mbps": [], "read": []}
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            roll, steps = rollout_rate(task, demos, seed=r)
            assert steps > 0
            s = record(task, demos, r, Path(tmp) / "ds")
            rec = s["samples"] / s["loop_s"]  # stepping + recording + writing, as the rollout (no env build)
            runs["roll"].append(roll)
            runs["rec"].append(rec)
            runs["ratio"].append(roll / rec)
            runs["bytes"].append(s["bytes_per_demo"])
            runs["mbps"].append(s["bytes"] / 2**20 / max(s["write_s"], 1e-9))
            runs["read"].append(read_rate(Path(s["out"]), read_procs))
    med = {k: statistics.median(v) for k, v in runs.items()}
    steps_per_demo = s["samples"] / s["demos"]
    return {
        "task": task, "demos": demos, "cameras": "3 × 128²", "touch": "4 pads × 4×4 at 100 Hz",
        "rollout_steps_per_s": round(med["roll"], 1), "record_steps_per_s": round(med["rec"], 1),
        "recording_overhead": round(med["ratio"], 3),
        "demos_per_hour_per_core": round(3600 * med["rec"] / steps_per_demo),
        "bytes_per_demo": round(med["bytes"]), "write_mb_per_s": round(med["mbps"], 1),
        "read_samples_per_s": round(med["read"]), "read_procs": read_procs, "repeats": repeats,
    }
