"""The in-memory episode: what datagen records, what the HDF5 writer stores, what importers produce and what the
policy trains on.

Alignment (robomimic's): `obs[k][t]` is what the robot saw when it took `actions[t]`; `rewards[t]` and `dones[t]`
follow that action; `states[t]` is the full simulator state at `obs[k][t]`. Lengths are all `T`.

Actions (format v2): `actions` are what a policy trains on, absolute joint targets in the env's `joint_pos` layout
(per arm: 6 joint targets in rad, gripper opening in [0, 1]) — for sim demos the servo targets the expert's command
produced, for real data the recorded targets; `expert_actions` (sim demos) are the expert's own command in its env
action mode (`ee_delta` for the scripted experts), None where there is none.

Legend: T steps; A action dim; S touch samples per control step; r, c taxel rows/cols; H, W image size.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Episode:
    """One demonstration. `meta` holds scalar/JSON-able metadata (seed, task, instruction, randomization, ...)."""

    obs: dict[str, np.ndarray]  # key → (T, ...) e.g. rgb_cam_high (T, H, W, 3) uint8, touch_left_a (T, S, r, c, 3)
    actions: np.ndarray  # (T, A) float32: joint targets (joint_pos layout), the training action
    rewards: np.ndarray  # (T,) float32
    dones: np.ndarray  # (T,) uint8, 1 on the last step
    states: dict[str, np.ndarray] = field(default_factory=dict)  # key → (T, ...), e.g. "sim": (T, nstate) float64
    initial_state: dict[str, np.ndarray] = field(default_factory=dict)  # key → (...), e.g. "sim": (nstate,)
    success: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    expert_actions: np.ndarray | None = None  # (T, A') float32: the expert's own command (sim demos)
    # per-step flags stored as the demo's own datasets, e.g. `rho online`'s "intervention" (T,) uint8: 1 where a
    # corrector (not the policy) drove the step, and "controller" (T,) uint8: 0 policy, 1 corrector
    step_info: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.actions.shape[0])

    def validate(self) -> list[str]:
        """Length and finiteness problems, named by key."""
        t = self.num_samples
        out = []
        for name, arr in [*(("obs/" + k, v) for k, v in self.obs.items()), ("rewards", self.rewards),
                          ("dones", self.dones), *(("states/" + k, v) for k, v in self.states.items()),
                          *((("expert_actions", self.expert_actions),) if self.expert_actions is not None else ()),
                          *self.step_info.items()]:
            if len(arr) != t:
                out.append(f"{name}: {len(arr)} steps, expected {t} (the number of actions)")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                out.append(f"{name}: contains NaN or inf")
        return out


def meta_to_attrs(meta: dict[str, Any]) -> dict[str, Any]:
    """HDF5 attribute values: scalars and strings as they are, everything else as JSON."""
    out = {}
    for k, v in meta.items():
        if isinstance(v, (str, bool, int, float, np.integer, np.floating)) and v is not None:
            out[k] = v
        else:
            out[k] = json.dumps(v, default=_json_default)
    return out


def attrs_to_meta(attrs) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, str) and v[:1] in "[{":
            with contextlib.suppress(json.JSONDecodeError):
                v = json.loads(v)
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x)}")
