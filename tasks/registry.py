"""The task registry: one visible dict, `ALL_TASKS`; tests and the CLI iterate over it; each task is also a
gymnasium id (`rho/<Name>-v0`) with a vector entry point, so `gym.make_vec("rho/LiftBlock-v0", num_envs=4,
vectorization_mode="vector_entry_point")` builds the batched env and `gym.make("rho/LiftBlock-v0")` a single one.

A dataset names its env the way robomimic and Isaac Lab read it (`env_args`: `env_name` the gym id, `env_kwargs`
the env config), so `gym.make(env_args["env_name"], **env_args["env_kwargs"])` — nested sections as plain dicts —
and `make_env_from_dataset(path)` rebuild the env the data was recorded in.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym

from rho.sim.env import BatchedEnv, EnvCfg


@dataclass(frozen=True)
class TaskEntry:
    name: str  # registry key, snake_case, e.g. "lift_block"
    gym_id: str  # e.g. "rho/LiftBlock-v0"
    env_cls: type[BatchedEnv]
    cfg_cls: type[EnvCfg]
    expert_cls: type | None = None  # scripted expert: expert_cls(env).act(obs) -> actions; .reset(env_ids)
    expert_action_mode: str = "joint_pos"  # the action.mode the expert drives


ALL_TASKS: dict[str, TaskEntry] = {}


def register_task(name: str, gym_id: str, cfg_cls: type[EnvCfg]) -> Callable[[type[BatchedEnv]], type[BatchedEnv]]:
    """Class decorator: add a task to `ALL_TASKS` and register its gymnasium id."""

    def deco(cls: type[BatchedEnv]) -> type[BatchedEnv]:
        if name in ALL_TASKS:
            raise ValueError(f"task {name!r} registered twice")
        cls.task_name = name
        ALL_TASKS[name] = TaskEntry(name, gym_id, cls, cfg_cls)
        gym.register(id=gym_id, entry_point="rho.tasks.registry:make_single",
                     vector_entry_point="rho.tasks.registry:make_vector", kwargs={"task": name},
                     disable_env_checker=True)
        return cls

    return deco


def register_expert(task: str, action_mode: str) -> Callable[[type], type]:
    """Class decorator: attach a scripted expert to a registered task."""

    def deco(cls: type) -> type:
        entry = get_task(task)
        ALL_TASKS[entry.name] = dataclasses.replace(entry, expert_cls=cls, expert_action_mode=action_mode)
        return cls

    return deco


def with_task_env(job_cfg: type, task: str) -> type:
    """`job_cfg` (a dataclass with an untyped `env` field) with `env` typed as the task's config class, so
    `env.*` overrides of `rho rollout / expert / datagen` are checked against that task's keys."""
    entry = get_task(task)
    return dataclasses.make_dataclass(
        job_cfg.__name__, [("env", entry.cfg_cls, dataclasses.field(default_factory=entry.cfg_cls))], bases=(job_cfg,))


def get_task(name: str) -> TaskEntry:
    """Look up a task by registry name or gym id; a miss lists the names and suggests the nearest."""
    for entry in ALL_TASKS.values():
        if name in (entry.name, entry.gym_id):
            return entry
    near = difflib.get_close_matches(name, list(ALL_TASKS) + [e.gym_id for e in ALL_TASKS.values()], n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise KeyError(f"unknown task {name!r}; registered tasks: {sorted(ALL_TASKS)}.{hint}")


def make_env(task: str, cfg: EnvCfg | None = None, **overrides) -> BatchedEnv:
    """Build the batched env of a task from its config (defaults when None). `overrides` set top-level config
    fields; a section given as a plain dict (`sim={"physics_dt": 0.002, ...}`, as a dataset's `env_kwargs` hold
    it) replaces that section, checked like a config file."""
    entry = get_task(task)
    if any(isinstance(v, Mapping) for v in overrides.values()):
        from rho.config import config_from_dict, config_to_dict

        base = config_to_dict(cfg if cfg is not None else entry.cfg_cls())
        cfg, overrides = config_from_dict(entry.cfg_cls, {**base, **overrides}), {}
    return entry.env_cls(cfg if cfg is not None else entry.cfg_cls(), **overrides)


def make_env_from_dataset(path: str | Path, num_envs: int = 1, **overrides) -> BatchedEnv:
    """The env a dataset was recorded in, from its `env_args` alone: the task named by `env_name` (the gym id;
    `gym_id` / `task` in datasets written before it), configured by `env_kwargs` (else `env_config`), with
    `num_envs` parallel envs. Works on a dataset directory, a single file and a `rho dataset export-robomimic`
    file. `overrides` set top-level config fields, a section as a dict: `cameras={}` steps without rendering,
    `action={"mode": "joint_pos"}` replays the recorded `actions` (the recorded config is the expert's env).

    Raises `rho.datagen.hdf5.DatasetError` when the dataset names no env of this rho (imported real data) and
    `rho.config.ConfigError` when its env config does not load here."""
    from rho.config import config_from_dict
    from rho.datagen.hdf5 import DatasetError, dataset_env_args

    args = dataset_env_args(path)
    name = args.get("env_name") or args.get("gym_id") or args.get("task")
    if not name:
        raise DatasetError(f"{path}: its env_args name no env (env_name is empty: imported real data?), so no env "
                           "can be built from it. Fix: build the task's env yourself, rho.tasks.make_env(<task>)")
    try:
        entry = get_task(str(name))
    except KeyError as e:
        raise DatasetError(f"{path}: its env_args name the env {name!r}, which this rho does not register "
                           f"({e.args[0]}). Fix: install the rho that recorded it") from None
    kwargs = args.get("env_kwargs")
    if kwargs is None:
        kwargs = {k: v for k, v in (args.get("env_config") or {}).items() if k != "num_envs"}
    sections = {k: v for k, v in overrides.items() if isinstance(v, Mapping)}  # e.g. action={"mode": "joint_pos"}
    cfg = config_from_dict(entry.cfg_cls, {**kwargs, "num_envs": int(num_envs), **sections})
    return entry.env_cls(cfg, **{k: v for k, v in overrides.items() if k not in sections})


def make_vector(task: str, num_envs: int = 1, cfg: EnvCfg | None = None, **overrides) -> BatchedEnv:
    return make_env(task, cfg, num_envs=num_envs, **overrides)


def make_single(task: str, cfg: EnvCfg | None = None, render_mode: str | None = "rgb_array", **overrides) -> gym.Env:
    from rho.sim.single import SingleEnv

    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be 'rgb_array' or None (offscreen only), got {render_mode!r}")
    return SingleEnv(make_env(task, cfg, num_envs=1, **overrides))
