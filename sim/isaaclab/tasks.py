"""Register every rho task as an Isaac Lab environment: ``Rho-<Task>-Direct-v0`` (Isaac Lab's naming), entry point
`RhoDirectRLEnv`, with ``env_cfg_entry_point`` (a `RhoEnvCfg` subclass per task, defined here) and, where the task
has one, ``rsl_rl_cfg_entry_point`` (its PPO agents config in `rho.tasks.agents`).

    import rho.sim.isaaclab.tasks  # noqa: F401
    from isaaclab_tasks.utils import load_cfg_from_registry
    cfg = load_cfg_from_registry("Rho-PlugInsertion-Direct-v0", "env_cfg_entry_point")
    env = gym.make("Rho-PlugInsertion-Direct-v0", cfg=cfg)
"""

from __future__ import annotations

import gymnasium as gym
from isaaclab.utils import configclass

from rho.tasks import ALL_TASKS
from rho.tasks.agents import AGENT_CFGS

from .env import RhoEnvCfg

ISAACLAB_IDS: dict[str, str] = {}




def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_"))


for _name in ALL_TASKS:
    _cls_name = f"{_camel(_name)}EnvCfg"
    _cfg_cls = configclass(type(_cls_name, (RhoEnvCfg,), {"__annotations__": {"task": str}, "task": _name,
                                                           "__module__": __name__}))
    globals()[_cls_name] = _cfg_cls
    _gym_id = f"Rho-{_camel(_name)}-Direct-v0"
    _kwargs = {"env_cfg_entry_point": f"{__name__}:{_cls_name}"}
    if _name in AGENT_CFGS:
        _kwargs["rsl_rl_cfg_entry_point"] = AGENT_CFGS[_name]
    if _gym_id not in gym.registry:
        gym.register(id=_gym_id, entry_point="rho.sim.isaaclab.env:RhoDirectRLEnv", disable_env_checker=True,
                     kwargs=_kwargs)
    ISAACLAB_IDS[_name] = _gym_id
