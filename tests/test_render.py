"""Offscreen cameras: RGB and depth per camera at their own resolution, EGL by default, OSMesa as fallback."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import numpy as np
import pytest

from rho.sim.env import CameraCfg
from rho.tasks import make_env

pytestmark = pytest.mark.render


def test_cameras_rgb_depth_and_resolution(lift_cfg):
    cfg = lift_cfg(cameras=True, randomize=False)
    cfg.cameras = {"cam_high": CameraCfg(width=96, height=64, depth=True), "cam_left_wrist": CameraCfg(48, 48)}
    env = make_env("lift_block", cfg)
    obs, _ = env.reset(seed=0)
    rgb, depth = obs["rgb_cam_high"], obs["depth_cam_high"]
    assert rgb.shape == (1, 64, 96, 3)
    assert rgb.dtype == np.uint8
    assert rgb.std() > 5
    assert obs["rgb_cam_left_wrist"].shape == (1, 48, 48, 3)
    # the table centre is ~0.83 m from cam_high (at (0, -0.35, 0.75) looking at the origin)
    centre = depth[0, 32, 48]
    assert centre == pytest.approx(np.hypot(0.35, 0.75), abs=0.08)
    assert env.obs_spec.check(obs, batch=1) == []
    env.close()


def test_camera_rate_is_sample_and_hold(lift_cfg):
    cfg = lift_cfg(cameras=True, randomize=False)
    cfg.cameras = {"cam_high": CameraCfg(width=32, height=32)}
    cfg.cameras["cam_high"].sensor.rate_hz = 25.0  # every second control step at 50 Hz
    env = make_env("lift_block", cfg)
    env.reset(seed=0)
    a = np.tile(np.r_[env.home + 0.3, 1.0], 2)[None]
    frames = [env.step(a)[0]["rgb_cam_high"][0] for _ in range(6)]
    assert env.obs_spec["rgb_cam_high"].rate_hz == 25.0
    changed = [not np.array_equal(frames[i], frames[i + 1]) for i in range(5)]
    assert changed == [True, False, True, False, True]  # new frames on even steps only
    env.close()


def test_rendering_is_deterministic(lift_cfg):
    cfg = lift_cfg(cameras=True)
    cfg.cameras = {"cam_high": CameraCfg(width=48, height=48)}
    a = make_env("lift_block", cfg).reset(seed=5)[0]["rgb_cam_high"]
    b = make_env("lift_block", cfg).reset(seed=5)[0]["rgb_cam_high"]
    np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(ctypes.util.find_library("OSMesa") is None, reason="libOSMesa not installed (apt libosmesa6)")
def test_osmesa_fallback_renders():
    code = ("from rho.tasks import make_env; from rho.tasks.lift_block import LiftBlockCfg;"
            "from rho.sim.env import CameraCfg; c = LiftBlockCfg(); c.cameras = {'cam_high': CameraCfg(32, 32)};"
            "o, _ = make_env('lift_block', c).reset(seed=0); import os;"
            "print(os.environ['MUJOCO_GL'], int(o['rgb_cam_high'].std() > 5))")
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env["MUJOCO_GL"] = "osmesa"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["osmesa", "1"], out.stderr[-2000:]
