"""Closed-loop inference: the multi-rate policy that drives a `BatchedEnv` from its observations.

Per `act` call (one control step, n envs):
    1. every `prefix_every` steps of an env (and at its first step, or when its instruction changes) the VLM prefix
       is recomputed for that env from its cameras + instruction, and cached (`Prefix.assign_`);
    2. every `replan_every` steps the action expert samples a new chunk from the cached prefix and *fresh*
       proprio + touch — the fast, reactive path that never waits for the VLM;
    3. chunks are blended: `ensemble="temporal"` averages every chunk's prediction for the current step with weights
       exp(−decay·age) (newest heaviest, so fresh touch acts at once while older plans smooth the motion);
       `ensemble="none"` executes the latest chunk open loop until the next plan.
Observations arrive as `BatchedEnv` returns them (`rgb_<cam>` (n, H, W, 3) uint8, `joint_pos` (n, p), `touch_<pad>`
(n, S', r, c, 3), `touch_net_<pad>` (n, 3)); they are normalized with the checkpoint's stats, and actions are
returned denormalized, in env units.

Shapes (legend): n envs, h horizon, a action dim, p proprio dim, P pads, S touch history, r×c taxels, s image side.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 -- the universal torch idiom
from torch import Tensor

from rho.sim.ik import joint_ee_state

from .checkpoint import load_checkpoint
from .frames import frames_to_tensor, resize_frames
from .model import Prefix, TwoStagePolicy

DEFAULT_DECAY = 0.25  # temporal ensembling: weight of a prediction made k steps ago ∝ exp(−0.25·k)


class Normalizer:
    """(x − mean) / std per stream, from norm_stats.json ({"actions": {"mean": [...], "std": [...]}, ...}); a
    stream without stats passes through unchanged. mean/std may be scalars or lists broadcast on the last axes."""

    def __init__(self, stats: dict | None, device: torch.device | str = "cpu") -> None:
        self.stats: dict[str, tuple[Tensor, Tensor]] = {}
        for key, s in (stats or {}).items():
            if isinstance(s, dict) and "mean" in s and "std" in s:
                mean = torch.as_tensor(np.asarray(s["mean"], dtype=np.float32), device=device)
                std = torch.as_tensor(np.asarray(s["std"], dtype=np.float32), device=device)
                self.stats[key] = (mean, std)

    def norm(self, key: str, x: Tensor) -> Tensor:
        if key not in self.stats:
            return x
        mean, std = self.stats[key]
        return (x - mean) / std

    def denorm(self, key: str, x: Tensor) -> Tensor:
        if key not in self.stats:
            return x
        mean, std = self.stats[key]
        return x * std + mean


class Policy:
    """Multi-rate closed-loop policy over n envs; see the module docstring."""

    def __init__(self, model: TwoStagePolicy, norm_stats: dict | None = None, ensemble_decay: float = DEFAULT_DECAY,
                 seed: int = 0) -> None:
        self.model = model.eval()
        self.cfg = model.cfg
        self.device = model.device
        self.norm = Normalizer(norm_stats, self.device)
        self.decay = ensemble_decay
        self.gen = torch.Generator(device=self.device).manual_seed(seed)  # flow noise: reproducible rollouts
        self.env_gen: dict[int, torch.Generator] = {}  # per-env flow noise, when `seed_envs` gave seeds
        self.n = 0
        self.action_mode = "joint_pos"  # env action.mode the actions mean (set from the checkpoint by `load`)
        self.embodiment = ""  # the embodiment whose statistics decode the actions (set by `load`)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", embodiment: str | None = None, **kw) -> Policy:
        """A trained policy; `embodiment` ("robot/action_mode", e.g. "aloha/joint_pos") picks the statistics its
        actions decode with when it was trained on several (default: the one its training run targeted)."""
        model, norm_stats, extra = load_checkpoint(path, device)
        norm_stats, emb = decoding_stats(path, norm_stats, extra, embodiment)
        policy = cls(model, norm_stats, **kw)
        policy.embodiment = emb
        policy.action_mode = str(extra.get("action_mode", "joint_pos"))  # the env action.mode it was trained on
        return policy

    # ------------------------------------------------------------------ state
    def _init_state(self, n: int) -> None:
        h, a = self.cfg.expert.horizon, self.cfg.action_dim
        self.n = n
        self.step = np.zeros(n, dtype=np.int64)  # control steps since each env's reset
        self.instructions: list[str | None] = [None] * n
        self.prefix: Prefix | None = None  # (n, ...) cached VLM prefix
        self.acc = torch.zeros(n, h, a, device=self.device)  # Σ w·action for the next h steps (normalized)
        self.weight = torch.zeros(n, h, device=self.device)  # Σ w

    @torch.inference_mode()  # the state tensors are inference tensors (made in act)
    def reset(self, env_ids: np.ndarray | list[int] | None = None) -> None:
        """Forget the plans and prefix of `env_ids` (all when None): their next `act` starts afresh."""
        ids = None if env_ids is None else np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids is None or self.n == 0 or (len(ids) and ids.max() >= self.n):
            self.n = 0  # re-initialized (for any n, e.g. a new batch of envs) at the next act
            return
        self.step[ids] = 0
        for i in ids:
            self.instructions[i] = None
        self.acc[ids], self.weight[ids] = 0.0, 0.0

    def seed_envs(self, env_ids: np.ndarray | list[int], seeds: np.ndarray | list[int]) -> None:
        """Draw the flow noise of each env in `env_ids` from its own generator seeded with `seeds` (e.g. the
        episode's seed, as `rho eval` does), so a seeded episode plays the same whatever batch of envs, worker or
        position it runs in. Envs never seeded share the policy's generator."""
        for i, s in zip(np.asarray(env_ids).reshape(-1), np.asarray(seeds, dtype=np.uint64).reshape(-1), strict=True):
            self.env_gen[int(i)] = torch.Generator(device=self.device).manual_seed(int(s) & 0x7FFF_FFFF_FFFF_FFFF)

    # ------------------------------------------------------------------ acting
    @torch.inference_mode()
    def act(self, obs: dict[str, np.ndarray], instruction: list[str] | str) -> np.ndarray:
        """obs of n envs + their instructions → (n, a) float32 actions in env units."""
        n = int(np.asarray(obs["joint_pos"]).shape[0])
        if self.n != n:
            self._init_state(n)
        texts = [instruction] * n if isinstance(instruction, str) else list(instruction)
        if len(texts) != n:
            raise ValueError(f"{len(texts)} instructions for {n} envs")
        stale = (self.step % self.cfg.prefix_every == 0) | np.array([t != c for t, c in zip(texts, self.instructions,
                                                                                               strict=True)])
        if self.prefix is None:
            stale[:] = True
        if stale.any():
            self._refresh_prefix(obs, texts, np.flatnonzero(stale))
        plan = np.flatnonzero(self.step % self.cfg.replan_every == 0)
        if len(plan):
            self._replan(obs, plan)
        w = self.weight[:, 0].clamp(min=1e-12)[:, None]
        action = self.norm.denorm("actions", self.acc[:, 0] / w)  # (n, a)
        self._advance()
        return action.cpu().numpy().astype(np.float32)

    def _refresh_prefix(self, obs: dict[str, np.ndarray], texts: list[str], ids: np.ndarray) -> None:
        images, mask = self._images(obs, ids)
        new = self.model.prefix(images, mask, [texts[i] for i in ids])
        if self.prefix is None:  # first call: every env is stale, so `new` covers all of them
            self.prefix = new
        else:
            self.prefix.assign_(torch.as_tensor(ids, device=self.device), new)
        for i in ids:
            self.instructions[i] = texts[i]

    def _replan(self, obs: dict[str, np.ndarray], ids: np.ndarray) -> None:
        assert self.prefix is not None
        idx = torch.as_tensor(ids, device=self.device)
        prefix = self.prefix if len(ids) == self.n else self.prefix.select(idx)
        state = self._state(obs, ids)
        h, a = self.cfg.expert.horizon, self.cfg.action_dim
        if any(int(i) in self.env_gen for i in ids):  # per env: independent of which envs replan together
            noise = torch.stack([torch.randn(h, a, generator=self.env_gen.get(int(i), self.gen), device=self.device)
                                 for i in ids])
        else:
            noise = torch.randn(len(ids), h, a, generator=self.gen, device=self.device)
        chunk = self.model.sample_actions(prefix, *state, noise=noise)  # (len(ids), h, a) normalized
        if self.cfg.ensemble == "none":  # the newest plan replaces what was left of the old one
            self.acc[idx], self.weight[idx] = chunk, 1.0
        else:
            self.acc[idx] += chunk
            self.weight[idx] += 1.0

    def _advance(self) -> None:
        """One control step: drop the executed action, age every other prediction."""
        keep = math.exp(-self.decay) if self.cfg.ensemble == "temporal" else 1.0
        self.acc = F.pad(self.acc[:, 1:], (0, 0, 0, 1)) * keep
        self.weight = F.pad(self.weight[:, 1:], (0, 1)) * keep
        self.step += 1

    # ------------------------------------------------------------------ observations → model inputs
    def _images(self, obs: dict[str, np.ndarray], ids: np.ndarray) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """{cam: (n', 3, s, s) float in [0, 1]}, {cam: (n',) bool}; a camera missing from obs is left out (masked)."""
        s = self.cfg.backbone.image_size
        images, mask = {}, {}
        for cam in self.cfg.cameras:
            rgb = obs.get(f"rgb_{cam}")
            if rgb is None:
                continue
            x = frames_to_tensor(resize_frames(np.asarray(rgb)[ids], s)).to(self.device)  # as the training cache
            images[cam], mask[cam] = x, torch.ones(len(ids), dtype=torch.bool, device=self.device)
        return images, mask

    def _state(self, obs: dict[str, np.ndarray], ids: np.ndarray) -> tuple[Tensor | None, ...]:
        """(proprio (n', p), proprio_mask (n',), touch (n', P, S, r, c, 3), touch_net (n', P, 3), touch_mask (n',));
        touch is None when the obs has no touch keys (e.g. touch disabled in the env)."""
        dev, m = self.device, len(ids)
        if self.action_mode == "ee_pose":  # an ee_pose policy sees its TCP pose too, as it trained (EEPoseStore)
            state, what = joint_ee_state(np.asarray(obs["joint_pos"])[ids], np.asarray(obs["ee_pose"])[ids]), \
                "joint_pos + ee_pose"
        else:
            state, what = np.asarray(obs["joint_pos"])[ids], "joint_pos"
        proprio = torch.as_tensor(state, dtype=torch.float32, device=dev)
        if proprio.shape[1] != self.cfg.proprio_dim:
            raise ValueError(f"{what} has {proprio.shape[1]} values, the policy expects {self.cfg.proprio_dim}")
        proprio = self.norm.norm("proprio", proprio)
        ones = torch.ones(m, dtype=torch.bool, device=dev)
        keys = [f"touch_{p}" for p in self.cfg.pads]
        if not all(k in obs for k in keys):
            return proprio, ones, None, None, None
        taxels = torch.stack([torch.as_tensor(np.asarray(obs[k])[ids], dtype=torch.float32, device=dev)
                              for k in keys], 1)  # (n', P, S', r, c, 3)
        net = torch.stack([torch.as_tensor(np.asarray(obs[f"touch_net_{p}"])[ids], dtype=torch.float32, device=dev)
                           for p in self.cfg.pads], 1)  # (n', P, 3)
        taxels = fit_history(taxels, self.cfg.expert.touch_history)
        return (proprio, ones, self.norm.norm("touch", taxels), self.norm.norm("touch_net", net), ones)


def decoding_stats(path: str | Path, norm_stats: dict, extra: dict, embodiment: str | None) -> tuple[dict, str]:
    """(statistics to decode with, embodiment) of a checkpoint, refusing one that cannot decode unambiguously."""
    per_emb = extra.get("embodiment_stats")
    if per_emb is None:  # checkpoints from before per-embodiment statistics
        sources = extra.get("source_stats") or {}
        if extra.get("normalize", "per_source") == "per_source" and len(sources) > 1:
            raise ValueError(f"{path}: trained with per-source normalization over {len(sources)} sources "
                             f"({', '.join(sources)}), but it keeps only the first source's statistics, so the other "
                             "sources' actions would decode at the wrong scale. Fix: retrain with this rho "
                             "(statistics pooled per embodiment)")
        if embodiment:
            raise ValueError(f"{path}: this checkpoint records no embodiments; load it without embodiment=")
        return norm_stats, ""
    if embodiment is None:
        if not extra.get("embodiment_explicit", len(per_emb) == 1):
            raise ValueError(f"{path}: trained on several embodiments ({', '.join(sorted(per_emb))}) with no target "
                             "named, so which statistics decode its actions is ambiguous. Fix: "
                             "Policy.load(dir, embodiment=...) with the deployed one, or train with data.target=<source>")
        return norm_stats, str(extra.get("embodiment", ""))
    if embodiment not in per_emb:
        raise ValueError(f"{path}: no statistics for embodiment {embodiment!r}; it was trained on "
                         f"{sorted(per_emb)}. Fix: pass one of those")
    stats = dict(norm_stats)  # modalities the embodiment lacks (touch on real data) keep the saved fallback
    stats.update(per_emb[embodiment])
    return stats, embodiment


def fit_history(touch: Tensor, S: int) -> Tensor:
    """(b, P, S', r, c, 3) → (b, P, S, r, c, 3): the S most recent samples; with fewer, the oldest is repeated (as a
    sensor that just started would read)."""
    have = touch.shape[2]
    if have >= S:
        return touch[:, :, have - S:]
    return torch.cat([touch[:, :, :1].expand(-1, -1, S - have, -1, -1, -1), touch], dim=2)
