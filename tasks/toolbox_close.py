"""Close a toolbox: one arm steadies the box by its handle, the other shuts the lid and presses it until it latches.

Task description:
    A light toolbox (`rho.assets.toolbox.ToolboxSpec`: 0.12 × 0.22 × 0.08 m, 0.25 kg) stands on the table with its
    lid open, its latch tab facing the left arm and its hinge and handle facing the right arm. The right arm grasps
    the handle and holds the box down, regulating its grip from the pads' forces; the left arm works the latch tab
    with its fingers like a fork (one above it, one below, gripper partly open), swings the lid shut and presses
    the tab down against the rubber seal until the latch catches. Lowered gently, the lid rests on the seal and
    stays unlatched; the press that latches it (≈ 8–11 N at the tab, which sticks out past the box's footprint)
    tips an unheld box, and a push on the lid slides it.

Randomizations (with the default config):
    - box position: x, y uniform in ±0.02 m, ±0.03 m around the table centre; yaw uniform in ±0.15 rad about
      facing the left arm
    - initial lid angle: uniform in [0.52, 1.05] rad (30°–60° open)
    - masses: box uniform in [0.18, 0.32] kg, lid in [0.06, 0.10] kg (then × `randomization.physics.mass_scale`)
    - hinge dry friction × U[0.8, 1.2] (nominal 0.15 N·m); seal stiffness × U[0.85, 1.15] (nominal 45 N·m/rad);
      hinge damping × `randomization.physics.damping_scale` (nominal 0.05 N·m·s/rad); box and tab friction ×
      `randomization.physics.friction_scale` (box on table nominal 0.35)
    - box and lid colour: one of red, blue, green, yellow, orange, grey (named in some instructions), ±
      `visual.color_jitter`
    - everything else in `EnvCfg.randomization` (servo gains, light, cameras, sensor gains, initial joints)

Success conditions:
    The latch is engaged — it engages only once the lid has been pressed below the latch angle (0.021 rad, about
    3 mm of seal compression at the front edge; resting on the seal the lid stands at about 0.05 rad) — and the
    box has stayed flat on the table all episode (tilt below `max_tilt`, 0.1 rad). Tipping the box ends the
    episode as a failure.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rho.assets.mjcf import SceneSpec
from rho.assets.toolbox import ToolboxSpec
from rho.sim.env import BatchedEnv, EnvCfg
from rho.sim.ik import quat_to_mats

from .registry import register_expert, register_task

COLORS = {"red": (0.8, 0.15, 0.12), "blue": (0.15, 0.3, 0.75), "green": (0.15, 0.55, 0.25),
          "yellow": (0.9, 0.75, 0.1), "orange": (0.95, 0.45, 0.1), "grey": (0.5, 0.52, 0.55)}
INSTRUCTIONS = ("close the toolbox", "close the {c} toolbox", "shut the lid of the tool box and latch it",
                "shut the lid of the {c} tool box and latch it", "hold the toolbox steady and close its lid",
                "close and latch the {c} toolbox", "press the toolbox lid down until it clicks shut",
                "latch the lid of the {c} toolbox")
TOOLBOX = ToolboxSpec()
NAME = "toolbox"
LID_DOWN = 0.1  # lid angle below which the lid is down on the seal (rad; it rests at about seal_angle, 0.052)


@dataclass
class ToolboxCloseCfg(EnvCfg):
    """Toolbox-closing settings on top of `EnvCfg`."""

    episode_length_s: float = 10.0
    box_center: tuple[float, float] = (0.0, 0.0)  # nominal box centre on the table (m)
    box_xy_range: tuple[float, float] = (0.02, 0.03)  # half-ranges of the box's x, y (m)
    box_yaw_range: float = 0.15  # half-range of the box's yaw about facing the left arm (rad)
    lid_angle_range: tuple[float, float] = (0.52, 1.05)  # initial lid opening (rad)
    box_mass_range: tuple[float, float] = (0.18, 0.32)  # kg
    lid_mass_range: tuple[float, float] = (0.06, 0.10)  # kg
    hinge_friction_scale: tuple[float, float] = (0.8, 1.2)  # × ToolboxSpec.hinge_friction
    seal_stiffness_scale: tuple[float, float] = (0.85, 1.15)  # × ToolboxSpec.seal_stiffness
    grasp_force: float = 1.0  # per-pad normal force that counts as holding (N)
    max_tilt: float = 0.1  # box tilt that counts as tipping it (rad): a steadied box stays within a few mrad

    def validate(self) -> list[str]:
        out = super().validate()
        lo, hi = self.lid_angle_range
        if not TOOLBOX.seal_angle < lo <= hi <= TOOLBOX.open_limit:
            out.append(f"lid_angle_range must lie within ({TOOLBOX.seal_angle}, {TOOLBOX.open_limit}] rad, "
                       f"got {self.lid_angle_range}")
        for name in ("box_mass_range", "lid_mass_range", "hinge_friction_scale", "seal_stiffness_scale"):
            a, b = getattr(self, name)
            if not 0 < a <= b:
                out.append(f"{name} must satisfy 0 < low <= high, got {(a, b)}")
        return out


def _yaw_quat(yaw: float) -> list[float]:
    return [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]


@register_task("toolbox_close", "rho/ToolboxClose-v0", ToolboxCloseCfg)
class ToolboxCloseEnv(BatchedEnv):
    cfg: ToolboxCloseCfg
    toolbox: ToolboxSpec = TOOLBOX
    close_arm, steady_arm = 0, 1  # left closes the lid, right holds the box

    @classmethod
    def default_cfg(cls) -> ToolboxCloseCfg:
        return ToolboxCloseCfg()

    # ---------------------------------------------------------------- scene and indices
    def _setup_scene(self) -> SceneSpec:
        cx, cy = self.cfg.box_center
        frag = self.toolbox.to_mjcf(NAME, pos=(cx, cy, 0.0), yaw=np.pi)
        return SceneSpec(robot=self.robot, timestep=self.cfg.sim.physics_dt, contact_slots=self.cfg.sim.contact_slots,
                         touch=self.cfg.touch.enabled, extra_worldbody=frag.worldbody, extra_sections=frag.sections,
                         dr_bodies=(NAME, f"{NAME}/lid"))

    def _bind(self) -> None:
        super()._bind()
        # MuJoCo's equality on/off switches are integration state: a live (n, neq) view, float64 here
        self.eq_active = self.batch.bind("eq_active")

    @functools.cached_property
    def _ids(self) -> dict[str, Any]:
        m = self.model
        box, lid = m.joint(NAME), m.joint(f"{NAME}/lid")
        box_body, lid_body = m.body(NAME).id, m.body(f"{NAME}/lid").id
        shell = [g for g in range(m.ngeom) if m.geom_bodyid[g] == box_body and m.geom_contype[g]
                 and m.geom(g).name != f"{NAME}/handle"]
        return {"box_q": int(m.jnt_qposadr[box.id]), "box_d": int(m.jnt_dofadr[box.id]),
                "lid_q": int(m.jnt_qposadr[lid.id]), "lid_d": int(m.jnt_dofadr[lid.id]),
                "box_body": box_body, "lid_body": lid_body, "latch": m.equality(f"{NAME}/latch").id,
                "seal": m.tendon(f"{NAME}/seal").id, "tab": m.site(f"{NAME}/tab").id,
                "handle": m.site(f"{NAME}/handle").id,
                "painted": np.array([*shell, m.geom(f"{NAME}/lid").id], int)}

    @functools.cached_property
    def _episode(self) -> dict[str, np.ndarray]:
        """Per-env episode state: initial lid angle (rad) and box position (m), drawn at reset, and whether the box
        has tipped this episode."""
        return {"lid0": np.ones(self.num_envs), "box0": np.zeros((self.num_envs, 3)),
                "tipped": np.zeros(self.num_envs, bool)}

    # ---------------------------------------------------------------- the latch
    def _pre_physics_step(self, actions: np.ndarray) -> np.ndarray:
        clipped = super()._pre_physics_step(actions)
        self._update_latch()
        self._episode["tipped"] |= self.tilt() >= self.cfg.max_tilt  # latch and tip flags from the same state
        return clipped

    def _update_latch(self) -> None:
        """Engage the latch where the lid is pressed below the latch angle. Only a press gets it there: the seal
        holds the lid's own weight at about the seal angle. The catch holds from then on (no release)."""
        ids = self._ids
        pressed = self.qpos[:, ids["lid_q"]] < self.toolbox.latch_angle
        self.eq_active[pressed, ids["latch"]] = 1.0

    def latched(self) -> np.ndarray:
        """(n,) bool: the latch is engaged."""
        return self.eq_active[:, self._ids["latch"]] > 0.5

    def tilt(self) -> np.ndarray:
        """(n,) angle between the box's z axis and the world's (rad)."""
        quat = self.qpos[:, self._ids["box_q"] + 3:self._ids["box_q"] + 7]
        return np.arccos(np.clip(1 - 2 * (quat[:, 1] ** 2 + quat[:, 2] ** 2), -1.0, 1.0))

    def lid_angle(self) -> np.ndarray:
        """(n,) lid opening (rad), 0 on the rim."""
        return self.qpos[:, self._ids["lid_q"]].copy()

    # ---------------------------------------------------------------- reset
    def _reset_task(self, env_ids: np.ndarray, rngs: list[np.random.Generator]) -> list[dict[str, Any]]:
        out = []
        for k, i in enumerate(env_ids):
            d = self._place(int(i), rngs[k])
            d.update(self._randomize_toolbox(int(i), rngs[k]))
            out.append(d)
        self.batch.set_models(self._models)
        return out

    def _place(self, i: int, rng: np.random.Generator) -> dict[str, Any]:
        """Box pose and lid angle of env i; returns the values drawn."""
        c, ids = self.cfg, self._ids
        x = c.box_center[0] + rng.uniform(-c.box_xy_range[0], c.box_xy_range[0])
        y = c.box_center[1] + rng.uniform(-c.box_xy_range[1], c.box_xy_range[1])
        yaw = np.pi + rng.uniform(-c.box_yaw_range, c.box_yaw_range)  # front (latch) towards the left arm
        lid = rng.uniform(*c.lid_angle_range)
        a = ids["box_q"]
        self.qpos[i, a:a + 7] = [x, y, 0.0, *_yaw_quat(yaw)]
        self.qpos[i, ids["lid_q"]] = lid
        self.qvel[i, ids["box_d"]:ids["box_d"] + 6] = 0.0
        self.qvel[i, ids["lid_d"]] = 0.0
        self._episode["lid0"][i] = lid
        self._episode["box0"][i] = [x, y, 0.0]
        self._episode["tipped"][i] = False
        template = INSTRUCTIONS[rng.integers(len(INSTRUCTIONS))]
        color = list(COLORS)[rng.integers(len(COLORS))]
        self._paint(i, COLORS[color])
        return {"box_xy": [x, y], "box_yaw": yaw, "lid_angle": lid, "box_color": color,
                "instruction": template.format(c=color)}

    def _paint(self, i: int, rgb: tuple[float, float, float]) -> None:
        """Box and lid colour, keeping this episode's colour jitter (zero without visual randomization)."""
        g, m, nom = self._ids["painted"], self._models[i], self._nominal
        jitter = m.geom_rgba[g, :3] - nom.geom_rgba[g, :3] if self.cfg.randomization.enabled else 0.0
        m.geom_rgba[g, :3] = np.clip(np.asarray(rgb) + jitter, 0, 1)

    def _randomize_toolbox(self, i: int, rng: np.random.Generator) -> dict[str, Any]:
        """Masses (kg), hinge friction (N·m) and seal stiffness (N·m/rad) of env i's model, composed with the
        generic domain randomization's mass scale."""
        c, ids, m, nom, tb = self.cfg, self._ids, self._models[i], self._nominal, self.toolbox
        box_mass, lid_mass = rng.uniform(*c.box_mass_range), rng.uniform(*c.lid_mass_range)
        dr = self.cfg.randomization.enabled
        for body, mass, nominal in ((ids["box_body"], box_mass, tb.box_mass), (ids["lid_body"], lid_mass, tb.lid_mass)):
            scale = (m.body_mass[body] / nom.body_mass[body] if dr else 1.0) * mass / nominal
            m.body_mass[body] = nom.body_mass[body] * scale
            m.body_inertia[body] = nom.body_inertia[body] * scale
        fric, seal = rng.uniform(*c.hinge_friction_scale), rng.uniform(*c.seal_stiffness_scale)
        m.dof_frictionloss[ids["lid_d"]] = nom.dof_frictionloss[ids["lid_d"]] * fric
        m.tendon_stiffness[ids["seal"]] = nom.tendon_stiffness[ids["seal"]] * seal
        return {"box_mass": box_mass, "lid_mass": lid_mass, "hinge_friction": tb.hinge_friction * fric,
                "seal_stiffness": tb.seal_stiffness * seal}

    @classmethod
    def instruction_examples(cls) -> list[str]:
        return [t.format(c=c) for t, c in zip(INSTRUCTIONS, list(COLORS) * 2, strict=False)]

    # ---------------------------------------------------------------- observations
    def _task_obs_keys(self):
        return [("box_pose", (7,), "m|quat_wxyz", "toolbox bottom-centre position (world) and quaternion (w, x, y, z)"),
                ("lid_angle", (1,), "rad", "lid opening, 0 on the rim"),
                ("lid_vel", (1,), "rad/s", "lid opening rate"),
                ("latched", (1,), "1", "1 once the latch is engaged"),
                ("tab_pos", (3,), "m", "latch tab grasp point (world)"),
                ("handle_pos", (3,), "m", "box handle grasp point (world)")]

    def _get_task_obs(self) -> dict[str, np.ndarray]:
        ids, f = self._ids, np.float32
        a = ids["box_q"]
        return {"box_pose": self.qpos[:, a:a + 7].astype(f), "lid_angle": self.qpos[:, ids["lid_q"], None].astype(f),
                "lid_vel": self.qvel[:, ids["lid_d"], None].astype(f), "latched": self.latched()[:, None].astype(f),
                "tab_pos": self.site_xpos[:, ids["tab"]].astype(f),
                "handle_pos": self.site_xpos[:, ids["handle"]].astype(f)}

    # ---------------------------------------------------------------- success and rewards
    def evaluate(self) -> dict[str, np.ndarray]:
        ids, tb = self._ids, self.toolbox
        a = ids["box_q"]
        tilt = self.tilt()
        tipped = self._episode["tipped"] | (tilt >= self.cfg.max_tilt)
        latched = self.latched()
        angle = self.qpos[:, ids["lid_q"]]
        lid0 = self._episode["lid0"]
        closing = np.clip((lid0 - angle) / np.maximum(lid0 - tb.latch_angle, 1e-6), 0.0, 1.0)
        press = self.pad_forces()[..., 0] > self.cfg.grasp_force  # (n, 4): left_a, left_b, right_a, right_b
        held = press[:, 2 * self.steady_arm] & press[:, 2 * self.steady_arm + 1]
        success = latched & ~tipped
        disp = np.linalg.norm(self.qpos[:, a:a + 2] - self._episode["box0"][:, :2], axis=1)
        return {"success": success, "progress": np.where(success, 1.0, 0.9 * closing), "latched": latched,
                "tipped": tipped, "tilt": tilt, "lid_angle": angle, "closing": closing, "held": held,
                "box_displacement": disp}

    def _get_dones(self, metrics: dict[str, np.ndarray]) -> np.ndarray:
        """Terminate on success, and on tipping the box (a failure no later action undoes)."""
        return metrics["success"] | metrics["tipped"]

    @classmethod
    def mimic_subtask_signals(cls, obs: Mapping[str, np.ndarray], env_config: Mapping[str, Any]
                              ) -> dict[str, np.ndarray]:
        """Isaac Lab Mimic subtask termination signals of a recorded demo, from its observations (`rho dataset
        export-robomimic mimic=true`, `rho dataset export-isaaclab`); each (T,) bool, relative to the toolbox:

        - `hold_box` (right arm, the steadying one; holding on is its final subtask): both right pads press above
          `grasp_force` (N), what `evaluate` calls held, from the recorded pad forces (`pad_grasp`: a grasp holds
          while both pads stay above half of it);
        - `lid_down` (left arm, subtask 1 of 2: reach the tab and swing the lid shut; the press that latches it is
          the final subtask): the lid angle (`lid_angle`) is below `LID_DOWN` (0.1 rad) — down on the seal, which
          it meets at 0.052 rad.

        Without recorded pad forces (touch off) `hold_box` is left out."""
        from rho.datagen.robomimic import pad_grasp

        out: dict[str, np.ndarray] = {}
        hold = pad_grasp(obs, ("left", "right")[cls.steady_arm],
                         float(env_config.get("grasp_force", ToolboxCloseCfg.grasp_force)))
        if hold is not None:
            out["hold_box"] = hold
        if "lid_angle" in obs:
            out["lid_down"] = np.asarray(obs["lid_angle"], float)[:, 0] < LID_DOWN
        return out

    def _get_rewards(self, m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tcp = self.site_xpos[:, self.tcp_site]  # (n, arms, 3)
        handle, tab = self.site_xpos[:, self._ids["handle"]], self.site_xpos[:, self._ids["tab"]]
        steady_d = np.linalg.norm(tcp[:, self.steady_arm] - handle, axis=1)
        close_d = np.linalg.norm(tcp[:, self.close_arm] - tab, axis=1)
        return {"steady_reach": 0.5 * (1.0 - np.tanh(10.0 * steady_d)), "steady_hold": 0.5 * m["held"],
                "close_reach": 0.5 * (1.0 - np.tanh(10.0 * close_d)), "lid_closing": 2.0 * m["closing"],
                "latch": 5.0 * m["latched"],
                "box_still": -np.minimum(m["box_displacement"] / 0.05 + m["tilt"] / self.cfg.max_tilt, 1.0)}


@dataclass
class _ArmState:
    """Per-env state of one arm in the expert (arrays over envs)."""

    phase: np.ndarray
    timer: np.ndarray
    grip: np.ndarray  # commanded opening fraction [0, 1]
    side: np.ndarray  # ±1: which way the gripper's y axis points along the box's y axis (steadying arm)

    @classmethod
    def make(cls, n: int) -> _ArmState:
        return cls(np.zeros(n, int), np.zeros(n, int), np.ones(n), np.ones(n))

    def reset(self, ids) -> None:
        self.phase[ids], self.timer[ids], self.grip[ids] = 0, 0, 1.0

    def go(self, i: int, phase: int) -> None:
        self.phase[i], self.timer[i] = phase, 0


@register_expert("toolbox_close", action_mode="ee_delta")
class ToolboxCloseExpert:
    """Scripted expert for `toolbox_close` in `ee_delta` mode; both arms, closed loop on touch and lid state.

    Steadying arm (right), phases: 0 above the handle, 1 down onto it, 2 grip and hold. Its grip force target
    rises with the shear its pads feel (the box being pushed or tipped), and it regulates the gripper opening until
    the pads' normal force meets that target.

    Closing arm (left) works the latch tab like a fork: fingers along the hinge axis, one above and one below the
    tab, gripper partly open, so it pushes but never grasps (the box is free to slide or tip unless steadied).
    Phases: 0 out past the lid's free edge, 1 beside the tab, 2 slide the fingers over and under it (once the box
    is held), 3 swing the lid shut along the hinge arc, leading the measured lid angle (the upper pad pushes),
    4 press: move down along the arc while the pads feel less than a force target, 5 tug when the lid stops
    yielding at the target: lift a little — a latched lid holds the lower pad back, an unlatched one comes up
    freely — and press again with a higher target if it did not hold, 6 latch felt: stop. Losing the tab (the lid
    far from where the fork drives it) restarts at 0. The episode ends as soon as the latch engages, which is
    usually during the press.
    """

    name, version = "toolbox_close_scripted", "0.3"

    approach = 0.07  # pre-grasp distance from a grasp point (m)
    beside = 0.09  # fork start: distance beside the tab along the box's y, fingertips clear of it (m)
    fork_depth = 0.01  # the fork's TCP stops this far short of the tab's centre (box y), so the palm clears it (m)
    hold_force = (3.0, 8.0)  # steadying grip target: base and cap, per pad (N)
    fork_clearance = 0.006  # gap between each pad and the tab while working it (m)
    swing_rate, swing_lead = 0.02, 0.1  # lid swing: commanded rate (rad per step), most lead on the lid (rad)
    press_start, press_step, press_max = 9.0, 3.0, 18.0  # press force target: first, raise per retry, cap (N)
    latch_felt = 4.0  # lower-pad force while tugging that means the lid is held down (N)

    def __init__(self, env: ToolboxCloseEnv):
        if env.cfg.action.mode != "ee_delta":
            raise ValueError("ToolboxCloseExpert drives action.mode=ee_delta; set action.mode=ee_delta")
        if not env.cfg.touch.enabled:
            raise ValueError("ToolboxCloseExpert regulates its grip and press from touch; set touch.enabled=true")
        n = env.num_envs
        self.env, self.tb = env, env.toolbox
        self.steady, self.close = _ArmState.make(n), _ArmState.make(n)
        self.hold_pos = np.zeros((n, 3))  # steadying TCP goal latched at grasp (m, world)
        self.theta_cmd = np.zeros(n)  # lid angle the closing TCP goal follows (rad)
        self.press_target = np.full(n, self.press_start)  # N
        self.hold_steps = np.zeros(n, int)
        gap = self.tb.tab_size[2] + 2 * self.fork_clearance
        self.fork_open = gap / 2 / env.robot.gripper.stroke  # gripper opening fraction of the fork
        self.fork_wide = (gap + 0.016) / 2 / env.robot.gripper.stroke  # while sliding onto the tab

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        ids = slice(None) if env_ids is None else env_ids
        self.steady.reset(ids)
        self.close.reset(ids)
        self.press_target[ids] = self.press_start
        self.hold_steps[ids] = 0

    # ---------------------------------------------------------------- helpers
    def _pads(self, obs: dict[str, np.ndarray], arm: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, 2) normal force (N) and (n, 2, 2) shear (x, y) per pad (a, b) of an arm, from the touch observation."""
        name = self.env.robot.arms[arm]
        net = np.stack([obs[f"touch_net_{name}_a"], obs[f"touch_net_{name}_b"]], axis=1).astype(float)
        return net[..., 0], net[..., 1:]

    def _step_towards(self, arm: int, i: int, pos: np.ndarray, rot: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """ee_delta (6,) moving the arm's TCP target of env i towards a pose (m, rotation matrix), clipped per step
        to `speed` × the action limit."""
        from rho.sim.ik import quat_error
        from rho.sim.randomization import mat_to_quat

        cfg, tgt = self.env.cfg.action, self.env.ee_target[i, arm]
        dpos = np.clip(pos - tgt[:3], -speed * cfg.max_ee_step_pos, speed * cfg.max_ee_step_pos)
        drot = quat_error(mat_to_quat(rot), tgt[3:])
        ang = np.linalg.norm(drot)
        if ang > cfg.max_ee_step_rot:  # keep the rotation axis, shorten the step
            drot *= cfg.max_ee_step_rot / ang
        return np.r_[dpos, drot]

    @staticmethod
    def _frame(finger_dir: np.ndarray, opening: np.ndarray) -> np.ndarray:
        """TCP rotation: x along the fingers, y the opening direction (unit vectors, world)."""
        y = opening - finger_dir * (opening @ finger_dir)
        y /= np.linalg.norm(y)
        return np.column_stack([finger_dir, y, np.cross(finger_dir, y)])

    def _near(self, obs, arm: int, i: int, pos: np.ndarray, rot: np.ndarray, tol: float = 0.006,
              rot_tol: float = 0.1) -> bool:
        """The TCP is within tol (m) of a position and rot_tol (rad) of a rotation matrix."""
        from rho.sim.ik import quat_error
        from rho.sim.randomization import mat_to_quat

        ee = obs["ee_pose"][i, arm].astype(float)
        turn = np.linalg.norm(quat_error(mat_to_quat(rot), ee[3:]))
        return bool(np.linalg.norm(ee[:3] - pos) < tol and turn < rot_tol)

    def _lid_frame(self, obs, i: int, box_rot: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """World rotation (3, 3) and hinge origin (3,) of the lid frame at a lid angle (rad)."""
        box_pos = obs["box_pose"][i, :3].astype(float)
        return box_rot @ self.tb.lid_rotation(angle), box_pos + box_rot @ self.tb.hinge_pos

    # ---------------------------------------------------------------- policy
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        env, n = self.env, self.env.num_envs
        box_rot = quat_to_mats(obs["box_pose"][:, 3:].astype(float))
        action = np.zeros((n, 2, 7))
        for i in range(n):
            action[i, env.steady_arm] = self._act_steady(obs, i, box_rot[i])
            action[i, env.close_arm] = self._act_close(obs, i, box_rot[i])
        return action.reshape(n, -1)

    def _act_steady(self, obs, i: int, box_rot: np.ndarray) -> np.ndarray:
        s, arm = self.steady, self.env.steady_arm
        if s.phase[i] == 0 and s.timer[i] == 0:  # pads across the handle, whichever way round is nearer
            s.side[i] = np.sign(_tcp_y(self.env.ee_target[i, arm, 3:]) @ box_rot[:, 1]) or 1.0
        rot = self._frame(np.array([0.0, 0.0, -1.0]), s.side[i] * box_rot[:, 1])
        s.timer[i] += 1
        handle = obs["handle_pos"][i].astype(float)
        if s.phase[i] == 0:
            goal = handle + np.array([0.0, 0.0, self.approach])
            if self._near(obs, arm, i, goal, rot, 0.01):
                s.go(i, 1)
        elif s.phase[i] == 1:
            goal = handle
            if self._near(obs, arm, i, goal, rot):
                self.hold_pos[i] = goal
                s.go(i, 2)
        else:
            goal = self.hold_pos[i]
            normal, shear = self._pads(obs, arm)
            # grip harder the more the box pulls along the pads (μ ≈ 1: normal ≥ shear, plus a base)
            target = min(self.hold_force[0] + 1.5 * np.linalg.norm(shear[i], axis=-1).max(), self.hold_force[1])
            s.grip[i] = np.clip(s.grip[i] - np.clip(0.02 * (target - normal[i].min()), -0.05, 0.05), 0.0, 1.0)
        return np.r_[self._step_towards(arm, i, goal, rot), s.grip[i]]

    def steadied(self, obs, i: int) -> bool:
        """The steadying arm holds the handle with both pads (touch)."""
        normal, _ = self._pads(obs, self.env.steady_arm)
        return bool(self.steady.phase[i] == 2 and normal[i].min() > 0.7 * self.hold_force[0])

    def _act_close(self, obs, i: int, box_rot: np.ndarray) -> np.ndarray:
        c, arm, tb = self.close, self.env.close_arm, self.tb
        angle = float(obs["lid_angle"][i, 0])
        c.timer[i] += 1
        across = box_rot[:, 1]  # the fork comes in from the box's +y side of the tab, fingers first
        if c.phase[i] <= 2:  # bring the fork onto the tab where it is now: out past the lid's edge, beside, onto
            lid_rot, _ = self._lid_frame(obs, i, box_rot, angle)
            rot = self._frame(-across, lid_rot[:, 2])  # fingers along the hinge axis, opening along the lid normal
            side = across * (self.beside if c.phase[i] < 2 else self.fork_depth)
            ahead = lid_rot[:, 0] * (self.approach if c.phase[i] == 0 else 0.0)  # out past the lid's free edge
            goal = obs["tab_pos"][i].astype(float) + side + ahead
            if c.phase[i] == 0 and self._near(obs, arm, i, goal, rot, 0.01):
                c.go(i, 1)
            elif c.phase[i] == 1 and self._near(obs, arm, i, goal, rot, 0.004, 0.05):  # aligned: slide in
                c.go(i, 2)
            elif c.phase[i] == 2 and self._near(obs, arm, i, goal, rot) and self.steadied(obs, i):
                self.theta_cmd[i] = angle
                c.go(i, 3)
            # slide in with the fork wide open and slowly; it narrows to the working gap once around the tab
            speed = 0.5 if c.phase[i] == 2 else 1.0
            return np.r_[self._step_towards(arm, i, goal, rot, speed), 1.0 if c.phase[i] < 2 else self.fork_wide]
        normal, _ = self._pads(obs, arm)
        self._update_theta(i, angle, normal[i])
        lid_rot, origin = self._lid_frame(obs, i, box_rot, self.theta_cmd[i])
        rot = self._frame(-across, lid_rot[:, 2])
        # the upper pad on the tab's top face to push and press, the lower pad under it to tug
        lift = self.fork_clearance * (1.0 if c.phase[i] == 5 else -1.0)
        goal = origin + lid_rot @ (tb.tab_grasp + np.array([0.0, self.fork_depth, lift]))
        if abs(angle - self.theta_cmd[i]) > 0.3:  # the tab left the fork: bring it back
            c.go(i, 0)
        return np.r_[self._step_towards(arm, i, goal, rot), self.fork_open]

    def _update_theta(self, i: int, angle: float, normal: np.ndarray) -> None:
        """Advance the closing arm's commanded lid angle (rad) in phases 3–6 from the lid angle and the pads' normal
        forces (N): pad a is above the tab, pad b below it, so a − b is the net push down on the tab (a hard press
        deflects the fingers until both touch) and b − a the net pull up."""
        c, tb = self.close, self.tb
        push = normal[0] - normal[1]
        if c.phase[i] == 3:  # swing shut: the goal leads the lid by at most swing_lead
            self.theta_cmd[i] = max(min(self.theta_cmd[i], angle) - self.swing_rate, angle - self.swing_lead,
                                    tb.seal_angle - 0.01)
            if angle < tb.seal_angle + 0.01:
                c.go(i, 4)
        elif c.phase[i] == 4:  # press: lower the goal while the push felt is below the target
            err = self.press_target[i] - push
            self.theta_cmd[i] = np.clip(self.theta_cmd[i] - np.clip(0.0008 * err, -0.004, 0.004), -0.1, tb.seal_angle)
            self.hold_steps[i] = self.hold_steps[i] + 1 if abs(err) < 1.5 else 0
            if self.hold_steps[i] > 15:  # the lid stopped yielding at the target: did it catch?
                c.go(i, 5)
        elif c.phase[i] == 5:  # tug: raise the goal; a latched lid holds the lower pad back
            self.theta_cmd[i] = min(self.theta_cmd[i] + 0.004, tb.seal_angle + 0.05)
            if -push > self.latch_felt:
                self.theta_cmd[i] = angle
                c.go(i, 6)  # felt the latch: stop pulling (the episode has ended on the latch by now)
            elif c.timer[i] > 20:  # the lid came up freely: not latched, press harder
                self.press_target[i] = min(self.press_target[i] + self.press_step, self.press_max)
                self.hold_steps[i] = 0
                c.go(i, 4)
        elif c.phase[i] == 6 and angle > tb.seal_angle:  # it was not the latch after all: press again
            self.hold_steps[i] = 0
            c.go(i, 4)


def _tcp_y(quat: np.ndarray) -> np.ndarray:
    """The TCP's y axis (world) from its quaternion (w, x, y, z)."""
    return quat_to_mats(quat)[:, 1]
