"""Typed configs of the two-stage policy (VLM backbone + action expert), loadable with `rho.config.load_config`.

Shapes used across `rho.policy` (legend):
    b  batch            h  action horizon (chunk length)   a  action dim        p  proprio dim
    n  prefix tokens    d  width                           P  touch pads        S  touch history
    r, c  taxel rows/cols per pad                          k  cameras
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BUILTIN_PATCH = 16  # builtin ViT patch size (pixels); image_size must be a multiple of it


@dataclass
class BackboneCfg:
    """The VLM backbone: cameras + instruction → prefix tokens."""

    kind: Literal["builtin", "hf"] = "builtin"
    vision: Literal["cnn", "vit"] = "cnn"  # builtin: per-camera CNN + spatial-softmax keypoints, or a 16-px-patch ViT
    hf_model: str = "HuggingFaceTB/SmolVLM-256M-Instruct"  # hub id or local path (kind=hf)
    hf_layer: int = -1  # which decoder layer's output (Python index); later layers are dropped at load
    freeze: bool = False  # freeze the backbone's weights (the prefix projection still trains)
    lora_rank: int = 0  # kind=hf: > 0 adds LoRA adapters to the kept decoder layers and freezes the base
    image_size: int = 96  # side of the square camera images the policy is fed (pixels)
    cnn_channels: list[int] = field(default_factory=lambda: [16, 32, 64])  # vision=cnn: channels per stride-2 stage
    keypoints: int = 16  # vision=cnn: spatial-softmax keypoints per camera (one prefix token each)
    width: int = 128  # builtin: token width
    depth: int = 2  # builtin: transformer layers over image + text tokens
    heads: int = 4  # builtin: attention heads
    tokenizer: Literal["bytes", "words"] = "words"  # builtin: instruction tokens are hashed words or UTF-8 bytes
    max_text_tokens: int = 24  # instruction tokens incl. a begin token (training refuses data that would be cut)
    film: bool = False  # vision=cnn: the instruction modulates every CNN stage (FiLM: per-channel scale and shift
    # from the mean of its word embeddings, zero-initialized), so keypoints can follow "the green button"

    def validate(self) -> list[str]:
        out = []
        if self.image_size < 1 or self.max_text_tokens < 1:
            out.append("image_size and max_text_tokens must be >= 1")
        if self.kind == "builtin" and self.vision == "cnn":
            if not self.cnn_channels or min(self.cnn_channels) < 4 or self.keypoints < 1:
                out.append(f"vision=cnn: cnn_channels must be non-empty, each >= 4 (got {self.cnn_channels}), and "
                           f"keypoints >= 1 (got {self.keypoints})")
            elif self.image_size < 2 ** len(self.cnn_channels):
                out.append(f"vision=cnn: image_size {self.image_size} is too small for {len(self.cnn_channels)} "
                           "stride-2 stages")
        if self.film and not (self.kind == "builtin" and self.vision == "cnn"):
            out.append(f"film=true needs the builtin CNN vision path (kind=builtin vision=cnn), got kind={self.kind} "
                       f"vision={self.vision}. Fix: film=false, or vision=cnn")
        if self.kind == "builtin":
            if self.vision == "vit" and self.image_size % BUILTIN_PATCH:
                out.append(f"builtin ViT: image_size must be a multiple of {BUILTIN_PATCH}, got {self.image_size}")
            if self.width < 1 or self.depth < 1 or self.heads < 1 or self.width % self.heads:
                out.append(f"builtin backbone: width ({self.width}) must be a positive multiple of heads "
                           f"({self.heads}), depth >= 1 (got {self.depth})")
            if self.lora_rank:
                out.append("lora_rank applies to kind=hf only (the builtin backbone trains from scratch)")
        if self.lora_rank < 0:
            out.append(f"lora_rank must be >= 0, got {self.lora_rank}")
        return out


@dataclass
class ExpertCfg:
    """The action expert: a small transformer over action tokens that attends to the prefix, proprio and touch."""

    width: int = 128
    depth: int = 4
    heads: int = 4
    horizon: int = 16  # actions per chunk, at the control rate
    flow_steps: int = 10  # Euler steps of the flow at inference
    use_touch: bool = True  # ablation: touch tokens (taxels + net forces) in the expert's context
    use_proprio: bool = True  # ablation: proprioception token in the expert's context
    touch_history: int = 2  # touch samples per pad the encoder sees (most recent S, oldest first)

    def validate(self) -> list[str]:
        out = []
        if self.width < 1 or self.depth < 1 or self.heads < 1 or self.width % self.heads:
            out.append(f"width ({self.width}) must be a positive multiple of heads ({self.heads}), depth >= 1")
        if self.horizon < 1 or self.flow_steps < 1 or self.touch_history < 1:
            out.append("horizon, flow_steps and touch_history must be >= 1")
        return out


@dataclass
class PolicyCfg:
    backbone: BackboneCfg = field(default_factory=BackboneCfg)
    expert: ExpertCfg = field(default_factory=ExpertCfg)
    action_dim: int = 14
    proprio_dim: int = 14
    cameras: tuple[str, ...] = ("cam_high", "cam_left_wrist", "cam_right_wrist")
    pads: tuple[str, ...] = ("left_a", "left_b", "right_a", "right_b")
    taxel_shape: tuple[int, int] = (4, 4)
    # control steps between VLM prefix refreshes at inference (multi-rate). 1 (default): fresh images every step,
    # as in training; > 1 serves images up to prefix_every − 1 steps old, which training does not see unless
    # data.image_staleness is set to match
    prefix_every: int = 1
    replan_every: int = 1  # control steps between action-expert re-plans
    ensemble: Literal["none", "temporal"] = "temporal"
    # auxiliary training signal: predict privileged low-dim obs (object positions; data.sources[*].aux) from the
    # VLM prefix, which teaches the vision path to localize what the task is about. 0: off. Not used at inference
    aux_dim: int = 0
    aux_weight: float = 0.5  # weight of the auxiliary loss (z-scored targets, MSE) next to the flow loss

    def validate(self) -> list[str]:
        out = []
        if self.action_dim < 1 or self.proprio_dim < 1:
            out.append("action_dim and proprio_dim must be >= 1")
        if self.expert.use_touch and not self.pads:
            out.append("expert.use_touch needs at least one pad in `pads`")
        if len(self.taxel_shape) != 2 or min(self.taxel_shape) < 1:
            out.append(f"taxel_shape must be (rows, cols) >= 1, got {self.taxel_shape}")
        if self.aux_dim < 0 or self.aux_weight < 0:
            out.append(f"aux_dim and aux_weight must be >= 0, got {self.aux_dim} and {self.aux_weight}")
        if self.prefix_every < 1 or self.replan_every < 1:
            out.append("prefix_every and replan_every must be >= 1")
        if self.replan_every > self.expert.horizon:
            out.append(f"replan_every ({self.replan_every}) must be <= expert.horizon ({self.expert.horizon}): "
                       "a chunk must last until the next plan")
        return out
