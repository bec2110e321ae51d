"""The batched environment: lifecycle, seeding, resets, actions, bad input, divergence, randomization."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import home_action

from rho.config import ConfigError
from rho.tasks import make_env


def _rollout(env, steps: int, seed: int = 0, action_fn=None):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for t in range(steps):
        a = action_fn(env, t) if action_fn else home_action(env)
        obs, *_ = env.step(a)
        out.append(obs)
    return out


def _squeeze(env, t):
    """Home pose, gripper closing after 10 steps (touch sees the fingers meet nothing, then noise only)."""
    a = home_action(env)
    a[:, 6] = a[:, 13] = 0.0 if t > 10 else 1.0
    return a


def test_observations_match_spec(lift_cfg):
    env = make_env("lift_block", lift_cfg(num_envs=3))
    obs, info = env.reset(seed=0)
    assert env.obs_spec.check(obs, batch=3) == []
    assert env.single_observation_space.contains({k: v[0] for k, v in obs.items()})
    for _ in range(5):
        obs, rew, _term, _trunc, info = env.step(home_action(env))
        assert env.obs_spec.check(obs, batch=3) == []
        assert rew.shape == (3,)
        assert np.isfinite(rew).all()
        assert set(info["reward_terms"]) == {"reach", "grasp", "lift"}
    assert env.single_action_space.shape == (14,)


def test_seeded_rollouts_are_bit_identical(lift_cfg):
    a = _rollout(make_env("lift_block", lift_cfg(num_envs=2)), 15, seed=7, action_fn=_squeeze)
    b = _rollout(make_env("lift_block", lift_cfg(num_envs=2)), 15, seed=7, action_fn=_squeeze)
    c = _rollout(make_env("lift_block", lift_cfg(num_envs=2)), 15, seed=8, action_fn=_squeeze)
    for oa, ob in zip(a, b, strict=True):
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)
    assert not np.array_equal(a[-1]["block_pose"], c[-1]["block_pose"])


def test_episode_replays_from_its_seed_in_any_slot(lift_cfg):
    """An episode drawn in slot 1 of a batch replays bit-identically alone, from its episode_seed."""
    env = make_env("lift_block", lift_cfg(num_envs=2))
    obs, info = env.reset(seed=3)
    seed1 = int(info["episode_seed"][1])
    ref = [obs]
    for t in range(8):
        ref.append(env.step(_squeeze(env, t))[0])
    solo = make_env("lift_block", lift_cfg(num_envs=1))
    obs, info = solo.reset(options={"episode_seeds": [seed1]})
    assert int(info["episode_seed"][0]) == seed1
    got = [obs]
    for t in range(8):
        got.append(solo.step(_squeeze(solo, t))[0])
    for r, g in zip(ref, got, strict=True):
        for k in r:
            np.testing.assert_array_equal(r[k][1], g[k][0], err_msg=k)


def test_reset_subset_leaves_others(lift_cfg):
    env = make_env("lift_block", lift_cfg(num_envs=3))
    env.reset(seed=0)
    for _ in range(5):
        env.step(home_action(env))
    before = env.get_state().copy()
    env.reset_idx(np.array([1]))
    after = env.get_state()
    np.testing.assert_array_equal(before[[0, 2]], after[[0, 2]])
    assert not np.array_equal(before[1], after[1])
    assert env.episode_step.tolist() == [5, 0, 5]


def test_randomization_values_returned_and_applied(lift_cfg):
    env = make_env("lift_block", lift_cfg(num_envs=2))
    _, info = env.reset(seed=0)
    p0, p1 = info["randomization"]
    for key in ("friction_scale", "mass_scale", "actuator_gain_scale", "light_intensity", "touch_gain",
                "sensor_noise_scale", "sensor_extra_latency_s", "block_xy", "instruction", "episode_seed"):
        assert key in p0
    for i, p in enumerate((p0, p1)):  # sensor latency drawn per episode, in whole touch samples
        extra = round(p["sensor_extra_latency_s"] * env.touch_hz)
        assert env.touch_ch.episode_latency_samples[i] == env.touch_ch.latency_samples + extra
    assert p0["friction_scale"] != p1["friction_scale"]
    pad = env.pad_geoms[0]
    for i, p in enumerate((p0, p1)):
        assert env._models[i].geom_friction[pad, 0] == pytest.approx(env._nominal.geom_friction[pad, 0]
                                                                       * p["friction_scale"])
        assert env._models[i].light_diffuse[0, 0] == pytest.approx(p["light_intensity"])
    nominal = make_env("lift_block", lift_cfg(randomize=False))
    _, info = nominal.reset(seed=0)
    assert "friction_scale" not in info["randomization"][0]


def test_nan_action_raises_and_applies_nothing(lift_cfg):
    env = make_env("lift_block", lift_cfg(num_envs=2))
    env.reset(seed=0)
    ctrl = env.ctrl.copy()
    a = home_action(env)
    a[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf at env\(s\) \[1\], dim\(s\) \[3\]"):
        env.step(a)
    np.testing.assert_array_equal(env.ctrl, ctrl)
    with pytest.raises(ValueError, match=r"shape \(2, 14\)"):
        env.step(np.zeros((2, 12)))


def test_out_of_range_clipped_or_rejected(lift_cfg):
    env = make_env("lift_block", lift_cfg(num_envs=2))
    env.reset(seed=0)
    a = home_action(env)
    a[0, 1] = 10.0  # shoulder far beyond its limit
    a[1, 6] = 1.5  # gripper beyond fully open
    _, _, _, _, info = env.step(a)
    assert info["action_clipped"].tolist() == [True, True]
    assert env.ctrl[0, env.arm_act[0, 1]] == pytest.approx(env.joint_high[0, 1])
    assert env.ctrl[1, env.grip_act[0]] == pytest.approx(env.robot.gripper.stroke)
    strict = lift_cfg(num_envs=2)
    strict.action.out_of_range = "error"
    env = make_env("lift_block", strict)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="out of range at env"):
        env.step(a)


def test_diverged_env_is_marked_failed_and_reset(lift_cfg):
    env = make_env("lift_block", lift_cfg(num_envs=3))
    env.reset(seed=0)
    for _ in range(3):
        env.step(home_action(env))
    env.qvel[1, :] = 1e4  # a blow-up in env 1 only
    before = env.get_state().copy()
    _obs, rew, term, _trunc, info = env.step(home_action(env))
    assert info["sim_failed"].tolist() == [False, True, False]
    assert term.tolist() == [False, True, False]
    assert env.episode_step.tolist() == [4, 0, 4]  # env 1 was reset, the others went on
    assert info["final_info"]["sim_failed"][1]
    assert np.isfinite(env.get_state()).all()
    assert np.isfinite(rew).all()
    assert not np.array_equal(before[[0, 2]], env.get_state()[[0, 2]])  # the others stepped
    env.qpos[2, 0] = np.nan
    _, _, term, _, info = env.step(home_action(env))
    assert info["sim_failed"].tolist() == [False, False, True]


def test_joint_position_tracking(lift_cfg):
    env = make_env("lift_block", lift_cfg(randomize=False))
    env.reset(seed=0)
    a = home_action(env)
    a[0, :6] += [0.3, 0.2, -0.2, 0.3, -0.3, 0.5]
    for _ in range(60):
        obs, *_ = env.step(a)
    np.testing.assert_allclose(obs["joint_pos"][0, :6], a[0, :6], atol=0.02)  # rad, incl. encoder noise


def test_ee_delta_moves_tcp_as_commanded(lift_cfg):
    cfg = lift_cfg(randomize=False)
    cfg.action.mode = "ee_delta"
    env = make_env("lift_block", cfg)
    obs, _ = env.reset(seed=0)
    start = obs["ee_pose"][0, 0, :3].copy()
    a = np.zeros((1, 14), np.float32)
    a[0, 6] = a[0, 13] = 1.0
    a[0, 0:3] = [0.01, 0.005, 0.01]  # m per step, world frame
    for _ in range(10):
        obs, *_ = env.step(a)
    a[0, :6] = 0.0
    for _ in range(10):  # hold: the servos catch up with the target
        obs, *_ = env.step(a)
    moved = obs["ee_pose"][0, 0, :3] - start
    np.testing.assert_allclose(moved, [0.1, 0.05, 0.1], atol=0.003)
    np.testing.assert_allclose(obs["ee_pose"][0, 1, :3], env.ee_pose()[0, 1, :3], atol=1e-6)


def test_ee_target_observed_in_ee_delta_only(lift_cfg):
    """ee_delta's running TCP target is policy-visible state: an observation key in ee_delta, absent in joint_pos."""
    cfg = lift_cfg(num_envs=2)
    cfg.action.mode = "ee_delta"
    env = make_env("lift_block", cfg)
    obs, _ = env.reset(seed=0)
    key = env.obs_spec["ee_target"]
    assert key.shape == (14,) and key.dtype == "float32" and key.unit == "m|quat_wxyz"
    np.testing.assert_allclose(obs["ee_target"].reshape(2, 2, 7), obs["ee_pose"], atol=1e-6)  # seated at reset
    a = np.zeros((2, 14), np.float32)
    a[:, 6] = a[:, 13] = 1.0
    a[:, 2] = 0.01  # up 1 cm per step: the target leads the TCP
    obs, *_ = env.step(a)
    assert env.obs_spec.check(obs, batch=2) == []
    np.testing.assert_allclose(obs["ee_target"], env.ee_target.reshape(2, -1), atol=1e-6)
    assert (obs["ee_target"].reshape(2, 2, 7)[:, 0, 2] - obs["ee_pose"][:, 0, 2] > 0.002).all()
    joint = make_env("lift_block", lift_cfg())
    assert "ee_target" not in joint.reset(seed=0)[0] and "ee_target" not in joint.obs_spec.names


def test_joint_action_replays_an_ee_delta_episode(lift_cfg):
    """info["joint_action"] (the servo targets an ee_delta step wrote, joint_pos layout) replayed as joint_pos
    actions from the same seeded reset reproduces the episode bit-identically (the IK's targets are rounded to
    float32, the precision of an action, before the servos get them)."""
    cfg = lift_cfg(num_envs=2)
    cfg.action.mode = "ee_delta"
    env = make_env("lift_block", cfg)
    env.reset(seed=4)
    seeds, init = env.episode_seed.copy(), env.get_state()
    np.testing.assert_allclose(env.joint_action[:, :6], env.ctrl[:, env.arm_act[0]], atol=1e-6)  # reset targets
    np.testing.assert_array_equal(env.joint_action[:, [6, 13]], 1.0)  # grippers open
    rng = np.random.default_rng(0)
    states, joint = [], []
    for _ in range(40):
        a = np.concatenate([rng.uniform(-0.01, 0.01, (2, 6)), rng.uniform(0, 1, (2, 1))] * 2, axis=1)
        states.append(env.get_state())
        _, _, term, trunc, info = env.step(a.astype(np.float32))
        assert not (term | trunc).any()
        assert info["joint_action"].dtype == np.float32 and info["joint_action"].shape == (2, 14)
        np.testing.assert_array_equal(info["joint_action"], env.joint_action)
        joint.append(info["joint_action"])
    replay = make_env("lift_block", lift_cfg(num_envs=2))  # joint_pos
    replay.reset(options={"episode_seeds": seeds})
    replay.set_state(init)
    for t in range(40):
        np.testing.assert_array_equal(replay.get_state()[:, 1:], states[t][:, 1:])  # all but the time
        _, _, _, _, info = replay.step(joint[t])
        assert not info["action_clipped"].any()
        np.testing.assert_array_equal(info["joint_action"], joint[t])


def test_grip_force_reads_on_both_pads(lift_cfg):
    """The gripper squeezes a block; both pads read the actuator's force (N) through touch.

    One actuator drives finger a; finger b follows through an equality constraint, so the block is squeezed by
    the actuator force and each pad carries half of it.
    """
    cfg = lift_cfg(randomize=False)
    cfg.block_xy_range = (0.0, 0.0)
    cfg.block_yaw_range = 0.0
    cfg.action.mode = "ee_delta"
    env = make_env("lift_block", cfg)
    from rho.tasks.lift_block import LiftBlockExpert

    expert = LiftBlockExpert(env, squeeze_force=1e9)  # never leaves the squeeze phase
    actuator_force = env.batch.bind("actuator_force")  # derived fields bind before the steps that fill them
    obs, _ = env.reset(seed=0)
    for _ in range(120):
        obs, *_ = env.step(expert.act(obs))
    assert expert.phase[0] == 2
    squeeze = -actuator_force[0, env.grip_act[0]] / 2  # N per pad, closing is negative
    assert squeeze > 5.0
    for pad in ("left_a", "left_b"):  # the block is at x = 0: the left arm takes it
        assert obs[f"touch_net_{pad}"][0, 0] == pytest.approx(squeeze, rel=0.05)
        assert obs[f"touch_{pad}"][0, -1, ..., 0].sum() == pytest.approx(squeeze, rel=0.05)
    assert abs(obs["touch_net_right_a"][0, 0]) < 0.5  # the idle gripper feels only noise


def test_touch_rate_history_and_latency(lift_cfg):
    cfg = lift_cfg(randomize=False)
    cfg.touch.history = 4
    cfg.touch.rate_hz = 200.0
    cfg.touch.taxel.latency_s = 0.01
    env = make_env("lift_block", cfg)
    obs, _ = env.reset(seed=0)
    assert obs["touch_left_a"].shape == (1, 4, 4, 4, 3)
    assert env.touch_hz == 200.0
    assert env.obs_spec["touch_left_a"].rate_hz == 200.0
    assert env.touch_ch.latency_samples == 2
    bad = lift_cfg()
    bad.touch.rate_hz = 40.0  # 25 physics steps: not a divisor of the 20 per step
    with pytest.raises(ValueError, match=r"touch rate 40\.0 Hz must be a whole multiple of the control rate"):
        make_env("lift_block", bad)
    bad.touch.rate_hz = 30.0  # not a whole number of physics steps
    with pytest.raises(ValueError, match="does not divide the physics rate"):
        make_env("lift_block", bad)


def test_bad_config_lists_every_problem(lift_cfg):
    cfg = lift_cfg()
    cfg.num_envs = 0
    cfg.touch.rows = 99
    cfg.randomization.physics.mass_scale.low = 5.0
    with pytest.raises(ConfigError) as e:
        make_env("lift_block", cfg)
    msg = str(e.value)
    assert "num_envs must be >= 1" in msg
    assert "rows×cols" in msg
    assert "mass_scale" in msg


def test_gym_registration():
    env = gym.make("rho/LiftBlock-v0", cfg=None)
    obs, info = env.reset(seed=0)
    assert obs["joint_pos"].shape == (14,)
    assert "episode_seed" in info
    obs, rew, _term, _trunc, info = env.step(env.action_space.sample())
    assert isinstance(rew, float)
    env.close()
    venv = gym.make_vec("rho/LiftBlock-v0", num_envs=2, vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=0)
    assert obs["joint_pos"].shape == (2, 14)
    venv.close()


def test_unknown_shortcut_field_suggests():
    with pytest.raises(TypeError, match="Did you mean 'num_envs'"):
        make_env("lift_block", num_env=2)


def test_nothing_carries_over_between_episodes_without_randomization(lift_cfg):
    env = make_env("lift_block", lift_cfg(randomize=False))
    gid = env.prop_geoms[0]
    colors = set()
    for seed in range(6):
        _, info = env.reset(seed=seed)
        colors.add((info["randomization"][0]["block_color"], tuple(env._models[0].geom_rgba[gid].round(6))))
    by_name = {}
    for name, rgba in colors:  # the same named colour always renders the same
        by_name.setdefault(name, set()).add(rgba)
    assert all(len(v) == 1 for v in by_name.values())
