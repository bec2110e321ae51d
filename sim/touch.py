"""Taxel model: contact points and forces on a finger pad → a grid of normal force and 2-D shear per taxel.

Why not MuJoCo's built-in `<tactile>` sensor: in MuJoCo 3.17 it reports a penetration-based pseudo-pressure
(depth / (0.05 − depth), dimensionless) and the *unsigned* relative sliding speed per vertex (m/s), not forces in
newtons and not signed shear. We need newtons and the shear direction, and the same model must run on every
backend (Isaac Lab's TacSL is PhysX-only), so the model below works from contact data any engine provides: the
contact point, its normal and the contact force. On the MuJoCo backend these come from the built-in `<contact>`
sensor (computed in C, batched), so the Python side is one vectorised pass per touch sample.

Pad frame (see `rho.assets.robots.base.FingerPadSpec`): origin at the pad face centre, +z the inward normal, +x
distal along the finger, +y = z × x. Taxel rows index x (row 0 nearest the finger root), columns index y.

Per taxel, three channels in newtons:
    0: normal force, ≥ 0 (the object pressing into the pad)
    1: shear along pad +x, 2: shear along pad +y — the tangential force the object exerts on the pad, so an object
       sliding towards +x drags the pad towards +x and reads positive.

Each contact force is spread onto the four nearest taxel centres with bilinear weights (a hat function per axis),
which conserves the total force exactly and keeps the centre of pressure at the contact point; contacts beyond the
outermost taxel centres land on the edge taxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rho.assets.mjcf import CONTACT_SLOT_SIZE


@dataclass(frozen=True)
class TaxelGrid:
    """Geometry of one pad's taxel grid."""

    rows: int  # taxels along pad x (distal)
    cols: int  # taxels along pad y
    length: float  # pad extent along x (m)
    width: float  # pad extent along y (m)

    def __post_init__(self) -> None:
        if not (1 <= self.rows <= 64 and 1 <= self.cols <= 64):
            raise ValueError(f"taxel grid must be between 1×1 and 64×64, got {self.rows}×{self.cols}")

    @property
    def centers_x(self) -> np.ndarray:
        """(rows,) taxel centre x in the pad frame (m)."""
        pitch = self.length / self.rows
        return -self.length / 2 + pitch * (np.arange(self.rows) + 0.5)

    @property
    def centers_y(self) -> np.ndarray:
        """(cols,) taxel centre y in the pad frame (m)."""
        pitch = self.width / self.cols
        return -self.width / 2 + pitch * (np.arange(self.cols) + 0.5)


def _hat_weights(coord: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Bilinear (hat) weights of points on a 1-D lattice of centres: (..., k) → (..., k, n), rows sum to 1."""
    if len(centers) == 1:
        return np.ones((*coord.shape, 1), coord.dtype)
    pitch = centers[1] - centers[0]
    idx = np.minimum(np.maximum((coord - centers[0]) / pitch, 0.0), len(centers) - 1.0)
    return np.maximum(0.0, 1.0 - np.abs(idx[..., None] - np.arange(len(centers), dtype=coord.dtype)))


def contacts_to_pad_frame(slots: np.ndarray, pad_pos: np.ndarray, pad_mat: np.ndarray) -> tuple[np.ndarray, ...]:
    """Express MuJoCo contact-sensor slots in each pad's frame.

    Args:
      slots: (*b, k, 12) per contact: force in the contact frame (normal, tangent1, tangent2) acting on the other
        body (N), position (world, m), normal (world, from pad to the other geom), tangent1 (world). Unused slots
        are all zero.
      pad_pos: (*b, 3) pad frame origin in world (m).
      pad_mat: (*b, 3, 3) pad frame rotation, columns are the pad axes in world.

    Returns:
      xy: (*b, k, 2) contact location in the pad plane (m); force: (*b, k, 3) force on the pad in pad axes
      as (normal, shear_x, shear_y) in N, normal ≥ 0.
    """
    assert slots.shape[-1] == CONTACT_SLOT_SIZE, slots.shape
    f_c, pos, n, t1 = slots[..., 0:3], slots[..., 3:6], slots[..., 6:9], slots[..., 9:12]
    # t2 = n × t1, written out: np.cross costs more than the rest of the model on small batches
    t2 = np.stack([n[..., 1] * t1[..., 2] - n[..., 2] * t1[..., 1], n[..., 2] * t1[..., 0] - n[..., 0] * t1[..., 2],
                   n[..., 0] * t1[..., 1] - n[..., 1] * t1[..., 0]], axis=-1)
    f_on_other = f_c[..., 0:1] * n + f_c[..., 1:2] * t1 + f_c[..., 2:3] * t2  # (*b, k, 3) world
    # world → pad for row vectors: v_pad = v @ R; the pad feels the reaction, −f_on_other
    f_pad = f_on_other @ pad_mat
    rel = (pos - pad_pos[..., None, :]) @ pad_mat
    force = np.stack([np.maximum(f_pad[..., 2], 0.0), -f_pad[..., 0], -f_pad[..., 1]], axis=-1)
    return rel[..., :2], force


def splat(xy: np.ndarray, force: np.ndarray, grid: TaxelGrid) -> np.ndarray:
    """Spread point forces onto the taxel grid: (*b, k, 2), (*b, k, 3) → (*b, rows, cols, 3) in N."""
    wr = _hat_weights(xy[..., 0], grid.centers_x)  # (*b, k, rows)
    wc = _hat_weights(xy[..., 1], grid.centers_y)  # (*b, k, cols)
    per_col = (wc[..., :, :, None] * force[..., :, None, :]).reshape(*force.shape[:-1], -1)  # (*b, k, cols*3)
    out = np.swapaxes(wr, -1, -2) @ per_col  # (*b, rows, cols*3)
    return out.reshape(*out.shape[:-1], grid.cols, 3)


def taxels_from_contacts(
    sensordata: np.ndarray, pad_pos: np.ndarray, pad_mat: np.ndarray, grid: TaxelGrid
) -> np.ndarray:
    """The whole model: contact-sensor slots (*b, k*12) of each pad → taxel readings (*b, rows, cols, 3) in N."""
    slots = sensordata.reshape(*sensordata.shape[:-1], -1, CONTACT_SLOT_SIZE)
    xy, force = contacts_to_pad_frame(slots, pad_pos, pad_mat)
    return splat(xy, force, grid)


def net_force_in_pad_frame(net_world: np.ndarray, pad_mat: np.ndarray) -> np.ndarray:
    """MuJoCo net-force sensor (force on the other bodies, world) → (normal, shear_x, shear_y) on the pad (N)."""
    f = (net_world[..., None, :] @ pad_mat)[..., 0, :]  # force on the other bodies, pad axes
    return np.stack([np.maximum(f[..., 2], 0.0), -f[..., 0], -f[..., 1]], axis=-1)


# ---------------------------------------------------------------------------------------------------------------
# Compiled kernel: the same model in one pass per sample, for the env's hot loop. `taxels_from_contacts` above is
# the readable reference; tests check the two agree. Numba compiles on first use (cached under __pycache__).
try:
    import numba

    _njit = numba.njit(cache=True, fastmath=False, nogil=True)
except ImportError:  # pragma: no cover - numba is a core dependency; keep the model usable without it
    numba = None

    def _njit(fn):
        return fn


@_njit
def _touch_kernel(sensordata, site_xpos, site_xmat, samples, pad_site, slot_adr, slot_width, net_adr, gain, cx, cy,
                  taxels, net):  # pragma: no cover - jitted
    """Taxel model straight from MuJoCo's recorded arrays, written in place.

    sensordata (n, t, nsensordata), site_xpos (n, t, nsite, 3), site_xmat (n, t, nsite, 9) row-major; samples (s,)
    indices into t; pad_site (p,) site ids; the pads' slot data start at `slot_adr`, `slot_width` numbers per pad,
    their net forces (3 each) at `net_adr`; gain (n, p); taxel centres cx (r,), cy (c,).
    Outputs taxels (n, s, p, r, c, 3) and net (n, s, p, 3) in N.
    """
    n_env, n_s, n_pad = taxels.shape[0], taxels.shape[1], taxels.shape[2]
    nr, nc = cx.shape[0], cy.shape[0]
    k_slots = slot_width // 12
    taxels[:] = 0.0
    for e in range(n_env):
        for si in range(n_s):
            t = samples[si]
            for p in range(n_pad):
                m = site_xmat[e, t, pad_site[p]]
                g = gain[e, p]
                na = net_adr + 3 * p
                nx, ny, nz = sensordata[e, t, na], sensordata[e, t, na + 1], sensordata[e, t, na + 2]
                # net force on the other bodies → pad axes (columns of m); the pad feels the reaction
                fx = nx * m[0] + ny * m[3] + nz * m[6]
                fy = nx * m[1] + ny * m[4] + nz * m[7]
                fz = nx * m[2] + ny * m[5] + nz * m[8]
                net[e, si, p, 0] = max(fz, 0.0) * g
                net[e, si, p, 1] = -fx * g
                net[e, si, p, 2] = -fy * g
                if slot_width == 0:
                    continue
                ox, oy, oz = site_xpos[e, t, pad_site[p], 0], site_xpos[e, t, pad_site[p], 1], \
                    site_xpos[e, t, pad_site[p], 2]
                base = slot_adr + slot_width * p
                for k in range(k_slots):
                    a = base + 12 * k
                    s0, s1, s2 = sensordata[e, t, a], sensordata[e, t, a + 1], sensordata[e, t, a + 2]
                    if s0 == 0.0 and s1 == 0.0 and s2 == 0.0:  # unused slot
                        continue
                    n0, n1, n2 = sensordata[e, t, a + 6], sensordata[e, t, a + 7], sensordata[e, t, a + 8]
                    t0, t1, t2 = sensordata[e, t, a + 9], sensordata[e, t, a + 10], sensordata[e, t, a + 11]
                    u0, u1, u2 = n1 * t2 - n2 * t1, n2 * t0 - n0 * t2, n0 * t1 - n1 * t0  # n × t1
                    w0 = s0 * n0 + s1 * t0 + s2 * u0
                    w1 = s0 * n1 + s1 * t1 + s2 * u1
                    w2 = s0 * n2 + s1 * t2 + s2 * u2
                    fpx = w0 * m[0] + w1 * m[3] + w2 * m[6]
                    fpy = w0 * m[1] + w1 * m[4] + w2 * m[7]
                    fpz = w0 * m[2] + w1 * m[5] + w2 * m[8]
                    d0 = sensordata[e, t, a + 3] - ox
                    d1 = sensordata[e, t, a + 4] - oy
                    d2 = sensordata[e, t, a + 5] - oz
                    x = d0 * m[0] + d1 * m[3] + d2 * m[6]
                    y = d0 * m[1] + d1 * m[4] + d2 * m[7]
                    f0, f1, f2 = max(fpz, 0.0) * g, -fpx * g, -fpy * g
                    if not (np.isfinite(x) and np.isfinite(y) and np.isfinite(fpx + fpy + fpz)):
                        continue  # a diverged sim: never index with NaN (the env resets it this step)
                    ix = 0.0 if nr == 1 else min(max((x - cx[0]) / (cx[1] - cx[0]), 0.0), nr - 1.0)
                    iy = 0.0 if nc == 1 else min(max((y - cy[0]) / (cy[1] - cy[0]), 0.0), nc - 1.0)
                    r0, c0 = min(int(ix), nr - 1), min(int(iy), nc - 1)
                    ar, ac = ix - r0, iy - c0
                    for dr in range(2):
                        r = r0 + dr
                        wr = 1.0 - ar if dr == 0 else ar
                        if r >= nr or wr == 0.0:
                            continue
                        for dc in range(2):
                            c = c0 + dc
                            wc = 1.0 - ac if dc == 0 else ac
                            if c >= nc or wc == 0.0:
                                continue
                            w = wr * wc
                            taxels[e, si, p, r, c, 0] += w * f0
                            taxels[e, si, p, r, c, 1] += w * f1
                            taxels[e, si, p, r, c, 2] += w * f2


class TouchKernel:
    """The compiled taxel model bound to one scene layout (pad sites, sensor addresses, grid)."""

    def __init__(self, grid: TaxelGrid, pad_site: np.ndarray, slot_adr: int, slot_width: int, net_adr: int):
        self.grid = grid
        self.cx, self.cy = grid.centers_x.astype(np.float64), grid.centers_y.astype(np.float64)
        self.pad_site = np.asarray(pad_site, np.int64)
        self.slot_adr, self.slot_width, self.net_adr = int(slot_adr), int(slot_width), int(net_adr)

    def __call__(self, sensordata: np.ndarray, site_xpos: np.ndarray, site_xmat: np.ndarray, samples: np.ndarray,
                 gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """sensordata (n, t, nsd), site_xpos (n, t, nsite, 3), site_xmat (n, t, nsite, 9), samples (s,) indices
        into t, gain (n, pads) → taxels (n, s, pads, r, c, 3) and net (n, s, pads, 3), float32, N."""
        n, npad = sensordata.shape[0], len(self.pad_site)
        taxels = np.empty((n, len(samples), npad, self.grid.rows, self.grid.cols, 3), np.float32)
        net = np.empty((n, len(samples), npad, 3), np.float32)
        _touch_kernel(sensordata, site_xpos, site_xmat, samples, self.pad_site, self.slot_adr, self.slot_width,
                      self.net_adr, gain, self.cx, self.cy, taxels, net)
        return taxels, net
