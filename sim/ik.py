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


def rot6_from_mat(mat: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) → the 6-D rotation representation (..., 6): the first two columns, stacked
    (x axis then y axis of the rotated frame, world coordinates). Continuous over SO(3), unlike quaternions, whose
    double cover flips sign along a trajectory: what a regressed action should use (Zhou et al., CVPR 2019)."""
    return np.concatenate([mat[..., :, 0], mat[..., :, 1]], axis=-1)


def mat_from_rot6(r6: np.ndarray) -> np.ndarray:
    """(..., 6) → rotation matrices (..., 3, 3) by Gram-Schmidt: the x axis normalized, the y axis made orthogonal
    to it and normalized, z = x × y. Any finite input with non-parallel halves maps to a rotation."""
    a, b = r6[..., :3], r6[..., 3:]
    x = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b - np.sum(x * b, -1, keepdims=True) * x
    y = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def mat_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (rad, world) taking rotation matrix `current` (..., 3, 3) to `target`: the log map of
    target · currentᵀ (exact for angles below π)."""
    r = target @ np.swapaxes(current, -1, -2)
    v = 0.5 * np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    cos = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    sin = np.linalg.norm(v, axis=-1)
    angle = np.arctan2(sin, cos)
    scale = np.where(sin > 1e-9, angle / np.maximum(sin, 1e-12), 1.0)
    return v * scale[..., None]


def quat_to_mats(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (w, x, y, z) → (..., 3, 3) rotation matrices."""
    w, x, y, z = np.moveaxis(np.asarray(q, float), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


def joint_ee_state(joint_pos: np.ndarray, ee_pose: np.ndarray) -> np.ndarray:
    """The proprio of a policy that acts in ee_pose: joint positions (..., J) then, per arm, the measured TCP
    position (m, world) and its 6-D rotation (`rot6_from_mat`) from `ee_pose` (..., arms, 7) (position, quaternion
    w, x, y, z): (..., J + 9·arms), float32. Quaternions are turned into the continuous 6-D form first."""
    pose = np.asarray(ee_pose, np.float64)
    parts = np.concatenate([pose[..., :3], rot6_from_mat(quat_to_mats(pose[..., 3:]))], -1)
    flat = parts.reshape(*parts.shape[:-2], -1)
    return np.concatenate([np.asarray(joint_pos, np.float32), flat.astype(np.float32)], -1)
