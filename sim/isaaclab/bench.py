"""Env-steps/s of a task on the Isaac Lab backend (and on the MuJoCo backend when this Python has mujoco>=3.17).

    python -m rho.sim.isaaclab.bench task=lift_block num_envs=2,8 steps=20 [device=cuda:0] [cameras=0|1]

One env-step is one 50 Hz control step of one env (20 physics steps of 1 ms, touch sampled at 100 Hz), driven by
the task's scripted expert so contacts happen. Prints one JSON line per (backend, num_envs): steady-state
env-steps/s (median over `repeats` timed chunks after a warm-up chunk, which includes Warp's kernel compile).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def bench(task: str, backend: str, num_envs: int, steps: int, device: str = "cpu", cameras: bool = False,
          repeats: int = 3) -> dict:
    from rho.sim.parity import make_expert_env

    t0 = time.perf_counter()
    entry, env = make_expert_env(task, num_envs, 0, backend, device, cameras)
    expert = entry.expert_cls(env)
    obs, _ = env.reset(seed=0)
    build_s = time.perf_counter() - t0
    rates = []
    for r in range(repeats + 1):
        t = time.perf_counter()
        for _ in range(steps):
            obs, _, term, trunc, _ = env.step(expert.act(obs))
            done = np.flatnonzero(term | trunc)
            if len(done):
                expert.reset(done)
        if r:  # the first chunk warms up (kernel compile, caches)
            rates.append(steps * num_envs / (time.perf_counter() - t))
    env.close()
    return {"task": task, "backend": backend, "device": device, "num_envs": num_envs, "cameras": cameras,
            "env_steps_per_s": float(np.median(rates)), "build_s": build_s}


def main(argv: list[str] | None = None) -> int:
    kv = dict(a.split("=", 1) for a in (sys.argv[1:] if argv is None else argv))
    task, steps = kv.get("task", "lift_block"), int(kv.get("steps", 20))
    backends = kv.get("backend", "mujoco,isaaclab").split(",")
    for n in (int(x) for x in kv.get("num_envs", "2,8").split(",")):
        for backend in backends:
            try:
                res = bench(task, backend, n, steps, kv.get("device", "cpu"), kv.get("cameras", "0") == "1",
                            int(kv.get("repeats", 3)))
            except ImportError as e:
                res = {"backend": backend, "num_envs": n, "skipped": str(e).split(";")[0]}
            print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
