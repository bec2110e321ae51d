"""Typed rsl-rl (>= 5) runner configs, in the shape of Isaac Lab's `RslRlOnPolicyRunnerCfg` (plain dataclasses,
no torch import), plus the residual-RL and reward settings `rho rl train` adds around the task env.

`RunnerCfg.to_rsl_rl()` gives the dict `rsl_rl.runners.OnPolicyRunner(env, train_cfg, ...)` takes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class DistributionCfg:
    """Gaussian action noise of the actor."""

    # initial standard deviation, in units of the (normalised, [-1, 1]) action; in lateral mode the action is a
    # velocity, so the noise integrates: 0.15 × 0.5 mm per step keeps the plug's random walk well under a mm
    init_std: float = 0.15
    std_type: Literal["scalar", "log"] = "scalar"


@dataclass
class ModelCfg:
    """An rsl-rl `MLPModel` (actor or critic)."""

    class_name: str = "MLPModel"
    hidden_dims: list[int] = field(default_factory=lambda: [128, 128])
    activation: str = "elu"
    obs_normalization: bool = True  # running mean/std of the observation group(s)


@dataclass
class PPOCfg:
    """rsl-rl `PPO` hyper-parameters."""

    class_name: str = "PPO"
    num_learning_epochs: int = 5
    num_mini_batches: int = 4
    clip_param: float = 0.2
    gamma: float = 0.99  # per control step (20 ms at 50 Hz)
    lam: float = 0.95
    value_loss_coef: float = 1.0
    entropy_coef: float = 0.0
    learning_rate: float = 3e-4
    max_grad_norm: float = 1.0
    schedule: Literal["adaptive", "fixed"] = "adaptive"
    desired_kl: float = 0.01


@dataclass
class ResidualCfg:
    """How the policy's action a (each component in [-1, 1]) enters the scripted expert's ee_delta action while the
    expert's right arm is in one of `active_phases` (its right-arm phase numbers; before them — grasps, lift,
    carry — the expert acts alone). Axes are the target outlet's: x out of the face, y and z across it.

    lateral: a ∈ [-1, 1]² replaces the right arm's y, z translation per control step by `lateral_step`·a (m): the
             policy steers the plug across the face while the expert keeps the force-regulated push along x, the
             orientation and the grip (its own lateral search is overridden); the plug is kept within
             `lateral_box` of the expert's outlet estimate (which errs by up to 2 mm), so exploration cannot
             wander off the strip
    offset:  a ∈ [-1, 1]³ offsets the right arm's TCP target by `scale`·a (m) on top of everything the expert does
    """

    enabled: bool = True
    mode: Literal["lateral", "offset"] = "lateral"
    lateral_step: float = 0.0005  # lateral: most TCP travel across the face per control step (m)
    lateral_box: float = 0.003  # lateral: most plug offset from the expert's outlet estimate, per axis (m)
    scale: tuple[float, float, float] = (0.0025, 0.0025, 0.0025)  # offset: m per unit action, outlet x, y, z
    # R_INSERT, R_SEARCH, R_RETREAT: from the push on; while carrying (R_CARRY) the expert waits to be within 1.5 mm
    # of its pre-insertion point, which an offset could hold it away from
    active_phases: list[int] = field(default_factory=lambda: [5, 6, 7])


@dataclass
class RewardCfg:
    """How the task's dense reward terms (`env._get_rewards`), and the residual spec's shaping terms, make the RL
    reward.

    potential: terms used as potentials Φ; the step reward is w·(γ·Φ(s') − Φ(s)) (shaping that leaves the optimal
               policy unchanged, so holding the plug just short of seated pays nothing — summing such terms
               per step would pay more than the one-off success bonus that ends the episode)
    step:      terms added per step with their weight (the success bonus, the strip-moved penalty)

    Potentials must be ≥ 0 and largest at the goal: success ends the episode, and γ·Φ − Φ = −(1 − γ)·Φ per step
    pays a policy for lingering in negative-potential states instead (seen in training: drifting the plug away).
    Potential shaping leaves advantages unchanged, so it cannot shorten a horizon: what must be learnt within γ's
    horizon goes in `step` (e.g. a per-step cost).
    """

    potential: dict[str, float] = field(default_factory=lambda: {"approach": 1.0, "align": 1.0, "insert": 1.0,
                                                                 "lateral": 1.0})
    step: dict[str, float] = field(default_factory=lambda: {"success": 2.0, "strip_moved": 0.1})
    action_penalty: float = 0.01  # × mean squared action per step


@dataclass
class RunnerCfg:
    """An rsl-rl on-policy runner config (Isaac Lab's `RslRlOnPolicyRunnerCfg` fields) + rho's RL settings."""

    seed: int = 0
    num_envs: int = 16  # batched envs the rollouts run in
    num_steps_per_env: int = 32  # rollout length per env and iteration
    max_iterations: int = 300
    save_interval: int = 10  # iterations between checkpoints (model_<it>.pt); the last one is always saved
    experiment_name: str = "rho"
    empirical_normalization: bool = True  # Isaac Lab's name; sets obs_normalization of actor and critic
    obs_groups: dict[str, list[str]] = field(default_factory=lambda: {"actor": ["policy"],
                                                                      "critic": ["policy", "critic"]})
    actor: ModelCfg = field(default_factory=ModelCfg)
    critic: ModelCfg = field(default_factory=ModelCfg)
    distribution: DistributionCfg = field(default_factory=DistributionCfg)
    algorithm: PPOCfg = field(default_factory=PPOCfg)
    residual: ResidualCfg = field(default_factory=ResidualCfg)
    reward: RewardCfg = field(default_factory=RewardCfg)
    env_overrides: dict[str, Any] = field(default_factory=dict)  # task env config the agent trains in

    def validate(self) -> list[str]:
        out = [f"{k} must be >= 1, got {getattr(self, k)}" for k in
               ("num_envs", "num_steps_per_env", "max_iterations", "save_interval") if getattr(self, k) < 1]
        if self.num_envs * self.num_steps_per_env < self.algorithm.num_mini_batches:
            out.append(f"num_envs × num_steps_per_env ({self.num_envs * self.num_steps_per_env}) must be >= "
                       f"algorithm.num_mini_batches ({self.algorithm.num_mini_batches})")
        if self.distribution.init_std <= 0:
            out.append(f"distribution.init_std must be > 0, got {self.distribution.init_std}")
        if any(s <= 0 for s in self.residual.scale):
            out.append(f"residual.scale must be > 0 m on every axis, got {list(self.residual.scale)}")
        if self.residual.lateral_step <= 0:
            out.append(f"residual.lateral_step must be > 0 m, got {self.residual.lateral_step}")
        return out

    def to_rsl_rl(self) -> dict[str, Any]:
        """The `train_cfg` dict of `rsl_rl.runners.OnPolicyRunner` (rsl-rl >= 5)."""
        dist = {"class_name": "GaussianDistribution", "init_std": self.distribution.init_std,
                "std_type": self.distribution.std_type}
        actor = {**dataclasses.asdict(self.actor), "distribution_cfg": dist}
        critic = dataclasses.asdict(self.critic)
        for m in (actor, critic):
            m["obs_normalization"] = m["obs_normalization"] and self.empirical_normalization
        return {"num_steps_per_env": self.num_steps_per_env, "save_interval": self.save_interval,
                "obs_groups": {k: list(v) for k, v in self.obs_groups.items()}, "actor": actor, "critic": critic,
                "algorithm": {**dataclasses.asdict(self.algorithm), "rnd_cfg": None, "symmetry_cfg": None},
                "experiment_name": self.experiment_name, "logger": "tensorboard", "check_for_nan": True}
