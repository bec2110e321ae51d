"""Plug insertion: the procedural assets, success at reset and after the expert, jamming, steadying, occlusion,
determinism."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from rho.assets.plug_socket import PLUG_TYPES, default_plugs, make_plug_socket, plate_boxes
from rho.tasks import make_env
from rho.tasks.plug_insertion import (
    L_HOLD,
    LEFT,
    R_SEARCH,
    PlugInsertionCfg,
    PlugInsertionExpert,
    PlugInsertionOccludedCfg,
    PlugInsertionOccludedExpert,
)


def _cfg(cls=PlugInsertionCfg, num_envs: int = 2, **kw) -> PlugInsertionCfg:
    cfg = cls(num_envs=num_envs, seed=0, **kw)
    cfg.cameras = {}
    cfg.action.mode = "ee_delta"
    return cfg


def _run(env, expert, seed: int = 3) -> dict[str, np.ndarray]:
    """Step the expert until every env finished its first episode: per env, that episode's success, deepest
    insertion (m) and whether the expert searched."""
    obs, _ = env.reset(seed=seed)
    out = {"success": np.zeros(env.num_envs, bool), "depth": np.full(env.num_envs, -np.inf),
           "searched": np.zeros(env.num_envs, bool)}
    finished = np.zeros(env.num_envs, bool)
    for _ in range(env.max_episode_steps):
        obs, _, term, trunc, info = env.step(expert.act(obs))
        live = ~finished
        out["depth"][live] = np.maximum(out["depth"], env.evaluate()["insertion_depth"])[live]
        out["searched"][live] |= expert.phase[live, 1] == R_SEARCH
        if (term | trunc).any():
            done = (term | trunc) & live
            out["success"][done] = info["final_info"]["success"][done]
            finished |= done
            expert.reset(np.flatnonzero(term | trunc))
        if finished.all():
            break
    return out


# ---------------------------------------------------------------------- assets
def _standalone(spec) -> mujoco.MjModel:
    xml = f'<mujoco><option timestep="0.001"/><worldbody><geom type="plane" size="1 1 0.1"/>{spec.to_mjcf()}' \
          "</worldbody></mujoco>"
    return mujoco.MjModel.from_xml_string(xml)


@pytest.mark.parametrize("kind", PLUG_TYPES)
def test_asset_builds_for_every_plug_type(kind):
    """Each plug type alone compiles; a ray down each hole's axis passes the face and meets the shutter inside,
    a ray beside the hole meets the face."""
    spec = make_plug_socket(plugs={kind: default_plugs()[kind]})
    assert spec.validate() == []
    m = _standalone(spec)
    d = mujoco.MjData(m)
    d.qpos[m.jnt_qposadr[m.joint("plug").id]:][:3] = [0.3, 0.3, 0.04]  # out of the way of the rays
    mujoco.mj_forward(m, d)
    s = spec.strip
    plug_body = m.body("plug").id
    for y, z, hw, _ in s.holes():
        for offset, want in ((0.0, s.shutter_depth), (hw + 0.001, 0.0)):
            gid = np.zeros(1, np.int32)
            dist = mujoco.mj_ray(m, d, np.array([0.05, y + offset, z]), np.array([-1.0, 0, 0]), None, 1, plug_body,
                                 gid)
            assert dist - 0.05 == pytest.approx(want, abs=2e-4), (kind, offset, m.geom(gid[0]).name)
    prongs = [m.geom(g).id for g in spec.plug.plugs[0].prong_geoms()]
    assert len(prongs) == len(default_plugs()[kind].prongs)


def test_plate_tiling_leaves_exactly_the_holes():
    holes = [(-0.02, 0.05, 0.003, 0.004), (0.01, 0.05, 0.002, 0.002), (0.01, 0.03, 0.004, 0.001)]
    boxes = plate_boxes(0.1, 0.0, 0.08, holes)
    area = sum((y1 - y0) * (z1 - z0) for y0, y1, z0, z1 in boxes)
    assert area == pytest.approx(0.1 * 0.08 - sum(4 * hw * hh for *_, hw, hh in holes), rel=1e-9)
    for y, z, *_ in holes:  # no box covers a hole centre
        assert not any(y0 < y < y1 and z0 < z < z1 for y0, y1, z0, z1 in boxes)


def test_asset_validation_names_the_problem():
    assert any("hole_depth" in p for p in make_plug_socket(hole_depth=0.015).validate())
    assert any("clearance" in p for p in make_plug_socket(clearance=0.01).validate())


# ---------------------------------------------------------------------- task
def test_plug_type_draws_hold_out_and_fixing():
    env = make_env("plug_insertion", _cfg(num_envs=12, held_out="rect"))
    env.reset(seed=0)
    kinds = {env.episode_params[i]["plug_type"] for i in range(env.num_envs)}
    assert kinds == {"flat", "round"}
    assert not env.evaluate()["success"].any()
    env = make_env("plug_insertion", _cfg(num_envs=3, plug_type="rect"))
    obs, _ = env.reset(seed=0)
    assert all(env.episode_params[i]["plug_type"] == "rect" for i in range(3))
    np.testing.assert_array_equal(obs["plug_type"], np.tile([0, 0, 1], (3, 1)))
    # only the rect prong collides and shows, in each env's own model
    rect = env.model.geom("plug/rect/0").id
    flat = env.model.geom("plug/flat/0").id
    assert env._models[0].geom_contype[rect] and not env._models[0].geom_contype[flat]
    assert env._models[0].geom_rgba[flat, 3] == 0.0
    assert all(any(n in env.instruction(i) for n in default_plugs()["rect"].names) for i in range(3))


@pytest.mark.parametrize(("task", "cfg_cls", "expert_cls"), [
    ("plug_insertion", PlugInsertionCfg, PlugInsertionExpert),
    ("plug_insertion_occluded", PlugInsertionOccludedCfg, PlugInsertionOccludedExpert)])
def test_expert_seats_the_plug(task, cfg_cls, expert_cls):
    env = make_env(task, _cfg(cfg_cls, num_envs=3))
    expert = expert_cls(env)
    env.reset(seed=3)
    assert not env.evaluate()["success"].any()
    out = _run(env, expert)
    assert out["success"].all(), out


class _FixedError(PlugInsertionExpert):
    """The expert with a chosen outlet-estimate error per env and no search: it only pushes."""

    spiral_radius = 0.0
    errors = (0.0, 0.0015)  # lateral error along the outlet's y per env (m)

    def _draw_error(self, i: int) -> None:
        self.error[i] = [0.0, self.errors[i], 0.0]


@pytest.mark.parametrize("kind", PLUG_TYPES)
def test_misaligned_push_jams(kind):
    """Pushed straight in, the plug seats; pushed 1.5 mm off (three times the 0.5 mm per side of play), it jams on
    the face — its prongs never get in — and the pads feel it (the expert switches to its search)."""
    env = make_env("plug_insertion", _cfg(num_envs=2, plug_type=kind, episode_length_s=4.0))
    out = _run(env, _FixedError(env), seed=5)
    assert out["success"][0]
    assert not out["success"][1] and out["depth"][1] < 0.001, out
    assert out["searched"][1]


class _NoHold(PlugInsertionExpert):
    """The expert with its left arm idle: nobody steadies the strip."""

    def _left(self, i: int, obs) -> np.ndarray:
        self.phase[i, LEFT] = L_HOLD
        return np.r_[np.zeros(6), 1.0]


def test_unsteadied_strip_gives_way():
    """The strip is light and stands on a narrow foot: pushed without the other arm holding it, it slides or tips
    and the plug does not seat."""
    env = make_env("plug_insertion", _cfg(num_envs=2, episode_length_s=5.0))
    assert not _run(env, _NoHold(env))["success"].any()


def test_hood_hides_the_outlet_from_cam_high():
    """With the hood, rays from cam_high to points on the outlet axis within 2 cm of the face are blocked;
    without it they are not."""
    for cls, visible in ((PlugInsertionCfg, True), (PlugInsertionOccludedCfg, False)):
        env = make_env("plug_insertion_occluded" if cls is PlugInsertionOccludedCfg else "plug_insertion",
                       _cfg(cls, num_envs=4))
        env.reset(seed=1)
        sock = env._get_task_obs()["socket_pose"].astype(float)
        for i in range(env.num_envs):
            m, d = env._env_model_data(i)
            cam = d.cam_xpos[m.camera("cam_high").id].copy()
            axis = env.site_xmat[i, env._ids["outlet"][env._state["kind"][i]]].reshape(3, 3)[:, 0]
            for dist_mm in (1, 10, 20):
                point = sock[i, :3] + axis * dist_mm / 1000
                vec = point - cam
                hit = mujoco.mj_ray(m, d, cam, vec / np.linalg.norm(vec), None, 1, m.body("plug").id,
                                    np.zeros(1, np.int32))
                assert (hit < 0 or hit >= np.linalg.norm(vec) - 1e-3) == visible, (cls.__name__, i, dist_mm)


def test_expert_rollout_is_deterministic():
    traces = []
    for _ in range(2):
        env = make_env("plug_insertion", _cfg(num_envs=2))
        expert = PlugInsertionExpert(env)
        obs, _ = env.reset(seed=9)
        trace = []
        for _ in range(90):
            action = expert.act(obs)
            obs, *_ = env.step(action)
            trace.append((action, obs["plug_pose"], obs["touch_net_right_a"]))
        traces.append(trace)
    for a, b in zip(*traces, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
