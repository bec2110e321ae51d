"""Per-source validation of a checkpoint: where a multi-task policy's error is, before any rollout.

`rho train` validates on a weighted mixture of every source's held-out demos, one number. This breaks it down per
source on the same held-out demos (each source's `mask/valid`, else its seeded `data.valid_fraction`, as the run
split them): the flow-matching loss of the actions and, for a model trained with an auxiliary head
(`policy.aux_dim`), the mean absolute error of its predicted privileged positions, de-normalized to the source's
units (m for positions); and, for sim sources, how far the TCP targets of a sampled action chunk are from the
demo's (m; the arm further off; joint targets through forward kinematics, so joint and ee_pose policies compare):
at the chunk's first step (what is executed next) and over the chunk. A task whose object the vision path cannot place (e.g. the named button of a randomized
panel) shows up here as an aux error comparable to the object spacing, while its action loss may look fine.

    python -m rho.policy.diagnose runs/p16/policy_v3_64/checkpoints/latest [samples=256] [batch=64] [seed=0]

Data paths are the run's own (`extra.json` train_cfg), so run it from the directory the training ran in.
Deterministic: fixed draws and a seeded flow noise. CPU by default, one thread per process (set RHO_THREADS).

Closed loop, `reach=<task>`: where did the arms go? Runs the standard suite's first `episodes` nominal episodes of
that task (one env, the suite's seeds: never training seeds) and reports per episode the nearest approach of
either TCP to the task's object (`target=`, an obs key as in `data.sources[].aux`, default the first aux key of the
run's sources for that task), the TCP-minus-object offset at that moment (m, world frame), the same for the nearest
fingertip (the fingers' tips, `FINGERTIP` along the TCP's x axis: what presses a button) and the outcome:

    python -m rho.policy.diagnose runs/p16/policy_v3_64 reach=busybox_push_button episodes=6 [target=target_site]"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from rho.config import ConfigError
from rho.sim.ik import quat_to_mats
from rho.tasks.busybox import FINGERTIP  # TCP to fingertip along the TCP's x axis (m), ALOHA's fingers

from .data import Layout, MixtureDataset, build_sources, collate
from .model import _state_args
from .train import TrainCfg, rho_model_io


def per_source_validation(ckpt: str | Path, samples: int = 256, batch: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """One row per source: name, valid demos, `flow_loss`, and (aux head) `aux_abs_err` / `aux_std` per target
    dimension in the source's units, `aux_keys`."""
    if samples < 1 or batch < 1:
        raise ConfigError([f"samples and batch must be >= 1, got samples={samples} batch={batch}"])
    model, _, extra = rho_model_io().load(Path(ckpt))
    if "train_cfg" not in extra or "source_stats" not in extra:
        raise ConfigError([f"{ckpt}: its extra.json has no train_cfg / source_stats, so the training data cannot be "
                           "reopened as the run saw it. Fix: give a checkpoint written by rho train"])
    model.eval()
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainCfg), extra["train_cfg"]))
    sources = build_sources(cfg.data, Layout.from_policy(model.cfg), cfg.seed, extra["source_stats"])
    rows = []
    for s in sources:
        ds = MixtureDataset([s], "valid", cfg.seed, None)
        row: dict[str, Any] = {"source": s.name, "valid_demos": len(s.demos.get("valid", [])),
                               "valid_frames": s.num_frames("valid")}
        if ds.empty:
            rows.append(row | {"flow_loss": None})
            continue
        flow, errs, tcp = [], [], []
        to_tcp = _tcp_positions(s)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):  # the flow noise: seeded, the caller's RNG untouched
            torch.manual_seed(seed)
            for b0 in range(0, samples, batch):
                b = collate([ds[k] for k in range(b0, min(b0 + batch, samples))])
                prefix = model.prefix(b["images"], b["image_mask"], b["instruction"])
                _, info = model.loss(b, prefix)
                n = len(b["instruction"])
                flow.append((info.get("flow_loss", info["loss"]), n))
                if to_tcp is not None:  # sampled chunk vs the demo's, as TCP positions (m): both action spaces alike
                    pred = model.sample_actions(prefix, *_state_args(b, model.device))
                    stats = s.norm["actions"]
                    raw = [x.numpy() * stats.std + stats.mean for x in (pred, b["actions"])]
                    p_tcp, t_tcp = (to_tcp(x) for x in raw)  # (b, h, arms, 3)
                    d = np.linalg.norm(p_tcp - t_tcp, axis=-1).max(-1)  # (b, h): the arm that is further off
                    tcp.append((d[:, 0], d[~b["action_pad"].numpy()]))
                if model.aux_head is not None and s.aux and "aux" in b:
                    d = len(s.aux_std)
                    pred = model.aux_predict(prefix)
                    errs.append(np.abs(pred[:, :d].numpy() - b["aux"][:, :d].numpy()) * s.aux_std[None])
        row["flow_loss"] = float(sum(v * n for v, n in flow) / sum(n for _, n in flow))
        if tcp:  # mean TCP position error of sampled actions (m): the chunk's first step, and every real step
            row["tcp_err_first"] = float(np.concatenate([a for a, _ in tcp]).mean())
            row["tcp_err_chunk"] = float(np.concatenate([c for _, c in tcp]).mean())
        if errs:
            row |= {"aux_keys": list(s.cfg.aux), "aux_abs_err": np.concatenate(errs).mean(0).tolist(),
                    "aux_std": np.asarray(s.aux_std).tolist()}
        rows.append(row)
    return rows


def _tcp_positions(source: Any):
    """Raw actions (b, h, A) of `source` → TCP positions (b, h, arms, 3) in m, world: read from ee_pose actions,
    forward kinematics of joint targets in the recording env; None for a source that cannot say (no sim env)."""
    from rho.datagen.relabel import replay_env
    from rho.sim.env import EE_POSE_DIM

    from .data import EEPoseStore, HDF5Store

    store = source.store
    base = store.base if isinstance(store, EEPoseStore) else store
    if not isinstance(base, HDF5Store) or "task" not in base.ds.env_args():
        return None
    if isinstance(store, EEPoseStore):
        return lambda a: a.reshape(*a.shape[:2], -1, EE_POSE_DIM)[..., :3]
    if getattr(store, "action_mode", "") != "joint_pos":
        return None
    env = replay_env(base.ds.env_args(), "ee_pose")

    def fk(a: np.ndarray) -> np.ndarray:
        pose = env.tcp_pose_of(a.reshape(-1, a.shape[-1]))
        return pose.reshape(*a.shape[:2], -1, EE_POSE_DIM)[..., :3]

    return fk


def reach_offsets(policy: str | Path, task: str, target: str = "", episodes: int = 6) -> list[dict[str, Any]]:
    """Closed-loop reach of `policy` on `task`: one row per episode of the standard suite (nominal level, one env)
    with `instruction`, `success`, `steps`, `arm` (0 left, 1 right: the TCP that came nearest), `min_dist` (m),
    `offset` (TCP − object at that step, m, world xyz) and `step` (when). `target`: the object's obs key, optionally
    sliced (`block_pose[0:3]`); default: the run's first aux key on a source of that task."""
    from rho.eval.evaluation import Evaluation
    from rho.eval.policies import load_policy

    from .data import _AUX_SPEC

    if episodes < 1:
        raise ConfigError([f"episodes must be >= 1, got {episodes}"])
    target = target or _default_target(Path(policy), task)
    m = _AUX_SPEC.fullmatch(target.strip())
    if not m:
        raise ConfigError([f"target {target!r} is not '<obs key>' or '<obs key>[start:stop]' (e.g. block_pose[0:3])"])
    sliced = m["start"] is not None  # the group matched: `key[a:b]`; a bare key means its first 3 values
    sl = slice(int(m["start"] or 0), int(m["stop"]) if m["stop"] else None) if sliced else slice(0, 3)
    rec = _Recorder(load_policy(str(policy)), m["key"], sl, target)
    ev = Evaluation("standard", out=None, tasks=[task], levels=["nominal"], episodes=episodes, num_envs=1, workers=1,
                    videos=0, traces=0)
    try:
        ev.run(rec)
    except RuntimeError as e:  # the runner names the episode; a bad target is the user's to fix, said plainly
        if isinstance(e.__cause__, ConfigError):
            raise e.__cause__ from None
        raise
    rows = []
    for record, steps in zip(sorted(ev.records, key=lambda r: r["episode"]), rec.episodes(), strict=True):
        tcp, obj = np.stack([s[0] for s in steps]), np.stack([s[1] for s in steps])  # (T, arms, 3), (T, 3)
        tip = np.stack([s[2] for s in steps])  # (T, arms, 3)
        d = np.linalg.norm(tcp - obj[:, None], axis=-1)  # (T, arms)
        t, arm = np.unravel_index(int(np.argmin(d)), d.shape)
        dt = np.linalg.norm(tip - obj[:, None], axis=-1)
        tt, tarm = np.unravel_index(int(np.argmin(dt)), dt.shape)
        rows.append({"episode": record["episode"], "instruction": record["instruction"],
                     "success": record["success"], "steps": record["steps"], "arm": int(arm),
                     "min_dist": float(d[t, arm]), "offset": (tcp[t, arm] - obj[t]).tolist(), "step": int(t),
                     "tip_dist": float(dt[tt, tarm]), "tip_offset": (tip[tt, tarm] - obj[tt]).tolist()})
    return rows


class _Recorder:
    """Wraps a policy: records env 0's TCP positions and the target each step; everything else is the policy's."""

    def __init__(self, policy: Any, key: str, sl: slice, target: str) -> None:
        self.policy, self.key, self.sl, self.target, self.log = policy, key, sl, target, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    def reset(self, env_ids: Any) -> None:
        self.log.append(None)  # an episode boundary
        self.policy.reset(env_ids)

    def act(self, obs: dict[str, np.ndarray], instruction: list[str]) -> np.ndarray:
        if self.key not in obs:
            raise ConfigError([f"target {self.key!r} is not an observation of this task; have: "
                               f"{sorted(k for k in obs if np.asarray(obs[k]).ndim == 2)}"])
        obj = np.asarray(obs[self.key][0])[self.sl].copy()
        if obj.shape != (3,):  # said at the first step, not after the whole evaluation
            raise ConfigError([f"target {self.target!r} gives {obj.size} values per step; a position needs 3 "
                               "(slice it, e.g. plug_pose[0:3])"])
        pose = np.asarray(obs["ee_pose"][0], np.float64)  # (arms, 7): position, quaternion w, x, y, z
        tip = pose[:, :3] + FINGERTIP * quat_to_mats(pose[:, 3:])[:, :, 0]  # fingers run along the TCP's x
        self.log.append((pose[:, :3].copy(), obj, tip))
        return self.policy.act(obs, instruction)

    def episodes(self) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        out: list[list[tuple[np.ndarray, np.ndarray]]] = []
        for e in self.log:
            if e is None:
                out.append([])
            else:
                out[-1].append(e)
        return [ep for ep in out if ep]


def _default_target(policy: Path, task: str) -> str:
    """The first aux key of the run's sources whose dataset is `task` (their manifest or file attrs say)."""
    from rho.datagen.hdf5 import DatasetError, dataset_env_args

    from .checkpoint import resolve_checkpoint

    extra_path = resolve_checkpoint(policy) / "extra.json"
    try:
        sources = json.loads(extra_path.read_text())["train_cfg"]["data"]["sources"]
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError([f"{policy}: no train_cfg in {extra_path} ({e}), so the task's object is unknown. Fix: "
                           "give target=<obs key>, e.g. target=block_pose[0:3]"]) from e
    for src in sources:
        if not src.get("aux"):
            continue
        try:
            if dataset_env_args(src["path"]).get("task") == task:
                return str(src["aux"][0])
        except (OSError, ValueError, KeyError, DatasetError):
            continue
    raise ConfigError([f"no source of {policy} with aux keys is a {task!r} dataset. Fix: give target=<obs key>, "
                       "e.g. target=block_pose[0:3]"])


def format_reach(rows: list[dict[str, Any]]) -> str:
    out = ["| episode | instruction | success | steps | nearest TCP | min distance (mm) | offset x / y / z (mm) | "
           "nearest fingertip (mm) | its offset x / y / z (mm) |",
           "| ---: | --- | --- | ---: | --- | ---: | --- | ---: | --- |"]
    for r in rows:
        off = " / ".join(f"{1000 * v:.0f}" for v in r["offset"])
        tip = " / ".join(f"{1000 * v:.0f}" for v in r["tip_offset"])
        out.append(f"| {r['episode']} | {r['instruction']} | {r['success']} | {r['steps']} | "
                   f"{'left' if r['arm'] == 0 else 'right'} (step {r['step']}) | {1000 * r['min_dist']:.0f} | {off} | "
                   f"{1000 * r['tip_dist']:.0f} | {tip} |")
    return "\n".join(out)


def format_rows(rows: list[dict[str, Any]]) -> str:
    out = ["| source | valid demos | flow loss | TCP error, first / chunk (mm) | aux targets | aux mean abs error | "
           "aux std (spread) |", "| --- | ---: | ---: | --- | --- | --- | --- |"]
    for r in rows:
        fl = "—" if r["flow_loss"] is None else f"{r['flow_loss']:.4f}"
        if "aux_abs_err" in r:
            err = " ".join(f"{1000 * v:.1f}" for v in r["aux_abs_err"]) + " (×1e-3)"
            std = " ".join(f"{1000 * v:.1f}" for v in r["aux_std"]) + " (×1e-3)"
            keys = ", ".join(r["aux_keys"])
        else:
            err = std = keys = "—"
        tcp = f"{1000 * r['tcp_err_first']:.1f} / {1000 * r['tcp_err_chunk']:.1f}" if "tcp_err_first" in r else "—"
        out.append(f"| {r['source']} | {r['valid_demos']} | {fl} | {tcp} | {keys} | {err} | {std} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pos = [a for a in args if "=" not in a]
    kw = dict(a.split("=", 1) for a in args if "=" in a)
    unknown = sorted(set(kw) - {"samples", "batch", "seed", "reach", "target", "episodes"})
    if len(pos) != 1 or unknown:
        print("usage: python -m rho.policy.diagnose <checkpoint> [samples=256 batch=64 seed=0]\n"
              "       python -m rho.policy.diagnose <checkpoint or run dir> reach=<task> [episodes=6 target=<obs key>]"
              f"\n(got {args})", file=sys.stderr)
        return 2
    torch.set_num_threads(int(os.environ.get("RHO_THREADS", "1")))
    reach = "reach" in kw
    try:
        rows = (reach_offsets(pos[0], kw["reach"], kw.get("target", ""), int(kw.get("episodes", 6))) if reach else
                per_source_validation(pos[0], int(kw.get("samples", 256)), int(kw.get("batch", 64)),
                                      int(kw.get("seed", 0))))
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_reach(rows) if reach else format_rows(rows))
    print(json.dumps(rows))
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
