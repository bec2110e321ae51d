"""Settings of `rho online` (OmegaConf structured configs; `key=value` overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TriggerCfg:
    """When the corrector takes over (any enabled trigger fires; 0 disables one)."""

    no_progress_steps: int = 40  # the task's progress rose by less than min_progress over this many control steps
    min_progress: float = 0.02  # progress units (0–1)
    force_limit: float = 0.0  # a pad's net normal force above this (N)
    deviation: float = 0.0  # the policy's joint targets differ from the corrector's by more than this (rad, max abs)
    random_rate: float = 0.0  # probability per control step

    def validate(self) -> list[str]:
        bad = [k for k in ("no_progress_steps", "min_progress", "force_limit", "deviation", "random_rate")
               if getattr(self, k) < 0]
        out = [f"corrector.trigger.{k} must be >= 0 (0 disables it), got {getattr(self, k)}" for k in bad]
        if self.random_rate > 1:
            out.append(f"corrector.trigger.random_rate is a probability per step, got {self.random_rate}")
        return out


HUMAN_DEVICES = ("spacemouse", "keyboard", "replay")
HUMAN_BUTTON_ACTIONS = ("gripper", "takeover", "arm", "none")


@dataclass
class HumanGainsCfg:
    """How far a full deflection of the device (or a held motion key) moves the selected arm's TCP target."""

    translation: float = 0.005  # m per control step at full deflection (clipped to env action.max_ee_step_pos)
    rotation: float = 0.03  # rad per control step at full deflection (clipped to env action.max_ee_step_rot)


@dataclass
class HumanCfg:
    """`corrector.kind=human`: a person drives one arm at a time from a 3D mouse or the keyboard (online/human.py)."""

    device: str = "spacemouse"  # spacemouse (pyspacemouse) | keyboard (the viewer's keys) | replay (a recorded file)
    replay_file: str = ""  # device=replay: the recorded input events (JSON, as record_file writes them)
    record_file: str = ""  # write every device/key event of the session here (replay it with device=replay)
    viewer: bool = True  # show MuJoCo's viewer window and take its keys (needs a display; replay may run without)
    gains: HumanGainsCfg = field(default_factory=HumanGainsCfg)
    deadzone: float = 0.1  # device axes below this fraction of full deflection are 0 (the rest rescaled to 0–1)
    yaw_deg: float = 0.0  # the device's frame turned about world z (deg): 0 = device x/y are world x/y
    buttons: list[str] = field(default_factory=lambda: ["gripper", "takeover", "arm"])  # device button i's action
    key_hold_steps: int = 4  # keyboard: a motion key press (or its auto-repeat) moves for this many control steps
    realtime: float = 1.0  # pace steps at this multiple of real time with a live device or viewer (0: none)
    spacemouse: str = ""  # pyspacemouse device name to open (empty: the first one connected)

    def validate(self) -> list[str]:
        out = [] if self.device in HUMAN_DEVICES else [
            f"device must be one of {', '.join(HUMAN_DEVICES)}, got {self.device!r}"]
        out += [f"gains.{k} must be > 0, got {getattr(self.gains, k)}" for k in ("translation", "rotation")
                if getattr(self.gains, k) <= 0]
        if not 0 <= self.deadzone < 1:
            out.append(f"deadzone is a fraction of full deflection in [0, 1), got {self.deadzone}")
        bad = [b for b in self.buttons if b not in HUMAN_BUTTON_ACTIONS]
        if bad:
            out.append(f"buttons: each is one of {', '.join(HUMAN_BUTTON_ACTIONS)}, got {bad}")
        if self.key_hold_steps < 1:
            out.append(f"key_hold_steps must be >= 1, got {self.key_hold_steps}")
        if self.realtime < 0:
            out.append(f"realtime must be >= 0 (0: no pacing), got {self.realtime}")
        return out


@dataclass
class CorrectorCfg:
    """Who corrects: `expert` (the task's scripted expert), `rl:<checkpoint>` (an RL expert of `rho rl train`) or
    `human` (a person at a 3D mouse or the keyboard, watching MuJoCo's viewer; `corrector.human`)."""

    kind: str = "expert"  # expert: the scripted expert; rl:<checkpoint>: an RL expert; human: a person (num_envs=1)
    trigger: TriggerCfg = field(default_factory=TriggerCfg)
    latency_steps: int = 5  # reaction time: control passes this many control steps after a trigger fires
    hold_steps: int = 60  # the corrector drives this many control steps, then hands back (0: to the episode's end)
    noise: float = 0.0  # std of Gaussian noise on the corrector's ee_delta command, as a fraction of its bounds
    reset_on_takeover: bool = True  # restart the expert's script at takeover (from wherever the policy left it)
    human: HumanCfg = field(default_factory=HumanCfg)  # kind=human: the device, its gains, the viewer

    def validate(self) -> list[str]:
        out = [] if self.kind in ("expert", "human") or self.kind.startswith("rl:") else [
            f"corrector.kind must be 'expert', 'rl:<checkpoint>' or 'human', got {self.kind!r}"]
        if self.kind == "human" and self.human.device == "replay" and not self.human.replay_file:
            out.append("corrector.human.device=replay needs the recorded events: set corrector.human.replay_file="
                       "<file.json> (written by a live session's corrector.human.record_file)")
        if self.kind == "human" and self.human.device == "keyboard" and not self.human.viewer:
            out.append("corrector.human.device=keyboard reads the keys of MuJoCo's viewer window: set "
                       "corrector.human.viewer=true (on a desktop with a display)")
        out += [f"corrector.{k} must be >= 0, got {getattr(self, k)}" for k in ("latency_steps", "hold_steps",
                                                                                "noise") if getattr(self, k) < 0]
        return out


@dataclass
class ReplayCfg:
    """What each update replays beside the newest corrections."""

    fraction: float = 0.5  # share of an update's draws from the replay (0: corrections only — forgetting shows)
    sources: list[str] = field(default_factory=list)  # datasets replayed (the policy's original training data)
    corrections: bool = True  # replay earlier rounds' corrections too

    def validate(self) -> list[str]:
        return [] if 0.0 <= self.fraction < 1.0 else [f"replay.fraction must be in [0, 1), got {self.fraction}"]


@dataclass
class UpdateCfg:
    """Each periodic fine-tuning (a `rho train init_from=<current checkpoint>` run)."""

    every_episodes: int = 10  # episodes per round: an update after each round
    steps: int = 300  # optimizer steps per update
    batch_size: int = 32  # samples per optimizer step
    lr: float = 1e-4  # peak learning rate (fine-tuning: lower than training from scratch)
    warmup_steps: int = 20  # linear warmup, then cosine decay over the update
    intervention_weight: float = 3.0  # corrected steps are drawn this many times as often as the policy's own
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)
    cpu_threads: int = 0  # 0: from the cores

    def validate(self) -> list[str]:
        out = [f"update.{k} must be >= 1, got {getattr(self, k)}" for k in ("every_episodes", "steps", "batch_size")
               if getattr(self, k) < 1]
        out += [f"update.{k} must be >= 0, got {getattr(self, k)}" for k in ("lr", "warmup_steps",
                                                                            "intervention_weight", "num_workers",
                                                                            "cpu_threads") if getattr(self, k) < 0]
        return out


@dataclass
class OnlineEvalCfg:
    """The fixed seeded episodes every round is measured on (the eval suite's seeds: datagen never draws them)."""

    tasks: list[str] = field(default_factory=list)  # the tasks the policy knew; the corrected task is always added
    episodes: int = 10  # per task, the same seeds every round
    level: str = "nominal"  # randomization level of the evaluation episodes (rho eval levels)
    num_envs: int = 4
    rollback_drop: float = 0.0  # roll back an update that drops another task's success by more than this (0: off)
    at_start: bool = True  # evaluate the starting policy (round 0) too

    def validate(self) -> list[str]:
        out = [] if self.episodes >= 1 and self.num_envs >= 1 else [
            f"eval.episodes and eval.num_envs must be >= 1, got {self.episodes} and {self.num_envs}"]
        return out + ([] if 0 <= self.rollback_drop <= 1 else [
            f"eval.rollback_drop is a success-rate drop in [0, 1], got {self.rollback_drop}"])


@dataclass
class OnlineCfg:
    """`rho online`: a correction session."""

    task: str = "lift_block"  # the task the policy is corrected on
    policy: str = "???"  # the trained policy (a checkpoint or a `rho train` out directory)
    out: str = "runs/online"  # session directory (resumes when it holds a session)
    rounds: int = 3  # rounds of (episodes, update, evaluation)
    num_envs: int = 1  # envs stepped together in the session
    seed: int = 1000  # episode seeds of the session (datagen-style stream; never the eval suite's)
    corrector: CorrectorCfg = field(default_factory=CorrectorCfg)
    update: UpdateCfg = field(default_factory=UpdateCfg)
    replay: ReplayCfg = field(default_factory=ReplayCfg)
    eval: OnlineEvalCfg = field(default_factory=OnlineEvalCfg)
    env: dict[str, Any] = field(default_factory=dict)  # env config overrides for episodes and evaluations
    torch_threads: int = 1  # torch threads for the policy while acting (a small batch: 1 is fastest)
    progress: bool = True  # progress bars

    def validate(self) -> list[str]:
        out = [] if self.rounds >= 1 and self.num_envs >= 1 else [
            f"rounds and num_envs must be >= 1, got {self.rounds} and {self.num_envs}"]
        if self.corrector.kind == "human" and self.num_envs != 1:
            out.append(f"corrector.kind=human: one person drives one env, so num_envs must be 1, got "
                       f"{self.num_envs}. Fix: num_envs=1")
        if not self.out:
            out.append("out must name the session directory, e.g. out=runs/online/lift")
        return out
