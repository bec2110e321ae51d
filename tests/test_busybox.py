"""BusyBox: the procedural panel (layouts, rotations, held-out split), the physics of each control, and the task
family (success false at reset, true after the scripted expert)."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from rho.assets.busybox import (
    BUTTON_CLICK,
    KNOB_DETENTS,
    SLIDER_DETENTS,
    SWITCH_ANGLE,
    Layout,
    apply_layout,
    control_world_pose,
    default_busybox,
    is_heldout,
    sample_layout,
    to_mjcf,
)
from rho.assets.mjcf import SceneSpec, build_mjcf
from rho.assets.robots import get_robot
from rho.config import ConfigError
from rho.tasks import ALL_TASKS, make_env
from rho.tasks.busybox import CONTROLS

BUSYBOX_TASKS = sorted(n for n in ALL_TASKS if n.startswith("busybox_"))
SPEC = default_busybox()
ROTATED = Layout(order=(5, 4, 3, 2, 1, 0), turns=(1, 2, 3, 1, 2, 3))


def _compile(layout: Layout | None = None) -> mujoco.MjModel:
    world, sections = to_mjcf(SPEC, layout)
    return mujoco.MjModel.from_xml_string(build_mjcf(SceneSpec(robot=get_robot("aloha"), extra_worldbody=world,
                                                               extra_sections=sections)))


def _env(task: str = "busybox_push_button", **kw):
    """A nominal single env. Tests move controls other than the episode's target: a success would end the episode
    and reset the panel under them."""
    cfg = ALL_TASKS[task].cfg_cls(num_envs=1, seed=0, **kw)
    cfg.cameras = {}
    cfg.randomization.enabled = False
    env = make_env(task, cfg)
    env.reset(seed=0)
    return env


def _hold(env, steps: int) -> None:
    """Step with both arms holding their home pose, grippers open (joint_pos actions)."""
    a = np.tile(np.concatenate([np.append(env.home, 1.0)] * 2), (env.num_envs, 1)).astype(np.float32)
    for _ in range(steps):
        env.step(a)


def _q(env, control: str) -> float:
    return float(env.qpos[0, env.ctl_qadr[CONTROLS.index(control)]])


def _set_q(env, control: str, value: float) -> None:
    k = CONTROLS.index(control)
    env.qpos[0, env.ctl_qadr[k]] = value
    env.qvel[0, env.ctl_dadr[k]] = 0.0


# ---------------------------------------------------------------------------------------------------- asset
@pytest.mark.parametrize("layout", [None, ROTATED, sample_layout(SPEC, np.random.default_rng(3), "heldout")])
def test_asset_builds_and_layout_writes_match_the_emitted_xml(layout):
    """A layout emitted as MJCF and the same layout written into the default model (per-env path) agree."""
    emitted = _compile(layout)
    written = _compile()
    apply_layout(written, SPEC, layout or SPEC.default_layout, (0.02, -0.01), 0.05)
    apply_layout(emitted, SPEC, layout or SPEC.default_layout, (0.02, -0.01), 0.05)
    d1, d2 = mujoco.MjData(emitted), mujoco.MjData(written)
    mujoco.mj_forward(emitted, d1)
    mujoco.mj_forward(written, d2)
    for c in CONTROLS[:9]:  # jointed controls (jacks are free bodies placed by the task)
        sid = emitted.site(f"bb/{c}").id
        np.testing.assert_allclose(d1.site_xpos[sid], d2.site_xpos[sid], atol=1e-9)
        pos, _ = control_world_pose(SPEC, layout or SPEC.default_layout, c, (0.02, -0.01), 0.05)
        np.testing.assert_allclose(d2.xpos[emitted.body(f"bb/{c}").id], pos, atol=1e-9)
    # few collision geoms: the panel must stay cheap
    collide = (emitted.geom_contype | emitted.geom_conaffinity) > 0
    panel = np.isin(emitted.geom_bodyid, [emitted.body(b).id for b in range(emitted.nbody)
                                          if emitted.body(b).name.startswith("bb/") or b == emitted.body("busybox").id])
    assert (collide & panel).sum() <= 40


def test_rotated_module_turns_its_controls():
    """A quarter turn of the sliders module turns the slider travel from the panel's y to its x."""
    sliders = SPEC.module_index("sliders")
    for t, axis in ((0, np.array([0.0, 1.0])), (1, np.array([-1.0, 0.0]))):
        layout = Layout(SPEC.default_layout.order, tuple(t if m == sliders else 0 for m in range(6)))
        a, _ = control_world_pose(SPEC, layout, "slider_left", (0.0, 0.0), 0.0)
        m = _compile()
        apply_layout(m, SPEC, layout)
        d = mujoco.MjData(m)
        d.qpos[m.jnt_qposadr[m.joint("bb/slider_left").id]] = 0.02
        mujoco.mj_forward(m, d)
        np.testing.assert_allclose(d.xpos[m.body("bb/slider_left").id][:2] - a[:2], 0.02 * axis, atol=1e-9)


def test_heldout_split():
    rng = np.random.default_rng(0)
    layouts = [sample_layout(SPEC, rng, "all") for _ in range(400)]
    share = np.mean([is_heldout(SPEC, lay) for lay in layouts])
    assert 0.12 < share < 0.28
    assert not is_heldout(SPEC, SPEC.default_layout)
    assert all(is_heldout(SPEC, sample_layout(SPEC, rng, "heldout")) for _ in range(20))
    assert not any(is_heldout(SPEC, sample_layout(SPEC, rng, "train")) for _ in range(20))
    env = _env(layout_split="heldout")
    assert is_heldout(SPEC, env.layouts[0])


# ---------------------------------------------------------------------------------------------------- controls
def test_button_springs_back():
    env = _env("busybox_push_button", color="green")
    body = env.ctl_body[CONTROLS.index("button_red")]
    xfrc = env.batch.bind("xfrc_applied")
    xfrc[0, body, 2] = -6.0  # a 6 N press
    _hold(env, 10)
    assert -_q(env, "button_red") > BUTTON_CLICK
    assert env.clicked[0, 0] and not env.evaluate()["success"][0]  # clicked, but not the one asked for
    xfrc[0, body, 2] = 0.0
    _hold(env, 10)
    assert -_q(env, "button_red") < 0.0005  # back up within 0.2 s


def test_switch_is_bistable():
    env = _env()
    for start, settle in ((0.05, SWITCH_ANGLE), (-0.05, -SWITCH_ANGLE), (0.3, SWITCH_ANGLE), (-0.3, -SWITCH_ANGLE)):
        _set_q(env, "switch_top", start)
        _hold(env, 15)
        assert _q(env, "switch_top") == pytest.approx(settle, abs=0.02), start
    # a light push does not flip it (the lever comes back); a firm one does, and it stays
    body = env.ctl_body[CONTROLS.index("switch_top")]
    xfrc = env.batch.bind("xfrc_applied")
    yaw = env.module_yaw[0, CONTROLS.index("switch_top")]
    axis = np.array([-math.sin(yaw), math.cos(yaw), 0.0])  # the lever's hinge (module +y)
    for torque, settle in ((0.01, -SWITCH_ANGLE), (0.06, SWITCH_ANGLE)):  # N·m towards on: weaker, stronger
        xfrc[0, body, 3:] = torque * axis  # than the 0.04 N·m over-centre spring
        _hold(env, 10)
        xfrc[0, body, 3:] = 0.0
        _hold(env, 10)
        assert _q(env, "switch_top") == pytest.approx(settle, abs=0.02), torque


@pytest.mark.parametrize(("control", "detents", "off"),
                         [("knob", KNOB_DETENTS, 0.2), ("slider_left", SLIDER_DETENTS, 0.008)])
def test_knob_and_slider_settle_in_detents(control, detents, off):
    """Released short of the midpoint between notches a control falls back; past it, it snaps into the next."""
    env = _env()
    for start, settle in ((detents[2] + off, detents[2]), (detents[2] - off, detents[2]),
                          (detents[3] - off, detents[3])):
        _set_q(env, control, start)
        _hold(env, 25)
        assert _q(env, control) == pytest.approx(settle, abs=0.02 * (detents[1] - detents[0])), start


def test_jack_holds_then_pulls_out_beyond_a_force_and_relatches():
    env = _env("busybox_insert_wire", color="red")
    k = CONTROLS.index("jack_blue")
    j = k - env.jacks[0]
    xfrc = env.batch.bind("xfrc_applied")
    xfrc[0, env.ctl_body[k], 2] = 1.5  # N: held
    _hold(env, 10)
    assert env.eq_active[0, env.seat_eq[j]] == 1.0
    assert np.linalg.norm(env.jack_displacement()[0, j]) < 0.003
    xfrc[0, env.ctl_body[k], 2] = 4.0  # N: pulls out
    _hold(env, 10)
    assert env.eq_active[0, env.seat_eq[j]] == 0.0
    assert np.linalg.norm(env.jack_displacement()[0, j]) > 0.03
    # brought back to its seat, the socket latches it again
    xfrc[0, env.ctl_body[k], 2] = 0.0
    a = env.ctl_qadr[k]
    env.qpos[0, a:a + 3] = env.seat_pos[0, j] + [0.0, 0.0, 0.002]
    env.qpos[0, a + 3:a + 7] = env.seat_quat[0, j]
    env.qvel[0, env.ctl_dadr[k]:env.ctl_dadr[k] + 6] = 0.0
    _hold(env, 5)
    assert env.eq_active[0, env.seat_eq[j]] == 1.0
    assert np.linalg.norm(env.jack_displacement()[0, j]) < 0.001


# ---------------------------------------------------------------------------------------------------- tasks
def test_config_rejects_unknown_targets():
    with pytest.raises(ConfigError, match="color"):
        make_env("busybox_push_button", ALL_TASKS["busybox_push_button"].cfg_cls(color="purple", cameras={}))
    with pytest.raises(ConfigError, match="position"):
        make_env("busybox_turn_knob", ALL_TASKS["busybox_turn_knob"].cfg_cls(position=7, cameras={}))


def test_fixed_target_is_named_and_differs_from_the_start():
    env = _env("busybox_move_slider", which="right", position=4)
    text = env.instruction(0)
    assert "right" in text and ("4" in text or "four" in text)
    assert env.episode_params[0]["initial_state"]["slider_right"] != pytest.approx(SLIDER_DETENTS[3])
    assert env.target_value[0] == pytest.approx(SLIDER_DETENTS[3])


@pytest.mark.parametrize("task", BUSYBOX_TASKS)
def test_expert_succeeds_and_success_is_not_trivial(task):
    entry = ALL_TASKS[task]
    cfg = entry.cfg_cls(num_envs=2, seed=5)
    cfg.cameras = {}
    cfg.action.mode = entry.expert_action_mode
    env = make_env(task, cfg)
    expert = entry.expert_cls(env)
    obs, _ = env.reset(seed=5)
    assert not env.evaluate()["success"].any()
    done = np.zeros(2, bool)
    ok = np.zeros(2, bool)
    for _ in range(env.max_episode_steps):
        obs, _, term, trunc, info = env.step(expert.act(obs))
        fin = (term | trunc) & ~done
        ok[fin] = info["final_info"]["success"][fin] if fin.any() else ok[fin]
        done |= term | trunc
        if done.all():
            break
    assert done.all() and ok.all(), f"{task}: successes {ok}"
