"""`rho rl train`: PPO (rsl-rl) on a task's batched env with privileged observations, the residual over its
scripted expert, and the task's dense reward terms.

Output directory `out`:
    config.yaml          the resolved run config (task, agent, env); `--resume` reloads it
    model_<it>.pt        checkpoints every `agent.save_interval` iterations and at the end (`it` = iterations done)
    latest.pt            the newest checkpoint (what `--resume`, `rho rl play` and `expert=rl:<out>` take by default)
    progress.jsonl       one row per iteration: env steps, wall-clock, finished episodes and their success, rewards,
                         losses, action noise
    tb/                  the same scalars for TensorBoard

Checkpoints are written atomically (temp file, then rename), so a killed run keeps every finished checkpoint. They
hold only tensors and plain values (numbers, strings, lists, dicts), so every reader loads them with
`torch.load(weights_only=True)` and a crafted file cannot run code (`rho.safeload`).
Resume restores the actor, critic, optimizer, observation normalisers, iteration, env-step and wall-clock counters
and the RNG states; episodes in flight when the checkpoint was taken are not stored, so the envs start new seeded
episodes (seed derived from (agent.seed, iteration)) and a resumed run is deterministic but not the same stream of
episodes as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rho.config import ConfigError, config_to_dict, config_to_yaml, load_config

CHECKPOINT_FORMAT = 1


@dataclass
class RlTrainCfg:
    """Settings of `rho rl train`; `agent` is the task's agent config, `env` its env config (see `train_schema`)."""

    task: str = "plug_insertion"  # registered task with an agent config (`rho.tasks.agents.AGENT_CFGS`)
    out: str = "runs/rl/plug_insertion"  # run directory (checkpoints, logs)
    resume: bool = False  # continue the run in `out` from latest.pt (also --resume)
    threads: int = 1  # torch CPU threads (the env's physics threads are env.sim.num_threads)
    agent: Any = None
    env: Any = None

    def validate(self) -> list[str]:
        return [] if self.threads >= 1 else [f"threads must be >= 1, got {self.threads}"]


def agent_cfg_class(task: str) -> type:
    """The agent config class of a task (`AGENT_CFGS`), or a clear error listing the tasks that have one."""
    import importlib

    from rho.tasks import get_task
    from rho.tasks.agents import AGENT_CFGS

    name = get_task(task).name
    if name not in AGENT_CFGS:
        raise ConfigError([f"task={name}: no RL agent config; tasks with one: {sorted(AGENT_CFGS)} (add "
                           f"rho/tasks/agents/{name}_rsl_rl_ppo.py and list it in AGENT_CFGS)"])
    module, cls = AGENT_CFGS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def train_schema(task: str) -> type:
    """RlTrainCfg with `agent` typed as the task's agent config and `env` as its env config."""
    from rho.tasks import get_task

    entry, agent = get_task(task), agent_cfg_class(task)
    return dataclasses.make_dataclass(
        "RlTrainCfg", [("agent", agent, dataclasses.field(default_factory=agent)),
                       ("env", entry.cfg_cls, dataclasses.field(default_factory=entry.cfg_cls))], bases=(RlTrainCfg,))


def _flatten(prefix: str, d: dict[str, Any]) -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += _flatten(f"{prefix}{k}.", v)
        else:
            out.append(f"{prefix}{k}={json.dumps(v)}")
    return out


def load_train_config(overrides: list[str]) -> Any:
    """The run config: task defaults, the agent's env overrides, then `overrides`; with resume=true, the saved
    config.yaml of `out` is the base (overrides such as agent.max_iterations=... still apply)."""
    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), "plug_insertion")
    schema = train_schema(task)
    probe = load_config(schema, overrides=overrides)
    saved = Path(probe.out) / "config.yaml"
    if probe.resume:
        if not saved.exists():
            raise ConfigError([f"resume=true: {saved} not found. Fix: point out= at an existing rho rl train run, "
                               "or drop --resume to start one"])
        return load_config(schema, yaml=saved, overrides=overrides)
    base = _flatten("env.", agent_cfg_class(task)().env_overrides)
    cfg = load_config(schema, overrides=[*base, *overrides])
    return cfg


def _env_cfg(cfg) -> Any:
    env = dataclasses.replace(cfg.env, num_envs=cfg.agent.num_envs, seed=cfg.agent.seed)
    for k, v in cfg.agent.env_overrides.get("action", {}).items():  # the mode the residual acts in is not optional
        env.action = dataclasses.replace(env.action, **{k: v})
    return env


def file_sha(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save(runner, path: Path, meta: dict[str, Any]) -> None:
    import torch

    state = runner.alg.save()
    state["iter"] = meta["iteration"]
    state["infos"] = {"rho": meta}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict[str, Any]:
    import torch

    return {"torch": torch.get_rng_state()}  # numpy: every draw comes from seeded Generators (env, episode seeds)


def _set_rng_state(s: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(s["torch"])


def train(cfg, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) `rho rl train`; returns a summary."""
    import torch
    from rsl_rl.runners import OnPolicyRunner
    from tqdm import tqdm

    from rho.tasks import get_task

    from .vecenv import RslRlVecEnv

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    latest = out / "latest.pt"
    if latest.exists() and not cfg.resume:
        raise ConfigError([f"out={out} already holds a run (latest.pt). Fix: continue it with --resume, or pick a "
                           "new out=..."])
    if cfg.resume and not latest.exists():
        raise ConfigError([f"resume=true but {latest} does not exist (no finished checkpoint yet). Fix: start the "
                           "run again without --resume"])
    out.mkdir(parents=True, exist_ok=True)
    entry = get_task(cfg.task)
    agent = cfg.agent
    start_it, env_steps, wall0, episodes, successes, loaded = 0, 0, 0.0, 0, 0, None
    if cfg.resume:
        from .expert import load_checkpoint

        try:  # weights_only: a resumed checkpoint never runs code from the file
            _, loaded, meta = load_checkpoint(latest)
        except ValueError as e:
            raise ConfigError([f"--resume: {e}"]) from None
        start_it, env_steps, wall0 = meta["iteration"], meta["env_steps"], meta["wall_s"]
        episodes, successes = meta["episodes"], meta["successes"]
    (out / "config.yaml").write_text(config_to_yaml(cfg))
    torch.manual_seed(agent.seed)
    env = entry.env_cls(_env_cfg(cfg))
    agent_run = dataclasses.replace(agent, seed=int(np.random.SeedSequence((agent.seed, start_it))
                                                    .generate_state(1)[0]) if start_it else agent.seed)
    venv = RslRlVecEnv(env, agent_run)
    with contextlib.redirect_stdout(io.StringIO()):  # rsl-rl prints the models; config.yaml has them
        runner = OnPolicyRunner(venv, agent.to_rsl_rl(), log_dir=None, device="cpu")
    alg = runner.alg
    if loaded is not None:
        alg.load(loaded, None, strict=True)
        _set_rng_state(loaded["infos"]["rho"]["rng"])
    writer = _tb_writer(out / "tb")
    _truncate_log(out / "progress.jsonl", start_it)
    log = open(out / "progress.jsonl", "a")  # noqa: SIM115 (closed in the finally below)
    base_meta = {"format": CHECKPOINT_FORMAT, "task": entry.name, "agent": config_to_dict(agent),
                 "env": config_to_dict(_env_cfg(cfg)), "policy_dim": venv.spec.policy_dim,
                 "critic_dim": venv.spec.critic_dim, "num_actions": venv.num_actions,
                 "action_mode": env.cfg.action.mode, "rsl_rl": _rsl_rl_version()}
    bar = tqdm(total=agent.max_iterations, initial=start_it, desc=f"rl {entry.name}", unit="it", disable=not progress)
    t0 = time.perf_counter() - wall0
    obs = venv.get_observations()
    alg.train_mode()
    it = start_it
    saved: list[str] = []
    try:
        for it in range(start_it, agent.max_iterations):
            t_it = time.perf_counter()
            rewards = []
            with torch.inference_mode():
                for _ in range(agent.num_steps_per_env):
                    actions = alg.act(obs)
                    obs, rew, dones, extras = venv.step(actions)
                    alg.process_env_step(obs, rew, dones, extras)
                    rewards.append(float(rew.mean()))
                collect_s = time.perf_counter() - t_it
                alg.compute_returns(obs)
            losses = alg.update()
            fin = venv.drain_finished()
            episodes += len(fin)
            successes += sum(s for s, _ in fin)
            env_steps = env_steps + agent.num_steps_per_env * venv.num_envs
            row = {"iteration": it + 1, "env_steps": env_steps, "wall_s": time.perf_counter() - t0,
                   "collect_s": collect_s, "episodes": len(fin),
                   "success": float(np.mean([s for s, _ in fin])) if fin else None,
                   "episode_length": float(np.mean([n for _, n in fin])) if fin else None,
                   "mean_step_reward": float(np.mean(rewards)),
                   "action_std": float(alg.get_policy().output_std.detach().mean()),
                   "learning_rate": float(alg.learning_rate),
                   **{f"loss/{k}": float(v) for k, v in losses.items() if v is not None}}
            log.write(json.dumps(row) + "\n")
            log.flush()
            if writer is not None:
                for k, v in row.items():
                    if v is not None and k != "iteration":
                        writer.add_scalar(k, v, env_steps)
            bar.update(1)
            bar.set_postfix(success=f"{row['success']:.2f}" if fin else "-", steps=env_steps)
            done_it = it + 1
            if done_it % agent.save_interval == 0 or done_it == agent.max_iterations:
                meta = {**base_meta, "iteration": done_it, "env_steps": env_steps, "wall_s": row["wall_s"],
                        "episodes": episodes, "successes": successes, "rng": _rng_state()}
                path = out / f"model_{done_it}.pt"
                _save(runner, path, meta)
                _save(runner, latest, meta)
                saved.append(str(path))
    finally:
        bar.close()
        log.close()
        if writer is not None:
            writer.close()
        venv.close()
    return {"task": entry.name, "out": str(out.resolve()), "iterations": agent.max_iterations,
            "resumed_from": start_it, "env_steps": env_steps, "wall_s": time.perf_counter() - t0,
            "episodes": episodes, "successes": successes, "checkpoints": saved,
            "latest": str(latest.resolve()) if latest.exists() else None}


def _truncate_log(path: Path, iteration: int) -> None:
    """Keep the rows up to `iteration` (a killed run may have logged iterations after its last checkpoint)."""
    if not path.exists():
        return
    rows = [x for x in path.read_text().splitlines() if x.strip()]
    keep = [x for x in rows if json.loads(x)["iteration"] <= iteration]
    if len(keep) != len(rows):
        path.write_text("".join(f"{x}\n" for x in keep))


def _tb_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: progress.jsonl has every figure
        return None
    return SummaryWriter(log_dir=str(path), flush_secs=30)


def _rsl_rl_version() -> str:
    from importlib.metadata import version

    return version("rsl-rl-lib")


def describe(summary: dict[str, Any]) -> str:
    return (f"{summary['task']}: trained to iteration {summary['iterations']} ({summary['env_steps']} env steps, "
            f"{summary['wall_s'] / 60:.1f} min) in {summary['out']}; latest checkpoint {summary['latest']}")
