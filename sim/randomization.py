"""Domain randomization from distributions in config.

Every draw comes from the episode's own `numpy.random.Generator` (never global state), so a seeded reset is
reproducible and the values drawn for each episode are returned to be recorded with the data.

Physics and visual parameters are written per environment into MuJoCo's batched model fields
(`mujoco.batch.Batch.expand`), always as a scale or offset of the nominal value, so ranges compose with any asset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass
class Range:
    """A scalar distribution: uniform or log-uniform on [low, high]; low == high means a constant."""

    low: float = 1.0
    high: float = 1.0
    kind: Literal["uniform", "loguniform"] = "uniform"

    def validate(self) -> list[str]:
        if self.low > self.high:
            return [f"low ({self.low}) must be <= high ({self.high})"]
        if self.kind == "loguniform" and self.low <= 0:
            return [f"loguniform needs low > 0, got {self.low}"]
        return []

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...] | None = None) -> np.ndarray | float:
        if self.low == self.high:
            return np.full(size, self.low) if size is not None else float(self.low)
        if self.kind == "loguniform":
            out = np.exp(rng.uniform(np.log(self.low), np.log(self.high), size))
        else:
            out = rng.uniform(self.low, self.high, size)
        return out if size is not None else float(out)


def _const(v: float) -> Range:
    return Range(v, v)


@dataclass
class PhysicsRandCfg:
    """Per-episode physics parameters, as scales of the nominal model values."""

    friction_scale: Range = field(default_factory=lambda: Range(0.8, 1.2))  # sliding friction of props and pads
    mass_scale: Range = field(default_factory=lambda: Range(0.8, 1.25, "loguniform"))  # prop masses
    damping_scale: Range = field(default_factory=lambda: Range(0.8, 1.2))  # passive joint damping
    actuator_gain_scale: Range = field(default_factory=lambda: Range(0.9, 1.1))  # servo kp (and matching bias)
    object_scale: Range = field(default_factory=lambda: _const(1.0))  # prop geometry size (uniform scale)


@dataclass
class VisualRandCfg:
    """Per-episode rendering parameters."""

    light_intensity: Range = field(default_factory=lambda: Range(0.4, 0.8))  # diffuse of the top light
    light_dir_jitter: Range = field(default_factory=lambda: Range(0.0, 0.3))  # tilt of the light direction (rad)
    color_jitter: float = 0.1  # max absolute RGB change of props and table (0..1 per channel)
    camera_pos_jitter: float = 0.01  # max offset of each fixed camera per axis (m)
    camera_rot_jitter: float = 0.02  # max rotation of each fixed camera about a random axis (rad)


@dataclass
class SensorRandCfg:
    """Per-episode sensor calibration."""

    touch_gain: Range = field(default_factory=lambda: Range(0.9, 1.1))  # multiplicative gain per pad
    noise_scale: Range = field(default_factory=lambda: Range(0.5, 1.5))  # factor on every sensor's noise std
    extra_latency_s: Range = field(default_factory=lambda: Range(0.0, 0.02))  # added to every sensor's latency (s)


@dataclass
class RandomizationCfg:
    """All domain randomization; `enabled=false` gives the nominal scene."""

    enabled: bool = True
    physics: PhysicsRandCfg = field(default_factory=PhysicsRandCfg)
    visual: VisualRandCfg = field(default_factory=VisualRandCfg)
    sensor: SensorRandCfg = field(default_factory=SensorRandCfg)
    init_joint_noise: float = 0.02  # std of the robot's initial joint angles around home (rad)

    def validate(self) -> list[str]:
        out = []
        for group in ("physics", "sensor"):
            for name, value in vars(getattr(self, group)).items():
                out += [f"{group}.{name}: {p}" for p in value.validate()]
        if self.sensor.extra_latency_s.low < 0:
            out.append(f"sensor.extra_latency_s: must be >= 0 s, got low={self.sensor.extra_latency_s.low}")
        if self.sensor.noise_scale.low < 0:
            out.append(f"sensor.noise_scale: must be >= 0, got low={self.sensor.noise_scale.low}")
        for name, value in vars(self.visual).items():
            if isinstance(value, Range):
                out += [f"visual.{name}: {p}" for p in value.validate()]
            elif value < 0:
                out.append(f"visual.{name}: must be >= 0, got {value}")
        return out


def random_rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """A rotation matrix about a uniformly random axis by an angle uniform in [0, max_angle] (rad)."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis) + 1e-12
    angle = rng.uniform(0.0, max_angle) if max_angle > 0 else 0.0
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) → quaternion (w, x, y, z)."""
    import mujoco

    q = np.empty(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(m, dtype=np.float64).reshape(9))
    return q


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) → rotation matrix (3, 3)."""
    import mujoco

    m = np.empty(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, dtype=np.float64))
    return m.reshape(3, 3)
