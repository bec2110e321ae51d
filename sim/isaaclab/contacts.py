"""MuJoCo's `<contact>` sensor, recomputed from a contact list — how touch works on backends without it.

The taxel model (`rho.sim.touch`) reads, per finger pad, the slots of two MuJoCo contact sensors:
``<pad>/contacts`` (``num`` strongest contacts, ``data="force pos normal tangent"``, ``reduce="maxforce"``) and
``<pad>/net`` (``data="force"``, ``reduce="netforce"``). MuJoCo-Warp (Newton's MuJoCo solver, the Isaac Lab
backend) has no such sensor, but it has the same contact list MuJoCo has: per contact the two geoms, the point,
the contact frame and the constraint force. `fill_contact_sensors` rebuilds the sensors' values from that list
with MuJoCo's conventions, so the same taxel model, gains and observation keys work on every backend:

- force (N): the contact force in the contact frame (normal first, then the two tangents), as
  ``mj_contactForce`` returns it; normal and tangent are the frame's rows. When the pad is the contact's *second*
  geom, normal and tangent are negated (so the normal points away from the pad, as for a first geom); the
  force's components are kept, which makes its world vector the force on the *other* body, as MuJoCo does;
- ``reduce="maxforce"``: the ``num`` contacts with the largest force magnitude, strongest first; unused slots 0;
- ``reduce="netforce"``: the sum of all the pad's contact forces as world vectors, in the world frame.

Everything is numpy on (world, contact) arrays; a test checks it against MuJoCo's own sensor values.
"""

from __future__ import annotations

import numpy as np

SLOT = 12  # force(3) pos(3) normal(3) tangent(3), the layout of rho.assets.mjcf.CONTACT_SLOT_SIZE


def fill_contact_sensors(out: np.ndarray, world: np.ndarray, geom: np.ndarray, pos: np.ndarray, frame: np.ndarray,
                         force: np.ndarray, pad_geoms: np.ndarray, slots: int, contacts_adr: int,
                         net_adr: int) -> None:
    """Write the pads' contact-sensor values into `out` (nworld, nsensordata), in place.

    world (nc,) int: the world of each active contact; geom (nc, 2) int: its two geoms; pos (nc, 3) m: its point;
    frame (nc, 9): its frame (rows: normal, tangent, bitangent); force (nc, 3) N: its force in the contact frame.
    pad_geoms (pads,): the pads' geom ids, in sensor order; `slots` contacts per pad; the contacts sensors start at
    `contacts_adr` (pads × slots × 12 values) and the net sensors at `net_adr` (pads × 3).
    """
    npads = len(pad_geoms)
    out[:, contacts_adr:contacts_adr + npads * slots * SLOT] = 0.0
    out[:, net_adr:net_adr + 3 * npads] = 0.0
    if len(world) == 0:
        return
    frame = frame.reshape(-1, 3, 3)
    mag = np.linalg.norm(force, axis=1)
    for p, g in enumerate(pad_geoms):
        first, second = geom[:, 0] == g, geom[:, 1] == g
        hit = np.flatnonzero(first | second)
        if hit.size == 0:
            continue
        sign = np.where(first[hit], 1.0, -1.0)[:, None]
        normal, tangent = frame[hit, 0] * sign, frame[hit, 1] * sign
        f = force[hit]
        fworld = f[:, :1] * normal + f[:, 1:2] * tangent + f[:, 2:3] * (frame[hit, 2] * sign)
        w = world[hit]
        np.add.at(out, (w[:, None], net_adr + 3 * p + np.arange(3)[None]), fworld)
        # strongest first within each world: sort by (world, -|force|), stable for ties
        order = np.lexsort((-mag[hit], w))
        w_sorted = w[order]
        starts = np.searchsorted(w_sorted, w_sorted, side="left")
        rank = np.arange(len(order)) - starts
        keep = rank < slots
        sel, r, ws = order[keep], rank[keep], w_sorted[keep]
        vals = np.concatenate([f[sel], pos[hit][sel], normal[sel], tangent[sel]], axis=1)  # (k, 12)
        base = contacts_adr + (p * slots + r) * SLOT
        out[ws[:, None], base[:, None] + np.arange(SLOT)[None]] = vals
