"""`rho train policy=<cfg> data=<mixture> out=<dir>`: train the two-stage policy on a mixture of sim and real data.

One function, `train(cfg)`, runs on a CPU, one GPU, or many through torchrun/DDP (`WORLD_SIZE`, `RANK`,
`LOCAL_RANK` are read from the environment; rank r takes every W-th draw of the mixture; only rank 0 writes):

    torchrun --nproc_per_node=8 -m rho.cli train policy=... data=... out=runs/policy

Batch contract (`rho.policy.data.collate`; B batch, H horizon, A = 14, S touch history, r×c taxels, P = 4 pads):
    images {cam: (B, 3, size, size) float32 in [0, 1]}, image_mask {cam: (B,) bool}, instruction list[str] (B),
    proprio (B, 14) normalized, proprio_mask (B,), touch (B, P, S, r, c, 3) normalized, touch_net (B, P, 3)
    normalized, touch_mask (B,), actions (B, H, A) normalized (actions t..t+H-1), action_pad (B, H) True past the
    episode end (padded by repeating the last action), source (B,) int64.
The model only has to provide `loss, info = model.loss(batch)` (info: scalars to log).

What `out` holds:
    config.yaml                      the full TrainCfg of the run
    log.jsonl                        one JSON record per log / validation step (a resumed run drops later records)
    tb/                              TensorBoard events (`tensorboard --logdir <out>/tb`)
    checkpoints/latest               the name of the newest complete checkpoint
    checkpoints/step_00002000/       `save_checkpoint(model, dir, norm_stats, extra)`: model + its config, the
                                     target norm_stats.json, extra = {step, train_cfg, source_stats, sources,
                                     layout, world_size}; plus trainer.pt (optimizer, per-rank RNG states)
Checkpoints are written to a temporary folder and renamed, so a killed run leaves only complete ones.
`resume=true` continues from the latest: same weights, optimizer state, step, RNG and data order (draw
step·B·W onwards), so 2 steps + resume to 3 equals 3 steps straight.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import yaml as pyyaml
from torch.utils.data import DataLoader

from rho.config import ConfigError, config_to_dict, config_to_yaml, load_config, validate_config

from .data import (
    AdapterCfg,
    AugmentCfg,
    DataCfg,
    DataError,
    DrawSampler,
    ImageAugCfg,
    Layout,
    MixtureDataset,
    Source,
    SourceCfg,
    TouchAugCfg,
    build_sources,
    collate,
    embodiment_stats,
    stats_to_json,
    target_embodiment,
    target_norm_stats,
)

__all__ = ["AdapterCfg", "AugmentCfg", "DataCfg", "DataError", "ImageAugCfg", "ModelIO", "OptimCfg", "SourceCfg", "TouchAugCfg",
           "TrainCfg", "describe", "latest_checkpoint", "load_train_config", "rho_model_io", "train", "train_schema"]

CHECKPOINTS, LATEST, TRAINER_STATE = "checkpoints", "latest", "trainer.pt"
RESUME_MUST_MATCH = ("policy", "data", "seed", "batch_size", "init_from")  # what fixes the model and the data order


# ------------------------------------------------------------------------------------------------ configuration
@dataclass
class OptimCfg:
    """AdamW with linear warmup, then cosine decay to min_lr_ratio · lr (or constant)."""

    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int = 500
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global grad norm (0: off)
    ema: float = 0.999  # EMA decay of the weights checkpoints hold for evaluation (0: off); warmed up as
    # min(ema, (1 + step) / (10 + step)), as Diffusion Policy does


@dataclass
class TrainCfg:
    """Settings of `rho train`. `policy` is the model's PolicyCfg (typed by `train_schema()`; None: its defaults)."""

    out: str = "runs/policy"  # run directory: config, logs, TensorBoard, checkpoints
    policy: Any = None
    data: DataCfg = field(default_factory=DataCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    steps: int = 20000  # optimizer steps in total (a resumed run continues up to it)
    batch_size: int = 32  # per process: the global batch is batch_size × WORLD_SIZE
    seed: int = 0  # model init, data draws and augmentation
    num_workers: int = 4  # DataLoader worker processes per rank (0: load in the training process)
    cpu_threads: int = 0  # torch threads when training on CPU; 0: cores / (1 + num_workers), at least 1 — more
    # threads than free cores makes torch spin against the data workers (measured 12× slower on 2 cores)
    log_every: int = 20
    valid_every: int = 1000  # validation loss every N steps and at the end (0: only at the end)
    valid_batches: int = 8  # batches per validation (fixed draws, no augmentation)
    save_every: int = 2000  # checkpoint every N steps and at the end
    keep_checkpoints: int = 3  # newest checkpoints kept (0: all)
    resume: bool = False  # continue from out/checkpoints/latest (also --resume)
    # fine-tune: start from this checkpoint (or training run directory: its newest checkpoint) — its weights, its
    # policy config and its normalization statistics (every source decodes with them, so the fine-tuned policy
    # keeps the deployed action scale); `policy=` is ignored. Used by `rho online` updates.
    init_from: str = ""
    device: str = "auto"  # auto: cuda:LOCAL_RANK when CUDA is available, else cpu
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    tensorboard: bool = True
    progress: bool = True  # tqdm bar on rank 0
    find_unused_parameters: bool = False  # DDP: set when some parameters get no gradient in a step

    def validate(self) -> list[str]:
        out = [f"{k} must be >= 1, got {getattr(self, k)}" for k in ("steps", "batch_size", "log_every",
                                                                       "valid_batches", "save_every")
               if getattr(self, k) < 1]
        out += [f"{k} must be >= 0, got {getattr(self, k)}" for k in ("num_workers", "valid_every", "keep_checkpoints",
                                                                       "cpu_threads")
                if getattr(self, k) < 0]
        return out


def train_schema() -> type:
    """TrainCfg with `policy` typed as the model's PolicyCfg, for `load_config` (checks every policy key)."""
    from rho.policy.config import PolicyCfg

    return dataclasses.make_dataclass("TrainCfg", [("policy", PolicyCfg, field(default_factory=PolicyCfg))],
                                      bases=(TrainCfg,))


def load_train_config(overrides: Sequence[str], yaml: str | Path | None = None,
                      schema: type | None = None) -> TrainCfg:
    """The config of `rho train policy=<p> data=<d> out=<dir> [key=value ...]`.

    `policy=` / `data=` name a YAML file holding that section: a path ending in .yaml, or a bare name found as
    configs/policy/<name>.yaml / configs/data/<name>.yaml. Overrides apply in order, so `policy.expert.horizon=8`
    after `policy=small` changes the loaded file's value. A mapping (`data={sources: [...]}`) is taken as is.
    """
    expanded = []
    for item in overrides:
        key, sep, value = (s.strip() for s in item.partition("="))
        if sep and key in ("policy", "data") and value and value[0] not in "{[" and value != "null":
            expanded.append(f"{key}={json.dumps(_section_yaml(key, value))}")
        else:
            expanded.append(item)
    return load_config(schema or train_schema(), yaml=yaml, overrides=expanded)


def _section_yaml(section: str, spec: str) -> dict[str, Any]:
    path: Any = Path(spec) if spec.endswith((".yaml", ".yml")) else resources.files("rho.configs") / section / (
        f"{spec}.yaml")
    if not path.is_file():
        root = resources.files("rho.configs") / section
        names = sorted(p.name.removesuffix(".yaml") for p in root.iterdir()) if root.is_dir() else []
        raise ConfigError([f"{section}={spec}: no such file {path}. Fix: give a .yaml path or one of "
                           f"{names or 'the files under configs/' + section}"])
    data = pyyaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError([f"{section}={spec}: {path} must hold a mapping of {section} keys, got {type(data).__name__}"])
    return data


# ------------------------------------------------------------------------------------------------ model I/O
@dataclass(frozen=True)
class ModelIO:
    """How train() builds, saves and loads the model (the rho policy by default; tests pass a stand-in)."""

    build: Callable[[Any], torch.nn.Module]  # PolicyCfg → model with .loss(batch) -> (loss, info)
    save: Callable[[torch.nn.Module, Path, dict[str, Any], dict[str, Any]], Any]  # (model, dir, norm_stats, extra)
    load: Callable[[Path], tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]]  # dir → (model, stats, extra)


def rho_model_io() -> ModelIO:
    from rho.policy.checkpoint import load_checkpoint, save_checkpoint
    from rho.policy.model import TwoStagePolicy

    return ModelIO(build=TwoStagePolicy, save=save_checkpoint, load=load_checkpoint)


class _LossModule(torch.nn.Module):
    """model.loss as forward(), so DDP sees the call and all-reduces the gradients."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.model.loss(batch)


# ------------------------------------------------------------------------------------------------ processes
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owned: bool = False  # this call initialized the process group

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()


def _init_dist(device: str) -> _Dist:
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        dev = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owned = world > 1 and not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return _Dist(rank, world, local, dev, owned)


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint32)[0])


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and resize; let the training process have the cores


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


def _scalars(info: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in (info or {}).items():
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            out[k] = float(v.detach())
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


# ------------------------------------------------------------------------------------------------ checkpoints
def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory (None when there is none)."""
    root = Path(out) / CHECKPOINTS
    latest = root / LATEST
    if latest.exists():
        found = root / latest.read_text().strip()
        if (found / TRAINER_STATE).exists():
            return found
    done = sorted(p for p in root.glob("step_*") if (p / TRAINER_STATE).exists())
    return done[-1] if done else None


def _with_defaults(cfg: TrainCfg, saved: dict[str, Any]) -> dict[str, Any]:
    """A run's saved settings with the keys a newer rho added filled with their defaults (top-level keys, the data
    config, the policy config when it is a dataclass), so resuming after an upgrade compares what was chosen, not
    which keys existed. A section the schema cannot read back stays as saved: then it differs and the refusal
    names it."""
    from rho.config import config_from_dict

    out = dict(saved)
    for f in dataclasses.fields(TrainCfg):
        if f.name not in out and f.default is not dataclasses.MISSING:
            out[f.name] = f.default
    sections = [("data", DataCfg)] + ([("policy", type(cfg.policy))] if dataclasses.is_dataclass(cfg.policy) else [])
    for key, schema in sections:
        if isinstance(saved.get(key), dict):
            with suppress(ConfigError, ValueError):
                out[key] = config_to_dict(config_from_dict(schema, saved[key]))
    return out


def _prune(root: Path, keep: int) -> None:
    if keep > 0:
        for old in sorted(root.glob("step_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def _resume_mismatch(cfg: TrainCfg, saved: dict[str, Any], world: int, saved_world: int) -> list[str]:
    now = config_to_dict(cfg)
    saved = _with_defaults(cfg, saved)
    out = [k for k in RESUME_MUST_MATCH if now.get(k) != saved.get(k)]
    return out + ([f"WORLD_SIZE ({saved_world} → {world})"] if world != saved_world else [])


# ------------------------------------------------------------------------------------------------ training
def train(cfg: TrainCfg, *, io: ModelIO | None = None) -> dict[str, Any]:
    """Train (or resume) a policy as `cfg` says; returns a summary (steps, losses, throughput, checkpoint)."""
    problems = validate_config(cfg)  # configs built in code skip load_config's checks
    if problems:
        raise ConfigError(problems)
    _check_out(Path(cfg.out))  # before any data is opened or cached
    d = _init_dist(cfg.device)
    if d.device.type == "cpu":
        torch.set_num_threads(cfg.cpu_threads or max(1, (os.cpu_count() or 1) // (1 + cfg.num_workers)))
    try:
        return _Trainer(cfg, io or rho_model_io(), d).run()
    finally:
        d.close()


def _check_out(out: Path) -> None:
    """Refuse an output path that cannot hold a run directory, before any work."""
    if not str(out) or str(out) == ".":
        raise ConfigError(["out is empty: training would write into the working directory. Fix: out=runs/policy/<name>"])
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError([f"out={out}: {blocker} is a file, not a directory. Fix: choose another out"])
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test_{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError([f"out={out}: cannot write there ({e.strerror}). Fix: choose a writable directory"]) from None


class _Trainer:
    """One run: its sources, model, optimizer, loaders and writers (a class only to share them between steps)."""

    def __init__(self, cfg: TrainCfg, io: ModelIO, d: _Dist) -> None:
        init = self._init_from(cfg, io) if cfg.init_from else None  # (model, its norm stats JSON)
        self.policy_cfg = init[0].cfg if init else cfg.policy if cfg.policy is not None else _default_policy_cfg()
        cfg = dataclasses.replace(cfg, policy=self.policy_cfg)  # config.yaml and checkpoints show the real one
        self.cfg, self.io, self.d, self.out = cfg, io, d, Path(cfg.out)
        self.layout = Layout.from_policy(self.policy_cfg)
        self.bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and d.device.type == "cuda")
        ckpt = self._checkpoint_to_resume()
        self.step = 0
        saved = self._load(ckpt) if ckpt is not None else None
        if saved is None and init is not None:
            self.sources = self._sources({c.label: init[1] for c in cfg.data.sources})
            self.model = init[0].to(d.device).train()
            torch.manual_seed(_seed(cfg.seed, d.rank, 1))
        elif saved is None:
            self.sources = self._sources(None)
            torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP broadcasts rank 0's anyway)
            self.model = io.build(self.policy_cfg).to(d.device)
            torch.manual_seed(_seed(cfg.seed, d.rank, 1))  # per-rank noise/dropout streams
        self.start_step = self.step
        # EMA weights: what checkpoints hold (model.pt) and validation measures; the raw weights go to trainer.pt
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if cfg.optim.ema > 0 else None
        if saved is not None and self.ema is not None and "model" in saved:
            self.model.load_state_dict(saved["model"])  # model.pt held the EMA; the raw weights continue training
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optim = torch.optim.AdamW(param_groups(self.model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                       betas=tuple(cfg.optim.betas))
        if saved is not None:
            self.optim.load_state_dict(saved["optimizer"])
            _set_rng_state(saved["rng"][d.rank], d.device)
        self._check_action_modes()
        self.norm_stats = stats_to_json(target_norm_stats(self.sources, cfg.data.target))
        self.runner = self._wrap(self.model)
        self.logger = _Logger(self.out, cfg.tensorboard, self.start_step) if d.main else None

    # -- setup
    @staticmethod
    def _init_from(cfg: TrainCfg, io: ModelIO) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The checkpoint a fine-tuning run starts from: (model, the normalization stats it decodes with)."""
        try:
            model, norm_stats, _ = io.load(Path(cfg.init_from))
        except FileNotFoundError as e:
            raise ConfigError([f"init_from={cfg.init_from}: {e}. Fix: give a checkpoint directory or a training "
                               "run's out directory"]) from None
        if not norm_stats:
            raise ConfigError([f"init_from={cfg.init_from}: the checkpoint has no normalization statistics, so "
                               "fine-tuning data could not be encoded as it was trained. Fix: start from a "
                               "checkpoint written by rho train"])
        return model, norm_stats

    def _checkpoint_to_resume(self) -> Path | None:
        ckpt = latest_checkpoint(self.out)
        if ckpt is not None and not self.cfg.resume:
            raise ConfigError([f"out={self.out} already holds checkpoints (latest {ckpt.name}). Fix: pass resume=true "
                               "to continue that run, or choose a new out"])
        return ckpt if self.cfg.resume else None

    def _load(self, ckpt: Path) -> dict[str, Any]:
        model, _, extra = self.io.load(ckpt)
        bad = _resume_mismatch(self.cfg, extra.get("train_cfg", {}), self.d.world, int(extra.get("world_size", 1)))
        if bad:
            raise ConfigError([f"resume from {ckpt}: {', '.join(bad)} differ from the run being resumed, so the model "
                               "or the data order would change. Fix: resume with the same settings (see "
                               f"{self.out / 'config.yaml'}), or start a new out"])
        from rho.safeload import load_torch

        state = load_torch(ckpt / TRAINER_STATE, "trainer state", "resume from an earlier checkpoint directory, or "
                           "start a new out")  # weights_only: tensors and plain values, never code
        self.step = int(state["step"])
        self.model = model.to(self.d.device)
        self.sources = self._sources(extra["source_stats"])
        return state

    def _sources(self, stats: dict[str, Any] | None) -> list[Source]:
        """Open the sources; statistics from the checkpoint, or computed once on rank 0 and broadcast."""
        if stats is None and self.d.world > 1:
            box = [None]
            if self.d.main:
                sources = build_sources(self.cfg.data, self.layout, self.cfg.seed)
                box = [{s.name: stats_to_json(s.stats) for s in sources}]
            dist.broadcast_object_list(box, src=0)
            return sources if self.d.main else build_sources(self.cfg.data, self.layout, self.cfg.seed, box[0])
        return build_sources(self.cfg.data, self.layout, self.cfg.seed, stats)

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        runner = _LossModule(model)
        if self.d.world == 1:
            return runner
        ids = [self.d.device.index] if self.d.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(runner, device_ids=ids,
                                                         find_unused_parameters=self.cfg.find_unused_parameters)

    def _loader(self, split: str, sampler: DrawSampler, persistent: bool) -> DataLoader:
        aug = self.cfg.data.augment if split == "train" else None
        ds = MixtureDataset(self.sources, split, self.cfg.seed, aug)
        workers = self.cfg.num_workers
        kw: dict[str, Any] = {"prefetch_factor": 4, "persistent_workers": persistent} if workers else {}
        return DataLoader(ds, batch_size=self.cfg.batch_size, sampler=sampler, num_workers=workers,
                          collate_fn=collate, pin_memory=self.d.device.type == "cuda", worker_init_fn=_worker_init,
                          **kw)

    # -- loop
    def run(self) -> dict[str, Any]:
        cfg, d = self.cfg, self.d
        if self.logger:
            self.logger.start(cfg, self._summary_sources(), self.step)
        start = self.step * cfg.batch_size * d.world  # global draws consumed so far
        batches = iter(self._loader("train", DrawSampler(start, d.rank, d.world), persistent=False))
        valid = self._valid_loader()
        window, t0, last_log, result = torch.zeros((), device=d.device), time.perf_counter(), self.step, {}
        bar = _progress(cfg, self.step, d.main)
        while self.step < cfg.steps:
            loss, info, grad_norm, lr = self._step(next(batches))
            window += loss.detach()
            self.step += 1
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                rate = (self.step - last_log) * cfg.batch_size * d.world / (time.perf_counter() - t0)
                result = self._log_train(window / (self.step - last_log), info, grad_norm, lr, rate, bar, last_log)
                window.zero_()
                t0, last_log = time.perf_counter(), self.step
            if valid is not None and ((cfg.valid_every and self.step % cfg.valid_every == 0)
                                      or self.step == cfg.steps):
                result.update(self._validate(valid))
            if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                result["checkpoint"] = str(self._save())
        bar.close()
        del batches  # stops the loader's workers
        return self._summary(result)

    def _step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any], float, float]:
        lr = _lr_at(self.cfg.optim, self.step, self.cfg.steps)
        for g in self.optim.param_groups:
            g["lr"] = lr
        batch = _to_device(batch, self.d.device)
        with self._autocast():
            loss, info = self.runner(batch)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.cfg.optim.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(self.params, clip if clip > 0 else math.inf)
        self.optim.step()
        if self.ema is not None:
            self._update_ema()
        return loss, info, norm, lr

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.cfg.optim.ema, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            e.copy_(b)

    def _autocast(self) -> Any:
        return torch.autocast(self.d.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    # -- validation, logging, checkpoints
    def _valid_loader(self) -> DataLoader | None:
        ds = MixtureDataset(self.sources, "valid", self.cfg.seed)
        if ds.empty:
            if self.logger:
                self.logger.write({"step": self.step, "event": "no_validation",
                                   "why": "no source has valid demos (data.valid_fraction=0 and no mask/valid)"})
            return None
        count = self.cfg.valid_batches * self.cfg.batch_size
        return self._loader("valid", DrawSampler(0, self.d.rank, self.d.world, count), persistent=True)

    @torch.no_grad()
    def _validate(self, loader: DataLoader) -> dict[str, float]:
        """Mean loss over fixed draws of the valid demos; the loss's own noise is seeded and the training RNG
        untouched, so values are comparable across evaluations and resuming stays exact."""
        module = self.runner.module if isinstance(self.runner, torch.nn.parallel.DistributedDataParallel) \
            else self.runner
        if self.ema is not None:  # the weights that are deployed
            module = _LossModule(self.ema)
        self.model.eval()
        devices = [self.d.device.index] if self.d.device.type == "cuda" else []
        # loss, and its flow / auxiliary parts when the model reports them (policy.aux_dim), summed over samples
        total = torch.zeros(4, dtype=torch.float64, device=self.d.device)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_seed(self.cfg.seed, self.d.rank, 2))
            for batch in loader:
                with self._autocast():
                    loss, info = module(_to_device(batch, self.d.device))
                n = len(batch["instruction"])
                total += torch.tensor([float(loss) * n, info.get("flow_loss", 0.0) * n, info.get("aux_loss", 0.0) * n,
                                       n], dtype=torch.float64, device=self.d.device)
        self.model.train()
        if self.d.world > 1:
            dist.all_reduce(total)
        rec = {"valid_loss": float(total[0] / total[3])}
        if total[2] > 0:
            rec |= {"valid_flow_loss": float(total[1] / total[3]), "valid_aux_loss": float(total[2] / total[3])}
        if self.logger:
            self.logger.write({"step": self.step, **rec}, tb={"valid/loss": rec["valid_loss"]})
        return rec

    def _log_train(self, loss: torch.Tensor, info: dict[str, Any], grad_norm: float, lr: float, rate: float,
                   bar: Any, since: int) -> dict[str, Any]:
        if self.d.world > 1:
            dist.all_reduce(loss)
            loss = loss / self.d.world
        if not torch.isfinite(loss):  # checked here, not every step: a check is a GPU sync
            raise FloatingPointError(f"steps {since + 1}..{self.step}: the loss is {float(loss)}. The data were "
                                     "checked for NaN/inf; lower optim.lr, or use precision=fp32 to find the op")
        rec = {"step": self.step, "loss": float(loss), "lr": lr, "grad_norm": float(grad_norm),
               "samples_per_s": rate, **_scalars(info)}
        if self.logger:
            self.logger.write(rec)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{lr:.2e}")
        return rec

    def _save(self) -> Path:
        """Every rank hands in its RNG state; rank 0 writes the checkpoint folder atomically, then `latest`."""
        rng = _rng_state(self.d.device)
        states: list[Any] = [rng]
        if self.d.world > 1:
            states = [None] * self.d.world
            dist.all_gather_object(states, {k: v.cpu() for k, v in rng.items()})
        root = self.out / CHECKPOINTS
        final = root / f"step_{self.step:08d}"
        if self.d.main and not (final / TRAINER_STATE).exists():
            root.mkdir(parents=True, exist_ok=True)
            tmp = root / f".{final.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            self.io.save(self.ema if self.ema is not None else self.model, tmp, self.norm_stats, self._extra())
            trainer = {"step": self.step, "optimizer": self.optim.state_dict(), "rng": states}
            if self.ema is not None:
                trainer["model"] = self.model.state_dict()
            torch.save(trainer, tmp / TRAINER_STATE)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            (root / f".{LATEST}.tmp").write_text(final.name)
            os.replace(root / f".{LATEST}.tmp", root / LATEST)
            _prune(root, self.cfg.keep_checkpoints)
        self.d.barrier()
        return final

    def _action_mode(self) -> str:
        """The env action.mode the policy's actions mean: the target (first) source's, which a checkpoint carries so
        closed-loop use drives the env the way those demos did. LeRobot sources hold joint targets."""
        return str(getattr(self.sources[0].store, "action_mode", "joint_pos"))

    def _action_modes(self) -> dict[str, str]:
        return {s.name: str(getattr(s.store, "action_mode", "joint_pos")) for s in self.sources}

    def _check_action_modes(self) -> None:
        """One meaning of `actions` per run: adapters map layouts, not semantics (an ee_delta source in a
        joint-target mixture would train on actions of two meanings)."""
        modes = self._action_modes()
        if len(set(modes.values())) > 1:
            raise DataError(f"the sources' actions mean different things: {modes}. Fix: relabel older datasets to "
                            "joint targets with `rho dataset convert <old> <new>` (format v2), or train on one kind")

    def _extra(self) -> dict[str, Any]:
        return {"step": self.step, "train_cfg": config_to_dict(self.cfg), "world_size": self.d.world,
                "action_mode": self._action_mode(), "source_action_modes": self._action_modes(),
                "source_stats": {s.name: stats_to_json(s.stats) for s in self.sources},
                "normalize": self.cfg.data.normalize, "target": self.cfg.data.target or self.sources[0].name,
                "embodiment": target_embodiment(self.sources, self.cfg.data.target),
                "embodiment_explicit": bool(self.cfg.data.target) or len({s.embodiment for s in self.sources}) == 1,
                "embodiment_stats": {e: stats_to_json(v) for e, v in embodiment_stats(self.sources).items()},
                "source_embodiments": {s.name: s.embodiment for s in self.sources}, "ema": self.cfg.optim.ema,
                "sources": self._summary_sources(), "layout": dataclasses.asdict(self.layout)}

    def _summary_sources(self) -> list[dict[str, Any]]:
        ds = MixtureDataset(self.sources, "train")
        return [{"name": s.name, "path": s.store.where, "index": s.index, "weight": s.cfg.weight,
                 "probability": float(p), "train_demos": len(s.demos["train"]), "valid_demos": len(s.demos["valid"]),
                 "train_frames": s.num_frames("train"), "touch": s.modalities.touch is not None,
                 "proprio": s.modalities.state is not None,
                 "cameras": [c for c, k in s.modalities.cameras.items() if k]} for s, p in zip(self.sources, ds.probs,
                                                                                               strict=True)]

    def _summary(self, last: dict[str, Any]) -> dict[str, Any]:
        if self.logger:
            self.logger.close()
        return {"out": str(self.out), "start_step": self.start_step, "steps": self.step,
                "world_size": self.d.world, "device": str(self.d.device), "bf16": self.bf16,
                "checkpoint": str(latest_checkpoint(self.out) or ""), **last}


def describe(summary: dict[str, Any]) -> str:
    """The human-readable end of `rho train` (the summary `train` returns)."""
    out, done = summary["out"], summary["steps"] - summary["start_step"]
    lines = [f"trained {done} steps ({summary['start_step']} → {summary['steps']}) on {summary['world_size']} × "
             f"{summary['device']}{' (bf16 autocast)' if summary['bf16'] else ''}"]
    if "loss" in summary:
        valid = f", valid loss {summary['valid_loss']:.4f}" if "valid_loss" in summary else ""
        lines.append(f"loss {summary['loss']:.4f}{valid}, {summary['samples_per_s']:.0f} samples/s")
    lines += [f"checkpoint: {summary['checkpoint']}",
              f"logs: {out}/log.jsonl; tensorboard --logdir {out}/tb",
              f"continue: rho train <same keys> out={out} steps=<more> resume=true"]
    return "\n".join(lines)


def _default_policy_cfg() -> Any:
    from rho.policy.config import PolicyCfg

    return PolicyCfg()


NO_DECAY_MODULES = (torch.nn.Embedding, torch.nn.LayerNorm, torch.nn.GroupNorm)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on weight matrices and conv kernels only — not on biases, norm scales,
    embeddings, or parameters a module holds directly (positional embeddings, learned tokens); decaying those pulls
    them to 0 for nothing."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            weight_of_layer = name == "weight" and p.ndim >= 2 and not isinstance(module, NO_DECAY_MODULES)
            (decay if weight_of_layer else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(cfg: OptimCfg, step: int, total: int) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup, then cosine to min_lr_ratio·lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def _progress(cfg: TrainCfg, step: int, main: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=cfg.steps, initial=step, disable=not (cfg.progress and main), unit="step", dynamic_ncols=True,
                desc="train")


class _Logger:
    """log.jsonl and TensorBoard on rank 0. A resumed run first drops records past its checkpoint's step."""

    def __init__(self, out: Path, tensorboard: bool, step: int) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "log.jsonl"
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= step]
            self.path.write_text("".join(line + "\n" for line in kept))
        self.file = self.path.open("a")
        self.tb = _tensorboard(out / "tb", step) if tensorboard else None
        if tensorboard and self.tb is None:
            self.write({"step": step, "event": "no_tensorboard", "fix": "pip install 'tensorboard>=2.16'"})

    def start(self, cfg: TrainCfg, sources: list[dict[str, Any]], step: int) -> None:
        (Path(cfg.out) / "config.yaml").write_text(config_to_yaml(cfg))
        self.write({"step": step, "event": "resume" if step else "start", "sources": sources})

    def write(self, rec: dict[str, Any], tb: dict[str, float] | None = None) -> None:
        """One jsonl record; TensorBoard gets `tb` (tag → value), by default the record's numbers as train/<key>."""
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        if self.tb is not None:
            if tb is None:
                tb = {f"train/{k}": v for k, v in rec.items()
                      if k not in ("step", "event") and isinstance(v, (int, float)) and not isinstance(v, bool)}
            for tag, v in tb.items():
                self.tb.add_scalar(tag, v, rec["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def _tensorboard(path: Path, step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: the jsonl log has everything
        return None
    return SummaryWriter(str(path), purge_step=step + 1 if step else None)

