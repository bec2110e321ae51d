"""Export a rho dataset as one Isaac Lab dataset file: `rho dataset export-isaaclab`.

Isaac Lab's `HDF5DatasetFileHandler` reads rho's native files and `rho dataset export-robomimic` already (env_args,
seed, success, every dataset as a tensor). What it cannot find there is its own scene state: Isaac Lab records
`initial_state` and `states` as nested groups of its scene entities (`InteractiveScene.get_state(is_relative=True)`,
written by its `InitialStateRecorder` / `PostStepStatesRecorder`), which `env.reset_to` and `replay_demos.py
--validate_states` read, where rho records the flat MuJoCo state. `states` is a group there and a (T, D) dataset in
robomimic's file, so the two cannot share one file: this export writes Isaac Lab's, from the recorded flat state
(`initial_state/sim`, `states/sim`) of each demo:

    <out>.hdf5                        attrs: producer="rho", format="isaaclab", rho_format_version, source, created
    ├── data                          attrs: total, env_args (env_name, type=2, env_kwargs, rho's keys, and
    │   │                                    rho_export.isaaclab_scene: each entity's MJCF body and joint names)
    │   └── demo_<i>                  attrs: num_samples, seed, success and every native demo attribute
    │       ├── actions, expert_actions, rewards, dones     as `rho dataset export-robomimic` writes them
    │       ├── obs/<key>                                   likewise (images as they are, the rest (T, D) float32)
    │       ├── obs/datagen_info/...                        Isaac Lab Mimic's annotations (mimic=true, the default)
    │       ├── initial_state/                              the state at the demo's first observation, (1, n) rows
    │       │   ├── articulation/<name>/{root_pose (1, 7), root_velocity (1, 6), joint_position (1, J),
    │       │   │                        joint_velocity (1, J)}
    │       │   └── rigid_object/<name>/{root_pose (1, 7), root_velocity (1, 6)}
    │       └── states/                                     the same keys, (T − 1, n): the state after each step
    │                                                       but the last (Isaac Lab records the post-step state;
    │                                                       rho does not record the one after the final action)
    └── mask/train, mask/valid

Each value, float32 as Isaac Lab writes it:

- `root_pose`: position (m) of the entity's root body frame, world frame = the env's origin (`is_relative=True`:
  each rho env is its own world), then its orientation as a unit quaternion in `quat` order — `xyzw` (x, y, z, w),
  Isaac Lab 3.x's order (its 3.0 migration guide: "The quaternion format changed from WXYZ to XYZW"; rho's Isaac
  Lab backend runs on 3.0), the default, or `wxyz` (w, x, y, z) for Isaac Lab 2.x;
- `root_velocity`: linear velocity of the root body's centre of mass, then its angular velocity, both in the world
  frame (m/s, rad/s) — Isaac Lab's `root_vel_w` (= `root_com_vel_w`). MuJoCo's free joint holds the linear
  velocity of the body frame's origin in the world frame and the angular velocity ω in the body's own frame, so
  ω_world = R ω_body and v_com = v_origin + ω_world × (R · body_ipos). A fixed base's velocity is zero;
- `joint_position` / `joint_velocity`: the entity's hinge (rad, rad/s) and slide (m, m/s) joints in MuJoCo's order
  (their names in `env_args.rho_export.isaaclab_scene`; an Isaac Lab asset of the same robot may order its joints
  differently: map them by name).

Entities are the scene's kinematic trees (bodies whose parent is the world) that move: a tree with a free joint
and no other joint is a rigid object (lift_block's `block`, plug_insertion's `plug`, the BusyBox's jacks
`bb_jack_<colour>`); a tree with hinge or slide joints is an articulation, fixed-base (the robot's arms, each its
own tree: `left` and `right`, rho's arm names; the BusyBox panel `busybox`) or floating (a free joint on its root:
plug_insertion's `strip` with its outlet shutters, toolbox_close's `toolbox` with its lid). A name is the root
body's MJCF name less a trailing `/base`, with `/` replaced by `_`. A fixed base's pose is the root body's pose in
the demo's own model (rebuilt from its `episode_seed`, as `rho dataset replay` does: the BusyBox panel's pose is
drawn into the model, not the state). Not represented: equality constraints' on/off state (latches, jack seats:
`eq_active`), actuator state and the solver's warm start — rho's own envs, on MuJoCo and on the Isaac Lab backend
(`DirectRLEnv`s restored from the flat state), replay from the native `states/sim` (`rho dataset replay`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .hdf5 import Dataset, DatasetError
from .robomimic import export_file

QUAT_ORDERS = {"xyzw": [1, 2, 3, 0], "wxyz": [0, 1, 2, 3]}  # index into MuJoCo's (w, x, y, z)
STATE_KEYS = {"articulation": ("root_pose", "root_velocity", "joint_position", "joint_velocity"),
              "rigid_object": ("root_pose", "root_velocity")}  # InteractiveScene.get_state's keys per kind


def export_isaaclab(src: str | Path, out: str | Path | None = None, *, mimic: bool = True, quat: str = "xyzw",
                    valid_fraction: float = 0.1, seed: int = 0, overwrite: bool = False) -> dict[str, Any]:
    """Write dataset `src` (a directory of shards or a file) as one Isaac Lab dataset file at `out` (default
    `<src>_isaaclab.hdf5` beside it); see the module docstring. `mimic` writes Isaac Lab Mimic's
    `obs/datagen_info` annotations; `quat` is the quaternion order of `root_pose` (`xyzw`: Isaac Lab 3.x, `wxyz`:
    2.x); `valid_fraction` and `seed` make the default split as in `export_robomimic`.

    Returns the summary of `export_robomimic` plus `isaaclab_scene` (entities) and `states_not_written` (demos
    without a recorded simulator state, e.g. imported real data)."""
    if quat not in QUAT_ORDERS:
        raise DatasetError(f"quat={quat!r}: expected one of {sorted(QUAT_ORDERS)} — xyzw for Isaac Lab 3.x (the "
                           "default), wxyz for Isaac Lab 2.x. Fix: quat=xyzw or quat=wxyz")
    holder: dict[str, Any] = {}

    def prepare(ds: Dataset):
        holder["scene"] = scene = IsaacLabScene.from_env_args(ds.env_args(), src, quat)
        holder["missing"] = missing = []
        meta["isaaclab_scene"] = scene.describe() if scene is not None else None

        def write(name: str, g: h5py.Group, d: h5py.Group) -> bool:
            if scene is None or "states" not in g or "sim" not in g["states"]:
                missing.append(name)
                return False
            if "episode_seed" not in g.attrs:
                raise DatasetError(f"{src}: {name} has a recorded state but no episode_seed attribute, so its "
                                   "model (domain randomization, drawn placements) cannot be rebuilt. Fix: "
                                   "regenerate the dataset with `rho datagen`")
            flat = g["states/sim"][()]
            init = g["initial_state/sim"][()] if "initial_state" in g and "sim" in g["initial_state"] else flat[0]
            model = scene.episode_model(int(g.attrs["episode_seed"]))
            _write_tree(d.create_group("initial_state"), scene.state_dict(model, np.asarray(init)[None], name))
            _write_tree(d.create_group("states"), scene.state_dict(model, flat[1:], name))
            return True

        return write

    meta: dict[str, Any] = {"quat_order": quat, "states": "initial_state: at obs 0; states[t]: after step t, "
                            "t < T - 1 (post-step, as Isaac Lab records)"}
    try:
        summary = export_file(src, out, "isaaclab", valid_fraction=valid_fraction, seed=seed, mimic=mimic,
                              overwrite=overwrite, next_obs=False, prepare=prepare, meta=meta)
    finally:
        if holder.get("scene") is not None:
            holder["scene"].close()
    scene = holder.get("scene")
    summary["isaaclab_scene"] = scene.describe() if scene is not None else None
    summary["states_not_written"] = holder.get("missing", [])
    return summary


def _write_tree(group: h5py.Group, tree: dict[str, Any]) -> None:
    for key, value in tree.items():
        if isinstance(value, dict):
            if value:  # as Isaac Lab's EpisodeData: no group for a kind the scene has none of
                _write_tree(group.create_group(key), value)
        else:
            group.create_dataset(key, data=value)


@dataclass
class Entity:
    """One Isaac Lab scene entity: a kinematic tree of the MJCF scene that moves."""

    kind: str  # "articulation" | "rigid_object"
    name: str
    root_body: int
    free_qadr: int | None  # qpos address of the root's free joint (None: fixed base)
    free_dadr: int | None
    joints: list[int] = field(default_factory=list)  # hinge / slide joint ids, MuJoCo order
    qadr: list[int] = field(default_factory=list)
    dadr: list[int] = field(default_factory=list)


def scene_entities(model) -> list[Entity]:
    """The Isaac Lab entities of a MuJoCo model (see the module docstring for the rules and names). Raises
    DatasetError for what an Isaac Lab state dict cannot hold (a ball joint, a free joint below a tree's root)."""
    import mujoco

    free, hinge, slide = (int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_HINGE),
                          int(mujoco.mjtJoint.mjJNT_SLIDE))
    roots = [b for b in range(1, model.nbody) if model.body_parentid[b] == 0]
    out: list[Entity] = []
    for r in roots:
        joints = [j for j in range(model.njnt) if model.body_rootid[model.jnt_bodyid[j]] == r]
        if not joints:
            continue  # static: not an entity with state
        body_name = model.body(r).name or f"body{r}"
        name = body_name.removesuffix("/base").replace("/", "_")
        frees = [j for j in joints if model.jnt_type[j] == free]
        for j in frees:
            if model.jnt_bodyid[j] != r:
                raise DatasetError(f"joint {model.joint(j).name!r}: a free joint below the root of tree "
                                   f"{body_name!r}; an Isaac Lab entity has one floating root. Export the flat "
                                   "state instead (rho dataset export-robomimic)")
        dofs = [j for j in joints if model.jnt_type[j] != free]
        bad = [model.joint(j).name for j in dofs if model.jnt_type[j] not in (hinge, slide)]
        if bad:
            raise DatasetError(f"joints {bad} of tree {body_name!r} are ball joints; Isaac Lab's joint_position "
                               "holds one value per joint (hinge, slide). Export the flat state instead (rho "
                               "dataset export-robomimic)")
        fq = int(model.jnt_qposadr[frees[0]]) if frees else None
        fd = int(model.jnt_dofadr[frees[0]]) if frees else None
        kind = "rigid_object" if frees and not dofs else "articulation"
        out.append(Entity(kind, name, r, fq, fd, dofs, [int(model.jnt_qposadr[j]) for j in dofs],
                          [int(model.jnt_dofadr[j]) for j in dofs]))
    names = [e.name for e in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"scene entities {dup} share a name (from their root bodies' names); rename the MJCF "
                           "bodies so that each tree's root has its own name")
    return out


class IsaacLabScene:
    """A dataset's task scene as Isaac Lab entities, and the per-episode models the fixed bases' poses need."""

    def __init__(self, env, quat: str):
        self.env = env
        self.quat = quat
        self.entities = scene_entities(env.model)

    @classmethod
    def from_env_args(cls, args: dict[str, Any], src: str | Path, quat: str) -> IsaacLabScene | None:
        """The scene of the task `args` names (one env, cameras off, on MuJoCo: the flat state's layout is
        MuJoCo's on either backend); None for data of no task (imported real data: no states to convert)."""
        import dataclasses

        from rho.config import config_from_dict
        from rho.tasks import get_task

        task, cfg_dict = args.get("task"), args.get("env_config")
        if not task or not isinstance(cfg_dict, dict):
            return None
        try:
            entry = get_task(str(task))
        except KeyError as e:
            raise DatasetError(f"{src}: recorded in task {task!r}, which this rho does not register ({e.args[0]}), "
                               "so its flat states cannot be mapped to Isaac Lab entities. Fix: export with the rho "
                               "that recorded it") from None
        cfg = config_from_dict(entry.cfg_cls, cfg_dict)
        cfg.num_envs, cfg.cameras = 1, {}
        cfg.sim = dataclasses.replace(cfg.sim, backend="mujoco")
        return cls(entry.env_cls(cfg), quat)

    def episode_model(self, episode_seed: int):
        """The MjModel of the episode `episode_seed` (its domain randomization and drawn placements)."""
        self.env.reset(options={"episode_seeds": [int(episode_seed)]})
        return self.env._models[0]

    def state_dict(self, model, flat: np.ndarray, name: str = "") -> dict[str, dict[str, dict[str, np.ndarray]]]:
        """Isaac Lab's `get_state(is_relative=True)` dict of flat MuJoCo states `flat` (n, nstate)
        (mjSTATE_INTEGRATION) in `model`: every value (n, k) float32."""
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        size = mujoco.mj_stateSize(model, spec)
        flat = np.asarray(flat, np.float64)
        if flat.ndim != 2 or flat.shape[1] != size:
            raise DatasetError(f"{name}: recorded states have shape {flat.shape}, the task's model holds {size} "
                               "values per state (mjSTATE_INTEGRATION): recorded by another rho or MuJoCo version. "
                               "Fix: regenerate the dataset with this rho (rho datagen)")
        data = mujoco.MjData(model)
        n = len(flat)
        qpos, qvel = np.empty((n, model.nq)), np.empty((n, model.nv))
        for t in range(n):  # unpack with MuJoCo itself: the layout of mjSTATE_INTEGRATION is MuJoCo's to define
            mujoco.mj_setState(model, data, flat[t], spec)
            qpos[t], qvel[t] = data.qpos, data.qvel
        mujoco.mj_kinematics(model, data)  # fixed bases: their pose does not depend on the state
        order = QUAT_ORDERS[self.quat]
        out: dict[str, dict[str, dict[str, np.ndarray]]] = {"articulation": {}, "rigid_object": {}}
        for e in self.entities:
            if e.free_qadr is None:
                quat = np.broadcast_to(data.xquat[e.root_body], (n, 4))
                pose = np.concatenate([np.broadcast_to(data.xpos[e.root_body], (n, 3)), quat[:, order]], axis=1)
                vel = np.zeros((n, 6))
            else:
                a, v = e.free_qadr, e.free_dadr
                q = qpos[:, a + 3:a + 7] / np.linalg.norm(qpos[:, a + 3:a + 7], axis=1, keepdims=True)
                rot = _quat_to_mat(q)  # (n, 3, 3) body → world
                w_world = np.einsum("nij,nj->ni", rot, qvel[:, v + 3:v + 6])
                com = np.einsum("nij,j->ni", rot, model.body_ipos[e.root_body])
                pose = np.concatenate([qpos[:, a:a + 3], q[:, order]], axis=1)
                vel = np.concatenate([qvel[:, v:v + 3] + np.cross(w_world, com), w_world], axis=1)
            entry = {"root_pose": pose, "root_velocity": vel}
            if e.kind == "articulation":
                entry.update(joint_position=qpos[:, e.qadr], joint_velocity=qvel[:, e.dadr])
            out[e.kind][e.name] = {k: np.ascontiguousarray(entry[k], np.float32).reshape(n, -1)
                                   for k in STATE_KEYS[e.kind]}
        return out

    def describe(self) -> dict[str, Any]:
        """Each entity's MJCF names (for `env_args.rho_export.isaaclab_scene` and the export's summary)."""
        m = self.env.model
        out: dict[str, Any] = {"quat_order": self.quat, "articulation": {}, "rigid_object": {}}
        for e in self.entities:
            d: dict[str, Any] = {"root_body": m.body(e.root_body).name, "fixed_base": e.free_qadr is None}
            if e.kind == "articulation":
                d["joint_names"] = [m.joint(j).name for j in e.joints]
            out[e.kind][e.name] = d
        return out

    def close(self) -> None:
        self.env.close()


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    """(n, 4) unit quaternions (w, x, y, z) → (n, 3, 3) rotation matrices."""
    w, x, y, z = q.T
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                     np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                     np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], 1)
