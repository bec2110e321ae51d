"""Robot registry: `get_robot(name)`; importing this package registers the built-in embodiments."""

from . import aloha  # noqa: F401  (registers "aloha")
from .base import ROBOTS, BimanualRobotSpec, get_robot, register_robot

__all__ = ["ROBOTS", "BimanualRobotSpec", "get_robot", "register_robot"]
