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
    idx = np.clip((coord - centers[0]) / pitch, 0.0, len(centers) - 1.0)
    return np.maximum(0.0, 1.0 - np.abs(idx[..., None] - np.arange(len(centers))))


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
    t2 = np.cross(n, t1)
    f_on_other = f_c[..., 0:1] * n + f_c[..., 1:2] * t1 + f_c[..., 2:3] * t2  # (*b, k, 3) world
    # world → pad: v_pad = R^T v; the pad feels the reaction, −f_on_other
    f_pad = -np.einsum("...ji,...kj->...ki", pad_mat, f_on_other)
    rel = np.einsum("...ji,...kj->...ki", pad_mat, pos - pad_pos[..., None, :])
    force = np.stack([np.maximum(-f_pad[..., 2], 0.0), f_pad[..., 0], f_pad[..., 1]], axis=-1)
    return rel[..., :2], force


def splat(xy: np.ndarray, force: np.ndarray, grid: TaxelGrid) -> np.ndarray:
    """Spread point forces onto the taxel grid: (*b, k, 2), (*b, k, 3) → (*b, rows, cols, 3) in N."""
    wr = _hat_weights(xy[..., 0], grid.centers_x)  # (*b, k, rows)
    wc = _hat_weights(xy[..., 1], grid.centers_y)  # (*b, k, cols)
    return np.einsum("...kr,...kc,...kd->...rcd", wr, wc, force)


def taxels_from_contacts(
    sensordata: np.ndarray, pad_pos: np.ndarray, pad_mat: np.ndarray, grid: TaxelGrid
) -> np.ndarray:
    """The whole model: contact-sensor slots (*b, k*12) of each pad → taxel readings (*b, rows, cols, 3) in N."""
    slots = sensordata.reshape(*sensordata.shape[:-1], -1, CONTACT_SLOT_SIZE)
    xy, force = contacts_to_pad_frame(slots, pad_pos, pad_mat)
    return splat(xy, force, grid)


def net_force_in_pad_frame(net_world: np.ndarray, pad_mat: np.ndarray) -> np.ndarray:
    """MuJoCo net-force sensor (force on the other bodies, world) → (normal, shear_x, shear_y) on the pad (N)."""
    f_pad = -np.einsum("...ji,...j->...i", pad_mat, net_world)
    return np.stack([np.maximum(-f_pad[..., 2], 0.0), f_pad[..., 0], f_pad[..., 1]], axis=-1)
