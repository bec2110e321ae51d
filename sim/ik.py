"""Differential inverse kinematics (damped least squares), batched over environments."""

from __future__ import annotations

import numpy as np


def dls_step(jac: np.ndarray, err: np.ndarray, damping: float = 0.05) -> np.ndarray:
    """Joint displacement that reduces a task-space error.

    Args:
      jac: (n, 6, d) stacked translational (rows 0-2, m/rad) and rotational (rows 3-5, rad/rad) Jacobians of the
        tool point with respect to the d arm joints, world frame.
      err: (n, 6) desired displacement: position (m) and rotation vector (rad), world frame.
      damping: λ of (J Jᵀ + λ² I)⁻¹, keeps steps bounded near singularities.

    Returns:
      (n, d) joint displacement (rad).
    """
    jjt = jac @ np.swapaxes(jac, -1, -2)  # (n, 6, 6)
    reg = jjt + (damping**2) * np.eye(6)
    return np.einsum("nij,ni->nj", jac, np.linalg.solve(reg, err[..., None])[..., 0])


def quat_error(q_target: np.ndarray, q_current: np.ndarray) -> np.ndarray:
    """Rotation vector (rad, world) taking `q_current` to `q_target`; quaternions (..., 4) as (w, x, y, z)."""
    w1, v1 = q_current[..., :1], q_current[..., 1:]
    w2, v2 = q_target[..., :1], q_target[..., 1:]
    # q_err = q_target ⊗ conj(q_current)
    w = w2 * w1 + np.sum(v2 * v1, -1, keepdims=True)
    v = -w2 * v1 + w1 * v2 - np.cross(v2, v1)
    v = np.where(w < 0, -v, v)
    w = np.abs(w)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2 * np.arctan2(norm, w)
    return np.where(norm > 1e-12, v / np.maximum(norm, 1e-12) * angle, 2 * v)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b of (..., 4) quaternions (w, x, y, z)."""
    w1, v1, w2, v2 = a[..., :1], a[..., 1:], b[..., :1], b[..., 1:]
    return np.concatenate([w1 * w2 - np.sum(v1 * v2, -1, keepdims=True),
                           w1 * v2 + w2 * v1 + np.cross(v1, v2)], axis=-1)


def axis_angle_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """Rotation vector (..., 3) in rad → quaternion (..., 4) as (w, x, y, z)."""
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    half = angle / 2
    scale = np.where(angle > 1e-12, np.sin(half) / np.maximum(angle, 1e-12), 0.5)
    return np.concatenate([np.cos(half), rotvec * scale], axis=-1)
