"""`rho rl play`: run a checkpoint's episodes in the env it trained in, render them and report success.

Writes `out/episodes.png` (a row of `frames` `cam_high` frames per episode, evenly spaced over that episode, the
last one the step before it ended; a green bar marks success, red failure), `out/episode_0.mp4` (the first episode, when PyAV is installed) and `out/summary.json`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rho.config import ConfigError, load_config


@dataclass
class RlPlayCfg:
    """Settings of `rho rl play`; `env` is the task's env config, defaulting to the one the checkpoint trained in."""

    checkpoint: str = ""  # run directory (its latest.pt) or a model_<it>.pt
    episodes: int = 4  # episodes to run (one env each, stepped together)
    out: str = "runs/rl/play"
    seed: int = 1000  # episode seeds derive from it (training used agent.seed)
    frames: int = 6  # frames per episode in the strip
    width: int = 320  # rendered frame size (px)
    height: int = 240
    video: bool = True  # also write episode_0.mp4
    env: Any = None

    def validate(self) -> list[str]:
        out = [f"{k} must be >= 1, got {getattr(self, k)}" for k in ("episodes", "frames") if getattr(self, k) < 1]
        if not self.checkpoint:
            out.append("checkpoint is required, e.g. checkpoint=runs/rl/plug (a `rho rl train` out directory)")
        return out


def load_play_config(overrides: list[str]) -> Any:
    """The play config, `env` typed as (and defaulting to) the checkpoint's task env config."""
    from rho.config import config_from_dict
    from rho.tasks import get_task

    from .expert import load_checkpoint

    ckpt = next((o.split("=", 1)[1] for o in overrides if o.startswith("checkpoint=")), "")
    if not ckpt:
        raise ConfigError(["checkpoint: required, e.g. checkpoint=runs/rl/plug (a `rho rl train` out directory) "
                           "or checkpoint=runs/rl/plug/model_300.pt"])
    try:
        _, _, meta = load_checkpoint(ckpt)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError([f"checkpoint={ckpt}: {e}"]) from e
    entry = get_task(meta["task"])
    trained = config_from_dict(entry.cfg_cls, meta["env"])
    schema = dataclasses.make_dataclass(
        "RlPlayCfg", [("env", entry.cfg_cls, dataclasses.field(default_factory=lambda: trained))], bases=(RlPlayCfg,))
    return load_config(schema, overrides=overrides)


def play(cfg, progress: bool = True) -> dict[str, Any]:
    from PIL import Image
    from tqdm import tqdm

    from rho.sim.render import Renderer
    from rho.tasks import get_task
    from rho.tasks.run_expert import wilson_interval

    from .expert import RlExpert, load_checkpoint

    _, _, meta = load_checkpoint(cfg.checkpoint)
    entry = get_task(meta["task"])
    env_cfg = dataclasses.replace(cfg.env, num_envs=cfg.episodes, seed=cfg.seed, cameras={})
    env_cfg.action = dataclasses.replace(env_cfg.action, mode=meta["action_mode"])
    env = entry.env_cls(env_cfg)
    expert = RlExpert(env, cfg.checkpoint)
    renderer = Renderer(env.model, cfg.width, cfg.height)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    obs, _ = env.reset(seed=cfg.seed)
    expert.reset(None)
    n, T = env.num_envs, env.max_episode_steps
    frames: list[list[np.ndarray]] = [[] for _ in range(n)]
    video = _video(cfg, env)
    done = np.zeros(n, bool)
    success = np.zeros(n, bool)
    length = np.full(n, T)
    peak = np.zeros(n)
    seeds = [int(s) for s in env.episode_seed]
    every = max(1, T // 120)  # keep a frame every `every` steps, pick `frames` evenly spaced ones at the end
    t0 = time.perf_counter()

    def shoot(i: int) -> np.ndarray:
        m, d = env._env_model_data(i)
        return renderer.render(m, d, "cam_high", cfg.width, cfg.height)[0].copy()

    last = [shoot(i) for i in range(n)]
    for i in range(n):
        frames[i].append(last[i])
    bar = tqdm(total=n, desc=f"play {entry.name}", unit="ep", disable=not progress)
    for t in range(1, T + 1):
        obs, _, term, trunc, info = env.step(expert.act(obs))
        force = env.pad_forces()[..., 0].max(axis=1)  # privileged net normal force, strongest pad (N)
        fin = (term | trunc) & ~done
        peak = np.where(done | fin, peak, np.maximum(peak, force))  # a finished env has already autoreset
        for i in np.flatnonzero(fin):
            success[i], length[i] = bool(info["final_info"]["success"][i]), t
            frames[i].append(last[i])  # its final state is gone (same-step autoreset): the step before it
        for i in np.flatnonzero(fin):
            expert.reset(np.array([i]))
        done |= fin
        bar.update(int(fin.sum()))
        for i in np.flatnonzero(~done):
            last[i] = shoot(i)
            if t % every == 0:
                frames[i].append(last[i])
        if video is not None and not done[0]:
            video.add(last[0])
        if done.all():
            break
    for i in np.flatnonzero(~done):  # ran to the end without the env reporting it (cannot happen with time limits)
        frames[i].append(last[i])
    bar.close()
    frames = [[f[k] for k in np.linspace(0, len(f) - 1, min(cfg.frames, len(f))).round().astype(int)] for f in frames]
    strip = _strip(frames, success, length, env.control_dt)
    Image.fromarray(strip).save(out / "episodes.png")
    files = {"strip": str(out / "episodes.png")}
    if video is not None:
        (out / "episode_0.mp4").write_bytes(video.close())
        files["video"] = str(out / "episode_0.mp4")
    k = int(success.sum())
    lo, hi = wilson_interval(k, n)
    summary = {"task": entry.name, "expert": f"{expert.name}@{expert.version}", "checkpoint": str(expert.path),
               "episodes": n, "successes": k, "success_rate": k / n, "ci95": [lo, hi],
               "episode_steps": length.tolist(), "peak_pad_force_n": peak.round(3).tolist(), "episode_seeds": seeds,
               "wall_s": time.perf_counter() - t0, **files}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    renderer.close()
    env.close()
    return summary


def _video(cfg, env):
    if not cfg.video:
        return None
    try:
        from rho.eval.video import Mp4Writer

        return Mp4Writer(fps=1.0 / env.control_dt)
    except ImportError:
        return None


def _strip(frames: list[list[np.ndarray]], success: np.ndarray, length: np.ndarray, dt: float) -> np.ndarray:
    """Rows of frames, one per episode, with a green (success) or red (failure) bar on the left."""
    k = max(len(f) for f in frames)
    h, w = frames[0][0].shape[:2]
    out = np.full((len(frames) * (h + 4), 12 + k * (w + 4), 3), 255, np.uint8)
    for r, row in enumerate(frames):
        y = r * (h + 4)
        out[y:y + h, :8] = (40, 170, 60) if success[r] else (200, 40, 40)
        for c, img in enumerate(row):
            x = 12 + c * (w + 4)
            out[y:y + h, x:x + w] = img
    return out


def describe(summary: dict[str, Any]) -> str:
    lo, hi = summary["ci95"]
    return (f"{summary['task']}: {summary['expert']} succeeded in {summary['successes']}/{summary['episodes']} "
            f"episodes ({summary['success_rate']:.0%}, 95% CI {lo:.0%}–{hi:.0%}); strip {summary['strip']}"
            + (f", video {summary['video']}" if "video" in summary else ""))
