"""The policy protocol the evaluator drives, and the built-in policies.

A policy maps a batch of observations and instructions to a batch of actions:

    act(obs: dict[str, (n, ...) np.ndarray], instruction: list[str] of n) -> (n, 14) np.ndarray
    reset(env_ids: (k,) int np.ndarray) -> None      called after those envs started a new episode

Optional hooks, looked up by name (a policy without them gets the defaults):

    name: str                                        shown in reports (default: the class name)
    action_mode_for(task) -> str  or  action_mode    env `action.mode` it drives (default "joint_pos")
    env_overrides(task) -> dict                      env config overrides it needs, e.g. {"cameras": {}} or
                                                     {"cameras": {"cam_high": {"width": 224, "height": 224}}}
    supports(task) -> str | None                     why it cannot run a task (the cell is skipped), or None
    bind(env) -> None                                called with each env it will drive, before its first reset

`load_policy("expert" | "random" | "rl:<checkpoint>" | <dir>)` builds one; `rl:<checkpoint>` is an RL expert of
`rho rl train` (`RlExpertPolicy`); `<dir>` loads `rho.policy.inference.Policy.load(dir)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    def act(self, obs: dict[str, np.ndarray], instruction: list[str]) -> np.ndarray: ...

    def reset(self, env_ids: np.ndarray) -> None: ...


class ExpertPolicy:
    """A task's scripted expert (`TaskEntry.expert_cls`) behind the protocol. Experts read privileged state from the
    observations and ignore instructions and cameras, so cameras are turned off. With `task=None` it drives
    whichever task's env it is bound to."""

    name = "expert"

    def __init__(self, task: str | None = None):
        self.task = task
        self._expert: Any = None

    def supports(self, task: str) -> str | None:
        from rho.tasks import get_task

        if self.task is not None and get_task(self.task).name != get_task(task).name:
            return f"this ExpertPolicy drives {self.task!r}, not {task!r}"
        return None if get_task(task).expert_cls is not None else f"task {task!r} has no scripted expert"

    def action_mode_for(self, task: str) -> str:
        from rho.tasks import get_task

        return get_task(task).expert_action_mode

    def env_overrides(self, task: str) -> dict[str, Any]:
        return {"cameras": {}}

    def bind(self, env) -> None:
        from rho.tasks import get_task

        reason = self.supports(env.task_name)
        if reason:
            raise ValueError(reason)
        entry = get_task(env.task_name)
        self._expert = entry.expert_cls(env)
        e = self._expert
        self.name = f"expert:{getattr(e, 'name', type(e).__name__)}@{getattr(e, 'version', '?')}"

    def act(self, obs: dict[str, np.ndarray], instruction: list[str]) -> np.ndarray:
        if self._expert is None:
            raise RuntimeError("ExpertPolicy.act before bind(env): the expert needs the env it drives")
        return self._expert.act(obs)

    def reset(self, env_ids: np.ndarray) -> None:
        if self._expert is not None:
            self._expert.reset(np.asarray(env_ids))


class RlExpertPolicy:
    """An RL expert checkpoint (`rho rl train`) behind the protocol: it drives only the task it trained on, in the
    action mode it trained in, from privileged state (cameras off)."""

    def __init__(self, checkpoint: str):
        from rho.tasks.rl.expert import load_checkpoint

        self.checkpoint = checkpoint
        _, _, meta = load_checkpoint(checkpoint)
        self.task, self.mode = meta["task"], meta["action_mode"]
        self.name = f"rl:{self.task}@it{meta['iteration']}"
        self._expert: Any = None

    def supports(self, task: str) -> str | None:
        from rho.tasks import get_task

        if get_task(task).name != self.task:
            return f"RL checkpoint {self.checkpoint} drives {self.task!r}, not {task!r}"
        return None

    def action_mode_for(self, task: str) -> str:
        return self.mode

    def env_overrides(self, task: str) -> dict[str, Any]:
        return {"cameras": {}}

    def bind(self, env) -> None:
        from rho.tasks.rl.expert import RlExpert

        self._expert = RlExpert(env, self.checkpoint)
        self.name = f"rl:{self._expert.name}@{self._expert.version}"

    def act(self, obs: dict[str, np.ndarray], instruction: list[str]) -> np.ndarray:
        if self._expert is None:
            raise RuntimeError("RlExpertPolicy.act before bind(env): the expert needs the env it drives")
        return self._expert.act(obs)

    def reset(self, env_ids: np.ndarray) -> None:
        if self._expert is not None:
            self._expert.reset(np.asarray(env_ids))


class RandomPolicy:
    """Actions uniform in the env's action space. Each episode draws from its own generator, seeded from
    (seed, episode seed), so an episode's actions do not depend on which batch slot it ran in."""

    name = "random"

    def __init__(self, action_mode: str = "joint_pos", seed: int = 0):
        self.action_mode, self.seed = action_mode, seed
        self._env: Any = None
        self._rngs: list[np.random.Generator] = []

    def action_mode_for(self, task: str) -> str:
        return self.action_mode

    def env_overrides(self, task: str) -> dict[str, Any]:
        return {"cameras": {}}

    def bind(self, env) -> None:
        self._env = env
        self._rngs = [np.random.default_rng(self.seed) for _ in range(env.num_envs)]

    def reset(self, env_ids: np.ndarray) -> None:
        for i in np.asarray(env_ids, int):
            self._rngs[i] = np.random.default_rng((self.seed, int(self._env.episode_seed[i])))

    def act(self, obs: dict[str, np.ndarray], instruction: list[str]) -> np.ndarray:
        space = self._env.single_action_space
        return np.stack([r.uniform(space.low, space.high).astype(np.float32) for r in self._rngs])


def load_policy(spec: str) -> Any:
    """`expert`, `random`, or a trained policy directory (loaded with `rho.policy.inference.Policy.load`)."""
    if spec == "expert":
        return ExpertPolicy()
    if spec == "random":
        return RandomPolicy()
    if spec.startswith("rl:"):
        return RlExpertPolicy(spec[3:])
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"policy {spec!r}: expected 'expert', 'random' or a trained policy directory; "
                                f"{path} is not a directory")
    try:
        from rho.policy.inference import Policy as InferencePolicy
    except ImportError as e:
        raise RuntimeError(f"policy {spec!r}: loading a trained policy needs rho.policy.inference.Policy, which "
                           f"could not be imported ({e}). Fix: install the policy extra (torch) or update rho.") from e
    return InferencePolicy.load(str(path))


def policy_name(policy: Any) -> str:
    if isinstance(policy, str):
        if policy.startswith("rl:"):
            return "rl_" + (Path(policy[3:]).name or policy[3:])
        return policy if policy in ("expert", "random") else Path(policy).name or policy
    return str(getattr(policy, "name", type(policy).__name__))


def action_mode(policy: Any, task: str) -> str:
    """The env action.mode a policy drives: its hook, its `action_mode` (or its config's), else joint_pos."""
    if hasattr(policy, "action_mode_for"):
        return str(policy.action_mode_for(task))
    for holder in (policy, getattr(policy, "config", None), getattr(policy, "cfg", None)):
        mode = getattr(holder, "action_mode", None)
        if isinstance(mode, str):
            return mode
    return "joint_pos"


def env_overrides(policy: Any, task: str) -> dict[str, Any]:
    return dict(policy.env_overrides(task)) if hasattr(policy, "env_overrides") else {}


def unsupported(policy: Any, task: str) -> str | None:
    return policy.supports(task) if hasattr(policy, "supports") else None


def check_policy(policy: Any) -> None:
    if not isinstance(policy, Policy):
        raise TypeError(f"{type(policy).__name__} is not a policy: it needs act(obs, instruction) -> (n, 14) "
                        "actions and reset(env_ids) (see rho.eval.policies)")
