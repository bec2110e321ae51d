"""Lift a block with either gripper — the smallest task that exercises reach, grasp and touch.

Task description:
    A 40 mm cube rests on the table between the two arms. Either arm grasps it between its finger pads and lifts
    it. Touch tells whether the block is held (both pads of one gripper pressing it).

Randomizations (with the default config):
    - block position: x, y uniform in ±0.08 m, ±0.10 m around the table centre; yaw uniform in [−π/4, π/4] rad
    - block colour: one of red, green, blue, yellow (named in the instruction), ± `visual.color_jitter`
    - everything in `EnvCfg.randomization` (friction, masses, servo gains, light, cameras, sensor gains, initial
      joints)

Success conditions:
    The block's centre is at least `lift_height` (0.05 m) above its resting height and both pads of one gripper
    press it with a normal force above `grasp_force` (1 N) each.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rho.assets.mjcf import PropSpec, SceneSpec
from rho.sim.env import BatchedEnv, EnvCfg

from .registry import register_expert, register_task

COLORS = {"red": (0.85, 0.2, 0.15, 1.0), "green": (0.2, 0.7, 0.25, 1.0), "blue": (0.2, 0.35, 0.85, 1.0),
          "yellow": (0.9, 0.8, 0.15, 1.0)}
INSTRUCTIONS = ("pick up the {c} block", "lift the {c} cube", "grab the {c} block and raise it",
                "take the {c} cube off the table")
HALF = 0.02  # block half-size (m)


@dataclass
class LiftBlockCfg(EnvCfg):
    """Lift-block task settings on top of `EnvCfg`."""

    block_xy_range: tuple[float, float] = (0.08, 0.10)  # half-ranges of the block's x, y (m)
    block_yaw_range: float = 0.785  # half-range of the block's yaw (rad)
    lift_height: float = 0.05  # success height above rest (m)
    grasp_force: float = 1.0  # per-pad normal force that counts as pressing (N)


@register_task("lift_block", "rho/LiftBlock-v0", LiftBlockCfg)
class LiftBlockEnv(BatchedEnv):
    cfg: LiftBlockCfg

    @classmethod
    def default_cfg(cls) -> LiftBlockCfg:
        return LiftBlockCfg()

    def _setup_scene(self) -> SceneSpec:
        block = PropSpec("block", "box", (HALF, HALF, HALF), (0.0, 0.0, HALF), mass=0.08, rgba=COLORS["red"])
        return SceneSpec(robot=self.robot, props=(block,), timestep=self.cfg.sim.physics_dt,
                         contact_slots=self.cfg.sim.contact_slots)

    @functools.cached_property
    def _block_qadr(self) -> int:
        return int(self.model.jnt_qposadr[self.model.joint("block").id])

    @functools.cached_property
    def _rest_z(self) -> np.ndarray:
        """(n,) resting height of each env's block centre (m); set at reset (object scale changes it)."""
        return np.full(self.num_envs, HALF)

    def _reset_task(self, env_ids: np.ndarray, rngs: list[np.random.Generator]) -> list[dict[str, Any]]:
        out = []
        rx, ry = self.cfg.block_xy_range
        a = self._block_qadr
        gid = self.prop_geoms[0]
        for k, i in enumerate(env_ids):
            rng = rngs[k]
            x, y = rng.uniform(-rx, rx), rng.uniform(-ry, ry)
            yaw = rng.uniform(-self.cfg.block_yaw_range, self.cfg.block_yaw_range)
            color = list(COLORS)[rng.integers(len(COLORS))]
            template = INSTRUCTIONS[rng.integers(len(INSTRUCTIONS))]
            z = float(self._models[i].geom_size[gid, 0])  # half-size after object-scale randomization
            self.qpos[i, a:a + 7] = [x, y, z, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
            self.qvel[i, self.model.jnt_dofadr[self.model.joint("block").id]:][:6] = 0.0
            jitter = self._models[i].geom_rgba[gid, :3] - self._nominal.geom_rgba[gid, :3]
            self._models[i].geom_rgba[gid, :3] = np.clip(np.array(COLORS[color][:3]) + jitter, 0, 1)
            self._rest_z[i] = z
            out.append({"block_xy": [x, y], "block_yaw": yaw, "block_color": color,
                        "instruction": template.format(c=color), "block_rest_z": z})
        self.batch.set_models(self._models)
        return out

    @classmethod
    def instruction_examples(cls) -> list[str]:
        return [t.format(c=c) for t, c in zip(INSTRUCTIONS, COLORS, strict=False)]

    def _task_obs_keys(self):
        return [("block_pose", (7,), "m|quat_wxyz", "block position (world) and quaternion (w, x, y, z)")]

    def _get_task_obs(self) -> dict[str, np.ndarray]:
        a = self._block_qadr
        return {"block_pose": self.qpos[:, a:a + 7].astype(np.float32)}

    def evaluate(self) -> dict[str, np.ndarray]:
        a = self._block_qadr
        height = self.qpos[:, a + 2] - self._rest_z
        press = self.pad_forces()[..., 0] > self.cfg.grasp_force  # (n, 4): left_a, left_b, right_a, right_b
        grasped = (press[:, 0] & press[:, 1]) | (press[:, 2] & press[:, 3])
        progress = np.clip(height / self.cfg.lift_height, 0.0, 1.0) * 0.7 + 0.3 * grasped
        return {"success": (height >= self.cfg.lift_height) & grasped, "progress": progress,
                "grasped": grasped, "height": height}

    @classmethod
    def mimic_subtask_signals(cls, obs: Mapping[str, np.ndarray], env_config: Mapping[str, Any]
                              ) -> dict[str, np.ndarray]:
        """Isaac Lab Mimic subtask termination signals of a recorded demo, from its observations (`rho dataset
        export-robomimic mimic=true`): `grasp`, (T,) bool — both pads of one gripper press with a normal force
        above `grasp_force` (N), what `evaluate` calls grasped, read from the recorded pad forces
        (`touch_net_<pad>`, after the sensor model: what the expert acts on). The lift that follows is the final
        subtask, which ends with the demo and needs no signal."""
        from rho.datagen.robomimic import pad_grasp

        force = float(env_config.get("grasp_force", LiftBlockCfg.grasp_force))
        # the plain threshold, every step (no release hysteresis: release=1, one step)
        arms = [g for g in (pad_grasp(obs, arm, force, release=1.0, release_steps=1) for arm in ("left", "right"))
                if g is not None]
        return {"grasp": np.logical_or.reduce(arms)} if arms else {}  # none without recorded pad forces

    def _get_rewards(self, m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        a = self._block_qadr
        block = self.qpos[:, a:a + 3]
        tcp = self.site_xpos[:, self.tcp_site]  # (n, arms, 3)
        reach = np.linalg.norm(tcp - block[:, None], axis=-1).min(axis=1)
        return {"reach": 1.0 - np.tanh(10.0 * reach), "grasp": 0.5 * m["grasped"],
                "lift": 2.0 * np.clip(m["height"] / self.cfg.lift_height, 0, 1)}


@register_expert("lift_block", action_mode="ee_delta")
class LiftBlockExpert:
    """Scripted expert for `lift_block` in `ee_delta` mode: the arm nearer the block goes above it, descends with
    the fingers straddling two faces, closes until both pads press the block (touch), and lifts.

    Works on the batch: `act(env)` → (n, 14) action. Phases per env: 0 above, 1 descend, 2 squeeze, 3 lift.
    """

    name, version = "lift_block_scripted", "0.1"

    grasp_z = 0.02  # TCP height above the block centre when grasping: fingertips clear the table (m)

    def __init__(self, env: LiftBlockEnv, squeeze_force: float = 4.0):
        if env.cfg.action.mode != "ee_delta":
            raise ValueError("LiftBlockExpert drives action.mode=ee_delta; set action.mode=ee_delta")
        self.env, self.squeeze_force = env, squeeze_force
        self.phase = np.zeros(env.num_envs, int)
        self.timer = np.zeros(env.num_envs, int)
        self.hold = np.zeros((env.num_envs, 3))  # grasp position latched when squeezing starts (m)

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        ids = slice(None) if env_ids is None else env_ids
        self.phase[ids] = 0
        self.timer[ids] = 0

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        from rho.sim.ik import quat_error
        from rho.sim.randomization import mat_to_quat

        env, n = self.env, self.env.num_envs
        block, ee = obs["block_pose"].astype(float), obs["ee_pose"].astype(float)
        target = env.ee_target  # (n, arms, 7) running TCP target the deltas move
        arm = (block[:, 0] > 0).astype(int)  # 0 = left arm (x < 0), 1 = right
        cfg = env.cfg.action
        action = np.zeros((n, 2, 7))
        action[:, :, 6] = 1.0
        for i in range(n):
            a, ph = arm[i], self.phase[i]
            yaw = 2 * np.arctan2(block[i, 6], block[i, 3])
            c, s = np.cos(yaw), np.sin(yaw)
            rot = np.array([[0, c, s], [0, s, -c], [-1, 0, 0]], float)  # columns: tcp x down, y across faces
            if ph < 2:
                goal = block[i, :3] + [0, 0, 0.10 if ph == 0 else self.grasp_z]
            else:
                goal = self.hold[i] + [0, 0, 0.0 if ph == 2 else 0.12]
            dpos = np.clip(goal - target[i, a, :3], -cfg.max_ee_step_pos, cfg.max_ee_step_pos)
            drot = np.clip(quat_error(mat_to_quat(rot), target[i, a, 3:]), -cfg.max_ee_step_rot,
                           cfg.max_ee_step_rot)
            action[i, a, :6] = np.r_[dpos, drot]
            action[i, a, 6] = 1.0 if ph < 2 else 0.0
            pads = obs[f"touch_net_{env.robot.arms[a]}_a"][i, 0], obs[f"touch_net_{env.robot.arms[a]}_b"][i, 0]
            self.timer[i] += 1
            near = np.linalg.norm(goal - ee[i, a, :3]) < 0.008
            if (ph < 2 and near) or (ph == 2 and min(pads) > self.squeeze_force and self.timer[i] > 5):
                if ph == 1:
                    self.hold[i] = goal
                self.phase[i] = min(ph + 1, 3)
                self.timer[i] = 0
        return action.reshape(n, -1)
