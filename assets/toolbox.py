"""A procedural toolbox: an open-top box with a hinged lid, a rubber seal under the lid and a latch.

The description (`ToolboxSpec`) is plain data in SI units (m, kg, rad, N·m); `to_mjcf()` emits it for the MuJoCo
backend, and the same description can be emitted for Isaac Lab later (an articulation with one revolute joint, a
joint spring over a range, and a joint lock that is switched on at runtime).

Frames (box frame: origin at the centre of the bottom face, +z up):

    -x end: the back. The hinge runs along the top edge of the -x wall (the lid swings open over the box towards
            -x); below it a handle sticks out of the back wall, for holding the box steady.
    +x end: the front. The lid's free edge carries a tab (the latch hasp) that sticks out past the front wall,
            beyond the box's footprint: pressing it down hard tips a box that is not held.

Lid joint: angle θ (rad), 0 = lid lying on the rim, positive = open (hinge axis -y in the box frame).

Closing mechanics, all in the model:
    - hinge damping and dry friction (`frictionloss`) hold the lid at any angle against its weight;
    - the seal: a spring on the lid angle with a dead band (a fixed tendon with `springlength` = [seal_angle, ∞)),
      so it pushes the lid open only in the last `seal_angle` of closing: resting on the seal, the lid stands
      ajar at about `seal_angle`, and only a press of about `press_force` at the tab compresses it further;
    - the latch: a joint equality that holds the lid at `latch_hold_angle` (a little below `latch_angle`: the
      catch pulls the lid snug), defined inactive; the task switches it on (MuJoCo's `eq_active` state) once the
      seal is compressed past `latch_angle` — which the lid's weight alone cannot do, so a latch needs a press.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

RGBA = tuple[float, float, float, float]


def _f(v) -> str:
    return " ".join(f"{x:.6g}" for x in v)


@dataclass(frozen=True)
class MJCFFragment:
    """MJCF for a scene: a `<worldbody>` snippet and other top-level sections by tag (`tendon`, `equality`)."""

    worldbody: str
    sections: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolboxSpec:
    """A toolbox with a hinged, latching lid. Lengths in m, masses in kg, angles in rad."""

    length: float = 0.12  # box extent along x, hinge wall to front wall (m); the lid is as long
    width: float = 0.22  # box extent along y (m)
    height: float = 0.08  # top of the walls above the bottom face (m)
    wall: float = 0.006  # wall and floor thickness (m)
    lid_thickness: float = 0.008  # m
    tab_size: tuple[float, float, float] = (0.05, 0.05, 0.02)  # latch tab: reach past the lid edge, y, z (m)
    tab_y: float = 0.0  # tab centre along the box y (m)
    handle_size: tuple[float, float, float] = (0.045, 0.05, 0.03)  # handle: reach past the back wall, y, z (m)
    handle_y: float = 0.0  # handle centre along the box y (m)
    handle_drop: float = 0.012  # handle top below the rim (m)
    box_mass: float = 0.25  # box with handle (kg): light, so it slides or tips if pushed and not held
    lid_mass: float = 0.08  # lid with tab (kg)
    box_friction: float = 0.35  # sliding friction of the box floor on the table (it overrides the table's)
    hinge_damping: float = 0.05  # N·m·s/rad
    hinge_friction: float = 0.15  # dry friction torque of the hinge (N·m): holds the open lid against gravity
    hinge_armature: float = 0.001  # reflected inertia of the hinge (kg·m²): steadies the light lid
    open_limit: float = 1.6  # widest lid opening (rad)
    seal_angle: float = 0.052  # lid angle where it meets the seal (rad), ≈ 6 mm gap at the front
    seal_stiffness: float = 45.0  # seal spring below seal_angle (N·m/rad): ≈ 10 N at the tab to latch
    latch_angle: float = 0.021  # the latch engages when the lid is pressed below this angle (rad)
    latch_hold_angle: float = 0.017  # lid angle the engaged latch holds (rad)
    box_rgba: RGBA = (0.8, 0.15, 0.12, 1.0)
    lid_rgba: RGBA = (0.8, 0.15, 0.12, 1.0)
    trim_rgba: RGBA = (0.18, 0.18, 0.2, 1.0)  # tab, handle, hinge and latch hardware

    def validate(self) -> list[str]:
        out = []
        if not 0 < self.latch_hold_angle <= self.latch_angle < self.seal_angle < self.open_limit:
            out.append("angles must satisfy 0 < latch_hold_angle <= latch_angle < seal_angle < open_limit")
        if min(self.box_mass, self.lid_mass, self.seal_stiffness, self.hinge_friction) <= 0:
            out.append("masses, seal_stiffness and hinge_friction must be > 0")
        if self.lid_weight_torque() >= self.seal_stiffness * (self.seal_angle - self.latch_angle):
            out.append("the lid's weight alone would compress the seal past the latch angle")
        return out

    # ---------------------------------------------------------------- geometry the task and expert share
    @property
    def hinge_pos(self) -> np.ndarray:
        """Hinge point (box frame, m); the hinge axis is -y."""
        return np.array([-self.length / 2, 0.0, self.height])

    @property
    def tab_grasp(self) -> np.ndarray:
        """Where fingers straddling the tab work it, in the lid frame (origin at the hinge, x to the free edge, z the
        lid's outward normal), m: 15 mm in from the tab's end, so a gripper there clears the lid edge and the front
        wall."""
        return np.array([self.length + self.tab_size[0] - 0.015, self.tab_y, self.lid_thickness / 2])

    @property
    def handle_grasp(self) -> np.ndarray:
        """Handle grasp point (box frame, m): 15 mm in from the handle's end, so the fingers clear the back wall."""
        sx, _, sz = self.handle_size
        return np.array([-self.length / 2 - sx + 0.015, self.handle_y, self.height - self.handle_drop - sz / 2])

    def lid_rotation(self, angle: float | np.ndarray) -> np.ndarray:
        """(..., 3, 3) lid frame → box frame for lid angle(s) (rad): a rotation by -angle about y."""
        a = np.asarray(angle, float)
        c, s = np.cos(a), np.sin(a)
        z, o = np.zeros_like(a), np.ones_like(a)
        return np.stack([np.stack([c, z, -s], -1), np.stack([z, o, z], -1), np.stack([s, z, c], -1)], -2)

    def lid_point(self, p_lid: np.ndarray, angle: float | np.ndarray) -> np.ndarray:
        """A lid-frame point (m) in the box frame at lid angle(s) (rad)."""
        return self.hinge_pos + self.lid_rotation(angle) @ np.asarray(p_lid, float)

    def lid_weight_torque(self, g: float = 9.81) -> float:
        """Largest gravity torque of the lid about the hinge (N·m), lid horizontal."""
        return self.lid_mass * g * self._lid_com_x()

    def press_force(self) -> float:
        """Force at the tab grasp point, normal to the lid, that takes the lid from resting on the seal to the latch
        angle against seal, hinge friction and (helping) weight (N)."""
        torque = self.seal_stiffness * (self.seal_angle - self.latch_angle) + self.hinge_friction
        return (torque - self.lid_weight_torque()) / self.tab_grasp[0]

    # ---------------------------------------------------------------- masses
    def _box_parts(self) -> list[tuple[str, tuple[float, float, float], tuple[float, float, float]]]:
        """(name, centre, half-size) of the box's collision boxes, box frame (m)."""
        L, W, H, t = self.length, self.width, self.height, self.wall
        sx, sy, sz = self.handle_size
        return [
            ("floor", (0.0, 0.0, t / 2), (L / 2, W / 2, t / 2)),
            ("wall_back", (-L / 2 + t / 2, 0.0, H / 2), (t / 2, W / 2, H / 2)),
            ("wall_front", (L / 2 - t / 2, 0.0, H / 2), (t / 2, W / 2, H / 2)),
            ("wall_left", (0.0, W / 2 - t / 2, H / 2), (L / 2 - t, t / 2, H / 2)),
            ("wall_right", (0.0, -W / 2 + t / 2, H / 2), (L / 2 - t, t / 2, H / 2)),
            ("handle", (-L / 2 - sx / 2, self.handle_y, H - self.handle_drop - sz / 2), (sx / 2, sy / 2, sz / 2)),
        ]

    def _lid_parts(self) -> list[tuple[str, tuple[float, float, float], tuple[float, float, float]]]:
        """(name, centre, half-size) of the lid's collision boxes, lid frame (m); the tab overlaps the lid by 5 mm."""
        L, W, t = self.length, self.width, self.lid_thickness
        sx, sy, sz = self.tab_size
        return [("lid", (L / 2, 0.0, t / 2), (L / 2, W / 2, t / 2)),
                ("tab", (L + (sx - 0.005) / 2, self.tab_y, t / 2), ((sx + 0.005) / 2, sy / 2, sz / 2))]

    @staticmethod
    def _split_mass(parts, total: float) -> list[float]:
        vol = [8 * h[0] * h[1] * h[2] for _, _, h in parts]
        return [total * v / sum(vol) for v in vol]

    def _lid_com_x(self) -> float:
        parts = self._lid_parts()
        masses = self._split_mass(parts, 1.0)
        return float(sum(m * c[0] for m, (_, c, _) in zip(masses, parts, strict=True)))

    # ---------------------------------------------------------------- emitters
    def to_mjcf(self, name: str = "toolbox", pos=(0.0, 0.0, 0.0), yaw: float = 0.0) -> MJCFFragment:
        """MJCF for the toolbox as a free body `name` with child body `name/lid` (joint `name/lid`), tendon
        `name/seal`, inactive equality `name/latch`, and sites `name/tab` (tab grasp point) and `name/handle`."""
        problems = self.validate()
        if problems:
            raise ValueError(f"ToolboxSpec: {'; '.join(problems)}")
        quat = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        body = [f'<body name="{name}" pos="{_f(pos)}" quat="{_f(quat)}">', f'<freejoint name="{name}"/>']
        body += self._geoms(name, self._box_parts(), self.box_mass, self.box_rgba, floor_priority=True)
        body += self._hardware(name)
        body.append(f'<site name="{name}/handle" pos="{_f(self.handle_grasp)}" size="0.004" group="4"/>')
        body.append(self._lid_xml(name))
        body.append("</body>")
        tendon = (f'<fixed name="{name}/seal" stiffness="{self.seal_stiffness:.6g}" '
                  f'springlength="{self.seal_angle:.6g} {self.open_limit + 1:.6g}">'
                  f'<joint joint="{name}/lid" coef="1"/></fixed>')
        # the latch: holds the lid angle at latch_hold_angle once switched on (eq_active); stiff, critically damped
        equality = (f'<joint name="{name}/latch" joint1="{name}/lid" polycoef="{self.latch_hold_angle:.6g} 0 0 0 0" '
                    f'active="false" solref="0.005 1"/>')
        return MJCFFragment("\n".join(body), {"tendon": tendon, "equality": equality})

    def _lid_xml(self, name: str) -> str:
        lid = [f'<body name="{name}/lid" pos="{_f(self.hinge_pos)}">',
               # dry friction as a stiff soft constraint: MuJoCo's default lets a light lid creep shut
               f'<joint name="{name}/lid" type="hinge" axis="0 -1 0" range="0 {self.open_limit:.6g}" '
               f'damping="{self.hinge_damping:.6g}" frictionloss="{self.hinge_friction:.6g}" '
               f'armature="{self.hinge_armature:.6g}" solreffriction="0.005 1" solimpfriction="0.99 0.999 0.001"/>']
        parts = self._lid_parts()
        rgba = [self.lid_rgba, self.trim_rgba]
        masses = self._split_mass(parts, self.lid_mass)
        for (part, c, h), m, col in zip(parts, masses, rgba, strict=True):
            lid.append(f'<geom name="{name}/{part}" class="prop" type="box" pos="{_f(c)}" size="{_f(h)}" '
                       f'mass="{m:.6g}" rgba="{_f(col)}" friction="1 0.01 0.001"/>')
        lid.append(f'<site name="{name}/tab" pos="{_f(self.tab_grasp)}" size="0.004" group="4"/>')
        lid.append("</body>")
        return "\n".join(lid)

    def _geoms(self, name: str, parts, mass: float, rgba: RGBA, floor_priority: bool) -> list[str]:
        out = []
        for (part, c, h), m in zip(parts, self._split_mass(parts, mass), strict=True):
            col = self.trim_rgba if part == "handle" else rgba
            # the floor's friction decides box–table sliding (priority beats the table's friction of 1)
            fr = (f'priority="1" friction="{self.box_friction:.6g} 0.01 0.001"'
                  if part == "floor" and floor_priority else 'friction="1 0.01 0.001"')
            out.append(f'<geom name="{name}/{part}" class="prop" type="box" pos="{_f(c)}" size="{_f(h)}" '
                       f'mass="{m:.6g}" rgba="{_f(col)}" {fr}/>')
        return out

    def _hardware(self, name: str) -> list[str]:
        """Visual-only parts: hinge barrel, seal strip on the front rim, latch catch under the tab."""
        L, W, H, t = self.length, self.width, self.height, self.wall
        seal_h = (L - t / 2) * math.sin(self.seal_angle)
        vis = 'contype="0" conaffinity="0" group="2" mass="0"'
        trim = _f(self.trim_rgba)
        return [
            f'<geom name="{name}/hinge_vis" type="cylinder" size="0.006 {W / 2 - 0.01:.6g}" '
            f'pos="{-L / 2:.6g} 0 {H:.6g}" quat="0.70710678 0.70710678 0 0" rgba="{trim}" {vis}/>',
            f'<geom name="{name}/seal_vis" type="box" size="{t / 2:.6g} {W / 2 - t:.6g} {seal_h / 2:.6g}" '
            f'pos="{L / 2 - t / 2:.6g} 0 {H + seal_h / 2:.6g}" rgba="0.05 0.05 0.05 1" {vis}/>',
            f'<geom name="{name}/catch_vis" type="box" size="0.004 {self.tab_size[1] / 2:.6g} 0.006" '
            f'pos="{L / 2 + 0.004:.6g} {self.tab_y:.6g} {H - 0.014:.6g}" rgba="{trim}" {vis}/>',
        ]


__all__ = ["MJCFFragment", "ToolboxSpec"]
