"""rsl-rl PPO agent for `plug_insertion`: a residual policy over the scripted expert's insertion.

The scripted expert grasps the plug, steadies the strip and carries the plug in front of its outlet; from there the
policy (privileged state: plug pose in the outlet frame, pad forces, the expert's phase) offsets the right arm's
TCP target by up to `residual.scale` along the outlet axes. Tight clearances are where the expert's camera-grade
outlet estimate and spiral search fail; the residual learns the alignment from the privileged state.

Isaac Lab registrations name `PlugInsertionPPORunnerCfg` as `rsl_rl_cfg_entry_point`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .rsl_rl_cfg import RunnerCfg


@dataclass
class PlugInsertionPPORunnerCfg(RunnerCfg):
    experiment_name: str = "plug_insertion"
    max_iterations: int = 300
    # trained without cameras (privileged state only), in the expert's ee_delta action mode
    env_overrides: dict[str, Any] = field(default_factory=lambda: {"cameras": {}, "action": {"mode": "ee_delta"}})


@dataclass
class PlugInsertionOccludedPPORunnerCfg(PlugInsertionPPORunnerCfg):
    experiment_name: str = "plug_insertion_occluded"
