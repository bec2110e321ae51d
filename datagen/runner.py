"""`rho datagen`: run a task's expert headless in batched envs (and worker processes), record every step, keep the
demos, write sharded HDF5 atomically, resume after a kill.

Actions (format v2): every step records the executed servo targets (`info["joint_action"]`, the joint_pos layout)
as the demo's `actions` — what a policy trains on — and the expert's own command (in its env action mode, e.g.
ee_delta) as `expert_actions`.

Determinism: attempt k of a run (k = 0, 1, 2, ...) is the episode with seed `attempt_seed(seed, k)`; an episode is
fully determined by its seed (initial state, randomization, sensor noise), so a demo does not depend on which
worker or env slot ran it. The dataset is the first `num_demos` successful attempts by index (failures too, when
`keep_failures`), whatever `num_envs`, `workers` or interruptions. A resumed run skips the attempts already in
closed shards and continues to the target without duplicates.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import multiprocessing as mp
import os
import queue as queue_mod
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from rho.config import config_to_dict

from .episode import Episode
from .hdf5 import (
    FORMAT_VERSION,
    MANIFEST,
    SHARD_GLOB,
    DatasetError,
    ShardWriter,
    atomic_write_text,
    check_version,
    episode_nbytes,
    free_bytes,
    mib,
    write_default_masks,
)

RUN_ATTR = "datagen"  # root attribute of every shard: the run settings env_args do not hold (seed, keep_failures...)
WRITE_MARGIN = 4 * 2**20  # bytes kept free beyond a demo's size: HDF5 metadata, the shard's closing, the manifest
OWN_FILES = (SHARD_GLOB, MANIFEST, ".shard_*.tmp", f".{MANIFEST}.tmp", ".write_probe_*")  # what datagen puts in out


@dataclass
class DatagenCfg:
    """Settings of `rho datagen`; `env` is the task's config class (see `datagen_schema`)."""

    task: str = "lift_block"  # registered task name (`rho tasks list`)
    num_demos: int = 10  # demos to keep (successful ones; failures come on top when keep_failures)
    out: str = "runs/datasets/lift_block"  # a directory (shards + manifest) or a single file ending in .hdf5
    num_envs: int = 4  # batched envs per worker
    workers: int = 1  # worker processes (1 = in this process)
    seed: int = 0  # run seed: attempt k uses attempt_seed(seed, k)
    keep_failures: bool = False  # also store failed attempts, labelled success=false
    demos_per_shard: int = 10  # demos per shard file (the unit of atomic writes)
    max_attempts: int = 0  # give up after this many attempts (0: 5 × num_demos + 2 × num_envs × workers)
    resume: bool = False  # continue an interrupted run in `out` (also --resume)
    launcher: Literal["local", "ray"] = "local"  # worker processes on this machine, or Ray tasks on a cluster
    ray_address: str | None = None  # launcher=ray: cluster address ("auto" to join; None starts a local cluster)
    expert: str = "scripted"  # the task's scripted expert, or rl:<checkpoint> (a `rho rl train` run dir or .pt)
    env: Any = None

    def validate(self) -> list[str]:
        out = []
        for name in ("num_demos", "num_envs", "workers", "demos_per_shard"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_attempts < 0:
            out.append(f"max_attempts must be >= 0, got {self.max_attempts}")
        if self.expert != "scripted" and not self.expert.startswith("rl:"):
            out.append(f"expert must be 'scripted' or 'rl:<checkpoint>' (a `rho rl train` out directory or a "
                       f"model_<it>.pt), got {self.expert!r}")
        elif self.expert.startswith("rl:"):
            out += _rl_expert_problems(self.expert, self.task)
        return out


def _rl_expert_problems(spec: str, task: str) -> list[str]:
    """Problems with an `rl:<checkpoint>` expert for `task`, found before any env is built."""
    from rho.tasks.rl.expert import checkpoint_task

    path = spec[3:]
    if not path:
        return ["expert=rl: needs a checkpoint, e.g. expert=rl:runs/rl/plug (a `rho rl train` out directory)"]
    try:
        trained = checkpoint_task(path)
    except (FileNotFoundError, ValueError) as e:
        return [f"expert={spec}: {e}"]
    if trained != task:
        return [f"expert={spec}: the checkpoint was trained on task {trained!r}, not task={task!r}. Fix: "
                f"task={trained}, or a checkpoint trained on {task!r}"]
    return []


def datagen_schema(task: str) -> type:
    """DatagenCfg with `env` typed as the task's config class."""
    from rho.tasks.registry import with_task_env

    return with_task_env(DatagenCfg, task)


def attempt_seed(seed: int, attempt: int) -> int:
    return int(np.random.SeedSequence((int(seed), int(attempt))).generate_state(1, np.uint64)[0])


# ------------------------------------------------------------------------------------------------ recording
class _Recorder:
    """Per-env-slot step buffers of the episode in flight."""

    def __init__(self, env, slot: int, attempt: int):
        self.slot, self.attempt = slot, attempt
        self.meta = {**env.episode_params[slot]}
        self.initial = env.get_state()[slot].copy()
        self.obs: dict[str, list[np.ndarray]] = {}
        self.states: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []  # executed joint targets (joint_pos layout)
        self.expert_actions: list[np.ndarray] = []  # the expert's command
        self.rewards: list[float] = []

    def add(self, obs: dict[str, np.ndarray], state: np.ndarray, action: np.ndarray, joint_action: np.ndarray,
            reward: float) -> None:
        for k, v in obs.items():
            self.obs.setdefault(k, []).append(v[self.slot].copy())
        self.states.append(state[self.slot].copy())
        self.actions.append(joint_action[self.slot].astype(np.float32))
        self.expert_actions.append(np.asarray(action[self.slot], np.float32))
        self.rewards.append(float(reward))

    def episode(self, success: bool, task_meta: dict[str, Any]) -> Episode:
        t = len(self.actions)
        dones = np.zeros(t, np.uint8)
        dones[-1] = 1
        return Episode(obs={k: np.stack(v) for k, v in self.obs.items()}, actions=np.stack(self.actions),
                       rewards=np.asarray(self.rewards, np.float32), dones=dones,
                       states={"sim": np.stack(self.states)}, initial_state={"sim": self.initial},
                       success=success, meta={**task_meta, **_flat_meta(self.meta), "attempt": self.attempt},
                       expert_actions=np.stack(self.expert_actions))


def _flat_meta(params: dict[str, Any]) -> dict[str, Any]:
    out = {"episode_seed": int(params.get("episode_seed", 0)), "instruction": params.get("instruction", "")}
    out["randomization"] = {k: v for k, v in params.items() if k not in ("episode_seed", "instruction")}
    return out


def _env_cfg_for(cfg: DatagenCfg):
    """(task entry, env config) the run records in: touch history = touch samples per control step, so every touch
    sample is stored (touch at its own rate); the action mode the expert drives."""
    from rho.tasks import get_task

    entry = get_task(cfg.task)
    if entry.expert_cls is None:
        raise ValueError(f"task {entry.name!r} has no scripted expert to generate demos with")
    env_cfg = dataclasses.replace(cfg.env, num_envs=cfg.num_envs, seed=cfg.seed)
    from rho.tasks.rl.expert import action_mode_of

    env_cfg.action = dataclasses.replace(env_cfg.action, mode=action_mode_of(cfg.expert, entry.expert_action_mode))
    per_step = round(env_cfg.touch.rate_hz / env_cfg.sim.control_hz) if env_cfg.touch.enabled else 1
    env_cfg.touch = dataclasses.replace(env_cfg.touch, history=max(env_cfg.touch.history, per_step))
    return entry, env_cfg


def _env_for(cfg: DatagenCfg):
    """The task entry and its env configured for recording (`_env_cfg_for`)."""
    entry, env_cfg = _env_cfg_for(cfg)
    return entry, entry.env_cls(env_cfg)


def run_record(cfg: DatagenCfg) -> dict[str, Any]:
    """What every shard stores of the run beside env_args (root attribute `datagen`, JSON): the settings that fix
    which attempts become demos, and the target (for the command that resumes an interrupted run)."""
    return {"seed": int(cfg.seed), "keep_failures": bool(cfg.keep_failures), "num_demos": int(cfg.num_demos),
            "expert": cfg.expert}


def env_args(cfg: DatagenCfg, env, entry, expert: Any = None) -> dict[str, Any]:
    """What a reader needs to rebuild the env: task, its full config (the env the expert ran in), the observation
    spec, backend, expert (and, for an RL expert, its checkpoint: path, sha256, iteration, the scripted expert it
    builds on), and what the actions mean: `action_mode` (of `actions`: joint_pos) and `expert_action_mode` (of
    `expert_actions`: the env's action.mode)."""
    expert = entry.expert_cls if expert is None else expert
    out = {"task": entry.name, "gym_id": entry.gym_id, "backend": env.cfg.sim.backend, "env_config": config_to_dict(env.cfg),
           "action_mode": "joint_pos", "expert_action_mode": env.cfg.action.mode,
           "obs_spec": json.loads(env.obs_spec.to_json()), "expert": expert.name,
           "expert_version": expert.version, "control_hz": 1 / env.control_dt, "touch_hz": env.touch_hz,
           "touch_contact_expected": entry.env_cls.touch_contact_expected}
    if hasattr(expert, "describe"):
        out["expert_rl"] = expert.describe()
    return out


# ------------------------------------------------------------------------------------------------ production
def _produce(cfg: DatagenCfg, worker: int, done: set[int], out_dir: Path, report, stop) -> dict[str, float]:
    """One worker: attempts worker, worker + W, ... (minus `done`), recorded into its own shards.

    report(attempt, success, kept, shard) is called for every finished attempt; stop() says when to quit.
    Returns timings: loop_s (stepping, recording, writing) and write_s (HDF5 writes alone).
    """
    from rho.tasks.rl.expert import make_expert

    entry, env = _env_for(cfg)
    expert = make_expert(cfg.expert, env)
    task_meta = {"task": entry.name, "expert": expert.name, "expert_version": expert.version, "source": "sim",
                 "backend": env.cfg.sim.backend, "worker": worker, "action_mode": "joint_pos",
                 "expert_action_mode": env.cfg.action.mode}
    args = env_args(cfg, env, entry, expert)
    attempts = (k for k in _count(worker, cfg.workers) if k not in done)
    pending: dict[int, int] = {}  # env slot → attempt of the episode the env just reset it to

    def seed_for(slot: int) -> int:  # the env asks for the next seed whenever it (auto)resets a slot
        k = next(attempts)
        pending[slot] = k
        return attempt_seed(cfg.seed, k)

    env.episode_seed_fn = seed_for
    run = run_record(cfg)
    shard_index = 1 + max([_shard_index(p, worker) for p in out_dir.glob(f"shard_w{worker:02d}_*.hdf5")], default=-1)
    try:
        writer = _open_shard(out_dir, worker, shard_index, args, run)
    except OSError as e:
        env.close()
        raise _write_error(out_dir / f".shard_w{worker:02d}_{shard_index:05d}.hdf5.tmp", out_dir, e) from e
    obs, _ = env.reset()
    recs = [_Recorder(env, i, pending.pop(i)) for i in range(env.num_envs)]
    t_loop, write_s = time.perf_counter(), 0.0
    try:
        while not stop():
            action = expert.act(obs)
            state = env.get_state()
            before = obs
            obs, rew, term, trunc, info = env.step(action)
            for i, rec in enumerate(recs):
                rec.add(before, state, action, info["joint_action"], rew[i])
            finished = np.flatnonzero(term | trunc)
            for i in finished:
                rec, success = recs[i], bool(info["final_info"]["success"][i])
                kept = success or cfg.keep_failures
                t_write = time.perf_counter()
                shard = writer.path.name  # the shard holding this attempt (the writer may rotate below)
                try:
                    if kept:
                        ep = rec.episode(success, task_meta)
                        # HDF5 does not survive a write that fails for lack of space (it crashed or hung here):
                        # never let it try. The bound is uncompressed and counts every worker writing at once.
                        _ensure_space(writer.tmp, episode_nbytes(ep) * cfg.workers + WRITE_MARGIN, out_dir)
                        writer.add(ep, f"demo_{rec.attempt}")
                    writer.attempts.append(rec.attempt)
                    if len(writer.names) >= cfg.demos_per_shard:
                        writer.close()
                        shard_index += 1
                        writer = _open_shard(out_dir, worker, shard_index, args, run)
                except OSError as e:  # disk full, quota, lost mount: closed shards are untouched
                    writer.attempts.clear()
                    raise _write_error(writer.tmp, out_dir, e) from e
                report(rec.attempt, success, kept, shard)
                recs[i] = _Recorder(env, int(i), pending.pop(int(i)))
                write_s += time.perf_counter() - t_write
            if len(finished):
                expert.reset(finished)
    finally:
        try:
            if writer.attempts:
                try:
                    writer.close()
                except OSError as e:
                    writer.discard()
                    raise _write_error(writer.tmp, out_dir, e) from e
            else:
                writer.discard()
        finally:
            env.close()
    return {"loop_s": time.perf_counter() - t_loop, "write_s": write_s}


def _ensure_space(path: Path, need: int, out_dir: Path) -> None:
    """Refuse (DatasetError naming the path and the free space) when fewer than `need` bytes are free at `path`."""
    free = free_bytes(path.parent)
    if free is not None and free < need:
        raise _write_error(path, out_dir, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), need=need)


def _write_error(path: Path, out_dir: Path, e: OSError, need: int | None = None) -> DatasetError:
    """The error a failed write ends the run with: what failed, where, the space left, and how to go on."""
    done = sorted(p.name for p in out_dir.glob(SHARD_GLOB))
    full = e.errno in (errno.ENOSPC, errno.EDQUOT)
    what = (f"{os.strerror(e.errno)}: {mib(free_bytes(path.parent))} free on the filesystem holding {path.parent}"
            + (f", the next demo needs up to {mib(need)}" if need else "") if full else f"{e}")
    return DatasetError(
        f"writing {path} failed: {what}. The {len(done)} closed shard(s) in {out_dir} are intact; "
        + ("free space (or raise the quota) " if full else "fix the cause (path, mount, permissions) ")
        + "and rerun the same command with --resume.")


def _count(start: int, step: int) -> Iterator[int]:
    k = start
    while True:
        yield k
        k += step


def _shard_index(path: Path, worker: int) -> int:
    return int(path.stem.split("_")[-1])


class _Shard(ShardWriter):
    """A shard that also records every attempt finished while it was open (kept or not), for resume, and the run's
    settings (`run_record`)."""

    def __init__(self, path: Path, env_args: dict[str, Any], run: dict[str, Any]):
        super().__init__(path, env_args, {RUN_ATTR: run})
        self.attempts: list[int] = []

    def close(self) -> Path:
        self._f.attrs["attempts"] = json.dumps(self.attempts)
        return super().close()


def _open_shard(out_dir: Path, worker: int, index: int, args: dict[str, Any], run: dict[str, Any]) -> _Shard:
    return _Shard(out_dir / f"shard_w{worker:02d}_{index:05d}.hdf5", args, run)


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class _Progress:
    """Finished attempts and the cut-off that makes the dataset the first `num_demos` successes by index."""

    num_demos: int
    keep_failures: bool
    finished: dict[int, tuple[bool, bool, str]] = field(default_factory=dict)  # attempt → (success, kept, shard)

    def add(self, attempt: int, success: bool, kept: bool, shard: str) -> None:
        self.finished[attempt] = (success, kept, shard)

    def cutoff(self) -> int | None:
        """The attempt at which the target is reached with no unfinished attempt before it, else None."""
        count = 0
        for k in range(len(self.finished) + 1):
            if k not in self.finished:
                return None
            count += self.finished[k][0]
            if count >= self.num_demos:
                return k
        return None

    @property
    def successes(self) -> int:
        return sum(s for s, _, _ in self.finished.values())


def _scan_done(out_dir: Path) -> dict[int, tuple[bool, bool, str]]:
    """Attempts recorded in closed shards: attempt → (success, kept, shard file)."""
    found: dict[int, tuple[bool, bool, str]] = {}
    for path in sorted(out_dir.glob(SHARD_GLOB)):
        try:
            with h5py.File(path, "r") as f:
                check_version(f.attrs.get("format_version"), str(path))
                kept = {int(g.attrs["attempt"]): bool(g.attrs["success"]) for g in f["data"].values()}
                for k in json.loads(f.attrs.get("attempts", "[]")):
                    found[k] = (kept.get(k, False), k in kept, path.name)
        except (OSError, KeyError, ValueError) as e:
            raise DatasetError(f"{path}: cannot be resumed from ({type(e).__name__}: {e}). `rho dataset check "
                               f"{out_dir}` reports what is wrong; move the file away (its attempts are then "
                               "recorded again) and rerun with --resume.") from e
    return found


def _own(p: Path) -> bool:
    """Whether `p` is a file datagen writes into its output directory."""
    return any(p.match(pattern) for pattern in OWN_FILES)


def _prepare_out(cfg: DatagenCfg) -> tuple[Path, Path | None]:
    """(shard directory, final single file or None), checked before any simulation: a path datagen can create and
    write, not a file where a directory is asked for (or the reverse), not a directory of other files, never an
    existing dataset unless resumed. Removes the half-written shards of a killed run."""
    out = Path(cfg.out).expanduser()
    single = out if out.suffix in (".hdf5", ".h5") else None
    shard_dir = out.with_name(out.name + ".parts") if single else out
    blocker = next((a for a in [out, *out.parents] if a.exists() and not a.is_dir()), None)
    if single and single.is_dir():
        raise DatasetError(f"out={cfg.out}: {single} is a directory, but a name ending in {single.suffix} asks for "
                           "one file. Fix: out=<new file>.hdf5, or a directory name without the suffix")
    if blocker is not None and blocker != single:
        what = f"{out} is a file" if blocker == out else f"cannot write {out}: {blocker} is a file"
        raise DatasetError(f"out={cfg.out}: {what}; datagen writes a directory of shards (or one file, "
                           "out=<name>.hdf5). Fix: choose a new out=...")
    if single and single.exists() and not cfg.resume:
        raise DatasetError(f"{single} exists; pick a new out=..., delete it, or pass --resume")
    existing = shard_dir.is_dir() and (any(shard_dir.glob(SHARD_GLOB)) or (shard_dir / MANIFEST).exists())
    if existing and not cfg.resume:
        raise DatasetError(f"{shard_dir} already holds shards; continue it with --resume (resume=true) or pick a new "
                           "out=...")
    if shard_dir.is_dir() and not existing:
        foreign = sorted(p.name for p in shard_dir.iterdir() if not _own(p))
        if foreign:
            listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise DatasetError(f"out={cfg.out}: {shard_dir} is not empty and is not a rho dataset (it holds "
                               f"{listed}); datagen writes its shards into a directory of its own. Fix: choose a "
                               "new or empty out=...")
    try:
        shard_dir.mkdir(parents=True, exist_ok=True)
        probe = shard_dir / f".write_probe_{os.getpid()}"
        probe.write_bytes(b"\0" * 1024)
        probe.unlink()
    except OSError as e:
        raise DatasetError(f"cannot write to {shard_dir}: {e}. Fix: choose a writable out=... with free space "
                           f"({mib(free_bytes(shard_dir))} free there)") from e
    for tmp in shard_dir.glob(".shard_*.tmp"):  # half-written shards of a killed run
        tmp.unlink()
    return shard_dir, single


# ------------------------------------------------------------------------------------------------ resume check
def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value
    return out


def data_identity(args: dict[str, Any], run: dict[str, Any], format_version: Any) -> dict[str, Any]:
    """What fixes the data of a datagen run, flat (`env.cameras.cam_high.width: 64`): task, seed, failures kept or
    not, format, expert and its version (an RL expert's checkpoint hash), action modes, backend, the full env config
    (less num_envs, which does not change the demos) and the observation spec. Two runs with equal identities
    record the same demos; resuming one with the other's settings would mix two kinds of data."""
    env = {k: v for k, v in (args.get("env_config") or {}).items() if k not in ("num_envs", "seed")}
    ident: dict[str, Any] = {"task": args.get("task"), "format_version": format_version,
                             "seed": run.get("seed", (args.get("env_config") or {}).get("seed"))}
    if "keep_failures" in run:
        ident["keep_failures"] = run["keep_failures"]
    for k in ("expert", "expert_version", "action_mode", "expert_action_mode", "backend"):
        ident[k] = args.get(k)
    if args.get("expert_rl"):
        ident["expert_rl.sha256"] = args["expert_rl"].get("sha256")
        ident["expert_rl.residual"] = args["expert_rl"].get("residual")
    _flatten("env", env, ident)
    for key in args.get("obs_spec") or []:
        _flatten(f"obs.{key.get('name')}", {k: v for k, v in key.items() if k not in ("name", "description")},
                 ident)
    return ident


def _recorded_identities(shard_dir: Path, single: Path | None) -> dict[str, dict[str, Any]]:
    """Identity of what `out` already holds, per source (manifest.json, each closed shard, or the single file)."""
    found: dict[str, dict[str, Any]] = {}
    manifest = shard_dir / MANIFEST
    if manifest.exists():
        try:
            m = json.loads(manifest.read_text())
            found[MANIFEST] = data_identity(m.get("env_args", {}), {k: m[k] for k in ("seed", "keep_failures")
                                                                     if k in m}, m.get("format_version"))
        except (OSError, ValueError, AttributeError) as e:
            raise DatasetError(f"{manifest}: unreadable ({e}); `rho dataset check {shard_dir}` says more. Delete "
                               "the manifest (the shards are the data; it is rewritten at the end) and rerun "
                               "with --resume.") from e
    files = sorted(shard_dir.glob(SHARD_GLOB)) if shard_dir.is_dir() else []
    if not files and single is not None and single.is_file():
        files = [single]
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                args = json.loads(f["data"].attrs.get("env_args", "{}"))
                run = json.loads(f.attrs.get(RUN_ATTR, "{}"))
                found[path.name] = data_identity(args, run, int(f.attrs.get("format_version", -1)))
        except (OSError, KeyError, ValueError) as e:
            raise DatasetError(f"{path}: cannot be resumed from ({type(e).__name__}: {e}). `rho dataset check "
                               f"{shard_dir}` reports what is wrong.") from e
    return found


def _new_identity(cfg: DatagenCfg) -> dict[str, Any]:
    """The identity of the data `cfg` records (builds the env and the expert, steps nothing)."""
    from rho.tasks.rl.expert import make_expert

    entry, env = _env_for(cfg)
    try:
        args = env_args(cfg, env, entry, make_expert(cfg.expert, env))
    finally:
        env.close()
    return data_identity(json.loads(json.dumps(args, default=str)), run_record(cfg), FORMAT_VERSION)


def identity_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Lines `key: <old> → <new>` for every key whose value differs (`absent` where one side lacks it)."""
    def show(d: dict[str, Any], k: str) -> str:
        return json.dumps(d[k]) if k in d else "absent"

    keys = [*old, *(k for k in new if k not in old)]  # data_identity's order: the headline keys first
    return [f"{k}: {show(old, k)} → {show(new, k)}" for k in keys
            if k != "keep_failures" or k in old  # shards of older rho do not record it
            if old.get(k, ...) != new.get(k, ...)]


def _check_resume(cfg: DatagenCfg, shard_dir: Path, single: Path | None) -> None:
    """Refuse to resume `out` with settings that record other data than the run it holds, listing what differs."""
    recorded = _recorded_identities(shard_dir, single)
    if not recorded:
        return
    new = _new_identity(cfg)
    groups: dict[str, list[str]] = {}  # diff text → sources
    for source, ident in recorded.items():
        diff = identity_diff(ident, new)
        if diff:
            groups.setdefault("\n".join(diff), []).append(source)
    if not groups:
        return
    parts = []
    for diff, sources in groups.items():
        lines = diff.splitlines()
        shown = "\n".join(f"    {line}" for line in lines[:25]) + (
            f"\n    ... and {len(lines) - 25} more" if len(lines) > 25 else "")
        names = ", ".join(sources[:4]) + (f" and {len(sources) - 4} more" if len(sources) > 4 else "")
        parts.append(f"  {names} (recorded → this command):\n{shown}")
    raise DatasetError(
        f"--resume: {single or shard_dir} was recorded with other settings than this command's; resuming would mix "
        "two kinds of data in one dataset. What differs:\n" + "\n".join(parts) + "\nFix: rerun with the recorded "
        "settings to continue that run, or pick a new out=... for these settings.")


def generate(cfg: DatagenCfg, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a datagen job and return its summary."""
    from tqdm import tqdm

    fresh = not Path(cfg.out).expanduser().exists()
    shard_dir, single = _prepare_out(cfg)
    if cfg.resume:
        try:
            _check_resume(cfg, shard_dir, single)
        except BaseException:
            if (single or fresh) and not any(shard_dir.iterdir()):  # leave no trace of the refused run
                shard_dir.rmdir()
            raise
    prog = _Progress(cfg.num_demos, cfg.keep_failures)
    if cfg.resume:
        for k, v in _scan_done(shard_dir).items():
            prog.add(k, *v)
    limit = cfg.max_attempts or 5 * cfg.num_demos + 2 * cfg.num_envs * cfg.workers
    start = time.perf_counter()
    resumed = len(prog.finished)
    bar = tqdm(total=cfg.num_demos, initial=min(prog.successes, cfg.num_demos), desc=f"datagen {cfg.task}",
               unit="demo", disable=not progress)

    def report(attempt: int, success: bool, kept: bool, shard: str) -> None:
        prog.add(attempt, success, kept, shard)
        if success and prog.successes <= cfg.num_demos:
            bar.update(1)
        bar.set_postfix(success=f"{prog.successes / max(1, len(prog.finished)):.0%}", attempts=len(prog.finished))

    def stop() -> bool:
        if len(prog.finished) >= limit:
            return True
        return prog.cutoff() is not None

    timing = {"loop_s": 0.0, "write_s": 0.0}
    if prog.cutoff() is None:
        done = set(prog.finished)
        if cfg.launcher == "ray":
            from .ray_launcher import run_ray

            timing = run_ray(cfg, done, shard_dir, report, stop)
        elif cfg.workers == 1:
            timing = _produce(cfg, 0, done, shard_dir, report, stop)
        else:
            timing = _run_workers(cfg, done, shard_dir, report, stop)
    bar.close()
    cutoff = prog.cutoff()
    if cutoff is None:
        raise DatasetError(
            f"{cfg.task}: only {prog.successes} successful demos in {len(prog.finished)} attempts (limit "
            f"{limit}); the expert is failing. The finished demos are kept in {shard_dir}; raise max_attempts or "
            "fix the expert, then rerun with --resume.")
    try:
        manifest = _write_manifest(cfg, shard_dir, prog, cutoff)
        path = _merge_single(shard_dir, single, manifest) if single else shard_dir
    except OSError as e:  # every shard is closed: a rerun with --resume only writes the manifest (and the file)
        target = Path(e.filename) if getattr(e, "filename", None) else (single or shard_dir / MANIFEST)
        raise _write_error(target, shard_dir, e) from e
    wall = time.perf_counter() - start
    return {**_summary(cfg, path, manifest, prog, cutoff, wall, resumed), **timing}


def _run_workers(cfg: DatagenCfg, done: set[int], shard_dir: Path, report, stop) -> dict[str, float]:
    """`cfg.workers` local processes. A worker that fails stops the others and the run with its error; one that
    dies without a word (a signal: a crash in a native library, the OOM killer) is noticed within two seconds,
    so the parent never waits forever."""
    ctx = mp.get_context("spawn")  # MuJoCo, numba and GL contexts do not survive fork
    queue, stop_event = ctx.Queue(), ctx.Event()
    plain = config_to_dict(cfg)  # the schema class is made at run time: send plain data, rebuild in the worker
    procs = [ctx.Process(target=_worker_main, args=(plain, w, done, shard_dir, queue, stop_event), daemon=True)
             for w in range(cfg.workers)]
    for p in procs:
        p.start()
    exited: set[int] = set()
    timing = {"loop_s": 0.0, "write_s": 0.0}  # slowest worker's loop, all workers' writes
    try:
        while len(exited) < len(procs):
            try:
                msg = queue.get(timeout=1.0)
            except queue_mod.Empty:
                dead = [w for w, p in enumerate(procs) if w not in exited and p.exitcode is not None]
                if not dead:
                    continue
                try:  # its last words may still be in the pipe
                    msg = queue.get(timeout=1.0)
                except queue_mod.Empty:
                    raise DatasetError(_died(dead[0], procs[dead[0]].exitcode, shard_dir)) from None
            if msg[0] == "attempt":
                report(*msg[1:])
                if stop():
                    stop_event.set()
            elif msg[0] == "exit":
                exited.add(msg[1])
                timing = {"loop_s": max(timing["loop_s"], msg[2]["loop_s"]),
                          "write_s": timing["write_s"] + msg[2]["write_s"]}
            elif msg[0] == "failed":  # a DatasetError (full disk, ...): its message is for the user
                raise DatasetError(f"datagen worker {msg[1]}: {msg[2]}")
            elif msg[0] == "error":
                raise RuntimeError(f"datagen worker {msg[1]} failed:\n{msg[2]}")
    finally:
        stop_event.set()
        deadline = time.monotonic() + 60
        for p in procs:  # the others close their shards and exit; a stuck one is killed
            p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    return timing


def _died(worker: int, code: int | None, shard_dir: Path) -> str:
    """The message for a worker process that ended without reporting why."""
    names = {int(s): s.name for s in signal.Signals}
    how = f"signal {names[-code]} (exit code {code})" if code is not None and -code in names else f"exit code {code}"
    return (f"datagen worker {worker} died with {how} without reporting an error: a crash in a native library "
            f"(HDF5 on a failed write, MuJoCo) or the out-of-memory killer. {mib(free_bytes(shard_dir))} free at "
            f"{shard_dir}. The closed shards there are intact; fix the cause and rerun the same command with "
            "--resume.")


def _worker_main(plain, worker, done, shard_dir, queue, stop_event) -> None:
    import traceback

    from rho.config import config_from_dict

    try:
        cfg = config_from_dict(datagen_schema(plain["task"]), plain)
        timing = _produce(cfg, worker, done, shard_dir, lambda *a: queue.put(("attempt", *a)), stop_event.is_set)
        queue.put(("exit", worker, timing))
    except DatasetError as e:
        queue.put(("failed", worker, str(e)))
    except BaseException:
        queue.put(("error", worker, traceback.format_exc()))


def _write_manifest(cfg: DatagenCfg, shard_dir: Path, prog: _Progress, cutoff: int) -> dict[str, Any]:
    demos = []
    for k in sorted(prog.finished):
        success, kept, shard = prog.finished[k]
        if kept and k <= cutoff:
            with h5py.File(shard_dir / shard, "r") as f:
                n = int(f["data"][f"demo_{k}"].attrs["num_samples"])
            demos.append({"file": shard, "group": f"demo_{k}", "attempt": k, "success": success, "num_samples": n})
    first = shard_dir / demos[0]["file"]
    with h5py.File(first, "r") as f:
        args = json.loads(f["data"].attrs["env_args"])
    manifest = {"format_version": FORMAT_VERSION, "task": cfg.task, "seed": cfg.seed, "num_demos": cfg.num_demos,
                "keep_failures": cfg.keep_failures, "attempts": cutoff + 1, "demos": demos, "env_args": args,
                "total": int(sum(d["num_samples"] for d in demos)),
                "mask": {"train": [d["group"] for d in demos], "valid": []}}
    atomic_write_text(shard_dir / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def _merge_single(shard_dir: Path, single: Path, manifest: dict[str, Any]) -> Path:
    """Copy the manifest's demos, in order, into one file (demo_0, demo_1, ...), then rename it into place."""
    tmp = single.with_name(f".{single.name}.tmp")
    need = sum((shard_dir / f).stat().st_size for f in {d["file"] for d in manifest["demos"]}) + WRITE_MARGIN
    _ensure_space(tmp, need, shard_dir)  # before HDF5 writes: it does not survive running out of space
    with h5py.File(tmp, "w") as out:
        out.attrs.update({"format_version": FORMAT_VERSION, "producer": "rho", "task": manifest["task"],
                          RUN_ATTR: json.dumps({k: manifest[k] for k in ("seed", "keep_failures", "num_demos")})})
        data = out.create_group("data")
        names = []
        for i, d in enumerate(manifest["demos"]):
            with h5py.File(shard_dir / d["file"], "r") as f:
                f.copy(f["data"][d["group"]], data, name=f"demo_{i}")
            names.append(f"demo_{i}")
        data.attrs["total"] = manifest["total"]
        data.attrs["env_args"] = json.dumps(manifest["env_args"])
        write_default_masks(out, names)
    os.replace(tmp, single)
    shutil.rmtree(shard_dir)
    return single


def _summary(cfg, path: Path, manifest, prog: _Progress, cutoff: int, wall: float, resumed: int) -> dict[str, Any]:
    size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.iterdir())
    attempts = cutoff + 1
    successes = sum(prog.finished[k][0] for k in range(attempts))
    return {"task": cfg.task, "out": str(path.resolve()), "demos": len(manifest["demos"]),
            "successful_demos": sum(d["success"] for d in manifest["demos"]), "samples": manifest["total"],
            "attempts": attempts, "success_rate": successes / attempts, "resumed_attempts": resumed,
            "bytes": size, "bytes_per_demo": size / max(1, len(manifest["demos"])), "wall_s": wall,
            "demos_per_s": (len(manifest["demos"])) / wall if wall > 0 else 0.0,
            "num_envs": cfg.num_envs, "workers": cfg.workers, "seed": cfg.seed,
            "obs_keys": {k["name"]: k["shape"] for k in manifest["env_args"]["obs_spec"]}}
