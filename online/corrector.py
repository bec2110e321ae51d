"""Correctors: who takes over from the policy, when, and what they command.

A corrector watches every control step of a batch of envs (`observe`), decides per env whether it drives the next
step (`in_control`), and gives the joint_pos actions it would execute (`actions`). `ExpertCorrector` stands in for a
person: the task's scripted (or RL) expert, taking over when a trigger fires, after a reaction latency, for a
while, then handing back — HG-DAgger's protocol with a simulated human, headless and reproducible (seeded).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .config import CorrectorCfg


class EeDeltaView:
    """The env as an ee_delta expert expects it (its config says `action.mode=ee_delta`; everything else is the
    env itself), while the env keeps the policy's joint_pos mode. Commands go through
    `env.joint_action_from_ee_delta`."""

    def __init__(self, env: Any) -> None:
        self._env = env
        self.cfg = dataclasses.replace(env.cfg, action=dataclasses.replace(env.cfg.action, mode="ee_delta"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


class ExpertCorrector:
    """The task's expert as the corrector. Triggers (`corrector.trigger`, any of them): the task's progress rose by
    less than `min_progress` over `no_progress_steps`; a pad's net normal force over `force_limit` N; the policy's
    joint targets further than `deviation` rad from the expert's; a random rate per step. Control passes
    `latency_steps` after the trigger, stays `hold_steps` (0: to the episode's end), then returns to the policy
    with the triggers re-armed. The expert shadows every step (its script follows the scene), and restarts at
    takeover when `reset_on_takeover`."""

    def __init__(self, cfg: CorrectorCfg, env: Any, seed: int = 0) -> None:
        from rho.tasks.rl.expert import make_expert

        if env.cfg.action.mode != "joint_pos":
            raise ValueError(f"the corrected env must act in joint_pos (the policy's mode), got "
                             f"{env.cfg.action.mode!r}")
        self.cfg, self.env = cfg, env
        self.view = EeDeltaView(env)
        self.expert = make_expert("scripted" if cfg.kind == "expert" else cfg.kind, self.view)
        self.name = f"{getattr(self.expert, 'name', type(self.expert).__name__)}@{getattr(self.expert, 'version', '?')}"
        n = env.num_envs
        self.rng = np.random.default_rng(seed)
        self.control = np.zeros(n, bool)  # the corrector drives the next step
        self.pending = np.full(n, -1)  # steps until a fired trigger hands control over (-1: none)
        self.held = np.zeros(n, int)  # steps driven since takeover
        self.best = np.zeros(n)  # best progress in the current watch window
        self.since = np.zeros(n, int)  # steps since progress last rose by min_progress
        self.plan: np.ndarray | None = None  # (n, 14) the expert's joint actions for the next step
        self.fired: list[str] = [""] * n  # what fired the current/last takeover, per env

    def reset(self, env_ids: np.ndarray) -> None:
        """Envs that started a new episode: the policy drives, triggers re-armed, the expert's script restarts."""
        ids = np.asarray(env_ids, int)
        self.control[ids], self.pending[ids], self.held[ids] = False, -1, 0
        self.best[ids], self.since[ids] = 0.0, 0
        for i in ids:
            self.fired[i] = ""
        self.expert.reset(ids)

    def observe(self, obs: dict[str, np.ndarray], progress: np.ndarray, policy_actions: np.ndarray | None) -> None:
        """After a step (or a reset): update the triggers with the task's progress (n,) and decide who drives next.
        `policy_actions` (n, 14): what the policy would do next (for the deviation trigger), or None."""
        env, t = self.env, self.cfg.trigger
        n = env.num_envs
        watching = ~self.control
        # the expert's command from the measured pose for envs it does not drive (a takeover starts from there)
        env.reanchor_ee_target(np.flatnonzero(watching))
        delta = np.asarray(self.expert.act(obs), np.float64).reshape(n, -1)
        if self.cfg.noise > 0:
            p, r = env.cfg.action.max_ee_step_pos, env.cfg.action.max_ee_step_rot
            scale = np.tile([p] * 3 + [r] * 3 + [1.0], delta.shape[1] // 7)
            delta = delta + self.rng.normal(0.0, self.cfg.noise, delta.shape) * scale
        self._delta = delta
        # triggers, for envs the policy drives with no takeover pending
        armed = watching & (self.pending < 0)
        rose = progress >= self.best + t.min_progress
        self.best = np.where(rose, progress, self.best)
        self.since = np.where(rose, 0, self.since + 1)
        fire: list[tuple[np.ndarray, str]] = []
        if t.no_progress_steps:
            fire.append((self.since >= t.no_progress_steps, "no_progress"))
        if t.force_limit:
            forces = np.max(env.pad_forces()[..., 0], axis=1)  # (n,) N, the largest pad normal force
            fire.append((forces > t.force_limit, "force"))
        if t.deviation and policy_actions is not None:
            expert_joint = self._joint(np.arange(n), dry=True)
            dev = np.max(np.abs(expert_joint - policy_actions), axis=1)
            fire.append((dev > t.deviation, "deviation"))
        if t.random_rate:
            fire.append((self.rng.random(n) < t.random_rate, "random"))
        for hit, why in fire:
            for i in np.flatnonzero(hit & armed):
                self.pending[i] = self.cfg.latency_steps
                self.fired[i] = why
                armed[i] = False
        # hand-over after the latency; hand-back after the hold
        start = (self.pending == 0) & watching
        self.pending = np.where(self.pending > 0, self.pending - 1, self.pending)
        back = self.control & (self.cfg.hold_steps > 0) & (self.held >= self.cfg.hold_steps)
        if back.any():
            self.control[back] = False
            self.best[back] = progress[back]
            self.since[back] = 0
        if start.any():
            ids = np.flatnonzero(start)
            self.control[ids], self.pending[ids], self.held[ids] = True, -1, 0
            if self.cfg.reset_on_takeover:
                self.expert.reset(ids)
                self._delta[ids] = np.asarray(self.expert.act(obs), np.float64).reshape(n, -1)[ids]

    def in_control(self) -> np.ndarray:
        """(n,) bool: the corrector drives the next step."""
        return self.control.copy()

    def actions(self, env_ids: np.ndarray) -> np.ndarray:
        """The (k, 14) joint_pos actions the corrector executes in `env_ids` this step (moves their TCP target)."""
        ids = np.asarray(env_ids, int)
        self.held[ids] += 1
        return self._joint(ids, dry=False)

    def _joint(self, ids: np.ndarray, dry: bool) -> np.ndarray:
        env = self.env
        if dry:  # what the expert's command would execute, without moving the running targets
            keep = env.ee_target.copy()
            out = env.joint_action_from_ee_delta(self._delta[ids], ids)
            env.ee_target[...] = keep
            return out
        return env.joint_action_from_ee_delta(self._delta[ids], ids)
