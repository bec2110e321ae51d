"""The taxel model measures what it claims: known forces, contact locations and shear directions."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from rho.assets.mjcf import CONTACT_DATA, CONTACT_SLOT_SIZE
from rho.sim import touch
from rho.sim.touch import TaxelGrid, TouchKernel

G = 9.81
PAD = (0.030, 0.020)  # length (x), width (y) in m
SLOTS = 8


def _pad_scene(obj_xml: str, pad_quat: str = "1 0 0 0") -> str:
    """A fixed pad whose frame has +z up (the inward normal), with the same sensors the robot's pads carry."""
    return f"""<mujoco><option timestep="0.001" cone="elliptic" impratio="10"/>
      <worldbody>
        <body name="pad" pos="0 0 0.1" quat="{pad_quat}">
          <geom name="pad" type="box" pos="0 0 -0.0015" size="{PAD[0] / 2} {PAD[1] / 2} 0.0015" friction="0.5"/>
          <site name="pad" pos="0 0 0"/>
        </body>
        {obj_xml}
      </worldbody>
      <sensor>
        <contact name="slots" geom1="pad" num="{SLOTS}" data="{CONTACT_DATA}" reduce="maxforce"/>
        <contact name="net" geom1="pad" num="1" data="force" reduce="netforce"/>
      </sensor></mujoco>"""


def _read(m: mujoco.MjModel, d: mujoco.MjData, grid: TaxelGrid) -> tuple[np.ndarray, np.ndarray]:
    kernel = TouchKernel(grid, [m.site("pad").id], m.sensor("slots").adr[0], SLOTS * CONTACT_SLOT_SIZE,
                         m.sensor("net").adr[0])
    taxels, net = kernel(d.sensordata[None, None], d.site_xpos[None, None], d.site_xmat[None, None],
                         np.zeros(1, np.int64), np.ones((1, 1)))
    return taxels[0, 0, 0], net[0, 0, 0]


def _settle(xml: str, steps: int = 1500, force: tuple[float, float, float] | None = None):
    m = mujoco.MjModel.from_xml_string(xml)
    d = mujoco.MjData(m)
    for _ in range(steps):
        if force is not None:
            d.xfrc_applied[m.body("obj").id, :3] = force
        mujoco.mj_step(m, d)
    return m, d


def _centre_of_pressure(taxels: np.ndarray, grid: TaxelGrid) -> tuple[float, float]:
    w = taxels[..., 0]
    return float((w.sum(1) * grid.centers_x).sum() / w.sum()), float((w.sum(0) * grid.centers_y).sum() / w.sum())


@pytest.mark.parametrize("mass", [0.2, 1.0])
@pytest.mark.parametrize("press", [0.0, 5.0])
def test_known_force_sums_to_normal(mass, press):
    """A block of known weight, pushed down with a known extra force: the taxels sum to the total, in N."""
    obj = f'<body name="obj" pos="0 0 0.111"><freejoint/><geom type="box" size="0.008 0.008 0.01" mass="{mass}"/></body>'
    m, d = _settle(_pad_scene(obj), force=(0.0, 0.0, -press))
    grid = TaxelGrid(4, 4, *PAD)
    taxels, net = _read(m, d, grid)
    expected = mass * G + press
    assert taxels[..., 0].sum() == pytest.approx(expected, rel=0.02)
    assert net[0] == pytest.approx(expected, rel=0.02)
    assert np.abs(taxels[..., 1:].sum(axis=(0, 1))).max() < 0.02 * expected  # no shear at rest
    assert (taxels[..., 0] >= 0).all()


@pytest.mark.parametrize(("rows", "cols"), [(4, 4), (8, 6), (16, 16)])
@pytest.mark.parametrize(("x", "y"), [(0.0, 0.0), (0.008, -0.004), (-0.009, 0.005)])
def test_contact_location_on_grid(rows, cols, x, y):
    """A small sphere resting at (x, y) on the pad: the centre of pressure of the grid is at (x, y)."""
    obj = f'<body name="obj" pos="{x} {y} 0.105"><freejoint/><geom type="sphere" size="0.005" mass="0.5"/></body>'
    m, d = _settle(_pad_scene(obj), steps=600)
    grid = TaxelGrid(rows, cols, *PAD)
    taxels, _ = _read(m, d, grid)
    cx, cy = _centre_of_pressure(taxels, grid)
    assert cx == pytest.approx(x, abs=5e-4)
    assert cy == pytest.approx(y, abs=5e-4)
    # the hottest taxel is the one under the sphere
    r, c = np.unravel_index(np.argmax(taxels[..., 0]), taxels.shape[:2])
    assert abs(grid.centers_x[r] - x) <= PAD[0] / rows
    assert abs(grid.centers_y[c] - y) <= PAD[1] / cols


@pytest.mark.parametrize("direction", [(1, 0), (-1, 0), (0, 1), (0, -1)])
def test_sliding_object_shear_direction(direction):
    """Dragging a block across the pad: shear points the way the block slides, and equals friction."""
    # a flat puck, so the pull barely tips it
    obj = ('<body name="obj" pos="0 0 0.104"><freejoint/><geom type="box" size="0.006 0.006 0.003" mass="1" '
           'friction="0.5"/></body>')
    pull = 8.0  # N, well above μmg = 0.5 · 9.81 (MuJoCo takes the larger friction of the pair: both 0.5)
    m, d = _settle(_pad_scene(obj), steps=300)
    for _ in range(20):
        d.xfrc_applied[m.body("obj").id, :3] = (pull * direction[0], pull * direction[1], 0.0)
        mujoco.mj_step(m, d)
    vel = d.qvel[:2]
    assert np.dot(vel, direction) > 0.01  # it is sliding
    taxels, net = _read(m, d, TaxelGrid(4, 4, *PAD))
    shear = taxels[..., 1:].sum(axis=(0, 1))
    assert np.dot(shear, direction) > 0.9 * np.linalg.norm(shear)  # aligned with the slide
    assert np.linalg.norm(shear) == pytest.approx(0.5 * taxels[..., 0].sum(), rel=0.03)  # Coulomb: μ·N
    assert taxels[..., 0].sum() > 0.5 * G  # still pressing (the sudden pull makes the normal ring)
    assert net[1:] == pytest.approx(shear, abs=0.05)


def test_pad_frame_is_respected_when_rotated():
    """The same press on a pad turned upside down and rotated about z reads the same in the pad's own frame."""
    # pad rotated 180° about x: its +z (inward normal) now points down; the object hangs below, pressed up
    obj = ('<body name="obj" pos="0.006 0 0.089"><freejoint/><geom type="sphere" size="0.005" mass="0.3"/>'
           '</body>')
    m, d = _settle(_pad_scene(obj, pad_quat="0 1 0 0"), steps=600, force=(0.0, 0.0, 2 * 0.3 * G))
    grid = TaxelGrid(4, 4, *PAD)
    taxels, net = _read(m, d, grid)
    assert net[0] == pytest.approx(0.3 * G, rel=0.03)  # 2mg up minus mg weight
    cx, cy = _centre_of_pressure(taxels, grid)
    assert cx == pytest.approx(0.006, abs=5e-4)  # pad x is still world x under a rotation about x
    assert cy == pytest.approx(0.0, abs=5e-4)


def test_compiled_kernel_matches_reference():
    """The compiled kernel and the readable numpy model give the same taxels on random contact data."""
    rng = np.random.default_rng(0)
    grid = TaxelGrid(5, 3, *PAD)
    k = 6
    slots = np.zeros((k, CONTACT_SLOT_SIZE))
    slots[:, 0:3] = rng.normal(size=(k, 3)) * [3, 1, 1]
    slots[:, 3:6] = rng.uniform(-0.02, 0.02, (k, 3))
    n = rng.normal(size=(k, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    t = np.cross(n, rng.normal(size=(k, 3)))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    slots[:, 6:9], slots[:, 9:12] = n, t
    slots[-1] = 0.0  # an unused slot
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    pos = rng.normal(size=3) * 0.01
    ref = touch.taxels_from_contacts(slots.reshape(1, -1), pos[None], q[None], grid)[0]
    # kernel layout: one env, one sample, one pad; sensordata = slots then net
    sd = np.concatenate([slots.reshape(-1), [1.0, 2.0, 3.0]])[None, None]
    kernel = TouchKernel(grid, [0], 0, k * CONTACT_SLOT_SIZE, k * CONTACT_SLOT_SIZE)
    tax, net = kernel(sd, pos[None, None, None], q.reshape(1, 1, 1, 9), np.zeros(1, np.int64), np.ones((1, 1)))
    np.testing.assert_allclose(tax[0, 0, 0], ref, atol=1e-5)
    np.testing.assert_allclose(net[0, 0, 0], touch.net_force_in_pad_frame(np.array([1.0, 2.0, 3.0]), q), atol=1e-6)


def test_splat_conserves_force_and_centroid():
    rng = np.random.default_rng(1)
    grid = TaxelGrid(6, 4, *PAD)
    xy = rng.uniform([-0.01, -0.006], [0.01, 0.006], (10, 2))  # inside the outermost centres
    force = rng.uniform(0, 2, (10, 3))
    out = touch.splat(xy, force, grid)
    np.testing.assert_allclose(out.sum(axis=(0, 1)), force.sum(0), rtol=1e-9)
    cx = (out[..., 0].sum(1) * grid.centers_x).sum() / out[..., 0].sum()
    assert cx == pytest.approx((xy[:, 0] * force[:, 0]).sum() / force[:, 0].sum(), abs=1e-9)


def test_grid_limits():
    with pytest.raises(ValueError, match="between 1×1 and 64×64"):
        TaxelGrid(0, 4, *PAD)


def test_kernel_ignores_nonfinite_contacts():
    """A diverged sim's NaN contact data must not be used as an index (numba does not bounds-check)."""
    grid = TaxelGrid(4, 4, *PAD)
    sd = np.zeros((1, 1, 2 * CONTACT_SLOT_SIZE + 3))
    sd[0, 0, 0:12] = [1.0, 0, 0, np.nan, 0, 0, 0, 0, 1, 1, 0, 0]  # NaN position
    sd[0, 0, 12:24] = [2.0, 0, 0, 0.0, 0, 0, 0, 0, 1, 1, 0, 0]  # a valid contact at the pad centre
    kernel = TouchKernel(grid, [0], 0, 2 * CONTACT_SLOT_SIZE, 2 * CONTACT_SLOT_SIZE)
    tax, _ = kernel(sd, np.zeros((1, 1, 1, 3)), np.eye(3).reshape(1, 1, 1, 9), np.zeros(1, np.int64),
                    np.ones((1, 1)))
    assert np.isfinite(tax).all()
    assert tax[0, 0, 0, ..., 0].sum() == pytest.approx(2.0)


@pytest.mark.slow
def test_compiled_kernels_stay_in_bounds(tmp_path):
    """The env's compiled kernels under numba's bounds checking, over resets, touch, noise and a blow-up."""
    import os
    import subprocess
    import sys

    code = """
import numpy as np
from rho.tasks import make_env
from rho.tasks.lift_block import LiftBlockCfg, LiftBlockExpert
cfg = LiftBlockCfg(num_envs=3); cfg.cameras = {}; cfg.action.mode = "ee_delta"
cfg.touch.rows, cfg.touch.cols, cfg.touch.history, cfg.touch.taxel.dead_fraction = 5, 3, 2, 0.2
env = make_env("lift_block", cfg); ex = LiftBlockExpert(env)
env._sample_touch()  # before any step: recorded buffers are zeros
obs, _ = env.reset(seed=0)
for t in range(60):
    if t == 30:
        env.qvel[1] = np.nan
    obs, r, te, tr, info = env.step(ex.act(obs))
    ex.reset(np.flatnonzero(te | tr))
print("ok")
"""
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
