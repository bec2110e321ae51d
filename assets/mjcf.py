"""Emit MJCF (MuJoCo XML) for the table-top arena, a `BimanualRobotSpec` and simple props.

The scene is built procedurally from the backend-neutral descriptions in `rho.assets.robots`; nothing is downloaded.
Conventions: world +z up, table top at z = 0, metres / radians / kg; MJCF quaternions are (w, x, y, z).

Collision groups (contype / conaffinity bits), so robot links never collide with each other or with the table
they stand on, while fingers touch both table and props:

    bit 1: world (table, props)   bit 2: arm links   bit 4: fingers and pads
    table: contype 1, conaffinity 1|4    props: contype 1, conaffinity 1|2|4
    arm links: contype 2, conaffinity 0  fingers/pads: contype 4, conaffinity 0

Each finger pad carries a site (the pad frame, +z inward) and two MuJoCo `<contact>` sensors: one with
`num` contact slots (force, position, normal, tangent per contact, strongest first) that the taxel model in
`rho.sim.touch` spreads onto the grid, and one net-force sensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal
from xml.sax.saxutils import quoteattr

from .robots.base import BimanualRobotSpec

CONTACT_DATA = "force pos normal tangent"  # order of the per-slot contact-sensor data
CONTACT_SLOT_SIZE = 12  # 3 force (contact frame) + 3 pos + 3 normal + 3 tangent
FINGERS = ("a", "b")  # "a" is the finger on the gripper frame's +y side


def pad_names(robot: BimanualRobotSpec) -> tuple[str, ...]:
    """Pad keys in a fixed order: left_a, left_b, right_a, right_b (for ALOHA)."""
    return tuple(f"{arm}_{f}" for arm in robot.arms for f in FINGERS)


@dataclass(frozen=True)
class PropSpec:
    """A rigid prop; free-floating unless `fixed`."""

    name: str
    shape: Literal["box", "cylinder", "sphere"] = "box"
    size: tuple[float, ...] = (0.02, 0.02, 0.02)  # MuJoCo half-sizes (m)
    pos: tuple[float, float, float] = (0.0, 0.0, 0.02)  # m
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)  # (w, x, y, z)
    mass: float = 0.1  # kg
    rgba: tuple[float, float, float, float] = (0.85, 0.35, 0.2, 1.0)
    friction: float = 1.0
    fixed: bool = False


@dataclass(frozen=True)
class SceneSpec:
    """Everything `build_mjcf` needs: robot, props, physics timestep and sensor layout."""

    robot: BimanualRobotSpec
    props: tuple[PropSpec, ...] = ()
    timestep: float = 0.001  # physics step (s)
    contact_slots: int = 8  # contacts reported per pad (strongest first)
    touch: bool = True  # emit the pads' contact-slot sensors (the taxel model's input)
    cone: Literal["pyramidal", "elliptic"] = "elliptic"
    impratio: float = 10.0  # friction-to-normal impedance ratio (higher: less slip in grasps)
    extra_worldbody: str = ""  # raw MJCF appended to <worldbody> (task-specific assets)
    dr_bodies: tuple[str, ...] = ()  # bodies of extra_worldbody whose geoms get friction/mass/colour randomization
    extra_sections: dict[str, str] = field(default_factory=dict)  # e.g. {"equality": "...", "asset": "..."}


def _f(v) -> str:
    return " ".join(f"{x:.10g}" for x in v)


def _yaw_quat(yaw: float) -> tuple[float, float, float, float]:
    return (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))


def _arm_xml(robot: BimanualRobotSpec, arm: str) -> str:
    """Nested bodies of one arm, its gripper, pads and wrist camera."""
    mount = robot.mounts[arm]
    joints = robot.arm.joints
    out = [f'<body name="{arm}/base" pos="{_f(mount.pos)}" quat="{_f(_yaw_quat(mount.yaw))}" gravcomp="1">',
           '<geom class="robot_vis" type="cylinder" size="0.05 0.02" pos="0 0 0.02" rgba="0.15 0.15 0.15 1"/>']
    for i, j in enumerate(joints):
        nxt = joints[i + 1].pos if i + 1 < len(joints) else (robot.gripper.base_offset, 0.0, 0.0)
        out.append(f'<body name="{arm}/{j.name}_link" pos="{_f(j.pos)}" gravcomp="1">')
        out.append(f'<joint name="{arm}/{j.name}" axis="{_f(j.axis)}" range="{_f(j.range)}" '
                   f'damping="{j.damping}" armature="{j.armature}"/>')
        length = math.dist((0, 0, 0), nxt)
        if length > 1e-6:
            out.append(f'<geom class="arm" type="capsule" fromto="0 0 0 {_f(nxt)}" size="{j.link_radius}" '
                       f'mass="{j.link_mass}"/>')
        else:
            out.append(f'<geom class="arm" type="sphere" size="{j.link_radius}" mass="{j.link_mass}"/>')
    out.append(_gripper_xml(robot, arm))
    out.append("</body>" * (len(joints) + 1))
    return "\n".join(out)


def _gripper_xml(robot: BimanualRobotSpec, arm: str) -> str:
    g, pad = robot.gripper, robot.gripper.pad
    fovy = robot.wrist_camera_fovy
    s, c = math.sin(math.radians(30)), math.cos(math.radians(30))
    out = [f'<body name="{arm}/gripper" pos="{g.base_offset} 0 0" gravcomp="1">',
           '<geom class="arm" type="box" size="0.02 0.035 0.02" mass="0.3"/>',
           # tool-centre point: midway between the pad centres
           f'<site name="{arm}/tcp" pos="{g.finger_offset + pad.offset:.6g} 0 0" size="0.004" rgba="1 0 0 0.5" '
           f'group="4"/>',
           # looks along the fingers, tilted 30° down; camera -z is the view direction
           f'<camera name="cam_{arm}_wrist" pos="{_f(robot.wrist_camera_pos)}" '
           f'xyaxes="0 -1 0 {s:.6g} 0 {c:.6g}" fovy="{fovy}"/>']
    for f in FINGERS:
        # finger b is finger a turned 180° about x, so both open along their own +y
        quat = "1 0 0 0" if f == "a" else "0 1 0 0"
        out += [
            f'<body name="{arm}/finger_{f}" pos="{g.finger_offset} 0 0" quat="{quat}" gravcomp="1">',
            f'<joint name="{arm}/finger_{f}" type="slide" axis="0 1 0" range="0 {g.stroke}" damping="2" '
            f'armature="0.01"/>',
            f'<geom class="finger" type="box" pos="{g.finger_length / 2:.6g} '
            f'{pad.thickness + g.finger_thickness / 2:.6g} 0" '
            f'size="{g.finger_length / 2:.6g} {g.finger_thickness / 2:.6g} {g.finger_width / 2:.6g}" '
            f'mass="{g.finger_mass}"/>',
            f'<geom name="{arm}/pad_{f}" class="pad" type="box" pos="{pad.offset:.6g} {pad.thickness / 2:.6g} 0" '
            f'size="{pad.length / 2:.6g} {pad.thickness / 2:.6g} {pad.width / 2:.6g}" '
            f'friction="{pad.friction} 0.01 0.001" solref="{_f(pad.solref)}"/>',
            # pad frame: x distal, z inward (finger -y), y = z × x
            f'<site name="{arm}/pad_{f}" pos="{pad.offset:.6g} 0 0" quat="0.70710678 0.70710678 0 0" '
            f'size="0.002" group="4"/>',
            "</body>",
        ]
    out.append("</body>")
    return "\n".join(out)


def _prop_xml(p: PropSpec) -> str:
    joint = "" if p.fixed else f'<freejoint name="{p.name}"/>'
    return (f'<body name="{p.name}" pos="{_f(p.pos)}" quat="{_f(p.quat)}">{joint}'
            f'<geom name="{p.name}" class="prop" type="{p.shape}" size="{_f(p.size)}" mass="{p.mass}" '
            f'rgba="{_f(p.rgba)}" friction="{p.friction} 0.01 0.001"/></body>')


def _actuators_xml(robot: BimanualRobotSpec) -> str:
    out = []
    g = robot.gripper
    for arm in robot.arms:
        for j in robot.arm.joints:
            out.append(f'<position name="{arm}/{j.name}" joint="{arm}/{j.name}" kp="{j.kp}" kv="{j.kv}" '
                       f'ctrlrange="{_f(j.range)}" forcerange="{-j.force_limit} {j.force_limit}"/>')
        out.append(f'<position name="{arm}/gripper" joint="{arm}/finger_a" kp="{g.kp}" kv="{g.kv}" '
                   f'ctrlrange="0 {g.stroke}" forcerange="{-g.force_limit} {g.force_limit}"/>')
    return "\n".join(out)


def _sensors_xml(robot: BimanualRobotSpec, slots: int, touch: bool) -> str:
    """Per pad: the slot sensor for the taxel model (only with touch; all pads first, so their data is one
    contiguous block) and the net-force sensor (always: tasks use it as privileged grasp state)."""
    pads = [f"{arm}/pad_{f}" for arm in robot.arms for f in FINGERS]
    out = [f'<contact name="{p}/contacts" geom1="{p}" num="{slots}" data="{CONTACT_DATA}" reduce="maxforce"/>'
           for p in pads] if touch else []
    out += [f'<contact name="{p}/net" geom1="{p}" num="1" data="force" reduce="netforce"/>' for p in pads]
    return "\n".join(out)


def build_mjcf(scene: SceneSpec) -> str:
    """The complete MJCF document for a scene."""
    robot = scene.robot
    extra = dict(scene.extra_sections)
    equality = "\n".join(f'<joint joint1="{a}/finger_b" joint2="{a}/finger_a" polycoef="0 1 0 0 0" '
                         f'solref="0.005 1"/>' for a in robot.arms)
    return f"""<mujoco model={quoteattr("rho_" + robot.name)}>
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{scene.timestep}" integrator="implicitfast" cone="{scene.cone}" impratio="{scene.impratio}"/>
  <visual>
    <global offwidth="640" offheight="480"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
  </visual>
  <default>
    <geom solref="0.005 1" solimp="0.95 0.99 0.001"/>
    <default class="arm"><geom contype="2" conaffinity="0" rgba="0.2 0.2 0.22 1" group="1"/></default>
    <default class="finger"><geom contype="4" conaffinity="0" rgba="0.3 0.3 0.32 1" group="1"/></default>
    <default class="pad"><geom contype="4" conaffinity="0" condim="4" rgba="0.1 0.45 0.8 1" group="1"
      mass="0.005"/></default>
    <default class="prop"><geom contype="1" conaffinity="7" condim="4" group="1"/></default>
    <default class="robot_vis"><geom contype="0" conaffinity="0" group="1"/></default>
  </default>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.55 0.5 0.45" rgb2="0.5 0.45 0.4" width="64"
      height="64"/>
    <material name="table" texture="grid" texrepeat="6 4" reflectance="0"/>
    {extra.pop("asset", "")}
  </asset>
  <worldbody>
    <light name="top" pos="0 0 1.5" dir="0 0 -1" directional="true" castshadow="false" diffuse="0.6 0.6 0.6"/>
    <geom name="table" type="box" pos="0 0 -0.02" size="0.6 0.4 0.02" material="table" contype="1"
      conaffinity="5"/>
    <camera name="cam_high" pos="0 -0.35 0.75" xyaxes="1 0 0 0 0.906 0.423" fovy="60"/>
    <camera name="cam_low" pos="0 -0.45 0.12" xyaxes="1 0 0 0 0.3 0.954" fovy="60"/>
    {_arm_xml(robot, robot.arms[0])}
    {_arm_xml(robot, robot.arms[1])}
    {"".join(_prop_xml(p) for p in scene.props)}
    {scene.extra_worldbody}
  </worldbody>
  <equality>
    {equality}
    {extra.pop("equality", "")}
  </equality>
  <actuator>
    {_actuators_xml(robot)}
    {extra.pop("actuator", "")}
  </actuator>
  <sensor>
    {_sensors_xml(robot, scene.contact_slots, scene.touch)}
    {extra.pop("sensor", "")}
  </sensor>
  {"".join(f"<{k}>{v}</{k}>" for k, v in extra.items())}
</mujoco>
"""
