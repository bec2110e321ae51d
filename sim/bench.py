"""`rho bench sim`: simulation throughput, side by side in one process.

Workload: the `lift_block` scene driven through a recorded episode of its scripted expert — reach, grasp, lift, hold
the block in the air (servo targets replayed open-loop) — so contacts and touch are exercised, not just free motion. All rates are medians over
`repeats` runs; machines are shared and noisy, so compare ratios taken in the same run.

Figures:
    raw_mujoco_steps_per_s   bare `mujoco.mj_step` on the env's compiled model (same timestep, same contact
                             sensors), one MjData, one core — the physical limit
    env_physics_steps_per_s  `BatchedEnv.step` with 1 env on 1 thread, touch on, no cameras, counted in physics steps;
                             the sim core (actions, physics, touch, sensor realism, observations, divergence checks)
    task_env_physics_steps_per_s  the same with lift_block's success checks, reward terms and task observations
    env_vs_raw               env / raw                                   (target ≥ 0.8)
    tactile_overhead         env steps/s with touch off / with touch on  (target ≤ 1.15)
    ee_pose_overhead         env steps/s in joint_pos / the same episode's targets as absolute TCP poses in
                             action.mode=ee_pose (the per-step iterated IK: what an ee_pose policy costs the sim)
    render_fps_128/224       camera images per second rendering cam_high + both wrist cameras at 128² / 224²
    parallel_speedup_2cores  N envs on 2 threads / the same N envs on 1 thread (target ≥ 1.7)
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any

import mujoco
import numpy as np


def _core_env(cfg):
    """The sim core on the lift_block scene: robot, block, touch, sensors, observations — no task logic
    (success checks and reward terms are task code, measured separately as `task_env_*`)."""
    from rho.sim.env import BatchedEnv
    from rho.tasks.lift_block import LiftBlockEnv

    class CoreEnv(LiftBlockEnv):
        evaluate = BatchedEnv.evaluate
        _get_rewards = BatchedEnv._get_rewards
        _get_task_obs = BatchedEnv._get_task_obs
        _task_obs_keys = BatchedEnv._task_obs_keys

    return CoreEnv(cfg)


def _lift_cfg(num_envs: int = 1, touch: bool = True, cameras: dict | None = None, threads: int = 1):
    from rho.tasks.lift_block import LiftBlockCfg

    cfg = LiftBlockCfg(num_envs=num_envs, seed=0)
    cfg.touch.enabled = touch
    cfg.cameras = cameras if cameras is not None else {}
    cfg.sim.num_threads = threads
    return cfg


def record_workload(control_steps: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """The scripted expert's servo targets for one episode — reach, grasp, lift, then hold the block in the air
    (success does not end it) — and the initial state."""
    from rho.tasks.lift_block import LiftBlockEnv, LiftBlockExpert

    class NoEnd(LiftBlockEnv):
        def _get_dones(self, metrics):
            return np.zeros(self.num_envs, bool)

    cfg = _lift_cfg()
    cfg.action.mode = "ee_delta"
    cfg.episode_length_s = 1e3
    env = NoEnd(cfg)
    expert = LiftBlockExpert(env)
    obs, _ = env.reset(seed=0)
    state0 = env.get_state()[0].copy()
    ctrls = []
    for _ in range(control_steps):
        obs, *_ = env.step(expert.act(obs))
        ctrls.append(env.ctrl[0].copy())
    env.close()
    return np.array(ctrls), state0


def _ctrl_to_action(env, ctrl: np.ndarray) -> np.ndarray:
    """Servo targets (nu,) → the env's joint_pos action (14,)."""
    q = ctrl[env.arm_act]
    g = ctrl[env.grip_act] / env.robot.gripper.stroke
    return np.concatenate([q, g[:, None]], axis=1).reshape(-1)


def raw_rate(ctrls: np.ndarray, state0: np.ndarray, decimation: int) -> float:
    from rho.tasks import make_env

    env = make_env("lift_block", _lift_cfg())
    m = env.model
    d = mujoco.MjData(m)
    mujoco.mj_setState(m, d, state0, mujoco.mjtState.mjSTATE_INTEGRATION)
    env.close()
    t = time.perf_counter()
    for c in ctrls:
        d.ctrl[:] = c
        for _ in range(decimation):
            mujoco.mj_step(m, d)
    return len(ctrls) * decimation / (time.perf_counter() - t)


def env_rate(ctrls: np.ndarray, state0: np.ndarray, num_envs: int = 1, touch: bool = True, threads: int = 1,
             task: bool = False, mode: str = "joint_pos") -> float:
    from rho.tasks import make_env

    cfg = _lift_cfg(num_envs, touch, threads=threads)
    cfg.action.mode = mode
    env = make_env("lift_block", cfg) if task else _core_env(cfg)
    env.reset(seed=0)
    env.set_state(np.tile(state0, (num_envs, 1)))  # every variant replays from the recorded state
    actions = [np.tile(_ctrl_to_action(env, c), (num_envs, 1)) for c in ctrls]
    if mode == "ee_pose":  # the same targets as TCP poses (forward kinematics, before the clock starts)
        actions = [np.tile(env.tcp_pose_of(a[:1]), (num_envs, 1)) for a in actions]
    t = time.perf_counter()
    for a in actions:
        env.step(a)
    dt = time.perf_counter() - t
    rate = len(ctrls) * env.decimation * num_envs / dt
    env.close()
    return rate


def render_rate(size: int, frames: int = 30) -> float:
    from rho.sim.env import DEFAULT_CAMERAS, CameraCfg
    from rho.tasks import make_env

    cams = {c: CameraCfg(width=size, height=size) for c in DEFAULT_CAMERAS}
    env = make_env("lift_block", _lift_cfg(cameras=cams))
    env.reset(seed=0)
    ids = np.arange(1)
    env._render_clean(ids)  # warm-up: context and textures
    t = time.perf_counter()
    for _ in range(frames):
        env._render_clean(ids)
    rate = frames * len(cams) / (time.perf_counter() - t)
    env.close()
    return rate


def _median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def bench_sim(repeats: int = 3, parallel_envs: int = 8, control_steps: int = 150, render: bool = True
              ) -> dict[str, Any]:
    """All figures; the rates of one repeat are measured back to back and ratios are medians of per-repeat
    ratios, so slow drifts of a shared machine cancel out."""
    ctrls, state0 = record_workload(control_steps)
    from rho.sim.env import SimCfg
    from rho.sim.sensors import rate_to_period_steps

    s = SimCfg()
    dec = rate_to_period_steps(s.control_hz, s.physics_dt)
    runs: dict[str, list[float]] = {k: [] for k in ("raw", "env", "off", "task", "ee", "par1", "par2")}
    for _ in range(repeats):
        runs["raw"].append(raw_rate(ctrls, state0, dec))
        runs["env"].append(env_rate(ctrls, state0))
        runs["off"].append(env_rate(ctrls, state0, touch=False))
        runs["task"].append(env_rate(ctrls, state0, task=True))
        runs["ee"].append(env_rate(ctrls, state0, mode="ee_pose"))
        runs["par1"].append(env_rate(ctrls, state0, parallel_envs, threads=1))
        runs["par2"].append(env_rate(ctrls, state0, parallel_envs, threads=2))
    med = {k: statistics.median(v) for k, v in runs.items()}

    def ratio(a: str, b: str) -> float:
        return round(statistics.median(x / y for x, y in zip(runs[a], runs[b], strict=True)), 3)

    out: dict[str, Any] = {
        "raw_mujoco_steps_per_s": round(med["raw"]),
        "env_physics_steps_per_s": round(med["env"]),
        "env_vs_raw": ratio("env", "raw"),
        "env_touch_off_steps_per_s": round(med["off"]),
        "tactile_overhead": ratio("off", "env"),
        "task_env_physics_steps_per_s": round(med["task"]),
        "task_env_vs_raw": ratio("task", "raw"),
        "env_ee_pose_physics_steps_per_s": round(med["ee"]),
        "ee_pose_overhead": ratio("env", "ee"),
        "parallel_envs": parallel_envs,
        "parallel_1thread_steps_per_s": round(med["par1"]),
        "parallel_2threads_steps_per_s": round(med["par2"]),
        "parallel_speedup_2cores": ratio("par2", "par1"),
        "parallel_1thread_vs_raw": ratio("par1", "raw"),
    }
    if render:
        out["render_fps_128"] = round(_median(lambda: render_rate(128), repeats), 1)
        out["render_fps_224"] = round(_median(lambda: render_rate(224), repeats), 1)
        out["render_backend"] = os.environ.get("MUJOCO_GL", "")
    out.update({"physics_dt": s.physics_dt, "control_hz": s.control_hz, "repeats": repeats,
                "control_steps": control_steps, "mujoco": mujoco.__version__, "cpu_count": os.cpu_count(),
                "machine": platform.processor() or platform.machine()})
    return out
