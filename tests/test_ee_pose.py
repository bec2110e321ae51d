"""Absolute TCP-pose actions (env action.mode=ee_pose, training data.actions=ee_pose): relabelling recorded joint
targets by forward kinematics and executing the labels through the iterated IK reproduces the demo."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rho.config import load_config
from rho.sim.ik import joint_ee_state, mat_error, mat_from_rot6, quat_to_mats, rot6_from_mat

CAMS48 = {c: {"width": 48, "height": 48} for c in ("cam_high", "cam_left_wrist", "cam_right_wrist")}


def _random_rot(rng, n):
    q = rng.normal(size=(n, 4))
    return quat_to_mats(q / np.linalg.norm(q, axis=1, keepdims=True))


def test_rot6_round_trip_and_rotation_error():
    rng = np.random.default_rng(0)
    r = _random_rot(rng, 20)
    np.testing.assert_allclose(mat_from_rot6(rot6_from_mat(r)), r, atol=1e-12)
    # a non-orthonormal 6-D input still maps to a rotation (Gram-Schmidt)
    m = mat_from_rot6(rot6_from_mat(r) + 0.1 * rng.normal(size=(20, 6)))
    np.testing.assert_allclose(m @ np.swapaxes(m, 1, 2), np.broadcast_to(np.eye(3), (20, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)
    # mat_error is the rotation vector from current to target: exp(err) @ current == target
    axis = rng.normal(size=(20, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = rng.uniform(0.01, 3.0, size=20)
    rotvec = axis * angle[:, None]
    k = np.zeros((20, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - np.swapaxes(k, 1, 2)
    rot = np.eye(3) + np.sin(angle)[:, None, None] * k + (1 - np.cos(angle))[:, None, None] * (k @ k)
    np.testing.assert_allclose(mat_error(rot @ r, r), rotvec, atol=1e-9)


def test_joint_ee_state_layout():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(5, 2, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    pose = np.concatenate([rng.normal(size=(5, 2, 3)), q], -1)
    s = joint_ee_state(np.zeros((5, 14)), pose)
    assert s.shape == (5, 14 + 18) and s.dtype == np.float32
    np.testing.assert_allclose(s[:, 14:17], pose[:, 0, :3], atol=1e-6)
    np.testing.assert_allclose(s[:, 17:23], rot6_from_mat(quat_to_mats(q[:, 0])), atol=1e-6)
    # q and -q are one rotation: the state does not jump when a quaternion flips sign
    flipped = pose.copy()
    flipped[..., 3:] *= -1
    np.testing.assert_allclose(joint_ee_state(np.zeros((5, 14)), flipped), s, atol=1e-6)


def _expert_episode(lift_cfg, seed):
    from rho.tasks.lift_block import LiftBlockEnv, LiftBlockExpert

    cfg = lift_cfg()
    cfg.action = dataclasses.replace(cfg.action, mode="ee_delta")
    env = LiftBlockEnv(cfg)
    expert = LiftBlockExpert(env)
    obs, _ = env.reset(options={"episode_seeds": [seed]})
    joints = []
    while True:
        obs, _, term, trunc, info = env.step(expert.act(obs))
        joints.append(info["joint_action"][0].copy())
        if term[0] or trunc[0]:
            return np.array(joints), bool(info["final_info"]["success"][0])


def test_ee_pose_labels_replay_the_demo(lift_cfg):
    """FK of the executed joint targets, executed in action.mode=ee_pose from the same seeded reset, gives the
    same servo targets (to the IK's tolerance) and the same outcome."""
    from rho.tasks.lift_block import LiftBlockEnv

    joints, ok = _expert_episode(lift_cfg, 1234)
    assert ok
    cfg = lift_cfg()
    cfg.action = dataclasses.replace(cfg.action, mode="ee_pose")
    env = LiftBlockEnv(cfg)
    assert env.single_action_space.shape == (20,)
    labels = env.tcp_pose_of(joints)
    assert labels.shape == (len(joints), 20) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels[:, 9], joints[:, 6])  # gripper unchanged
    env.reset(options={"episode_seeds": [1234]})
    errs = []
    for t in range(len(labels)):
        _, _, term, trunc, info = env.step(labels[t][None])
        errs.append(np.abs(info["joint_action"][0] - joints[t]).max())
        if term[0] or trunc[0]:
            break
    assert t == len(labels) - 1 and info["final_info"]["success"][0]
    assert max(errs) < 1e-5, max(errs)


def test_ee_pose_bad_actions(lift_cfg):
    from rho.tasks.lift_block import LiftBlockEnv

    cfg = lift_cfg()
    cfg.action = dataclasses.replace(cfg.action, mode="ee_pose")
    env = LiftBlockEnv(cfg)
    env.reset(seed=0)
    hold = env.tcp_pose_of(env.joint_action)
    bad = hold.copy()
    bad[0, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        env.step(bad)
    far = hold.copy()
    far[0, 0] = 5.0  # beyond ee_pose_reach: clipped and counted
    _, _, _, _, info = env.step(far)
    assert info["action_clipped"][0]
    strict = lift_cfg()
    strict.action = dataclasses.replace(strict.action, mode="ee_pose", out_of_range="error")
    env2 = LiftBlockEnv(strict)
    env2.reset(seed=0)
    with pytest.raises(ValueError, match="out of range"):
        env2.step(far)
    with pytest.raises(ValueError, match="joint_pos layout"):
        env.tcp_pose_of(np.zeros((3, 20)))


@pytest.fixture(scope="module")
def tiny_lift(tmp_path_factory):
    from rho.datagen.runner import datagen_schema, generate

    out = tmp_path_factory.mktemp("ee") / "lift"
    generate(load_config(datagen_schema("lift_block"), overrides=[
        "task=lift_block", "num_demos=2", f"out={out}", "num_envs=1", "seed=7",
        "env.cameras={cam_high: {width: 48, height: 48}, cam_left_wrist: {width: 48, height: 48}, "
        "cam_right_wrist: {width: 48, height: 48}}"]), progress=False)
    return out


def test_data_relabels_to_ee_pose(tiny_lift):
    from rho.datagen.hdf5 import Dataset
    from rho.datagen.relabel import replay_env
    from rho.policy.data import DataCfg, DataError, Layout, SourceCfg, build_sources

    cfg = DataCfg(sources=[SourceCfg(str(tiny_lift))], valid_fraction=0.0, actions="ee_pose", frame_cache="")
    with pytest.raises(DataError, match=r"policy\.action_dim=20 policy\.proprio_dim=32"):
        build_sources(cfg, Layout(image_size=32), 0)
    (src,) = build_sources(cfg, Layout(image_size=32, action_dim=20, proprio_dim=32), 0)
    assert src.embodiment == "aloha/ee_pose" and src.store.action_mode == "ee_pose"
    with Dataset(tiny_lift) as ds:
        env = replay_env(ds.env_args(), "ee_pose")
        for i in range(ds.num_demos):
            arr = ds.datasets(i)
            want = env.tcp_pose_of(arr["actions"][()])
            np.testing.assert_array_equal(src.store.arrays(i)["actions"], want)
            state = src.store.arrays(i)["obs/joint_ee"]
            np.testing.assert_allclose(state[:, 14:17], arr["obs/ee_pose"][()][:, 0, :3], atol=1e-6)
    sample = src.read(0, 3, None, None)
    assert sample["actions"].shape == (16, 20) and sample["proprio"].shape == (32,)


def test_ee_pose_policy_trains_and_drives_the_env_in_ee_pose(tiny_lift, tmp_path):
    """A checkpoint trained on ee_pose labels records that meaning, and `rho eval` drives the env with it."""
    from rho.eval.evaluation import Evaluation
    from rho.policy.config import PolicyCfg
    from rho.policy.data import DataCfg, SourceCfg
    from rho.policy.inference import Policy
    from rho.policy.train import OptimCfg, TrainCfg, train

    policy = load_config(PolicyCfg, overrides=[
        "backbone.image_size=32", "backbone.cnn_channels=[8,16]", "backbone.keypoints=4", "backbone.width=32",
        "backbone.depth=1", "backbone.heads=2", "expert.width=32", "expert.depth=1", "expert.heads=2",
        "expert.horizon=4", "expert.flow_steps=2", "action_dim=20", "proprio_dim=32"])
    cfg = TrainCfg(out=str(tmp_path / "policy"), policy=policy, steps=4, batch_size=4, num_workers=0, cpu_threads=1,
                   save_every=4, progress=False, tensorboard=False, seed=0, optim=OptimCfg(warmup_steps=1),
                   data=DataCfg(sources=[SourceCfg(str(tiny_lift))], valid_fraction=0.0, actions="ee_pose"))
    train(cfg)
    loaded = Policy.load(str(tmp_path / "policy"))
    assert loaded.action_mode == "ee_pose"
    report = Evaluation("smoke", out=tmp_path / "eval", tasks=["lift_block"], episodes=1, num_envs=1, videos=0,
                        env={"cameras": CAMS48, "episode_length_s": 0.4}).run(str(tmp_path / "policy"))
    cell = report["per_cell"][0]
    assert cell["episodes"] == 1 and cell["outcomes"] in ("0", "1")


def test_diagnose_compares_both_action_spaces_in_tcp_positions(tiny_lift):
    """`diagnose` turns joint targets (by forward kinematics) and ee_pose actions into the same TCP positions."""
    from rho.policy.data import DataCfg, Layout, SourceCfg, build_sources
    from rho.policy.diagnose import _tcp_positions

    (joint,) = build_sources(DataCfg(sources=[SourceCfg(str(tiny_lift))], valid_fraction=0.0, frame_cache=""),
                             Layout(image_size=32), 0)
    (ee,) = build_sources(DataCfg(sources=[SourceCfg(str(tiny_lift))], valid_fraction=0.0, frame_cache="",
                                  actions="ee_pose"), Layout(image_size=32, action_dim=20, proprio_dim=32), 0)
    a_joint = np.asarray(joint.store.arrays(0)["actions"][()])[None]
    a_ee = np.asarray(ee.store.arrays(0)["actions"])[None]
    p_joint, p_ee = _tcp_positions(joint)(a_joint), _tcp_positions(ee)(a_ee)
    assert p_joint.shape == p_ee.shape == (1, len(a_joint[0]), 2, 3)
    np.testing.assert_allclose(p_joint, p_ee, atol=1e-6)
    assert np.ptp(p_joint[0, :, :, 2]) > 0.05  # the lift moves a TCP: the positions are not a constant
