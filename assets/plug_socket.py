"""Procedural plugs and a power strip (socket block) for plug insertion, described as data and emitted as MJCF.

Everything is built from small frozen descriptions — `ProngSpec`, `PlugSpec`, `PlugBodySpec`, `SocketStripSpec`,
`PlugSocketSpec` — whose `to_mjcf()` emits MuJoCo XML; the same descriptions are what an Isaac Lab (USD) emitter
would read. Units: m, kg, N; MJCF quaternions (w, x, y, z).

Frames (so that a seated plug's frame coincides with its outlet's frame):

    outlet frame  origin at the outlet centre on the strip's front face; +x out of the face (towards the plug),
                  +z up; site `strip/outlet_<type>`
    plug frame    origin on the prong axis in the housing's front face (where the prongs leave it); +x backwards
                  through the housing (prongs point along −x), +z up; site `plug/face`. The axis sits high on the
                  housing (`PlugBodySpec.axis_height`), so a gripper holding the housing from above at the axis
                  height keeps its fingertips off the table

The strip is a box standing on the table with its outlets on the front face (+x). The face plate is tiled from boxes
around rectangular holes (MuJoCo collides convex shapes only, so a hole is the gap between boxes); round pins get
square holes of side diameter + clearance. `clearance` is the total (diametral) play of every prong in its hole, so
each side has half of it; holes are `SocketStripSpec.hole_depth` deep, deeper than the longest prong, so a plug seats
when its housing meets the face. Each hole has a spring-loaded safety shutter (a child body on a preloaded slide
joint) a few millimetres in, so seating takes a push (`shutter_force`, 2–3.5 N per outlet) and the strip must be
steadied. A handle on the strip's back is what the steadying gripper holds. The strip's foot carries its table
friction (MuJoCo uses the higher-priority geom's friction), so how freely it slides is set apart from its grip
friction. An optional hood (`hood`) over the outlets hides them from cameras above.

One plug body carries the prongs of every plug type; a task enables one type per episode by switching the other
prongs' collisions off and making them transparent (`PlugSpec.prong_geoms` lists the geom names per type), so one
compiled scene serves all types.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

PlugType = Literal["flat", "round", "rect"]
PLUG_TYPES: tuple[PlugType, ...] = ("flat", "round", "rect")

_WORLD = 'contype="1" conaffinity="7"'  # collides with world, props, arm links and fingers (see rho.assets.mjcf)
_VISUAL = 'contype="0" conaffinity="0"'


def _f(v) -> str:
    return " ".join(f"{x:.10g}" for x in v)


def _rgba(rgb: tuple[float, ...], alpha: float = 1.0) -> str:
    return _f((*rgb[:3], alpha))


@dataclass(frozen=True)
class ProngSpec:
    """One prong (contact pin) of a plug, pointing along the plug frame's −x."""

    shape: Literal["blade", "pin"]  # blade: rectangular section; pin: round
    section: tuple[float, float]  # blade: (width along y, height along z); pin: (diameter, diameter) (m)
    offset: tuple[float, float]  # (y, z) of the prong axis in the plug / outlet frame (m)
    length: float  # how far it sticks out of the housing face (m)

    def hole(self, clearance: float) -> tuple[float, float, float, float]:
        """(y_centre, z_centre, half_width, half_height) of its hole in the outlet frame (m)."""
        w, h = self.section
        return self.offset[0], self.offset[1], (w + clearance) / 2, (h + clearance) / 2

    def to_mjcf(self, name: str, friction: float, rgb: tuple[float, float, float]) -> str:
        y, z = self.offset
        common = f'name="{name}" {_WORLD} condim="3" friction="{friction} 0.005 0.0001" rgba="{_rgba(rgb)}"'
        if self.shape == "pin":
            return (f'<geom {common} type="cylinder" fromto="{_f((-self.length, y, z, 0.0, y, z))}" '
                    f'size="{self.section[0] / 2:.6g}" mass="0"/>')
        hx, hy, hz = self.length / 2, self.section[0] / 2, self.section[1] / 2
        return f'<geom {common} type="box" pos="{_f((-hx, y, z))}" size="{_f((hx, hy, hz))}" mass="0"/>'


@dataclass(frozen=True)
class PlugSpec:
    """A plug type: its prongs (the housing is shared, see `PlugBodySpec`)."""

    kind: PlugType
    prongs: tuple[ProngSpec, ...]
    names: tuple[str, ...]  # paraphrases for language instructions, e.g. ("flat-prong plug", "US plug")

    @property
    def length(self) -> float:
        """Insertion depth when seated: the longest prong (m)."""
        return max(p.length for p in self.prongs)

    def prong_geoms(self, body: str = "plug") -> tuple[str, ...]:
        """Names of this type's prong geoms on a plug body called `body`."""
        return tuple(f"{body}/{self.kind}/{k}" for k in range(len(self.prongs)))


def default_plugs() -> dict[PlugType, PlugSpec]:
    """Nominal plug geometries (m), after the public standards' dimensions."""
    flat = PlugSpec("flat", tuple(ProngSpec("blade", (0.0016, 0.0064), (s * 0.00635, 0.0), 0.016) for s in (-1, 1)),
                    ("flat-prong plug", "two-blade plug", "US-style plug"))  # NEMA 1-15: 6.35 mm blades, 12.7 mm apart
    round_ = PlugSpec("round", tuple(ProngSpec("pin", (0.004, 0.004), (s * 0.0095, 0.0), 0.018) for s in (-1, 1)),
                      ("round-pin plug", "two-pin plug", "European plug"))  # Europlug: 4 mm pins, 19 mm apart
    rect = PlugSpec("rect", (ProngSpec("blade", (0.012, 0.0045), (0.0, 0.0), 0.012),),
                    ("USB connector", "rectangular connector", "USB plug"))  # USB-A shell: 12 × 4.5 mm
    return {"flat": flat, "round": round_, "rect": rect}


@dataclass(frozen=True)
class PlugBodySpec:
    """The free plug body: a housing the gripper holds, a cable stub, and the prongs of every plug type."""

    plugs: tuple[PlugSpec, ...]
    housing: tuple[float, float, float] = (0.060, 0.036, 0.052)  # housing size along x (depth), y, z (m): deep
    # enough that fingers holding it from above stay behind its front face
    axis_height: float = 0.040  # prong axis above the housing's bottom (m): high, so a top grasp at the axis
    # height keeps the fingertips off the table and the push has no lever about the pads
    mass: float = 0.06  # kg, housing and prongs together
    friction: float = 1.0  # housing friction (what the pads grip)
    prong_friction: float = 0.5  # prongs against the strip's face and hole walls
    rgb: tuple[float, float, float] = (0.12, 0.12, 0.13)  # housing colour (tasks randomize it)
    prong_rgb: tuple[float, float, float] = (0.8, 0.68, 0.35)  # brass

    @property
    def rest_height(self) -> float:
        """Height of the plug frame above the table when the housing stands on it (m)."""
        return self.axis_height

    @property
    def centre(self) -> tuple[float, float, float]:
        """Housing centre in the plug frame (m)."""
        return self.housing[0] / 2, 0.0, self.housing[2] / 2 - self.axis_height

    def to_mjcf(self, name: str = "plug", pos=(0.0, 0.0, 0.04), quat=(1.0, 0.0, 0.0, 0.0)) -> str:
        """The free body `name` at pos (m) / quat, its frame the plug frame (see the module docstring)."""
        hx, hy, hz = (s / 2 for s in self.housing)
        c = self.centre
        out = [f'<body name="{name}" pos="{_f(pos)}" quat="{_f(quat)}">', f'<freejoint name="{name}"/>',
               f'<inertial pos="{_f(c)}" mass="{self.mass}" '
               f'diaginertia="{_f(_box_inertia(self.mass, self.housing))}"/>',
               f'<geom name="{name}/housing" type="box" {_WORLD} condim="4" pos="{_f(c)}" '
               f'size="{_f((hx, hy, hz))}" friction="{self.friction} 0.01 0.001" rgba="{_rgba(self.rgb)}" '
               f'mass="0"/>',
               # cable stub leaving the back of the housing (looks, no physics)
               f'<geom name="{name}/cable" type="cylinder" {_VISUAL} '
               f'fromto="{_f((2 * hx, 0, c[2], 2 * hx + 0.03, 0, c[2]))}" '
               f'size="0.0035" rgba="{_rgba(self.rgb)}" mass="0"/>',
               f'<site name="{name}/face" size="0.002" rgba="1 0 1 0.5" group="4"/>']
        for plug in self.plugs:
            for geom, prong in zip(plug.prong_geoms(name), plug.prongs, strict=True):
                out.append(prong.to_mjcf(geom, self.prong_friction, self.prong_rgb))
        out.append("</body>")
        return "\n".join(out)


@dataclass(frozen=True)
class SocketStripSpec:
    """A socket block standing on the table with one outlet per plug type on its front (+x) face."""

    plugs: tuple[PlugSpec, ...]
    clearance: float = 0.001  # total play of each prong in its hole (m); each side gets half
    hole_depth: float = 0.024  # depth of every hole, deeper than the longest prong (m)
    width: float = 0.15  # along y (m)
    height: float = 0.090  # along z, from the table (m)
    depth: float = 0.040  # along x, front face to back face (m)
    outlet_height: float = 0.060  # outlet centres above the strip's bottom (m)
    outlet_spacing: float = 0.045  # between neighbouring outlet centres along y (m)
    handle: tuple[float, float, float] = (0.050, 0.045, 0.045)  # back handle size x, y, z (m); top flush
    hood: float = 0.0  # how far a hood over the outlets sticks out of the face (m); 0 = none. It hides the outlets
    # and the last centimetres of a plug's approach from cameras above
    hood_top: float = 0.080  # height of the hood's top above the strip's bottom (m): below a top grasp's palm
    hood_thickness: float = 0.003  # m
    shutter_depth: float = 0.004  # rest position of each hole's shutter behind the face (m)
    shutter_thickness: float = 0.002  # m
    shutter_force: tuple[float, float] = (2.0, 3.5)  # an outlet's shutters' push-back at rest and 14 mm in (N)
    foot: float = 0.004  # foot thickness (m): the only geom touching the table
    mass: float = 0.2  # kg
    friction: float = 1.0  # grip friction of the body and handle
    face_friction: float = 0.5  # the face plate and hole walls, against the prongs
    table_friction: float = 0.5  # foot against the table (wins by geom priority)
    rgb: tuple[float, float, float] = (0.92, 0.92, 0.9)

    def outlet_y(self) -> dict[PlugType, float]:
        """Outlet centre y in the strip frame (m), outlets centred on the face."""
        n = len(self.plugs)
        return {p.kind: (k - (n - 1) / 2) * self.outlet_spacing for k, p in enumerate(self.plugs)}

    def holes(self) -> list[tuple[float, float, float, float]]:
        """(y, z, half_width, half_height) of every hole in the strip frame (m)."""
        out = []
        for p in self.plugs:
            oy = self.outlet_y()[p.kind]
            for prong in p.prongs:
                y, z, hw, hh = prong.hole(self.clearance)
                out.append((oy + y, self.outlet_height + z, hw, hh))
        return out

    def shutter_spring(self, prongs: int) -> tuple[float, float]:
        """(stiffness N/m, preload m) of one shutter of an outlet with `prongs` holes, so the outlet's shutters
        together push back `shutter_force[0]` at rest and `shutter_force[1]` 14 mm in."""
        f0, f1 = self.shutter_force
        k = (f1 - f0) / (prongs * 0.014)
        return k, f0 / (prongs * k)

    def _shutters(self, name: str) -> list[str]:
        """One spring-loaded shutter (a child body on a slide joint) in each hole: a prong entering the hole pushes
        it back against its spring, which is the push an insertion needs. Parent-child contacts are filtered, so a
        shutter never touches its own hole's walls."""
        st, sd = self.shutter_thickness, self.shutter_depth
        travel = self.hole_depth - sd - st
        out, holes = [], iter(self.holes())
        for p in self.plugs:
            k, pre = self.shutter_spring(len(p.prongs))
            for _ in p.prongs:
                y, z, hw, hh = next(holes)
                j = f"{name}/shutter_{p.kind}{len(out)}"
                # armature and a stiff limit: a light body's soft limit would let the preload push it out
                out.append(f'<body name="{j}" pos="{_f((-sd - st / 2, y, z))}"><joint name="{j}" type="slide" '
                           f'axis="-1 0 0" range="0 {travel:.6g}" stiffness="{k:.6g}" springref="{-pre:.6g}" '
                           f'damping="0.5" armature="0.02" solreflimit="0.002 1"/>'
                           f'<geom name="{j}" type="box" {_WORLD} condim="3" '
                           f'friction="{self.face_friction} 0.005 0.0001" '
                           f'size="{_f((st / 2, hw - 2e-4, hh - 2e-4))}" rgba="0.08 0.08 0.08 1" mass="0.002"/></body>')
        return out

    def validate(self) -> list[str]:
        out = []
        if self.hole_depth >= self.depth:
            out.append(f"hole_depth ({self.hole_depth} m) must be < strip depth ({self.depth} m)")
        longest = max(p.length for p in self.plugs)
        if self.hole_depth <= longest + 0.001:
            out.append(f"hole_depth ({self.hole_depth} m) must exceed the longest prong ({longest} m) by > 1 mm")
        if self.hole_depth - self.shutter_depth - self.shutter_thickness < longest - self.shutter_depth:
            out.append("the shutters cannot travel as far as the longest prong goes in; deepen hole_depth")
        if not 0.0 <= self.clearance <= 0.004:
            out.append(f"clearance must be within 0..4 mm, got {self.clearance} m")
        for y, z, hw, hh in self.holes():
            if abs(y) + hw > self.width / 2 - 0.003 or z - hh < self.foot + 0.003 or z + hh > self.height - 0.003:
                out.append(f"a hole at (y={y:.4f}, z={z:.4f}) m does not fit on the "
                           f"{self.width}×{self.height} m face")
        return out

    def to_mjcf(self, name: str = "strip", pos=(0.0, 0.0, 0.0), quat=(1.0, 0.0, 0.0, 0.0)) -> str:
        """The free body `name` at pos (m) / quat; its frame's origin is the front face's bottom centre, +x out of
        the face. Sites `<name>/outlet_<type>` mark the outlet frames."""
        t, d, w, h = self.hole_depth, self.depth, self.width, self.height
        hl = self.handle
        grip = f'{_WORLD} condim="4" friction="{self.friction} 0.01 0.001" rgba="{_rgba(self.rgb)}" mass="0"'
        face = f'{_WORLD} condim="3" friction="{self.face_friction} 0.005 0.0001" rgba="{_rgba(self.rgb)}" mass="0"'
        cx = -d / 2  # centre of mass over the foot's middle (the handle is light), so it stands
        out = [f'<body name="{name}" pos="{_f(pos)}" quat="{_f(quat)}">', f'<freejoint name="{name}"/>',
               f'<inertial pos="{cx:.6g} 0 {h / 2:.6g}" mass="{self.mass}" '
               f'diaginertia="{_f(_box_inertia(self.mass, (d, w, h)))}"/>',
               f'<geom name="{name}/foot" type="box" {_WORLD} condim="3" priority="1" '
               f'friction="{self.table_friction} 0.005 0.0001" pos="{_f((-d / 2, 0, self.foot / 2))}" '
               f'size="{_f((d / 2, w / 2, self.foot / 2))}" rgba="0.2 0.2 0.2 1" mass="0"/>',
               f'<geom name="{name}/body" type="box" {grip} pos="{_f((-(d + t) / 2, 0, (h + self.foot) / 2))}" '
               f'size="{_f(((d - t) / 2, w / 2, (h - self.foot) / 2))}"/>',
               f'<geom name="{name}/handle" type="box" {grip} pos="{_f((-d - hl[0] / 2, 0, h - hl[2] / 2))}" '
               f'size="{_f((hl[0] / 2, hl[1] / 2, hl[2] / 2))}"/>']
        for k, (y0, y1, z0, z1) in enumerate(plate_boxes(w, self.foot, h, self.holes())):
            out.append(f'<geom name="{name}/face{k}" type="box" {face} '
                       f'pos="{_f((-t / 2, (y0 + y1) / 2, (z0 + z1) / 2))}" '
                       f'size="{_f((t / 2, (y1 - y0) / 2, (z1 - z0) / 2))}"/>')
        out += self._shutters(name)  # dark, so cameras see the holes
        if self.hood > 0:  # a weather hood over the outlets: blocks views from above
            ht = self.hood_thickness
            out.append(f'<geom name="{name}/hood" type="box" {grip} '
                       f'pos="{_f((self.hood / 2, 0, self.hood_top - ht / 2))}" '
                       f'size="{_f((self.hood / 2, w / 2, ht / 2))}"/>')
        for kind, oy in self.outlet_y().items():
            out.append(f'<site name="{name}/outlet_{kind}" pos="{_f((0.0, oy, self.outlet_height))}" size="0.002" '
                       f'rgba="0 1 1 0.5" group="4"/>')
        out.append("</body>")
        return "\n".join(out)


def _box_inertia(mass: float, size: tuple[float, float, float]) -> tuple[float, float, float]:
    x, y, z = size
    return mass * (y * y + z * z) / 12, mass * (x * x + z * z) / 12, mass * (x * x + y * y) / 12


def plate_boxes(width: float, z0: float, z1: float,
                holes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Tile a plate spanning y ∈ [−width/2, width/2], z ∈ [z0, z1] with boxes (y0, y1, za, zb), leaving the
    rectangular holes (y, z, half_width, half_height) open. Bands between hole edges along y; in each band, boxes
    fill the z gaps between the holes that cross it; neighbouring bands with the same gaps merge."""
    edges = sorted({-width / 2, width / 2, *(y - hw for y, _, hw, _ in holes), *(y + hw for y, _, hw, _ in holes)})
    bands: list[tuple[float, float, tuple[tuple[float, float], ...]]] = []
    for ya, yb in itertools.pairwise(edges):
        if yb - ya < 1e-9:
            continue
        mid = (ya + yb) / 2
        cuts = sorted((z - hh, z + hh) for y, z, hw, hh in holes if y - hw <= mid <= y + hw)
        gaps, lo = [], z0
        for za, zb in cuts:
            gaps.append((lo, za))
            lo = zb
        gaps.append((lo, z1))
        gaps_t = tuple(g for g in gaps if g[1] - g[0] > 1e-9)
        if bands and bands[-1][2] == gaps_t and abs(bands[-1][1] - ya) < 1e-12:
            bands[-1] = (bands[-1][0], yb, gaps_t)
        else:
            bands.append((ya, yb, gaps_t))
    return [(ya, yb, za, zb) for ya, yb, gaps in bands for za, zb in gaps]


@dataclass(frozen=True)
class PlugSocketSpec:
    """The whole insertion set: the strip and the plug body (bodies `strip` and `plug`)."""

    strip: SocketStripSpec
    plug: PlugBodySpec

    def to_mjcf(self) -> str:
        """Raw MJCF for `<worldbody>`; tasks place both bodies at reset."""
        return "\n".join([self.strip.to_mjcf("strip", pos=(0.0, 0.0, 0.0)),
                          self.plug.to_mjcf("plug", pos=(0.2, 0.0, self.plug.rest_height))])

    def validate(self) -> list[str]:
        return self.strip.validate()


def make_plug_socket(plugs: dict[PlugType, PlugSpec] | None = None, plug_kw: dict | None = None,
                     **strip_kw) -> PlugSocketSpec:
    """The set with every plug type (default: `default_plugs()`): one outlet per type on the strip, all prongs on
    the plug. `strip_kw` and `plug_kw` override `SocketStripSpec` and `PlugBodySpec` fields."""
    kinds = tuple((plugs or default_plugs()).values())
    return PlugSocketSpec(SocketStripSpec(kinds, **strip_kw), PlugBodySpec(kinds, **(plug_kw or {})))


__all__ = ["PLUG_TYPES", "PlugBodySpec", "PlugSocketSpec", "PlugSpec", "PlugType", "ProngSpec",
           "SocketStripSpec", "default_plugs", "make_plug_socket", "plate_boxes"]
