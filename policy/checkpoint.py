"""Policy checkpoints: a directory the trainer writes and `Policy.load` / `load_checkpoint` read.

    out_dir/config.yaml       PolicyCfg (rho.config.config_to_yaml): rebuilds the architecture
    out_dir/model.pt          state_dict (the whole policy, the VLM included)
    out_dir/norm_stats.json   normalization of actions/proprio/touch/touch_net ({"mean", "std"} each)
    out_dir/extra.json        anything the trainer wants kept (step, metrics, dataset names...)
    out_dir/hf/               kind=hf only: the VLM's config and tokenizer/processor files, so loading rebuilds the
                              architecture offline, without the hub or the original weights
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from rho.config import config_to_yaml, load_config
from rho.safeload import CheckpointError, load_json, load_torch

from .backbones import HfBackbone
from .config import PolicyCfg
from .model import TwoStagePolicy

CONFIG, WEIGHTS, NORM_STATS, EXTRA, HF_DIR = "config.yaml", "model.pt", "norm_stats.json", "extra.json", "hf"


def save_checkpoint(model: TwoStagePolicy, out_dir: str | Path, norm_stats: dict, extra: dict | None = None) -> Path:
    """Write `model` with its normalization stats (and `extra`) to `out_dir`; returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).write_text(config_to_yaml(model.cfg))
    (out / NORM_STATS).write_text(json.dumps(_plain(norm_stats), indent=1))
    (out / EXTRA).write_text(json.dumps(_plain(extra or {}), indent=1))
    if isinstance(model.backbone, HfBackbone):
        model.backbone.save_pretrained_files(out / HF_DIR)
    tmp = out / (WEIGHTS + ".tmp")  # a killed save never leaves a truncated model.pt behind
    torch.save(model.state_dict(), tmp)
    tmp.replace(out / WEIGHTS)
    return out


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint directory, or the one a training run's `checkpoints/latest` (or that file itself) names."""
    latest = path / "checkpoints" / "latest" if (path / "checkpoints").is_dir() else path
    if latest.is_file() and latest.name == "latest":
        return latest.parent / latest.read_text().strip()
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[TwoStagePolicy, dict, dict]:
    """(model in eval mode on `device`, norm_stats, extra) from a directory written by `save_checkpoint` — or a
    training output directory (`rho train out=...`), whose newest checkpoint is used."""
    path = resolve_checkpoint(Path(path))
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise FileNotFoundError(f"{path}: not a policy checkpoint (needs {CONFIG} and {WEIGHTS})")
    # checkpoints written before `backbone.tokenizer` existed used byte tokens
    legacy = [] if "tokenizer:" in (path / CONFIG).read_text() else ["backbone.tokenizer=bytes"]
    cfg = load_config(PolicyCfg, yaml=path / CONFIG, overrides=legacy)
    hf_dir = path / HF_DIR
    if cfg.backbone.kind == "hf" and hf_dir.is_dir():
        model = TwoStagePolicy(cfg, hf_source=str(hf_dir), pretrained=False)  # weights come from model.pt
    else:
        model = TwoStagePolicy(cfg)
    fix = "restore it from the run that wrote it, or load another checkpoint"
    state = load_torch(path / WEIGHTS, "policy weights", fix)  # weights_only: tensors, never code
    if not isinstance(state, dict):
        raise CheckpointError(f"policy weights {path / WEIGHTS}: expected a state_dict, got {type(state).__name__}. "
                              f"Fix: {fix}")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"policy weights {path / WEIGHTS}: do not fit the architecture of {path / CONFIG} "
                              f"({first}). Fix: {fix}") from None
    norm = load_json(path / NORM_STATS, "normalization stats", fix) if (path / NORM_STATS).is_file() else {}
    extra = load_json(path / EXTRA, "checkpoint extras", fix) if (path / EXTRA).is_file() else {}
    return model.to(device).eval(), norm, extra


def _plain(obj: Any) -> Any:
    """JSON-safe copy: tensors and numpy arrays become lists, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj
