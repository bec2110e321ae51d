"""ALOHA-class bimanual robot: two 6-DoF ViperX-300-class arms with parallel-jaw grippers.

Kinematics follow the public ViperX 300 6DOF specification (Trossen Robotics / Interbotix `vx300s`): link offsets,
joint axes and joint limits as in its URDF; reach ≈ 0.75 m. The two arms stand 0.938 m apart at the ends of the
table, facing each other, as on ALOHA. Joint order per arm (the order of ALOHA's 14-D action and state vectors):

    waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate, (gripper)

Sign conventions: at zero the upper arm is vertical and the forearm points forward along the arm's +x; positive
shoulder and elbow pitch the arm forward/down; waist is positive counter-clockwise seen from above.
"""

from __future__ import annotations

import math

from .base import ArmSpec, BimanualRobotSpec, GripperSpec, JointSpec, MountSpec, register_robot

_Y = (0.0, 1.0, 0.0)
_X = (1.0, 0.0, 0.0)
_Z = (0.0, 0.0, 1.0)


def vx300s_arm() -> ArmSpec:
    """ViperX 300 6DOF: offsets (m) and limits (rad) from the public vx300s description.

    Servo gains give ~15–25 ms position time constants, about one 50 Hz control period, near critical damping
    for each link's inertia (stiff, well-damped Dynamixel-like joints; gravity is compensated separately)."""
    joints = (
        JointSpec("waist", (0.0, 0.0, 0.127), _Z, (-math.pi, math.pi), kp=300, kv=12, force_limit=30,
                  link_mass=0.8, link_radius=0.035),
        JointSpec("shoulder", (0.0, 0.0, 0.0), _Y, (-1.850, 1.257), kp=500, kv=20, force_limit=40,
                  link_mass=0.8, link_radius=0.03),
        JointSpec("elbow", (0.060, 0.0, 0.300), _Y, (-1.763, 1.606), kp=400, kv=12, force_limit=30,
                  link_mass=0.45, link_radius=0.028),
        JointSpec("forearm_roll", (0.200, 0.0, 0.0), _X, (-math.pi, math.pi), kp=100, kv=2, force_limit=10,
                  link_mass=0.25, link_radius=0.025),
        JointSpec("wrist_angle", (0.100, 0.0, 0.0), _Y, (-1.868, 2.234), kp=100, kv=2, force_limit=10,
                  link_mass=0.1, link_radius=0.022),
        JointSpec("wrist_rotate", (0.070, 0.0, 0.0), _X, (-math.pi, math.pi), kp=50, kv=1, force_limit=6,
                  link_mass=0.3, link_radius=0.02),
    )
    return ArmSpec(joints=joints)


@register_robot("aloha")
def aloha() -> BimanualRobotSpec:
    """The default embodiment: ALOHA-class, 14-D joint-position action."""
    return BimanualRobotSpec(
        name="aloha",
        arm=vx300s_arm(),
        gripper=GripperSpec(),
        mounts={
            "left": MountSpec(pos=(-0.469, 0.0, 0.0), yaw=0.0),
            "right": MountSpec(pos=(0.469, 0.0, 0.0), yaw=math.pi),
        },
        # gripper ~0.22 m in front of the base, ~0.18 m above the table, fingers pointing down-forward
        home=(0.0, -0.55, 0.75, 0.0, 1.15, 0.0),
    )
