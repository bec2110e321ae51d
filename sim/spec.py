"""The observation spec: the one declaration of observation keys that envs, dataset writer, policy and evaluator share.

Every observation is a dict of named arrays with a leading batch dimension `n` (number of environments). Keys:

    joint_pos        (n, 14)              rad, gripper as opening in [0, 1] — ALOHA's qpos layout, per arm:
                                          waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate, gripper
    joint_vel        (n, 14)              rad/s, gripper opening rate in 1/s
    ee_pose          (n, 2, 7)            tool-centre-point position (m, world) and quaternion (w, x, y, z), per arm
    touch_<pad>      (n, h, r, c, 3)      N; taxel grid of pad <pad> (left_a, left_b, right_a, right_b), channels
                                          (normal, shear_x, shear_y) in the pad frame; h most recent samples, oldest
                                          first, at the touch rate
    touch_net_<pad>  (n, 3)               N; net pad force (normal, shear_x, shear_y)
    rgb_<cam>        (n, H, W, 3) uint8   camera image; cams: cam_high, cam_left_wrist, cam_right_wrist (, cam_low)
    depth_<cam>      (n, H, W) float32    m, distance along the optical axis (only when depth is enabled)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from gymnasium import spaces

Group = Literal["proprio", "touch", "camera", "task"]


@dataclass(frozen=True)
class ObsKey:
    """One observation entry, per environment (the batch dimension is not part of `shape`)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name
    unit: str  # SI unit, or "1" for dimensionless, "rgb" for 8-bit colour
    rate_hz: float  # how often a new value is sampled
    group: Group
    description: str = ""
    low: float = -np.inf
    high: float = np.inf


@dataclass(frozen=True)
class ObservationSpec:
    """An ordered set of `ObsKey`s with checks and conversions."""

    keys: tuple[ObsKey, ...]

    def __getitem__(self, name: str) -> ObsKey:
        for k in self.keys:
            if k.name == name:
                return k
        raise KeyError(f"no observation {name!r}; keys: {self.names}")

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.keys]

    def group(self, group: Group) -> list[ObsKey]:
        return [k for k in self.keys if k.group == group]

    def space(self) -> spaces.Dict:
        """Gymnasium space of one environment's observation."""
        return spaces.Dict({k.name: spaces.Box(k.low, k.high, k.shape, np.dtype(k.dtype)) for k in self.keys})

    def check(self, obs: dict[str, np.ndarray], batch: int | None = None) -> list[str]:
        """Problems of a (batched) observation against the spec: missing/extra keys, shapes, dtypes, NaN/inf."""
        problems = [f"missing key {n!r}" for n in self.names if n not in obs]
        problems += [f"unexpected key {n!r}" for n in obs if n not in self.names]
        for k in self.keys:
            if k.name not in obs:
                continue
            v = np.asarray(obs[k.name])
            lead = v.shape[: v.ndim - len(k.shape)]
            if v.shape[len(lead):] != k.shape or (batch is not None and lead != (batch,)):
                want = ((batch,) if batch is not None else ("n",)) + k.shape
                problems.append(f"{k.name}: expected shape {want}, got {v.shape}")
            if v.dtype != np.dtype(k.dtype):
                problems.append(f"{k.name}: expected dtype {k.dtype}, got {v.dtype}")
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                problems.append(f"{k.name}: contains NaN or inf")
        return problems

    def to_json(self) -> str:
        return json.dumps([asdict(k) for k in self.keys], default=float)

    @classmethod
    def from_json(cls, text: str) -> ObservationSpec:
        return cls(tuple(ObsKey(**{**d, "shape": tuple(d["shape"])}) for d in json.loads(text)))
