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

from .rsl_rl_cfg import DistributionCfg, PPOCfg, ResidualCfg, RewardCfg, RunnerCfg


@dataclass
class PlugInsertionPPORunnerCfg(RunnerCfg):
    experiment_name: str = "plug_insertion"
    max_iterations: int = 1000  # ~24 min on one CPU core at 0.2 mm clearance (docs/results.md)
    # short horizon (γ = 0.95: ~0.4 s): the lateral shaping pays within a few steps, and a success bonus
    # discounted over seconds would make every advantage a lottery over which episodes happen to seat
    # fixed step size: the adaptive schedule halves it on every KL spike and, in early runs, sat at its 1e-5 floor
    algorithm: PPOCfg = field(default_factory=lambda: PPOCfg(gamma=0.95, lam=0.9, num_learning_epochs=8,
                                                             schedule="fixed", learning_rate=3e-4))
    residual: ResidualCfg = field(default_factory=lambda: ResidualCfg(mode="lateral", lateral_step=0.0005))
    distribution: DistributionCfg = field(default_factory=lambda: DistributionCfg(init_std=0.15))
    # per-step cost of lateral error (a potential cannot carry it: with γ = 0.95 a seat 100 steps away is worth
    # γ^100 ≈ 0 and potential shaping leaves advantages unchanged), the insertion depth as a potential, the bonus
    reward: RewardCfg = field(default_factory=lambda: RewardCfg(
        potential={"insert": 1.0}, step={"lateral_mm": -0.2, "success": 2.0, "strip_moved": 0.1}))
    # trained without cameras (privileged state only), in the expert's ee_delta action mode
    env_overrides: dict[str, Any] = field(default_factory=lambda: {"cameras": {}, "action": {"mode": "ee_delta"}})


@dataclass
class PlugInsertionOccludedPPORunnerCfg(PlugInsertionPPORunnerCfg):
    experiment_name: str = "plug_insertion_occluded"
