"""A procedural BusyBox panel — the everyday-controls benchmark of arXiv 2602.05441 — described as plain data and
emitted as MJCF.

The panel is a box lying on the table whose top face carries a grid of swappable, rotatable modules:

    buttons   4 coloured push buttons (red, green, blue, yellow), spring-return (joint stiffness with preload)
    switches  2 toggle switches (top, bottom), bistable: a lever with an over-centre detent (on = tilted to +x)
    sliders   2 sliders (left, right) with 5 detent positions 20 mm apart
    knob      a rotary knob with 6 detent positions 30° apart (position 1 at 0 rad, counter-clockwise from above)
    wires     4 coloured jack connectors (red, green, blue, yellow) seated in sleeve sockets
    display   a screen (visual; collides as a flat box)

Frames: a module's frame has its origin at the module centre on the panel's top face, +z up; positions and axes
below are in that frame (m, rad). A layout puts module `order[s]` into grid slot `s` (row-major, row 0 at the
panel's +y side), turned by `turns[s]` quarter turns about +z. One compiled scene serves every layout: module
bodies are static children of the panel body, so a layout (and the panel pose) is applied per environment by
writing `body_pos` / `body_quat` of the model copy (`apply_layout`).

Physics of the controls (what a finger feels):
    - detents (sliders, knob, switches) are weak position actuators on the control's joint whose target the task
      sets every control step to the nearest detent: a piecewise spring with a force cap — it resists, then snaps
      into the next notch once the control passes the midpoint (`Detents`).
    - buttons are slide joints with a preloaded spring (`stiffness`, `springref`): ~1.8 N to start, ~4.2 N at the
      end of 8 mm travel; a press counts ("click") past 5 mm.
    - jacks are free bodies; a seated jack is held by a soft weld to its socket (≈ 1 N/mm: ≈ 3 N at the 3 mm break-away
      displacement, then the weld lets go); a jack brought back within the seat tolerance is welded again.

Control geoms collide only with the fingers (contype 0, conaffinity 4), so arm links cannot snag them and they
cannot rest on the panel; jacks, sockets, the display and the panel base collide like props. The description is
backend-neutral, so an Isaac Lab (USD) emitter can follow from the same data.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["button", "switch", "slider", "knob", "jack"]
COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.15, 0.12, 1.0), "green": (0.15, 0.7, 0.25, 1.0), "blue": (0.15, 0.3, 0.85, 1.0),
    "yellow": (0.92, 0.8, 0.1, 1.0)}
PANEL_RGBA = (0.42, 0.45, 0.52, 1.0)
DARK = (0.12, 0.12, 0.13, 1.0)
CTRL_COLLIDE = 'contype="0" conaffinity="4"'  # controls touch the fingers only
PROP_COLLIDE = 'contype="1" conaffinity="7"'  # panel base, sockets, jacks, display: like props
VISUAL = 'contype="0" conaffinity="0"'


@dataclass(frozen=True)
class GeomSpec:
    """One geom in its body's frame (MuJoCo half-sizes, m)."""

    shape: Literal["box", "cylinder", "capsule", "sphere"]
    size: tuple[float, ...]
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rgba: tuple[float, float, float, float] = DARK
    collide: Literal["ctrl", "prop", "none"] = "ctrl"
    mass: float = 0.0  # kg (0: massless, for visual geoms and static bodies)
    yaw: float = 0.0  # rotation about the body z (rad)


@dataclass(frozen=True)
class Detents:
    """Notched positions of a joint and the spring that pulls into the nearest one (a capped position servo)."""

    positions: tuple[float, ...]  # joint values (m or rad)
    stiffness: float  # N/m or N·m/rad
    max_force: float  # N or N·m: the most the detent pushes back

    def nearest(self, q: np.ndarray) -> np.ndarray:
        pos = np.asarray(self.positions)
        return pos[np.abs(np.asarray(q)[..., None] - pos).argmin(-1)]


@dataclass(frozen=True)
class ControlSpec:
    """A movable control: one joint (or a free jack), its geoms and the point a finger presses or grasps."""

    name: str  # unique, e.g. "button_red"
    kind: Kind
    pos: tuple[float, float, float]  # joint origin in the module frame (m)
    geoms: tuple[GeomSpec, ...]
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)  # joint axis in the module frame
    range: tuple[float, float] = (0.0, 0.0)  # joint range (m or rad)
    stiffness: float = 0.0  # passive spring (N/m or N·m/rad)
    springref: float = 0.0  # spring rest position (m or rad)
    damping: float = 0.0  # N·s/m or N·m·s/rad
    armature: float = 0.0  # kg or kg·m²
    detents: Detents | None = None
    grasp: tuple[float, float, float] = (0.0, 0.0, 0.0)  # press / grasp point in the control's frame (m)

    @property
    def joint_type(self) -> str:
        return {"button": "slide", "slider": "slide", "switch": "hinge", "knob": "hinge", "jack": "free"}[self.kind]


@dataclass(frozen=True)
class ModuleSpec:
    """A module: static geoms (plates, sockets, screen) and its controls, all in the module frame."""

    type: str
    controls: tuple[ControlSpec, ...] = ()
    static_geoms: tuple[GeomSpec, ...] = ()
    sockets: tuple[tuple[str, tuple[float, float, float]], ...] = ()  # (jack colour, socket origin) pairs


@dataclass(frozen=True)
class Layout:
    """Module `order[s]` sits in slot `s` (row-major), turned by `turns[s]` quarter turns about +z."""

    order: tuple[int, ...]
    turns: tuple[int, ...]

    def key(self) -> str:
        return "-".join(f"{o}{t % 4}" for o, t in zip(self.order, self.turns, strict=True))


@dataclass(frozen=True)
class BusyBoxSpec:
    """The panel: a grid of `rows × cols` square cells on a box of height `height`."""

    modules: tuple[ModuleSpec, ...]
    rows: int = 2
    cols: int = 3
    cell: float = 0.12  # cell pitch (m)
    margin: float = 0.012  # panel rim around the grid (m)
    height: float = 0.05  # panel top above the table (m)
    heldout_fraction: float = 0.2  # share of layouts kept for evaluation

    @property
    def half_extents(self) -> tuple[float, float, float]:
        return (self.cols * self.cell / 2 + self.margin, self.rows * self.cell / 2 + self.margin, self.height / 2)

    def slot_xy(self, slot: int) -> tuple[float, float]:
        r, c = divmod(slot, self.cols)
        return ((c - (self.cols - 1) / 2) * self.cell, ((self.rows - 1) / 2 - r) * self.cell)

    def module_index(self, type_: str) -> int:
        return [m.type for m in self.modules].index(type_)

    def control(self, name: str) -> tuple[ModuleSpec, ControlSpec]:
        for m in self.modules:
            for c in m.controls:
                if c.name == name:
                    return m, c
        raise KeyError(f"no control {name!r}; controls: {[c.name for m in self.modules for c in m.controls]}")

    @property
    def default_layout(self) -> Layout:
        return Layout(tuple(range(len(self.modules))), (0,) * len(self.modules))


# ---------------------------------------------------------------------------------------------------- modules
BUTTON_TRAVEL = 0.008  # m
BUTTON_CLICK = 0.005  # travel that counts as a press (m)
SWITCH_ANGLE = 0.35  # stable lever angles ±this (rad); on = +
KNOB_DETENTS = tuple(k * math.pi / 6 for k in range(6))  # positions 1..6 (rad)
SLIDER_DETENTS = tuple(-0.04 + 0.02 * k for k in range(5))  # positions 1..5 (m)
JACK_SEAT_Z = 0.0125  # jack origin above its socket origin when seated (m)
SLEEVE_H = 0.012  # socket sleeve height (m)


def buttons_module() -> ModuleSpec:
    ctrls = []
    for (name, rgba), (x, y) in zip(COLORS.items(), [(-1, 1), (1, 1), (-1, -1), (1, -1)], strict=True):
        cap = GeomSpec("cylinder", (0.012, 0.006), (0.0, 0.0, 0.006), rgba, "ctrl", 0.01)
        ctrls.append(ControlSpec(f"button_{name}", "button", (0.027 * x, 0.027 * y, 0.004), (cap,),
                                 range=(-BUTTON_TRAVEL, 0.0), stiffness=300.0, springref=0.006, damping=3.0,
                                 grasp=(0.0, 0.0, 0.012)))
    bezels = tuple(GeomSpec("cylinder", (0.016, 0.002), (0.027 * x, 0.027 * y, 0.002), DARK, "none")
                   for x, y in [(-1, 1), (1, 1), (-1, -1), (1, -1)])
    return ModuleSpec("buttons", tuple(ctrls), bezels)


def switches_module() -> ModuleSpec:
    ctrls, statics = [], []
    for name, y in (("top", 0.025), ("bottom", -0.025)):
        lever = GeomSpec("capsule", (0.004, 0.012), (0.0, 0.0, 0.012), (0.75, 0.75, 0.78, 1.0), "ctrl", 0.005)
        ctrls.append(ControlSpec(f"switch_{name}", "switch", (0.0, y, 0.005), (lever,), axis=(0.0, 1.0, 0.0),
                                 range=(-0.45, 0.45), damping=0.002, armature=1e-5,
                                 detents=Detents((-SWITCH_ANGLE, SWITCH_ANGLE), 0.09, 0.04),
                                 grasp=(0.0, 0.0, 0.024)))
        statics.append(GeomSpec("box", (0.014, 0.008, 0.0025), (0.0, y, 0.0025), DARK, "none"))
        statics.append(GeomSpec("box", (0.003, 0.003, 0.001), (0.018, y, 0.001), (0.1, 0.8, 0.2, 1), "none"))
    return ModuleSpec("switches", tuple(ctrls), tuple(statics))


def sliders_module() -> ModuleSpec:
    ctrls, statics = [], []
    for name, x in (("left", -0.03), ("right", 0.03)):
        handle = GeomSpec("box", (0.010, 0.005, 0.021), (0.0, 0.0, 0.024), (0.2, 0.2, 0.22, 1.0), "ctrl", 0.02)
        ctrls.append(ControlSpec(f"slider_{name}", "slider", (x, 0.0, 0.0), (handle,), axis=(0.0, 1.0, 0.0),
                                 range=(-0.045, 0.045), damping=4.0, armature=0.02,
                                 detents=Detents(SLIDER_DETENTS, 150.0, 1.2), grasp=(0.0, 0.0, 0.045)))
        statics.append(GeomSpec("box", (0.003, 0.05, 0.001), (x, 0.0, 0.001), DARK, "none"))
        statics += [GeomSpec("box", (0.008, 0.001, 0.001), (x + 0.012, p, 0.001), DARK, "none")
                    for p in SLIDER_DETENTS]
    return ModuleSpec("sliders", tuple(ctrls), tuple(statics))


def knob_module() -> ModuleSpec:
    body = GeomSpec("cylinder", (0.014, 0.02), (0.0, 0.0, 0.02), (0.25, 0.25, 0.28, 1.0), "ctrl", 0.03)
    pointer = GeomSpec("box", (0.007, 0.002, 0.001), (0.007, 0.0, 0.0405), (0.95, 0.95, 0.95, 1.0), "none")
    knob = ControlSpec("knob", "knob", (0.0, 0.0, 0.003), (body, pointer), range=(-0.15, 2.77), damping=0.01,
                       armature=1e-4, detents=Detents(KNOB_DETENTS, 0.3, 0.06), grasp=(0.0, 0.0, 0.040))
    ticks = tuple(GeomSpec("box", (0.005, 0.0015, 0.001), (0.026 * math.cos(a), 0.026 * math.sin(a), 0.001),
                           DARK, "none", yaw=a) for a in KNOB_DETENTS)
    return ModuleSpec("knob", (knob,), (GeomSpec("cylinder", (0.02, 0.0015), (0, 0, 0.0015), DARK, "none"), *ticks))


def wires_module() -> ModuleSpec:
    ctrls, statics, sockets = [], [], []
    wall, inner = 0.001, 0.0055  # sleeve wall half-thickness and inner half-width (m): 1.5 mm play on the pin
    for (name, rgba), x in zip(COLORS.items(), (-0.039, -0.013, 0.013, 0.039), strict=True):
        o = inner + wall
        statics += [GeomSpec("box", (wall, o + wall, SLEEVE_H / 2), (x + s * o, 0.0, SLEEVE_H / 2), DARK, "prop")
                    for s in (-1, 1)]
        statics += [GeomSpec("box", (inner, wall, SLEEVE_H / 2), (x, s * o, SLEEVE_H / 2), DARK, "prop")
                    for s in (-1, 1)]
        statics.append(GeomSpec("box", (0.009, 0.009, 0.0005), (x, 0.0, 0.0005), rgba, "none"))
        sockets.append((name, (x, 0.0, 0.0)))
        pin = GeomSpec("box", (0.004, 0.004, 0.006), (0.0, 0.0, -0.006), (0.7, 0.7, 0.72, 1.0), "prop", 0.004)
        grip = GeomSpec("box", (0.007, 0.010, 0.02), (0.0, 0.0, 0.02), rgba, "prop", 0.016)
        cable = GeomSpec("capsule", (0.003, 0.012), (0.0, 0.0, 0.052), rgba, "none")
        ctrls.append(ControlSpec(f"jack_{name}", "jack", (x, 0.0, JACK_SEAT_Z), (pin, grip, cable),
                                 grasp=(0.0, 0.0, 0.04)))
    return ModuleSpec("wires", tuple(ctrls), tuple(statics), tuple(sockets))


def display_module() -> ModuleSpec:
    screen = GeomSpec("box", (0.045, 0.03, 0.004), (0.0, 0.005, 0.004), DARK, "prop")
    glass = GeomSpec("box", (0.04, 0.025, 0.0005), (0.0, 0.005, 0.0085), (0.1, 0.35, 0.45, 1.0), "none")
    led = GeomSpec("cylinder", (0.004, 0.001), (0.0, -0.035, 0.001), (0.1, 0.8, 0.2, 1.0), "none")
    return ModuleSpec("display", (), (screen, glass, led))


def default_busybox() -> BusyBoxSpec:
    """The benchmark's module set on a 2 × 3 grid of 120 mm cells (panel 384 × 264 × 50 mm)."""
    return BusyBoxSpec((buttons_module(), switches_module(), knob_module(), sliders_module(), wires_module(),
                        display_module()))


# ---------------------------------------------------------------------------------------------------- layouts
def is_heldout(spec: BusyBoxSpec, layout: Layout) -> bool:
    """A fixed, hash-based share of layouts is held out for evaluation; the default layout is always train."""
    if layout == spec.default_layout:
        return False
    return zlib.crc32(layout.key().encode()) % 1000 < spec.heldout_fraction * 1000


def sample_layout(spec: BusyBoxSpec, rng: np.random.Generator,
                  split: Literal["train", "heldout", "all"] = "train") -> Layout:
    """A random permutation of modules over slots and a random quarter-turn per module, from the given split."""
    n = len(spec.modules)
    while True:
        layout = Layout(tuple(int(v) for v in rng.permutation(n)), tuple(int(v) for v in rng.integers(0, 4, n)))
        if split == "all" or is_heldout(spec, layout) == (split == "heldout"):
            return layout


def module_poses(spec: BusyBoxSpec, layout: Layout) -> list[tuple[tuple[float, float, float], float]]:
    """(position in the panel frame (m), yaw (rad)) of each module (indexed like `spec.modules`)."""
    out: list[tuple[tuple[float, float, float], float]] = [((0.0, 0.0, 0.0), 0.0)] * len(spec.modules)
    for slot, (m, t) in enumerate(zip(layout.order, layout.turns, strict=True)):
        x, y = spec.slot_xy(slot)
        out[m] = ((x, y, spec.height), (t % 4) * math.pi / 2)
    return out


def yaw_quat(yaw: float) -> tuple[float, float, float, float]:
    return (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))


def apply_layout(model, spec: BusyBoxSpec, layout: Layout, panel_xy: tuple[float, float] = (0.0, 0.0),
                 panel_yaw: float = 0.0) -> None:
    """Write the panel pose and module poses of `layout` into an `mujoco.MjModel` (one env's copy)."""
    model.body_pos[model.body("busybox").id] = (*panel_xy, 0.0)
    model.body_quat[model.body("busybox").id] = yaw_quat(panel_yaw)
    for m, (pos, yaw) in zip(spec.modules, module_poses(spec, layout), strict=True):
        b = model.body(f"bb/mod_{m.type}").id
        model.body_pos[b] = pos
        model.body_quat[b] = yaw_quat(yaw)


def control_world_pose(spec: BusyBoxSpec, layout: Layout, name: str, panel_xy: tuple[float, float],
                       panel_yaw: float) -> tuple[np.ndarray, float]:
    """World position (m) of a control's joint origin and its module's world yaw (rad), for a layout and pose."""
    mod, ctrl = spec.control(name)
    pos, yaw = module_poses(spec, layout)[spec.modules.index(mod)]
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([pos[0] + c * ctrl.pos[0] - s * ctrl.pos[1], pos[1] + s * ctrl.pos[0] + c * ctrl.pos[1],
                      pos[2] + ctrl.pos[2]])
    cp, sp = math.cos(panel_yaw), math.sin(panel_yaw)
    world = np.array([panel_xy[0] + cp * local[0] - sp * local[1], panel_xy[1] + sp * local[0] + cp * local[1],
                      local[2]])
    return world, yaw + panel_yaw


# ---------------------------------------------------------------------------------------------------- MJCF
def _f(v) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def _geom_xml(g: GeomSpec, name: str = "") -> str:
    collide = {"ctrl": CTRL_COLLIDE, "prop": PROP_COLLIDE, "none": VISUAL}[g.collide]
    mass = f' mass="{g.mass:.6g}"' if g.mass > 0 else ' mass="0"'
    quat = f' quat="{_f(yaw_quat(g.yaw))}"' if g.yaw else ""
    nm = f' name="{name}"' if name else ""
    extra = ' condim="4" friction="1 0.01 0.001"' if g.collide != "none" else ""
    return (f'<geom{nm} type="{g.shape}" size="{_f(g.size)}" pos="{_f(g.pos)}"{quat} rgba="{_f(g.rgba)}" '
            f'{collide}{mass}{extra} group="1"/>')


def _control_xml(c: ControlSpec) -> str:
    j = (f'<joint name="bb/{c.name}" type="{c.joint_type}" axis="{_f(c.axis)}" range="{_f(c.range)}" '
         f'stiffness="{c.stiffness:.6g}" springref="{c.springref:.6g}" damping="{c.damping:.6g}" '
         f'armature="{c.armature:.6g}" solreflimit="0.004 1"/>')
    geoms = "".join(_geom_xml(g, f"bb/{c.name}" if k == 0 else "") for k, g in enumerate(c.geoms))
    site = f'<site name="bb/{c.name}" pos="{_f(c.grasp)}" size="0.003" group="4"/>'
    return f'<body name="bb/{c.name}" pos="{_f(c.pos)}">{j}{geoms}{site}</body>'


def _jack_xml(c: ControlSpec, world_pos: np.ndarray) -> str:
    geoms = "".join(_geom_xml(g, f"bb/{c.name}" if k == 1 else "") for k, g in enumerate(c.geoms))
    site = f'<site name="bb/{c.name}" pos="{_f(c.grasp)}" size="0.003" group="4"/>'
    return f'<body name="bb/{c.name}" pos="{_f(world_pos)}"><freejoint name="bb/{c.name}"/>{geoms}{site}</body>'


def _module_xml(m: ModuleSpec, pos, yaw: float) -> str:
    parts = [_geom_xml(g) for g in m.static_geoms]
    parts += [_control_xml(c) for c in m.controls if c.kind != "jack"]
    parts += [f'<body name="bb/socket_{col}" pos="{_f(p)}"/>' for col, p in m.sockets]
    return f'<body name="bb/mod_{m.type}" pos="{_f(pos)}" quat="{_f(yaw_quat(yaw))}">{"".join(parts)}</body>'


def to_mjcf(spec: BusyBoxSpec, layout: Layout | None = None) -> tuple[str, dict[str, str]]:
    """MJCF for the panel at the origin: (worldbody XML, extra sections {"actuator", "equality"}).

    Sections: a detent position actuator `bb/detent_<control>` per detented joint (kp = `Detents.stiffness`,
    force capped at `Detents.max_force`; the task writes its target), and a weld `bb/seat_<colour>` per jack
    (jack to socket, seated pose; soft, so a pull is felt before it breaks away)."""
    layout = layout or spec.default_layout
    poses = module_poses(spec, layout)
    base = GeomSpec("box", spec.half_extents, (0.0, 0.0, spec.height / 2), PANEL_RGBA, "prop")
    body = "".join(_module_xml(m, p, y) for m, (p, y) in zip(spec.modules, poses, strict=True))
    world = [f'<body name="busybox" pos="0 0 0">{_geom_xml(base, "bb/panel")}{body}</body>']
    acts, welds = [], []
    for m in spec.modules:
        for c in m.controls:
            if c.detents is not None:
                d = c.detents
                acts.append(f'<position name="bb/detent_{c.name}" joint="bb/{c.name}" kp="{d.stiffness:.6g}" '
                            f'ctrlrange="{_f(c.range)}" forcerange="{-d.max_force:.6g} {d.max_force:.6g}"/>')
            if c.kind == "jack":
                pos, _ = control_world_pose(spec, layout, c.name, (0.0, 0.0), 0.0)
                world.append(_jack_xml(c, pos))
                col = c.name.removeprefix("jack_")
                welds.append(f'<weld name="bb/seat_{col}" body1="bb/socket_{col}" body2="bb/{c.name}" '
                             f'relpose="0 0 {JACK_SEAT_Z} 1 0 0 0" solref="0.005 1" solimp="0.2 0.2 0.001"/>')
    return "\n".join(world), {"actuator": "\n".join(acts), "equality": "\n".join(welds)}


__all__ = ["BUTTON_CLICK", "COLORS", "KNOB_DETENTS", "SLIDER_DETENTS", "SWITCH_ANGLE", "BusyBoxSpec",
           "ControlSpec", "Detents", "GeomSpec", "Layout", "ModuleSpec", "apply_layout", "control_world_pose",
           "default_busybox", "is_heldout", "module_poses", "sample_layout", "to_mjcf"]
