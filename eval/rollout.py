"""One unit of evaluation work: a few episodes of one (task, level) cell, run by one worker in one batched env.

Each env slot asks `episode_seed_fn` for its next episode when it (auto)resets; the unit hands out its episodes'
seeds in order and then filler seeds whose episodes are discarded, so every episode starts from its cell seed
whatever slot or worker runs it. A video unit runs a single episode in a 1-env batch and renders `cam_high` with
`env.render()` after every step; the other units never render.
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import held_out
from .metrics import force_stats
from .policies import action_mode, check_policy, env_overrides, load_policy, policy_name
from .suite import SuiteCfg, level_randomization

FILLER_SEED = 0  # episodes started after a unit's last one: run on, never recorded


@dataclass(frozen=True)
class Unit:
    task: str
    level: str
    episodes: tuple[int, ...]  # episode indices within the cell
    video: bool = False  # record an mp4 of the (single) episode
    traces: frozenset[int] = frozenset()  # episodes whose force / taxel time series come back
    seeds: tuple[int, ...] = ()  # the episodes' seeds, aligned with `episodes` (`Evaluation.episode_seeds`)


@dataclass
class UnitResult:
    unit: Unit
    records: list[dict[str, Any]]
    traces: dict[int, dict[str, np.ndarray]]  # episode → {"force": (T, pads) N, "taxels": (T, pads, r, c) N}
    video: bytes | None
    poster: bytes | None  # JPEG of the video's last frame (the outcome), for the report page
    pads: list[str]
    control_dt: float


# ------------------------------------------------------------------------------------------------ env setup
_POLICIES: dict[str, Any] = {}  # per-process cache: a trained policy is loaded once per worker


def resolve_policy(policy: Any) -> Any:
    if isinstance(policy, str):
        if policy not in _POLICIES:
            _POLICIES[policy] = load_policy(policy)
        policy = _POLICIES[policy]
    check_policy(policy)
    return policy


def env_config(suite: SuiteCfg, task: str, level: str, policy: Any, num_envs: int):
    """The task's env config for a cell: suite overrides, the policy's needs, the level, then batch and seed.
    Touch history defaults to the samples per control step, the layout datagen records and policies train on."""
    from rho.config import config_to_dict, load_config
    from rho.tasks import get_task

    entry = get_task(task)
    items: dict[str, Any] = {**suite.env, **env_overrides(policy, task)}
    rand = level_randomization(suite, level)
    if rand is not None:
        items["randomization"] = config_to_dict(rand)
    items.update(held_out.env_overrides(task, level, suite))
    items.update({"num_envs": num_envs, "seed": suite.seed})
    cfg = load_config(entry.cfg_cls, overrides=[f"{k}={json.dumps(v)}" for k, v in items.items()])
    cfg.action.mode = action_mode(policy, task)
    if "history" not in items.get("touch", {}):  # as datagen records: every touch sample of the control step
        per_step = round(cfg.touch.rate_hz / cfg.sim.control_hz)
        cfg.touch = dataclasses.replace(cfg.touch, history=max(cfg.touch.history, per_step))
    return cfg


def make_env(suite: SuiteCfg, unit: Unit, policy: Any):
    from rho.tasks import get_task

    n = 1 if unit.video else max(1, min(suite.num_envs, len(unit.episodes)))
    cfg = env_config(suite, unit.task, unit.level, policy, n)
    return get_task(unit.task).env_cls(cfg)


# ------------------------------------------------------------------------------------------------ one episode
@dataclass
class _Episode:
    """What one recorded episode accumulates, step by step."""

    index: int
    seed: int
    instruction: str  # what the policy is given
    task_instruction: str  # what the task drew
    params: dict[str, Any]
    trace: bool
    force: list[np.ndarray] = field(default_factory=list)  # (pads,) N per step
    taxels: list[np.ndarray] = field(default_factory=list)  # (pads, r, c) N per step, trace episodes only
    progress_max: float = 0.0
    clipped: int = 0

    def add(self, force: np.ndarray | None, taxels: np.ndarray | None, progress: float, clipped: bool) -> None:
        if force is not None:
            self.force.append(force)
        if self.trace and taxels is not None:
            self.taxels.append(taxels)
        self.progress_max = max(self.progress_max, progress)
        self.clipped += int(clipped)

    def record(self, fin: dict[str, np.ndarray], i: int, progress: float, suite: SuiteCfg, env, unit: Unit,
               name: str) -> dict[str, Any]:
        steps, success = int(fin["episode_length"][i]), bool(fin["success"][i])
        dt = env.control_dt
        force = np.stack(self.force) if self.force else np.zeros((0, len(env.pads)))
        params = {k: v for k, v in self.params.items() if k not in ("instruction", "episode_seed")}
        return {"suite": suite.name, "task": unit.task, "level": unit.level, "episode": self.index,
                "episode_seed": self.seed, "policy": name, "success": success, "steps": steps,
                "duration_s": steps * dt, "time_to_success_s": steps * dt if success else None,
                "progress": float(progress), "progress_max": max(self.progress_max, float(progress)),
                **force_stats(force, suite.force_limit, dt, env.pads), "sim_failed": bool(fin["sim_failed"][i]),
                "action_clipped_steps": self.clipped, "instruction": self.instruction,
                "task_instruction": self.task_instruction,
                "held_out_instruction": self.instruction != self.task_instruction, "randomization": params,
                "video": None}


# ------------------------------------------------------------------------------------------------ the runner
class _Runner:
    def __init__(self, suite: SuiteCfg, unit: Unit, env, policy: Any):
        self.suite, self.unit, self.env, self.policy = suite, unit, env, policy
        self.queue = deque(unit.episodes)
        self.slot_episode: dict[int, int | None] = {}
        self.live: list[_Episode | None] = [None] * env.num_envs
        self.records: list[dict[str, Any]] = []
        self.traces: dict[int, dict[str, np.ndarray]] = {}
        self.touch = env.cfg.touch.enabled
        self.video = None
        self.name = policy_name(policy)  # again after bind: an expert names itself once it knows the task

    def next_seed(self, slot: int) -> int:
        k = self.queue.popleft() if self.queue else None
        self.slot_episode[slot] = k
        return FILLER_SEED if k is None else self.unit.seeds[self.unit.episodes.index(k)]

    def start(self, ids: np.ndarray) -> None:
        for i in ids:
            k = self.slot_episode.get(int(i))
            if k is None:
                self.live[i] = None
                continue
            params = dict(self.env.episode_params[i])
            own = self.env.instruction(int(i))
            seed = int(self.env.episode_seed[i])
            given = held_out.held_out_instruction(self.unit.task, params, seed) if self.unit.level == "held_out" \
                else None
            self.live[i] = _Episode(k, seed, given or own, own, params, k in self.unit.traces)

    def touch_of(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(n, pads) net normal force and (n, pads, r, c) latest taxel normal forces, N."""
        if not self.touch:
            return None, None
        pads = self.env.pads
        net = np.stack([obs[f"touch_net_{p}"][:, 0] for p in pads], axis=1)
        taxels = np.stack([obs[f"touch_{p}"][:, -1, ..., 0] for p in pads], axis=1)
        return net, taxels

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        instr = [ep.instruction if ep is not None else self.env.instruction(i) for i, ep in enumerate(self.live)]
        a = np.asarray(self.policy.act(obs, instr))
        want = (self.env.num_envs, self.env.single_action_space.shape[0])
        if a.shape != want:
            raise ValueError(f"policy {self.name!r} returned actions of shape {a.shape} on {self.unit.task}; expected "
                             f"{want} (num_envs, action_dim) for action.mode={self.env.cfg.action.mode!r}")
        return a

    def run(self) -> None:
        env = self.env
        env.episode_seed_fn = self.next_seed
        if hasattr(self.policy, "bind"):
            self.policy.bind(env)
            self.name = policy_name(self.policy)
        obs, _ = env.reset()
        all_ids = np.arange(env.num_envs)
        self.start(all_ids)
        self.policy.reset(all_ids)
        self.seed_policy(all_ids)
        self.frame(obs, None)
        while any(ep is not None for ep in self.live):
            obs, _, term, trunc, info = env.step(self.act(obs))
            done = term | trunc
            last = _last_obs(obs, info, done)
            self.accumulate(last, info)
            ids = np.flatnonzero(done)
            self.frame(last, info if done[0] else None)
            for i in ids:
                self.finish(int(i), info)
            if len(ids):
                self.start(ids)
                self.policy.reset(ids)
                self.seed_policy(ids)

    def seed_policy(self, ids: np.ndarray) -> None:
        """A policy that draws noise per env (`seed_envs`) gets each new episode's seed: the episode then plays the
        same at any num_envs or worker count, so paired comparisons pair the policy's draws too."""
        if hasattr(self.policy, "seed_envs"):
            self.policy.seed_envs(ids, [int(self.env.episode_seed[i]) for i in ids])

    def accumulate(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        net, taxels = self.touch_of(obs)
        for i, ep in enumerate(self.live):
            if ep is not None:
                ep.add(None if net is None else net[i], None if taxels is None else taxels[i],
                       float(info["progress"][i]), bool(info["action_clipped"][i]))

    def finish(self, i: int, info: dict[str, Any]) -> None:
        ep = self.live[i]
        if ep is None:
            return
        rec = ep.record(info["final_info"], i, float(info["progress"][i]), self.suite, self.env, self.unit, self.name)
        self.records.append(rec)
        if ep.trace and ep.force:
            self.traces[ep.index] = {"force": np.stack(ep.force).astype(np.float32),
                                     "taxels": np.stack(ep.taxels).astype(np.float32)}
        self.live[i] = None

    # ------------------------------------------------------------------ video
    def frame(self, obs: dict[str, np.ndarray], final_info: dict[str, Any] | None) -> None:
        """One video frame of env 0: a fresh render, or, at the episode's end (the env has already reset), the
        last render with the final touch reading and the outcome."""
        if not self.unit.video or (self.live[0] is None and final_info is None):
            return
        from .video import Mp4Writer, compose, touch_panel

        if self.video is None:
            self.video = {"writer": Mp4Writer(1.0 / self.env.control_dt), "camera": None, "t": 0}
        v = self.video
        if final_info is None:
            v["camera"] = self.env.render()
        net, taxels = self.touch_of(obs)
        pads = self.env.pads
        if net is None:
            net, taxels = np.zeros((1, len(pads))), np.zeros((1, len(pads), 1, 1))
        panel = touch_panel(taxels[0], net[0], pads, self.suite.taxel_vmax)
        outcome = "" if final_info is None else (" SUCCESS" if final_info["final_info"]["success"][0] else " FAIL")
        caption = f"{self.unit.task} {self.unit.level} ep{self.unit.episodes[0]} t={v['t'] * self.env.control_dt:.2f}s"
        v["last"] = compose(v["camera"], panel, caption + outcome)
        v["writer"].add(v["last"])
        v["t"] += 1

    def result(self) -> UnitResult:
        video = self.video["writer"].close() if self.video else None
        poster = _jpeg(self.video["last"]) if self.video else None
        return UnitResult(self.unit, self.records, self.traces, video, poster, list(self.env.pads),
                          self.env.control_dt)


def _jpeg(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _last_obs(obs: dict[str, np.ndarray], info: dict[str, Any], done: np.ndarray) -> dict[str, np.ndarray]:
    """The observation each env ended the step in: for envs that finished, `final_obs` (obs is already reset)."""
    if not done.any():
        return obs
    fin = info["final_obs"]
    return {k: np.where(done.reshape(-1, *([1] * (v.ndim - 1))), fin[k], v) for k, v in obs.items()}


def run_unit(suite: SuiteCfg, unit: Unit, policy: Any) -> UnitResult:
    """Run one unit (in this process) and return its episode records, traces and video bytes."""
    policy = resolve_policy(policy)
    env = make_env(suite, unit, policy)
    try:
        runner = _Runner(suite, unit, env, policy)
        runner.run()
        return runner.result()
    except Exception as e:
        raise RuntimeError(f"evaluating {unit.task}/{unit.level} episodes {list(unit.episodes)} with "
                           f"{policy_name(policy)!r} failed: {e}") from e
    finally:
        env.close()
