"""Every rho task as an Isaac Lab 3.0 `DirectRLEnv` (kit-less: Newton + MuJoCo-Warp, on a CPU or a CUDA GPU).

    import gymnasium as gym, torch
    import rho.sim.isaaclab.tasks  # registers Rho-<Task>-Direct-v0
    from isaaclab_tasks.utils import parse_env_cfg     # or build RhoEnvCfg(task="plug_insertion") yourself
    env = gym.make("Rho-PlugInsertion-Direct-v0", cfg=RhoEnvCfg(task="plug_insertion", scene=...))

The env follows the `DirectRLEnv` lifecycle; each hook calls the task's own code (the same class as on the MuJoCo
backend, built with ``sim.backend=isaaclab`` and attached to this env's `SimulationContext`):

    _setup_scene        the task compiles its MJCF scene; a MODEL_INIT callback imports it into every Newton world
    _pre_physics_step   task._pre_physics_step (action checks, ee_delta IK) → servo targets
    _apply_action       per physics substep: records the touch inputs of the last substep (touch at its own rate)
    _get_dones          task.evaluate / task._get_dones; time-outs from the task's episode length
    _get_rewards        the sum of the task's named reward terms (each logged in extras["log"])
    _reset_idx          task.reset_idx (seeded draws, domain randomization, initial state)
    _get_observations   {"policy": proprio + pad net forces + privileged task state, flat float32} and the task's
                        full observation dict (cameras, taxels) in extras["observations"]

Actions are the task's 14-D actions (``action_mode``: ``ee_delta`` for the scripted experts, or ``joint_pos``).
Cameras: the task's cameras render with MuJoCo's renderer from the synchronised state (enable them with
``task_overrides``); Isaac Lab's TiledCamera (RTX) and a PhysX preset need Isaac Sim 6.x and Kit, which these
machines cannot run, so neither is provided.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from isaaclab.envs import DirectRLEnv, DirectRLEnvCfg
from isaaclab.scene import InteractiveSceneCfg
from isaaclab.sim import SimulationCfg
from isaaclab.utils import configclass

from rho.config import load_config
from rho.tasks import get_task

POLICY_KEYS = ("joint_pos", "joint_vel", "ee_pose")  # plus touch_net_* and the task's privileged keys


@configclass
class RhoEnvCfg(DirectRLEnvCfg):
    """A rho task as a DirectRLEnv. ``task``: registry name; ``task_overrides``: ``key=value`` strings applied to the
    task's own config (e.g. ``["clearance=0.0005", "randomization.enabled=false"]``)."""

    task: str = "lift_block"
    task_overrides: list = []  # noqa: RUF012 - configclass copies mutable defaults
    action_mode: str = "ee_delta"
    decimation: int = 20  # physics steps per control step (1 ms physics, 50 Hz control)
    episode_length_s: float = 10.0  # replaced by the task's own episode length
    action_space: int = 14
    observation_space: int = 0  # set from the task's observation spec when the scene is built
    state_space: int = 0
    seed: int | None = 0
    sim: SimulationCfg = SimulationCfg(dt=0.001, render_interval=20, device="cpu")
    scene: InteractiveSceneCfg = InteractiveSceneCfg(num_envs=4, env_spacing=3.0, replicate_physics=False)
    njmax: int = 3000  # MuJoCo-Warp constraint rows per world
    nconmax: int = 1000  # MuJoCo-Warp contacts per world


class RhoDirectRLEnv(DirectRLEnv):
    cfg: RhoEnvCfg

    def __init__(self, cfg: RhoEnvCfg, render_mode: str | None = None, **kwargs: Any):
        self.entry = get_task(cfg.task)
        task_cfg = load_config(self.entry.cfg_cls, overrides=list(cfg.task_overrides))
        dt = float(cfg.sim.dt)
        task_cfg.num_envs = int(cfg.scene.num_envs)
        task_cfg.seed = int(cfg.seed or 0)
        task_cfg.sim = dataclasses.replace(task_cfg.sim, backend="isaaclab", device=str(cfg.sim.device),
                                           physics_dt=dt, control_hz=1.0 / (dt * cfg.decimation),
                                           njmax=cfg.njmax, nconmax=cfg.nconmax)
        task_cfg.action = dataclasses.replace(task_cfg.action, mode=cfg.action_mode)
        if not cfg.task_overrides or not any(o.startswith("cameras") for o in cfg.task_overrides):
            task_cfg.cameras = {}
        self._task_cfg = task_cfg
        cfg.episode_length_s = task_cfg.episode_length_s
        if cfg.sim.physics is None:  # Newton + MuJoCo-Warp with the options of the task's MJCF <option>
            import mujoco

            from rho.assets.mjcf import build_mjcf
            from rho.assets.robots import get_robot
            from rho.sim.isaaclab.batch import IsaacLabBatch

            probe = self.entry.env_cls.__new__(self.entry.env_cls)  # only to emit the task's scene
            probe.cfg, probe.robot = task_cfg, get_robot(task_cfg.robot)
            model = mujoco.MjModel.from_xml_string(build_mjcf(probe._setup_scene()))
            cfg.sim.physics = IsaacLabBatch.physics_cfg(model, cfg.njmax, cfg.nconmax)
        super().__init__(cfg, render_mode, **kwargs)
        self.task.batch.start()
        if self._physics_handles_decimation:  # one physics step per sim.step, so touch samples at its own rate
            self.sim.physics_manager.set_decimation(1)
            self._physics_handles_decimation = False
        self._substep = 0
        self.task.reset(seed=task_cfg.seed)

    # ------------------------------------------------------------------ DirectRLEnv hooks
    def _setup_scene(self) -> None:
        cls = type(f"Attached{self.entry.env_cls.__name__}", (self.entry.env_cls,), {"_attach_physics": True})
        self.task = cls(self._task_cfg)
        keys = [k for k in self.task.obs_spec.keys if k.name in POLICY_KEYS or k.name.startswith("touch_net_")
                or k.name in {n for n, *_ in self.task._task_obs_keys()}]
        self._policy_keys = [k.name for k in keys]
        self.cfg.observation_space = int(sum(int(np.prod(k.shape)) for k in keys))

    def _pre_physics_step(self, actions: torch.Tensor) -> None:
        self._clipped = self.task._pre_physics_step(actions.detach().cpu().numpy())
        self.task.batch._push_ctrl()
        self._substep = 0

    def _apply_action(self) -> None:
        if self._substep > 0:
            self._record_substep(self._substep - 1)
        self._substep += 1

    def _record_substep(self, k: int) -> None:
        t = self.task
        t.batch._pull(derived=t.touch_ch is not None)
        if t.touch_ch is not None:
            for name, buf in t._rollout_out.items():
                buf[:, k] = t.batch.bind(name)

    def _get_dones(self) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.task
        self._record_substep(self._substep - 1)
        t.batch._pull(derived=True)
        metrics, self._terms, terminated, truncated = t._post_physics_step(np.zeros(self.num_envs, bool))
        self.extras["log"] = {f"reward/{k}": float(np.mean(v)) for k, v in self._terms.items()}
        self.extras["log"]["success"] = float(np.mean(metrics["success"]))
        self.extras["success"] = torch.as_tensor(metrics["success"], device=self.device)
        as_t = lambda x: torch.as_tensor(np.asarray(x), device=self.device)  # noqa: E731
        return as_t(terminated), as_t(truncated)

    def _get_rewards(self) -> torch.Tensor:
        total = sum(self._terms.values()) if self._terms else np.zeros(self.num_envs)
        return torch.as_tensor(np.asarray(total, np.float32), device=self.device)

    def _reset_idx(self, env_ids) -> None:
        super()._reset_idx(env_ids)
        ids = np.arange(self.num_envs) if env_ids is None else torch.as_tensor(env_ids).cpu().numpy()
        self.task.reset_idx(ids)

    def _get_observations(self) -> dict[str, torch.Tensor]:
        obs = self.task._get_observations(force_sample=True)
        self.task._obs = obs
        flat = np.concatenate([obs[k].reshape(self.num_envs, -1).astype(np.float32) for k in self._policy_keys], 1)
        self.extras["observations"] = obs
        return {"policy": torch.as_tensor(flat, device=self.device)}

    def close(self) -> None:
        if getattr(self, "task", None) is not None:
            self.task.close()
        super().close()
