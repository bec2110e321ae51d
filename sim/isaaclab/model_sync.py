"""Host ↔ device writes for `IsaacLabBatch`: state, servo targets and per-world model parameters."""

from __future__ import annotations

import numpy as np


def write_state(b, ids: np.ndarray) -> None:
    """Host qpos/qvel → the solver's MuJoCo-Warp data (all worlds; the untouched ones are unchanged), warm-start
    of `ids` cleared."""
    d = b.mjw_data
    d.qpos.assign(b.qpos.astype(np.float32))
    d.qvel.assign(b.qvel.astype(np.float32))
    warm = d.qacc_warmstart.numpy()
    warm[ids] = 0.0
    d.qacc_warmstart.assign(warm)


def sync_newton_state(b) -> None:
    """MuJoCo-Warp data → Newton's state (joint_q with x, y, z, w quaternions, body poses), as the solver does
    after each step, so Isaac Lab's views and the next step start from what the env wrote."""
    nm = b._nm
    state = nm.get_state_0()
    b.solver._update_newton_state(b.newton_model, state, b.mjw_data, state_prev=state)


def write_ctrl(b) -> None:
    """Host ctrl (MuJoCo actuator order) → the solver's actuator inputs: Newton imports MJCF position servos as
    joint-target actuators (their ctrl is read from ``control.joint_target_q``), others read ``control.mujoco.ctrl``."""
    control = b._nm.get_control()
    if not hasattr(b, "_ctrl_map"):
        s = b.solver
        source = s.mjc_actuator_ctrl_source.numpy()
        idx = s.mjc_actuator_to_newton_idx.numpy()
        tq = s.mjc_actuator_to_newton_target_q_idx.numpy()
        axis = s.mjc_actuator_to_target_q_axis_idx.numpy()
        if ((source == 0) & ((idx < 0) | (tq < 0) | (axis >= 0))).any():
            raise RuntimeError("the isaaclab backend drives position servos on hinge/slide joints only; an actuator "
                               "imported as a velocity or ball-joint target")
        n_tq = control.joint_target_q.shape[0] // b.nsim
        b._ctrl_map = (np.flatnonzero(source == 0), tq[source == 0], np.flatnonzero(source == 1), idx[source == 1],
                       n_tq)
    act_t, tq, act_d, didx, n_tq = b._ctrl_map
    if len(act_t):
        target = control.joint_target_q.numpy().reshape(b.nsim, n_tq)
        target[:, tq] = b.ctrl[:, act_t]
        control.joint_target_q.assign(target.reshape(-1).astype(np.float32))
    if len(act_d):
        direct = control.mujoco.ctrl
        vals = direct.numpy().reshape(b.nsim, -1)
        vals[:, didx] = b.ctrl[:, act_d]
        direct.assign(vals.reshape(-1).astype(np.float32))


# model fields pushed per world; every other per-env change must stay at its nominal value on this backend
PER_WORLD = ("geom_friction", "body_mass", "body_inertia", "dof_damping", "dof_frictionloss", "actuator_gainprm",
             "actuator_biasprm")
VISUAL_ONLY = ("geom_rgba", "mat_rgba", "light_diffuse", "light_dir", "cam_pos", "cam_quat")  # rendering reads _models


def push_models(b, models) -> None:
    """Per-env MuJoCo model parameters → the solver's per-world MuJoCo-Warp model fields.

    Fields MuJoCo-Warp keeps per world (friction, masses, inertias, damping, frictionloss, servo gains, geom
    sizes) are copied. Collision bits are global in MuJoCo-Warp, so a geom a task switches off in some worlds
    (contype = conaffinity = 0, e.g. the other plug types' prongs) is shrunk to 1e-6 m with a zero bounding
    radius in those worlds instead — it keeps its body's mass and can touch nothing. Any other per-env change
    of a physics field raises, naming the field (visual fields are only read by the renderer, from the models).
    """
    import warp as wp

    nom, m = b.model, b.mjw_model
    gmap = b._geom_map  # our geom → solver geom (-1: not imported, visual only)
    g_ours = np.flatnonzero(gmap >= 0)
    g_theirs = gmap[g_ours]
    for field in ("geom_friction", "geom_size", "geom_rbound", "body_mass", "body_inertia", "dof_damping",
                  "dof_frictionloss", "actuator_gainprm", "actuator_biasprm"):
        arr = getattr(m, field, None)
        if arr is None or arr.ndim < 2 or arr.shape[0] != b.nsim:
            continue
        host = arr.numpy()
        for i, mi in enumerate(models):
            src = getattr(mi, field)
            if field.startswith("geom_"):
                vals = src[g_ours]
                if field in ("geom_size", "geom_rbound"):
                    off = (mi.geom_contype[g_ours] == 0) & (mi.geom_conaffinity[g_ours] == 0) & (
                        (nom.geom_contype[g_ours] != 0) | (nom.geom_conaffinity[g_ours] != 0))
                    vals = vals.copy()
                    vals[off] = 1e-6 if field == "geom_size" else 0.0
                host[i, g_theirs] = vals.reshape(host[i, g_theirs].shape)
            else:
                host[i] = src.reshape(host[i].shape)
        arr.assign(wp.array(host, dtype=arr.dtype, device=arr.device))
    for field in ("geom_solref", "geom_solimp", "geom_margin", "geom_gap", "dof_armature", "jnt_stiffness",
                  "body_pos", "body_quat", "geom_pos", "geom_quat", "eq_data"):
        for i, mi in enumerate(models):
            if not np.array_equal(getattr(mi, field), getattr(nom, field)):
                raise ValueError(f"env {i} changes model field {field!r}, which the isaaclab backend does not "
                                 "push per world; keep it nominal on this backend (or add it to push_models)")
