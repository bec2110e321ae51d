"""The two-stage policy: a VLM backbone (vision + language → prefix) and a flow-matching action expert.

Touch and proprioception bypass the VLM: they are encoded into a few context tokens of the action expert, so the
expert can re-plan from fresh contact at the control rate while the VLM prefix is refreshed every few steps.

The expert is a stack of blocks over the h action tokens that alternate, as in GR00T N1's action head, between
cross-attention to a context — [L prefix latents, a register token, proprio token, touch tokens] — and
self-attention among the action tokens (a 1-layer expert does both at once). The context's per-layer keys and values
are computed once (the prefix part once per prefix refresh: `Prefix.kv`; the state part once per re-plan:
`Context`), so each of the N flow steps only runs the h action tokens. The prefix latents come from a
resampler (L learned queries attending to all n VLM tokens, Flamingo-style), so the per-step cost does not grow
with the VLM's token count (a 3-camera PaliGemma prefix is ~800 tokens). Flow matching as in pi0: x_t =
t·noise + (1−t)·actions, the network predicts the velocity noise − actions, t ~ Beta(1.5, 1) tilted towards noise;
inference integrates from t=1 to t=0 with N Euler steps.

Shapes (legend): b batch, h horizon, a action dim, p proprio dim, n prefix tokens, L prefix latents, m context
tokens (L + state tokens), d expert width, D backbone width, k cameras, s image side, P pads, S touch history, r×c taxels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 -- the universal torch idiom
from torch import Tensor, nn

from rho.config import ConfigError, validate_config

from .backbones import Attend, Block, build_backbone, key_mask
from .config import PolicyCfg
from .touch_encoder import ProprioEncoder, TouchEncoder

KV = list[tuple[Tensor, Tensor]]  # per context layer of the expert: K, V each (b, 1, tokens, d/heads), one head
EXPERT_MLP_RATIO = 1  # expert MLP width / d: the per-flow-step cost sets the reactive rate (see bench)
PREFIX_LATENTS = 32  # L: resampled prefix tokens the expert attends to
TIME_BETA = (1.5, 1.0)  # flow-time distribution (pi0): more weight near t=1 (pure noise), the hard end


@dataclass
class Prefix:
    """The cached VLM output the expert attends to."""

    tokens: Tensor  # (b, n, d) VLM prefix tokens projected to the expert width
    mask: Tensor  # (b, n) bool, True = valid token
    kv: KV  # per context layer K, V (b, 1, L, d/heads) of the resampled prefix, computed once per refresh

    def select(self, idx: Tensor) -> Prefix:
        """The rows `idx` (long (b',) or bool (b,))."""
        return Prefix(self.tokens[idx], self.mask[idx], [(k[idx], v[idx]) for k, v in self.kv])

    def assign_(self, idx: Tensor, other: Prefix) -> None:
        """In place: rows `idx` ← `other` (same n)."""
        self.tokens[idx], self.mask[idx] = other.tokens, other.mask
        for (k, v), (k2, v2) in zip(self.kv, other.kv, strict=True):
            k[idx], v[idx] = k2, v2


@dataclass
class Context:
    """Everything the flow steps of one re-plan share."""

    kv: KV  # per context layer K, V (b, 1, m, d/heads): prefix latents + register + proprio + touch tokens
    mask: Tensor | None  # (b, 1, 1, m) bool context keys the action tokens may attend to; None = all
    mask_both: Tensor | None  # (b, 1, 1, m + h) the same followed by the action tokens (attend="both" layers)


class Resampler(nn.Module):
    """tokens (b, n, d), mask (b, n) → (b, L, d): L learned latents attend once to the prefix (keys: tokens and
    the latents themselves, as in Flamingo — so a fully masked prefix still has valid keys)."""

    def __init__(self, width: int, heads: int, latents: int = PREFIX_LATENTS) -> None:
        super().__init__()
        self.heads = heads
        self.latents = nn.Parameter(torch.randn(1, latents, width) * 0.02)
        self.norm_q, self.norm_kv, self.norm_mlp = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.q, self.kv, self.out = nn.Linear(width, width), nn.Linear(width, 2 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        b, L = tokens.shape[0], self.latents.shape[1]
        lat = self.latents.expand(b, -1, -1)
        q = _heads(self.q(self.norm_q(lat)), self.heads)
        k, v = self.kv(self.norm_kv(torch.cat([tokens, lat], 1))).chunk(2, -1)
        keys = torch.cat([mask, torch.ones(b, L, dtype=torch.bool, device=mask.device)], 1)  # (b, n + L)
        a = F.scaled_dot_product_attention(q, _heads(k, self.heads), _heads(v, self.heads), attn_mask=key_mask(keys))
        lat = lat + self.out(a.transpose(1, 2).flatten(2))
        return lat + self.mlp(self.norm_mlp(lat))


class ActionExpert(nn.Module):
    """Flow-matching action expert over h action tokens with cached context keys/values."""

    def __init__(self, cfg: PolicyCfg) -> None:
        super().__init__()
        e, d = cfg.expert, cfg.expert.width
        self.cfg, self.heads = cfg, e.heads
        # The h action tokens run N times per re-plan, so their per-step cost sets the reactive-loop rate: a small
        # MLP, one shared K/V head, and cross-/self-attention layers alternating (no K/V concatenation per step).
        self.attend: list[Attend] = ["both"] if e.depth == 1 else ["context", "self"] * (e.depth // 2) + (
            ["context"] if e.depth % 2 else [])
        self.blocks = nn.ModuleList(Block(d, e.heads, EXPERT_MLP_RATIO, multi_query=True, attend=a)
                                    for a in self.attend)
        # context tokens → one K, V head per context layer, in one matmul (the context is cached, not updated)
        self.ctx_layers = sum(a != "self" for a in self.attend)
        self.ctx_norm = nn.LayerNorm(d)
        self.ctx_kv = nn.Linear(d, self.ctx_layers * 2 * (d // e.heads))
        self.resampler = Resampler(d, e.heads)
        self.register = nn.Parameter(torch.randn(1, 1, d) * 0.02)  # a state token that is never masked
        self.touch = (TouchEncoder(len(cfg.pads), e.touch_history, tuple(cfg.taxel_shape), d)
                      if e.use_touch else None)
        self.proprio = ProprioEncoder(cfg.proprio_dim, d) if e.use_proprio else None
        self.action_in = nn.Linear(cfg.action_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.pos = nn.Parameter(torch.randn(1, e.horizon, d) * 0.02)
        self.norm_out = nn.LayerNorm(d)
        self.action_out = nn.Linear(d, cfg.action_dim)

    def context_kv(self, tokens: Tensor) -> KV:
        """tokens (b, m, d) → per context layer K, V (b, 1, m, d/heads): one shared head (multi-query)"""
        b, m, _ = tokens.shape
        kv = self.ctx_kv(self.ctx_norm(tokens)).view(b, 1, m, self.ctx_layers, 2, -1)
        return [(kv[:, :, :, j, 0], kv[:, :, :, j, 1]) for j in range(self.ctx_layers)]

    def prefix_kv(self, tokens: Tensor, mask: Tensor) -> KV:
        """Once per prefix refresh: tokens (b, n, d), mask (b, n) → per context layer K, V (b, 1, L, d/heads)"""
        return [(k.contiguous(), v.contiguous()) for k, v in self.context_kv(self.resampler(tokens, mask))]

    def state_tokens(self, b: int, proprio: Tensor | None, proprio_mask: Tensor | None, touch: Tensor | None,
                     touch_net: Tensor | None, touch_mask: Tensor | None, device: torch.device) -> tuple[Tensor, Tensor]:
        """→ tokens (b, 1 + [1] + [P], d), mask (b, same) bool: register, proprio, touch pads"""
        tokens, masks = [self.register.expand(b, -1, -1)], [torch.ones(b, 1, dtype=torch.bool, device=device)]
        if self.proprio is not None:
            if proprio is None:  # absent: a masked placeholder keeps the token count fixed
                proprio = torch.zeros(b, self.cfg.proprio_dim, device=device)
                proprio_mask = torch.zeros(b, dtype=torch.bool, device=device)
            tokens.append(self.proprio(proprio))
            masks.append(_bool_col(proprio_mask, b, device))
        if self.touch is not None:
            P, (r, c), S = len(self.cfg.pads), self.cfg.taxel_shape, self.cfg.expert.touch_history
            if touch is None or touch_net is None:
                touch, touch_net = torch.zeros(b, P, S, r, c, 3, device=device), torch.zeros(b, P, 3, device=device)
                touch_mask = torch.zeros(b, dtype=torch.bool, device=device)
            tokens.append(self.touch(touch, touch_net))
            masks.append(_bool_col(touch_mask, b, device).expand(b, P))
        return torch.cat(tokens, 1), torch.cat(masks, 1)

    def context(self, prefix: Prefix, proprio: Tensor | None, proprio_mask: Tensor | None, touch: Tensor | None,
                touch_net: Tensor | None, touch_mask: Tensor | None) -> Context:
        """Once per re-plan: the state tokens' K/V joined to the cached prefix K/V."""
        b, device = prefix.tokens.shape[0], prefix.tokens.device
        tok, mask = self.state_tokens(b, proprio, proprio_mask, touch, touch_net, touch_mask, device)
        kv = [(torch.cat([pk, k], 2), torch.cat([pv, v], 2))
              for (pk, pv), (k, v) in zip(prefix.kv, self.context_kv(tok), strict=True)]
        L, h = prefix.kv[0][0].shape[2], self.cfg.expert.horizon
        keys = torch.cat([torch.ones(b, L, dtype=torch.bool, device=device), mask], 1)  # (b, m)
        both = torch.cat([keys, torch.ones(b, h, dtype=torch.bool, device=device)], 1)  # (b, m + h)
        return Context(kv, key_mask(keys), key_mask(both))

    def conditioning(self, t: Tensor) -> Tensor:
        """t (b,) flow time → (b, h, d): time embedding + action positions (+ the input bias), added to the
        projected noisy actions. sample_actions computes every step's at once: its time schedule is fixed."""
        return self.time_mlp(_time_features(t, self.pos.shape[-1]))[:, None] + self.pos + self.action_in.bias

    def velocity(self, x_t: Tensor, cond: Tensor, ctx: Context) -> Tensor:
        """x_t (b, h, a) noisy actions, cond (b or 1, h, d) from `conditioning` → (b, h, a) predicted velocity
        (noise − actions)"""
        b, h, a = x_t.shape
        d = cond.shape[-1]
        x = torch.addmm(cond.expand(b, h, d).reshape(b * h, d), x_t.reshape(b * h, a), self.action_in.weight.t())
        x = x.view(b, h, d)
        kv = iter(ctx.kv)
        for blk, attend in zip(self.blocks, self.attend, strict=True):
            if attend == "self":
                x = blk(x)
            else:
                x = blk(x, ctx.mask if attend == "context" else ctx.mask_both, next(kv))
        return self.action_out(self.norm_out(x))


class TwoStagePolicy(nn.Module):
    """VLM backbone + action expert. See the module docstring for the design and the shape legend."""

    def __init__(self, cfg: PolicyCfg, hf_source: str | None = None, pretrained: bool = True) -> None:
        super().__init__()
        problems = validate_config(cfg)
        if problems:
            raise ConfigError(problems)
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone, len(cfg.cameras), hf_source, pretrained)
        # trainable even with a frozen VLM: adapts the VLM's features to the expert
        self.prefix_norm = nn.LayerNorm(self.backbone.out_dim)
        self.prefix_proj = nn.Linear(self.backbone.out_dim, cfg.expert.width)
        self.expert = ActionExpert(cfg)
        d = cfg.expert.width  # auxiliary head (training only): masked mean of the prefix tokens → privileged obs
        self.aux_head = (nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, cfg.aux_dim))
                         if cfg.aux_dim else None)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ stage 1: VLM prefix
    def prefix(self, images: dict[str, Tensor], image_mask: dict[str, Tensor], instruction: list[str]) -> Prefix:
        """images {cam: (b, 3, s, s) float in [0, 1]}, image_mask {cam: (b,) bool}, instruction list[str] of b.
        Cameras of the config missing from `images` count as masked."""
        b, dev, s = len(instruction), self.device, self.cfg.backbone.image_size
        imgs, masks = [], []
        for cam in self.cfg.cameras:
            if cam in images:
                imgs.append(images[cam].to(dev, torch.float32))
                masks.append(image_mask[cam].to(dev).bool() if cam in image_mask else
                             torch.ones(b, dtype=torch.bool, device=dev))
            else:
                imgs.append(torch.zeros(b, 3, s, s, device=dev))
                masks.append(torch.zeros(b, dtype=torch.bool, device=dev))
        stacked = torch.stack(imgs, 1) if imgs else torch.zeros(b, 0, 3, s, s, device=dev)  # (b, k, 3, s, s)
        mask_k = torch.stack(masks, 1) if masks else torch.zeros(b, 0, dtype=torch.bool, device=dev)  # (b, k)
        feats, mask = self.backbone(stacked, mask_k, list(instruction))  # (b, n, D), (b, n)
        tokens = self.prefix_proj(self.prefix_norm(feats))  # (b, n, d)
        return Prefix(tokens, mask, self.expert.prefix_kv(tokens, mask))

    # ------------------------------------------------------------------ stage 2: actions
    def sample_actions(self, prefix: Prefix, proprio: Tensor | None, proprio_mask: Tensor | None,
                       touch: Tensor | None, touch_net: Tensor | None, touch_mask: Tensor | None,
                       noise: Tensor | None = None, steps: int | None = None) -> Tensor:
        """proprio (b, p), proprio_mask (b,), touch (b, P, S, r, c, 3), touch_net (b, P, 3), touch_mask (b,),
        noise (b, h, a) → (b, h, a) normalized actions, integrating the flow from t=1 (noise) to t=0 in `steps`
        Euler steps (default expert.flow_steps). None for a modality = absent (masked)."""
        ctx = self.expert.context(prefix, proprio, proprio_mask, touch, touch_net, touch_mask)
        b = prefix.tokens.shape[0]
        x = noise if noise is not None else torch.randn(b, self.cfg.expert.horizon, self.cfg.action_dim,
                                                        device=self.device)
        n = steps or self.cfg.expert.flow_steps
        t = 1.0 - torch.arange(n, device=x.device, dtype=torch.float32) / n  # (n,) 1 → 1/n
        cond = self.expert.conditioning(t)  # (n, h, d)
        for i in range(n):
            x = torch.add(x, self.expert.velocity(x, cond[i:i + 1], ctx), alpha=-1.0 / n)  # Euler, t → t − 1/n
        return x

    def aux_predict(self, prefix: Prefix) -> Tensor:
        """(b, aux_dim) auxiliary targets (z-scored per source) predicted from the masked mean of the prefix tokens
        (policy.aux_dim > 0; training and diagnostics only)."""
        if self.aux_head is None:
            raise ValueError("this model has no auxiliary head (policy.aux_dim=0)")
        m = prefix.mask[..., None].float()  # (b, n, 1)
        return self.aux_head((prefix.tokens * m).sum(1) / m.sum(1).clamp(min=1))

    def loss(self, batch: dict, prefix: Prefix | None = None) -> tuple[Tensor, dict[str, float]]:
        """Flow-matching loss on a batch of the training contract (see `rho.policy`), masked by action_pad;
        `prefix`: the batch's VLM prefix when the caller has it already."""
        dev = self.device
        if prefix is None:
            prefix = self.prefix(batch["images"], batch["image_mask"], batch["instruction"])
        actions = batch["actions"].to(dev)  # (b, h, a)
        b = actions.shape[0]
        t = torch.distributions.Beta(*TIME_BETA).sample((b,)).to(dev) * 0.999 + 0.001  # (b,) avoid t=0 exactly
        noise = torch.randn_like(actions)
        x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * actions
        ctx = self.expert.context(prefix, *_state_args(batch, dev))
        v = self.expert.velocity(x_t, self.expert.conditioning(t), ctx)
        err = F.mse_loss(v, noise - actions, reduction="none").mean(-1)  # (b, h)
        valid = ~batch["action_pad"].to(dev).bool()
        loss = (err * valid).sum() / valid.sum().clamp(min=1)
        logs = {"loss": float(loss.detach()), "valid_frac": float(valid.float().mean())}
        if self.aux_head is not None and batch.get("aux") is not None:
            aux_mask = batch["aux_mask"].to(dev).float()  # (b, X)
            aux_err = (self.aux_predict(prefix) - batch["aux"].to(dev)) ** 2 * aux_mask
            aux = aux_err.sum() / aux_mask.sum().clamp(min=1)
            logs["flow_loss"], logs["aux_loss"] = logs["loss"], float(aux.detach())
            loss = loss + self.cfg.aux_weight * aux
            logs["loss"] = float(loss.detach())
        return loss, logs


def _state_args(batch: dict, dev: torch.device) -> tuple[Tensor | None, ...]:
    """(proprio, proprio_mask, touch, touch_net, touch_mask) from a batch, on `dev`; absent keys → None."""
    keys = ("proprio", "proprio_mask", "touch", "touch_net", "touch_mask")
    return tuple(batch[k].to(dev) if batch.get(k) is not None else None for k in keys)


def _heads(x: Tensor, heads: int) -> Tensor:
    """(b, m, d) → (b, heads, m, d/heads)"""
    b, m, d = x.shape
    return x.view(b, m, heads, d // heads).transpose(1, 2)


def _bool_col(mask: Tensor | None, b: int, device: torch.device) -> Tensor:
    """(b,) bool or None (= valid) → (b, 1) bool"""
    if mask is None:
        return torch.ones(b, 1, dtype=torch.bool, device=device)
    return mask.to(device).bool().view(b, 1)


def _time_features(t: Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """(b,) flow time in [0, 1] → (b, dim) sin/cos features over periods min..max (pi0's choice)."""
    half = dim // 2
    frac = torch.linspace(0.0, 1.0, half, device=t.device)
    period = min_period * (max_period / min_period) ** frac
    arg = t.float()[:, None] * (2 * math.pi / period)[None]
    feats = torch.cat([arg.sin(), arg.cos()], -1)
    return F.pad(feats, (0, dim - 2 * half))
