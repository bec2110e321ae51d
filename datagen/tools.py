"""Dataset tools: check, info, split, merge, replay (`rho dataset ...`)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .hdf5 import (
    FORMAT_VERSION,
    MANIFEST,
    SHARD_GLOB,
    Dataset,
    DatasetError,
    atomic_write_text,
    check_version,
    write_default_masks,
)

REQUIRED_ATTRS = ("num_samples", "success", "instruction")  # every dataset
SIM_ATTRS = ("task", "episode_seed", "expert", "expert_version", "source", "backend", "randomization")  # source=sim
TOUCH_CONTACT_N = 1.0  # a pad reading above this net normal force (N) counts as touching


ABSURD = 1e6  # |x| above this in any float array is corrupt data: no state, force or command of rho reaches it (SI)
JOINT_SLACK = 0.1  # rad (gripper: opening) a measured joint may pass its limit by: soft limits, sensor noise
DTYPES = {"actions": "float32", "expert_actions": "float32", "rewards": "float32", "dones": "uint8",
          "states/sim": "float64", "initial_state/sim": "float64"}  # what rho writes (obs: the observation spec)
NDIM = {"actions": 2, "expert_actions": 2, "rewards": 1, "dones": 1, "states/sim": 2, "initial_state/sim": 1}


def check(path: str | Path, max_demos: int | None = None) -> tuple[list[str], dict[str, Any]]:
    """Problems (empty when the dataset is sound) and statistics of a dataset; never raises on bad data.

    Every problem names the file, the demo and the key it is about. Checked: every file opens as HDF5 of a format
    this rho reads (per shard); the manifest parses and agrees with the shards (every entry's shard and demo exist
    with its length, no demo of the run missing from it, no attempt of the run missing from every shard, counts);
    a directory without a manifest is an interrupted run (`stats["status"] == "INCOMPLETE"`, with the command that
    resumes it). Per demo: attributes, arrays present, dtypes and shapes (the observation spec's, `actions` (T, 14)
    float32...), lengths equal to num_samples and non-zero, values finite and of physical size (|x| <= 1e6), actions
    within the joint_pos action space, measured joints within their limits (± 0.1 rad), touch within the sensors'
    saturation, every image chunk decodes, the last step done, touch felt in a successful contact task and taxels
    summing to the pad's net force.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset (expected a .hdf5 file or a directory of shards)")
    problems: list[str] = []
    stats: dict[str, Any] = {"demos": 0, "samples": 0, "successes": 0, "touch_demos": 0, "checked": 0,
                             "status": "OK", "resume_command": None}
    files: dict[str, h5py.File] = {}
    try:
        if path.is_dir():
            refs, args = _index_dir(path, files, problems, stats)
        else:
            refs, args = _index_file(path, files, problems)
        stats["demos"] = len(refs)
        stats["samples"] = int(sum(n for _, _, n in refs))
        _check_demos(refs, args, files, problems, stats, max_demos)
    finally:
        for f in files.values():
            with contextlib.suppress(Exception):
                f.close()
    if not refs and not problems:
        problems.append(f"{path}: no demos")
    if stats["status"] == "OK" and problems:
        stats["status"] = "PROBLEMS"
    stats["success_rate"] = stats["successes"] / max(1, stats["checked"])
    return problems, stats


def _short(e: BaseException) -> str:
    """An exception as one line: HDF5's messages run over several."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}{'…' if len(text) > 300 else ''}"


def _open(path: Path, name: str, files: dict[str, h5py.File], problems: list[str]) -> h5py.File | None:
    """Open a dataset file for checking, or report (by `name`) why it cannot be read as one."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        problems.append(f"{name}: not a readable HDF5 file, truncated or overwritten ({_short(e)}). Fix: "
                        "regenerate it (datagen: move the shard away and rerun with --resume: its attempts are "
                        "recorded again)")
        return None
    files[name] = f
    try:
        check_version(f.attrs.get("format_version"), name)
    except DatasetError as e:
        problems.append(str(e))
        return None
    if not isinstance(f.get("data"), h5py.Group):
        problems.append(f"{name}: no data group: not a rho/robomimic dataset file")
        return None
    return f


def _file_env_args(f: h5py.File, name: str, problems: list[str]) -> dict[str, Any] | None:
    raw = f["data"].attrs.get("env_args")
    if raw is None:
        problems.append(f"{name}: data/env_args: missing (what the env was: task, config, observation spec)")
        return None
    try:
        args = json.loads(raw)
        if not isinstance(args, dict):
            raise ValueError(f"a JSON {type(args).__name__}, expected an object")
        return args
    except (ValueError, TypeError) as e:
        problems.append(f"{name}: data/env_args: not a JSON object ({_short(e)})")
        return None


def _demo_attrs(f: h5py.File, name: str, problems: list[str]) -> dict[str, tuple[int, bool, int]]:
    """group → (attempt, success, num_samples) of a file's demos; ones whose attributes are unreadable reported."""
    out = {}
    for group, g in f["data"].items():
        try:
            out[group] = (int(g.attrs.get("attempt", len(out))), bool(g.attrs["success"]), int(g.attrs["num_samples"]))
        except (KeyError, ValueError, TypeError, OSError) as e:
            problems.append(f"{name}: demo {group}: attributes unreadable or missing ({_short(e)})")
    return out


def _index_file(path: Path, files: dict[str, h5py.File], problems: list[str]):
    """(demo refs (file, group, num_samples) in attempt order, env_args) of a single-file dataset."""
    name = str(path)
    f = _open(path, name, files, problems)
    if f is None:
        return [], {}
    args = _file_env_args(f, name, problems) or {}
    demos = _demo_attrs(f, name, problems)
    for mask in ("train", "valid"):
        with contextlib.suppress(KeyError, OSError, TypeError):
            for m in f["mask"][mask][()]:
                m = m.decode() if isinstance(m, bytes) else str(m)
                if m not in f["data"]:
                    problems.append(f"{name}: mask/{mask} lists {m}, which is not a demo of the file")
    refs = [(name, g, n) for g, (_, _, n) in sorted(demos.items(), key=lambda kv: kv[1][0])]
    return refs, args


def _index_dir(path: Path, files: dict[str, h5py.File], problems: list[str], stats: dict[str, Any]):
    """(demo refs in dataset order, env_args) of a shard directory, the manifest checked against the shards."""
    shards: dict[str, dict[str, tuple[int, bool, int]] | None] = {}  # shard → group → (attempt, success, length)
    attempts: set[int] = set()  # every attempt some closed shard recorded (kept or not)
    args: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    for file in sorted(path.glob(SHARD_GLOB)):
        f = _open(file, file.name, files, problems)
        if f is None:
            shards[file.name] = None  # present, unreadable (reported): what it holds is unknown
            continue
        shards[file.name] = _demo_attrs(f, file.name, problems)
        a = _file_env_args(f, file.name, problems)
        args = args or (a or {})
        with contextlib.suppress(ValueError, TypeError):
            attempts.update(int(k) for k in json.loads(f.attrs.get("attempts", "[]")))
        with contextlib.suppress(ValueError, TypeError):
            runs.append(json.loads(f.attrs.get("datagen", "{}")))
        attempts.update(a for a, _, _ in shards[file.name].values())
    manifest = _read_manifest(path, problems)
    if manifest is None:  # no manifest, or one that cannot be used: the shards in attempt order
        refs = sorted(((n, g, v[2], v[0]) for n, d in shards.items() for g, v in (d or {}).items()),
                      key=lambda r: r[3])
        if not (path / MANIFEST).exists():
            _incomplete(path, args, runs[0] if runs else {}, refs, shards, problems, stats)
        return [r[:3] for r in refs], args
    refs = []
    listed: set[tuple[str, str]] = set()
    for i, d in enumerate(manifest["demos"]):
        where = f"{MANIFEST}: entry {i}"
        try:
            file, group, n = str(d["file"]), str(d["group"]), int(d["num_samples"])
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"{where}: expected file, group and num_samples ({_short(e)})")
            continue
        if (file, group) in listed:
            problems.append(f"{where}: {file} {group} is listed twice")
            continue
        listed.add((file, group))
        if file not in shards:
            problems.append(f"{where} ({group}): its shard {file} is missing (deleted or renamed): the demo is lost. "
                            "Fix: restore the shard, or regenerate the dataset")
        elif shards[file] is None:
            problems.append(f"{where} ({group}): in {file}, which cannot be read (above): the demo is lost")
        elif group not in shards[file]:
            problems.append(f"{where}: {file} has no demo {group} (the manifest and the shard disagree)")
        else:
            if shards[file][group][2] != n:
                problems.append(f"{where}: {file} {group}: the manifest says {n} steps, the shard "
                                f"{shards[file][group][2]}")
            refs.append((file, group, shards[file][group][2]))
    limit = manifest.get("attempts")
    limit = int(limit) if isinstance(limit, int) else None
    for file, demos in shards.items():
        for group, (attempt, _, _) in (demos or {}).items():
            if (file, group) not in listed and (limit is None or attempt < limit):
                problems.append(f"{file}: demo {group} (attempt {attempt}) is not in {MANIFEST}, though the run "
                                f"used {'every attempt' if limit is None else f'attempts 0..{limit - 1}'}: "
                                "manifest entries were removed (the demo is silently left out of training)")
    if limit is not None and attempts and None not in shards.values():  # an unreadable shard: attempts unknown
        lost = [k for k in range(limit) if k not in attempts]
        if lost:
            problems.append(f"{MANIFEST}: attempt(s) {_ranges(lost)} of the run's {limit} are in no shard: a shard was "
                            "deleted (its demos are lost). Fix: regenerate the dataset")
    entries = [d for d in manifest["demos"] if isinstance(d, dict)]
    wanted, keep = manifest.get("num_demos"), manifest.get("keep_failures")
    got = sum(1 for d in entries if d.get("success") is True)
    if isinstance(wanted, int) and keep is False and got != wanted:
        problems.append(f"{MANIFEST}: lists {got} successful demos, the run's num_demos is {wanted} (entries "
                        f"{'removed' if got < wanted else 'added'} by hand?)")
    total, listed_steps = manifest.get("total"), sum(d.get("num_samples", 0) for d in entries
                                                     if isinstance(d.get("num_samples"), int))
    if isinstance(total, int) and total != listed_steps:
        problems.append(f"{MANIFEST}: total says {total} steps, its entries add up to {listed_steps}")
    margs = manifest.get("env_args")
    return refs, margs if isinstance(margs, dict) and margs else args


def _read_manifest(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """The parsed manifest, or None (absent, or reported as unusable)."""
    mpath = path / MANIFEST
    if not mpath.exists():
        return None
    fix = ("Fix: delete it and rerun the `rho datagen` command with --resume (the shards are the data; the manifest "
           "is rebuilt from them)")
    try:
        m = json.loads(mpath.read_bytes())
    except (ValueError, OSError) as e:
        problems.append(f"{MANIFEST}: not valid JSON ({_short(e)}). {fix}")
        return None
    if not isinstance(m, dict) or not isinstance(m.get("demos"), list):
        problems.append(f"{MANIFEST}: expected an object with a demos list, got {type(m).__name__}"
                        f"{'' if not isinstance(m, dict) else ' without one'}. {fix}")
        return None
    try:
        check_version(m.get("format_version"), str(path))
    except DatasetError as e:
        problems.append(f"{MANIFEST}: {e}")
    return m


def _ranges(ks: list[int]) -> str:
    """[1, 2, 3, 7] → "1-3, 7"."""
    out, start = [], ks[0]
    for a, b in zip(ks, [*ks[1:], None], strict=True):
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)


def _incomplete(path: Path, args: dict[str, Any], run: dict[str, Any], refs: list, shards: dict,
                problems: list[str], stats: dict[str, Any]) -> None:
    """Report a directory without a manifest: an interrupted run, with the command that finishes it."""
    half = sorted(p.name for p in path.glob(".shard_*.tmp"))
    if not shards and not half:
        problems.append(f"{path}: no {SHARD_GLOB} files and no {MANIFEST}: not a rho dataset")
        return
    stats["status"] = "INCOMPLETE"
    cmd = _resume_command(path, args, run)
    stats["resume_command"] = cmd
    problems.append(f"{path}: INCOMPLETE: no {MANIFEST}, so the run that wrote it did not finish ({len(refs)} demos "
                    f"in {len(shards)} closed shard(s)" + (f", a half-written {half[0]}" if half else "") +
                    f"). Finish it with: {cmd}")


def _resume_command(path: Path, args: dict[str, Any], run: dict[str, Any]) -> str:
    """`rho datagen ... --resume` with the recorded task, seed, target and env settings (those not default)."""
    import shlex

    task = args.get("task", "<task>")
    parts = ["rho", "datagen", f"task={task}", f"out={path}", f"seed={run.get('seed', args.get('env_config', {}).get('seed', 0))}",
             f"num_demos={run.get('num_demos', '<N>')}"]
    if run.get("keep_failures"):
        parts.append("keep_failures=true")
    if run.get("expert", "scripted") != "scripted":
        parts.append(f"expert={run['expert']}")
    try:
        from rho.config import config_to_dict, load_config

        from .runner import _env_cfg_for, datagen_schema

        cfg = load_config(datagen_schema(task), yaml="datagen",
                          overrides=[f"expert={run.get('expert', 'scripted')}"])
        parts += _env_overrides("env.", args.get("env_config", {}), config_to_dict(_env_cfg_for(cfg)[1]))
    except Exception:  # a task or expert unknown here: the command without env settings
        parts.append("<the run's env.* settings>")
    parts.append("--resume")
    return " ".join(shlex.quote(p) if "=" in p or " " in p else p for p in parts)


def _env_overrides(prefix: str, recorded: dict[str, Any], default: dict[str, Any]) -> list[str]:
    """`env.x.y=value` for every recorded env setting that differs from the default (a dict whose keys differ, e.g.
    the cameras, as a whole)."""
    out = []
    for k, v in recorded.items():
        if prefix == "env." and k in ("num_envs", "seed"):
            continue
        d = default.get(k, ...)
        if isinstance(v, dict) and isinstance(d, dict) and set(v) == set(d):
            out += _env_overrides(f"{prefix}{k}.", v, d)
        elif v != d:
            out.append(f"{prefix}{k}={json.dumps(_compact(v, d))}")
    return out


def _compact(value: Any, default: Any) -> Any:
    """A dict of configs (e.g. the cameras) less the fields every entry of the default has alike: the config
    loader fills them in again."""
    if not (isinstance(value, dict) and isinstance(default, dict) and default):
        return value
    template = next(iter(default.values()))
    if not isinstance(template, dict):
        return value
    return {name: {f: x for f, x in entry.items() if template.get(f, ...) != x} if isinstance(entry, dict) else entry
            for name, entry in value.items()}


def _check_demos(refs, args: dict[str, Any], files: dict[str, h5py.File], problems: list[str],
                 stats: dict[str, Any], max_demos: int | None) -> None:
    spec = {k["name"]: k for k in args.get("obs_spec", []) if isinstance(k, dict) and "name" in k}
    if refs and not spec:
        problems.append("env_args has no obs_spec: cannot check observation shapes")
    expect_touch = bool(args.get("touch_contact_expected", True))
    bounds = _action_bounds(args, problems)
    limits = _sensor_limits(args)
    for i, (file, group, _) in enumerate(refs[:max_demos] if max_demos is not None else refs):
        try:
            g = files[file]["data"][group]
            found = _check_demo(g, spec, stats, expect_touch, bounds, limits)
        except Exception as e:  # whatever a corrupted file does, it is reported, never a traceback
            found = [f"cannot be read ({_short(e)})"]
        problems += [f"{file}: demo {i} ({group}): {p}" for p in found]
        stats["checked"] += 1


def _action_bounds(args: dict[str, Any], problems: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) of the joint_pos action of the dataset's robot when `actions` are joint targets, else None."""
    mode = args.get("action_mode", "joint_pos")
    if mode != "joint_pos":
        problems.append(f"env_args: action_mode is {mode!r}; format v2 datasets train on joint_pos actions")
        return None
    robot = (args.get("env_config") or {}).get("robot")
    if robot is None:  # imported real data: the robot is not known to rho
        return None
    from rho.assets.robots import get_robot
    from rho.sim.env import joint_pos_bounds

    try:
        return joint_pos_bounds(get_robot(robot))
    except (KeyError, ValueError) as e:
        problems.append(f"env_args: robot {robot!r} is unknown here ({e}); action bounds not checked")
        return None


def _sensor_limits(args: dict[str, Any]) -> dict[str, float]:
    """Saturation (N) of the touch sensors: "taxel" and "net", where the env config states one."""
    touch = (args.get("env_config") or {}).get("touch") or {}
    out = {}
    for kind in ("taxel", "net"):
        sat = (touch.get(kind) or {}).get("saturation")
        if isinstance(sat, (int, float)) and sat > 0:
            out[kind] = float(sat)
    return out


def _read(name: str, d: h5py.Dataset, out: list[str]) -> np.ndarray | None:
    """All of `d`, or None with the problem reported; an image array is read chunk by chunk to name the steps
    whose chunks do not decode."""
    try:
        return d[()]
    except Exception as e:
        if d.chunks is None or not d.shape:
            out.append(f"{name}: cannot be read ({_short(e)})")
            return None
    bad = []
    for t in range(d.shape[0]):
        try:
            d[t]
        except Exception as e:
            bad.append((t, e))
    if bad:
        out.append(f"{name}: the chunk(s) of step(s) {_ranges([t for t, _ in bad])} fail to decode "
                   f"({_short(bad[0][1])})")
    else:
        out.append(f"{name}: cannot be read as a whole")
    return None


def _check_demo(g: h5py.Group, spec: dict[str, dict], stats: dict[str, Any], expect_touch: bool,
                bounds: tuple[np.ndarray, np.ndarray] | None = None,
                limits: dict[str, float] | None = None) -> list[str]:
    sim = g.attrs.get("source", "sim") == "sim"  # imported real data has no simulator state or seeds
    out = [f"missing attribute {a!r}" for a in REQUIRED_ATTRS + (SIM_ATTRS if sim else ()) if a not in g.attrs]
    for name in ("actions", "rewards", "dones", "obs",
                 *(("states/sim", "initial_state/sim", "expert_actions") if sim else ())):
        if name not in g:
            out.append(f"missing {name}" + (" (the expert's own command; every sim demo of format v2 has it)"
                                            if name == "expert_actions" else ""))
    if out:
        return out
    try:
        t = int(g.attrs["num_samples"])
    except (TypeError, ValueError):
        return [f"num_samples: {g.attrs['num_samples']!r} is not a step count"]
    if t <= 0:
        out.append(f"num_samples is {t}: an empty demo (every demo has at least one step)")
    names = ["actions", "rewards", "dones", *(f"obs/{k}" for k in g["obs"])]
    if sim:
        names += ["states/sim", "initial_state/sim", "expert_actions"]
    elif "expert_actions" in g:
        names.append("expert_actions")
    values: dict[str, np.ndarray] = {}
    for name in names:
        d = g[name]
        if not isinstance(d, h5py.Dataset):
            out.append(f"{name}: a group, expected an array")
            continue
        key = spec.get(name[4:]) if name.startswith("obs/") else None
        want = DTYPES.get(name) or (key or {}).get("dtype")
        if want and d.dtype != np.dtype(want):
            out.append(f"{name}: dtype {d.dtype}, expected {want} (what rho writes; regenerate or convert the data)")
        ndim = NDIM.get(name)
        if ndim is not None and d.ndim != ndim:
            out.append(f"{name}: shape {d.shape}, expected {ndim} dimension(s)")
            continue
        if name != "initial_state/sim":
            if not d.shape or d.shape[0] != t:
                out.append(f"{name}: {d.shape[0] if d.shape else 0} steps, num_samples says {t}")
            elif t == 0:
                continue
        arr = _read(name, d, out)
        if arr is None:
            continue
        values[name] = arr
        if arr.dtype.kind == "f":
            finite = np.isfinite(arr)
            if not finite.all():
                out.append(f"{name}: contains NaN or inf ({int((~finite).sum())} values, first at step "
                           f"{int(np.argwhere(~finite)[0][0])})")
            big = finite & (np.abs(arr) > ABSURD)
            if big.any():
                out.append(f"{name}: values up to {float(np.abs(arr[big]).max()):.3g} (first at step "
                           f"{int(np.argwhere(big)[0][0])}): beyond any physical value (|x| > {ABSURD:g}, SI units), "
                           "corrupted data")
        if key is not None:
            if tuple(d.shape[1:]) != tuple(key.get("shape", ())):
                out.append(f"{name}: per-step shape {tuple(d.shape[1:])} {d.dtype}, spec says "
                           f"{tuple(key.get('shape', ()))} {key.get('dtype')}")
            else:
                out += _spec_range(name, arr, key)
    if "actions" in values:
        out += _check_actions(values["actions"], bounds)
    out += _check_joints(values.get("obs/joint_pos"), bounds)
    out += _check_saturation(values, limits or {})
    if "dones" in values and len(values["dones"]) and values["dones"][-1] != 1:
        out.append("dones: the last step is not marked done")
    for key in spec:
        if key not in g["obs"]:
            out.append(f"obs/{key}: missing (declared in the observation spec)")
    out += [f"obs/{k}: not in the observation spec" for k in g["obs"] if spec and k not in spec]
    stats["successes"] += bool(g.attrs["success"])
    if t > 0 and not any(p.startswith(("obs/touch", "num_samples")) for p in out):
        out += _check_touch(g, stats, expect_touch, values)
    return out


def _spec_range(name: str, arr: np.ndarray, key: dict[str, Any]) -> list[str]:
    """Values outside the observation spec's finite low/high."""
    out = []
    for bound, bad in (("low", lambda a, b: a < b), ("high", lambda a, b: a > b)):
        b = key.get(bound)
        if isinstance(b, (int, float)) and np.isfinite(b) and arr.size and bad(arr, b).any():
            out.append(f"{name}: values beyond the spec's {bound} {b:g} (e.g. {arr[bad(arr, b)].flat[0]:.4g})")
    return out


def _check_actions(actions: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> list[str]:
    """`actions` (T, 14) must lie in the joint_pos action space (float32 rounding allowed, as the env allows)."""
    if bounds is None or not len(actions):
        return []
    low, high = bounds
    if actions.shape[1:] != low.shape:
        return [f"actions: per-step shape {actions.shape[1:]}, the joint_pos action of this robot is {low.shape}"]
    if actions.dtype.kind != "f":
        actions = actions.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(((actions < low - 1e-6) | (actions > high + 1e-6)).any(axis=0))
    if not len(bad):
        return []
    j = int(bad[0])
    col = actions[:, j][np.isfinite(actions[:, j])]
    span = f"[{col.min():.4g}, {col.max():.4g}]" if len(col) else "[nan]"
    return [f"actions: dim(s) {bad.tolist()} outside the joint_pos action space, e.g. dim {j} spans "
            f"{span}, allowed [{low[j]:.4g}, {high[j]:.4g}]"]


def _check_joints(joints: np.ndarray | None, bounds: tuple[np.ndarray, np.ndarray] | None) -> list[str]:
    """Measured joints (obs/joint_pos, the joint_pos layout) within the joint limits, ± JOINT_SLACK."""
    if joints is None or bounds is None or not len(joints) or joints.shape[1:] != bounds[0].shape:
        return []
    low, high = bounds[0] - JOINT_SLACK, bounds[1] + JOINT_SLACK
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(((joints < low) | (joints > high)).any(axis=0))
    if not len(bad):
        return []
    j = int(bad[0])
    col = joints[:, j][np.isfinite(joints[:, j])]
    span = f"[{col.min():.4g}, {col.max():.4g}]" if len(col) else "[nan]"
    return [f"obs/joint_pos: dim(s) {bad.tolist()} outside the joint limits, e.g. dim {j} reads {span}, limits "
            f"[{bounds[0][j]:.4g}, {bounds[1][j]:.4g}] (± {JOINT_SLACK})"]


def _check_saturation(values: dict[str, np.ndarray], limits: dict[str, float]) -> list[str]:
    """Touch readings within the sensors' saturation (the sensor model clips to it)."""
    out = []
    for name, arr in values.items():
        kind = "net" if name.startswith("obs/touch_net_") else "taxel" if name.startswith("obs/touch_") else None
        if kind not in limits or arr.dtype.kind != "f" or not arr.size:
            continue
        sat = limits[kind]
        with np.errstate(invalid="ignore"):
            peak = np.nanmax(np.abs(arr)) if np.isfinite(arr).any() else 0.0
        if peak > sat * (1 + 1e-4) + 1e-6:
            out.append(f"{name}: reads up to {peak:.4g} N, beyond the {kind} sensor's saturation of {sat:g} N "
                       "(env_config.touch." + kind + ".saturation): the sensor cannot report it")
    return out


def _check_touch(g: h5py.Group, stats: dict[str, Any], expect_touch: bool,
                 values: dict[str, np.ndarray] | None = None) -> list[str]:
    """A successful contact task must have felt something, and the taxels must add up to the pad's net force."""
    values = values or {}
    nets = [k for k in g["obs"] if k.startswith("touch_net_") and f"obs/{k}" in values]
    nets = [k for k in nets if values[f"obs/{k}"].ndim == 2 and len(values[f"obs/{k}"])]
    if not nets:
        return []
    peak = max(float(np.nanmax(values[f"obs/{k}"][:, 0])) for k in nets)
    touched = peak > TOUCH_CONTACT_N
    stats["touch_demos"] += touched
    out = []
    if bool(g.attrs["success"]) and not touched and expect_touch:
        out.append(f"touch: successful demo but no pad ever read more than {TOUCH_CONTACT_N} N (peak {peak:.2f} N)")
    for k in nets:
        grid = f"obs/touch_{k[len('touch_net_'):]}"
        if grid not in values or values[grid].ndim != 5:
            continue
        net, taxels = values[f"obs/{k}"][:, 0], values[grid][:, -1, ..., 0].sum(axis=(-1, -2))  # newest sample
        pressed = net > 3 * TOUCH_CONTACT_N
        if pressed.any():
            err = np.median(np.abs(taxels[pressed] - net[pressed]) / net[pressed])
            if err > 0.25:
                out.append(f"{grid[4:]}: taxels sum to {err:.0%} off the pad's net force while pressed")
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
            if "default" in grp.attrs:  # a chosen split: rho train follows it from now on
                del grp.attrs["default"]
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
        write_default_masks(f, names)
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
