"""Backend parity: the same task, seed and action sequence on the MuJoCo and Isaac Lab backends.

    python -m rho.sim.parity record task=lift_block steps=50 out=ref.npz   # on backend=mujoco (Python 3.11 venv)
    python -m rho.sim.parity compare ref=ref.npz                          # on backend=isaaclab (Python 3.12 venv)

`record` runs the task's scripted expert on the MuJoCo backend and stores its actions and the trajectories
(`qpos` every control step); `compare` replays those actions from the same seeded reset on another backend and
reports, per control step, the largest robot-joint error (rad) and free-object position error (m), plus each
backend's success. The two backends share the scene (one MJCF), the controller, the reset draws and the
randomization; they differ in the engine (MuJoCo C vs MuJoCo-Warp through Newton) and float precision (64 vs 32
bit), so trajectories agree closely while motion is smooth and drift apart after contact-rich events.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

JOINT_TOL = 0.03  # rad: robot joints (arm + fingers) agree within this ...
OBJECT_TOL = 0.015  # m: ... and free objects within this, for `agree_steps` control steps


def make_expert_env(task: str, num_envs: int, seed: int, backend: str, device: str = "cpu", cameras: bool = False):
    """(registry entry, env) of `task` in its scripted expert's action mode on `backend` (cameras off unless asked)."""
    from rho.tasks import get_task

    entry = get_task(task)
    cfg = entry.cfg_cls()
    cfg.num_envs, cfg.seed = num_envs, seed
    cfg.action.mode = entry.expert_action_mode
    if not cameras:
        cfg.cameras = {}
    cfg.sim.backend, cfg.sim.device = backend, device
    return entry, entry.env_cls(cfg)


def _joint_and_object_index(env) -> tuple[np.ndarray, list[tuple[str, int]]]:
    import mujoco

    m = env.model
    joints = np.concatenate([env.arm_qadr.ravel(), env.finger_qadr])
    objects = [(m.joint(j).name, int(m.jnt_qposadr[j])) for j in range(m.njnt)
               if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    return joints, objects


def record(task: str, steps: int = 50, num_envs: int = 2, seed: int = 0) -> dict[str, Any]:
    """Run the scripted expert on the MuJoCo backend; return actions, qpos trajectory and success."""
    entry, env = make_expert_env(task, num_envs, seed, "mujoco")
    expert = entry.expert_cls(env)
    obs, _ = env.reset(seed=seed)
    actions, qpos, success = [], [env.qpos.copy()], np.zeros(num_envs, bool)
    for _ in range(steps):
        a = np.asarray(expert.act(obs), np.float32)
        obs, _, term, trunc, info = env.step(a)
        success |= info["success"]
        actions.append(a)
        if (term | trunc).any():  # the horizon ends where an env finishes (its state then resets)
            break
        qpos.append(env.qpos.copy())
    env.close()
    return {"task": task, "seed": seed, "actions": np.stack(actions), "qpos": np.stack(qpos), "success": success}


def replay(ref: dict[str, Any], backend: str, device: str = "cpu") -> dict[str, Any]:
    """Replay a recorded action sequence from the same seeded reset on `backend`."""
    task, seed = str(ref["task"]), int(ref["seed"])
    actions = np.asarray(ref["actions"])
    _, env = make_expert_env(task, actions.shape[1], seed, backend, device)
    env.reset(seed=seed)
    qpos, success = [env.qpos.copy()], np.zeros(actions.shape[1], bool)
    for a in actions:
        _, _, _, _, info = env.step(a)
        qpos.append(env.qpos.copy())
        success |= info["success"]
    joints, objects = _joint_and_object_index(env)
    env.close()
    return {"qpos": np.stack(qpos), "success": success, "joints": joints, "objects": objects}


def compare(ref: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Per-step max robot-joint error (rad) and free-object position error (m) over all envs."""
    a = np.asarray(ref["qpos"])
    b = np.asarray(other["qpos"])[:len(a)]
    joint_err = np.abs(a[..., other["joints"]] - b[..., other["joints"]]).max(axis=(1, 2))
    obj = [adr for _, adr in other["objects"]]
    obj_err = (np.stack([np.linalg.norm(a[..., k:k + 3] - b[..., k:k + 3], axis=-1) for k in obj], -1)
               .max(axis=(1, 2)) if obj else np.zeros(len(a)))
    bad = (joint_err > JOINT_TOL) | (obj_err > OBJECT_TOL)
    agree = int(np.argmax(bad)) - 1 if bad.any() else len(a) - 1
    return {"steps": len(a) - 1, "agree_steps": agree, "joint_err_rad": joint_err, "object_err_m": obj_err,
            "max_joint_err_rad": float(joint_err.max()), "max_object_err_m": float(obj_err.max()),
            "success_ref": np.asarray(ref["success"]).tolist(), "success_other": other["success"].tolist()}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("record", "compare"):
        print(__doc__)
        return 2
    kv = dict(a.split("=", 1) for a in argv[1:])
    if argv[0] == "record":
        out = record(kv.get("task", "lift_block"), int(kv.get("steps", 50)), int(kv.get("num_envs", 2)),
                     int(kv.get("seed", 0)))
        path = Path(kv.get("out", "parity_ref.npz"))
        np.savez(path, **out)
        print(f"recorded {out['actions'].shape[0]} steps × {out['actions'].shape[1]} envs of {out['task']} → {path}")
        return 0
    ref = dict(np.load(kv["ref"], allow_pickle=False))
    res = compare(ref, replay(ref, kv.get("backend", "isaaclab"), kv.get("device", "cpu")))
    print(json.dumps({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
