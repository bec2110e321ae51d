"""The ALOHA-class robot description, its registry, and a second embodiment added as one function."""

from __future__ import annotations

import dataclasses
import math

import mujoco
import numpy as np
import pytest

from rho.assets.mjcf import SceneSpec, build_mjcf, pad_names
from rho.assets.robots import ROBOTS, get_robot, register_robot
from rho.assets.robots.aloha import vx300s_arm
from rho.assets.robots.base import ArmSpec, JointSpec
from rho.tasks import make_env


def _model(robot) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(build_mjcf(SceneSpec(robot=robot)))


def test_aloha_layout_and_limits():
    r = get_robot("aloha")
    assert r.arms == ("left", "right")
    assert r.arm.dof == 6
    assert r.action_dim == 14
    assert [j.name for j in r.arm.joints] == ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle",
                                              "wrist_rotate"]
    m = _model(r)
    for arm in r.arms:
        for spec in r.arm.joints:
            j = m.joint(f"{arm}/{spec.name}")
            np.testing.assert_allclose(j.range, spec.range)
    assert m.nu == 14  # 6 servos + 1 gripper per arm
    assert pad_names(r) == ("left_a", "left_b", "right_a", "right_b")
    assert {m.camera(i).name for i in range(m.ncam)} >= {"cam_high", "cam_left_wrist", "cam_right_wrist"}


def test_reach_matches_vx300s_spec():
    """Arm stretched out straight: shoulder-to-TCP distance ≈ the ViperX 300's 0.75 m reach."""
    r = get_robot("aloha")
    m = _model(r)
    d = mujoco.MjData(m)
    d.qpos[m.joint("left/elbow").qposadr] = -math.atan2(0.3, 0.06)  # forearm in line with the upper arm
    mujoco.mj_kinematics(m, d)
    shoulder = d.xpos[m.body("left/shoulder_link").id]
    reach = np.linalg.norm(d.site("left/tcp").xpos - shoulder)
    assert reach == pytest.approx(0.75, abs=0.03)


def test_unknown_robot_suggests():
    with pytest.raises(KeyError, match="Did you mean 'aloha'"):
        get_robot("alhoa")


def test_second_embodiment_is_one_function():
    """Two 7-DoF arms: register a builder, and the env, action space and observations follow."""
    base = get_robot("aloha")
    j = vx300s_arm().joints
    extra = JointSpec("upper_roll", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), (-2.0, 2.0), kp=200, kv=6, force_limit=20)
    # an upper-arm roll joint half-way up the upper arm, before the elbow
    arm7 = ArmSpec(joints=(j[0], j[1], dataclasses.replace(extra, pos=(0.03, 0.0, 0.15)),
                           dataclasses.replace(j[2], pos=(0.03, 0.0, 0.15)), *j[3:]))

    @register_robot("test_bimanual_7dof")
    def _seven():
        return dataclasses.replace(base, name="test_bimanual_7dof", arm=arm7, home=(0, -0.55, 0, 0.75, 0, 1.15, 0))

    try:
        from rho.tasks.lift_block import LiftBlockCfg

        cfg = LiftBlockCfg(robot="test_bimanual_7dof")
        cfg.cameras = {}
        env = make_env("lift_block", cfg)
        obs, _ = env.reset(seed=0)
        assert env.single_action_space.shape == (16,)
        assert obs["joint_pos"].shape == (1, 16)
        obs, *_ = env.step(np.tile(np.r_[env.home, 1.0], 2)[None])
        assert env.obs_spec.check(obs, batch=1) == []
    finally:
        ROBOTS.pop("test_bimanual_7dof")
