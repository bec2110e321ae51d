"""`rho rl curve`: the learning curve of a `rho rl train` run — every checkpoint's deterministic policy evaluated
over the same seeded episodes, beside the training log (success of the stochastic policy while it trained) —
as `curve.json` and `curve.png` in the run directory.

Episodes are fixed per env slot: slot i of `num_envs` runs the episodes seeded from (seed, i, 0..k−1), so every
checkpoint (and the scripted expert, `baseline=true`) meets the same initial states and randomization draws.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rho.config import ConfigError, load_config


@dataclass
class RlCurveCfg:
    """Settings of `rho rl curve`."""

    run: str = ""  # a `rho rl train` out directory
    episodes: int = 50  # per checkpoint (a multiple of num_envs)
    num_envs: int = 10
    seed: int = 1000  # evaluation episode seeds (training used agent.seed)
    every: int = 1  # evaluate every n-th checkpoint (the last one always)
    baseline: bool = True  # also evaluate the scripted expert on the same episodes
    threads: int = 1  # torch threads

    def validate(self) -> list[str]:
        out = [f"{k} must be >= 1, got {getattr(self, k)}" for k in ("episodes", "num_envs", "every")
               if getattr(self, k) < 1]
        if self.episodes % max(1, self.num_envs):
            out.append(f"episodes ({self.episodes}) must be a multiple of num_envs ({self.num_envs})")
        if not self.run:
            out.append("run is required: run=<a rho rl train out directory>")
        return out


def run_fixed_episodes(env, expert, per_slot: int, seed: int) -> dict[str, Any]:
    """Run `per_slot` episodes in every env slot (seeds fixed per slot); success, length (steps) and peak pad
    normal force (N, privileged, strongest pad) of each, in slot-major order."""
    n = env.num_envs
    obs, _ = env.reset(seed=seed)
    expert.reset(None)
    count = np.zeros(n, int)
    res: list[list[tuple[bool, int, float]]] = [[] for _ in range(n)]
    peak = np.zeros(n)
    while (count < per_slot).any():
        obs, _, term, trunc, info = env.step(expert.act(obs))
        done = term | trunc
        peak = np.where(done, peak, np.maximum(peak, env.pad_forces()[..., 0].max(axis=1)))
        if done.any():
            fin = info["final_info"]
            ids = np.flatnonzero(done)
            for i in ids:
                if count[i] < per_slot:
                    res[i].append((bool(fin["success"][i]), int(fin["episode_length"][i]), float(peak[i])))
                count[i] += 1
            peak[ids] = 0.0
            expert.reset(ids)
    flat = [r for slot in res for r in slot]
    return {"success": [r[0] for r in flat], "length": [r[1] for r in flat], "peak_force": [r[2] for r in flat]}


def _summ(r: dict[str, Any]) -> dict[str, Any]:
    from rho.tasks.run_expert import wilson_interval

    k, n = int(np.sum(r["success"])), len(r["success"])
    return {"episodes": n, "successes": k, "success_rate": k / n, "ci95": list(wilson_interval(k, n)),
            "mean_length": float(np.mean(r["length"])),
            "median_peak_force_n": float(np.median(r["peak_force"]))}


def curve(cfg: RlCurveCfg, progress: bool = True) -> dict[str, Any]:
    import torch
    from tqdm import tqdm

    from rho.config import config_from_dict
    from rho.tasks import get_task

    from .expert import RlExpert, load_checkpoint

    torch.set_num_threads(cfg.threads)
    run = Path(cfg.run)
    ckpts = sorted(run.glob("model_*.pt"), key=lambda p: int(re.findall(r"\d+", p.stem)[0]))
    if not ckpts:
        raise ConfigError([f"run={run}: no model_<it>.pt checkpoints. Fix: pass the out= directory of a "
                           "`rho rl train` run that saved at least one checkpoint"])
    picked = ckpts[::cfg.every] + ([ckpts[-1]] if (len(ckpts) - 1) % cfg.every else [])
    try:  # every checkpoint read (weights only, no code run) and checked before any episode
        metas = {p: load_checkpoint(p)[2] for p in picked}
    except ValueError as e:
        raise ConfigError([f"run={run}: {e}"]) from None
    meta = metas[picked[-1]]
    tasks = sorted({m["task"] for m in metas.values()})
    if len(tasks) > 1:
        raise ConfigError([f"run={run}: checkpoints of different tasks {tasks}. Fix: one `rho rl train` run per "
                           "directory"])
    log = _training_log(run / "progress.jsonl")  # read before the evaluation work, so a bad log fails first
    entry = get_task(meta["task"])
    env_cfg = config_from_dict(entry.cfg_cls, meta["env"])
    env_cfg = dataclasses.replace(env_cfg, num_envs=cfg.num_envs, cameras={})
    env = entry.env_cls(env_cfg)
    per_slot = cfg.episodes // cfg.num_envs
    points = []
    bar = tqdm(total=len(picked) + cfg.baseline, desc="curve", unit="ckpt", disable=not progress)
    t0 = time.perf_counter()
    base = None
    if cfg.baseline:
        base = {"expert": f"{entry.expert_cls.name}@{entry.expert_cls.version}",
                **_summ(run_fixed_episodes(env, entry.expert_cls(env), per_slot, cfg.seed))}
        bar.update(1)
    for path in picked:
        m = metas[path]
        r = run_fixed_episodes(env, RlExpert(env, path), per_slot, cfg.seed)
        points.append({"checkpoint": path.name, "iteration": m["iteration"], "env_steps": m["env_steps"],
                       "train_wall_s": m["wall_s"], **_summ(r)})
        bar.update(1)
        bar.set_postfix(it=m["iteration"], success=f"{points[-1]['success_rate']:.2f}")
    bar.close()
    env.close()
    out = {"task": entry.name, "run": str(run.resolve()), "episodes": cfg.episodes, "seed": cfg.seed,
           "env": {k: meta["env"][k] for k in ("clearance",) if k in meta["env"]}, "baseline": base,
           "points": points, "eval_wall_s": time.perf_counter() - t0}
    (run / "curve.json").write_text(json.dumps(out, indent=1))
    out["png"] = str(plot(out, log, run / "curve.png"))
    return out


def _training_log(path: Path) -> list[dict[str, Any]]:
    """The rows of progress.jsonl (none when it is missing: the plot then shows the checkpoints alone)."""
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"env_steps": int(row["env_steps"]), "episodes": int(row["episodes"]),
                         "success": row.get("success")})
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError([f"{path} line {n}: not a training-log row ({type(e).__name__}: {e}). Fix: restore "
                               "the file written by `rho rl train`, or remove it to plot the checkpoints alone"]) from None
    return rows


def plot(data: dict[str, Any], log: list[dict[str, Any]], path: Path) -> Path:
    """Success vs env steps (bottom axis) and training wall-clock (top axis): checkpoints' deterministic policy
    with 95% CIs, the training log's success (stochastic policy, 25-iteration window, or the whole run when shorter), the scripted baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    pts = data["points"]
    x = np.array([p["env_steps"] for p in pts]) / 1e3
    y = np.array([p["success_rate"] for p in pts])
    lo = np.maximum(y - np.array([p["ci95"][0] for p in pts]), 0.0)  # float round-off at 0% / 100%
    hi = np.maximum(np.array([p["ci95"][1] for p in pts]) - y, 0.0)
    ax.errorbar(x, y, yerr=[lo, hi], marker="o", ms=4, capsize=2, color="C0",
                label=f"RL expert, deterministic ({data['episodes']} fixed episodes, 95% CI)")
    if log:
        steps = np.array([r["env_steps"] for r in log]) / 1e3
        eps = np.array([r["episodes"] for r in log], float)
        succ = np.array([(r["success"] or 0.0) * r["episodes"] for r in log])
        w = min(25, len(log))  # a run shorter than the window: one window over all of it
        k = np.ones(w)
        rate = np.convolve(succ, k, "valid") / np.maximum(np.convolve(eps, k, "valid"), 1)
        ax.plot(steps[w - 1:], rate, color="C1", alpha=0.7, lw=1, marker="." if len(rate) == 1 else None,
                label=f"training episodes (stochastic policy, {w}-iteration window)")
    if data.get("baseline"):
        b = data["baseline"]
        ax.axhline(b["success_rate"], color="C3", ls="--", lw=1,
                   label=f"scripted expert {b['success_rate']:.0%} (same episodes)")
        ax.axhspan(b["ci95"][0], b["ci95"][1], color="C3", alpha=0.08)
    ax.set_xlabel("environment steps (thousands; 50 Hz control steps, all envs)")
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1.02)
    clearance = data.get("env", {}).get("clearance")
    ax.set_title(f"{data['task']}" + (f", clearance {clearance * 1e3:.2f} mm" if clearance else ""))
    wall = np.array([p["train_wall_s"] for p in pts]) / 60
    if len(pts) > 1 and (np.diff(x) > 0).all() and (np.diff(wall) > 0).all():  # a monotone map: 2+ checkpoints
        top = ax.secondary_xaxis("top", functions=(lambda s: np.interp(s, x, wall),
                                                   lambda m: np.interp(m, wall, x)))
        top.set_xlabel("training wall-clock (min, one CPU core)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def load_curve_config(overrides: list[str]) -> RlCurveCfg:
    return load_config(RlCurveCfg, overrides=overrides)


def describe(out: dict[str, Any]) -> str:
    lines = [f"{out['task']}: {len(out['points'])} checkpoints × {out['episodes']} episodes → {out['png']}"]
    if out["baseline"]:
        b = out["baseline"]
        lines.append(f"  scripted {b['success_rate']:.0%} ({b['ci95'][0]:.0%}–{b['ci95'][1]:.0%})")
    for p in out["points"]:
        lines.append(f"  it {p['iteration']:5d} ({p['env_steps']:8d} steps, {p['train_wall_s'] / 60:5.1f} min) "
                     f"{p['success_rate']:.0%} ({p['ci95'][0]:.0%}–{p['ci95'][1]:.0%})")
    return "\n".join(lines)
