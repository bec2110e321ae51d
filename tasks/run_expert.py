"""`rho expert`: run a task's scripted expert headless over seeded episodes and report its success rate."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class ExpertRunCfg:
    """Settings of `rho expert`; `env` is the task's config class (see `expert_schema`)."""

    task: str = "lift_block"  # registered task name
    episodes: int = 100  # finished episodes to count
    env: Any = None

    def validate(self) -> list[str]:
        return [] if self.episodes >= 1 else [f"episodes must be >= 1, got {self.episodes}"]


def expert_schema(task: str) -> type:
    """ExpertRunCfg with `env` typed as the task's config class."""
    from .registry import with_task_env

    return with_task_env(ExpertRunCfg, task)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def run_expert(cfg: ExpertRunCfg, progress: bool = True) -> dict[str, Any]:
    """Episodes are the first `episodes` to finish, from `env.seed`; each env slot draws its own episode seeds."""
    from tqdm import tqdm

    from .registry import get_task

    entry = get_task(cfg.task)
    if entry.expert_cls is None:
        raise ValueError(f"task {entry.name!r} has no scripted expert")
    cfg.env.action.mode = entry.expert_action_mode
    env = entry.env_cls(cfg.env)
    expert = entry.expert_cls(env)
    obs, _ = env.reset(seed=cfg.env.seed)
    success: list[bool] = []
    lengths: list[int] = []
    seeds: list[int] = []
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.episodes, desc=f"expert {entry.name}", disable=not progress, unit="ep")
    while len(success) < cfg.episodes:
        obs, _, term, trunc, info = env.step(expert.act(obs))
        done = term | trunc
        if done.any():
            ids = np.flatnonzero(done)
            fin = info["final_info"]
            success += fin["success"][ids].tolist()
            lengths += fin["episode_length"][ids].tolist()
            seeds += [int(s) for s in fin["episode_seed"][ids]]
            expert.reset(ids)
            bar.update(len(ids))
            bar.set_postfix(success=f"{np.mean(success):.2f}")
    bar.close()
    success, lengths, seeds = success[: cfg.episodes], lengths[: cfg.episodes], seeds[: cfg.episodes]
    k, n = int(np.sum(success)), len(success)
    lo, hi = wilson_interval(k, n)
    env.close()
    return {"task": entry.name, "expert": f"{expert.name}@{expert.version}", "episodes": n, "successes": k,
            "success_rate": k / n, "ci95": [lo, hi], "mean_episode_steps": float(np.mean(lengths)),
            "mean_episode_s": float(np.mean(lengths)) * env.control_dt, "num_envs": env.num_envs,
            "seed": cfg.env.seed, "wall_s": time.perf_counter() - t0,
            "failed_episode_seeds": [s for s, ok in zip(seeds, success, strict=True) if not ok]}
