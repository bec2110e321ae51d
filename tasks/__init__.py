"""Tasks: every module in this package that defines a task registers it in `ALL_TASKS` (and as a gymnasium id)
on import; importing `rho.tasks` imports them all."""

import importlib
import pkgutil

from .registry import ALL_TASKS, get_task, make_env, make_env_from_dataset, register_expert, register_task

_NOT_TASKS = {"registry", "run_expert", "rl", "agents"}  # subpackages: RL experts, agent configs
for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name not in _NOT_TASKS:
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["ALL_TASKS", "get_task", "make_env", "make_env_from_dataset", "register_expert", "register_task"]
