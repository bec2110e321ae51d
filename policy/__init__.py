"""The two-stage tactile VLA policy: a VLM backbone (cameras + instruction → prefix) and a flow-matching action
expert that fuses proprioception and touch — which never pass through the VLM — at the control rate.

    config.py         PolicyCfg (BackboneCfg, ExpertCfg): typed, OmegaConf-loadable
    backbones.py      builtin (small CNN/ViT + hashed-word text, trains from scratch on a CPU) and hf (any transformers
                      VLM with get_image_features: SmolVLM, PaliGemma, ...; chosen layer, freeze, LoRA)
    touch_encoder.py  taxel grids + history + net forces → one token per pad; proprio → one token
    model.py          TwoStagePolicy: prefix(), sample_actions(), loss(); Prefix (the cacheable VLM output)
    inference.py      Policy: closed-loop, multi-rate (prefix every K steps, re-plan every step), temporal ensembling
    checkpoint.py     save_checkpoint / load_checkpoint
    bench.py          bench_policy(): params, latencies, reactive-loop rate, training samples/s

Training batch contract (B batch, H horizon, A action dim, S touch history, r×c taxels, s image side):
    "images": {cam: (B, 3, s, s) float32 in [0, 1]}, "image_mask": {cam: (B,) bool}
    "instruction": list[str] of length B
    "proprio": (B, proprio_dim) float32 normalized, "proprio_mask": (B,) bool
    "touch": (B, pads, S, r, c, 3) float32 normalized, "touch_net": (B, pads, 3) float32 normalized,
    "touch_mask": (B,) bool (False = the source has no touch, e.g. real data)
    "actions": (B, H, A) float32 normalized, "action_pad": (B, H) bool (True = past the episode end: no loss)
Normalization is (x − mean) / std with the stats of norm_stats.json (`inference.Normalizer`).

Names are imported lazily, so `import rho.policy` stays cheap (no torch/transformers until used).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BackboneCfg": "config", "ExpertCfg": "config", "PolicyCfg": "config",
    "TwoStagePolicy": "model", "Prefix": "model",
    "Policy": "inference", "Normalizer": "inference",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "bench_policy": "bench",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
