"""A plain `gymnasium.Env` view of a one-env `BatchedEnv` (batch dimension removed), for `gym.make`."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from .env import BatchedEnv


class SingleEnv(gym.Env):
    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}

    def __init__(self, env: BatchedEnv):
        if env.num_envs != 1:
            raise ValueError(f"SingleEnv wraps exactly one env, got num_envs={env.num_envs}")
        self.env = env
        self.observation_space = env.single_observation_space
        self.action_space = env.single_action_space
        self.render_mode = "rgb_array"
        self.metadata = {**self.metadata, "render_fps": round(1.0 / env.control_dt)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)  # gymnasium's np_random; the batched env draws from its own per-episode seeds
        if seed is None and self.env.episode_count[0] == 0:
            seed = int(self.np_random.integers(2**31))  # unseeded first reset: still a recorded seed
        obs, info = self.env.reset(seed=seed, options=options)
        return _unbatch(obs), {"episode_seed": int(info["episode_seed"][0]), **info["randomization"][0]}

    def step(self, action):
        obs, rew, term, trunc, info = self.env.step(np.asarray(action)[None])
        single = {k: (v[0] if isinstance(v, np.ndarray) and v.shape[:1] == (1,) else v) for k, v in info.items()
                  if k != "reward_terms"}
        single["reward_terms"] = {k: float(v[0]) for k, v in info["reward_terms"].items()}
        return _unbatch(obs), float(rew[0]), bool(term[0]), bool(trunc[0]), single

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()


def _unbatch(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v[0] for k, v in obs.items()}
