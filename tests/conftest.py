from __future__ import annotations

import os

import numpy as np
import pytest

# offscreen rendering: EGL unless the caller chose otherwise (rho.sim.render probes and falls back to OSMesa)
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(autouse=True, scope="session")
def _frame_cache_in_tmp(tmp_path_factory):
    """Training's frame cache goes to a per-session temporary folder, not the user's ~/.cache."""
    old = os.environ.get("RHO_FRAME_CACHE")
    os.environ["RHO_FRAME_CACHE"] = str(tmp_path_factory.mktemp("frames"))
    yield
    if old is None:
        os.environ.pop("RHO_FRAME_CACHE", None)
    else:
        os.environ["RHO_FRAME_CACHE"] = old


@pytest.fixture
def lift_cfg():
    """A small, fast lift_block config: no cameras, nominal randomization off unless a test turns it on."""
    from rho.tasks.lift_block import LiftBlockCfg

    def make(num_envs: int = 1, cameras: bool = False, randomize: bool = True, **kw):
        cfg = LiftBlockCfg(num_envs=num_envs, seed=0, **kw)
        if not cameras:
            cfg.cameras = {}
        cfg.randomization.enabled = randomize
        return cfg

    return make


def home_action(env) -> np.ndarray:
    """(n, 14) joint_pos action holding the home pose with open grippers."""
    per_arm = [np.append(env.home, 1.0) for _ in env.robot.arms]
    return np.tile(np.concatenate(per_arm), (env.num_envs, 1)).astype(np.float32)
