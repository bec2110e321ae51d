"""`IsaacLabBatch`: the slice of `mujoco.batch.Batch` that `BatchedEnv` uses, on Isaac Lab 3.0's Newton physics.

The scene is the task's own MJCF (the same procedural asset descriptions as on the MuJoCo backend), imported into
Newton by Newton's MJCF importer, once per world, from a `MODEL_INIT` callback of Isaac Lab's `NewtonManager`.
Isaac Lab's `SimulationContext` (kit-less: no Isaac Sim, no USD asset from NVIDIA's cloud) steps it with Newton's
MuJoCo-Warp solver (`MJWarpSolverCfg`) on ``device="cpu"`` or ``"cuda:N"``.

State lives on the device; `BatchedEnv` and the tasks read and write host mirrors in MuJoCo's layout
(``qpos`` (quaternions w, x, y, z), ``qvel``, ``ctrl``, ``sensordata``, ``site_xpos``, ``site_xmat``, ``xpos``,
``xquat``), so task code runs unchanged. Writes to ``qpos``/``qvel`` take effect at `forward`/`reset` (what
the env calls after changing state, as with MuJoCo); ``ctrl`` is pushed before every step.

Touch: MuJoCo-Warp has no `<contact>` sensor, so the pads' sensor values are rebuilt from the solver's contact
list with MuJoCo's conventions (`rho.sim.isaaclab.contacts`), and the same taxel model turns them into taxels.

Per-env model changes (domain randomization, a task enabling one plug's prongs) arrive as `set_models(models)`;
the fields Newton can change per world are pushed (friction, masses and inertias, damping, servo gains); the
others must stay at their nominal values on this backend, and `set_models` says which field differs if one does.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import mujoco
import numpy as np

from .contacts import fill_contact_sensors

_STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION


class SimulationError(RuntimeError):
    """Raised by `step`/`rollout` when some sims diverged; `ids` lists them (same contract as mujoco.batch)."""

    def __init__(self, msg: str, ids: np.ndarray):
        super().__init__(msg)
        self.ids = ids


def _import_isaaclab():
    try:
        import warp as wp
        from isaaclab.physics.physics_manager import PhysicsEvent, PhysicsManager
        from isaaclab.sim import SimulationCfg, SimulationContext
        from isaaclab_newton.physics import MJWarpSolverCfg, NewtonCfg, NewtonManager
        from isaaclab_newton.physics.newton_manager_cfg import NewtonBuilderCfg
    except ImportError as e:
        raise ImportError(
            f"backend=isaaclab needs Isaac Lab 3.0 (Python 3.12): {e}. Install it with "
            "`python3.12 -m venv .venv-isaaclab && . .venv-isaaclab/bin/activate && pip install -e '.[isaaclab]'` "
            "(see the README's Isaac Lab section), or use backend=mujoco.") from e
    return {"wp": wp, "PhysicsEvent": PhysicsEvent, "PhysicsManager": PhysicsManager, "SimulationCfg": SimulationCfg,
                "SimulationContext": SimulationContext, "MJWarpSolverCfg": MJWarpSolverCfg, "NewtonCfg": NewtonCfg,
                "NewtonManager": NewtonManager, "NewtonBuilderCfg": NewtonBuilderCfg}


_INTEGRATORS = {int(mujoco.mjtIntegrator.mjINT_EULER): "euler", int(mujoco.mjtIntegrator.mjINT_IMPLICITFAST):
                "implicitfast", int(mujoco.mjtIntegrator.mjINT_IMPLICIT): "implicit",
                int(mujoco.mjtIntegrator.mjINT_RK4): "rk4"}
_CONES = {int(mujoco.mjtCone.mjCONE_PYRAMIDAL): "pyramidal", int(mujoco.mjtCone.mjCONE_ELLIPTIC): "elliptic"}


def solver_cfg_for(model: mujoco.MjModel, njmax: int, nconmax: int) -> dict[str, Any]:
    """MJWarpSolverCfg fields that reproduce the MJCF `<option>` of `model` (solver, integrator, cone, ...)."""
    o = model.opt
    return {"njmax": njmax, "nconmax": nconmax, "iterations": int(o.iterations), "ls_iterations": int(o.ls_iterations),
            "solver": {0: "pgs", 1: "cg", 2: "newton"}[int(o.solver)], "integrator": _INTEGRATORS[int(o.integrator)],
            "cone": _CONES[int(o.cone)], "impratio": float(o.impratio), "tolerance": float(o.tolerance),
            "use_mujoco_contacts": True}


def newton_mjcf(xml: str, model: mujoco.MjModel) -> str:
    """The scene's MJCF as Newton's importer takes it: a one-joint equality (``<joint joint1=J polycoef="c ..."/>``,
    a latch locking hinge J at angle c) becomes the equivalent ``<weld>`` of J's body to its parent at that angle,
    since Newton maps joint equalities to two-joint mimic constraints only. Same name, order and activity, so
    tasks switch it through ``eq_active`` as before."""
    import re

    d = mujoco.MjData(model)
    for e in range(model.neq):
        if model.eq_type[e] != mujoco.mjtEq.mjEQ_JOINT or model.eq_obj2id[e] >= 0:
            continue
        j = int(model.eq_obj1id[e])
        d.qpos[:] = model.qpos0
        d.qpos[model.jnt_qposadr[j]] = model.eq_data[e, 0]
        mujoco.mj_kinematics(model, d)
        b2 = int(model.jnt_bodyid[j])
        b1 = int(model.body_parentid[b2])
        r1 = d.xmat[b1].reshape(3, 3)
        pos = r1.T @ (d.xpos[b2] - d.xpos[b1])
        q1inv, quat = np.zeros(4), np.zeros(4)
        mujoco.mju_negQuat(q1inv, d.xquat[b1])
        mujoco.mju_mulQuat(quat, q1inv, d.xquat[b2])
        name, jname = model.eq(e).name, model.joint(j).name
        pattern = re.compile(r"<joint\s+([^>]*?)joint1=\"" + re.escape(jname) + r"\"([^>]*)/>")
        match = next((m for m in pattern.finditer(xml) if "joint2=" not in m.group(0)
                      and (not name or f'name="{name}"' in m.group(0))), None)
        if match is None:
            raise ValueError(f"could not find the one-joint equality on {jname!r} in the scene's MJCF")
        keep = " ".join(a for a in re.findall(r'(?:name|active|solref|solimp)="[^"]*"', match.group(0)))
        relpose = " ".join(f"{v:.9g}" for v in (*pos, *quat))
        weld = (f'<weld {keep} body1="{model.body(b1).name}" body2="{model.body(b2).name}" '
                f'relpose="{relpose}"/>')
        xml = xml[:match.start()] + weld + xml[match.end():]
    return xml


class IsaacLabBatch:
    """N copies of one MJCF scene on Isaac Lab's Newton physics (MuJoCo-Warp), with `mujoco.batch.Batch`'s API.

    model: the scene compiled by MuJoCo (names, layout, nominal parameters); xml: the same scene's MJCF, which
    Newton imports; device: "cpu" or "cuda:N"; njmax / nconmax: constraint and contact capacity per world.
    `attach=True` joins a `SimulationContext` an Isaac Lab `DirectRLEnv` is building (it calls `sim.reset()`);
    otherwise the batch creates and starts its own.
    """

    def __init__(self, model: mujoco.MjModel, xml: str, nsim: int, device: str = "cpu", njmax: int = 3000,
                 nconmax: int = 1000, env_spacing: float = 3.0, attach: bool = False):
        il = self._il = _import_isaaclab()
        self.model, self.nsim, self.device, self._xml = model, nsim, device, xml
        self._sensors = self._contact_sensor_layout(model)
        n = nsim
        self.qpos = np.tile(model.qpos0, (n, 1))
        self.qvel = np.zeros((n, model.nv))
        self.ctrl = np.zeros((n, model.nu))
        self.sensordata = np.zeros((n, model.nsensordata))
        self.site_xpos = np.zeros((n, model.nsite, 3))
        self.site_xmat = np.zeros((n, model.nsite, 9))
        self.xpos = np.zeros((n, model.nbody, 3))
        self.xquat = np.zeros((n, model.nbody, 4))
        self.eq_active = np.tile(model.eq_active0.astype(np.uint8), (n, 1))  # equality constraints switched on
        self.warning = np.zeros((n, int(mujoco.mjtWarning.mjNWARNING), 2), np.int32)  # (lastinfo, count)
        self._fields = {"qpos": self.qpos, "qvel": self.qvel, "ctrl": self.ctrl, "sensordata": self.sensordata,
                        "site_xpos": self.site_xpos, "site_xmat": self.site_xmat, "xpos": self.xpos,
                        "xquat": self.xquat, "eq_active": self.eq_active}
        self._models = [model] * n
        self._ready = False
        self._solver_kw = solver_cfg_for(model, njmax, nconmax)
        self._attached = attach
        if attach:
            self.sim = il["SimulationContext"].instance()
            if self.sim is None:
                raise RuntimeError("IsaacLabBatch(attach=True) needs a SimulationContext being built by a DirectRLEnv")
        else:
            cfg = il["SimulationCfg"](dt=float(model.opt.timestep), device=device, gravity=tuple(model.opt.gravity),
                                      physics=self.physics_cfg(model, njmax, nconmax))
            self.sim = il["SimulationContext"](cfg)
        self._cb = il["PhysicsManager"].register_callback(self._add_scene, il["PhysicsEvent"].MODEL_INIT,
                                                          wrap_weak_ref=False)
        self._spacing = env_spacing
        if not attach:
            from isaaclab.sim.utils.stage import use_stage

            with use_stage(self.sim.stage):
                self.sim.reset()
            self.start()

    @staticmethod
    def physics_cfg(model: mujoco.MjModel, njmax: int = 3000, nconmax: int = 1000):
        """Isaac Lab `NewtonCfg` (MuJoCo-Warp solver) matching the MJCF options of `model`."""
        il = _import_isaaclab()
        return il["NewtonCfg"](solver_cfg=il["MJWarpSolverCfg"](**solver_cfg_for(model, njmax, nconmax)),
                               use_cuda_graph=False)

    # ------------------------------------------------------------------ construction
    def _add_scene(self, *_):
        """MODEL_INIT: import the MJCF into one world per env (Newton's MJCF importer, MuJoCo attributes on)."""
        import newton

        sim = self._il["SimulationContext"].instance()
        builder = sim.get_or_create_backend(self._il["NewtonBuilderCfg"](physics_cfg=sim.cfg.physics))
        world = newton.ModelBuilder()
        newton.solvers.SolverMuJoCo.register_custom_attributes(world)
        world.add_mjcf(newton_mjcf(self._xml, self.model))
        builder.replicate(world, self.nsim, spacing=(0.0, 0.0, 0.0))

    def start(self) -> None:
        """Bind to the started simulation: check the imported layout against the MuJoCo model, build index maps."""
        nm = self._il["NewtonManager"]
        self._nm = nm
        self.solver = nm._solver
        self.newton_model = nm.get_model()
        self.mjm = self.solver.mj_model  # one world of the solver's MuJoCo model
        self.mjw_model, self.mjw_data = self.solver.mjw_model, self.solver.mjw_data
        self._check_layout()
        self._geom_map = self._name_map("geom", self.model.ngeom, self.mjm.ngeom)
        self._site_map = self._name_map("site", self.model.nsite, self.mjm.nsite, required=True)
        self._eq_map = self._equality_map()
        self._pad_geoms_mjw = np.array([self._geom_map[g] for g in self._sensors["pad_geoms"]], int)
        free = [j for j in range(self.model.njnt) if self.model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
        self._quat_adr = np.array([self.model.jnt_qposadr[j] + 3 for j in free], int)
        self._ready = True
        self.set_models(self._models)
        self.forward(np.arange(self.nsim))

    def _check_layout(self) -> None:
        m, w = self.model, self.mjm
        for field in ("nq", "nv", "nu", "njnt", "nbody", "neq"):
            if getattr(m, field) != getattr(w, field):
                raise RuntimeError(f"Newton's MJCF import changed the scene: {field} = {getattr(w, field)} on Newton, "
                                   f"{getattr(m, field)} in MuJoCo; the isaaclab backend needs the same layout")
        if not (np.array_equal(m.jnt_type, w.jnt_type) and np.allclose(m.jnt_range, w.jnt_range)
                and np.array_equal(m.jnt_qposadr, w.jnt_qposadr) and np.array_equal(m.body_parentid, w.body_parentid)):
            raise RuntimeError("Newton's MJCF import reordered joints or bodies; the isaaclab backend needs MuJoCo's "
                               "order (check the scene for features Newton's importer does not support)")

    def _equality_map(self) -> np.ndarray:
        """Our equality id → the solver's: Newton's conversion reorders them (welds first, then joint couplings),
        so they are matched by type and the objects they join (a latch converted to a weld by its bodies)."""
        m, w = self.model, self.mjm
        out = np.full(m.neq, -1, int)
        for e in range(m.neq):
            typ, o1, o2 = int(m.eq_type[e]), int(m.eq_obj1id[e]), int(m.eq_obj2id[e])
            if typ == mujoco.mjtEq.mjEQ_JOINT and o2 < 0:  # latch → weld of the joint's body to its parent
                typ = int(mujoco.mjtEq.mjEQ_WELD)
                o2 = int(m.jnt_bodyid[o1])
                o1 = int(m.body_parentid[o2])
            hits = [k for k in range(w.neq) if k not in out and int(w.eq_type[k]) == typ
                    and {int(w.eq_obj1id[k]), int(w.eq_obj2id[k])} == {o1, o2}]
            if not hits:
                raise RuntimeError(f"equality {m.eq(e).name or e!r} not found in Newton's import of the scene")
            out[e] = hits[0]
        return out

    def _name_map(self, kind: str, n_ours: int, n_theirs: int, required: bool = False) -> np.ndarray:
        """Our element id → the solver model's, matched by name (Newton prefixes paths, suffixes _<index>)."""
        theirs: dict[str, int] = {}
        for k in range(n_theirs):
            name = re.sub(r"_\d+$", "", getattr(self.mjm, kind)(k).name)
            theirs[name.rsplit("/worldbody/", 1)[-1]] = k
        out = np.full(n_ours, -1, int)
        for k in range(n_ours):
            name = getattr(self.model, kind)(k).name
            if not name:
                continue
            hits = [v for key, v in theirs.items() if key == name or key.endswith("/" + name)]
            if len(hits) == 1:
                out[k] = hits[0]
        if required and (out < 0).any():
            missing = [getattr(self.model, kind)(k).name for k in np.flatnonzero(out < 0)]
            raise RuntimeError(f"could not find {kind}s {missing} in Newton's import of the scene")
        return out

    @staticmethod
    def _contact_sensor_layout(model: mujoco.MjModel) -> dict[str, Any]:
        """The pads' contact sensors: geoms, slot count, addresses (see rho.assets.mjcf)."""
        slots_s, net_s = [], []
        for s in range(model.nsensor):
            if model.sensor_type[s] != mujoco.mjtSensor.mjSENS_CONTACT:
                raise ValueError(f"sensor {model.sensor(s).name!r}: the isaaclab backend rebuilds only MuJoCo "
                                 "<contact> sensors from contact data; remove other sensors from the scene")
            (net_s if model.sensor(s).name.endswith("/net") else slots_s).append(s)
        if not slots_s:
            return {"pad_geoms": np.zeros(0, int), "slots": 0, "contacts_adr": 0, "net_adr": 0}
        pad_geoms = np.array([model.sensor_objid[s] for s in slots_s], int)
        net_geoms = np.array([model.sensor_objid[s] for s in net_s], int)
        if not np.array_equal(pad_geoms, net_geoms):
            raise ValueError("each pad needs a <pad>/contacts and a <pad>/net contact sensor, in the same order")
        slots = int(model.sensor_dim[slots_s[0]]) // 12
        return {"pad_geoms": pad_geoms, "slots": slots, "contacts_adr": int(model.sensor_adr[slots_s[0]]),
                "net_adr": int(model.sensor_adr[net_s[0]])}

    # ------------------------------------------------------------------ Batch API
    def bind(self, name: str) -> np.ndarray:
        if name not in self._fields:
            raise KeyError(f"IsaacLabBatch binds {sorted(self._fields)}, not {name!r}")
        return self._fields[name]

    @property
    def state(self) -> np.ndarray:
        """(n, nstate) mjSTATE_INTEGRATION of every sim (time, qpos, qvel, act, warmstart, ctrl, ...)."""
        return _StateView(self)

    def reset(self, ids: np.ndarray, stage: Any = None) -> None:
        """Put sims `ids` at the model's qpos0 with zero velocity and warm-start (call `forward` after editing)."""
        ids = np.asarray(ids, int)
        self.qpos[ids] = self.model.qpos0
        self.qvel[ids] = 0.0
        self.eq_active[ids] = self.model.eq_active0
        self.warning[ids] = 0

    def forward(self, ids: np.ndarray | None = None) -> None:
        """Push host qpos/qvel of `ids` to the device and recompute positions, contacts and sensors."""
        if not self._ready:
            return
        ids = np.arange(self.nsim) if ids is None else np.asarray(ids, int)
        self._push_state(ids)
        import mujoco_warp as mjw

        mjw.forward(self.mjw_model, self.mjw_data)
        from .model_sync import sync_newton_state

        sync_newton_state(self)
        self._pull(derived=True)

    def set_models(self, models: list[mujoco.MjModel]) -> None:
        """Per-env model parameters (domain randomization, task looks): friction, masses, damping, gains."""
        self._models = list(models)
        if not self._ready:
            return
        from .model_sync import push_models

        push_models(self, models)

    def step(self, nstep: int = 1) -> None:
        self.rollout(nstep, record=())

    def rollout(self, nstep: int, record: tuple[str, ...] = ("sensordata",),
                out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Step every sim `nstep` physics steps, recording `record` fields after each step into out[k] (n, nstep,
        ...). Only the steps whose values are read need them: fields are pulled at every step (cheap on CPU)."""
        if out is None:
            out = {k: np.zeros((self.nsim, nstep, *self._fields[k].shape[1:])) for k in record}
        if not self._ready:  # a DirectRLEnv is still building the simulation: shapes only
            return out
        self._push_ctrl()
        for t in range(nstep):
            self.sim.step(render=False)
            self._pull(derived=bool(record))
            for k in record:
                out[k][:, t] = self._fields[k]
        self._pull(derived=True)
        bad = ~np.isfinite(self.qpos).all(1) | ~np.isfinite(self.qvel).all(1)
        if bad.any():
            ids = np.flatnonzero(bad)
            raise SimulationError(f"sims {ids.tolist()} diverged (NaN/inf state) on Newton", ids)
        return out

    def jac(self, bodies: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Translational and rotational Jacobians (n, 3, nv) of `points` (n, 3) on `bodies` (n,), world frame."""
        n, nv = len(bodies), self.model.nv
        jacp, jacr = np.zeros((n, 3, nv)), np.zeros((n, 3, nv))
        d = self._scratch
        for i in range(n):
            d.qpos[:] = self.qpos[i]
            mujoco.mj_kinematics(self._models[i], d)
            mujoco.mj_comPos(self._models[i], d)
            mujoco.mj_jac(self._models[i], d, jacp[i], jacr[i], points[i], int(bodies[i]))
        return jacp, jacr

    @property
    def _scratch(self) -> mujoco.MjData:
        if not hasattr(self, "_scratch_data"):
            self._scratch_data = mujoco.MjData(self.model)
        return self._scratch_data

    def get_data(self, i: int, d: mujoco.MjData) -> None:
        """Copy sim i's state into a MuJoCo MjData (for rendering with MuJoCo's renderer)."""
        d.qpos[:] = self.qpos[i]
        d.qvel[:] = self.qvel[i]
        d.ctrl[:] = self.ctrl[i]

    # ------------------------------------------------------------------ host <-> device
    def _push_state(self, ids: np.ndarray) -> None:
        from .model_sync import write_state

        write_state(self, ids)

    def _push_ctrl(self) -> None:
        from .model_sync import write_ctrl

        write_ctrl(self)

    def _pull(self, derived: bool) -> None:
        d = self.mjw_data
        self.qpos[:] = d.qpos.numpy()
        self.qvel[:] = d.qvel.numpy()
        if not derived:
            return
        self.xpos[:] = d.xpos.numpy()
        self.xquat[:] = d.xquat.numpy()
        self.site_xpos[:] = d.site_xpos.numpy()[:, self._site_map]
        self.site_xmat[:] = d.site_xmat.numpy().reshape(self.nsim, -1, 9)[:, self._site_map]
        s = self._sensors
        if len(s["pad_geoms"]):
            self._fill_touch()

    def _fill_touch(self) -> None:
        import mujoco_warp as mjw
        import warp as wp

        d, s = self.mjw_data, self._sensors
        nc = int(d.nacon.numpy()[0])
        if nc == 0:
            self.sensordata[:] = 0.0
            return
        ids = wp.array(np.arange(nc, dtype=np.int32), dtype=int, device=self.device)
        force = wp.zeros(nc, dtype=wp.spatial_vector, device=self.device)
        mjw.contact_force(self.mjw_model, d, ids, False, force)
        geom = d.contact.geom.numpy()[:nc]
        inv = np.full(self.mjm.ngeom, -1, int)  # solver geom → our geom, for the pad geoms only
        inv[self._pad_geoms_mjw] = s["pad_geoms"]
        ours = np.where(geom >= 0, inv[np.clip(geom, 0, None)], -1)
        fill_contact_sensors(self.sensordata, d.contact.worldid.numpy()[:nc], ours, d.contact.pos.numpy()[:nc],
                             d.contact.frame.numpy()[:nc].reshape(nc, 9), force.numpy()[:, :3], s["pad_geoms"],
                             s["slots"], s["contacts_adr"], s["net_adr"])

    def close(self) -> None:
        """Drop the scene callback and, when this batch owns the simulation, stop it and release Isaac Lab's
        SimulationContext singleton (so another env can be built in this process)."""
        if getattr(self, "_cb", None) is not None:
            self._il["PhysicsManager"].deregister_callback(self._cb)
            self._cb = None
        if not self._attached and self.sim is not None:
            with contextlib.suppress(Exception):
                self.sim.stop()
            self.sim.clear_instance()
            self.sim = None


class _StateView:
    """`batch.state[ids]` get/set in mjSTATE_INTEGRATION layout, through the host mirrors."""

    def __init__(self, batch: IsaacLabBatch):
        self.b = batch
        m = batch.model
        self.size = mujoco.mj_stateSize(m, _STATE_SPEC)

    def _full(self) -> np.ndarray:
        b, m, d = self.b, self.b.model, self.b._scratch
        out = np.zeros((b.nsim, self.size))
        for i in range(b.nsim):
            d.qpos[:], d.qvel[:], d.ctrl[:] = b.qpos[i], b.qvel[i], b.ctrl[i]
            mujoco.mj_getState(m, d, out[i], _STATE_SPEC)
        return out

    def __array__(self, dtype=None, copy=None):
        return self._full() if dtype is None else self._full().astype(dtype)

    def __getitem__(self, ids):
        return self._full()[ids]

    def __setitem__(self, ids, values) -> None:
        b, m, d = self.b, self.b.model, self.b._scratch
        ids = np.atleast_1d(np.arange(b.nsim)[ids])
        values = np.broadcast_to(np.asarray(values), (len(ids), self.size))
        for k, i in enumerate(ids):
            mujoco.mj_setState(m, d, values[k], _STATE_SPEC)
            b.qpos[i], b.qvel[i], b.ctrl[i] = d.qpos, d.qvel, d.ctrl
