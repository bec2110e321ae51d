"""The human corrector: a person drives the arms live from a 3D mouse or the keyboard, watching MuJoCo's viewer.

HG-DAgger's protocol with a real person: the policy drives; the person decides when to intervene (a key or a device
button toggles takeover), drives one arm at a time with the 3D mouse (or the keyboard), closes and opens the
grippers on the buttons (or a key) and hands control back with the same toggle. The commands are ee_delta moves of
the selected arm's running TCP target, executed in the policy's joint_pos env through
`env.joint_action_from_ee_delta` (as the scripted expert's are), so what is recorded is the executed joint action.

Pieces:
- input devices, each giving one `DeviceInput` per control step (`poll(step)`): `SpaceMouseDevice` (a
  SpaceMouse-class HID device through `pyspacemouse`, plus the viewer's keys), `KeyboardDevice` (the viewer's keys
  alone) and `ReplayDevice` (events recorded by `corrector.human.record_file`, or written by hand, replayed step by
  step: headless and deterministic, for tests);
- `TeleopMapper`: device state → the selected arm's motion (deadzone, device frame turned by `yaw_deg`) and the
  actions pressed (takeover, arm, gripper);
- `Viewer`: MuJoCo's passive viewer mirroring env 0, feeding its key presses to the devices;
- `HumanCorrector`: the corrector interface of `online.session.collect` (reset / observe / in_control / actions /
  fired / name), for one env.

Keys (GLFW key codes, as MuJoCo's viewer reports them; `KEYS` below): Enter takes over / hands back, A switches the
arm, G closes / opens the selected gripper; arrows move ±x / ±y, Page Up / Page Down ±z; J / L roll (about x) ±,
I / K pitch (about y) ±, U / O yaw (about z) ±. Device buttons: `corrector.human.buttons` (default: button 0
gripper, 1 takeover, 2 arm).
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .config import CorrectorCfg, HumanCfg
from .session import SessionError

EVENTS_FORMAT = "rho.human_events/1"

# GLFW key codes (the values MuJoCo's viewer passes to key_callback)
KEY_CODES: dict[str, int] = {
    "ENTER": 257, "KP_ENTER": 335, "A": 65, "G": 71, "UP": 265, "DOWN": 264, "LEFT": 263, "RIGHT": 262,
    "PAGE_UP": 266, "PAGE_DOWN": 267, "I": 73, "K": 75, "J": 74, "L": 76, "U": 85, "O": 79,
}
KEY_NAMES: dict[int, str] = {v: k for k, v in KEY_CODES.items()}
KEY_ACTIONS: dict[int, str] = {KEY_CODES["ENTER"]: "takeover", KEY_CODES["KP_ENTER"]: "takeover",
                               KEY_CODES["A"]: "arm", KEY_CODES["G"]: "gripper"}
# key → (axis 0–5 of x, y, z, roll, pitch, yaw; direction ±1)
KEY_MOTION: dict[int, tuple[int, int]] = {
    KEY_CODES["UP"]: (0, 1), KEY_CODES["DOWN"]: (0, -1), KEY_CODES["LEFT"]: (1, 1), KEY_CODES["RIGHT"]: (1, -1),
    KEY_CODES["PAGE_UP"]: (2, 1), KEY_CODES["PAGE_DOWN"]: (2, -1), KEY_CODES["J"]: (3, 1), KEY_CODES["L"]: (3, -1),
    KEY_CODES["I"]: (4, 1), KEY_CODES["K"]: (4, -1), KEY_CODES["U"]: (5, 1), KEY_CODES["O"]: (5, -1),
}
KEYS = [("Enter", "take over / hand back"), ("A", "switch arm (left ↔ right)"), ("G", "close / open the gripper"),
        ("↑ / ↓", "+x / −x"), ("← / →", "+y / −y"), ("Page Up / Page Down", "+z / −z"),
        ("J / L", "roll (about x) + / −"), ("I / K", "pitch (about y) + / −"), ("U / O", "yaw (about z) + / −")]

FIX_SPACEMOUSE = ("Fix: pip install 'rho[online]' (pyspacemouse) and the hidapi library (Debian/Ubuntu: "
                  "apt install libhidapi-hidraw0), plug the device in and let your user read it (a udev rule for "
                  "/dev/hidraw*), or use corrector.human.device=keyboard")


class HumanInputError(SessionError):
    """The human corrector cannot run as configured (no display, no device, a bad replay file, more than one env);
    the message says what was expected, what was found and how to fix it."""


# ------------------------------------------------------------------------------------------------ devices
@dataclass
class DeviceInput:
    """One control step's input: the device's held state and the keys pressed since the last poll."""

    axes: np.ndarray = field(default_factory=lambda: np.zeros(6))  # x, y, z, roll, pitch, yaw in [-1, 1]
    buttons: tuple[int, ...] = ()  # held state of each device button (1 pressed)
    keys: tuple[int, ...] = ()  # GLFW key codes pressed (or auto-repeated) since the last poll


class InputDevice(Protocol):
    """A source of `DeviceInput`, one per control step."""

    name: str

    def poll(self, step: int) -> DeviceInput:
        """The input of control step `step` (steps since the corrector started, counted by `observe`)."""
        ...

    def close(self) -> None:
        ...


class KeyQueue:
    """Key presses from the viewer's thread (its key_callback), drained once per control step."""

    def __init__(self) -> None:
        self._keys: collections.deque[int] = collections.deque()
        self._lock = threading.Lock()

    def push(self, keycode: int) -> None:
        with self._lock:
            self._keys.append(int(keycode))

    def drain(self) -> tuple[int, ...]:
        with self._lock:
            out = tuple(self._keys)
            self._keys.clear()
        return out


class KeyboardDevice:
    """The keyboard alone: the viewer window's keys (motion keys, Enter, A, G); no axes, no buttons."""

    name = "keyboard"

    def __init__(self, keys: KeyQueue) -> None:
        self.keys = keys

    def poll(self, step: int) -> DeviceInput:
        return DeviceInput(keys=self.keys.drain())

    def close(self) -> None:
        pass


class SpaceMouseDevice:
    """A SpaceMouse-class 3D mouse read through `pyspacemouse` (right-handed, z up: `AxisConvention.HID_Z_UP`;
    axes in [-1, 1]), with the viewer's keys when there is one. Each poll drains the HID reports that arrived since
    the last one (non-blocking), so the state is the latest."""

    name = "spacemouse"
    MAX_READS = 64  # HID reports drained per poll at most

    def __init__(self, keys: KeyQueue | None = None, device_name: str = "") -> None:
        pyspacemouse = import_pyspacemouse()
        try:
            self._dev = pyspacemouse.open(device=device_name or None,
                                          axis_convention=pyspacemouse.AxisConvention.HID_Z_UP)
        except Exception as e:  # pyspacemouse/easyhid raise RuntimeError, ValueError, OSError, ...
            raise HumanInputError(f"corrector.human.device=spacemouse: could not open "
                                  f"{device_name or 'a SpaceMouse'} ({type(e).__name__}: {e}). {FIX_SPACEMOUSE}"
                                  ) from None
        self.keys = keys

    def poll(self, step: int) -> DeviceInput:
        state = self._dev.read()
        for _ in range(self.MAX_READS):
            t = state.t
            state = self._dev.read()
            if state.t == t:  # no report came: the state is current
                break
        axes = np.array([state.x, state.y, state.z, state.roll, state.pitch, state.yaw], np.float64)
        return DeviceInput(axes=axes, buttons=tuple(int(b) for b in state.buttons),
                           keys=self.keys.drain() if self.keys is not None else ())

    def close(self) -> None:
        self._dev.close()


class ReplayDevice:
    """Recorded input events replayed by control step: headless and deterministic.

    The file (JSON, as `corrector.human.record_file` writes it): `{"format": "rho.human_events/1", "events":
    [{"step": 0, "keys": ["ENTER"]}, {"step": 0, "axes": [1, 0, 0, 0, 0, 0]}, {"step": 30, "buttons": [1, 0]},
    ...]}`. `axes` (x, y, z, roll, pitch, yaw in [-1, 1]) and `buttons` (held state) hold from their step until the
    next event changes them; `keys` (GLFW key codes or names of `KEY_CODES`) are pressed at that step."""

    name = "replay"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.events = load_events(self.path)
        self._next = 0
        self._axes = np.zeros(6)
        self._buttons: tuple[int, ...] = ()

    def poll(self, step: int) -> DeviceInput:
        keys: list[int] = []
        while self._next < len(self.events) and self.events[self._next]["step"] <= step:
            ev = self.events[self._next]
            self._next += 1
            if "axes" in ev:
                self._axes = np.asarray(ev["axes"], np.float64)
            if "buttons" in ev:
                self._buttons = tuple(int(b) for b in ev["buttons"])
            keys += ev.get("keys", [])
        return DeviceInput(axes=self._axes.copy(), buttons=self._buttons, keys=tuple(keys))

    def close(self) -> None:
        pass


def load_events(path: Path) -> list[dict[str, Any]]:
    """The events of a recorded input file, checked and sorted by step (key names turned into key codes)."""
    fix = "Fix: give a file written by corrector.human.record_file, or write one as docs/online.md shows"
    if not path.is_file():
        raise HumanInputError(f"corrector.human.replay_file={path}: no such file. {fix}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HumanInputError(f"corrector.human.replay_file={path}: not JSON ({e}). {fix}") from None
    if not isinstance(data, dict) or data.get("format") != EVENTS_FORMAT or not isinstance(data.get("events"), list):
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise HumanInputError(f"corrector.human.replay_file={path}: expected an object with format "
                              f"{EVENTS_FORMAT!r} and a list 'events', got format {got!r}. {fix}")
    out, problems = [], []
    for i, ev in enumerate(data["events"]):
        where = f"events[{i}]"
        if not isinstance(ev, dict) or not isinstance(ev.get("step"), int) or ev["step"] < 0:
            problems.append(f"{where}: needs an integer 'step' >= 0, got {ev!r}")
            continue
        ev = dict(ev)
        if "axes" in ev and (not isinstance(ev["axes"], list) or len(ev["axes"]) != 6
                             or not all(isinstance(a, int | float) and abs(a) <= 1 for a in ev["axes"])):
            problems.append(f"{where}: 'axes' is 6 numbers in [-1, 1] (x, y, z, roll, pitch, yaw), got {ev['axes']!r}")
        if "buttons" in ev and (not isinstance(ev["buttons"], list) or not all(b in (0, 1) for b in ev["buttons"])):
            problems.append(f"{where}: 'buttons' is a list of 0/1, got {ev['buttons']!r}")
        keys = []
        for k in ev.get("keys", []):
            if isinstance(k, int):
                keys.append(k)
            elif isinstance(k, str) and k.upper() in KEY_CODES:
                keys.append(KEY_CODES[k.upper()])
            else:
                problems.append(f"{where}: key {k!r} is neither a key code nor one of {', '.join(KEY_CODES)}")
        ev["keys"] = keys
        unknown = set(ev) - {"step", "axes", "buttons", "keys"}
        if unknown:
            problems.append(f"{where}: unknown fields {sorted(unknown)} (known: step, axes, buttons, keys)")
        out.append(ev)
    if problems:
        raise HumanInputError(f"corrector.human.replay_file={path}:\n  " + "\n  ".join(problems) + f"\n{fix}")
    return sorted(out, key=lambda e: e["step"])  # stable: events of one step keep their order


class EventRecorder:
    """Records what a device gave at each control step (changes of axes/buttons, key presses) in the replay format,
    written atomically to `path` on `save()`."""

    def __init__(self, path: str | Path, device: str) -> None:
        self.path, self.device = Path(path), device
        self.events: list[dict[str, Any]] = []
        self._axes: list[float] = [0.0] * 6
        self._buttons: list[int] = []

    def add(self, step: int, inp: DeviceInput) -> None:
        ev: dict[str, Any] = {"step": step}
        axes = [round(float(a), 6) for a in inp.axes]
        if axes != self._axes:
            ev["axes"] = self._axes = axes
        if list(inp.buttons) != self._buttons:
            ev["buttons"] = self._buttons = list(inp.buttons)
        if inp.keys:
            ev["keys"] = [KEY_NAMES.get(k, k) for k in inp.keys]
        if len(ev) > 1:
            self.events.append(ev)

    def save(self) -> None:
        from rho.datagen.hdf5 import atomic_write_text

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"format": EVENTS_FORMAT, "device": self.device,
                                                 "events": self.events}, indent=0))


# ------------------------------------------------------------------------------------------------ mapping
@dataclass
class Command:
    """What one control step's input asks for."""

    motion: np.ndarray  # (6,) x, y, z, roll, pitch, yaw in [-1, 1], world frame (× the gains gives the ee_delta)
    actions: list[str]  # presses, in order: "takeover", "arm", "gripper"


class TeleopMapper:
    """Device input → the selected arm's motion and the actions pressed.

    Axes below `deadzone` are 0 and the rest is rescaled to [0, 1] (no jump at the deadzone's edge); a motion key
    press (or its auto-repeat: MuJoCo's viewer reports presses only) drives its axis at full deflection for
    `key_hold_steps` control steps; device and keys add, clipped to [-1, 1]. The device frame is turned by
    `yaw_deg` about world z (translation and rotation alike). A button acts on its press (rising edge) as
    `buttons[i]` says."""

    def __init__(self, cfg: HumanCfg) -> None:
        self.cfg = cfg
        c, s = math.cos(math.radians(cfg.yaw_deg)), math.sin(math.radians(cfg.yaw_deg))
        self._rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        self._held = np.zeros((6, 2), int)  # steps left per (axis, direction −/+) of a motion key
        self._buttons: tuple[int, ...] = ()

    def reset(self) -> None:
        """Forget held motion keys (a new episode)."""
        self._held[:] = 0

    def map(self, inp: DeviceInput) -> Command:
        dz = self.cfg.deadzone
        axes = np.clip(np.asarray(inp.axes, np.float64), -1.0, 1.0)
        axes = np.sign(axes) * np.maximum(0.0, np.abs(axes) - dz) / (1.0 - dz)
        actions: list[str] = []
        for i, b in enumerate(inp.buttons):
            was = self._buttons[i] if i < len(self._buttons) else 0
            if b and not was and i < len(self.cfg.buttons) and self.cfg.buttons[i] != "none":
                actions.append(self.cfg.buttons[i])
        self._buttons = tuple(inp.buttons)
        for k in inp.keys:
            if k in KEY_ACTIONS:
                actions.append(KEY_ACTIONS[k])
            elif k in KEY_MOTION:
                axis, sign = KEY_MOTION[k]
                self._held[axis, int(sign > 0)] = self.cfg.key_hold_steps
        keyed = (self._held[:, 1] > 0).astype(float) - (self._held[:, 0] > 0).astype(float)
        self._held = np.maximum(self._held - 1, 0)
        motion = np.clip(axes + keyed, -1.0, 1.0)
        motion = np.concatenate([self._rot @ motion[:3], self._rot @ motion[3:]])
        return Command(motion=motion, actions=actions)


# ------------------------------------------------------------------------------------------------ viewer
def has_display() -> bool:
    """Whether a window can open: always on macOS/Windows; on Linux/BSD an X11 or Wayland display is needed."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def import_pyspacemouse():
    """pyspacemouse, or a HumanInputError saying how to install it (it loads the system's hidapi on import)."""
    try:
        import pyspacemouse
    except Exception as e:  # ImportError, or OSError from easyhid's dlopen of hidapi
        raise HumanInputError(f"corrector.human.device=spacemouse needs pyspacemouse with the hidapi library; "
                              f"importing it failed ({type(e).__name__}: {e}). {FIX_SPACEMOUSE}") from None
    return pyspacemouse


class Viewer:
    """MuJoCo's passive viewer mirroring env 0 (its own MjData, refreshed every control step: dragging bodies in the
    window does not reach the simulation), with a status line, and its key presses pushed to `keys`."""

    def __init__(self, env: Any, keys: KeyQueue) -> None:
        import mujoco
        import mujoco.viewer

        self._mujoco = mujoco
        self.env = env
        self.model = env._models[0] if hasattr(env, "_models") else env.model  # env 0's (randomized) model
        self.data = mujoco.MjData(self.model)
        env.batch.get_data(0, self.data)
        try:
            self.handle = mujoco.viewer.launch_passive(self.model, self.data, key_callback=keys.push,
                                                       show_left_ui=False, show_right_ui=False)
        except Exception as e:  # GLFW/OpenGL failures, macOS without mjpython
            raise HumanInputError(f"corrector.human.viewer: MuJoCo's viewer did not open ({type(e).__name__}: {e}). "
                                  "Fix: run on a desktop with a working OpenGL display (on macOS start Python with "
                                  "mjpython), or corrector.human.device=replay corrector.human.viewer=false"
                                  ) from None

    def sync(self, status: str) -> None:
        """Show env 0's current state and `status`; raises HumanInputError when the window was closed."""
        if not self.handle.is_running():
            raise HumanInputError("the viewer window was closed: this round's episodes are discarded. Run the same "
                                  "command again to resume the session from this round")
        mj = self._mujoco
        with self.handle.lock():
            self.env.batch.get_data(0, self.data)
            mj.mj_forward(self.model, self.data)
        if hasattr(self.handle, "set_texts"):  # takes the viewer's lock itself (not reentrant); older mujoco: none
            self.handle.set_texts((mj.mjtFontScale.mjFONTSCALE_150, mj.mjtGridPos.mjGRID_TOPLEFT, status, ""))
        self.handle.sync()

    def close(self) -> None:
        self.handle.close()


def preflight(cfg: CorrectorCfg) -> None:
    """Refuse before anything runs what `HumanCorrector` would refuse later: no display for the viewer or the
    keyboard, pyspacemouse or its device missing, an unreadable replay file."""
    h = cfg.human
    if h.viewer and not has_display():
        raise HumanInputError(
            f"corrector.kind=human with corrector.human.device={h.device} shows MuJoCo's viewer, which needs a "
            "display; none was found ($DISPLAY and $WAYLAND_DISPLAY are unset). Fix: run on a desktop session (or "
            "ssh -X), or replay recorded events headless with corrector.human.device=replay "
            "corrector.human.replay_file=<events.json> corrector.human.viewer=false")
    if h.device == "spacemouse":
        pyspacemouse = import_pyspacemouse()
        try:
            found = pyspacemouse.get_connected_devices()
        except Exception as e:
            raise HumanInputError(f"corrector.human.device=spacemouse: listing HID devices failed "
                                  f"({type(e).__name__}: {e}). {FIX_SPACEMOUSE}") from None
        if not found or (h.spacemouse and h.spacemouse not in found):
            want = h.spacemouse or "a supported SpaceMouse"
            raise HumanInputError(f"corrector.human.device=spacemouse: expected {want} connected, found "
                                  f"{found or 'none'}. {FIX_SPACEMOUSE}")
    if h.device == "replay":
        load_events(Path(h.replay_file))


# ------------------------------------------------------------------------------------------------ the corrector
class HumanCorrector:
    """A person as the corrector of one env (HG-DAgger: the person decides when to intervene).

    The policy drives until the takeover toggle (Enter, or the device's takeover button) is pressed; from that
    control step the person drives: the selected arm's TCP target moves by the mapped motion × `gains`
    (m and rad per control step, clipped to the env's ee_delta bounds), the other arm holds its pose, each
    gripper keeps its opening until toggled (the toggle closes an open gripper fully and opens a closed one).
    The TCP target is re-seated on the measured pose at takeover and the grippers start at the policy's last
    command, so control passes without a jump. The same toggle hands back; a new episode starts with the policy
    in control. Every takeover's trigger is recorded as "human".
    """

    def __init__(self, cfg: CorrectorCfg, env: Any, device: InputDevice | None = None) -> None:
        h = cfg.human
        if env.num_envs != 1:
            raise HumanInputError(f"corrector.kind=human: one person drives one env, so num_envs must be 1, got "
                                  f"{env.num_envs}. Fix: num_envs=1")
        if env.cfg.action.mode != "joint_pos":
            raise HumanInputError(f"the corrected env must act in joint_pos (the policy's mode), got "
                                  f"{env.cfg.action.mode!r}")
        self.cfg, self.env = cfg, env
        keys = KeyQueue()
        self.viewer: Viewer | None = None
        if device is None:
            preflight(cfg)
            if h.device == "spacemouse":
                device = SpaceMouseDevice(keys if h.viewer else None, h.spacemouse)
            elif h.device == "keyboard":
                device = KeyboardDevice(keys)
            else:
                device = ReplayDevice(h.replay_file)
        self.device: InputDevice = device
        self.paced = device.name != "replay" or h.viewer  # a person at the controls, or watching a replay
        if h.viewer:
            if not has_display():
                preflight(cfg)  # raises the no-display message
            self.viewer = Viewer(env, keys)
        self.mapper = TeleopMapper(h)
        self.recorder = EventRecorder(h.record_file, device.name) if h.record_file else None
        self.name = f"human:{device.name}"
        self.arms = len(env.robot.arms)
        self.per_arm = env.single_action_space.shape[0] // self.arms  # joint_pos layout: 6 joints + gripper
        self.arm = 0  # the selected arm (0: left)
        self.grip = np.ones(self.arms)  # commanded gripper openings in [0, 1] while the person drives
        self.control = np.zeros(1, bool)
        self.fired: list[str] = [""]
        self.step = 0  # control steps observed since the corrector started (the replay's clock)
        self._delta = np.zeros((1, self.arms * 7))
        self._next_t: float | None = None

    # -- the corrector interface of online.session.collect
    def reset(self, env_ids: np.ndarray) -> None:
        """A new episode: the policy drives, held motion keys are forgotten (the selected arm is kept)."""
        if len(np.asarray(env_ids).reshape(-1)):
            self.control[0], self.fired[0] = False, ""
            self.mapper.reset()
            if self.recorder is not None:
                self.recorder.save()

    def observe(self, obs: dict[str, np.ndarray], progress: np.ndarray, policy_actions: np.ndarray | None) -> None:
        """After a step (or a reset): read the device, apply the presses (takeover / hand back, arm, gripper), and
        set the command of the next step. Shows the state in the viewer and paces to real time with a live
        device or the viewer. `obs`, `progress` and `policy_actions` are not used: the person watches the viewer."""
        inp = self.device.poll(self.step)
        if self.recorder is not None:
            self.recorder.add(self.step, inp)
        cmd = self.mapper.map(inp)
        for act in cmd.actions:
            if act == "takeover":
                self._toggle()
            elif act == "arm":
                self.arm = (self.arm + 1) % self.arms
            elif act == "gripper" and self.control[0]:
                self.grip[self.arm] = 0.0 if self.grip[self.arm] >= 0.5 else 1.0
        delta = np.zeros((self.arms, 7))
        if self.control[0]:
            g = self.cfg.human.gains
            delta[self.arm, :3] = cmd.motion[:3] * g.translation
            delta[self.arm, 3:6] = cmd.motion[3:] * g.rotation
        delta[:, 6] = self.grip
        self._delta = delta.reshape(1, -1)
        if self.viewer is not None:
            self.viewer.sync(self.status())
        if self.paced:
            self._pace()
        self.step += 1

    def in_control(self) -> np.ndarray:
        """(1,) bool: the person drives the next step."""
        return self.control.copy()

    def actions(self, env_ids: np.ndarray) -> np.ndarray:
        """The (1, 14) joint_pos actions executing the person's command (moves the TCP target)."""
        return self.env.joint_action_from_ee_delta(self._delta[np.asarray(env_ids, int)], env_ids)

    def close(self) -> None:
        """Write the recorded events, close the device and the viewer."""
        if self.recorder is not None:
            self.recorder.save()
        self.device.close()
        if self.viewer is not None:
            self.viewer.close()
            self.viewer = None

    # -- internals
    def status(self) -> str:
        side = ["left", "right"][self.arm] if self.arms == 2 else str(self.arm)
        if not self.control[0]:
            return f"policy drives (Enter: take over) · arm {side} (A)"
        grip = "open" if self.grip[self.arm] >= 0.5 else "closed"
        return f"YOU drive (Enter: hand back) · arm {side} (A) · gripper {grip} (G)"

    def _toggle(self) -> None:
        if self.control[0]:
            self.control[0] = False
            return
        env = self.env
        env.reanchor_ee_target(np.array([0]))
        self.grip = np.array([float(env.joint_action[0, a * self.per_arm + self.per_arm - 1])
                              for a in range(self.arms)])
        self.control[0], self.fired[0] = True, "human"

    def _pace(self) -> None:
        rate = self.cfg.human.realtime
        if rate <= 0:
            return
        period = self.env.control_dt / rate
        now = time.perf_counter()
        if self._next_t is not None and now < self._next_t:
            time.sleep(self._next_t - now)
            now = self._next_t
        self._next_t = now + period
