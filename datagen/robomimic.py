"""Export a rho dataset as one HDF5 file that robomimic 0.3.0 and Isaac Lab (Mimic) read with their own code.

rho's native files already use the robomimic layout (`data/demo_N/{actions,obs/*,...}`); this export adds what
those readers need and the native format does not hold, without changing the native format:

    <out>.hdf5
    ├── attrs: producer="rho", format="robomimic", rho_format_version, source, created
    ├── data                          attrs: total (steps), env_args (JSON: robomimic's env_meta — env_name (gym id),
    │   │                                    type=2 (EnvType.GYM_TYPE, Isaac Lab's too), env_kwargs (the env config)
    │   │                                    — next to rho's own keys, plus rho_export: each obs key's native shape)
    │   └── demo_<i>                  i = 0 .. N-1 in dataset order; attrs: num_samples, seed (= episode_seed),
    │       │                               success and every native demo attribute
    │       ├── actions        (T, 14)  float32   executed joint targets (rad, gripper opening 0..1)
    │       ├── expert_actions (T, A)   float32   the expert's own command (sim demos)
    │       ├── rewards (T,) float32, dones (T,) uint8 (1 on the last step)
    │       ├── states         (T, D)   float64   flat MuJoCo state (mjSTATE_INTEGRATION) at obs t — robomimic's
    │       │                                     `dataset_keys=("actions", "states")`; native: states/sim
    │       ├── obs/<key>      (T, ...)           images (T, H, W, 3) uint8 as they are; every other key flat,
    │       │                                     (T, prod(shape)) float32: robomimic's low_dim is one vector
    │       ├── next_obs/<key> (T, ...)           obs of step t + 1; the last step repeats obs[T-1] (the episode's
    │       │                                     final observation is not recorded; dones[T-1] = 1 masks it)
    │       └── obs/datagen_info/...              mimic=true only: Isaac Lab Mimic annotations (below)
    └── mask/train, mask/valid        demo names: the dataset's own split when it has a non-empty valid one, else
                                      a seeded `valid_fraction` held out (at least one demo once there are two)

Isaac Lab Mimic annotations (`mimic=true`), read by `isaaclab_mimic.datagen.DataGenInfoPool` from
`obs/datagen_info` (each pose a (T, 4, 4) float32 homogeneous matrix, world frame, m):

- `eef_pose/<arm>`: the measured TCP pose per arm (`obs/ee_pose`);
- `target_eef_pose/<arm>`: the TCP target an `ee_delta` step commands, i.e. the running target after step t's
  action (`obs/ee_target[t + 1]`; the last step repeats the previous target) — only where `ee_target` was recorded;
- `object_pose/<name>`: every task observation with unit `m|quat_wxyz` and shape (7,) (`block_pose` → `block`);
- `subtask_term_signals/<name>`: (T,) bool, from the task's `mimic_subtask_signals(obs, env_config)` (every sim
  task defines them: lift_block `grasp`; plug_insertion(_occluded) `hold_strip`, `grasp_plug`, `plug_aligned`;
  toolbox_close `hold_box`, `lid_down`; busybox_push_button / flip_switch `touch_control`; busybox_move_slider /
  turn_knob / pull_wire / insert_wire `grasp_control` — see each task's docstring for its arm and subtask).

Not in this file: Isaac Lab's `initial_state` / `states` dicts (`articulation/<name>/joint_position`, ...) used by
its `env.reset_to` — `states` is robomimic's flat (T, D) dataset here; `rho dataset export-isaaclab`
(`rho.datagen.isaaclab_export`, the same writer, `export_file`) writes an Isaac Lab file with those dicts instead.
LeRobot-imported real data has no states and no sim env (its `env_name` is empty).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .hdf5 import (
    FORMAT_VERSION,
    IMAGE_COMPRESSION,
    MANIFEST,
    Dataset,
    DatasetError,
    consumer_env_args,
    free_bytes,
    mib,
)

POSE_UNIT = "m|quat_wxyz"  # an observation spec's unit of a pose: position (m) + quaternion (w, x, y, z)
NOT_OBJECTS = ("ee_pose", "ee_target")  # pose keys of the robot, not of objects
MARGIN = 4 * 2**20  # bytes kept free beyond the export's estimated size


def export_robomimic(src: str | Path, out: str | Path | None = None, *, valid_fraction: float = 0.1, seed: int = 0,
                     mimic: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Write dataset `src` (a directory of shards or a file) as one robomimic / Isaac Lab file at `out` (default
    `<src>_robomimic.hdf5` beside it); see the module docstring for the layout. Written to a temporary name and
    renamed when complete. `valid_fraction` (of the demos, in [0, 1)) and `seed` fix the default split used when
    the dataset has no validation demos of its own; `mimic` adds Isaac Lab Mimic's `obs/datagen_info`.

    Returns a summary: out, demos, samples, masks (counts), obs keys with their exported shapes, mimic keys and
    what could not be annotated, bytes."""
    return export_file(src, out, "robomimic", valid_fraction=valid_fraction, seed=seed, mimic=mimic,
                       overwrite=overwrite)


StatesWriter = Callable[[str, h5py.Group, h5py.Group], bool]  # (demo name, native demo, exported demo) → written?


def export_file(src: str | Path, out: str | Path | None, fmt: str, *, valid_fraction: float = 0.1, seed: int = 0,
                mimic: bool = False, overwrite: bool = False, next_obs: bool = True,
                prepare: Callable[[Dataset], StatesWriter] | None = None,
                meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The export both `export_robomimic` and `rho.datagen.isaaclab_export.export_isaaclab` write: checks, a
    temporary file renamed when complete, the layout of the module docstring. `fmt` names the format (the file's
    `format` attribute, the default out `<src>_<fmt>.hdf5`); `next_obs` writes next_obs; `prepare(dataset)` returns, once the dataset
    is open, a writer of a demo's states in place of the flat `states` dataset; `meta` is added to `env_args.rho_export`."""
    src = Path(src)
    out = Path(out) if out else src.with_name(f"{src.name.removesuffix('.hdf5')}_{fmt}.hdf5")
    if not 0 <= valid_fraction < 1:
        raise DatasetError(f"valid_fraction={valid_fraction}: expected a share of the demos in [0, 1), e.g. 0.1")
    if out.suffix not in (".hdf5", ".h5"):
        raise DatasetError(f"out={out}: {fmt} reads one .hdf5 file. Fix: out=<name>.hdf5")
    if out.exists() and not overwrite:
        raise DatasetError(f"out={out} exists. Fix: pick another out=... or pass --overwrite to replace it")
    if out.resolve() == src.resolve():
        raise DatasetError(f"out={out} is the dataset itself. Fix: pick another out=...")
    ds = Dataset(src)
    try:
        if not ds.num_demos:
            raise DatasetError(f"{src}: no demos to export")
        src_bytes = src.stat().st_size if src.is_file() else sum(p.stat().st_size for p in src.iterdir()
                                                                  if p.is_file())
        copies = 2 if next_obs else 1
        need, free = copies * src_bytes + MARGIN, free_bytes(out.parent)
        if free is not None and free < need:
            raise DatasetError(f"{out.parent}: {mib(free)} free, the export needs up to {mib(need)}"
                               + (" (observations are written twice: obs and next_obs)" if next_obs else "")
                               + ". Fix: free space or choose out= on another filesystem")
        states = prepare(ds) if prepare is not None else None
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            summary = _write(ds, src, tmp, valid_fraction, seed, mimic, fmt, next_obs, states,
                             meta if meta is not None else {})
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        ds.close()
    os.replace(tmp, out)
    return {"out": str(out), **summary, "bytes": out.stat().st_size}


def _write(ds: Dataset, src: Path, tmp: Path, valid_fraction: float, seed: int, mimic: bool, fmt: str,
           next_obs: bool, states_writer: StatesWriter | None, meta: Mapping[str, Any]) -> dict[str, Any]:
    args = ds.env_args()
    spec = {k["name"]: k for k in args.get("obs_spec") or []}
    arms = _arm_names(args)
    signals_fn = _signals_fn(args)
    names = [f"demo_{i}" for i in range(ds.num_demos)]
    shapes: dict[str, list[int]] = {}  # native per-step shape of each obs key
    exported: dict[str, list[int]] = {}  # per-step shape in the export
    skipped: set[str] = set()
    total, states = 0, 0
    with h5py.File(tmp, "w") as f:
        f.attrs.update({"producer": "rho", "format": fmt, "rho_format_version": FORMAT_VERSION,
                        "source": str(src), "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        data = f.create_group("data")
        for i, name in enumerate(names):
            g = ds.group(i)
            d = data.create_group(name)
            t = int(g.attrs["num_samples"])
            total += t
            for key in ("actions", "expert_actions"):
                if key in g:
                    d.create_dataset(key, data=g[key][()].astype(np.float32))
            d.create_dataset("rewards", data=g["rewards"][()].astype(np.float32))
            d.create_dataset("dones", data=g["dones"][()].astype(np.uint8))
            if states_writer is not None:
                states += bool(states_writer(name, g, d))
            elif "states" in g and "sim" in g["states"]:
                d.create_dataset("states", data=g["states/sim"][()])
                states += 1
            obs = d.create_group("obs")
            nxt = d.create_group("next_obs") if next_obs else None
            raw: dict[str, np.ndarray] = {}
            for key, dset in g["obs"].items():
                arr = raw[key] = dset[()]
                shapes.setdefault(key, list(arr.shape[1:]))
                flat = _flat(arr)
                exported.setdefault(key, list(flat.shape[1:]))
                after = np.concatenate([flat[1:], flat[-1:]]) if len(flat) else flat
                for grp, a in ((obs, flat), (nxt, after)):
                    if grp is None:
                        continue
                    if _is_image(a):
                        grp.create_dataset(key, data=a, chunks=(1, *a.shape[1:]), **IMAGE_COMPRESSION)
                    else:
                        grp.create_dataset(key, data=a)
            if mimic:
                skipped |= _datagen_info(obs.create_group("datagen_info"), raw, spec, arms, signals_fn, args)
            attrs = dict(g.attrs)
            if "episode_seed" in attrs:
                attrs.setdefault("seed", attrs["episode_seed"])
            d.attrs.update(attrs)
            d.attrs["num_samples"] = t
        data.attrs["total"] = total
        env_args = consumer_env_args(args)
        env_args["rho_export"] = {"format": fmt, "source": str(src), "obs_shapes": shapes,
                                  **({"next_obs_last": "repeats obs[T-1]"} if next_obs else {}), **meta}
        data.attrs["env_args"] = json.dumps(env_args, default=str)
        masks = _masks(ds, src, names, valid_fraction, seed)
        grp = f.create_group("mask")
        for k, v in masks.items():
            grp.create_dataset(k, data=np.array(v, dtype="S"))
    return {"demos": len(names), "samples": total, "masks": {k: len(v) for k, v in masks.items()},
            "env_name": env_args["env_name"], "obs_keys": exported, "demos_with_states": states,
            "mimic": _mimic_summary(tmp) if mimic else None, "mimic_not_annotated": sorted(skipped)}


def _mimic_summary(path: Path) -> dict[str, list[str]]:
    with h5py.File(path, "r") as f:
        info = f["data/demo_0/obs/datagen_info"]
        return {k: sorted(info[k]) for k in info}


def _is_image(a: np.ndarray) -> bool:
    return a.dtype == np.uint8 and a.ndim == 4


def _flat(arr: np.ndarray) -> np.ndarray:
    """(T, ...) → robomimic's form: images (T, H, W, C) uint8 as they are, anything else (T, D) float32."""
    if _is_image(arr):
        return arr
    return arr.reshape(len(arr), -1).astype(np.float32)


def _masks(ds: Dataset, src: Path, names: list[str], valid_fraction: float, seed: int) -> dict[str, list[str]]:
    """train / valid demo names of the export: the dataset's own split when it has validation demos (mapped to
    the export's demo names), else a seeded `valid_fraction` held out — at least one demo once there are two, so
    robomimic's `--filter_key valid` and validation always find demos."""
    own = _source_masks(src)
    pos = {d.group: names[i] for i, d in enumerate(ds.demos)}
    valid = [pos[n] for n in own.get("valid", []) if n in pos]
    if valid:
        train = [pos[n] for n in own.get("train", []) if n in pos and pos[n] not in valid] or \
            [n for n in names if n not in valid]
        return {"train": train, "valid": valid}
    order = np.random.default_rng(seed).permutation(len(names))
    n_valid = max(1, round(valid_fraction * len(names))) if len(names) >= 2 and valid_fraction > 0 else 0
    held = set(order[:n_valid].tolist())
    return {"train": [n for i, n in enumerate(names) if i not in held],
            "valid": [n for i, n in enumerate(names) if i in held]}


def _source_masks(src: Path) -> dict[str, list[str]]:
    """The native dataset's mask/train and mask/valid demo names (a directory's manifest, a file's mask group)."""
    if src.is_dir():
        m = src / MANIFEST
        return {k: list(v) for k, v in json.loads(m.read_text()).get("mask", {}).items()} if m.exists() else {}
    with h5py.File(src, "r") as f:
        grp = f.get("mask")
        if grp is None:
            return {}
        return {k: [n.decode() if isinstance(n, bytes) else str(n) for n in grp[k][()]] for k in grp}


def _arm_names(args: Mapping[str, Any]) -> list[str]:
    """The robot's arm names (Isaac Lab Mimic's eef names): the recorded robot's, else arm0, arm1..."""
    robot = (args.get("env_config") or {}).get("robot")
    try:
        from rho.assets.robots import get_robot

        return list(get_robot(robot).arms)
    except Exception:  # imported data / an unknown robot: generic names
        return []


def _signals_fn(args: Mapping[str, Any]):
    """The task's `mimic_subtask_signals(obs, env_config)` hook, or None (no task, or the task defines none)."""
    task = args.get("task")
    if not task:
        return None
    try:
        from rho.tasks import get_task

        return getattr(get_task(str(task)).env_cls, "mimic_subtask_signals", None)
    except KeyError:
        return None


def _datagen_info(info: h5py.Group, obs: Mapping[str, np.ndarray], spec: Mapping[str, Any], arms: list[str],
                  signals_fn, args: Mapping[str, Any]) -> set[str]:
    """Write one demo's Isaac Lab Mimic annotations into `info` (obs/datagen_info); return what could not be."""
    missing: set[str] = set()

    def per_arm(name: str, poses: np.ndarray) -> None:  # (T, arms, 7) → one (T, 4, 4) dataset per arm
        names = arms if len(arms) == poses.shape[1] else [f"arm{a}" for a in range(poses.shape[1])]
        grp = info.create_group(name)
        for a, arm in enumerate(names):
            grp.create_dataset(arm, data=pose_matrices(poses[:, a]))

    if "ee_pose" in obs:
        per_arm("eef_pose", obs["ee_pose"].reshape(len(obs["ee_pose"]), -1, 7))
    else:
        missing.add("eef_pose (no obs/ee_pose)")
    if "ee_target" in obs:
        tgt = obs["ee_target"].reshape(len(obs["ee_target"]), -1, 7)
        per_arm("target_eef_pose", np.concatenate([tgt[1:], tgt[-1:]]))  # the target step t's action moved to
    else:
        missing.add("target_eef_pose (no obs/ee_target: not recorded in ee_delta)")
    objects = [k for k, s in spec.items() if s.get("unit") == POSE_UNIT and list(s.get("shape", [])) == [7]
               and k not in NOT_OBJECTS and k in obs]
    grp = info.create_group("object_pose")
    for key in objects:
        grp.create_dataset(key.removesuffix("_pose"), data=pose_matrices(obs[key]))
    if not objects:
        missing.add("object_pose (no pose observation with unit m|quat_wxyz)")
    signals = signals_fn(obs, args.get("env_config") or {}) if signals_fn is not None else {}
    grp = info.create_group("subtask_term_signals")
    for key, sig in signals.items():
        grp.create_dataset(key, data=np.asarray(sig, dtype=bool))
    if not signals:
        missing.add(f"subtask_term_signals (task {args.get('task')!r} defines no mimic_subtask_signals)")
    return missing


def pad_grasp(obs: Mapping[str, np.ndarray], arm: str, force: float, release: float = 0.5,
              release_steps: int = 2) -> np.ndarray | None:
    """(T,) bool: `arm`'s gripper holds something — both its pads press with a normal force above `force` (N),
    read from the recorded `touch_net_<arm>_a` / `_b` (after the sensor model: what the experts act on). A grasp
    that formed holds until the weaker pad has stayed under `release` × `force` for `release_steps` steps in a
    row: closing on an object the pads' force rings around the threshold for a step or two, and a firm grip loses
    one pad's contact for a single touch sample now and then (seen in busybox_pull_wire and
    plug_insertion_occluded demos), neither of which is a release. None when the pads were not recorded (touch
    off). A helper of the tasks' `mimic_subtask_signals`."""
    keys = (f"touch_net_{arm}_a", f"touch_net_{arm}_b")
    if not all(k in obs for k in keys):
        return None
    low = np.minimum(np.asarray(obs[keys[0]])[:, 0], np.asarray(obs[keys[1]])[:, 0])  # the weaker pad (N)
    out = np.zeros(len(low), bool)
    held, below = False, 0
    for t, f in enumerate(low):
        if not held:
            held, below = bool(f > force), 0
        else:
            below = below + 1 if f <= release * force else 0
            held = below < release_steps
        out[t] = held
    return out


def pose_matrices(pose: np.ndarray) -> np.ndarray:
    """(T, 7) position (m) + quaternion (w, x, y, z) → (T, 4, 4) float32 homogeneous transforms."""
    p = np.asarray(pose, np.float64)
    q = p[:, 3:7] / np.maximum(np.linalg.norm(p[:, 3:7], axis=1, keepdims=True), 1e-12)
    w, x, y, z = q.T
    out = np.zeros((len(p), 4, 4))
    out[:, 0] = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y), p[:, 0]], axis=1)
    out[:, 1] = np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x), p[:, 1]], axis=1)
    out[:, 2] = np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y), p[:, 2]], axis=1)
    out[:, 3, 3] = 1.0
    return out.astype(np.float32)
