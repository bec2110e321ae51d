"""The batched environment base on the MuJoCo backend, with the lifecycle of Isaac Lab's `DirectRLEnv`.

N environments of one compiled scene step together on `mujoco.batch.Batch`'s thread pool (the engine releases the
GIL, so `sim.num_threads=2` uses both cores). A task subclasses `BatchedEnv` and overrides only the hooks:

    _setup_scene()                  → SceneSpec (props, task assets)
    _reset_task(env_ids, rngs)      → initial state of the task, returns the values drawn
    _get_rewards(metrics)           → dict of named dense reward terms, each (n,)
    evaluate()                      → {"success": (n,) bool, "progress": (n,) float, ...}
    _get_dones()                    → terminated (n,) bool (time limits are handled here)
    _task_obs_keys()/_get_task_obs()→ privileged task observations (object poses, ...)
    instruction(env_id)             → the episode's language instruction

One control step (`step`): `_pre_physics_step(action)` validates and converts the action to servo targets;
`decimation` physics substeps run in chunks of the touch period, sampling touch after each chunk; then dones,
rewards, resets of finished envs (same-step autoreset, as Isaac Lab), and observations.

Actions (14-D for ALOHA, per arm in order left, right):
    joint_pos: waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate targets (rad), gripper opening in
               [0, 1] (0 closed, 1 open = `GripperSpec.stroke` per finger).
    ee_delta:  dx, dy, dz (m, world) and a rotation vector rx, ry, rz (rad, world) that move a running TCP target
               (re-seated on the measured pose at reset, kept within `ee_lead_steps` steps of it, observed as
               `ee_target`), solved by damped-least-squares IK; gripper opening in [0, 1].
    ee_pose:   absolute TCP targets, 10-D per arm: position x, y, z (m, world), orientation as the 6-D rotation
               representation (the target frame's x then y axis in world coordinates, `rho.sim.ik.rot6_from_mat`;
               re-orthonormalized), gripper opening in [0, 1]; solved to joint targets by iterated damped least
               squares from the measured joints (`ik_iterations`), so a pose that `tcp_pose_of` computed from joint
               targets executes those targets (`rho.policy` trains on such labels with `data.actions=ee_pose`).
Whatever the mode, the servo targets a step executed are `info["joint_action"]` / `env.joint_action`, in the
joint_pos layout: what datasets train on (replaying them in joint_pos reproduces the episode).
Out-of-range values are clipped (joint limits, gripper [0, 1], `action.max_ee_step_*`) and counted in
`info["action_clipped"]` — or rejected with `action.out_of_range=error`. NaN/inf always raise.

Observations follow `rho.sim.spec` and are declared in `self.obs_spec`. Seeding: `reset(seed=s)` derives one
seed per episode from (s, env index, episode count); every random draw of that episode (initial state, domain
randomization, sensor noise) comes from a Generator on that seed, so an episode replays bit-identically from its
`episode_seed` whatever batch slot it runs in (`reset_idx(ids, episode_seeds=...)`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from rho.assets.mjcf import CONTACT_SLOT_SIZE, FINGERS, SceneSpec, build_mjcf, pad_names
from rho.assets.robots import get_robot
from rho.config import ConfigError, validate_config

from . import kernels
from . import touch as touch_model
from .ik import axis_angle_to_quat, dls_step, mat_error, mat_from_rot6, quat_error, quat_mul, rot6_from_mat
from .physics import make_batch, simulation_errors
from .randomization import RandomizationCfg, mat_to_quat, quat_to_mat, random_rotation
from .sensors import SensorCfg, SensorChannel, rate_to_period_steps
from .spec import ObservationSpec, ObsKey

DEFAULT_CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")
EE_POSE_DIM = 10  # ee_pose action per arm: position (3), 6-D rotation (6), gripper (1)
# model fields domain randomization writes (reset to nominal at every episode start)
_DR_FIELDS = ("geom_friction", "dof_damping", "actuator_gainprm", "actuator_biasprm", "body_mass", "body_inertia",
              "geom_size", "geom_rbound", "geom_aabb", "light_diffuse", "light_dir", "geom_rgba", "mat_rgba", "cam_pos",
              "cam_quat")


@dataclass
class SimCfg:
    """Physics stepping."""

    physics_dt: float = 0.001  # MuJoCo timestep (s); ≤ half the 4–5 ms contact time constants of pads and props
    control_hz: float = 50.0  # policy / action rate (Hz); must be a whole number of physics steps
    num_threads: int = 1  # batch threads: 1 = one core, 0 = all cores
    contact_slots: int = 8  # contacts reported per pad to the taxel model (strongest first)
    max_speed: float = 100.0  # a joint faster than this (rad/s or m/s) marks the env as diverged
    backend: Literal["mujoco", "isaaclab"] = "mujoco"  # physics engine (rho.sim.physics); isaaclab: Python 3.12
    device: str = "cpu"  # isaaclab backend: "cpu" or "cuda:N" (the mujoco backend runs on the CPU)
    njmax: int = 3000  # isaaclab backend: constraint rows per world (MuJoCo-Warp preallocates)
    nconmax: int = 1000  # isaaclab backend: contacts per world (MuJoCo-Warp preallocates)

    def validate(self) -> list[str]:
        out = []
        if self.physics_dt <= 0 or self.control_hz <= 0:
            out.append("physics_dt and control_hz must be > 0")
        else:
            try:
                rate_to_period_steps(self.control_hz, self.physics_dt)
            except ValueError as e:
                out.append(f"control_hz / physics_dt: {e}")
        if self.backend == "mujoco" and self.device != "cpu":
            out.append(f"device={self.device!r} needs backend=isaaclab (the mujoco backend runs on the CPU)")
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            out.append(f"device must be 'cpu' or 'cuda:N', got {self.device!r}")
        if self.num_threads < 0:
            out.append(f"num_threads must be >= 0 (0 = all cores), got {self.num_threads}")
        return out


@dataclass
class TouchCfg:
    """Finger-pad taxel arrays: grid size, history and sensor realism."""

    enabled: bool = True
    rate_hz: float = 100.0  # touch sampling rate (Hz): a whole multiple of the control rate, ≤ the physics rate
    rows: int = 4  # taxels along the finger
    cols: int = 4  # taxels across the finger
    history: int = 1  # most recent samples in each observation (at the touch rate)
    taxel: SensorCfg = field(default_factory=lambda: SensorCfg(noise_std=0.02, saturation=40.0))  # per taxel (N)
    net: SensorCfg = field(default_factory=lambda: SensorCfg(noise_std=0.05, saturation=150.0))  # per pad (N)

    def validate(self) -> list[str]:
        out = [] if 1 <= self.rows <= 32 and 1 <= self.cols <= 32 else [
            f"rows×cols must be within 1..32 each, got {self.rows}×{self.cols}"]
        if self.history < 1:
            out.append(f"history must be >= 1, got {self.history}")
        if self.rate_hz <= 0:
            out.append(f"rate_hz must be > 0, got {self.rate_hz}")
        for name in ("taxel", "net"):
            if getattr(self, name).rate_hz is not None:
                out.append(f"{name}.rate_hz is set by touch.rate_hz; leave it null (got {getattr(self, name).rate_hz})")
        return out


@dataclass
class ProprioCfg:
    """Joint encoders (sampled once per control step unless rate_hz is lower)."""

    joint_pos: SensorCfg = field(default_factory=lambda: SensorCfg(noise_std=0.001))  # rad
    joint_vel: SensorCfg = field(default_factory=lambda: SensorCfg(noise_std=0.01))  # rad/s


@dataclass
class CameraCfg:
    """One camera: resolution, depth, and sensor realism (rate, latency, noise in 8-bit levels)."""

    width: int = 128
    height: int = 128
    depth: bool = False
    sensor: SensorCfg = field(default_factory=SensorCfg)


@dataclass
class ActionCfg:
    """Action space and its limits."""

    mode: Literal["joint_pos", "ee_delta", "ee_pose"] = "joint_pos"
    out_of_range: Literal["clip", "error"] = "clip"
    max_ee_step_pos: float = 0.02  # ee_delta: largest translation per control step (m)
    max_ee_step_rot: float = 0.15  # ee_delta: largest rotation per control step (rad)
    ik_damping: float = 0.05  # damped-least-squares λ
    ee_lead_steps: float = 3.0  # ee_delta: how far (in max steps) the TCP target may run ahead of the TCP
    ik_iterations: int = 30  # ee_pose: most damped-least-squares iterations per control step
    ik_tolerance: float = 1e-7  # ee_pose: stop iterating below this pose error (m, rad)
    ik_pose_damping: float = 0.01  # ee_pose: λ of the iterated solve (small: it converges to the exact joints)
    ee_pose_reach: float = 2.0  # ee_pose: |x|, |y|, |z| bound of a TCP target (m, world)
    # ee_delta: round the IK's servo targets to float32, the precision of a joint_pos action, so the executed targets
    # (info["joint_action"]) replay the step bit-identically in joint_pos; false: float64 targets, as rho wrote
    # format-v1 datasets (`rho dataset convert` replays those with it)
    servo_float32: bool = True


@dataclass
class EnvCfg:
    """Everything an environment needs; tasks extend it with their own fields."""

    robot: str = "aloha"
    num_envs: int = 1
    seed: int = 0
    episode_length_s: float = 8.0
    sim: SimCfg = field(default_factory=SimCfg)
    action: ActionCfg = field(default_factory=ActionCfg)
    touch: TouchCfg = field(default_factory=TouchCfg)
    proprio: ProprioCfg = field(default_factory=ProprioCfg)
    cameras: dict[str, CameraCfg] = field(default_factory=lambda: {c: CameraCfg() for c in DEFAULT_CAMERAS})
    randomization: RandomizationCfg = field(default_factory=RandomizationCfg)

    def validate(self) -> list[str]:
        out = [] if self.num_envs >= 1 else [f"num_envs must be >= 1, got {self.num_envs}"]
        if self.episode_length_s <= 0:
            out.append(f"episode_length_s must be > 0, got {self.episode_length_s}")
        for name, cam in self.cameras.items():
            if not (8 <= cam.width <= 1920 and 8 <= cam.height <= 1920):
                out.append(f"cameras.{name}: width/height must be within 8..1920, got {cam.width}x{cam.height}")
        return out


def joint_pos_bounds(robot) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the `joint_pos` action, float64 (arms × (dof + 1),): per arm the joint limits (rad), then the
    gripper opening [0, 1]."""
    low = np.concatenate([np.append([j.range[0] for j in robot.arm.joints], 0.0) for _ in robot.arms])
    high = np.concatenate([np.append([j.range[1] for j in robot.arm.joints], 1.0) for _ in robot.arms])
    return low, high


class BatchedEnv(gym.vector.VectorEnv):
    """N environments of one task on the MuJoCo backend; see the module docstring for the lifecycle."""

    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"]}
    task_name = "base"
    # whether a successful episode touches the finger pads (datasets are checked for it); tasks whose contact is
    # through unsensorized surfaces (a fingertip pressing a button) say False
    touch_contact_expected: ClassVar[bool] = True
    _attach_physics: ClassVar[bool] = False  # True when an Isaac Lab DirectRLEnv owns the simulation (see isaaclab/)

    def __init__(self, cfg: EnvCfg | None = None, **overrides: Any):
        cfg = copy.deepcopy(cfg) if cfg is not None else self.default_cfg()
        for k, v in overrides.items():  # gym.make(..., num_envs=4) style shortcuts for top-level fields
            if k not in {f.name for f in dataclasses.fields(cfg)}:
                near = difflib.get_close_matches(k, [f.name for f in dataclasses.fields(cfg)], n=1)
                hint = f" Did you mean {near[0]!r}?" if near else ""
                raise TypeError(f"{type(self).__name__}: unknown config field {k!r} for {type(cfg).__name__}.{hint}")
            setattr(cfg, k, v)
        problems = validate_config(cfg)
        if problems:
            raise ConfigError(problems)
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.robot = get_robot(cfg.robot)
        self.pads = pad_names(self.robot)
        self.scene = self._setup_scene()
        self.scene_xml = build_mjcf(self.scene)
        self.model = mujoco.MjModel.from_xml_string(self.scene_xml)
        self._nominal = copy.copy(self.model)
        self._models = [copy.copy(self.model) for _ in range(self.num_envs)]
        self.batch = make_batch(self.model, self.scene_xml, self.num_envs, cfg.sim, attach=self._attach_physics)
        self._sim_errors = simulation_errors(cfg.sim.backend)
        self.batch.set_models(self._models)
        self._bind()
        self._index_model()
        self._setup_timing()
        self._setup_sensors()
        self.obs_spec = self._build_obs_spec()
        self._setup_spaces()
        self._renderer = None
        self._scratch = mujoco.MjData(self.model)
        self.episode_step = np.zeros(self.num_envs, np.int64)
        self.episode_count = np.zeros(self.num_envs, np.int64)
        self.episode_seed = np.zeros(self.num_envs, np.uint64)
        self.rngs: list[np.random.Generator] = [np.random.default_rng(0) for _ in range(self.num_envs)]
        self.episode_params: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self._base_seed = cfg.seed
        self._obs: dict[str, np.ndarray] | None = None
        self._ee_target = np.zeros((self.num_envs, len(self.robot.arms), 7))  # ee_delta running TCP target
        # the servo targets last written, in the joint_pos action layout (see `joint_action`)
        self._joint_action = np.zeros((self.num_envs, len(self._act_ctrl)), np.float32)  # joint_pos layout
        self._clock = 0  # control steps since construction, shared by all envs
        # optional source of episode seeds for resets (incl. same-step autoresets): env index → seed; datagen sets
        # it so that every recorded attempt has a seed fixed in advance
        self.episode_seed_fn: Callable[[int], int] | None = None
        self._zero_reward = np.zeros(self.num_envs)
        self._no_success = np.zeros(self.num_envs, bool)

    # ------------------------------------------------------------------ construction
    @classmethod
    def default_cfg(cls) -> EnvCfg:
        return EnvCfg()

    def _setup_scene(self) -> SceneSpec:
        return SceneSpec(robot=self.robot, timestep=self.cfg.sim.physics_dt, contact_slots=self.cfg.sim.contact_slots,
                         touch=self.cfg.touch.enabled)

    def _bind(self) -> None:
        b = self.batch
        self.qpos, self.qvel, self.ctrl = b.bind("qpos"), b.bind("qvel"), b.bind("ctrl")
        self.sensordata, self.site_xpos, self.site_xmat = b.bind("sensordata"), b.bind("site_xpos"), b.bind("site_xmat")
        self.xpos, self.xquat = b.bind("xpos"), b.bind("xquat")
        # MuJoCo resets a sim by itself on NaN/huge qpos, qvel or qacc and counts a warning: (n, 3) live view
        w = mujoco.mjtWarning
        self._bad_warning_ids = np.array([int(w.mjWARN_BADQPOS), int(w.mjWARN_BADQVEL), int(w.mjWARN_BADQACC)],
                                         np.int64)
        self._max_speed = self.cfg.sim.max_speed

    def _index_model(self) -> None:
        m, r = self.model, self.robot
        jnt = [[m.joint(n).id for n in r.joint_names(a)] for a in r.arms]
        self.arm_qadr = np.array([[m.jnt_qposadr[j] for j in js] for js in jnt])  # (arms, dof)
        self.arm_dadr = np.array([[m.jnt_dofadr[j] for j in js] for js in jnt])
        self.finger_qadr = np.array([m.jnt_qposadr[m.joint(f"{a}/finger_a").id] for a in r.arms])
        self.finger_dadr = np.array([m.jnt_dofadr[m.joint(f"{a}/finger_a").id] for a in r.arms])
        self.arm_act = np.array([[m.actuator(n).id for n in r.joint_names(a)] for a in r.arms])
        self.grip_act = np.array([m.actuator(f"{a}/gripper").id for a in r.arms])
        self.joint_low = np.array([[j.range[0] for j in r.arm.joints]] * len(r.arms))
        self.joint_high = np.array([[j.range[1] for j in r.arm.joints]] * len(r.arms))
        self.tcp_site = np.array([m.site(f"{a}/tcp").id for a in r.arms])
        self.tcp_body = m.site_bodyid[self.tcp_site]
        self.pad_site = np.array([m.site(f"{a}/pad_{f}").id for a in r.arms for f in FINGERS])
        if self.cfg.touch.enabled:
            cs = [m.sensor(f"{a}/pad_{f}/contacts") for a in r.arms for f in FINGERS]
            slots = self.cfg.sim.contact_slots * CONTACT_SLOT_SIZE
            assert all(s.adr[0] == cs[0].adr[0] + k * slots for k, s in enumerate(cs)), "slot sensors not contiguous"
            self.contact_idx = slice(cs[0].adr[0], cs[0].adr[0] + len(cs) * slots)  # reshaped to (pads, slots*12)
        ns = [m.sensor(f"{a}/pad_{f}/net") for a in r.arms for f in FINGERS]
        assert all(s.adr[0] == ns[0].adr[0] + 3 * k for k, s in enumerate(ns)), "net sensors not contiguous"
        self.net_idx = slice(ns[0].adr[0], ns[0].adr[0] + 3 * len(ns))  # reshaped to (pads, 3)
        self.home = np.array(r.home)
        self.prop_geoms = np.array([m.geom(p.name).id for p in self.scene.props], dtype=int)  # scaled props
        self.prop_bodies = np.array([m.body(p.name).id for p in self.scene.props], dtype=int)
        # friction / mass / colour randomization: props and the task's listed asset bodies
        dr_bodies = [m.body(b).id for b in self.scene.dr_bodies]
        self.dr_bodies = np.concatenate([self.prop_bodies, dr_bodies]).astype(int)
        self.dr_geoms = np.flatnonzero(np.isin(m.geom_bodyid, self.dr_bodies)).astype(int)
        self.pad_geoms = np.array([m.geom(f"{a}/pad_{f}").id for a in r.arms for f in FINGERS])
        self.fixed_cams = np.array([i for i in range(m.ncam) if m.cam_bodyid[i] == 0], dtype=int)

    def _setup_timing(self) -> None:
        s = self.cfg.sim
        self.physics_dt = s.physics_dt
        self.decimation = rate_to_period_steps(s.control_hz, s.physics_dt)
        self.control_dt = self.decimation * s.physics_dt
        self.max_episode_steps = max(1, round(self.cfg.episode_length_s / self.control_dt))
        t = self.cfg.touch
        rate = t.rate_hz
        self.touch_period = rate_to_period_steps(rate, s.physics_dt)
        if self.decimation % self.touch_period:
            raise ValueError(
                f"touch rate {rate} Hz must be a whole multiple of the control rate {s.control_hz} Hz "
                f"(touch period {self.touch_period} physics steps does not divide {self.decimation}); "
                "fix: pick touch.rate_hz from the control rate × 1, 2, 5, 10, …")
        self.touch_hz = 1.0 / (self.touch_period * s.physics_dt)

    def _setup_sensors(self) -> None:
        cfg, n = self.cfg, self.num_envs
        t = cfg.touch
        rc = cfg.randomization
        extra = {"max_extra_latency_s": rc.sensor.extra_latency_s.high if rc.enabled else 0.0}
        self.grid = touch_model.TaxelGrid(t.rows, t.cols, self.robot.gripper.pad.length, self.robot.gripper.pad.width)
        self._touch_kernel = touch_model.TouchKernel(
            self.grid, self.pad_site, self.contact_idx.start, self.cfg.sim.contact_slots * CONTACT_SLOT_SIZE,
            self.net_idx.start) if t.enabled else None
        self._sample0 = np.zeros(1, np.int64)
        tp = 1.0 / self.touch_hz
        npads = len(self.pads)
        # one channel for all pads: a dead element is one taxel of one pad
        self.touch_ch = SensorChannel("touch", t.taxel, (npads, t.rows, t.cols, 3), n, tp, history=t.history,
                                      element_dims=3, **extra) if t.enabled else None
        self.touch_net_ch = SensorChannel("touch_net", t.net, (npads, 3), n, tp, **extra) if t.enabled else None
        if t.enabled:  # substeps recorded by Batch.rollout that are touch samples
            self._touch_substeps = np.arange(self.touch_period - 1, self.decimation, self.touch_period, dtype=np.int64)
            rec = ("sensordata", "site_xpos", "site_xmat")
            self._rollout_out = self.batch.rollout(1, record=rec)
            self._rollout_out = {k: np.zeros((n, self.decimation, *v.shape[2:]), v.dtype)
                                 for k, v in self._rollout_out.items()}
            self._rollout_items = tuple(self._rollout_out)
        dof = len(self.robot.arms) * (self.robot.arm.dof + 1)
        self.proprio_ch = {
            "joint_pos": SensorChannel("joint_pos", cfg.proprio.joint_pos, (dof,), n, self.control_dt, **extra),
            "joint_vel": SensorChannel("joint_vel", cfg.proprio.joint_vel, (dof,), n, self.control_dt, **extra),
        }
        self._proprio_every = {k: self._every(c.cfg) for k, c in self.proprio_ch.items()}
        self.cam_ch = {}
        for name, c in cfg.cameras.items():
            if name not in [self.model.camera(i).name for i in range(self.model.ncam)]:
                cams = [self.model.camera(i).name for i in range(self.model.ncam)]
                raise ValueError(f"unknown camera {name!r}; this scene has {cams}")
            self.cam_ch[name] = SensorChannel(f"rgb_{name}", c.sensor, (c.height, c.width, 3), n,
                                              self._every(c.sensor) * self.control_dt, dtype=np.uint8, **extra)
            if c.depth:
                self.cam_ch[f"depth:{name}"] = SensorChannel(f"depth_{name}", SensorCfg(
                    rate_hz=c.sensor.rate_hz, latency_s=c.sensor.latency_s), (c.height, c.width), n,
                    self._every(c.sensor) * self.control_dt, nonneg=True, **extra)
        self._cam_every = {name: self._every(c.sensor) for name, c in cfg.cameras.items()}
        self._touch_gain = np.ones((n, len(self.pads)))

    def _every(self, sensor: SensorCfg) -> int:
        """Control steps between samples of a sensor slower than (or as fast as) the control rate."""
        if sensor.rate_hz is None:
            return 1
        return rate_to_period_steps(sensor.rate_hz, self.control_dt)

    def _build_obs_spec(self) -> ObservationSpec:
        ctrl_hz = 1.0 / self.control_dt
        dof = len(self.robot.arms) * (self.robot.arm.dof + 1)
        keys = [
            ObsKey("joint_pos", (dof,), "float32", "rad", ctrl_hz / self._proprio_every["joint_pos"], "proprio",
                   "arm joint angles per arm + gripper opening [0, 1]"),
            ObsKey("joint_vel", (dof,), "float32", "rad/s", ctrl_hz / self._proprio_every["joint_vel"], "proprio",
                   "arm joint velocities per arm + gripper opening rate (1/s)"),
            ObsKey("ee_pose", (len(self.robot.arms), 7), "float32", "m|quat_wxyz", ctrl_hz, "proprio",
                   "tool-centre point position (world) and orientation (w, x, y, z) per arm"),
        ]
        if self.cfg.action.mode == "ee_delta":  # the running TCP target ee_delta actions move: observed, so an
            keys.append(ObsKey(  # ee_delta policy sees the state its actions act on
                "ee_target", (len(self.robot.arms) * 7,), "float32", "m|quat_wxyz", ctrl_hz, "proprio",
                "ee_delta's running TCP target per arm: position (world) and orientation (w, x, y, z), the pose the "
                "IK servoes towards before this step's action moves it"))
        t = self.cfg.touch
        if t.enabled:
            for p in self.pads:
                keys.append(ObsKey(f"touch_{p}", (t.history, t.rows, t.cols, 3), "float32", "N", self.touch_hz,
                                   "touch", f"pad {p}: (normal, shear_x, shear_y) per taxel, oldest sample first"))
                keys.append(ObsKey(f"touch_net_{p}", (3,), "float32", "N", self.touch_hz, "touch",
                                   f"pad {p}: net (normal, shear_x, shear_y)"))
        for name, c in self.cfg.cameras.items():
            hz = ctrl_hz / self._cam_every[name]
            keys.append(ObsKey(f"rgb_{name}", (c.height, c.width, 3), "uint8", "rgb", hz, "camera",
                               f"{name} colour image", 0, 255))
            if c.depth:
                keys.append(ObsKey(f"depth_{name}", (c.height, c.width), "float32", "m", hz, "camera",
                                   f"{name} depth along the optical axis", 0.0))
        keys += [ObsKey(n, shape, "float32", unit, ctrl_hz, "task", desc) for n, shape, unit, desc in
                 self._task_obs_keys()]
        return ObservationSpec(tuple(keys))

    def _setup_spaces(self) -> None:
        n_arms, dof = len(self.robot.arms), self.robot.arm.dof
        if self.cfg.action.mode == "joint_pos":
            low, high = joint_pos_bounds(self.robot)
        elif self.cfg.action.mode == "ee_pose":
            reach = self.cfg.action.ee_pose_reach
            low = np.tile([-reach] * 3 + [-1.0] * 6 + [0.0], n_arms)
            high = np.tile([reach] * 3 + [1.0] * 6 + [1.0], n_arms)
        else:
            p, r = self.cfg.action.max_ee_step_pos, self.cfg.action.max_ee_step_rot
            low = np.tile([-p] * 3 + [-r] * 3 + [0.0], n_arms)
            high = np.tile([p] * 3 + [r] * 3 + [1.0], n_arms)
        assert low.shape == ((n_arms * EE_POSE_DIM,) if self.cfg.action.mode == "ee_pose" else (n_arms * (dof + 1),))
        self.single_action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        # tolerance so float32 round-trips of limits do not count as out of range
        self._act_low, self._act_high = low - 1e-6, high + 1e-6
        self._act_ctrl = np.concatenate([np.append(self.arm_act[a], self.grip_act[a]) for a in range(n_arms)])
        self._act_scale = np.tile(np.append(np.ones(dof), self.robot.gripper.stroke), n_arms)
        self._ee_scratch = np.zeros_like(self.ctrl)  # ee_delta: validation writes here, IK writes ctrl
        self.action_space = spaces.Box(np.tile(self.single_action_space.low, (self.num_envs, 1)),
                                       np.tile(self.single_action_space.high, (self.num_envs, 1)), dtype=np.float32)
        self.single_observation_space = self.obs_spec.space()
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)

    # ------------------------------------------------------------------ task hooks (override in tasks)
    def _task_obs_keys(self) -> list[tuple[str, tuple[int, ...], str, str]]:
        """(name, shape, unit, description) of privileged task observations."""
        return []

    def _get_task_obs(self) -> dict[str, np.ndarray]:
        return {}

    def _reset_task(self, env_ids: np.ndarray, rngs: list[np.random.Generator]) -> list[dict[str, Any]]:
        """Write the initial task state of `env_ids` into `self.qpos`/`self.qvel`; return the values drawn."""
        return [{} for _ in env_ids]

    def _get_rewards(self, metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named dense reward terms, each (n,), already weighted; the step reward is their sum."""
        return {}

    def evaluate(self) -> dict[str, np.ndarray]:
        """{"success": (n,) bool, "progress": (n,) float in [0, 1], ...task metrics}; the base has no task."""
        return {"success": self._no_success, "progress": self._zero_reward}

    def _get_dones(self, metrics: dict[str, np.ndarray]) -> np.ndarray:
        """Terminated (n,) bool; default: terminate on success."""
        return metrics["success"]

    def instruction(self, env_id: int) -> str:
        """The language instruction of env `env_id`'s current episode."""
        return self.episode_params[env_id].get("instruction", "")

    @classmethod
    def instruction_examples(cls) -> list[str]:
        """A few instructions this task draws (for `rho tasks`); tasks override."""
        return []

    # ------------------------------------------------------------------ reset
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._base_seed = int(seed)
            self.episode_count[:] = 0
        options = options or {}
        ids = np.asarray(options.get("env_ids", np.arange(self.num_envs)), dtype=int)
        self.reset_idx(ids, episode_seeds=options.get("episode_seeds"))
        self._obs = self._get_observations(force_sample=True)
        return self._obs, self._reset_info(ids)

    def reset_idx(self, env_ids: np.ndarray, episode_seeds: np.ndarray | None = None) -> None:
        """Start new episodes in `env_ids` (others untouched); seeds derive from (base seed, env, episode count)."""
        env_ids = np.asarray(env_ids, dtype=int)
        if env_ids.size == 0:
            return
        if episode_seeds is None and self.episode_seed_fn is not None:
            episode_seeds = [self.episode_seed_fn(int(i)) for i in env_ids]
        if episode_seeds is None:
            episode_seeds = [np.random.SeedSequence((self._base_seed, int(i), int(self.episode_count[i])))
                             .generate_state(1, np.uint64)[0] for i in env_ids]
        for k, i in enumerate(env_ids):
            self.episode_seed[i] = np.uint64(episode_seeds[k])
            self.rngs[i] = np.random.default_rng(int(episode_seeds[k]))
            self.episode_count[i] += 1
            self.episode_step[i] = 0
        rngs = [self.rngs[i] for i in env_ids]
        drawn = self._randomize(env_ids, rngs)
        self.batch.reset(env_ids, stage=mujoco.mjtStage.mjSTAGE_NONE)
        self._reset_robot(env_ids, rngs)
        task_drawn = self._reset_task(env_ids, rngs)
        self.batch.forward(env_ids)
        self._ee_target[env_ids] = self.ee_pose()[env_ids]
        self._store_joint_action(env_ids)
        for k, i in enumerate(env_ids):
            self.episode_params[i] = {"episode_seed": int(self.episode_seed[i]), **drawn[k], **task_drawn[k]}
        self._reset_sensors(env_ids, rngs)

    def _reset_robot(self, env_ids: np.ndarray, rngs: list[np.random.Generator]) -> None:
        std = self.cfg.randomization.init_joint_noise if self.cfg.randomization.enabled else 0.0
        open_ = self.robot.gripper.stroke
        for k, i in enumerate(env_ids):
            q = self.home + (rngs[k].normal(0.0, std, self.arm_qadr.shape) if std > 0 else 0.0)
            q = np.clip(q, self.joint_low, self.joint_high)
            self.qpos[i, self.arm_qadr] = q
            self.ctrl[i, self.arm_act] = q
            self.qpos[i, self.finger_qadr] = open_
            self.qpos[i, self.finger_qadr + 1] = open_  # finger_b follows finger_a in the qpos layout
            self.ctrl[i, self.grip_act] = open_

    def _channels(self) -> list[SensorChannel]:
        chans = [*self.proprio_ch.values(), *self.cam_ch.values()]
        return chans + ([self.touch_ch, self.touch_net_ch] if self.touch_ch is not None else [])

    def _reset_sensors(self, env_ids: np.ndarray, rngs: list[np.random.Generator]) -> None:
        scale = [self.episode_params[i].get("sensor_noise_scale", 1.0) for i in env_ids]
        latency = [self.episode_params[i].get("sensor_extra_latency_s", 0.0) for i in env_ids]
        for ch in self._channels():
            ch.set_episode(env_ids, noise_scale=np.array(scale), extra_latency_s=np.array(latency))
        if self.touch_ch is not None:
            taxels, net = self._touch_clean(env_ids)
            self.touch_ch.reset(env_ids, rngs, initial=taxels)
            self.touch_net_ch.reset(env_ids, rngs, initial=net)
        jp, jv = self._joint_state(env_ids)
        self.proprio_ch["joint_pos"].reset(env_ids, rngs, initial=jp)
        self.proprio_ch["joint_vel"].reset(env_ids, rngs, initial=jv)
        if self.cam_ch:
            frames = self._render_clean(env_ids)
            for name, ch in self.cam_ch.items():
                ch.reset(env_ids, rngs, initial=frames[name])

    def _randomize(self, env_ids: np.ndarray, rngs: list[np.random.Generator]) -> list[dict[str, Any]]:
        """Domain randomization of each env's own model; returns the values drawn."""
        out = []
        rc = self.cfg.randomization
        for k, i in enumerate(env_ids):
            m, nom, rng = self._models[i], self._nominal, rngs[k]
            for name in _DR_FIELDS:  # start every episode from the nominal model: nothing carries over
                getattr(m, name)[:] = getattr(nom, name)
            d: dict[str, Any] = {}
            if rc.enabled:
                d.update(self._randomize_physics(m, nom, rng, rc))
                d.update(self._randomize_visual(m, nom, rng, rc))
                gain = rc.sensor.touch_gain.sample(rng, len(self.pads))
                self._touch_gain[i] = gain
                d["touch_gain"] = np.asarray(gain, float).tolist()
                d["sensor_noise_scale"] = rc.sensor.noise_scale.sample(rng)
                d["sensor_extra_latency_s"] = rc.sensor.extra_latency_s.sample(rng)
            else:
                self._touch_gain[i] = 1.0
            out.append(d)
        self.batch.set_models(self._models)
        return out

    def _randomize_physics(self, m, nom, rng, rc: RandomizationCfg) -> dict[str, Any]:
        p = rc.physics
        fr, ms, dmp, gain, sc = (p.friction_scale.sample(rng), p.mass_scale.sample(rng), p.damping_scale.sample(rng),
                                 p.actuator_gain_scale.sample(rng), p.object_scale.sample(rng))
        g = np.concatenate([self.dr_geoms, self.pad_geoms])
        m.geom_friction[g, 0] = nom.geom_friction[g, 0] * fr
        m.dof_damping[:] = nom.dof_damping * dmp
        m.actuator_gainprm[:, 0] = nom.actuator_gainprm[:, 0] * gain
        m.actuator_biasprm[:, 1] = nom.actuator_biasprm[:, 1] * gain
        m.body_mass[self.dr_bodies] = nom.body_mass[self.dr_bodies] * ms
        m.body_inertia[self.dr_bodies] = nom.body_inertia[self.dr_bodies] * ms
        b, pg = self.prop_bodies, self.prop_geoms  # object scale: simple props only
        m.body_mass[b] *= sc**3
        m.body_inertia[b] *= sc**5
        m.geom_size[pg] = nom.geom_size[pg] * sc
        m.geom_rbound[pg] = nom.geom_rbound[pg] * sc
        m.geom_aabb[pg] = nom.geom_aabb[pg] * sc
        return {"friction_scale": fr, "mass_scale": ms, "damping_scale": dmp, "actuator_gain_scale": gain,
                "object_scale": sc}

    def _randomize_visual(self, m, nom, rng, rc: RandomizationCfg) -> dict[str, Any]:
        v = rc.visual
        light = v.light_intensity.sample(rng)
        m.light_diffuse[:] = light
        tilt = v.light_dir_jitter.sample(rng)
        m.light_dir[:] = nom.light_dir @ random_rotation(rng, tilt).T
        colored = np.concatenate([self.dr_geoms, [self.model.geom("table").id]]).astype(int)
        jit = rng.uniform(-v.color_jitter, v.color_jitter, (len(colored), 3))
        m.geom_rgba[colored, :3] = np.clip(nom.geom_rgba[colored, :3] + jit, 0, 1)
        m.mat_rgba[:, :3] = np.clip(nom.mat_rgba[:, :3] + rng.uniform(-v.color_jitter, v.color_jitter, 3), 0, 1)
        cams = self.fixed_cams
        dpos = rng.uniform(-v.camera_pos_jitter, v.camera_pos_jitter, (len(cams), 3))
        m.cam_pos[cams] = nom.cam_pos[cams] + dpos
        for c in cams:
            m.cam_quat[c] = mat_to_quat(random_rotation(rng, v.camera_rot_jitter) @ quat_to_mat(nom.cam_quat[c]))
        return {"light_intensity": light, "light_tilt": tilt, "camera_pos_offset": dpos.tolist()}

    def _reset_info(self, env_ids: np.ndarray) -> dict[str, Any]:
        mask = np.zeros(self.num_envs, bool)
        mask[env_ids] = True
        return {"episode_seed": self.episode_seed.copy(), "_episode_seed": mask,
                "randomization": [self.episode_params[i] for i in range(self.num_envs)], "_randomization": mask}

    # ------------------------------------------------------------------ step
    def step(self, actions: np.ndarray):
        clipped = self._pre_physics_step(actions)
        failed = np.zeros(self.num_envs, bool)
        try:  # one C call for all substeps; touch inputs are recorded at every substep and sampled below
            if self.touch_ch is not None:
                self.batch.rollout(self.decimation, record=self._rollout_items, out=self._rollout_out)
            else:
                self.batch.step(nstep=self.decimation)
        except self._sim_errors as e:  # those sims kept their pre-call state; the rest stepped
            failed[e.ids] = True
        metrics, rewards, terminated, truncated = self._post_physics_step(failed)
        info: dict[str, Any] = {"success": metrics["success"], "progress": metrics["progress"],
                                "reward_terms": rewards, "sim_failed": failed, "action_clipped": clipped,
                                "episode_seed": self.episode_seed.copy(), "joint_action": self._joint_action.copy()}
        obs = self._get_observations()
        done = terminated | truncated
        if done.any():
            ids = np.flatnonzero(done)
            info["final_obs"] = {k: v.copy() for k, v in obs.items()}
            info["_final_obs"] = done.copy()
            info["final_info"] = {"success": metrics["success"].copy(), "episode_seed": self.episode_seed.copy(),
                                  "episode_length": self.episode_step.copy(), "sim_failed": failed.copy()}
            info["_final_info"] = done.copy()
            self.reset_idx(ids)
            obs = self._get_observations(force_sample=True)
        self._obs = obs
        total = sum(rewards.values()) if rewards else self._zero_reward
        return obs, np.asarray(total, np.float64), terminated, truncated, info

    def _post_physics_step(self, failed: np.ndarray) -> tuple[dict, dict, np.ndarray, np.ndarray]:
        """After a control step's physics: advance the clocks, sample touch, mark diverged envs in `failed`, and
        return (metrics, reward terms, terminated, truncated). Shared with the Isaac Lab DirectRLEnv face."""
        self._clock += 1  # the control clock all envs share (sensors slower than control sample on it)
        if self.touch_ch is not None:
            self._sample_touch()
        self.episode_step += 1
        self._diverged(failed)
        metrics = self.evaluate()
        rewards = self._get_rewards(metrics)
        terminated = self._get_dones(metrics) | failed
        truncated = (self.episode_step >= self.max_episode_steps) & ~terminated
        return metrics, rewards, terminated, truncated

    def _pre_physics_step(self, actions: np.ndarray) -> np.ndarray:
        """Validate the action and write servo targets; returns (n,) bool, True where a value was clipped.

        Actions are taken at the action space's float32 precision, so a recorded float32 action replays exactly.
        """
        a = np.asarray(actions, dtype=np.float32).astype(np.float64)
        want = (self.num_envs, self.single_action_space.shape[0])
        if a.shape != want:
            if a.shape == want[1:] and self.num_envs == 1:
                a = a[None]
            else:
                raise ValueError(f"action must have shape {want} (num_envs, action_dim) for action.mode="
                                 f"{self.cfg.action.mode!r}, got {a.shape}")
        lo, hi = self._act_low, self._act_high
        strict = self.cfg.action.out_of_range == "error"
        clipped = np.empty(self.num_envs, bool)
        if self.cfg.action.mode == "joint_pos":
            status = kernels.apply_joint_action(a, lo, hi, self._act_ctrl, self._act_scale, self.ctrl, clipped,
                                                strict)
        elif self.cfg.action.mode == "ee_pose":
            status = self._apply_ee_pose(a, lo, hi, clipped, strict)
        else:
            status = kernels.apply_joint_action(a, lo, hi, self._act_ctrl, self._act_scale, self._ee_scratch,
                                                clipped, strict)
            if status == 0:
                per_arm = np.minimum(np.maximum(a, lo), hi).reshape(self.num_envs, len(self.robot.arms), -1)
                target = np.clip(self._ik(per_arm[..., :-1]), self.joint_low, self.joint_high)
                self.ctrl[:, self.arm_act] = target.astype(np.float32) if self.cfg.action.servo_float32 else target
                self.ctrl[:, self.grip_act] = per_arm[..., -1] * self.robot.gripper.stroke
        if status == 1:
            envs, dims = np.nonzero(~np.isfinite(a))
            raise ValueError(f"action contains NaN/inf at env(s) {sorted(set(envs.tolist()))}, dim(s) "
                             f"{sorted(set(dims.tolist()))}; nothing was applied. Fix the policy output "
                             "(e.g. check normalisation statistics) before stepping.")
        if status == 2:
            envs, dims = np.nonzero((a < lo) | (a > hi))
            raise ValueError(
                f"action out of range at env(s) {sorted(set(envs.tolist()))}, dim(s) {sorted(set(dims.tolist()))}: "
                f"expected within [{lo[dims[0]]:.4g}, {hi[dims[0]]:.4g}], got {a[envs[0], dims[0]]:.4g}. "
                "Fix the action, or set action.out_of_range=clip.")
        self._store_joint_action()
        return clipped

    def _apply_ee_pose(self, a: np.ndarray, lo: np.ndarray, hi: np.ndarray, clipped: np.ndarray,
                       strict: bool) -> int:
        """ee_pose actions (n, arms·10) → servo targets in ctrl; the status of `kernels.apply_joint_action` (0 ok,
        1 NaN/inf, 2 out of range with `strict`), nothing written unless 0."""
        if not np.isfinite(a).all():
            return 1
        out = (a < lo) | (a > hi)
        if strict and out.any():
            return 2
        clipped[:] = out.any(axis=1)
        per_arm = np.minimum(np.maximum(a, lo), hi).reshape(self.num_envs, len(self.robot.arms), EE_POSE_DIM)
        target = self.solve_tcp_pose(per_arm[..., :3], mat_from_rot6(per_arm[..., 3:9]))
        self.ctrl[:, self.arm_act] = target.astype(np.float32) if self.cfg.action.servo_float32 else target
        self.ctrl[:, self.grip_act] = per_arm[..., -1] * self.robot.gripper.stroke
        return 0

    def solve_tcp_pose(self, pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
        """Joint targets (n, arms, dof) (rad, within the joint limits) that put each arm's TCP at `pos` (n, arms, 3)
        (m, world) with orientation `mat` (n, arms, 3, 3): damped least squares iterated from the measured joints on
        the nominal kinematics (randomization does not move bodies), at most `action.ik_iterations` times or until
        the pose error is below `action.ik_tolerance`. A reachable target near the measured pose converges to its
        exact joints; an unreachable one ends at the closest configuration the iterations found."""
        cfg, m, d = self.cfg.action, self.model, self._scratch
        arms = len(self.robot.arms)
        q_all = self.qpos
        out = np.empty((self.num_envs, arms, self.robot.arm.dof))
        jac = np.empty((arms, 6, self.robot.arm.dof))
        jp, jr = np.empty((3, m.nv)), np.empty((3, m.nv))
        for i in range(self.num_envs):
            d.qpos[:] = q_all[i]
            q = q_all[i][self.arm_qadr].astype(np.float64)  # (arms, dof)
            for _ in range(cfg.ik_iterations):
                d.qpos[self.arm_qadr.reshape(-1)] = q.reshape(-1)
                mujoco.mj_kinematics(m, d)
                mujoco.mj_comPos(m, d)
                cur_p = d.site_xpos[self.tcp_site]  # (arms, 3)
                cur_r = d.site_xmat[self.tcp_site].reshape(arms, 3, 3)
                err = np.concatenate([pos[i] - cur_p, mat_error(mat[i], cur_r)], axis=-1)  # (arms, 6)
                if np.abs(err).max() < cfg.ik_tolerance:
                    break
                for k in range(arms):
                    mujoco.mj_jacSite(m, d, jp, jr, int(self.tcp_site[k]))
                    jac[k, :3], jac[k, 3:] = jp[:, self.arm_dadr[k]], jr[:, self.arm_dadr[k]]
                q = np.clip(q + dls_step(jac, err, cfg.ik_pose_damping), self.joint_low, self.joint_high)
            out[i] = q
        return out

    def tcp_pose_of(self, joint_targets: np.ndarray) -> np.ndarray:
        """The ee_pose action (k, arms·10) that executes joint_pos actions `joint_targets` (k, arms·(dof + 1)):
        per arm the TCP pose the joint targets reach (forward kinematics on the nominal model; position m, world,
        and the 6-D rotation of `rho.sim.ik.rot6_from_mat`), then the gripper opening unchanged. Used to relabel
        recorded joint targets as absolute TCP targets (`data.actions=ee_pose`)."""
        q = np.asarray(joint_targets, np.float64)
        arms, dof = len(self.robot.arms), self.robot.arm.dof
        if q.ndim != 2 or q.shape[1] != arms * (dof + 1):
            raise ValueError(f"joint targets must be (k, {arms * (dof + 1)}) in the joint_pos layout, got {q.shape}")
        per_arm = q.reshape(len(q), arms, dof + 1)
        m, d = self.model, self._scratch
        d.qpos[:] = m.qpos0
        out = np.empty((len(q), arms, EE_POSE_DIM))
        for t in range(len(q)):
            d.qpos[self.arm_qadr.reshape(-1)] = per_arm[t, :, :dof].reshape(-1)
            mujoco.mj_kinematics(m, d)
            out[t, :, :3] = d.site_xpos[self.tcp_site]
            out[t, :, 3:9] = rot6_from_mat(d.site_xmat[self.tcp_site].reshape(arms, 3, 3))
        out[..., 9] = per_arm[..., dof]
        return out.reshape(len(q), -1).astype(np.float32)

    def _store_joint_action(self, env_ids: np.ndarray | slice = slice(None)) -> None:
        """Keep the servo targets now in ctrl, in the joint_pos action layout (float32), as `joint_action`."""
        self._joint_action[env_ids] = self.ctrl[env_ids][:, self._act_ctrl] / self._act_scale

    @property
    def joint_action(self) -> np.ndarray:
        """(n, 14) float32 the absolute servo targets of the last control step in the `joint_pos` action layout
        (per arm: 6 arm joint targets in rad, then the gripper opening in [0, 1]), whatever `action.mode` is: the
        action a `joint_pos` env would have been given to execute the same step. After a reset: the targets the
        reset wrote. `step()` returns the same in `info["joint_action"]` (taken before any autoreset).

        Replaying these as `joint_pos` actions from the same seeded reset reproduces an `ee_delta` episode
        bit-identically: the IK's targets are rounded to float32 before the servos get them
        (`action.servo_float32`; with it off, the float64 targets replay only up to their float32 rounding, which
        contact-rich insertions amplify to ~1 mm)."""
        return self._joint_action

    def _ik(self, delta: np.ndarray) -> np.ndarray:
        """ee_delta → joint targets, (n, arms, 6) → (n, arms, dof).

        The delta moves a running TCP target (set to the measured pose at reset), kept within
        `ee_lead_steps` steps' worth of motion of the measured pose so it cannot wind up against an obstacle;
        one damped-least-squares step from the current joints towards that target gives the servo targets.
        Because the target carries what the servos have not yet tracked, commanded and actual motion agree.
        """
        cfg = self.cfg.action
        q = self.qpos[:, self.arm_qadr]
        pose = self.ee_pose()  # (n, arms, 7)
        tgt = self._ee_target
        lead_p, lead_r = cfg.ee_lead_steps * cfg.max_ee_step_pos, cfg.ee_lead_steps * cfg.max_ee_step_rot
        tgt[..., :3] = np.clip(tgt[..., :3] + delta[..., :3], pose[..., :3] - lead_p, pose[..., :3] + lead_p)
        tgt[..., 3:] = quat_mul(axis_angle_to_quat(delta[..., 3:]), tgt[..., 3:])
        err_r = quat_error(tgt[..., 3:], pose[..., 3:])
        ang = np.linalg.norm(err_r, axis=-1, keepdims=True)
        # pull the orientation target back within the lead, in those envs alone: rebuilding every env's target
        # from its pose re-rounds it (~1e-16), so an episode's numbers would depend on its batch neighbours
        over = (ang > lead_r).any(axis=(1, 2))
        if over.any():
            err_r[over] = err_r[over] * np.minimum(1.0, lead_r / np.maximum(ang[over], 1e-12))
            tgt[over, :, 3:] = quat_mul(axis_angle_to_quat(err_r[over]), pose[over, :, 3:])
        err = np.concatenate([tgt[..., :3] - pose[..., :3], err_r], axis=-1)
        out = np.empty_like(q)
        for a in range(len(self.robot.arms)):
            point = self.site_xpos[:, self.tcp_site[a]]
            jacp, jacr = self.batch.jac(np.full(self.num_envs, self.tcp_body[a]), point)
            jac = np.concatenate([jacp, jacr], axis=1)[:, :, self.arm_dadr[a]]  # (n, 6, dof)
            out[:, a] = q[:, a] + dls_step(jac, err[:, a], cfg.ik_damping)
        return out

    @property
    def ee_target(self) -> np.ndarray:
        """(n, arms, 7) the running TCP target (position m, quaternion w, x, y, z) that ee_delta actions move."""
        return self._ee_target

    def reanchor_ee_target(self, env_ids: np.ndarray) -> None:
        """Seat the running TCP target of `env_ids` on their measured TCP pose, as a reset does: where an
        ee_delta command starts from when it takes over an arm another controller was driving."""
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        self._ee_target[ids] = self.ee_pose()[ids]

    def joint_action_from_ee_delta(self, delta: np.ndarray, env_ids: np.ndarray) -> np.ndarray:
        """ee_delta commands (k, arms·7) of envs `env_ids` → the (k, arms·7) joint_pos actions (6 joint targets
        in rad + gripper opening in [0, 1] per arm) that execute them, whatever `action.mode` is.

        The commands are clipped to the ee_delta bounds and move those envs' running TCP target (`ee_target`)
        through the IK exactly as an ee_delta env's step does; other envs' targets are untouched. A corrector
        that speaks ee_delta (a scripted expert, a 3D mouse) can so drive an env whose policy acts in joint_pos,
        and what is recorded is the joint action that was executed."""
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        arms = len(self.robot.arms)
        d = np.asarray(delta, dtype=np.float32).astype(np.float64).reshape(len(ids), arms, 7)
        if not np.isfinite(d).all():
            raise ValueError("ee_delta command contains NaN/inf; nothing was applied. Fix the corrector's output")
        p, r = self.cfg.action.max_ee_step_pos, self.cfg.action.max_ee_step_rot
        bound = np.array([p] * 3 + [r] * 3 + [1.0])  # ee_delta's bounds, with its float32 round-trip tolerance
        d = np.clip(d, np.append(-bound[:6], 0.0) - 1e-6, bound + 1e-6)
        full = np.zeros((self.num_envs, arms, 6))
        full[ids] = d[..., :6]
        others = np.setdiff1d(np.arange(self.num_envs), ids)
        kept = self._ee_target[others].copy()
        target = np.clip(self._ik(full), self.joint_low, self.joint_high)  # moves every env's target
        self._ee_target[others] = kept
        out = np.concatenate([target[ids], d[..., 6:]], axis=-1)  # (k, arms, dof + 1)
        return out.reshape(len(ids), -1).astype(np.float32)

    def _diverged(self, failed: np.ndarray) -> None:
        """Mark in `failed` (n,) the envs with NaN/inf state, a joint faster than `sim.max_speed`, or MuJoCo's own
        reset of a bad qpos/qvel/qacc."""
        kernels.check_state(self.qpos, self.qvel, self.batch.warning, self._bad_warning_ids, self._max_speed, failed)

    # ------------------------------------------------------------------ sensing
    def pad_forces(self) -> np.ndarray:
        """Privileged (n, pads, 3) net pad force (normal, shear_x, shear_y) in N, noise-free, last physics step."""
        mat = self.site_xmat[:, self.pad_site].reshape(-1, len(self.pads), 3, 3)
        net = self.sensordata[:, self.net_idx].reshape(-1, len(self.pads), 3)
        return touch_model.net_force_in_pad_frame(net, mat)

    def _touch_clean(self, env_ids: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Clean taxels (n, pads, r, c, 3) and net forces (n, pads, 3) in N, gains applied, from the bound fields
        of the last physics step."""
        sd, xpos, xmat = self.sensordata[env_ids], self.site_xpos[env_ids], self.site_xmat[env_ids]
        taxels, net = self._touch_kernel(sd[:, None], xpos[:, None], xmat[:, None], self._sample0,
                                         self._touch_gain[env_ids])
        return taxels[:, 0], net[:, 0]

    def _sample_touch(self) -> None:
        """Touch samples of the last control step from the substeps `Batch.rollout` recorded."""
        r = self._rollout_out
        taxels, net = self._touch_kernel(r["sensordata"], r["site_xpos"], r["site_xmat"], self._touch_substeps,
                                         self._touch_gain)
        self.touch_ch.push_many(taxels, self.rngs)  # (n, samples, ...), oldest first
        self.touch_net_ch.push_many(net, self.rngs)

    def _joint_state(self, env_ids: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """ALOHA-layout joint positions and velocities, (n, 14) each; gripper as opening fraction."""
        if not hasattr(self, "_js_q"):
            n_arms = len(self.robot.arms)
            self._js_q = np.concatenate([np.append(self.arm_qadr[a], self.finger_qadr[a]) for a in range(n_arms)])
            self._js_d = np.concatenate([np.append(self.arm_dadr[a], self.finger_dadr[a]) for a in range(n_arms)])
            self._js_scale = 1.0 / self._act_scale
        return self.qpos[env_ids][:, self._js_q] * self._js_scale, self.qvel[env_ids][:, self._js_d] * self._js_scale

    def ee_pose(self, dtype=np.float64) -> np.ndarray:
        """(n, arms, 7) TCP position (m) and quaternion (w, x, y, z), world frame (the TCP site is not rotated
        relative to the gripper body, so the body's quaternion is the TCP's)."""
        out = np.empty((self.num_envs, len(self.tcp_site), 7), dtype)
        out[..., :3] = self.site_xpos[:, self.tcp_site]
        out[..., 3:] = self.xquat[:, self.tcp_body]
        return out

    def _render_clean(self, env_ids: np.ndarray) -> dict[str, np.ndarray]:
        frames: dict[str, np.ndarray] = {}
        for name, c in self.cfg.cameras.items():
            frames[name] = np.empty((len(env_ids), c.height, c.width, 3), np.uint8)
            if c.depth:
                frames[f"depth:{name}"] = np.empty((len(env_ids), c.height, c.width), np.float32)
        for k, i in enumerate(env_ids):
            m, d = self._env_model_data(int(i))
            for name, c in self.cfg.cameras.items():
                rgb, depth = self.renderer.render(m, d, name, c.width, c.height, c.depth)
                frames[name][k] = rgb
                if c.depth:
                    frames[f"depth:{name}"][k] = depth
        return frames

    def _env_model_data(self, i: int) -> tuple[mujoco.MjModel, mujoco.MjData]:
        """Env i's model and a scratch MjData with its kinematics, for rendering."""
        m, d = self._models[i], self._scratch
        self.batch.get_data(i, d)
        mujoco.mj_kinematics(m, d)
        mujoco.mj_camlight(m, d)
        return m, d

    @property
    def renderer(self):
        if self._renderer is None:
            from .render import Renderer

            w = max([c.width for c in self.cfg.cameras.values()] + [64])
            h = max([c.height for c in self.cfg.cameras.values()] + [64])
            self._renderer = Renderer(self.model, w, h)
        return self._renderer

    def _get_observations(self, force_sample: bool = False) -> dict[str, np.ndarray]:
        """Assemble the observation dict. Without `force_sample` (after a control step), sensors due on the
        shared control clock take a sample first; with it (after resets) the channels are read as they are."""
        if not force_sample:
            jp, jv = self._joint_state()
            if self._clock % self._proprio_every["joint_pos"] == 0:
                self.proprio_ch["joint_pos"].push(jp, self.rngs)
            if self._clock % self._proprio_every["joint_vel"] == 0:
                self.proprio_ch["joint_vel"].push(jv, self.rngs)
        obs: dict[str, np.ndarray] = {
            "joint_pos": self.proprio_ch["joint_pos"].read(),
            "joint_vel": self.proprio_ch["joint_vel"].read(),
            "ee_pose": self.ee_pose(np.float32),
        }
        if self.cfg.action.mode == "ee_delta":
            obs["ee_target"] = self._ee_target.reshape(self.num_envs, -1).astype(np.float32)
        if self.touch_ch is not None:
            taxels, net = self.touch_ch.read(), self.touch_net_ch.read()
            if taxels.ndim == 5:  # history 1: (n, pads, r, c, 3) → (n, 1, pads, r, c, 3)
                taxels = taxels[:, None]
            for j, p in enumerate(self.pads):
                obs[f"touch_{p}"] = taxels[:, :, j]
                obs[f"touch_net_{p}"] = net[:, j]
        if self.cam_ch and not force_sample:
            due = [n for n in self.cfg.cameras if self._clock % self._cam_every[n] == 0]
            if due:
                frames = self._render_clean(np.arange(self.num_envs))
                for name in due:
                    self.cam_ch[name].push(frames[name], self.rngs)
                    if f"depth:{name}" in self.cam_ch:
                        self.cam_ch[f"depth:{name}"].push(frames[f"depth:{name}"], self.rngs)
        for key, ch in self.cam_ch.items():
            obs[f"depth_{key[6:]}" if key.startswith("depth:") else f"rgb_{key}"] = ch.read()
        obs.update(self._get_task_obs())
        return obs

    # ------------------------------------------------------------------ state, rendering, cleanup
    def get_state(self) -> np.ndarray:
        """(n, nstate) full integration state (mjSTATE_INTEGRATION) for exact replay."""
        return np.array(self.batch.state)

    def set_state(self, state: np.ndarray, env_ids: np.ndarray | None = None) -> None:
        """Write full states (as `get_state` returns them) into `env_ids`. The ee_delta running TCP target is
        re-seated on the measured pose of the new state (as a reset does) and `joint_action` reads the state's
        servo targets, so a recorded episode replays from its initial state."""
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids)
        self.batch.state[ids] = state
        self.batch.forward(ids)
        self._ee_target[ids] = self.ee_pose()[ids]
        self._store_joint_action(ids)

    def render(self) -> np.ndarray | None:
        """RGB frame of env 0 from cam_high (for gymnasium's render API)."""
        m, d = self._env_model_data(0)
        return self.renderer.render(m, d, "cam_high", 320, 240)[0]

    def close(self, **kwargs) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if hasattr(self.batch, "close"):  # the isaaclab backend releases its simulation context
            self.batch.close()

    @property
    def dt(self) -> float:
        return self.control_dt

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_envs={self.num_envs}, robot={self.robot.name!r}, "
                f"control={1 / self.control_dt:.0f} Hz, touch={self.touch_hz:.0f} Hz, "
                f"cameras={list(self.cfg.cameras)})")


__all__ = ["ActionCfg", "BatchedEnv", "CameraCfg", "EnvCfg", "ProprioCfg", "SimCfg", "TouchCfg", "joint_pos_bounds"]
