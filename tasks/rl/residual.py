"""Per-task pieces of RL experts: privileged observations and how a policy action becomes an env action.

A residual spec wraps a task env and its scripted expert. Training (`RslRlVecEnv`) and deployment (`RlExpert`) both
go through `env_action(obs, a)`, so a checkpoint acts in datagen exactly as it did in training.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rho.tasks.agents.rsl_rl_cfg import ResidualCfg


def _quats_to_mats(q: np.ndarray) -> np.ndarray:
    from rho.tasks.plug_insertion import _quats_to_mats as f

    return f(q)


class PlugInsertionResidual:
    """Plug insertion over the scripted `PlugInsertionExpert`, while the expert's right arm is in one of
    `cfg.active_phases`: mode `lateral` — the policy steers the plug across the outlet face (y, z), the expert pushes
    along it; mode `offset` — the policy offsets the right arm's TCP target along the outlet axes (see `ResidualCfg`).

    Policy observations (`policy`, 12 + num_actions floats; lengths in mm or cm as noted, forces in units of 5 N):
        plug face across the outlet axis (y, z, mm, clipped to ±5), along it (x, cm, clipped to [−3, 5]), insertion
        depth (cm, clipped to [−5, 3]), right pads' privileged net forces (2 × 3), how far the right TCP trails its
        target across the axis (mm, clipped to ±5: a plug caught on the face), previous action (num_actions). Few and to the point: an MLP on normalised
        inputs learns fastest from these (rare one-hot features blow up under running normalisation).
    Critic-only observations (`critic`, 27; the critic also sees `policy`): the expert's outlet-estimate error in the
        outlet frame (mm, 3), its right-arm phase one-hot (8), strip held (1), plug rotation relative to the outlet
        (R − I, 9), right TCP and its running target in the outlet frame (cm, 3 + 3).
    """

    critic_dim = 27

    def __init__(self, env, expert, cfg: ResidualCfg):
        from rho.tasks.plug_insertion import L_HOLD, RIGHT

        if env.cfg.action.mode != "ee_delta":
            raise ValueError(f"the plug-insertion residual acts in action.mode=ee_delta, got {env.cfg.action.mode!r}")
        self.env, self.expert, self.cfg = env, expert, cfg
        self.num_actions = 2 if cfg.mode == "lateral" else 3
        self.policy_dim = 12 + self.num_actions
        self._right, self._hold = RIGHT, L_HOLD
        self.scale = np.asarray(cfg.scale, float)
        self.active_phases = np.asarray(cfg.active_phases, int)
        self.prev = np.zeros((env.num_envs, self.num_actions))  # last applied action in [-1, 1]

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        """After the env started new episodes in `env_ids` (all when None): reset the expert and the action memory."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids, int)
        self.expert.reset(None if env_ids is None else np.asarray(env_ids, int))
        self.prev[ids] = 0.0

    def active(self) -> np.ndarray:
        """(n,) bool: where the residual is applied (the expert's right arm is in an active phase)."""
        return np.isin(self.expert.phase[:, self._right], self.active_phases)

    def _outlet(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        sock = obs["socket_pose"].astype(float)
        return sock[:, :3], _quats_to_mats(sock[:, 3:])

    def policy_obs(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        n = self.env.num_envs
        rel = obs["plug_in_socket"].astype(float)
        pads = self.env.pad_forces()[:, 2:4].reshape(n, 6) / 5.0
        _, ro = self._outlet(obs)
        lead = np.einsum("nji,nj->ni", ro, self.env.ee_target[:, self._right, :3]
                         - obs["ee_pose"][:, self._right, :3])  # how far the TCP trails its target
        # clipped to the range that matters at the outlet: while the expert carries the plug from centimetres away,
        # raw values would dominate the running normalisation and squash the last millimetres to nothing
        parts = [np.clip(1000 * rel[:, 1:], -5.0, 5.0), np.clip(100 * rel[:, :1], -3.0, 5.0),
                 np.clip(100 * obs["insertion_depth"], -5.0, 3.0), pads, np.clip(1000 * lead[:, 1:], -5.0, 5.0),
                 self.prev]
        return np.concatenate(parts, axis=1, dtype=np.float32)

    def shaping_terms(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Extra reward terms the agent may weight (`RewardCfg`), beside the task's: `lateral_mm` = distance of the
        plug face centre from the outlet axis in mm, capped at 5 (weighted negative: a cost per step). The task's
        `align` term saturates a few mm out (exp(−d / 2 mm)), where a wandering plug then feels no pull back; this
        one pulls equally from everywhere within 5 mm, and as a cost it also makes ending the episode (seating the
        plug) worth more than lingering."""
        lateral = np.hypot(obs["plug_in_socket"][:, 1], obs["plug_in_socket"][:, 2]).astype(float)
        return {"lateral_mm": np.minimum(lateral, 0.005) / 0.001}

    def critic_obs(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        env, n = self.env, self.env.num_envs
        o, ro = self._outlet(obs)
        rp = _quats_to_mats(obs["plug_pose"][:, 3:].astype(float))
        rel_rot = np.einsum("nji,njk->nik", ro, rp) - np.eye(3)
        tcp = np.einsum("nji,nj->ni", ro, obs["ee_pose"][:, self._right, :3] - o)
        tgt = np.einsum("nji,nj->ni", ro, env.ee_target[:, self._right, :3] - o)
        phase = np.eye(8)[np.clip(self.expert.phase[:, self._right], 0, 7)]
        held = (self.expert.phase[:, 0] == self._hold)[:, None]
        parts = [1000 * self.expert.error, phase, held, rel_rot.reshape(n, 9), 100 * tcp, 100 * tgt]
        return np.concatenate(parts, axis=1, dtype=np.float32)

    def env_action(self, obs: dict[str, np.ndarray], action: np.ndarray) -> np.ndarray:
        """(n, 14) ee_delta action: the scripted expert's, plus the residual where active. `action` (n, 3) is
        clipped to [-1, 1] and remembered as the previous action."""
        a = np.clip(np.asarray(action, float), -1.0, 1.0)
        base = self.expert.act(obs)
        on = self.active()
        a = np.where(on[:, None], a, 0.0)
        if self.cfg.enabled:
            _, ro = self._outlet(obs)
            move = base[:, 7:10]  # right arm translation (arm 1: dims 7..13), world (m)
            if self.cfg.mode == "offset":
                move += np.einsum("nij,nj->ni", ro, a * self.scale)  # outlet frame → world
            else:  # lateral: the plug stays within `lateral_box` of the expert's outlet estimate
                local = np.einsum("nji,nj->ni", ro, move)
                est = obs["plug_in_socket"][:, 1:].astype(float) - self.expert.error[:, 1:]  # plug vs estimate
                box = self.cfg.lateral_box
                step = np.clip(est + a * self.cfg.lateral_step, -box, box) - est
                local[:, 1:] = np.where(on[:, None], step, local[:, 1:])
                move[:] = np.einsum("nij,nj->ni", ro, local)
        self.prev = a
        return base

    def summary(self) -> dict[str, Any]:
        return {"num_actions": self.num_actions, "policy_dim": self.policy_dim, "critic_dim": self.critic_dim}


RESIDUALS: dict[str, type] = {"plug_insertion": PlugInsertionResidual, "plug_insertion_occluded": PlugInsertionResidual}


def residual_for(task: str) -> type:
    """The residual spec class of a task; a task without one fails with the list of tasks that have one."""
    if task not in RESIDUALS:
        raise ValueError(f"task {task!r} has no RL expert spec; RL training supports {sorted(RESIDUALS)}. Fix: pick "
                         "one of those, or add a residual spec to rho.tasks.rl.residual.RESIDUALS and an agent "
                         "config to rho.tasks.agents.AGENT_CFGS")
    return RESIDUALS[task]
