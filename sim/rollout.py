"""`rho rollout`: run a task headless with cameras and touch, and write what the robot saw and felt.

Output directory:

    <out>/
      rollout.npz     every observation key stacked over time, (T, n, ...), plus actions, rewards, success
      cameras.png     contact sheet of env 0: one row per camera, one column every `frame_every` steps
      touch.png       normal force per taxel of env 0: one row per pad, same columns (white 0 N → red max)
      summary.json    task, seeds, instruction, randomization drawn, success, peak pad forces, observation spec

The directory holds one run's outputs: before simulating, a run removes those of the names above that an earlier
run left there (a camera-less run must not sit beside the previous run's cameras.png), as build tools delete an
action's declared outputs before running it. Files of other names are the user's and are left alone. `summary.json`
lists only what this run wrote (`files`, name → bytes, summary.json itself aside) and the earlier run's outputs it
removed without writing them again (`removed_stale`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

from rho.config import ConfigError, config_to_dict


@dataclass
class RolloutCfg:
    """Settings of `rho rollout`; `env` is the task's own config class (see `rollout_schema`)."""

    task: str = "lift_block"  # registered task name (`rho tasks` lists them)
    out: str = "runs/rollout"  # output directory
    steps: int = 120  # most control steps; the rollout ends early once every env has finished an episode
    policy: Literal["expert", "random", "home"] = "expert"  # scripted expert, uniform random, or hold home pose
    frame_every: int = 10  # control steps between frames in the pictures
    env: Any = None

    def validate(self) -> list[str]:
        out = [] if self.steps >= 1 else [f"steps must be >= 1, got {self.steps}"]
        if self.frame_every < 1:
            out.append(f"frame_every must be >= 1, got {self.frame_every}")
        return out


def rollout_schema(task: str) -> type:
    """RolloutCfg with `env` typed as the task's config class."""
    from rho.tasks.registry import with_task_env

    return with_task_env(RolloutCfg, task)


def run_rollout(cfg: RolloutCfg, progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    from rho.tasks import get_task

    entry = get_task(cfg.task)
    if cfg.policy == "expert":
        if entry.expert_cls is None:
            raise ValueError(f"task {entry.name!r} has no scripted expert; use policy=random or policy=home")
        cfg.env.action.mode = entry.expert_action_mode
    removed = _prepare_out(cfg.out)
    out = Path(cfg.out)
    env = entry.env_cls(cfg.env)
    expert = entry.expert_cls(env) if cfg.policy == "expert" else None
    rng = np.random.default_rng(cfg.env.seed)
    obs, info = env.reset(seed=cfg.env.seed)
    params = info["randomization"]
    record: dict[str, list[np.ndarray]] = {k: [v] for k, v in obs.items()}
    record.update(actions=[], rewards=[], success=[])
    ever = np.zeros(env.num_envs, bool)
    finished = np.zeros(env.num_envs, bool)
    t0 = time.perf_counter()
    for _ in tqdm(range(cfg.steps), desc=f"rollout {entry.name}", disable=not progress, unit="step"):
        action = _act(cfg.policy, env, expert, obs, rng)
        obs, rew, term, trunc, info = env.step(action)
        ever |= info["success"]
        done = term | trunc
        if done.any():  # record the episode's last observation, not the next episode's first
            obs_rec = {k: np.where(_bcast(done, v), info["final_obs"][k], v) for k, v in obs.items()}
            if expert is not None:
                expert.reset(np.flatnonzero(done))
        else:
            obs_rec = obs
        finished |= done
        for k, v in obs_rec.items():
            record[k].append(v)
        record["actions"].append(action.astype(np.float32))
        record["rewards"].append(rew.astype(np.float32))
        record["success"].append(info["success"])
        if finished.all():
            break
    wall = time.perf_counter() - t0
    steps = len(record["actions"])
    arrays = {k: np.stack(v) for k, v in record.items()}
    written: list[Path] = []
    with _atomic(out / "rollout.npz", written) as tmp:
        np.savez_compressed(tmp, **arrays)
    cams = [k for k in env.obs_spec.names if k.startswith("rgb_")]
    pads = [f"touch_{p}" for p in env.pads] if env.cfg.touch.enabled else []
    frames = list(range(0, steps + 1, cfg.frame_every))
    if frames[-1] != steps:
        frames.append(steps)
    if cams:
        with _atomic(out / "cameras.png", written) as tmp:
            _contact_sheet([arrays[c][frames, 0] for c in cams], cams, frames).save(tmp, format="PNG")
    if pads:
        with _atomic(out / "touch.png", written) as tmp:
            _touch_sheet([arrays[p][frames, 0, -1] for p in pads], pads, frames).save(tmp, format="PNG")
    summary = _summary(cfg, env, arrays, ever, params, wall, steps, written, removed)
    with _atomic(out / "summary.json", written) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=_jsonable))
    env.close()
    return summary


OUTPUTS = ("rollout.npz", "cameras.png", "touch.png", "summary.json")  # the names a rollout owns in its out dir


def _prepare_out(spec: str) -> list[str]:
    """Create the directory `spec` (or refuse it before any simulation) and remove the rollout outputs an earlier
    run left there (`OUTPUTS` and their `.tmp-` files from a killed run); returns the names removed. Other files
    are untouched."""
    if not spec.strip():
        raise ConfigError(["out: empty path. Fix: out=<directory>, e.g. out=runs/rollout"])
    out = Path(spec)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError([f"out={out}: expected a directory, but it (or a parent) is a file. Fix: out=<a new "
                           "or existing directory>"]) from None
    except PermissionError as e:
        raise ConfigError([f"out={out}: cannot create the directory ({e.strerror}). Fix: out=<a writable "
                           "directory>"]) from None
    removed = []
    for name in OUTPUTS:
        for p in (out / name, out / f".tmp-{name}"):
            if p.is_file() or p.is_symlink():
                try:
                    p.unlink()
                except OSError as e:
                    raise ConfigError([f"out={out}: cannot remove {p.name} of an earlier run ({e.strerror}). Fix: "
                                       "out=<a writable directory>, or remove it yourself"]) from None
                removed.append(p.name)
    return removed


@contextlib.contextmanager
def _atomic(path: Path, written: list[Path] | None = None):
    """Write to a temporary file beside `path` and rename it into place: a killed run never leaves half a file.
    The path is appended to `written` once it is in place."""
    tmp = path.with_name(f".tmp-{path.name}")  # keeps the suffix: numpy and PIL pick formats from it
    try:
        yield tmp
        os.replace(tmp, path)
        if written is not None:
            written.append(path)
    finally:
        tmp.unlink(missing_ok=True)


def _act(policy: str, env, expert, obs, rng: np.random.Generator) -> np.ndarray:
    if policy == "expert":
        return expert.act(obs)
    space = env.single_action_space
    if policy == "random":
        return rng.uniform(space.low, space.high, (env.num_envs, space.shape[0])).astype(np.float32)
    home = np.concatenate([np.append(env.home[a], 1.0) for a in range(len(env.robot.arms))])
    return np.tile(home, (env.num_envs, 1)).astype(np.float32)


def _bcast(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    return mask.reshape(mask.shape + (1,) * (like.ndim - 1))


def _summary(cfg, env, arrays, ever, params, wall, steps, written: list[Path], removed: list[str]) -> dict[str, Any]:
    """The run's summary; `files` maps each file this run wrote before summary.json to its size (bytes)."""
    peak = {p: float(np.abs(arrays[f"touch_net_{p}"][..., 0]).max()) for p in env.pads} \
        if env.cfg.touch.enabled else {}
    return {
        "task": env.task_name, "out": str(Path(cfg.out).resolve()), "steps": steps, "num_envs": env.num_envs,
        "policy": cfg.policy, "control_hz": 1 / env.control_dt, "touch_hz": env.touch_hz,
        "success": ever.tolist(), "success_rate": float(ever.mean()),
        "instructions": [p.get("instruction", "") for p in params],
        "peak_pad_normal_force_N": peak, "wall_s": wall,
        "sim_seconds": steps * env.control_dt,
        "randomization": params,
        "files": {p.name: p.stat().st_size for p in written},
        "removed_stale": [n for n in removed if n not in {p.name for p in written} | {"summary.json"}],
        "observations": {k: {"shape": list(arrays[k].shape), "dtype": str(arrays[k].dtype),
                             "unit": env.obs_spec[k].unit, "rate_hz": env.obs_spec[k].rate_hz}
                         for k in env.obs_spec.names},
        "config": config_to_dict(cfg.env),
    }


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


def _label(img: Image.Image, text: str) -> Image.Image:
    ImageDraw.Draw(img).text((3, 2), text, fill=(255, 255, 0))
    return img


def _contact_sheet(rows: list[np.ndarray], names: list[str], frames: list[int], size: int = 128) -> Image.Image:
    """rows: per camera (frames, H, W, 3) uint8 → one picture, cameras down, time across."""
    sheet = Image.new("RGB", (size * len(frames), size * len(rows)), (0, 0, 0))
    for r, (imgs, name) in enumerate(zip(rows, names, strict=True)):
        for c, img in enumerate(imgs):
            tile = Image.fromarray(img).resize((size, size), Image.BILINEAR)
            sheet.paste(_label(tile, f"{name[4:]} t={frames[c]}" if c == 0 else f"t={frames[c]}"),
                        (c * size, r * size))
    return sheet


def _touch_sheet(rows: list[np.ndarray], names: list[str], frames: list[int], size: int = 128) -> Image.Image:
    """rows: per pad (frames, r, c, 3) N → normal-force heatmaps, white (0 N) to red (the run's max)."""
    vmax = max(1e-6, max(float(r[..., 0].max()) for r in rows))
    sheet = Image.new("RGB", (size * len(frames), size * len(rows)), (255, 255, 255))
    for r, (grids, name) in enumerate(zip(rows, names, strict=True)):
        for c, g in enumerate(grids):
            v = np.clip(g[..., 0] / vmax, 0, 1)
            rgb = np.stack([np.full_like(v, 255), 255 * (1 - v), 255 * (1 - v)], -1).astype(np.uint8)
            tile = Image.fromarray(rgb).resize((size - 4, size - 4), Image.NEAREST)
            canvas = Image.new("RGB", (size, size), (200, 200, 200))
            canvas.paste(tile, (2, 2))
            text = f"{name[6:]} {g[..., 0].sum():.1f}N" if c == 0 else f"{g[..., 0].sum():.1f}N"
            ImageDraw.Draw(canvas).text((4, 3), text, fill=(0, 0, 0))
            sheet.paste(canvas, (c * size, r * size))
    return sheet


def describe(summary: dict[str, Any]) -> str:
    """Human-readable report of a rollout summary."""
    lines = [f"rollout of {summary['task']} ({summary['num_envs']} env, {summary['steps']} steps = "
             f"{summary['sim_seconds']:.1f} s simulated in {summary['wall_s']:.1f} s wall, policy "
             f"{summary['policy']}) written to {summary['out']}"]
    lines += [f"  {name:14s} {size / 1024:8.1f} KiB" for name, size in summary["files"].items()]
    lines.append("  summary.json")
    if summary.get("removed_stale"):
        lines.append(f"  (removed from an earlier run: {', '.join(summary['removed_stale'])})")
    lines.append(f"instruction: {summary['instructions'][0]!r}; success: {summary['success']}")
    if summary["peak_pad_normal_force_N"]:
        peaks = ", ".join(f"{k} {v:.1f} N" for k, v in summary["peak_pad_normal_force_N"].items())
        lines.append(f"peak pad normal force: {peaks}")
    lines.append("observations (T, n, ...):")
    lines += [f"  {k:22s} {tuple(v['shape'])!s:24s} {v['dtype']:8s} {v['unit']:10s} {v['rate_hz']:g} Hz"
              for k, v in summary["observations"].items()]
    return "\n".join(lines)
