"""Compiled helpers for the env's per-step bookkeeping (numba): at one env per core the control step is short
enough that a dozen small numpy calls cost as much as the touch model. Each helper is one pass over the batch."""

from __future__ import annotations

import numpy as np

try:
    import numba

    _njit = numba.njit(cache=True, nogil=True)
except ImportError:  # pragma: no cover - numba is a core dependency
    def _njit(fn):
        return fn


@_njit
def apply_joint_action(action, low, high, ctrl_idx, scale, ctrl, clipped, strict):  # pragma: no cover - jitted
    """Validate a (n, d) action and write `ctrl[:, ctrl_idx] = clip(action) * scale`.

    Returns 0 when written; 1 when any value is NaN/inf and 2 when a value is out of range with `strict` — then
    nothing is written. `clipped` (n,) is set True where a value was out of range.
    """
    n, d = action.shape
    bad = False
    oor = False
    for i in range(n):
        clipped[i] = False
        for j in range(d):
            v = action[i, j]
            if not np.isfinite(v):
                bad = True
            elif v < low[j] or v > high[j]:
                clipped[i] = True
                oor = True
    if bad:
        return 1
    if oor and strict:
        return 2
    for i in range(n):
        for j in range(d):
            ctrl[i, ctrl_idx[j]] = min(max(action[i, j], low[j]), high[j]) * scale[j]
    return 0


@_njit
def check_state(qpos, qvel, warning, warning_ids, max_speed, failed):  # pragma: no cover - jitted
    """Mark envs whose state is NaN/inf, whose joints move faster than `max_speed`, or that MuJoCo reset after a
    bad qpos/qvel/qacc (its warning counters, which are cleared here so each event counts once)."""
    n = qpos.shape[0]
    for i in range(n):
        bad = False
        for j in range(qvel.shape[1]):
            v = qvel[i, j]
            if not (abs(v) <= max_speed):  # NaN fails the comparison
                bad = True
        for j in range(qpos.shape[1]):
            if not np.isfinite(qpos[i, j]):
                bad = True
        for w in warning_ids:
            if warning[i, w, 1] > 0:
                bad = True
                warning[i, w, 0] = 0
                warning[i, w, 1] = 0
        failed[i] = failed[i] or bad
