"""Evaluation suites: tasks × randomization levels × N fixed, seeded episodes per cell.

A suite is a `SuiteCfg`; the named ones are YAML files under `configs/eval/` (`smoke`, `standard`,
`generalization`). Levels:

    nominal   the task's default randomization (the training distribution)
    shifted   lighting, colours, camera pose, sensor noise/gain/latency and friction pushed beyond the training
              ranges (`shift`, a full `RandomizationCfg`; default `shifted_randomization()`)
    held_out  what training never saw: BusyBox layouts of the held-out split, the held-out plug type, and
              instructions paraphrased with templates no task draws from (`rho.eval.held_out`)

Episode k of cell (task, level) always starts from the episode seed `episode_seed(seed, task, level, k)`, fed to
the env through `env.episode_seed_fn`, so two policies evaluated with the same suite seed meet the same initial
states, randomization draws and sensor calibrations.
"""

from __future__ import annotations

import copy
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rho.sim.randomization import PhysicsRandCfg, RandomizationCfg, Range, SensorRandCfg, VisualRandCfg

Level = Literal["nominal", "shifted", "held_out"]
LEVELS: tuple[str, ...] = ("nominal", "shifted", "held_out")
SUITE_DIR = "eval"  # bundled suites: configs/eval/<name>.yaml


def shifted_randomization() -> RandomizationCfg:
    """Randomization beyond the training ranges of `RandomizationCfg` (which are noted beside each value)."""
    return RandomizationCfg(
        physics=PhysicsRandCfg(friction_scale=Range(0.5, 0.8)),  # train 0.8–1.2: slippery props and pads
        visual=VisualRandCfg(
            light_intensity=Range(0.15, 0.35),  # train 0.4–0.8: dim scene
            light_dir_jitter=Range(0.3, 0.7),  # train 0–0.3 rad
            color_jitter=0.3,  # train 0.1
            camera_pos_jitter=0.03,  # train 0.01 m
            camera_rot_jitter=0.06),  # train 0.02 rad
        sensor=SensorRandCfg(
            touch_gain=Range(0.7, 0.9),  # train 0.9–1.1: pads under-read
            noise_scale=Range(1.5, 3.0),  # train 0.5–1.5
            extra_latency_s=Range(0.02, 0.04)))  # train 0–0.02 s


@dataclass
class SuiteCfg:
    """One evaluation suite and how to run it."""

    name: str = "custom"  # shown in reports
    tasks: list[str] = field(default_factory=lambda: ["all"])  # registered task names; "all" = every task
    levels: list[Level] = field(default_factory=lambda: ["nominal"])  # randomization levels (see module doc)
    episodes: int = 10  # episodes per (task, level) cell
    seed: int = 0  # suite seed: episode seeds derive from (seed, task, level, episode index)
    num_envs: int = 4  # envs stepped together in one worker
    workers: int = 1  # worker processes (launcher=local); with 1 the episodes run in this process
    torch_threads: int = 0  # torch threads per worker for policy inference; 0: cores / workers, at most 1 —
    # a policy step is a small batch: 1 thread took 12 ms, 2 threads on a busy 2-core machine 172 ms (measured)
    launcher: Literal["local", "ray"] = "local"  # local processes, or Ray tasks on a cluster
    ray_address: str | None = None  # launcher=ray: cluster address ("auto" joins one); None starts a local one
    force_limit: float = 40.0  # pad net normal force above which a control step counts as a violation (N)
    videos: int = 1  # episodes per cell recorded as H.264 mp4 with touch heatmaps (the first ones)
    traces: int = 2  # episodes per cell whose force and taxel time series are kept for the plots
    taxel_vmax: float = 5.0  # top of the taxel colour scale in videos and heatmaps (N)
    shift: RandomizationCfg = field(default_factory=shifted_randomization)  # the `shifted` level's randomization
    held_out_plug: str = "rect"  # plug type kept out of nominal/shifted and evaluated alone in held_out
    seeds_from: list[str] = field(default_factory=list)  # datasets whose demos' episode seeds replace the suite's
    # for their task (the first `episodes` of them): an overfit check on training seeds. Default (empty): the
    # suite's own seeds, which datagen never draws (see `episode_seed`)
    env: dict[str, Any] = field(default_factory=dict)  # overrides of every task's env config, e.g. episode_length_s

    def validate(self) -> list[str]:
        out = [f"{k} must be >= {lo}, got {getattr(self, k)}" for k, lo in
               (("episodes", 1), ("num_envs", 1), ("workers", 1), ("videos", 0), ("traces", 0), ("seed", 0),
                ("torch_threads", 0))
               if getattr(self, k) < lo]
        if self.force_limit <= 0 or self.taxel_vmax <= 0:
            out.append(f"force_limit and taxel_vmax must be > 0 N, got {self.force_limit}, {self.taxel_vmax}")
        if not self.levels or not set(self.levels) <= set(LEVELS):
            out.append(f"levels must be a non-empty list of {list(LEVELS)}, got {list(self.levels)}")
        if not self.tasks:
            out.append("tasks must name at least one registered task (or 'all')")
        return out + _task_problems(self.tasks) + _plug_problems(self.held_out_plug)

    def task_names(self) -> list[str]:
        """The suite's tasks in registry order (`all` expands to every registered task)."""
        from rho.tasks import ALL_TASKS, get_task

        if "all" in self.tasks:
            return list(ALL_TASKS)
        return list(dict.fromkeys(get_task(t).name for t in self.tasks))


@dataclass
class EvalCfg(SuiteCfg):
    """`rho eval`: a suite plus the policy to evaluate and where the report goes."""

    policy: str = "expert"  # expert | random | rl:<checkpoint> | a trained policy directory (Policy.load)
    suite: str = "smoke"  # a bundled suite (configs/eval/<name>.yaml) or a path to a suite YAML
    out: str = "runs/eval"  # report directory


def _task_problems(tasks: list[str]) -> list[str]:
    from rho.tasks import get_task

    out = []
    for t in tasks:
        if t == "all":
            continue
        try:
            get_task(t)
        except KeyError as e:
            out.append(f"tasks: {e.args[0]}")
    return out


def _plug_problems(plug: str) -> list[str]:
    try:
        from rho.assets.plug_socket import PLUG_TYPES
    except ImportError:  # no plug task in this install: nothing to check against
        return []
    return [] if plug in PLUG_TYPES else [f"held_out_plug must be one of {list(PLUG_TYPES)}, got {plug!r}"]


def episode_seed(suite_seed: int, task: str, level: str, index: int) -> int:
    """The episode seed of episode `index` of cell (task, level); stable across runs, machines and Python
    versions (crc32, not `hash`)."""
    key = (int(suite_seed), zlib.crc32(task.encode()), zlib.crc32(level.encode()), int(index))
    return int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0])


def bundled_suites() -> list[str]:
    """Names of the suites shipped under configs/eval/."""
    from importlib import resources

    root = resources.files("rho.configs") / SUITE_DIR
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def suite_yaml(suite: str) -> str:
    """The `load_config` yaml argument for a suite name or path; a miss lists the bundled suites."""
    if suite.endswith((".yaml", ".yml")):
        if not Path(suite).is_file():
            raise FileNotFoundError(f"suite file {suite!r} does not exist")
        return suite
    names = bundled_suites()
    if suite not in names:
        import difflib

        near = difflib.get_close_matches(suite, names, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise KeyError(f"unknown suite {suite!r}; bundled suites: {names} (or pass a path to a .yaml).{hint}")
    return f"{SUITE_DIR}/{suite}"


def load_suite(suite: str = "smoke", **overrides: Any) -> SuiteCfg:
    """A bundled suite (or suite YAML), with field overrides given as Python values, checked like the CLI."""
    from rho.config import load_config

    items = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    return load_config(SuiteCfg, yaml=suite_yaml(suite), overrides=items)


def level_randomization(suite: SuiteCfg, level: str) -> RandomizationCfg | None:
    """The randomization a level replaces the task default with, or None to keep it."""
    return copy.deepcopy(suite.shift) if level == "shifted" else None
