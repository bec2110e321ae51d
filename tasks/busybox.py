"""BusyBox: the everyday-controls panel of arXiv 2602.05441 and its task family (one base class, six tasks).

Task description:
    A BusyBox panel (`rho.assets.busybox`: 4 push buttons, 2 toggle switches, 2 five-position sliders, a
    six-position knob, 4 jack wires and a display on a 2 × 3 grid of swappable, rotatable modules) lies on the
    table between the arms. The instruction names one control and its goal; the nearer arm operates it while the
    other holds still:
        busybox_push_button   press the named button (red, green, blue, yellow)
        busybox_flip_switch   flip the named switch (top, bottom) to the named state (on, off)
        busybox_move_slider   move the named slider (left, right) to a position 1–5
        busybox_turn_knob     turn the knob to a position 1–6
        busybox_pull_wire     pull the named wire's jack out of its socket
        busybox_insert_wire   insert the named wire's jack (standing on the panel) into its socket
    Controls are physical: buttons spring back, switches are bistable, sliders and the knob snap into detents,
    jacks are held by a soft seat that breaks away under a pull.

Randomizations (with the default config):
    - layout: a random permutation of the 6 modules over the 6 grid slots and a random quarter turn (0, 90, 180,
      270°) of each; `layout_split` draws from the training layouts (default) or the held-out ~20%
      (`rho.assets.busybox.is_heldout`) — or `randomize_layout=false` for the fixed default layout
    - panel pose: x, y uniform in ±0.03 m, ±0.02 m around the table centre; yaw uniform in ±0.1 rad
    - initial control states: switches on/off, sliders at a detent 1–5, knob at a detent 1–6, uniformly; buttons
      up, jacks seated (except the jack of insert_wire, which stands upright on the table 7 cm ± 1 cm in front of
      the panel, x within ±2 cm of its socket's x (clipped to ±0.15 m), yaw uniform in [−π, π) rad)
    - the target (colour / which / state / position) uniformly, always different from the initial state;
      fixed with the task's config fields (`color`, `which`, `state`, `position`)
    - the instruction: one of four paraphrase templates
    - everything in `EnvCfg.randomization` (friction of pads and panel parts, masses, damping, servo and detent
      gains, light, cameras, sensor gains, initial joints)

Success conditions:
    push_button: the named button travels past its click point (5 mm of 8 mm) and no other button clicked.
    flip_switch: the named switch's lever rests on the target side, beyond 0.2 rad from centre (stable at 0.35).
    move_slider: the named slider is within 3 mm of the target detent and moving slower than 0.02 m/s.
    turn_knob: the knob is within 0.07 rad (4°) of the target detent and turning slower than 0.3 rad/s.
    pull_wire: the named jack is off its seat (the seat let go) and 30 mm or more from its seated position.
    insert_wire: the named jack is seated (within 2 mm of the seated pose, re-latched by the socket).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rho.assets.busybox import (
    BUTTON_CLICK,
    COLORS,
    JACK_SEAT_Z,
    KNOB_DETENTS,
    SLIDER_DETENTS,
    SWITCH_ANGLE,
    BusyBoxSpec,
    Layout,
    apply_layout,
    control_world_pose,
    default_busybox,
    sample_layout,
    yaw_quat,
)
from rho.assets.mjcf import SceneSpec
from rho.sim.env import BatchedEnv, EnvCfg

from .registry import register_expert, register_task

CONTROLS = ("button_red", "button_green", "button_blue", "button_yellow", "switch_top", "switch_bottom",
            "slider_left", "slider_right", "knob", "jack_red", "jack_green", "jack_blue", "jack_yellow")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six")
JACK_BREAK = 0.003  # displacement from the seat at which the seat lets go (m)
JACK_PULLED = 0.03  # displacement from the seat that counts as pulled out (m)
JACK_CAPTURE = (0.002, 0.003)  # the seat latches a jack within this lateral, vertical distance (m)
TOUCH_MOVED = {"button": 0.001, "switch": 0.05}  # a pressed control touched: moved from its start (m, rad)
GRASP_FORCE = 1.0  # per-pad normal force that counts as grasping a control (N)


@dataclass
class BusyBoxCfg(EnvCfg):
    """Settings shared by the BusyBox tasks, on top of `EnvCfg`."""

    episode_length_s: float = 10.0
    layout_split: Literal["train", "heldout", "all"] = "train"  # which layouts to draw
    randomize_layout: bool = True  # false: the default layout (modules in spec order, unrotated)
    panel_xy_range: tuple[float, float] = (0.03, 0.02)  # half-ranges of the panel centre's x, y (m)
    panel_yaw_range: float = 0.1  # half-range of the panel yaw (rad)


def _choice_problem(name: str, value: Any, allowed: tuple) -> list[str]:
    return [] if value in allowed else [f"{name} must be one of {allowed}, got {value!r}"]


class BusyBoxEnv(BatchedEnv, abc.ABC):
    """Base of the BusyBox family: panel scene, layout/pose randomization, control physics, observations.

    Subclasses implement `_draw_target(k, i, rng, init)` (target control, value, instruction) and `_metrics()`.
    """

    cfg: BusyBoxCfg
    target_kind = ""  # control kind of the family member
    templates: tuple[str, ...] = ()

    # ------------------------------------------------------------------ scene
    def _setup_scene(self) -> SceneSpec:
        from rho.assets.busybox import to_mjcf

        self.bb: BusyBoxSpec = default_busybox()
        world, sections = to_mjcf(self.bb)
        bodies = ("busybox", *(f"bb/{c}" for c in CONTROLS))
        return SceneSpec(robot=self.robot, timestep=self.cfg.sim.physics_dt, contact_slots=self.cfg.sim.contact_slots,
                         touch=self.cfg.touch.enabled, extra_worldbody=world, extra_sections=sections,
                         dr_bodies=bodies)

    def _index_model(self) -> None:
        super()._index_model()
        m = self.model
        self.eq_active = self.batch.bind("eq_active")
        jnt = [m.joint(f"bb/{c}").id for c in CONTROLS]
        self.ctl_qadr = np.array([m.jnt_qposadr[j] for j in jnt])
        self.ctl_dadr = np.array([m.jnt_dofadr[j] for j in jnt])
        self.ctl_body = np.array([m.body(f"bb/{c}").id for c in CONTROLS])
        self.ctl_site = np.array([m.site(f"bb/{c}").id for c in CONTROLS])
        self.jacks = [k for k, c in enumerate(CONTROLS) if c.startswith("jack")]
        self.seat_eq = np.array([m.equality(f"bb/seat_{CONTROLS[k][5:]}").id for k in self.jacks])
        self.det_ctl = [k for k, c in enumerate(CONTROLS) if self.bb.control(c)[1].detents is not None]
        self.det_act = np.array([m.actuator(f"bb/detent_{CONTROLS[k]}").id for k in self.det_ctl])
        self.detents = [self.bb.control(CONTROLS[k])[1].detents for k in self.det_ctl]
        self.panel_body = m.body("busybox").id
        n = self.num_envs
        self.seat_pos = np.zeros((n, len(self.jacks), 3))  # seated jack origins, world (m)
        self.seat_quat = np.zeros((n, len(self.jacks), 4))
        self.module_yaw = np.zeros((n, len(CONTROLS)))  # world yaw of each control's module (rad)
        self.target_idx = np.zeros(n, int)  # index into CONTROLS
        self.target_value = np.zeros(n)  # SI goal of the target control (m, rad, on=1/off=-1, ...)
        self.initial_error = np.ones(n)  # |goal − state| at reset, for progress
        self.clicked = np.zeros((n, 4), bool)  # buttons that clicked this episode
        self.jack_place = np.zeros((n, 3))  # x, y (m), yaw (rad) of a jack that starts off its seat
        self.layouts: list[Layout] = [self.bb.default_layout] * n
        self.panel_pose = np.zeros((n, 7))

    # ------------------------------------------------------------------ reset
    def _reset_task(self, env_ids: np.ndarray, rngs: list[np.random.Generator]) -> list[dict[str, Any]]:
        out = []
        for k, i in enumerate(env_ids):
            rng = rngs[k]
            layout = sample_layout(self.bb, rng, self.cfg.layout_split) if self.cfg.randomize_layout \
                else self.bb.default_layout
            rx, ry = self.cfg.panel_xy_range
            xy = (float(rng.uniform(-rx, rx)), float(rng.uniform(-ry, ry)))
            yaw = float(rng.uniform(-self.cfg.panel_yaw_range, self.cfg.panel_yaw_range))
            apply_layout(self._models[i], self.bb, layout, xy, yaw)
            self.layouts[i] = layout
            self.panel_pose[i] = (*xy, 0.0, *yaw_quat(yaw))
            init = self._initial_state(rng)
            drawn = self._draw_target(k, int(i), rng, init)
            self._write_state(int(i), layout, xy, yaw, init)
            self.clicked[i] = False
            out.append({"layout": layout.key(), "panel_xy": list(xy), "panel_yaw": yaw,
                        "initial_state": {c: float(v) for c, v in init.items()}, **drawn})
        self.batch.set_models(self._models)
        return out

    def _initial_state(self, rng: np.random.Generator) -> dict[str, float]:
        """Joint values of every control at reset (jacks: 0 = seated, else off its seat)."""
        init = dict.fromkeys(CONTROLS, 0.0)
        for c in ("switch_top", "switch_bottom"):
            init[c] = SWITCH_ANGLE * rng.choice([-1.0, 1.0])
        for c in ("slider_left", "slider_right"):
            init[c] = SLIDER_DETENTS[rng.integers(5)]
        init["knob"] = KNOB_DETENTS[rng.integers(6)]
        return init

    def _write_state(self, i: int, layout: Layout, xy: tuple[float, float], yaw: float,
                     init: dict[str, float]) -> None:
        for k, c in enumerate(CONTROLS):
            pos, myaw = control_world_pose(self.bb, layout, c, xy, yaw)
            self.module_yaw[i, k] = myaw
            if k in self.jacks:
                j = self.jacks.index(k)
                self.seat_pos[i, j], self.seat_quat[i, j] = pos, yaw_quat(myaw)
                a = self.ctl_qadr[k]
                if init[c] == 0.0:
                    self.qpos[i, a:a + 3], self.qpos[i, a + 3:a + 7] = pos, yaw_quat(myaw)
                else:  # standing upright on the table where `_draw_target` put it
                    x, y, jyaw = self.jack_place[i]
                    self.qpos[i, a:a + 3], self.qpos[i, a + 3:a + 7] = (x, y, JACK_SEAT_Z), yaw_quat(jyaw)
                self.eq_active[i, self.seat_eq[j]] = float(init[c] == 0.0)
                self.qvel[i, self.ctl_dadr[k]:self.ctl_dadr[k] + 6] = 0.0
            else:
                self.qpos[i, self.ctl_qadr[k]] = init[c]
                self.qvel[i, self.ctl_dadr[k]] = 0.0
        self.ctrl[i, self.det_act] = [init[CONTROLS[k]] for k in self.det_ctl]

    @abc.abstractmethod
    def _draw_target(self, k: int, i: int, rng: np.random.Generator, init: dict[str, float]) -> dict[str, Any]:
        """Implemented by each subclass."""

    def _set_target(self, i: int, control: str, value: float, error: float, rng: np.random.Generator,
                    **fmt: Any) -> dict[str, Any]:
        self.target_idx[i] = CONTROLS.index(control)
        self.target_value[i] = value
        self.initial_error[i] = max(error, 1e-6)
        text = self.templates[rng.integers(len(self.templates))].format(**fmt)
        return {"target_control": control, "target_value": value, "instruction": text}

    # ------------------------------------------------------------------ physics of the controls
    def _pre_physics_step(self, actions: np.ndarray) -> np.ndarray:
        clipped = super()._pre_physics_step(actions)
        self._update_mechanisms()
        return clipped

    def _update_mechanisms(self) -> None:
        """Detents pull towards the nearest notch; seats let a pulled jack go and latch a jack brought home."""
        q = self.qpos[:, self.ctl_qadr[self.det_ctl]]
        for col, (act, det) in enumerate(zip(self.det_act, self.detents, strict=True)):
            self.ctrl[:, act] = det.nearest(q[:, col])
        disp = self.jack_displacement()  # (n, jacks, 3)
        lateral, dz = np.linalg.norm(disp[..., :2], axis=-1), disp[..., 2]
        active = self.eq_active[:, self.seat_eq] > 0.5
        breaks = active & (np.linalg.norm(disp, axis=-1) > JACK_BREAK)
        latch = ~active & (lateral < JACK_CAPTURE[0]) & (np.abs(dz) < JACK_CAPTURE[1])
        if breaks.any() or latch.any():
            self.eq_active[:, self.seat_eq] = np.where(breaks, 0.0, np.where(latch, 1.0, active.astype(float)))

    def jack_displacement(self) -> np.ndarray:
        """(n, 4, 3) each jack's origin minus its seated origin, world frame (m)."""
        adr = self.ctl_qadr[self.jacks]
        return self.qpos[:, adr[:, None] + np.arange(3)] - self.seat_pos

    def control_state(self) -> np.ndarray:
        """(n, 13) buttons' travel (m, + pressed), switch angles (rad, + on), slider positions (m), knob angle
        (rad), jacks' distance from their seats (m)."""
        s = self.qpos[:, self.ctl_qadr].copy()
        s[:, :4] *= -1.0
        s[:, self.jacks] = np.linalg.norm(self.jack_displacement(), axis=-1)
        return s

    # ------------------------------------------------------------------ observations
    def _task_obs_keys(self):
        return [
            ("panel_pose", (7,), "m|quat_wxyz", "panel origin (table top, world) and quaternion (w, x, y, z)"),
            ("control_state", (len(CONTROLS),), "m|rad",
             "buttons' travel (m), switch angles (rad, + on), slider positions (m), knob angle (rad), jacks' "
             "distance from their seats (m), in the order " + ", ".join(CONTROLS)),
            ("target_pose", (7,), "m|quat_wxyz",
             "target control's joint origin (a jack: its seated origin), world, and its module's yaw"),
            ("target_site", (3,), "m", "target control's press / grasp point (world)"),
            ("target", (2,), "index|SI", "target control index (in control_state order) and its goal value"),
        ]

    def _get_task_obs(self) -> dict[str, np.ndarray]:
        n = np.arange(self.num_envs)
        t = self.target_idx
        pose = np.empty((self.num_envs, 7))
        pose[:, :3] = self.xpos[n, self.ctl_body[t]]
        jack = np.isin(t, self.jacks)
        if jack.any():  # a jack's goal frame is its seat
            pose[jack, :3] = self.seat_pos[n[jack], t[jack] - self.jacks[0]]
        yaw = self.module_yaw[n, t]
        pose[:, 3:] = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=-1)
        return {"panel_pose": self.panel_pose.astype(np.float32),
                "control_state": self.control_state().astype(np.float32),
                "target_pose": pose.astype(np.float32),
                "target_site": self.site_xpos[n, self.ctl_site[t]].astype(np.float32),
                "target": np.stack([t, self.target_value], axis=-1).astype(np.float32)}

    # ------------------------------------------------------------------ success, rewards
    def _target_state(self) -> np.ndarray:
        return self.control_state()[np.arange(self.num_envs), self.target_idx]

    def _target_speed(self) -> np.ndarray:
        d = self.ctl_dadr[self.target_idx]
        return np.abs(self.qvel[np.arange(self.num_envs), d])

    def evaluate(self) -> dict[str, np.ndarray]:
        self.clicked |= self.control_state()[:, :4] >= BUTTON_CLICK
        success, progress = self._metrics()
        return {"success": success, "progress": np.clip(progress, 0.0, 1.0)}

    @classmethod
    def mimic_subtask_signals(cls, obs: Mapping[str, np.ndarray], env_config: Mapping[str, Any]
                              ) -> dict[str, np.ndarray]:
        """Isaac Lab Mimic subtask termination signal of a recorded demo, from its observations (`rho dataset
        export-robomimic mimic=true`, `rho dataset export-isaaclab`): the end of the reach, the first of the
        operating arm's two subtasks (the second, operating the control, is final; both relative to the target
        control), as a (T,) bool:

        - `touch_control` for pressed controls (push_button, flip_switch: fingertips, which carry no taxels): the
          target control (`target`, `control_state`) has moved from where it started by more than
          `TOUCH_MOVED` (a button 1 mm into its 8 mm travel, a switch 0.05 rad of its ±0.35 rad) — more than the
          controls settle after the reset;
        - `grasp_control` for grasped ones (move_slider, turn_knob, pull_wire, insert_wire): both pads of one
          gripper press above `GRASP_FORCE` (1 N), from the recorded pad forces (`pad_grasp`: a grasp holds while
          both pads stay above half of it); left out without recorded pad forces (touch off)."""
        from rho.datagen.robomimic import pad_grasp

        if "target" not in obs or "control_state" not in obs or not len(obs["target"]):
            return {}
        k = int(np.asarray(obs["target"])[0, 0])
        kind = CONTROLS[k].split("_")[0]
        if kind in TOUCH_MOVED:
            state = np.asarray(obs["control_state"], float)[:, k]
            return {"touch_control": np.abs(state - state[0]) > TOUCH_MOVED[kind]}
        arms = [pad_grasp(obs, arm, GRASP_FORCE) for arm in ("left", "right")]
        arms = [a for a in arms if a is not None]
        return {"grasp_control": np.logical_or.reduce(arms)} if arms else {}

    @abc.abstractmethod
    def _metrics(self) -> tuple[np.ndarray, np.ndarray]:
        """Implemented by each subclass."""

    def _get_rewards(self, m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = np.arange(self.num_envs)
        site = self.site_xpos[n, self.ctl_site[self.target_idx]]
        reach = np.linalg.norm(self.site_xpos[:, self.tcp_site] - site[:, None], axis=-1).min(axis=1)
        return {"reach": 1.0 - np.tanh(10.0 * reach), "progress": 2.0 * m["progress"],
                "success": 5.0 * m["success"]}

    @classmethod
    def instruction_examples(cls) -> list[str]:
        return list(cls._examples())

    @classmethod
    def _examples(cls) -> tuple[str, ...]:
        return ()


# ---------------------------------------------------------------------------------------------------- tasks
@dataclass
class PushButtonCfg(BusyBoxCfg):
    color: str = ""  # "" = drawn per episode, else red, green, blue or yellow

    def validate(self) -> list[str]:
        return super().validate() + _choice_problem("color", self.color, ("", *COLORS))


@register_task("busybox_push_button", "rho/BusyBoxPushButton-v0", PushButtonCfg)
class BusyBoxPushButtonEnv(BusyBoxEnv):
    """Press the named button. Success: it travels past its click point (5 mm) and no other button clicked."""

    # pressed / flipped with a fingertip or a finger's outer face, which carry no taxels (only the pads do)
    touch_contact_expected = False

    cfg: PushButtonCfg
    templates = ("press the {c} button", "push the {c} button", "hit the {c} button", "give the {c} button a press")

    @classmethod
    def default_cfg(cls) -> PushButtonCfg:
        return PushButtonCfg()

    def _draw_target(self, k, i, rng, init):
        color = self.cfg.color or list(COLORS)[rng.integers(4)]
        return self._set_target(i, f"button_{color}", BUTTON_CLICK, BUTTON_CLICK, rng, c=color)

    def _metrics(self):
        n = np.arange(self.num_envs)
        t = self.target_idx
        others = self.clicked.copy()
        others[n, t] = False
        success = self.clicked[n, t] & ~others.any(axis=1)
        return success, self._target_state() / BUTTON_CLICK

    @classmethod
    def _examples(cls):
        return tuple(t.format(c=c) for t, c in zip(cls.templates, COLORS, strict=True))


@dataclass
class FlipSwitchCfg(BusyBoxCfg):
    which: str = ""  # "" = drawn, else top or bottom
    state: str = ""  # "" = drawn, else on or off

    def validate(self) -> list[str]:
        return (super().validate() + _choice_problem("which", self.which, ("", "top", "bottom"))
                + _choice_problem("state", self.state, ("", "on", "off")))


@register_task("busybox_flip_switch", "rho/BusyBoxFlipSwitch-v0", FlipSwitchCfg)
class BusyBoxFlipSwitchEnv(BusyBoxEnv):
    """Flip the named switch to the named state. Success: its lever rests beyond 0.2 rad on the target side."""

    # pressed / flipped with a fingertip or a finger's outer face, which carry no taxels (only the pads do)
    touch_contact_expected = False

    cfg: FlipSwitchCfg
    templates = ("flip the {w} switch {s}", "turn the {w} switch {s}", "switch the {w} toggle {s}",
                 "set the {w} switch to {s}")

    @classmethod
    def default_cfg(cls) -> FlipSwitchCfg:
        return FlipSwitchCfg()

    def _draw_target(self, k, i, rng, init):
        which = self.cfg.which or ("top", "bottom")[rng.integers(2)]
        state = self.cfg.state or ("on", "off")[rng.integers(2)]
        sign = 1.0 if state == "on" else -1.0
        init[f"switch_{which}"] = -sign * SWITCH_ANGLE  # starts in the other state
        return self._set_target(i, f"switch_{which}", sign, 2 * SWITCH_ANGLE, rng, w=which, s=state)

    def _metrics(self):
        side = self._target_state() * self.target_value
        return side > 0.2, (side + SWITCH_ANGLE) / (2 * SWITCH_ANGLE)

    @classmethod
    def _examples(cls):
        return tuple(t.format(w=w, s=s) for t, w, s in zip(cls.templates, ("top", "bottom") * 2,
                                                             ("on", "off", "off", "on"), strict=True))


def _draw_position(rng: np.random.Generator, fixed: int, count: int, current: float,
                   detents: tuple[float, ...]) -> tuple[int, int]:
    """(target, initial) 1-based detent positions, different from each other; `fixed` > 0 fixes the target."""
    start = int(np.argmin(np.abs(np.asarray(detents) - current))) + 1
    target = fixed or int(rng.integers(1, count + 1))
    while target == start:
        start = int(rng.integers(1, count + 1))
    return target, start


@dataclass
class MoveSliderCfg(BusyBoxCfg):
    which: str = ""  # "" = drawn, else left or right
    position: int = 0  # 0 = drawn, else 1..5

    def validate(self) -> list[str]:
        return (super().validate() + _choice_problem("which", self.which, ("", "left", "right"))
                + _choice_problem("position", self.position, tuple(range(6))))


@register_task("busybox_move_slider", "rho/BusyBoxMoveSlider-v0", MoveSliderCfg)
class BusyBoxMoveSliderEnv(BusyBoxEnv):
    """Move the named slider to a position 1–5. Success: within 3 mm of that detent, slower than 0.02 m/s."""

    cfg: MoveSliderCfg
    templates = ("move the {w} slider to {p}", "slide the {w} slider to position {pw}", "set the {w} slider to {p}",
                 "put the {w} slider at position {pw}")

    @classmethod
    def default_cfg(cls) -> MoveSliderCfg:
        return MoveSliderCfg()

    def _draw_target(self, k, i, rng, init):
        which = self.cfg.which or ("left", "right")[rng.integers(2)]
        c = f"slider_{which}"
        target, start = _draw_position(rng, self.cfg.position, 5, init[c], SLIDER_DETENTS)
        init[c] = SLIDER_DETENTS[start - 1]
        goal = SLIDER_DETENTS[target - 1]
        return self._set_target(i, c, goal, abs(goal - init[c]), rng, w=which, p=target, pw=NUMBERS[target]) | {
            "target_position": target}

    def _metrics(self):
        err = np.abs(self._target_state() - self.target_value)
        return (err < 0.003) & (self._target_speed() < 0.02), 1.0 - err / self.initial_error

    @classmethod
    def _examples(cls):
        return tuple(t.format(w=w, p=p, pw=NUMBERS[p]) for t, w, p in zip(cls.templates, ("left", "right") * 2,
                                                                          (3, 5, 1, 4), strict=True))


@dataclass
class TurnKnobCfg(BusyBoxCfg):
    position: int = 0  # 0 = drawn, else 1..6

    def validate(self) -> list[str]:
        return super().validate() + _choice_problem("position", self.position, tuple(range(7)))


@register_task("busybox_turn_knob", "rho/BusyBoxTurnKnob-v0", TurnKnobCfg)
class BusyBoxTurnKnobEnv(BusyBoxEnv):
    """Turn the knob to a position 1–6. Success: within 0.07 rad of that detent, turning slower than 0.3 rad/s."""

    cfg: TurnKnobCfg
    templates = ("turn the knob to {p}", "set the dial to position {pw}", "rotate the knob to position {p}",
                 "twist the dial to {pw}")

    @classmethod
    def default_cfg(cls) -> TurnKnobCfg:
        return TurnKnobCfg()

    def _draw_target(self, k, i, rng, init):
        target, start = _draw_position(rng, self.cfg.position, 6, init["knob"], KNOB_DETENTS)
        init["knob"] = KNOB_DETENTS[start - 1]
        goal = KNOB_DETENTS[target - 1]
        return self._set_target(i, "knob", goal, abs(goal - init["knob"]), rng, p=target, pw=NUMBERS[target]) | {
            "target_position": target}

    def _metrics(self):
        err = np.abs(self._target_state() - self.target_value)
        return (err < 0.07) & (self._target_speed() < 0.3), 1.0 - err / self.initial_error

    @classmethod
    def _examples(cls):
        return tuple(t.format(p=p, pw=NUMBERS[p]) for t, p in zip(cls.templates, (4, 4, 2, 6), strict=True))


# ---------------------------------------------------------------------------------------------------- experts
def down_rot(psi: float) -> np.ndarray:
    """TCP rotation pointing straight down with the fingers opening along (cos ψ, sin ψ, 0)."""
    c, s = math.cos(psi), math.sin(psi)
    return np.array([[0, c, s], [0, s, -c], [-1, 0, 0]], float)


def wrap_pi(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


FINGERTIP = 0.035  # TCP to fingertip along the fingers (m)
SAFE_Z = 0.17  # TCP height for travel over the panel: fingertips clear its tallest parts by ~3 cm (m)


def _up(h: float) -> np.ndarray:
    return np.array([0.0, 0.0, h])


class BusyBoxExpert(abc.ABC):
    """Shared machinery of the BusyBox scripted experts (`ee_delta`): per-env phase machines, the nearer arm
    works (left for x < 0), the other holds still with an open gripper.

    Subclasses implement `_step(i, arm, obs) -> (goal position (3,), ψ, gripper opening)` and advance
    `self.phase[i]`; `act` turns the goal into a clipped TCP delta towards the running target."""

    name, version = "busybox_scripted", "0.1"
    step_pos = 0.012  # largest TCP move per control step the expert asks for (m)

    def __init__(self, env: BusyBoxEnv):
        if env.cfg.action.mode != "ee_delta":
            raise ValueError(f"{type(self).__name__} drives action.mode=ee_delta; set action.mode=ee_delta")
        self.env = env
        n = env.num_envs
        self.phase = np.zeros(n, int)
        self.timer = np.zeros(n, int)
        self.arm = np.zeros(n, int)
        self.psi = np.zeros(n)  # gripper yaw of the episode (rad)
        self.mem = np.zeros((n, 4))  # per-phase latched values
        self.started = np.zeros(n, bool)

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        ids = slice(None) if env_ids is None else env_ids
        self.phase[ids] = 0
        self.timer[ids] = 0
        self.started[ids] = False

    @staticmethod
    def home_psi(arm: int) -> float:
        """Gripper yaw of the arm's resting wrist pointing down (rad): left +π/2, right −π/2."""
        return math.pi / 2 if arm == 0 else -math.pi / 2

    def natural_psi(self, arm: int, psi: float, period: float = math.pi) -> float:
        """The yaw equivalent to `psi` (mod `period`) nearest the arm's resting wrist."""
        home = self.home_psi(arm)
        return home + ((psi - home + period / 2) % period - period / 2)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        from rho.sim.ik import quat_error
        from rho.sim.randomization import mat_to_quat

        env, n = self.env, self.env.num_envs
        cfg = env.cfg.action
        action = np.zeros((n, 2, 7))
        action[:, :, 6] = 1.0
        site = obs["target_site"].astype(float)
        for i in range(n):
            if not self.started[i]:
                self.arm[i] = int(site[i, 0] > 0)
                self.started[i] = True
                self._start(i, obs)
            a = self.arm[i]
            goal, psi, grip = self._step(i, a, obs)
            self.timer[i] += 1
            target = env.ee_target[i, a]
            step = min(self.step_pos, cfg.max_ee_step_pos)
            dpos = np.clip(goal - target[:3], -step, step)
            drot = np.clip(quat_error(mat_to_quat(down_rot(psi)), target[3:]), -cfg.max_ee_step_rot,
                           cfg.max_ee_step_rot)
            action[i, a, :6] = np.r_[dpos, drot]
            action[i, a, 6] = grip
        return action.reshape(n, -1)

    def _start(self, i: int, obs: dict[str, np.ndarray]) -> None:
        self.psi[i] = self.home_psi(self.arm[i])

    @abc.abstractmethod
    def _step(self, i: int, arm: int, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, float, float]:
        """Implemented by each subclass."""

    def _transit(self, i: int, arm: int, obs: dict[str, np.ndarray], goal: np.ndarray) -> np.ndarray:
        """`goal`, or while the TCP is not yet over it, the point above it at `SAFE_Z`: travel high over the
        panel, so the fingers never sweep through the controls."""
        if np.linalg.norm(obs["ee_pose"][i, arm, :2] - goal[:2]) > 0.015:
            return np.r_[goal[:2], max(goal[2], SAFE_Z)]
        return goal

    def _advance(self, i: int, to: int | None = None) -> None:
        self.phase[i] = self.phase[i] + 1 if to is None else to
        self.timer[i] = 0

    def _near(self, i: int, arm: int, obs: dict[str, np.ndarray], goal: np.ndarray, tol: float) -> bool:
        return bool(np.linalg.norm(goal - obs["ee_pose"][i, arm, :3]) < tol)

    def _pads(self, i: int, arm: int, obs: dict[str, np.ndarray]) -> np.ndarray:
        """(2, 3) net (normal, shear x, shear y) of the working arm's two pads (N)."""
        arms = self.env.robot.arms
        return np.stack([obs[f"touch_net_{arms[arm]}_{f}"][i] for f in ("a", "b")]).astype(float)


@register_expert("busybox_push_button", action_mode="ee_delta")
class PushButtonExpert(BusyBoxExpert):
    """Closed fingers above the cap, down to it, then press in small steps until the fingertip's travel past the
    point of contact (proprioception) says the button went past its click; then back up."""

    name = "busybox_push_button_scripted"

    def _step(self, i, arm, obs):
        site = obs["target_site"][i].astype(float)
        ph = self.phase[i]
        ee_z = float(obs["ee_pose"][i, arm, 2])
        if ph == 0:  # above the cap
            goal = self._transit(i, arm, obs, site + _up(FINGERTIP + 0.05))
            if self._near(i, arm, obs, goal, 0.01):
                self._advance(i)
        elif ph == 1:  # fingertips just above the cap
            goal = site + _up(FINGERTIP + 0.003)
            if self._near(i, arm, obs, goal, 0.003) or self.timer[i] > 40:
                self.mem[i, 0] = site[2] + FINGERTIP  # TCP height at which the fingertips meet the cap
                self._advance(i)
        elif ph == 2:  # press: the goal runs 2 mm ahead of the fingertip until it has travelled past the click
            travel = self.mem[i, 0] - ee_z
            goal = np.r_[site[:2], max(ee_z - 0.002, self.mem[i, 0] - 0.0075)]
            if travel > BUTTON_CLICK + 0.0015 or self.timer[i] > 60:
                self._advance(i)
        else:  # back up (and try again if the click did not count)
            goal = site + _up(FINGERTIP + 0.05)
            if self.timer[i] > 15:
                self._advance(i, 0)
        return goal, self.psi[i], 0.0


@register_expert("busybox_flip_switch", action_mode="ee_delta")
class FlipSwitchExpert(BusyBoxExpert):
    """Closed fingers lowered beside the lever on the side it leans to, swept across the pivot towards the target
    side until the lever snaps over, then lifted; retried if the switch did not stay over."""

    name = "busybox_flip_switch_scripted"
    low = 0.004  # fingertips above the lever's pivot during the sweep (m)

    def _step(self, i, arm, obs):
        pivot = obs["target_pose"][i, :3].astype(float)
        q = obs["target_pose"][i, 3:].astype(float)
        yaw = 2 * math.atan2(q[3], q[0])
        sign = float(obs["target"][i, 1])
        d = sign * np.array([math.cos(yaw), math.sin(yaw), 0.0])  # push direction: module +x for on
        start = pivot - 0.033 * d + _up(FINGERTIP + self.low)
        # lead with a finger's outer face (fingers side by side along the push): swept along the fingers' width,
        # the lever would slip into the slot between the fingertips
        self.psi[i] = self.natural_psi(arm, math.atan2(d[1], d[0]))
        ph = self.phase[i]
        if ph == 0:
            goal = self._transit(i, arm, obs, start + _up(0.05))
            if self._near(i, arm, obs, goal, 0.01):
                self._advance(i)
        elif ph == 1:
            goal = start
            if self._near(i, arm, obs, goal, 0.003) or self.timer[i] > 40:
                self._advance(i)
        elif ph == 2:  # sweep across the pivot
            goal = start + 0.048 * d
            if self._near(i, arm, obs, goal, 0.003) or self.timer[i] > 40:
                self._advance(i)
        else:
            goal = start + 0.048 * d + _up(0.05)
            state = float(obs["control_state"][i, self.env.target_idx[i]])
            if self.timer[i] > 15 and state * sign < 0.2:
                self._advance(i, 0)
        return goal, self.psi[i], 0.0


class _GraspMoveExpert(BusyBoxExpert):
    """Grasp a handle between the pads (gripper pointing down), move it with closed-loop corrections on the
    control's state, feel it settle into the notch (pad shear falls once the detent holds it), let go, lift."""

    squeeze = 4.0  # summed pad normal force that counts as grasped (N)
    open_frac = 1.0  # opening while approaching (fraction of the stroke)
    settle_shear = 0.25  # |pad shear| below which the detent is felt to hold the control (N)

    def _err(self, i: int, obs: dict[str, np.ndarray]) -> float:
        return float(obs["target"][i, 1] - obs["control_state"][i, self.env.target_idx[i]])

    @abc.abstractmethod
    def _move_goal(self, i: int, arm: int, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
        """Implemented by each subclass."""

    @abc.abstractmethod
    def _close_enough(self, err: float) -> bool:
        """Implemented by each subclass."""

    def _step(self, i, arm, obs):
        site = obs["target_site"][i].astype(float)
        ph = self.phase[i]
        grasp_z = site[2] - 0.004  # pad centre 4 mm below the handle top
        psi, grip = self.psi[i], 0.0
        pads = self._pads(i, arm, obs)
        if ph == 0:  # above, open
            goal, grip = self._transit(i, arm, obs, np.r_[site[:2], grasp_z + 0.05]), self.open_frac
            if self._near(i, arm, obs, goal, 0.01) and abs(wrap_pi(self._tcp_yaw(i, arm) - psi)) < 0.1:
                self._advance(i)
        elif ph == 1:  # straddle the handle
            goal, grip = np.r_[site[:2], grasp_z], self.open_frac
            if self._near(i, arm, obs, goal, 0.003) or self.timer[i] > 40:
                self.mem[i, :3] = goal
                self._advance(i)
        elif ph == 2:  # squeeze until both pads press; centre the fingers on the handle from the force imbalance
            self.mem[i, :3] += self._finger_axis(i, arm) * float(np.clip(2e-4 * (pads[0, 0] - pads[1, 0]), -1e-3, 1e-3))
            goal = self.mem[i, :3]
            if pads[:, 0].sum() > self.squeeze and pads[:, 0].min() > 0.3 * self.squeeze and self.timer[i] > 3:
                self._advance(i)
            elif self.timer[i] > 40:
                self._advance(i, 5)
        elif ph == 3:  # move the control; corrections from its measured state
            goal, psi = self._move_goal(i, arm, obs)
            if self._close_enough(self._err(i, obs)):
                self._advance(i)
            elif self.timer[i] > 150:
                self._advance(i, 5)
        elif ph == 4:  # hold still and feel the notch take it: pad shear falls when the detent holds
            goal, psi = self.mem[i, :3], self.psi[i]
            if np.abs(pads[:, 1:]).max() < self.settle_shear or self.timer[i] > 10:
                self._advance(i)
        else:  # let go and lift; retry if it did not stay
            goal, grip = np.r_[site[:2], grasp_z + 0.05], self.open_frac
            if self.timer[i] > 20 and not self._close_enough(self._err(i, obs)):
                self._start(i, obs)
                self._advance(i, 0)
        return goal, psi, grip

    def _finger_axis(self, i: int, arm: int) -> np.ndarray:
        """World direction the fingers open along (TCP +y; finger a is on that side)."""
        from rho.sim.randomization import quat_to_mat

        return quat_to_mat(self.env.ee_target[i, arm, 3:])[:, 1]

    def _tcp_yaw(self, i: int, arm: int) -> float:
        from rho.sim.randomization import quat_to_mat

        y = quat_to_mat(self.env.ee_target[i, arm, 3:])[:, 1]
        return math.atan2(y[1], y[0])


@register_expert("busybox_turn_knob", action_mode="ee_delta")
class TurnKnobExpert(_GraspMoveExpert):
    """Grasps the knob with the wrist pre-turned by half the needed rotation, so the wrist stays near its rest,
    turns it with corrections from the knob's angle, waits to feel the detent hold, lets go."""

    name = "busybox_turn_knob_scripted"

    def _start(self, i, obs):
        err = self._err(i, obs)
        self.psi[i] = self.home_psi(self.arm[i]) - err / 2
        self.mem[i, 3] = self.psi[i]

    def _move_goal(self, i, arm, obs):
        err = self._err(i, obs)
        self.psi[i] = self._tcp_yaw(i, arm) + float(np.clip(err, -0.12, 0.12))
        return self.mem[i, :3], self.psi[i]

    def _close_enough(self, err):
        return abs(err) < 0.05


@register_expert("busybox_move_slider", action_mode="ee_delta")
class MoveSliderExpert(_GraspMoveExpert):
    """Pinches the slider handle across its travel, slides it with corrections from the slider's position, waits
    to feel the detent hold (pad shear along the travel falls), lets go."""

    name = "busybox_move_slider_scripted"
    open_frac = 0.5  # the other slider's handle is 60 mm away

    def _start(self, i, obs):
        q = obs["target_pose"][i, 3:].astype(float)
        yaw = 2 * math.atan2(q[3], q[0])
        self.psi[i] = self.natural_psi(self.arm[i], yaw)  # fingers open along the module's x (across the travel)
        self.mem[i, 3] = yaw

    def _move_goal(self, i, arm, obs):
        err = self._err(i, obs)
        yaw = self.mem[i, 3]
        axis = np.array([-math.sin(yaw), math.cos(yaw), 0.0])  # the module's +y: the slider's travel
        # integrate the goal at ≤ 4 mm per step: the TCP lags the goal by a few steps, so a gain of 1 would ring
        self.mem[i, :3] += axis * float(np.clip(0.4 * err, -0.004, 0.004))
        return self.mem[i, :3], self.psi[i]

    def _close_enough(self, err):
        return abs(err) < 0.002


# ---------------------------------------------------------------------------------------------------- wires
@dataclass
class WireCfg(BusyBoxCfg):
    color: str = ""  # "" = drawn per episode, else red, green, blue or yellow

    def validate(self) -> list[str]:
        return super().validate() + _choice_problem("color", self.color, ("", *COLORS))


@register_task("busybox_pull_wire", "rho/BusyBoxPullWire-v0", WireCfg)
class BusyBoxPullWireEnv(BusyBoxEnv):
    """Pull the named wire's jack out. Success: its seat let go and it is ≥ 30 mm from its seated position."""

    cfg: WireCfg
    templates = ("pull out the {c} wire", "unplug the {c} cable", "pull the {c} jack out of its socket",
                 "disconnect the {c} wire")

    @classmethod
    def default_cfg(cls) -> WireCfg:
        return WireCfg()

    def _draw_target(self, k, i, rng, init):
        color = self.cfg.color or list(COLORS)[rng.integers(4)]
        return self._set_target(i, f"jack_{color}", JACK_PULLED, JACK_PULLED, rng, c=color)

    def _metrics(self):
        n = np.arange(self.num_envs)
        free = self.eq_active[n, self.seat_eq[self.target_idx - self.jacks[0]]] < 0.5
        d = self._target_state()
        return free & (d >= JACK_PULLED), d / JACK_PULLED

    @classmethod
    def _examples(cls):
        return tuple(t.format(c=c) for t, c in zip(cls.templates, COLORS, strict=True))


@register_task("busybox_insert_wire", "rho/BusyBoxInsertWire-v0", WireCfg)
class BusyBoxInsertWireEnv(BusyBoxEnv):
    """Insert the named wire's jack, standing on the table in front of the panel, into its socket.
    Success: the seat latched it and it is within 2 mm of its seated position."""

    cfg: WireCfg
    templates = ("plug in the {c} wire", "insert the {c} jack into its socket", "connect the {c} cable",
                 "put the {c} wire back in")
    place_offset = 0.07  # jack distance in front of the panel's front edge (m)

    @classmethod
    def default_cfg(cls) -> WireCfg:
        return WireCfg()

    def _draw_target(self, k, i, rng, init):
        color = self.cfg.color or list(COLORS)[rng.integers(4)]
        c = f"jack_{color}"
        init[c] = 1.0  # off its seat
        seat, _ = control_world_pose(self.bb, self.layouts[i], c, tuple(self.panel_pose[i, :2]),
                                     2 * math.atan2(self.panel_pose[i, 6], self.panel_pose[i, 3]))
        front = self.panel_pose[i, 1] - self.bb.half_extents[1] - self.place_offset
        x = float(np.clip(seat[0], -0.15, 0.15) + rng.uniform(-0.02, 0.02))
        y = float(front + rng.uniform(-0.01, 0.01))
        self.jack_place[i] = (x, y, rng.uniform(-math.pi, math.pi))
        dist = float(np.linalg.norm(seat - [x, y, JACK_SEAT_Z]))
        return self._set_target(i, c, 0.0, dist, rng, c=color) | {"jack_start": self.jack_place[i].tolist()}

    def _metrics(self):
        n = np.arange(self.num_envs)
        seated = self.eq_active[n, self.seat_eq[self.target_idx - self.jacks[0]]] > 0.5
        d = self._target_state()
        return seated & (d < 0.002), 1.0 - d / self.initial_error

    @classmethod
    def _examples(cls):
        return tuple(t.format(c=c) for t, c in zip(cls.templates, COLORS, strict=True))


class _JackExpert(BusyBoxExpert):
    """Grasp a jack's grip between the pads with the grasp force regulated from the pads' normal force."""

    grip_force = 3.5  # per-pad normal force the grasp regulates to (N)
    open_frac = 0.6

    def __init__(self, env: BusyBoxEnv):
        super().__init__(env)
        self.grip = np.ones(env.num_envs)  # commanded opening, adjusted from the pads (fraction of the stroke)

    def _regulate(self, i: int, pads: np.ndarray) -> float:
        """Integral control of the opening on the mean pad normal force: close while weak, ease while strong."""
        self.grip[i] = float(np.clip(self.grip[i] - 0.01 * (self.grip_force - pads[:, 0].mean()), 0.0, 1.0))
        return self.grip[i]

    def _grasp_psi(self, i: int, arm: int, jack_yaw: float) -> float:
        return self.natural_psi(arm, jack_yaw + math.pi / 2)  # pads on the grip's ±y faces (its wide faces)

    def _jack_yaw(self, i: int) -> float:
        from rho.sim.randomization import quat_to_mat

        k = self.env.target_idx[i]
        q = self.env.xquat[i, self.env.ctl_body[k]]
        x = quat_to_mat(q)[:, 0]
        return math.atan2(x[1], x[0])


@register_expert("busybox_pull_wire", action_mode="ee_delta")
class PullWireExpert(_JackExpert):
    """Straddles the jack's grip, closes with the grasp force regulated from the pads, pulls straight up (the
    seat's pull is felt as shear on the pads until it lets go), re-grasps if the pads lose it."""

    name = "busybox_pull_wire_scripted"

    def _step(self, i, arm, obs):
        site = obs["target_site"][i].astype(float)
        pads = self._pads(i, arm, obs)
        ph = self.phase[i]
        self.psi[i] = self._grasp_psi(i, arm, self._jack_yaw(i)) if ph < 2 else self.psi[i]
        grasp = site - _up(0.008)
        grip = self.open_frac
        if ph == 0:
            goal = self._transit(i, arm, obs, grasp + _up(0.05))
            if self._near(i, arm, obs, goal, 0.01):
                self._advance(i)
        elif ph == 1:
            goal = grasp
            if self._near(i, arm, obs, goal, 0.003) or self.timer[i] > 40:
                self.mem[i, :3] = goal
                self.grip[i] = self.open_frac
                self._advance(i)
        elif ph == 2:  # squeeze to the regulated force
            goal, grip = self.mem[i, :3], self._regulate(i, pads)
            if pads[:, 0].min() > 0.7 * self.grip_force and self.timer[i] > 3:
                self._advance(i)
            elif self.timer[i] > 60:
                self._advance(i, 0)
        else:  # pull up, 4 mm per step, keeping the grasp force
            self.mem[i, 2] = min(self.mem[i, 2] + 0.004, grasp[2] + 0.06)
            goal, grip = self.mem[i, :3], self._regulate(i, pads)
            if pads[:, 0].max() < 0.3 and self.timer[i] > 5:  # lost it
                self._advance(i, 0)
        return goal, self.psi[i], grip


@register_expert("busybox_insert_wire", action_mode="ee_delta")
class InsertWireExpert(_JackExpert):
    """Picks the jack off the table (grasp force regulated from the pads), carries it above its socket turned to
    the socket's square, lowers it until the pads feel it bottom out (shear along the fingers rises) or it is in,
    lets go and lifts; re-grasps if the pads lose it on the way."""

    name = "busybox_insert_wire_scripted"
    carry = 0.07  # jack origin above the seat while carrying (m)

    def _step(self, i, arm, obs):
        site = obs["target_site"][i].astype(float)
        seat = obs["target_pose"][i, :3].astype(float)
        q = obs["target_pose"][i, 3:].astype(float)
        pads = self._pads(i, arm, obs)
        ph = self.phase[i]
        grip = self.open_frac
        if ph < 2:
            self.psi[i] = self._grasp_psi(i, arm, self._jack_yaw(i))
        grasp = site - _up(0.008)
        offset = 0.04 - 0.008  # TCP above the jack origin when grasped (m)
        if ph == 0:
            goal = self._transit(i, arm, obs, grasp + _up(0.05))
            if self._near(i, arm, obs, goal, 0.01):
                self._advance(i)
        elif ph == 1:
            goal = grasp
            if self._near(i, arm, obs, goal, 0.003) or self.timer[i] > 40:
                self.mem[i, :3] = goal
                self.grip[i] = self.open_frac
                self._advance(i)
        elif ph == 2:
            goal, grip = self.mem[i, :3], self._regulate(i, pads)
            if pads[:, 0].min() > 0.7 * self.grip_force and self.timer[i] > 3:
                self._advance(i)
            elif self.timer[i] > 60:
                self._advance(i, 0)
        elif ph == 3:  # lift straight up to the carry height
            grip = self._regulate(i, pads)
            goal = np.r_[self.mem[i, :2], seat[2] + self.carry + offset]
            if self._near(i, arm, obs, goal, 0.01):
                mod_yaw = 2 * math.atan2(q[3], q[0])
                # grip long side along the socket row (as seated), so the fingers clear the neighbouring jacks
                self.psi[i] = self._grasp_psi(i, arm, mod_yaw)
                self._advance(i)
            elif pads[:, 0].max() < 0.3 and self.timer[i] > 5:
                self._advance(i, 0)
        elif ph in (4, 5, 6):  # over the socket, down to just above the sleeve, then in; centred on the seat
            grip = self._regulate(i, pads)
            jack = site - _up(0.04)
            height = {4: self.carry, 5: 0.016, 6: -0.002}[int(ph)]
            err = np.r_[seat[:2] - jack[:2], seat[2] + height - jack[2]]
            # proportional on the measured TCP (the running target already leads it): no wind-up, no ringing
            gain = np.array([0.7, 0.7, 1.0 if ph < 6 else 0.0])
            goal = obs["ee_pose"][i, arm, :3].astype(float) + gain * err - (_up(0.002) if ph == 6 else 0.0)
            aligned = np.linalg.norm(err[:2]) < (0.002 if ph == 4 else 0.0008)
            seated = float(obs["control_state"][i, self.env.target_idx[i]]) < 0.0015
            if ph < 6 and aligned and abs(err[2]) < 0.003:
                self._advance(i)
            elif ph == 6 and seated:
                self.mem[i, :3] = obs["ee_pose"][i, arm, :3]
                self._advance(i)
            elif ph == 6 and np.abs(pads[:, 1]).max() > 1.5 and self.timer[i] > 2:  # jammed on the rim: back up
                self._advance(i, 5)
            elif pads[:, 0].max() < 0.3 and self.timer[i] > 5:
                self._advance(i, 0)
            elif self.timer[i] > 80:
                self._advance(i, 5 if ph == 6 else ph)
        else:  # let go and lift; retry if it did not stay
            goal, grip = self.mem[i, :3] + _up(0.06), 1.0
            if self.timer[i] > 20 and float(obs["control_state"][i, self.env.target_idx[i]]) > 0.002:
                self._advance(i, 0)
        return goal, self.psi[i], grip

