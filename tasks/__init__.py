"""Tasks: each module registers itself in `ALL_TASKS` and as a gymnasium id on import."""

from . import lift_block  # noqa: F401
from .registry import ALL_TASKS, get_task, make_env, register_expert, register_task

__all__ = ["ALL_TASKS", "get_task", "make_env", "register_expert", "register_task"]
