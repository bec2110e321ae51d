"""`RlExpert`: a `rho rl train` checkpoint behind the scripted experts' interface (`act(obs)`, `reset(env_ids)`,
`name`, `version`), so datagen and eval drive it like any expert (`expert=rl:<checkpoint>`, `policy=rl:<checkpoint>`).

The checkpoint stores the task, the agent config (residual settings), the env config it trained in and the action
mode; the expert refuses an env of another task or action mode. Its version is `it<iteration>-<sha256[:12]>` of the
checkpoint file, so datasets name the exact weights that produced them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

RL_PREFIX = "rl:"


def resolve_checkpoint(spec: str | Path) -> Path:
    """A checkpoint file from `path/to/model_<it>.pt` or a run directory (its latest.pt)."""
    p = Path(str(spec))
    if p.is_dir():
        if not (p / "latest.pt").exists():
            found = sorted(x.name for x in p.glob("model_*.pt"))
            raise FileNotFoundError(f"RL checkpoint: {p} is a directory without latest.pt (checkpoints there: "
                                    f"{found or 'none'}). Fix: pass a run directory of `rho rl train` or a .pt file")
        return p / "latest.pt"
    if not p.exists():
        raise FileNotFoundError(f"RL checkpoint {str(spec)!r} does not exist. Fix: pass the out= directory of a "
                                "`rho rl train` run or one of its model_<it>.pt files")
    return p


_FIX = "pass a model_<it>.pt / latest.pt written by `rho rl train` (or its out= directory)"


def load_checkpoint(spec: str | Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """(path, rsl-rl state dict, rho metadata) of a checkpoint, loaded without unpickling code
    (`torch.load(weights_only=True)`); a file that is not one, or needs more than tensors and plain values, fails
    with one line naming it."""
    from rho.safeload import load_torch

    from .train import CHECKPOINT_FORMAT

    path = resolve_checkpoint(spec)
    state = load_torch(path, "RL checkpoint", _FIX)
    infos = state.get("infos") if isinstance(state, dict) else None
    meta = infos.get("rho") if isinstance(infos, dict) else None
    if not isinstance(meta, dict) or not isinstance(state.get("actor_state_dict"), dict):
        raise ValueError(f"RL checkpoint {path}: expected a `rho rl train` checkpoint (actor weights and rho "
                         f"metadata), got a file without them. Fix: {_FIX}")
    fmt = meta.get("format")
    if fmt != CHECKPOINT_FORMAT:
        raise ValueError(f"RL checkpoint {path}: checkpoint format {fmt!r}, this rho reads format "
                         f"{CHECKPOINT_FORMAT}. Fix: use the rho version that wrote it, or retrain with this one")
    missing = [k for k in ("task", "agent", "env", "policy_dim", "critic_dim", "num_actions", "action_mode",
                           "iteration", "env_steps", "wall_s") if k not in meta]
    if missing:
        raise ValueError(f"RL checkpoint {path}: metadata lacks {missing}. Fix: {_FIX}")
    return path, state, meta


def checkpoint_task(spec: str | Path) -> str:
    return load_checkpoint(spec)[2]["task"]


def build_actor(meta: dict[str, Any], state: dict[str, Any] | None = None):
    """The actor `MLPModel` of a checkpoint (weights loaded when `state` is given), in eval mode."""
    import contextlib
    import io

    import torch
    from rsl_rl.models import MLPModel
    from tensordict import TensorDict

    from rho.config import config_from_dict

    from .train import agent_cfg_class

    agent = config_from_dict(agent_cfg_class(meta["task"]), meta["agent"])
    rcfg = agent.to_rsl_rl()
    obs = TensorDict({"policy": torch.zeros(1, meta["policy_dim"]), "critic": torch.zeros(1, meta["critic_dim"])},
                     batch_size=[1])
    actor_cfg = {k: v for k, v in rcfg["actor"].items() if k != "class_name"}
    with contextlib.redirect_stdout(io.StringIO()):
        actor = MLPModel(obs, rcfg["obs_groups"], "actor", meta["num_actions"], **actor_cfg)
    if state is not None:
        actor.load_state_dict(state["actor_state_dict"])
    actor.eval()
    return actor, agent


class RlExpert:
    """A trained RL expert driving a task env; `act(obs)` → (n, 14) actions, deterministic (the policy's mean)."""

    def __init__(self, env, checkpoint: str | Path):
        import torch

        from rho.tasks import get_task

        from .residual import residual_for
        from .train import file_sha

        path, state, meta = load_checkpoint(checkpoint)
        task = env.task_name
        if meta["task"] != task:
            raise ValueError(f"RL checkpoint {path} was trained on task {meta['task']!r}, not {task!r}. Fix: use a "
                             f"checkpoint of {task!r} or run task={meta['task']}")
        if env.cfg.action.mode != meta["action_mode"]:
            raise ValueError(f"RL checkpoint {path} acts in action.mode={meta['action_mode']!r}; this env runs "
                             f"{env.cfg.action.mode!r}. Fix: build the env with action.mode={meta['action_mode']}")
        self.env, self.path, self.meta = env, path, meta
        self.actor, self.agent = build_actor(meta, state)
        entry = get_task(task)
        self.base = entry.expert_cls(env)
        self.spec = residual_for(entry.name)(env, self.base, self.agent.residual)
        self.sha256 = file_sha(path)
        self.name = f"{task}_rl"
        self.version = f"it{meta['iteration']}-{self.sha256[:12]}"
        self.base_expert = f"{self.base.name}@{self.base.version}"
        self._torch = torch

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        self.spec.reset(env_ids)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        from tensordict import TensorDict

        torch = self._torch
        x = torch.from_numpy(self.spec.policy_obs(obs))
        with torch.inference_mode():
            a = self.actor(TensorDict({"policy": x}, batch_size=[x.shape[0]])).numpy()
        return self.spec.env_action(obs, a)

    def describe(self) -> dict[str, Any]:
        return {"checkpoint": str(self.path), "sha256": self.sha256, "iteration": self.meta["iteration"],
                "env_steps": self.meta["env_steps"], "base_expert": self.base_expert,
                "residual": self.meta["agent"]["residual"]}


def is_rl_spec(spec: str) -> bool:
    return isinstance(spec, str) and spec.startswith(RL_PREFIX)


def make_expert(spec: str, env):
    """`scripted` → the task's scripted expert; `rl:<checkpoint>` → `RlExpert`. Anything else fails clearly."""
    from rho.tasks import get_task

    if spec == "scripted":
        entry = get_task(env.task_name)
        if entry.expert_cls is None:
            raise ValueError(f"task {entry.name!r} has no scripted expert")
        return entry.expert_cls(env)
    if is_rl_spec(spec):
        path = spec[len(RL_PREFIX):]
        if not path:
            raise ValueError("expert=rl: needs a checkpoint, e.g. expert=rl:runs/rl/plug (a run directory) or "
                             "expert=rl:runs/rl/plug/model_300.pt")
        return RlExpert(env, path)
    raise ValueError(f"expert must be 'scripted' or 'rl:<checkpoint>', got {spec!r}")


def action_mode_of(spec: str, default: str) -> str:
    """The env action.mode an expert spec drives."""
    if is_rl_spec(spec) and spec[len(RL_PREFIX):]:
        return load_checkpoint(spec[len(RL_PREFIX):])[2]["action_mode"]
    return default
