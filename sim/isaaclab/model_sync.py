"""Host ↔ device writes for `IsaacLabBatch`: state, servo targets and per-world model parameters."""

from __future__ import annotations

import numpy as np


def write_state(b, ids: np.ndarray) -> None:
    """Host qpos/qvel → the solver's MuJoCo-Warp data (all worlds; the untouched ones are unchanged), warm-start
    of `ids` cleared."""
    d = b.mjw_data
    d.qpos.assign(b.qpos.astype(np.float32))
    d.qvel.assign(b.qvel.astype(np.float32))
    write_eq_active(b)
    warm = d.qacc_warmstart.numpy()
    warm[ids] = 0.0
    d.qacc_warmstart.assign(warm)


def sync_newton_state(b) -> None:
    """MuJoCo-Warp data → Newton's state (joint_q with x, y, z, w quaternions, body poses), as the solver does
    after each step, so Isaac Lab's views and the next step start from what the env wrote."""
    nm = b._nm
    state = nm.get_state_0()
    b.solver._update_newton_state(b.newton_model, state, b.mjw_data, state_prev=state)


def write_eq_active(b) -> None:
    """Host eq_active (tasks switch welds and latches on and off) → MuJoCo-Warp's per-world flags."""
    if b.model.neq:
        flags = b.mjw_data.eq_active.numpy().copy()
        flags[:, b._eq_map] = b.eq_active.astype(bool)
        b.mjw_data.eq_active.assign(flags)


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
    write_eq_active(b)
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


# derived constants MuJoCo-Warp computes itself; never pushed
_DERIVED = {"actuator_acc0", "body_invweight0", "dof_invweight0", "body_subtreemass", "actuator_lengthrange"}
# physics fields that must stay nominal on this backend (global in MuJoCo-Warp)
_GLOBAL = ("geom_contype", "geom_conaffinity", "geom_condim", "geom_type", "jnt_type", "eq_type", "eq_obj1id",
           "eq_obj2id", "body_parentid")


def push_models(b, models) -> None:
    """Per-env MuJoCo model parameters → the solver's per-world MuJoCo-Warp model fields.

    Every field MuJoCo-Warp keeps per world (friction, masses, inertias, damping, gains, geom sizes and poses, body
    poses — BusyBox moves its modules per episode —, equality data, ...) is copied from each env's model. Collision
    bits are global in MuJoCo-Warp, so a geom a task switches off in some worlds (contype = conaffinity = 0, e.g.
    the other plug types' prongs) is shrunk to 1e-6 m with a zero bounding radius in those worlds instead: it keeps
    its body's mass and touches nothing. A per-env change of another global field raises, naming it.
    """
    import warp as wp

    nom, m = b.model, b.mjw_model
    if not hasattr(b, "_push_fields"):
        fields = []
        for name in dir(m):
            arr = getattr(m, name, None)
            ours = getattr(nom, name, None)
            if (name in _DERIVED or not hasattr(arr, "shape") or len(arr.shape) < 2 or arr.shape[0] != b.nsim
                    or not isinstance(ours, np.ndarray) or ours.ndim == 0 or ours.size == 0):
                continue
            kind = name.split("_")[0]
            emap = {"geom": b._geom_map, "site": b._site_map, "eq": b._eq_map}.get(kind)
            if emap is None and ours.shape[0] != arr.shape[1]:
                continue  # a field whose element count differs (e.g. a converted latch's eq row is fine: same count)
            fields.append((name, emap))
        b._push_fields = fields
        b._pushed = set()
        converted = [e for e in range(nom.neq) if nom.eq_type[e] == 2 and nom.eq_obj2id[e] < 0]  # latch → weld
        b._eq_keep = np.setdiff1d(np.arange(nom.neq), converted)
    for i, mi in enumerate(models):
        for name in _GLOBAL:
            if name in ("geom_contype", "geom_conaffinity"):
                continue
            if not np.array_equal(getattr(mi, name), getattr(nom, name)):
                raise ValueError(f"env {i} changes model field {name!r}, which is global in MuJoCo-Warp; keep it "
                                 "nominal on the isaaclab backend")
    for name, emap in b._push_fields:
        # only fields some env changes: the solver's own conversion stays in charge of everything else
        if all(np.array_equal(getattr(mi, name), getattr(nom, name)) for mi in models) and name not in b._pushed:
            continue
        b._pushed.add(name)
        arr = getattr(m, name)
        host = arr.numpy()
        width = int(np.prod(host.shape[2:])) if host.ndim > 2 else 1
        for i, mi in enumerate(models):
            src = getattr(mi, name).reshape(getattr(mi, name).shape[0], -1)
            dst = host[i].reshape(host.shape[1], -1) if width > 1 or host.ndim > 2 else host[i].reshape(-1, 1)
            if emap is None:
                dst[:, :src.shape[1]] = src[:, :dst.shape[1]]
            else:
                ok = np.flatnonzero(emap >= 0)
                if name.startswith("eq_"):
                    ok = np.intersect1d(ok, b._eq_keep)
                vals = src[ok].copy()
                if name in ("geom_size", "geom_rbound"):
                    off = (mi.geom_contype[ok] == 0) & (mi.geom_conaffinity[ok] == 0) & (
                        (nom.geom_contype[ok] != 0) | (nom.geom_conaffinity[ok] != 0))
                    vals[off] = 1e-6 if name == "geom_size" else 0.0
                dst[emap[ok], :vals.shape[1]] = vals[:, :dst.shape[1]]
        arr.assign(wp.array(host, dtype=arr.dtype, device=arr.device))
    _push_mocap(b, models)


def _push_mocap(b, models) -> None:
    """Newton turns jointless bodies on the world (arm bases, the BusyBox panel) into mocap bodies whose pose is
    MuJoCo-Warp *data*; a per-env body pose (BusyBox's layout) is written there."""
    mocap = np.flatnonzero(b.mjm.body_mocapid >= 0)
    if not len(mocap) or all(np.array_equal(mi.body_pos, b.model.body_pos) and
                             np.array_equal(mi.body_quat, b.model.body_quat) for mi in models):
        return
    ids = b.mjm.body_mocapid[mocap]
    pos, quat = b.mjw_data.mocap_pos.numpy().copy(), b.mjw_data.mocap_quat.numpy().copy()
    for i, mi in enumerate(models):
        pos[i, ids] = mi.body_pos[mocap]
        quat[i, ids] = mi.body_quat[mocap]
    b.mjw_data.mocap_pos.assign(pos.astype(np.float32))
    b.mjw_data.mocap_quat.assign(quat.astype(np.float32))
