"""The correction session: rounds of (corrected episodes → update with replay → evaluation), resumable.

See the package docstring for the protocol and the layout of `out/`. Each stage of a round is idempotent — a round's
shard is renamed into place only when complete, an update is a `rho train` run that resumes, an evaluation's
report is reused when present — and `state.json` is replaced atomically after each round, so a killed session
continues where it stopped and never loses a finished artifact.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import OnlineCfg

STATE = "state.json"
PROGRESS = "progress.jsonl"
SESSION_KEYS = ("task", "policy", "seed", "corrector", "update", "replay", "eval", "num_envs", "env")  # fix the session


class SessionError(RuntimeError):
    """A session that cannot start or resume as configured (the message says why and how to fix it)."""


# ------------------------------------------------------------------------------------------------ recording
@dataclass
class _Recording:
    """One env slot's episode in flight."""

    index: int  # episode index within the session
    seed: int
    instruction: str
    params: dict[str, Any]
    initial: np.ndarray
    obs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    states: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    corrected: list[bool] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)

    def add(self, obs: dict[str, np.ndarray], slot: int, state: np.ndarray, action: np.ndarray, reward: float,
            corrected: bool, fired: str) -> None:
        for k, v in obs.items():
            self.obs.setdefault(k, []).append(np.asarray(v[slot]).copy())
        self.states.append(state[slot].copy())
        self.actions.append(np.asarray(action, np.float32))
        self.rewards.append(float(reward))
        if corrected and not (self.corrected and self.corrected[-1]):  # a takeover starts: note its trigger
            self.fired.append(fired)
        self.corrected.append(bool(corrected))

    def episode(self, success: bool, meta: dict[str, Any]):
        from rho.datagen.episode import Episode

        t = len(self.actions)
        dones = np.zeros(t, np.uint8)
        dones[-1] = 1
        flags = np.asarray(self.corrected, np.uint8)
        return Episode(obs={k: np.stack(v) for k, v in self.obs.items()}, actions=np.stack(self.actions),
                       rewards=np.asarray(self.rewards, np.float32), dones=dones,
                       states={"sim": np.stack(self.states)}, initial_state={"sim": self.initial}, success=success,
                       meta={**meta, "episode_seed": self.seed, "instruction": self.instruction,
                             "online_episode": self.index, "interventions": _segments(flags),
                             "intervened_steps": int(flags.sum()), "triggers": self.fired},
                       step_info={"intervention": flags, "controller": flags.copy()})


def _segments(flags: np.ndarray) -> int:
    """Number of takeovers: runs of 1s."""
    return int(((flags[1:] == 1) & (flags[:-1] == 0)).sum() + (flags[:1] == 1).sum()) if len(flags) else 0


def collect(cfg: OnlineCfg, checkpoint: str, first: int, count: int, path: Path) -> dict[str, Any]:
    """Run `count` corrected episodes (session episode indices first…first+count−1) with the policy at
    `checkpoint`, recorded into the shard `path` (written to a temporary name, renamed when complete)."""
    import torch

    from rho.datagen.hdf5 import ShardWriter
    from rho.datagen.runner import attempt_seed
    from rho.eval.rollout import env_config
    from rho.eval.suite import SuiteCfg
    from rho.policy.inference import Policy
    from rho.tasks import get_task

    from .corrector import ExpertCorrector

    torch.set_num_threads(max(1, cfg.torch_threads))
    policy = Policy.load(checkpoint)
    entry = get_task(cfg.task)
    env_cfg = env_config(SuiteCfg(env=dict(cfg.env)), entry.name, "nominal", policy, cfg.num_envs)
    env_cfg.seed = cfg.seed
    env = entry.env_cls(env_cfg)
    queue = iter(range(first, first + count))
    slot_episode: dict[int, int | None] = {}

    def seed_for(slot: int) -> int:
        k = next(queue, None)
        slot_episode[slot] = k
        return attempt_seed(cfg.seed, k if k is not None else 10**9 + slot)  # filler episodes are not recorded

    env.episode_seed_fn = seed_for
    if cfg.corrector.kind == "human":  # a person at a 3D mouse or the keyboard (online/human.py)
        from .human import HumanCorrector

        try:
            corrector = HumanCorrector(cfg.corrector, env)
        except BaseException:
            env.close()
            raise
    else:
        corrector = ExpertCorrector(cfg.corrector, env, seed=cfg.seed * 7919 + first)
    writer = ShardWriter(path, _env_args(env, entry, corrector), attrs={"online": _online_attrs(cfg, checkpoint)})
    meta = {"task": entry.name, "source": "sim_online", "policy": str(checkpoint), "corrector": corrector.name,
            "action_mode": "joint_pos", "backend": env.cfg.sim.backend}
    try:
        obs, _ = env.reset()
        live: list[_Recording | None] = [None] * env.num_envs

        def start(i: int) -> None:
            k = slot_episode.get(i)
            live[i] = None if k is None else _Recording(
                k, int(env.episode_seed[i]), env.instruction(i), dict(env.episode_params[i]), env.get_state()[i].copy())

        for i in range(env.num_envs):
            start(i)
        policy.reset()
        corrector.reset(np.arange(env.num_envs))
        progress = np.zeros(env.num_envs)
        while any(r is not None for r in live):
            texts = [r.instruction if r is not None else env.instruction(i) for i, r in enumerate(live)]
            planned = policy.act(obs, texts)
            corrector.observe(obs, progress, planned)
            driving = corrector.in_control()
            actions = planned.copy()
            if driving.any():
                actions[driving] = corrector.actions(np.flatnonzero(driving))
            state = env.get_state()
            next_obs, reward, _, _, info = env.step(actions)
            executed = info["joint_action"]
            for i, r in enumerate(live):
                if r is not None:
                    r.add(obs, i, state, executed[i], float(np.asarray(reward)[i]), bool(driving[i]),
                          corrector.fired[i])
            progress = np.asarray(info["progress"], np.float64)
            done = info.get("_final_info", np.zeros(env.num_envs, bool))
            for i in np.flatnonzero(done):
                r = live[i]
                if r is not None:
                    writer.add(r.episode(bool(info["final_info"]["success"][i]), meta), f"demo_{r.index}")
                start(i)
                progress[i] = 0.0
            if done.any():
                ids = np.flatnonzero(done)
                policy.reset(ids)
                corrector.reset(ids)
            obs = next_obs
        writer.close()
    except BaseException:
        writer.discard()
        raise
    finally:
        if hasattr(corrector, "close"):  # the human corrector: its device, viewer and event recording
            corrector.close()
        env.close()
    return _shard_stats(path)


def _env_args(env, entry, corrector) -> dict[str, Any]:
    from rho.config import config_to_dict

    return {"task": entry.name, "gym_id": entry.gym_id, "backend": env.cfg.sim.backend,
            "env_config": config_to_dict(env.cfg), "action_mode": "joint_pos", "expert_action_mode": "joint_pos",
            "obs_spec": json.loads(env.obs_spec.to_json()), "expert": corrector.name, "expert_version": "",
            "control_hz": 1 / env.control_dt, "touch_hz": env.touch_hz,
            "touch_contact_expected": entry.env_cls.touch_contact_expected}


def _online_attrs(cfg: OnlineCfg, checkpoint: str) -> dict[str, Any]:
    from rho.config import config_to_dict

    return {"session": {k: config_to_dict(cfg)[k] for k in SESSION_KEYS}, "checkpoint": str(checkpoint)}


# ------------------------------------------------------------------------------------------------ update
def update_config(cfg: OnlineCfg, round_: int, checkpoint: str, shards: list[Path], out: Path):
    """The `rho train` config of round `round_`'s update: fine-tune `checkpoint` on the newest shard (its corrected
    steps at `intervention_weight` × the draws of its successful episodes' own steps), with `replay.fraction`
    of the draws from the replay (the original datasets and, with replay.corrections, the earlier shards)."""
    from rho.datagen.hdf5 import Dataset
    from rho.policy.data import DataCfg, SourceCfg
    from rho.policy.train import OptimCfg, TrainCfg

    u, rp = cfg.update, cfg.replay

    def correction_sources(path: Path, weight: float) -> list[SourceCfg]:
        with Dataset(path, only_kept=False) as ds:
            success = any(bool(ds.group(i).attrs.get("success", False)) for i in range(ds.num_demos))
            corrected = any(int(ds.group(i).attrs.get("intervened_steps", 0)) > 0 for i in range(ds.num_demos))
        wi = u.intervention_weight
        out = []
        if corrected:
            out.append(SourceCfg(path=str(path), name=f"{path.stem}_corrected", only_success=False,
                                 steps="intervention", weight=weight * (wi / (wi + 1) if success else 1.0)))
        if success:
            out.append(SourceCfg(path=str(path), name=f"{path.stem}_success", only_success=True,
                                 weight=weight * (1 / (wi + 1) if corrected else 1.0)))
        return out

    new = correction_sources(shards[-1], 1.0)
    if not new:
        return None
    replayed = [SourceCfg(path=p, name=f"replay_{Path(p).name}_{j}") for j, p in enumerate(rp.sources)]
    if rp.corrections:
        for p in shards[:-1]:
            replayed += correction_sources(p, 1.0)
    if replayed and rp.fraction > 0:
        for s in new:
            s.weight *= (1 - rp.fraction)
        total = sum(s.weight for s in replayed)
        for s in replayed:
            s.weight = rp.fraction * s.weight / total
        sources = new + replayed
    else:
        sources = new
    return TrainCfg(out=str(out), init_from=str(checkpoint), data=DataCfg(sources=sources, valid_fraction=0.0),
                    optim=OptimCfg(lr=u.lr, warmup_steps=u.warmup_steps), steps=u.steps, batch_size=u.batch_size,
                    seed=round_, num_workers=u.num_workers, cpu_threads=u.cpu_threads, valid_every=0,
                    save_every=u.steps, keep_checkpoints=1, resume=(out / "checkpoints").is_dir(),
                    tensorboard=False, progress=cfg.progress)


# ------------------------------------------------------------------------------------------------ evaluation
def evaluate(cfg: OnlineCfg, checkpoint: str, out: Path) -> dict[str, dict[str, Any]]:
    """Success per task on the fixed seeded episodes (the same every round); reuses a finished report."""
    from rho.eval.evaluation import Evaluation
    from rho.eval.suite import SuiteCfg

    report_path = out / "report.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text())
    else:
        tasks = list(dict.fromkeys([cfg.task, *cfg.eval.tasks]))
        suite = SuiteCfg(name="online", tasks=tasks, levels=[cfg.eval.level], episodes=cfg.eval.episodes,
                         num_envs=cfg.eval.num_envs, workers=1, torch_threads=max(1, cfg.torch_threads),
                         videos=0, traces=0, env=dict(cfg.env))
        report = Evaluation(suite, out=out).run(str(checkpoint), progress=cfg.progress)
    return {t: {"successes": v["successes"], "episodes": v["episodes"], "success_rate": v["success_rate"],
                "ci95": v["ci95"]} for t, v in report["per_task"].items()}


# ------------------------------------------------------------------------------------------------ the session
def _atomic_json(path: Path, data: Any) -> None:
    from rho.datagen.hdf5 import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1))


def _state(cfg: OnlineCfg, out: Path) -> dict[str, Any]:
    from rho.config import config_to_dict

    session = {k: config_to_dict(cfg)[k] for k in SESSION_KEYS}
    path = out / STATE
    if path.is_file():
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SessionError(f"{path}: not valid JSON ({e}). Fix: restore it, or start a new out") from None
        saved = state.get("session", {})
        if isinstance(saved.get("corrector"), dict) and "human" not in saved["corrector"] \
                and cfg.corrector.kind != "human":  # a session from before corrector.human existed
            session = {**session, "corrector": {k: v for k, v in session["corrector"].items() if k != "human"}}
        diff = [f"{k}: {json.dumps(saved.get(k))} → {json.dumps(session[k])}" for k in SESSION_KEYS
                if saved.get(k) != session[k]]
        if diff:
            raise SessionError(f"out={out} holds a session with other settings; resuming would mix them:\n  "
                               + "\n  ".join(diff) + "\nFix: resume with the same settings, or choose a new out")
        return state
    if out.exists() and any(out.iterdir()):
        raise SessionError(f"out={out} exists and is not a session directory (no {STATE}). Fix: choose a new out")
    return {"session": session, "round": 0, "checkpoint": str(cfg.policy), "episodes": 0, "history": []}


def _check_paths(cfg: OnlineCfg, out: Path) -> None:
    from rho.policy.train import latest_checkpoint

    policy = Path(cfg.policy)
    if not policy.is_dir() or not ((policy / "model.pt").is_file() or latest_checkpoint(policy) is not None):
        raise SessionError(f"policy={cfg.policy}: not a checkpoint or a rho train out directory. Fix: give the "
                           "directory of a trained policy (e.g. runs/p16/policy_v2)")
    for p in cfg.replay.sources:
        if not Path(p).exists():
            raise SessionError(f"replay.sources: {p} does not exist. Fix: give the datasets the policy was trained on")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise SessionError(f"out={out}: cannot write there ({e.strerror}). Fix: choose a writable directory") from None


def run_session(cfg: OnlineCfg, log=print) -> dict[str, Any]:
    """Run (or resume) a correction session; returns the final state (rounds, checkpoints, per-round results)."""
    from rho.config import ConfigError, validate_config
    from rho.policy.train import latest_checkpoint, train
    from rho.tasks import get_task

    problems = validate_config(cfg)
    if problems:
        raise ConfigError(problems)
    get_task(cfg.task)  # unknown task: the registry's message
    if cfg.corrector.kind == "human":  # no display, no device, a bad replay file: refused before anything runs
        from .human import preflight

        preflight(cfg.corrector)
    out = Path(cfg.out)
    _check_paths(cfg, out)
    state = _state(cfg, out)
    _atomic_json(out / STATE, state)
    for sub in ("corrections", "updates", "eval"):
        (out / sub).mkdir(exist_ok=True)
    if cfg.eval.at_start and not state["history"]:
        t0 = time.perf_counter()
        success = evaluate(cfg, state["checkpoint"], out / "eval" / "round_0000")
        entry = {"round": 0, "checkpoint": state["checkpoint"], "episodes": 0, "intervention_rate": None,
                 "success": success, "accepted": True, "eval_s": time.perf_counter() - t0}
        state["history"].append(entry)
        _append_progress(out, entry)
        _atomic_json(out / STATE, state)
        log(f"round 0: {_fmt(success)}")
    while state["round"] < cfg.rounds:
        r = state["round"] + 1
        tag = f"round_{r:04d}"
        shard = out / "corrections" / f"{tag}.hdf5"
        t0 = time.perf_counter()
        stats = _shard_stats(shard) if shard.is_file() else collect(cfg, state["checkpoint"], state["episodes"],
                                                                       cfg.update.every_episodes, shard)
        collect_s = time.perf_counter() - t0
        shards = sorted((out / "corrections").glob("round_*.hdf5"))[:r]
        tcfg = update_config(cfg, r, state["checkpoint"], shards, out / "updates" / tag)
        t0 = time.perf_counter()
        if tcfg is None:
            new_ckpt, summary = state["checkpoint"], {"skipped": "no corrected steps and no successful episode"}
        else:
            ckpt = latest_checkpoint(tcfg.out)
            if ckpt is None or int(ckpt.name.split("_")[-1]) < tcfg.steps:
                summary = train(tcfg)
            else:
                summary = {"resumed_finished": str(ckpt)}
            new_ckpt = str(latest_checkpoint(tcfg.out))
        update_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        success = evaluate(cfg, new_ckpt, out / "eval" / tag)
        vs_start = _vs_start(out, tag)
        accepted, why = _accept(cfg, state["history"], success)
        entry = {"round": r, "checkpoint": new_ckpt, "episodes": state["episodes"] + stats["episodes"],
                 "collect": stats, "intervention_rate": stats["intervention_rate"], "success": success,
                 "vs_start": vs_start,
                 "accepted": accepted, "rollback": why, "update": {k: v for k, v in summary.items()
                                                                   if isinstance(v, (int, float, str))},
                 "collect_s": collect_s, "update_s": update_s, "eval_s": time.perf_counter() - t0}
        state["history"].append(entry)
        state["round"], state["episodes"] = r, state["episodes"] + stats["episodes"]
        if accepted:
            state["checkpoint"] = new_ckpt
        _append_progress(out, entry)
        _atomic_json(out / STATE, state)
        log(f"round {r}: interventions {stats['intervention_rate']:.0%} of steps, corrected episodes "
            f"{stats['corrected_episodes']}/{stats['episodes']}; {_fmt(success)}"
            + ("" if accepted else f" — rolled back ({why})"))
    from .report import write_report

    write_report(out, state)
    return state


def _accept(cfg: OnlineCfg, history: list[dict[str, Any]], success: dict[str, dict[str, Any]]) -> tuple[bool, str]:
    """Roll back when another task's success fell by more than eval.rollback_drop against the policy in use."""
    if not cfg.eval.rollback_drop or not history:
        return True, ""
    before = next(h for h in reversed(history) if h["accepted"])["success"]
    drops = [f"{t} {before[t]['success_rate']:.0%} → {v['success_rate']:.0%}" for t, v in success.items()
             if t != cfg.task and t in before and before[t]["success_rate"] - v["success_rate"] > cfg.eval.rollback_drop]
    return (not drops), "; ".join(drops)


def _vs_start(out: Path, tag: str) -> dict[str, dict[str, Any]]:
    """Per task: this round's success minus the starting policy's on the same seeded episodes, with McNemar's exact
    paired p-value (`rho eval compare ... test=mcnemar`); {} without a round-0 evaluation."""
    from rho.eval.compare import compare

    start, now = out / "eval" / "round_0000" / "report.json", out / "eval" / tag / "report.json"
    if not (start.is_file() and now.is_file()):
        return {}
    rows = compare(start, now, test="mcnemar")["rows"]
    return {r["task"]: {"diff": r["diff"], "p_value": r["p_value"], "test": r["test"]} for r in rows
            if r["task"] != "all" and r["level"] != "all"}


def _shard_stats(path: Path) -> dict[str, Any]:
    """A round's collection figures, read back from its finished shard (also after a kill)."""
    from rho.datagen.hdf5 import Dataset

    with Dataset(path, only_kept=False) as ds:
        attrs = [ds.group(i).attrs for i in range(ds.num_demos)]
        steps = [int(a.get("num_samples", 0)) for a in attrs]
        inter = [int(a.get("intervened_steps", 0)) for a in attrs]
        return {"episodes": len(attrs), "successes": int(sum(bool(a.get("success", False)) for a in attrs)),
                "steps": int(sum(steps)), "intervened_steps": int(sum(inter)),
                "interventions": int(sum(int(a.get("interventions", 0)) for a in attrs)),
                "corrected_episodes": int(sum(i > 0 for i in inter)),
                "intervention_rate": sum(inter) / max(1, sum(steps))}


def _append_progress(out: Path, entry: dict[str, Any]) -> None:
    with open(out / PROGRESS, "a") as f:
        f.write(json.dumps(entry) + "\n")


def _fmt(success: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{t} {v['successes']}/{v['episodes']}" for t, v in success.items())
