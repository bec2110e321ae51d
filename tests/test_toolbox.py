"""The toolbox asset and the `toolbox_close` task: lid mechanics (seal, latch), an unheld box moving, the expert."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from conftest import home_action

from rho.assets.mjcf import SceneSpec, build_mjcf
from rho.assets.robots import get_robot
from rho.assets.toolbox import ToolboxSpec
from rho.tasks import make_env
from rho.tasks.toolbox_close import ToolboxCloseCfg, ToolboxCloseExpert


def _env(num_envs: int = 2, randomize: bool = False, mode: str = "joint_pos", touch: bool = False,
         autoreset: bool = True):
    cfg = ToolboxCloseCfg(num_envs=num_envs, seed=0)
    cfg.cameras = {}
    cfg.touch.enabled = touch
    cfg.randomization.enabled = randomize
    cfg.action.mode = mode
    env = make_env("toolbox_close", cfg)
    if not autoreset:  # keep the episode going past success, to look at the lid afterwards
        env._get_dones = lambda metrics: np.zeros(num_envs, bool)
    return env


def _hold(env, seconds: float) -> None:
    """Step with both arms holding their home pose, grippers open (they stay clear of the box)."""
    for _ in range(round(seconds / env.control_dt)):
        env.step(home_action(env))


def _set_lid(env, angle: float) -> None:
    env.qpos[:, env._ids["lid_q"]] = angle
    env.qvel[:, env._ids["lid_d"]] = 0.0
    env.batch.forward()


def test_asset_builds_with_the_described_masses_and_parts():
    spec = ToolboxSpec()
    frag = spec.to_mjcf("tb", pos=(0.0, 0.0, 0.0))
    scene = SceneSpec(robot=get_robot("aloha"), extra_worldbody=frag.worldbody, extra_sections=frag.sections)
    m = mujoco.MjModel.from_xml_string(build_mjcf(scene))
    assert m.body_mass[m.body("tb").id] == pytest.approx(spec.box_mass)
    assert m.body_mass[m.body("tb/lid").id] == pytest.approx(spec.lid_mass)
    assert not m.eq_active0[m.equality("tb/latch").id]  # the latch starts open
    assert m.tendon_lengthspring[m.tendon("tb/seal").id].tolist() == pytest.approx([spec.seal_angle,
                                                                                     spec.open_limit + 1])
    for site in ("tb/tab", "tb/handle"):
        assert m.site(site).id >= 0
    # the lid's weight alone must not reach the latch, and a bad description is refused
    assert spec.validate() == []
    assert spec.press_force() > 3.0
    with pytest.raises(ValueError, match="angles must satisfy"):
        ToolboxSpec(latch_angle=0.06).to_mjcf()


def test_lid_stays_open_where_it_is_left():
    env = _env(num_envs=1)
    env.reset(seed=0)
    _set_lid(env, 0.8)
    _hold(env, 1.0)
    assert env.lid_angle()[0] == pytest.approx(0.8, abs=0.01)  # hinge friction holds it against gravity


def test_latch_engages_only_when_pressed_past_the_threshold():
    """Env 0: the lid is lowered gently onto the seal (a closing torque a little above the hinge friction);
    env 1: the lid is pressed hard. Only env 1 latches; released, its lid stays held below the latch angle while
    env 0's rests on the seal."""
    env = _env(num_envs=2, autoreset=False)
    env.reset(seed=0)
    tb, dof = env.toolbox, env._ids["lid_d"]
    _set_lid(env, 0.3)
    qfrc = env.batch.bind("qfrc_applied")
    qfrc[:, dof] = [-(tb.hinge_friction + 0.05), -3.0]  # N·m, closing
    _hold(env, 1.5)
    angle = env.lid_angle()
    assert angle[0] > tb.latch_angle + 0.01 and angle[0] < tb.seal_angle + 0.005  # on the seal, barely squeezed
    assert angle[1] < tb.latch_angle
    assert env.latched().tolist() == [False, True]
    assert env.evaluate()["success"].tolist() == [False, True]
    qfrc[:, dof] = 0.0
    _hold(env, 1.0)
    assert env.latched().tolist() == [False, True]
    assert env.lid_angle()[1] <= tb.latch_angle  # the catch holds the lid down against the seal
    assert env.lid_angle()[0] > tb.latch_angle


def test_unheld_box_slides_when_the_lid_is_pushed_sideways():
    env = _env(num_envs=1)
    env.reset(seed=0)
    a = env._ids["box_q"]
    start = env.qpos[0, a:a + 3].copy()
    xfrc = env.batch.bind("xfrc_applied")
    xfrc[0, env._ids["lid_body"], :3] = [0.0, 3.0, 0.0]  # N at the lid's centre of mass, along the hinge
    _hold(env, 0.5)
    moved = np.linalg.norm(env.qpos[0, a:a + 2] - start[:2])
    assert moved > 0.02, f"the box moved only {moved * 1000:.1f} mm"


def test_pressing_the_latch_tips_an_unheld_box_and_fails():
    """The expert's closing arm alone (the steadying arm idle): the press needed to latch tips the box."""
    env = _env(num_envs=2, randomize=True, mode="ee_delta", touch=True)
    expert = ToolboxCloseExpert(env)
    expert.steadied = lambda obs, i: True  # do not wait for the idle arm
    obs, _ = env.reset(seed=1)
    tipped = np.zeros(2, bool)
    for _ in range(env.max_episode_steps):
        action = expert.act(obs).reshape(2, 2, 7)
        action[:, env.steady_arm] = [0, 0, 0, 0, 0, 0, 1]
        obs, _, term, trunc, info = env.step(action.reshape(2, -1))
        done = term | trunc
        if done.any():
            assert not info["final_info"]["success"][done].any()
        tipped |= done & ~trunc
        if tipped.all():
            break
    assert tipped.all()


def test_expert_closes_and_latches_and_success_is_not_trivial():
    env = _env(num_envs=3, randomize=True, mode="ee_delta", touch=True)
    expert = ToolboxCloseExpert(env)
    obs, info = env.reset(seed=4)
    assert not env.evaluate()["success"].any()
    assert (obs["latched"] == 0).all()
    assert all(env.instruction(i) for i in range(3))
    finished = np.zeros(3, bool)
    for _ in range(env.max_episode_steps):
        obs, _, term, trunc, info = env.step(expert.act(obs))
        done = (term | trunc) & ~finished
        if done.any():
            assert info["final_info"]["success"][done].all(), info["final_info"]
            finished |= done
        if finished.all():
            break
    assert finished.all()


def test_instructions_and_randomization_are_recorded():
    env = _env(num_envs=4, randomize=True)
    _, info = env.reset(seed=2)
    cfg = env.cfg
    for p in info["randomization"]:
        assert cfg.lid_angle_range[0] <= p["lid_angle"] <= cfg.lid_angle_range[1]
        assert cfg.box_mass_range[0] <= p["box_mass"] <= cfg.box_mass_range[1]
        assert "toolbox" in p["instruction"] or "tool box" in p["instruction"]
    assert len(type(env).instruction_examples()) >= 4
