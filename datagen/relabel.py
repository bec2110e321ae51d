"""Re-simulating recorded demos: replay (`rho dataset replay`) and relabelling v1 datasets by replay (`rho dataset
convert`, format v1 → v2).

A sim demo replays exactly: the env is rebuilt from the dataset's `env_args` (task + env config, cameras off: they
do not touch the physics), reset to the demo's `episode_seed` (the same domain randomization) and set to its
recorded initial state; then its actions are stepped. Format v1 stored the expert's command (`ee_delta` for the
scripted experts) as `actions`; v2 trains on the executed absolute joint targets. The migration replays each v1 sim
demo's commands in the env's own action mode, takes the servo targets every step wrote (`info["joint_action"]`) as
the new `actions`, moves the old ones to `expert_actions`, adds the observation v2 ee_delta envs make and v1 did not
(`ee_target`, the running TCP target, taken from the same replay), and checks on the way that the replay reproduces the
recorded states — a demo whose replay drifts by more than `tol` is refused, so no label is made up. The new labels
are replayed in joint_pos too and that error reported: v1 envs servoed to the IK's float64 targets, v2 rounds them
to float32 (`action.servo_float32`), so a v1 demo's joint targets reproduce it up to that rounding (sub-µm on most
tasks, amplified to ~1 mm by the plug insertions' contacts), where a v2 demo's replay bit-identically.
"""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

from .hdf5 import DatasetError

REPLAY_TOL = 1e-4  # largest qpos error (m or rad) a v1 demo may replay with when it is relabelled


def replay_env(args: dict[str, Any], action_mode: str):
    """A one-env copy of the env a dataset was recorded in (cameras off), driven in `action_mode`."""
    import dataclasses

    from rho.config import config_from_dict
    from rho.tasks import get_task

    if "env_config" not in args or "task" not in args:
        raise DatasetError("env_args has no task/env_config: the demos cannot be re-simulated")
    backend = args.get("backend") or args["env_config"].get("sim", {}).get("backend", "mujoco")
    if backend != "mujoco":
        raise DatasetError(f"the demos were recorded on backend={backend!r}; replaying them needs the backend they "
                           "ran on, and only backend=mujoco is replayed here. Regenerate the dataset with the "
                           "current rho instead")
    entry = get_task(args["task"])
    cfg = config_from_dict(entry.cfg_cls, args["env_config"])
    cfg.num_envs, cfg.cameras = 1, {}
    cfg.action = dataclasses.replace(cfg.action, mode=action_mode)
    return entry.env_cls(cfg)


def replay_demo(env, episode_seed: int, initial_state: np.ndarray, actions: np.ndarray,
                states: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Step `actions` (T, A) from the demo's seeded reset and initial state. Returns "joint_action" (T, 14)
    float32, the servo targets each step executed, "ee_target" (T, arms·7) float32 the observed ee_delta TCP target
    at each step (ee_delta envs only), and, given the recorded `states` (T, nstate), "qpos_error" (T,)
    (max |qpos − recorded| at each step's observation, m or rad) and "qvel_error" (T,) (m/s or rad/s)."""
    env.reset(options={"episode_seeds": [int(episode_seed)]})
    env.set_state(np.asarray(initial_state)[None])
    t_len, nq, nv = len(actions), env.model.nq, env.model.nv
    joint = np.empty((t_len, env.joint_action.shape[1]), np.float32)
    ee_delta = env.cfg.action.mode == "ee_delta"
    target = np.empty((t_len, env.ee_target[0].size), np.float32) if ee_delta else None
    qerr, verr = np.zeros(t_len), np.zeros(t_len)
    for t in range(t_len):
        if states is not None:  # mjSTATE_INTEGRATION: time, qpos, qvel, ...
            d = np.abs(env.get_state()[0, 1:1 + nq + nv] - states[t, 1:1 + nq + nv])
            qerr[t], verr[t] = d[:nq].max(initial=0.0), d[nq:].max(initial=0.0)
        if ee_delta:
            target[t] = env.ee_target[0].reshape(-1)
        _, _, _, _, info = env.step(np.asarray(actions[t], np.float32)[None])
        joint[t] = info["joint_action"][0]
    out = {"joint_action": joint, **({"ee_target": target} if ee_delta else {})}
    if states is not None:
        out.update(qpos_error=qerr, qvel_error=verr)
    return out


def migrate_v1_to_v2(f: h5py.File, tol: float | str = REPLAY_TOL) -> dict[str, Any]:
    """Format v1 → v2 in place (an opened, writable copy): sim demos relabelled by replay, imported demos (which
    hold joint targets already) marked as such. Returns {"demos": n, "relabelled": n, "max_qpos_error": e,
    "max_qvel_error": e (the expert's commands replayed against the recorded states), "joint_replay_max_qpos_error":
    e (the new joint-target actions replayed in joint_pos against them), "per_demo": {name: qpos error}}; raises
    DatasetError naming the first demo that does not replay within `tol`.

    The env config gains `action.servo_float32=false` when it lacks the field (v1 envs servoed to float64 IK
    targets), so the expert's commands keep replaying bit-identically from the converted dataset."""
    tol = float(tol)
    data = f["data"]
    args = json.loads(data.attrs.get("env_args", "{}"))
    mode = args.get("env_config", {}).get("action", {}).get("mode")  # v1: what the recorded actions are
    if "env_config" in args:  # v1 envs gave the servos the IK's float64 targets: replay them so, bit-identically
        args["env_config"].setdefault("action", {}).setdefault("servo_float32", False)
    sims = [n for n, g in data.items() if _attr(g, "source", "sim") == "sim"]
    per_demo: dict[str, float] = {}
    max_qvel, max_joint = 0.0, 0.0
    if sims:
        env = replay_env(args, mode or "joint_pos")
        joint_env = replay_env(args, "joint_pos")
        spec = args.get("obs_spec")
        if mode == "ee_delta" and spec is not None and not any(k["name"] == "ee_target" for k in spec):
            at = next((i + 1 for i, k in enumerate(spec) if k["name"] == "ee_pose"), len(spec))
            spec.insert(at, json.loads(env.obs_spec.to_json())[env.obs_spec.names.index("ee_target")])
        try:
            for name in sorted(sims, key=lambda n: int(data[n].attrs.get("attempt", 0))):
                g = data[name]
                missing = [k for k in ("actions", "states/sim", "initial_state/sim") if k not in g]
                if missing or "episode_seed" not in g.attrs:
                    raise DatasetError(f"{f.filename}: {name} lacks {missing or ['episode_seed']}; a sim demo needs "
                                       "its seed, initial state and states to be relabelled by replay")
                old = g["actions"][()]
                r = replay_demo(env, int(g.attrs["episode_seed"]), g["initial_state/sim"][()], old,
                                g["states/sim"][()])
                err = float(r["qpos_error"].max(initial=0.0))
                if not err <= tol:
                    t = int(np.argmax(r["qpos_error"] > tol))
                    raise DatasetError(
                        f"{name} does not replay: from step {t} its re-simulated states leave the recorded ones, by "
                        f"up to {err:.3g} (qpos, m or rad; tolerance {tol:g}), so its executed joint targets cannot be "
                        "recovered. It was probably recorded by another rho or MuJoCo version; regenerate the dataset "
                        "with `rho datagen`, or convert with a larger tolerance (tol=...) if that error is acceptable")
                del g["actions"]
                g.create_dataset("expert_actions", data=old.astype(np.float32))
                g.create_dataset("actions", data=r["joint_action"])
                # how exactly the new labels reproduce the demo (bit-identical unless the v1 env's float64 servo
                # targets differ from their float32 rounding, which contact-rich tasks amplify)
                jr = replay_demo(joint_env, int(g.attrs["episode_seed"]), g["initial_state/sim"][()],
                                 r["joint_action"], g["states/sim"][()])
                joint_err = float(jr["qpos_error"].max(initial=0.0))
                max_joint = max(max_joint, joint_err)
                if "ee_target" in r and "ee_target" not in g["obs"]:  # v1 did not observe it; v2 ee_delta envs do
                    g["obs"].create_dataset("ee_target", data=r["ee_target"])
                g.attrs.update({"action_mode": "joint_pos", "expert_action_mode": mode or "joint_pos",
                                "relabelled": "v1 -> v2 by replay", "replay_max_qpos_error": err,
                                "joint_replay_max_qpos_error": joint_err})
                per_demo[name] = err
                max_qvel = max(max_qvel, float(r["qvel_error"].max(initial=0.0)))
        finally:
            env.close()
            joint_env.close()
    for name, g in data.items():
        if name in per_demo:
            continue
        if mode not in (None, "joint_pos"):  # e.g. a rho export re-imported: ee_delta commands, no sim state
            raise DatasetError(f"{name} (source={_attr(g, 'source', '?')}) holds {mode} actions but no simulator "
                               "state to replay them from; convert the original rho dataset instead")
        g.attrs["action_mode"] = "joint_pos"
    args.update(action_mode="joint_pos", expert_action_mode=mode or "joint_pos")
    if per_demo:
        args["relabelled"] = {"from_format_version": 1, "by": "replay", "max_qpos_error": max(per_demo.values()),
                              "joint_replay_max_qpos_error": max_joint, "tol": tol}
    data.attrs["env_args"] = json.dumps(args)
    return {"demos": len(data), "relabelled": len(per_demo),
            "max_qpos_error": max(per_demo.values(), default=0.0), "max_qvel_error": max_qvel,
            "joint_replay_max_qpos_error": max_joint,
            "per_demo": per_demo}


def _attr(g: h5py.Group, key: str, default: str) -> str:
    v = g.attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)
