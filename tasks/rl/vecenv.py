"""`RslRlVecEnv`: a task's `BatchedEnv`, its scripted expert and its residual spec behind rsl-rl's `VecEnv`.

Observations are a `TensorDict` with groups `policy` (what the actor sees) and `critic` (extra privileged state for
the value function); rewards are built from the task's dense reward terms as `RewardCfg` says; `dones` are
terminated | truncated, with `extras["time_outs"]` the truncations (rsl-rl bootstraps those). The env autoresets
finished envs in the same step, so the observation returned for a done env is its new episode's first one.
Besides the task's terms, the residual spec may add shaping terms of its own (`shaping_terms`).
`extras["log"]` carries per-step means of the reward terms (namespaced "/reward/...") and, when episodes
finished, their success rate ("/episode/success").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from rho.tasks.agents.rsl_rl_cfg import RunnerCfg

from .residual import residual_for


class RslRlVecEnv(VecEnv):
    """rsl-rl `VecEnv` over a rho task env (mujoco backend, CPU tensors)."""

    def __init__(self, env, agent: RunnerCfg, device: str = "cpu"):
        from rho.tasks import get_task

        entry = get_task(env.task_name)
        if entry.expert_cls is None:
            raise ValueError(f"task {entry.name!r} has no scripted expert for the residual policy to build on")
        self.env, self.agent, self.device = env, agent, device
        self.cfg = env.cfg
        self.num_envs = env.num_envs
        self.expert = entry.expert_cls(env)
        self.spec = residual_for(entry.name)(env, self.expert, agent.residual)
        self.num_actions = self.spec.num_actions
        self.max_episode_length = env.max_episode_steps
        self.gamma = agent.algorithm.gamma
        self._obs, _ = env.reset(seed=agent.seed)
        self.spec.reset(None)
        terms = self._terms_now(self._obs)
        unknown = sorted((set(agent.reward.potential) | set(agent.reward.step)) - set(terms))
        if unknown:
            raise ValueError(f"agent.reward names {unknown}, not reward terms of {env.task_name!r}; its terms: "
                             f"{sorted(terms)}. Fix: use those names in agent.reward.potential / agent.reward.step")
        self._phi = self._potential(terms)
        self.episodes = 0  # finished episodes since construction
        self.successes = 0
        self.env_steps = 0  # env steps taken (all envs)
        self.finished: list[tuple[bool, int]] = []  # (success, length) of episodes finished since last drain

    # ------------------------------------------------------------------ VecEnv interface
    @property
    def episode_length_buf(self) -> torch.Tensor:
        return torch.as_tensor(self.env.episode_step, device=self.device)

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:  # rsl-rl's init_at_random_ep_len
        self.env.episode_step[:] = np.asarray(value.cpu(), np.int64)

    def get_observations(self) -> TensorDict:
        return self._tensordict(self._obs)

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict[str, Any]]:
        a = actions.detach().cpu().numpy().astype(np.float64)
        if a.shape != (self.num_envs, self.num_actions):
            raise ValueError(f"actions must have shape ({self.num_envs}, {self.num_actions}), got {a.shape}")
        env_action = self.spec.env_action(self._obs, a)
        applied = self.spec.prev.copy()
        obs, _, term, trunc, info = self.env.step(env_action)
        done = term | trunc
        final = info.get("final_obs", obs)  # finished envs: the state they finished in (obs is the next episode's)
        terms = {**info["reward_terms"], **self.spec.shaping_terms(final)}
        phi_next = self._potential(terms)
        rc = self.agent.reward
        reward = self.gamma * phi_next - self._phi
        for k, w in rc.step.items():
            reward = reward + w * terms[k]
        reward = reward - rc.action_penalty * np.mean(applied**2, axis=1)
        log: dict[str, Any] = {f"/reward/{k}": float(np.mean(v)) for k, v in terms.items()}
        if done.any():
            ids = np.flatnonzero(done)
            fin = info["final_info"]
            self.spec.reset(ids)
            self._phi = phi_next.copy()
            self._phi[ids] = self._potential(self._terms_now(obs))[ids]  # the new episodes' first state
            ok = fin["success"][ids].astype(bool)
            self.episodes += len(ids)
            self.successes += int(ok.sum())
            self.finished += list(zip(ok.tolist(), fin["episode_length"][ids].tolist(), strict=True))
            log["/episode/success"] = float(ok.mean())
        else:
            self._phi = phi_next
        self.env_steps += self.num_envs
        self._obs = obs
        extras = {"time_outs": torch.as_tensor(trunc, device=self.device), "log": log}
        return (self._tensordict(obs), torch.as_tensor(reward, dtype=torch.float32, device=self.device),
                torch.as_tensor(done, device=self.device), extras)

    # ------------------------------------------------------------------ helpers
    def _terms_now(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**self.env._get_rewards(self.env.evaluate()), **self.spec.shaping_terms(obs)}

    def _potential(self, terms: dict[str, np.ndarray]) -> np.ndarray:
        phi = np.zeros(self.num_envs)
        for k, w in self.agent.reward.potential.items():
            phi = phi + w * terms[k]
        return phi

    def _tensordict(self, obs: dict[str, np.ndarray]) -> TensorDict:
        groups = {"policy": torch.from_numpy(self.spec.policy_obs(obs)),
                  "critic": torch.from_numpy(self.spec.critic_obs(obs))}
        return TensorDict(groups, batch_size=[self.num_envs], device=self.device)

    def drain_finished(self) -> list[tuple[bool, int]]:
        out, self.finished = self.finished, []
        return out

    def close(self) -> None:
        self.env.close()
