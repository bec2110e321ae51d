"""Dataset tools: check, info, split, merge, replay (`rho dataset ...`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .hdf5 import FORMAT_VERSION, MANIFEST, Dataset, DatasetError, atomic_write_text

REQUIRED_ATTRS = ("num_samples", "success", "instruction")  # every dataset
SIM_ATTRS = ("task", "episode_seed", "expert", "expert_version", "source", "backend", "randomization")  # source=sim
TOUCH_CONTACT_N = 1.0  # a pad reading above this net normal force (N) counts as touching


def check(path: str | Path, max_demos: int | None = None) -> tuple[list[str], dict[str, Any]]:
    """Problems (empty when the dataset is sound) and statistics of a dataset."""
    ds = Dataset(path)
    problems: list[str] = []
    spec = {k["name"]: k for k in ds.env_args().get("obs_spec", [])}
    if not spec:
        problems.append("env_args has no obs_spec: cannot check observation shapes")
    stats = {"demos": ds.num_demos, "samples": len(ds), "successes": 0, "touch_demos": 0, "checked": 0}
    expect_touch = bool(ds.env_args().get("touch_contact_expected", True))
    bounds = _action_bounds(ds.env_args(), problems)
    for i in range(ds.num_demos if max_demos is None else min(max_demos, ds.num_demos)):
        problems += [f"demo {i} ({ds.demos[i].group}): {p}"
                     for p in _check_demo(ds.group(i), spec, stats, expect_touch, bounds)]
        stats["checked"] += 1
    if ds.num_demos == 0:
        problems.append("no demos")
    stats["success_rate"] = stats["successes"] / max(1, stats["checked"])
    ds.close()
    return problems, stats


def _action_bounds(args: dict[str, Any], problems: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) of the joint_pos action of the dataset's robot when `actions` are joint targets, else None."""
    mode = args.get("action_mode", "joint_pos")
    if mode != "joint_pos":
        problems.append(f"env_args: action_mode is {mode!r}; format v2 datasets train on joint_pos actions")
        return None
    robot = args.get("env_config", {}).get("robot")
    if robot is None:  # imported real data: the robot is not known to rho
        return None
    from rho.assets.robots import get_robot
    from rho.sim.env import joint_pos_bounds

    try:
        return joint_pos_bounds(get_robot(robot))
    except (KeyError, ValueError) as e:
        problems.append(f"env_args: robot {robot!r} is unknown here ({e}); action bounds not checked")
        return None


def _check_demo(g: h5py.Group, spec: dict[str, dict], stats: dict[str, Any], expect_touch: bool,
                bounds: tuple[np.ndarray, np.ndarray] | None = None) -> list[str]:
    sim = g.attrs.get("source", "sim") == "sim"  # imported real data has no simulator state or seeds
    out = [f"missing attribute {a!r}" for a in REQUIRED_ATTRS + (SIM_ATTRS if sim else ()) if a not in g.attrs]
    for name in ("actions", "rewards", "dones", "obs",
                 *(("states/sim", "initial_state/sim", "expert_actions") if sim else ())):
        if name not in g:
            out.append(f"missing {name}" + (" (the expert's own command; every sim demo of format v2 has it)"
                                            if name == "expert_actions" else ""))
    if out:
        return out
    t = int(g.attrs["num_samples"])
    arrays = [("actions", g["actions"]), ("rewards", g["rewards"]), ("dones", g["dones"]),
              *((f"obs/{k}", v) for k, v in g["obs"].items())]
    if sim:
        arrays += [("states/sim", g["states/sim"]), ("expert_actions", g["expert_actions"])]
    elif "expert_actions" in g:
        arrays.append(("expert_actions", g["expert_actions"]))
    out += _check_actions(g["actions"][()], bounds)
    for name, arr in arrays:
        if arr.shape[0] != t:
            out.append(f"{name}: {arr.shape[0]} steps, num_samples says {t}")
        if arr.dtype.kind == "f" and not np.isfinite(arr[()]).all():
            out.append(f"{name}: contains NaN or inf")
    if t and g["dones"][-1] != 1:
        out.append("dones: the last step is not marked done")
    for key, ks in spec.items():
        if key not in g["obs"]:
            out.append(f"obs/{key}: missing (declared in the observation spec)")
            continue
        d = g["obs"][key]
        if tuple(d.shape[1:]) != tuple(ks["shape"]) or d.dtype != np.dtype(ks["dtype"]):
            out.append(f"obs/{key}: per-step shape {tuple(d.shape[1:])} {d.dtype}, spec says "
                       f"{tuple(ks['shape'])} {ks['dtype']}")
    out += [f"obs/{k}: not in the observation spec" for k in g["obs"] if spec and k not in spec]
    stats["successes"] += bool(g.attrs["success"])
    out += _check_touch(g, stats, expect_touch)
    return out


def _check_actions(actions: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> list[str]:
    """`actions` (T, 14) must lie in the joint_pos action space (float32 rounding allowed, as the env allows)."""
    if bounds is None or not len(actions):
        return []
    low, high = bounds
    if actions.shape[1:] != low.shape:
        return [f"actions: per-step shape {actions.shape[1:]}, the joint_pos action of this robot is {low.shape}"]
    bad = np.flatnonzero(((actions < low - 1e-6) | (actions > high + 1e-6)).any(axis=0))
    if not np.isfinite(actions).all() or not len(bad):
        return []
    j = int(bad[0])
    return [f"actions: dim(s) {bad.tolist()} outside the joint_pos action space, e.g. dim {j} spans "
            f"[{actions[:, j].min():.4g}, {actions[:, j].max():.4g}], allowed [{low[j]:.4g}, {high[j]:.4g}]"]


def _check_touch(g: h5py.Group, stats: dict[str, Any], expect_touch: bool) -> list[str]:
    """A successful contact task must have felt something, and the taxels must add up to the pad's net force."""
    nets = [k for k in g["obs"] if k.startswith("touch_net_")]
    if not nets:
        return []
    peak = max(float(g["obs"][k][:, 0].max()) for k in nets)
    touched = peak > TOUCH_CONTACT_N
    stats["touch_demos"] += touched
    out = []
    if bool(g.attrs["success"]) and not touched and expect_touch:
        out.append(f"touch: successful demo but no pad ever read more than {TOUCH_CONTACT_N} N (peak {peak:.2f} N)")
    for k in nets:
        grid = f"touch_{k[len('touch_net_'):]}"
        if grid not in g["obs"]:
            continue
        net, taxels = g["obs"][k][:, 0], g["obs"][grid][:, -1, ..., 0].sum(axis=(-1, -2))  # newest sample
        pressed = net > 3 * TOUCH_CONTACT_N
        if pressed.any():
            err = np.median(np.abs(taxels[pressed] - net[pressed]) / net[pressed])
            if err > 0.25:
                out.append(f"{grid}: taxels sum to {err:.0%} off the pad's net force while pressed")
    return out


def info(path: str | Path) -> dict[str, Any]:
    ds = Dataset(path)
    args = ds.env_args()
    out: dict[str, Any] = {"path": str(Path(path).resolve()), "format_version": FORMAT_VERSION,
                           "task": args.get("task"), "action_mode": args.get("action_mode"),
                           "expert_action_mode": args.get("expert_action_mode"), "demos": ds.num_demos,
                           "samples": len(ds),
                           "successes": int(sum(d.success for d in ds.demos)),
                           "mean_length": float(ds.lengths.mean()) if ds.num_demos else 0.0}
    if ds.num_demos:
        g = ds.group(0)
        out["keys"] = {f"obs/{k}": [list(v.shape[1:]), str(v.dtype)] for k, v in g["obs"].items()}
        for k in ("actions", "expert_actions"):
            if k in g:
                out["keys"][k] = [list(g[k].shape[1:]), str(g[k].dtype)]
        if "states/sim" in g:
            out["keys"]["states/sim"] = [list(g["states/sim"].shape[1:]), str(g["states/sim"].dtype)]
        out["instructions"] = sorted({str(ds.group(i).attrs["instruction"]) for i in range(min(20, ds.num_demos))})
        out["expert"] = f"{g.attrs.get('expert')}@{g.attrs.get('expert_version')}"
    p = Path(path)
    out["bytes"] = p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.iterdir())
    ds.close()
    return out


def split(path: str | Path, valid_fraction: float = 0.1, seed: int = 0) -> dict[str, list[str]]:
    """Write train/valid masks (demo names) into the file or the manifest; returns them."""
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    ds = Dataset(path)
    names = [d.group for d in ds.demos]
    ds.close()
    order = np.random.default_rng(seed).permutation(len(names))
    n_valid = round(valid_fraction * len(names))
    masks = {"valid": sorted(names[i] for i in order[:n_valid]), "train": sorted(names[i] for i in order[n_valid:])}
    p = Path(path)
    if p.is_dir():
        m = json.loads((p / MANIFEST).read_text())
        m["mask"] = masks
        atomic_write_text(p / MANIFEST, json.dumps(m, indent=1))
    else:
        with h5py.File(p, "a") as f:
            grp = f.require_group("mask")
            for k, v in masks.items():
                if k in grp:
                    del grp[k]
                grp.create_dataset(k, data=np.array(v, dtype="S"))
    return masks


def merge(out: str | Path, inputs: list[str | Path]) -> dict[str, Any]:
    """Concatenate datasets (same observation keys and shapes) into one file, demos renumbered in input order."""
    out = Path(out)
    if out.exists():
        raise DatasetError(f"{out} exists; merge writes a new file")
    sources = [Dataset(p) for p in inputs]
    ref = {k: v.shape[1:] for k, v in sources[0].group(0)["obs"].items()} if sources[0].num_demos else {}
    tmp = out.with_name(f".{out.name}.tmp")
    total, names = 0, []
    with h5py.File(tmp, "w") as f:
        f.attrs.update({"format_version": FORMAT_VERSION, "producer": "rho"})
        data = f.create_group("data")
        for s, src in zip(inputs, sources, strict=True):
            for i in range(src.num_demos):
                g = src.group(i)
                keys = {k: v.shape[1:] for k, v in g["obs"].items()}
                if keys != ref:
                    tmp.unlink(missing_ok=True)
                    raise DatasetError(f"{s} demo {i}: observation keys/shapes {keys} differ from {ref}")
                name = f"demo_{len(names)}"
                g.file.copy(g, data, name=name)
                data[name].attrs["source_dataset"] = str(s)
                names.append(name)
                total += int(g.attrs["num_samples"])
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps({**sources[0].env_args(), "merged_from": [str(s) for s in inputs]})
        f.create_group("mask").create_dataset("train", data=np.array(names, dtype="S"))
        f["mask"].create_dataset("valid", data=np.array([], dtype="S"))
    for src in sources:
        src.close()
    os.replace(tmp, out)
    return {"out": str(out), "demos": len(names), "samples": total}


def replay(path: str | Path, demo: int | str = 0, actions: str = "actions") -> dict[str, Any]:
    """Re-simulate a demo (`demo="all"`: every demo) from its episode seed (same randomization) and initial state;
    report how far the re-simulated states drift from the recorded ones. `actions="actions"` steps the training
    actions in their mode (v2: the executed joint targets, joint_pos); `actions="expert_actions"` steps the expert's
    own commands in the env's action mode. Both are bit-identical on the same machine for data rho v2 generated."""
    from .relabel import replay_demo, replay_env

    if actions not in ("actions", "expert_actions"):
        raise DatasetError(f"actions must be 'actions' or 'expert_actions', got {actions!r}")
    ds = Dataset(path)
    try:
        args = ds.env_args()
        demos = list(range(ds.num_demos)) if demo == "all" else [int(demo)]
        if demo != "all" and not 0 <= demos[0] < ds.num_demos:
            raise DatasetError(f"demo {demos[0]} out of range: the dataset has {ds.num_demos} demos")
        mode = args.get("action_mode", "joint_pos") if actions == "actions" else args.get(
            "expert_action_mode", args.get("env_config", {}).get("action", {}).get("mode", "joint_pos"))
        env = replay_env(args, mode)
        rows = []
        try:
            for i in demos:
                g = ds.group(i)
                if actions not in g:
                    raise DatasetError(f"demo {i} ({ds.demos[i].group}) has no {actions}")
                if "states/sim" not in g or not g["states/sim"].shape[-1]:
                    raise DatasetError(f"demo {i} ({ds.demos[i].group}) has no simulator state to replay from "
                                       f"(source={g.attrs.get('source')!r})")
                r = replay_demo(env, int(g.attrs["episode_seed"]), g["initial_state/sim"][()], g[actions][()],
                                g["states/sim"][()])
                rows.append((len(r["qpos_error"]), float(r["qpos_error"].max()), float(r["qpos_error"][-1]),
                             float(r["qvel_error"].max())))
        finally:
            env.close()
    finally:
        ds.close()
    steps, q, q_final, v = (list(c) for c in zip(*rows, strict=True))
    out = {"demo": demo if demo == "all" else demos[0], "actions": actions, "action_mode": mode,
           "steps": sum(steps), "max_qpos_divergence": max(q), "final_qpos_divergence": max(q_final),
           "max_qvel_divergence": max(v), "bit_identical": max(q) == 0.0 and max(v) == 0.0}
    if demo == "all":
        out["demos"] = len(demos)
    return out
