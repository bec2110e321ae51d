"""Backend-neutral robot descriptions and the robot registry.

A robot is described by plain data (link offsets, joint axes and limits, actuator gains, gripper and finger-pad
geometry) so that one description can be emitted as MJCF for the MuJoCo backend (`rho.assets.mjcf`) and later as
USD / MJCF for the Isaac Lab backend. Units: metres, radians, kilograms, newtons, N·m; positions are in the parent
link's frame; quaternions are (w, x, y, z).

Adding an embodiment is one file that builds a `BimanualRobotSpec` and decorates the builder with
`@register_robot("name")` (see `aloha.py`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]  # (w, x, y, z)


@dataclass(frozen=True)
class JointSpec:
    """One revolute joint of an arm and the link it moves."""

    name: str  # joint name without the arm prefix, e.g. "waist"
    pos: Vec3  # origin of the child link in the parent link frame (m)
    axis: Vec3  # rotation axis in the child link frame
    range: tuple[float, float]  # joint limits (rad)
    kp: float  # position-servo stiffness (N·m/rad)
    kv: float  # servo damping (N·m·s/rad)
    force_limit: float  # actuator torque limit (N·m)
    damping: float = 0.5  # passive joint damping (N·m·s/rad)
    armature: float = 0.01  # reflected rotor inertia (kg·m²)
    link_mass: float = 0.3  # mass of the link this joint moves (kg)
    link_radius: float = 0.025  # collision/visual capsule radius of the link (m)


@dataclass(frozen=True)
class FingerPadSpec:
    """The tactile pad on the inner face of each finger.

    Pad frame: origin at the centre of the contact face; +z is the inward normal (towards the other finger);
    +x runs along the finger towards its tip (distal); +y = z × x. Taxel rows index x, columns index y.
    """

    length: float = 0.030  # extent along the finger, x (m)
    width: float = 0.020  # extent across the finger, y (m)
    thickness: float = 0.003  # pad thickness along z (m)
    offset: float = 0.030  # pad centre distance from the finger root along the finger (m)
    friction: float = 1.0  # sliding friction coefficient of the pad
    solref: tuple[float, float] = (0.004, 1.0)  # MuJoCo contact stiffness time constant (s) and damping ratio


@dataclass(frozen=True)
class GripperSpec:
    """A parallel-jaw gripper with two mirrored prismatic fingers, coupled so they move symmetrically."""

    base_offset: float = 0.045  # gripper base origin along the last link's x (m)
    finger_offset: float = 0.015  # finger roots along the gripper x (m)
    finger_length: float = 0.065  # finger extent along x (m)
    finger_width: float = 0.022  # finger extent along z (m)
    finger_thickness: float = 0.008  # finger body thickness along y (m)
    stroke: float = 0.040  # travel of each finger from closed (0) to fully open (m)
    kp: float = 800.0  # finger position-servo stiffness (N/m)
    kv: float = 20.0  # finger servo damping (N·s/m)
    force_limit: float = 30.0  # limit of the one finger actuator (N); squeezing, each pad carries half
    finger_mass: float = 0.05  # kg
    pad: FingerPadSpec = field(default_factory=FingerPadSpec)


@dataclass(frozen=True)
class ArmSpec:
    """A serial arm: joints in order from the base; link i is the body joint i moves."""

    joints: tuple[JointSpec, ...]
    base_height: float = 0.0  # height of the first joint origin above the mount (m), included in joints[0].pos
    flange_offset: float = 0.0  # extra x offset of the gripper from the last link (m)

    @property
    def dof(self) -> int:
        return len(self.joints)


@dataclass(frozen=True)
class MountSpec:
    """Where an arm stands on the table: position of its base (m) and yaw about +z (rad)."""

    pos: Vec3
    yaw: float


@dataclass(frozen=True)
class BimanualRobotSpec:
    """Two identical arms with grippers, facing each other across a table."""

    name: str
    arm: ArmSpec
    gripper: GripperSpec
    mounts: dict[str, MountSpec]  # arm prefix ("left", "right") -> mount
    home: tuple[float, ...]  # home joint positions of one arm (rad), length arm.dof
    wrist_camera_pos: Vec3 = (0.0, 0.0, 0.05)  # wrist camera in the gripper-base frame (m)
    wrist_camera_fovy: float = 75.0  # degrees

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self.mounts)

    @property
    def action_dim(self) -> int:
        """Joint-position action size: per arm, arm.dof joints + 1 gripper."""
        return len(self.mounts) * (self.arm.dof + 1)

    def joint_names(self, arm: str) -> tuple[str, ...]:
        return tuple(f"{arm}/{j.name}" for j in self.arm.joints)


RobotBuilder = Callable[[], BimanualRobotSpec]
ROBOTS: dict[str, RobotBuilder] = {}


def register_robot(name: str) -> Callable[[RobotBuilder], RobotBuilder]:
    """Decorator: add a robot builder to the registry under `name`."""

    def deco(fn: RobotBuilder) -> RobotBuilder:
        if name in ROBOTS:
            raise ValueError(f"robot {name!r} is already registered (by {ROBOTS[name].__module__})")
        ROBOTS[name] = fn
        return fn

    return deco


def get_robot(name: str) -> BimanualRobotSpec:
    """Look up a registered robot; a miss lists the names and suggests the nearest."""
    if name not in ROBOTS:
        near = difflib.get_close_matches(name, ROBOTS, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise KeyError(f"unknown robot {name!r}; registered robots: {sorted(ROBOTS)}.{hint}")
    return ROBOTS[name]()
