"""Training data for the two-stage policy: a weighted mixture of sim HDF5 datasets and real LeRobot datasets.

    DataCfg.sources ──open──► Source (store + Adapter + Stats) ──► MixtureDataset[k] ──► collate ──► batch

A *draw* k (0, 1, 2, ...) is fully determined by (seed, split, k): which source (by weight), which frame of it
(uniform over that source's frames), and every augmentation parameter. So the data order does not depend on
the number of DataLoader workers, resuming at step s just starts at draw s·B·W, and DDP rank r of W takes draws
r, r + W, r + 2W, ... (`DrawSampler`).

Sources:
- `hdf5`: a rho dataset (directory of shards or one .hdf5 file, sim or imported). Frames are read at random
  through `Dataset.datasets(i)` handles (one chunk per image), never whole files.
- `lerobot`: a LeRobot v2.1 / v2.0 / v3.0 folder, imported into memory as `Episode`s (videos decoded once).
  Fine for small real datasets; for a big one (BusyBox, ~2k demos) import it once with
  `rho dataset import-lerobot <dir> <out.hdf5>` and list the .hdf5 instead: same data, random access, no RAM.

Every source goes through its `Adapter` (index/scale/offset of state and action dims, camera and pad renames)
into the policy's layout (`Layout`: 14-D ALOHA joint positions, cameras, pads). A modality a source lacks
(touch on real data, a camera) is zero-filled and its mask is False.

Normalization (`DataCfg.normalize`):
- `per_embodiment` (default): sources that share an embodiment — one robot and one action meaning, e.g. every
  sim task of the ALOHA robot with joint-target actions (`aloha/joint_pos`) — are z-scored with statistics
  *pooled* over all of them (frame-weighted), so one joint angle means one normalized value whatever the task;
  sources of different embodiments (another robot, another calibration: set `SourceCfg.embodiment`) each get
  their own group's statistics. The checkpoint keeps every embodiment's statistics (extra["embodiment_stats"])
  and `norm_stats.json` holds the deployed one's (`DataCfg.target`'s embodiment, default the first source's);
  a checkpoint trained on several embodiments without a target decodes only when told which
  (`Policy.load(dir, embodiment=...)`), never silently with another's statistics.
- `per_source`: each source with its own statistics (the checkpoint still keeps each embodiment's pooled ones).
- `target`: every source is normalized with the target embodiment's statistics (one absolute space).

Images are read through a frame cache (`rho.policy.frames`): every camera frame resized once to the policy's
resolution with the same function inference uses, stored as uint8 beside the user cache and reused across runs.

Legend: B batch; H action horizon; A action dim; D proprio dim; S touch history; r, c taxel rows/cols; P pads (4).
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch
from torch.nn import functional
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler

from rho.datagen.hdf5 import MANIFEST, SHARD_GLOB, Dataset, DatasetError
from rho.sim.ik import joint_ee_state

from .frames import DEFAULT_ROOT, FrameCache, resize_frames
from .text import tokens_of

PADS = ("left_a", "left_b", "right_a", "right_b")
CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")
SPLITS = ("train", "valid")
STD_FLOOR = 1e-4  # a dimension flatter than this is only centred (std 1), not blown up


class DataError(DatasetError):
    """Training data that cannot be used as configured; the message names the dataset, the demo and the fix."""


# ------------------------------------------------------------------------------------------------ configuration
@dataclass
class AdapterCfg:
    """How a source's layout maps onto the policy's (defaults: the source already is 14-D ALOHA).

    `*_index[i]` is the source dimension that feeds policy dimension i (-1: the source lacks it, filled with
    `*_offset[i]`); then `value * scale + offset`. `cameras` / `pads` rename policy camera / pad → source name.
    """

    state_key: str = "joint_pos"  # source obs key holding the proprio state
    state_index: list[int] | None = None
    state_scale: list[float] | None = None
    state_offset: list[float] | None = None
    action_index: list[int] | None = None
    action_scale: list[float] | None = None
    action_offset: list[float] | None = None
    cameras: dict[str, str] = field(default_factory=dict)  # policy camera → source camera, e.g. {cam_high: top}
    pads: dict[str, str] = field(default_factory=dict)  # policy pad → source pad


@dataclass
class ImageAugCfg:
    """Image augmentation (training draws only): random resized crop, then colour jitter."""

    enabled: bool = True
    shift: int = 4  # random shift (pixels at the policy's resolution, edge-padded), as DrQ / Diffusion Policy
    crop_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])  # random resized crop area range (1: off)
    crop_ratio: list[float] = field(default_factory=lambda: [0.9, 1.1])  # crop aspect (w/h) range, log-uniform
    brightness: float = 0.2  # factor in [1 - b, 1 + b]
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02  # rotation in turns, in [-h, h]


@dataclass
class TouchAugCfg:
    """Touch augmentation (training draws, sources with touch): sensor gain, dead taxels, dead pads, noise."""

    enabled: bool = True
    gain: float = 0.1  # per-pad gain in [1 - g, 1 + g] on raw forces (taxels and net)
    taxel_dropout: float = 0.02  # probability a taxel reads 0 N for the whole sample
    pad_dropout: float = 0.05  # probability a whole pad (taxels and net) reads 0 N
    noise_std: float = 0.05  # Gaussian noise added after normalization (units of the source's std)


@dataclass
class AugmentCfg:
    image: ImageAugCfg = field(default_factory=ImageAugCfg)
    touch: TouchAugCfg = field(default_factory=TouchAugCfg)


@dataclass
class SourceCfg:
    """One dataset of the mixture."""

    path: str = "???"  # rho HDF5 (file or shard directory) or LeRobot folder
    name: str = ""  # shown in logs and errors; default: the path's stem
    kind: Literal["auto", "hdf5", "lerobot"] = "auto"
    weight: float = 1.0  # sampling weight: P(source) = weight / sum of weights (frames uniform within)
    only_success: bool = True  # skip demos recorded as failures
    # which steps of the demos are drawn: all, or only those a corrector drove (the per-step `intervention` flag
    # `rho online` records; HG-DAgger-style training on corrections)
    steps: Literal["all", "intervention"] = "all"
    embodiment: str = ""  # normalization group (robot/action meaning); "": from the data, e.g. "aloha/joint_pos"
    max_demos: int = 0  # use the first N demos (0: all)
    instruction: str = ""  # replaces every demo's instruction when set
    # privileged low-dim obs the vision path learns to predict (training only, policy.aux_dim > 0), each
    # "<obs key>" or "<obs key>[start:stop]", e.g. ["block_pose[0:3]"] (the block's position, m)
    aux: list[str] = field(default_factory=list)
    # what the policy learns to output: the stored `actions` (absolute joint targets, format v2), or `ee_pose`: the
    # absolute TCP poses those targets reach, per arm position (m, world), 6-D rotation and gripper opening (10-D;
    # relabelled by forward kinematics in the recording env, exact: an env in action.mode=ee_pose executes them as
    # the recorded joint targets). ee_pose needs policy.action_dim=20 for ALOHA
    actions: Literal["stored", "ee_pose"] = "stored"
    adapter: AdapterCfg = field(default_factory=AdapterCfg)

    def validate(self) -> list[str]:
        out = [] if self.weight >= 0 else [f"weight must be >= 0, got {self.weight}"]
        return out + ([] if self.max_demos >= 0 else [f"max_demos must be >= 0, got {self.max_demos}"])

    @property
    def label(self) -> str:
        return self.name or Path(self.path).stem


@dataclass
class DataCfg:
    """The training mixture (`rho train data=<file.yaml>`)."""

    sources: list[SourceCfg] = field(default_factory=list)
    target: str = ""  # source whose embodiment the checkpoint decodes with by default; "": the first source's
    actions: Literal["", "stored", "ee_pose"] = ""  # "": each source's own `actions`; else every source's (SourceCfg)
    normalize: Literal["per_embodiment", "per_source", "target"] = "per_embodiment"  # see the module docstring
    image_staleness: int = 0  # images up to this many steps older than proprio/touch (match inference prefix_every-1)
    frame_cache: str = DEFAULT_ROOT  # resized frames reused across runs ("": resize every read;
    # $RHO_FRAME_CACHE replaces the default)
    valid_fraction: float = 0.1  # demos held out per source when its dataset has no mask/valid
    stats_max_demos: int = 500  # statistics from at most this many training demos per source (seeded choice)
    augment: AugmentCfg = field(default_factory=AugmentCfg)

    def validate(self) -> list[str]:
        out = [] if self.sources else ["sources is empty. Fix: data.sources=[{path: runs/datasets/lift_block}]"]
        names = [s.label for s in self.sources]
        if len(set(names)) != len(names):
            out.append(f"source names must be unique, got {names}. Fix: give each source a `name`")
        if self.sources and sum(s.weight for s in self.sources) <= 0:
            out.append("the source weights sum to 0; give at least one source a positive weight")
        if self.target and self.target not in names:
            out.append(f"target {self.target!r} is not a source name; names: {names}")
        if not 0 <= self.valid_fraction < 1:
            out.append(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if self.image_staleness < 0:
            out.append(f"image_staleness must be >= 0, got {self.image_staleness}")
        return out

    def source_cfgs(self) -> list[SourceCfg]:
        """The sources, with `actions` applied to each when set."""
        if not self.actions:
            return list(self.sources)
        return [dataclasses.replace(s, actions=self.actions) for s in self.sources]


# ------------------------------------------------------------------------------------------------ layout, adapter
@dataclass(frozen=True)
class Layout:
    """What the policy consumes (from its PolicyCfg): shapes of every batch entry."""

    cameras: tuple[str, ...] = CAMERAS
    pads: tuple[str, ...] = PADS
    image_size: int = 96
    horizon: int = 16  # H
    touch_history: int = 2  # S
    taxel_shape: tuple[int, int] = (4, 4)  # (r, c)
    action_dim: int = 14  # A
    proprio_dim: int = 14  # D
    max_text_tokens: int = 0  # instruction tokens the backbone keeps (0: not checked)
    tokenizer: str = "words"  # the builtin backbone's tokenizer (rho.policy.text), what max_text_tokens counts
    aux_dim: int = 0  # auxiliary targets per sample (policy.aux_dim; 0: none)

    @classmethod
    def from_policy(cls, cfg: Any) -> Layout:
        """From a PolicyCfg (rho.policy.config) or anything with the same fields."""
        return cls(cameras=tuple(cfg.cameras), pads=tuple(cfg.pads), image_size=int(cfg.backbone.image_size),
                   horizon=int(cfg.expert.horizon), touch_history=int(cfg.expert.touch_history),
                   taxel_shape=(int(cfg.taxel_shape[0]), int(cfg.taxel_shape[1])),
                   action_dim=int(cfg.action_dim), proprio_dim=int(cfg.proprio_dim),
                   max_text_tokens=int(getattr(cfg.backbone, "max_text_tokens", 0))
                   if getattr(cfg.backbone, "kind", "") == "builtin" else 0,
                   tokenizer=str(getattr(cfg.backbone, "tokenizer", "words")),
                   aux_dim=int(getattr(cfg, "aux_dim", 0)))


@dataclass(frozen=True)
class Remap:
    """policy[..., i] = source[..., index[i]] * scale[i] + offset[i]; index -1 reads 0 (so the offset is the value)."""

    index: tuple[int, ...] | None = None
    scale: tuple[float, ...] | None = None
    offset: tuple[float, ...] | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:  # (..., D_src) → (..., D)
        y = x.astype(np.float32, copy=False)
        if self.index is not None:
            idx = np.asarray(self.index)
            y = np.where(idx >= 0, y[..., np.maximum(idx, 0)], np.float32(0))
        if self.scale is not None:
            y = y * np.asarray(self.scale, np.float32)
        if self.offset is not None:
            y = y + np.asarray(self.offset, np.float32)
        return y.astype(np.float32, copy=False)

    def out_dim(self, src_dim: int) -> int:
        return len(self.index) if self.index is not None else src_dim

    def problems(self, what: str, src_dim: int, want: int) -> list[str]:
        out = []
        if self.index is not None and max(self.index, default=-1) >= src_dim:
            out.append(f"{what}_index reaches dim {max(self.index)}, the source has {src_dim} dims")
        n = self.out_dim(src_dim)
        if n != want:
            out.append(f"{what} has {n} dims after the adapter, the policy expects {want}. Fix: set "
                       f"adapter.{what}_index to {want} source dims (-1 for a dim the source lacks)")
        for name, vals in (("scale", self.scale), ("offset", self.offset)):
            if vals is not None and len(vals) != n:
                out.append(f"adapter.{what}_{name} has {len(vals)} values for {n} dims")
        return out


@dataclass(frozen=True)
class Adapter:
    """A source's layout → the policy's: state and action remaps, camera and pad renames (frozen, hashable)."""

    state_key: str = "joint_pos"
    state: Remap = Remap()
    action: Remap = Remap()
    cameras: tuple[tuple[str, str], ...] = ()  # (policy camera, source camera)
    pads: tuple[tuple[str, str], ...] = ()  # (policy pad, source pad)

    @classmethod
    def from_cfg(cls, cfg: AdapterCfg) -> Adapter:
        def tup(v: Sequence[Any] | None) -> tuple[Any, ...] | None:
            return None if v is None else tuple(v)

        return cls(state_key=cfg.state_key,
                   state=Remap(tup(cfg.state_index), tup(cfg.state_scale), tup(cfg.state_offset)),
                   action=Remap(tup(cfg.action_index), tup(cfg.action_scale), tup(cfg.action_offset)),
                   cameras=tuple(sorted(cfg.cameras.items())), pads=tuple(sorted(cfg.pads.items())))

    @staticmethod
    def make_example() -> Adapter:
        """A robot logging its right arm first, grippers in percent (0..100), its top camera named `top`."""
        swap = (*range(7, 14), *range(0, 7))
        scale = tuple(0.01 if i in (6, 13) else 1.0 for i in range(14))
        return Adapter(state=Remap(swap, scale), action=Remap(swap, scale), cameras=(("cam_high", "top"),))

    def camera(self, cam: str) -> str:
        return dict(self.cameras).get(cam, cam)

    def pad(self, pad: str) -> str:
        return dict(self.pads).get(pad, pad)


# ------------------------------------------------------------------------------------------------ statistics
@dataclass
class Stats:
    """Per-dimension mean and std (touch: one scalar over every taxel value)."""

    mean: np.ndarray
    std: np.ndarray  # floored: a dimension flatter than STD_FLOOR has std 1 (only centred)
    count: int = 0  # values (rows) the statistics are over, for pooling
    var: np.ndarray | None = None  # the raw variance (before the floor), for pooling

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_json(self, scalar: bool = False) -> dict[str, Any]:
        var = self.var if self.var is not None else self.std.astype(np.float64) ** 2
        if scalar:
            return {"mean": float(self.mean.reshape(-1)[0]), "std": float(self.std.reshape(-1)[0]),
                    "count": int(self.count), "var": float(np.reshape(var, -1)[0])}
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "count": int(self.count),
                "var": np.asarray(var).tolist()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Stats:
        var = np.asarray(d["var"], np.float64).reshape(-1) if "var" in d else None
        return cls(np.asarray(d["mean"], np.float32).reshape(-1), np.asarray(d["std"], np.float32).reshape(-1),
                   int(d.get("count", 0)), var)

    @staticmethod
    def from_moments(n: int, mean: np.ndarray, var: np.ndarray) -> Stats:
        mean, var = np.atleast_1d(mean), np.maximum(np.atleast_1d(var), 0.0)
        std = np.sqrt(var)
        std = np.where(std < STD_FLOOR, 1.0, std)
        return Stats(mean.astype(np.float32), std.astype(np.float32), int(n), var.astype(np.float64))


def pool_stats(parts: Sequence[Stats]) -> Stats:
    """Statistics of the union of the parts' values (count-weighted; a part without a count weighs 1)."""
    if len(parts) == 1:
        return parts[0]
    w = np.array([max(p.count, 1) for p in parts], np.float64)
    means = [p.mean.astype(np.float64) for p in parts]
    vars_ = [p.var if p.var is not None else p.std.astype(np.float64) ** 2 for p in parts]
    mean = sum(wi * m for wi, m in zip(w, means, strict=True)) / w.sum()
    second = sum(wi * (v + m * m) for wi, v, m in zip(w, vars_, means, strict=True)) / w.sum()
    return Stats.from_moments(int(w.sum()), mean, second - mean * mean)


MODALITIES = ("actions", "proprio", "touch", "touch_net")


def stats_to_json(stats: Mapping[str, Stats]) -> dict[str, Any]:
    """The norm_stats.json form: {"actions": {"mean": [...], "std": [...]}, ..., "touch": {"mean": f, "std": f}}."""
    return {k: stats[k].to_json(scalar=k == "touch") for k in MODALITIES if k in stats}


def stats_from_json(d: Mapping[str, Any]) -> dict[str, Stats]:
    return {k: Stats.from_json(v) for k, v in d.items() if k in MODALITIES}


class _Moments:
    """Running count / sum / sum of squares (float64) of rows, for mean and std without holding the data."""

    def __init__(self) -> None:
        self.n, self.s, self.ss = 0, 0.0, 0.0

    def add(self, x: np.ndarray) -> None:  # (N, D)
        x = x.astype(np.float64)
        self.n += len(x)
        self.s = self.s + x.sum(0)
        self.ss = self.ss + (x * x).sum(0)

    def stats(self) -> Stats | None:
        if self.n == 0:
            return None
        mean = np.atleast_1d(self.s / self.n)
        return Stats.from_moments(self.n, mean, np.atleast_1d(self.ss / self.n) - mean**2)


# ------------------------------------------------------------------------------------------------ stores
class Store(abc.ABC):
    """A source's demos: arrays by demo, read at random. Arrays are h5py datasets or numpy arrays; both slice."""

    where: str  # the dataset path, for messages
    lengths: np.ndarray  # (num_demos,) steps per demo

    @property
    def num_demos(self) -> int:
        return len(self.lengths)

    @abc.abstractmethod
    def arrays(self, i: int) -> Mapping[str, Any]:  # "obs/<key>" / "actions" → (T, ...) array-like
        """Implemented by each subclass."""

    @abc.abstractmethod
    def name(self, i: int) -> str:  # "<file>: demo <group>", what errors name
        """Implemented by each subclass."""

    @abc.abstractmethod
    def instruction(self, i: int) -> str:
        """Implemented by each subclass."""

    @abc.abstractmethod
    def success(self, i: int) -> bool:
        """Implemented by each subclass."""

    def masks(self) -> dict[str, list[int]]:  # split → demo indices, from the dataset's own masks ({} if none)
        return {}


class HDF5Store(Store):
    """A rho HDF5 dataset, read lazily through cached h5py handles (safe in forked DataLoader workers)."""

    def __init__(self, path: str | Path) -> None:
        self.ds = Dataset(path)
        self.where = str(self.ds.path)
        self.lengths = self.ds.lengths
        self._instructions: dict[int, str] = {}

    def __getstate__(self) -> dict[str, Any]:  # spawn/forkserver workers: h5py handles do not pickle
        return {**self.__dict__, "ds": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.ds = Dataset(self.where)

    def arrays(self, i: int) -> Mapping[str, Any]:
        return self.ds.datasets(i)

    @property
    def action_mode(self) -> str:
        """What the demos' `actions` mean as an env action.mode: env_args["action_mode"] (format v2: the executed
        joint targets, whatever the expert drove), else the recording env's action.mode (older files)."""
        args = self.ds.env_args()
        return str(args.get("action_mode") or args.get("env_config", {}).get("action", {}).get("mode", "joint_pos"))

    @property
    def embodiment(self) -> str:
        """Robot and action meaning, e.g. "aloha/joint_pos": sources that share it share normalization."""
        robot = self.ds.env_args().get("env_config", {}).get("robot") or "unknown"
        return f"{robot}/{self.action_mode}"

    def name(self, i: int) -> str:
        d = self.ds.demos[i]
        return f"{d.file}: demo {d.group}"

    def instruction(self, i: int) -> str:
        if i not in self._instructions:
            self._instructions[i] = str(self.ds.group(i).attrs.get("instruction", ""))
        return self._instructions[i]

    def success(self, i: int) -> bool:
        return self.ds.demos[i].success

    def masks(self) -> dict[str, list[int]]:
        names = _read_masks(self.ds.path)
        pos = {d.group: i for i, d in enumerate(self.ds.demos)}
        return {k: sorted(pos[n] for n in v if n in pos) for k, v in names.items() if v}


def _read_masks(path: Path) -> dict[str, list[str]]:
    """mask/train and mask/valid demo names: from the manifest of a directory, or the file's mask group."""
    if path.is_dir():
        manifest = path / MANIFEST
        if manifest.exists():
            return {k: list(v) for k, v in json.loads(manifest.read_text()).get("mask", {}).items()}
        return {}
    with h5py.File(path, "r") as f:
        grp = f.get("mask")
        if grp is None or grp.attrs.get("default", 0):  # the writer's default split: data.valid_fraction decides
            return {}
        return {k: [n.decode() if isinstance(n, bytes) else str(n) for n in grp[k][()]] for k in grp}


class EpisodeStore(Store):
    """Episodes held in memory (a LeRobot dataset imported with `rho.datagen.lerobot.import_lerobot`)."""

    def __init__(self, episodes: list[Any], where: str) -> None:
        self.episodes, self.where = episodes, where
        self.lengths = np.array([e.num_samples for e in episodes], dtype=np.int64)
        self._arrays = [{**{f"obs/{k}": v for k, v in e.obs.items()}, "actions": e.actions} for e in episodes]

    @classmethod
    def from_lerobot(cls, path: str | Path) -> EpisodeStore:
        from rho.datagen.lerobot import import_lerobot

        return cls(import_lerobot(path), str(path))

    def arrays(self, i: int) -> Mapping[str, Any]:
        return self._arrays[i]

    action_mode = "joint_pos"  # LeRobot datasets (ALOHA-class) hold absolute joint targets

    @property
    def embodiment(self) -> str:
        robot = next((e.meta.get("robot_type") for e in self.episodes if e.meta.get("robot_type")), None)
        return f"{robot or 'unknown'}/joint_pos"

    def name(self, i: int) -> str:
        return f"{self.where}: episode {self.episodes[i].meta.get('episode_index', i)}"

    def instruction(self, i: int) -> str:
        return str(self.episodes[i].meta.get("instruction", ""))

    def success(self, i: int) -> bool:
        return bool(self.episodes[i].success)


EE_STATE_KEY = "joint_ee"  # an ee_pose policy's proprio: joint_pos + TCP pose per arm (`rho.sim.ik.joint_ee_state`)


class EEPoseStore(Store):
    """Another store's demos with `actions` relabelled from absolute joint targets to the absolute TCP poses they
    reach (`BatchedEnv.tcp_pose_of`: position m world, 6-D rotation, gripper per arm), all computed once here by
    forward kinematics in a copy of the recording env, and with the proprio such a policy sees, `obs/joint_ee`
    (joint positions + the measured TCP pose per arm; inference builds the same from the env's obs); everything
    else is the wrapped store's."""

    action_mode = "ee_pose"

    def __init__(self, base: Store, label: str) -> None:
        from rho.datagen.relabel import replay_env

        mode = str(getattr(base, "action_mode", "joint_pos"))
        args = base.ds.env_args() if isinstance(base, HDF5Store) else {}
        first = base.arrays(0) if base.num_demos else {}
        missing = [k for k in ("obs/joint_pos", "obs/ee_pose") if k not in first]
        if missing:
            raise DataError(f"source {label!r} ({base.where}): actions=ee_pose needs {missing} for the policy's "
                            "proprio (joint positions + measured TCP pose). Fix: regenerate with rho datagen, or "
                            "actions=stored")
        if mode != "joint_pos" or "task" not in args:
            raise DataError(f"source {label!r} ({base.where}): actions=ee_pose relabels recorded absolute joint "
                            f"targets by forward kinematics in the recording env, but its actions are {mode!r} and "
                            f"its env_args {'name' if 'task' in args else 'lack'} the task. Fix: a rho sim dataset "
                            "(format v2; `rho dataset convert` for older ones), or actions=stored")
        self.base, self.where, self.lengths = base, base.where, base.lengths
        env = replay_env(args, "ee_pose")
        self._actions, self._state = [], []
        try:
            for i in range(base.num_demos):
                arr = base.arrays(i)
                self._actions.append(env.tcp_pose_of(np.asarray(arr["actions"][()])))
                self._state.append(joint_ee_state(arr["obs/joint_pos"][()], arr["obs/ee_pose"][()]))
        finally:
            env.close()
        self._robot = args.get("env_config", {}).get("robot") or "unknown"

    @property
    def embodiment(self) -> str:
        return f"{self._robot}/ee_pose"

    @property
    def ds(self) -> Any:  # the wrapped HDF5 dataset (frame cache keys, env_args)
        return self.base.ds

    def arrays(self, i: int) -> Mapping[str, Any]:
        return {**self.base.arrays(i), "actions": self._actions[i], "obs/" + EE_STATE_KEY: self._state[i]}

    def name(self, i: int) -> str:
        return self.base.name(i)

    def instruction(self, i: int) -> str:
        return self.base.instruction(i)

    def success(self, i: int) -> bool:
        return self.base.success(i)

    def masks(self) -> dict[str, list[int]]:
        return self.base.masks()


def open_store(cfg: SourceCfg) -> Store:
    """The store for a source path: `kind` or, for auto, what is on disk."""
    path = Path(cfg.path)
    if not path.exists():
        raise DataError(f"source {cfg.label!r}: {path} does not exist (expected a rho .hdf5 file or shard directory,"
                        " or a LeRobot folder). Fix: correct data.sources[].path")
    kind = cfg.kind
    if kind == "auto":
        if path.is_file() or (path / MANIFEST).exists() or any(path.glob(SHARD_GLOB)):
            kind = "hdf5"
        elif (path / "meta/info.json").exists():
            kind = "lerobot"
        else:
            raise DataError(f"source {cfg.label!r}: {path} is neither a rho dataset (no {MANIFEST} or {SHARD_GLOB}) "
                            "nor a LeRobot dataset (no meta/info.json). Fix: point the path at one, or set kind")
    return HDF5Store(path) if kind == "hdf5" else EpisodeStore.from_lerobot(path)


# ------------------------------------------------------------------------------------------------ sources
@dataclass
class Modalities:
    """What a source provides, by policy name → source key (None: absent, masked)."""

    state: str | None
    cameras: dict[str, str | None]
    touch: dict[str, str] | None  # pad → obs key of taxels (all pads or none)
    touch_net: dict[str, str] | None
    touch_samples: int = 0  # touch samples per control step in the source


class Source:
    """One opened source: its store, adapter, train/valid demos and normalization statistics."""

    def __init__(self, cfg: SourceCfg, index: int, layout: Layout, valid_fraction: float, seed: int,
                 store: Store | None = None) -> None:
        self.cfg, self.index, self.layout, self.name = cfg, index, layout, cfg.label
        self.store = store if store is not None else open_store(cfg)
        self.adapter = Adapter.from_cfg(cfg.adapter)
        if cfg.actions == "ee_pose":
            self.store = EEPoseStore(self.store, cfg.label)
            if self.adapter.state_key == "joint_pos":
                self.adapter = dataclasses.replace(self.adapter, state_key=EE_STATE_KEY)
        demos = self._usable_demos()
        self.modalities = self._modalities(demos[0])
        self._check_schema(demos)
        self.demos = self._split(demos, valid_fraction, seed)
        self._cum = {k: np.concatenate([[0], np.cumsum(self.store.lengths[v])]) for k, v in self.demos.items()}
        self._steps = self._intervention_steps() if cfg.steps == "intervention" else None
        self.embodiment = cfg.embodiment or str(getattr(self.store, "embodiment", "unknown/joint_pos"))
        self.stats: dict[str, Stats] = {}  # this source's own statistics (set by compute_stats or a checkpoint)
        self.norm: dict[str, Stats] = {}  # what its samples are normalized with (its embodiment's, own, target's)
        self.frames: FrameCache | None = None  # resized frames (build_sources sets it when data.frame_cache)
        self.staleness = 0  # training draws: images up to this many steps older than the state
        self.aux = self._aux_keys(demos[0])  # (obs key, slice) of each auxiliary target
        self.aux_mean, self.aux_std = self._aux_moments() if self.aux else (None, None)

    # -- demos
    def _usable_demos(self) -> list[int]:
        n = self.store.num_demos
        demos = [i for i in range(n) if self.store.success(i) or not self.cfg.only_success]
        demos = demos[: self.cfg.max_demos] if self.cfg.max_demos else demos
        if not demos:
            raise DataError(f"source {self.name!r} ({self.store.where}): no usable demos ({n} in the dataset, "
                            f"only_success={self.cfg.only_success}). Fix: check the path or set only_success=false")
        return demos

    def _split(self, demos: list[int], valid_fraction: float, seed: int) -> dict[str, np.ndarray]:
        """Demos per split: the dataset's mask/train and mask/valid when it has them (`rho dataset split`), else
        a seeded `valid_fraction` of the demos held out."""
        masks = self.store.masks()
        keep = set(demos)
        base = [i for i in masks["train"] if i in keep] if masks.get("train") else demos
        if masks.get("valid"):
            valid = [i for i in masks["valid"] if i in keep]
            train = sorted(set(base) - set(valid))
        else:
            order = np.random.default_rng([seed, self.index, 7]).permutation(len(base))
            n_valid = round(valid_fraction * len(base))
            valid = sorted(base[j] for j in order[:n_valid])
            train = sorted(base[j] for j in order[n_valid:])
        if not train:
            raise DataError(f"source {self.name!r}: no training demos left after holding out {len(valid)} for "
                            "validation. Fix: lower data.valid_fraction or add demos")
        return {"train": np.asarray(train, np.int64), "valid": np.asarray(valid, np.int64)}

    def _intervention_steps(self) -> dict[str, np.ndarray]:
        """Per split: (frames, 2) int64 (demo index, step) of the steps whose `intervention` flag is set."""
        out = {}
        for split, demos in self.demos.items():
            rows = []
            for i in demos:
                arr = self.store.arrays(int(i))
                if "intervention" not in arr:
                    raise DataError(f"source {self.name!r}: steps=intervention, but {self.store.name(int(i))} has no "
                                    "per-step `intervention` flag (only `rho online` recordings do). Fix: "
                                    "steps=all for this source")
                t = np.flatnonzero(np.asarray(arr["intervention"][()]).reshape(-1))
                rows.append(np.stack([np.full(len(t), i), t], 1))
            out[split] = np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 2), np.int64)
        return out

    def num_frames(self, split: str) -> int:
        return len(self._steps[split]) if self._steps is not None else int(self._cum[split][-1])

    def locate(self, split: str, frame: int) -> tuple[int, int]:
        """Frame number within the split → (demo index in the store, step)."""
        if self._steps is not None:
            demo, t = self._steps[split][frame]
            return int(demo), int(t)
        j = int(np.searchsorted(self._cum[split], frame, side="right") - 1)
        return int(self.demos[split][j]), frame - int(self._cum[split][j])

    # -- schema
    def _modalities(self, demo: int) -> Modalities:
        keys = set(self.store.arrays(demo))
        ad = self.adapter
        state = f"obs/{ad.state_key}" if f"obs/{ad.state_key}" in keys else None
        cams = {c: (f"obs/rgb_{ad.camera(c)}" if f"obs/rgb_{ad.camera(c)}" in keys else None)
                for c in self.layout.cameras}
        taxels = {p: f"obs/touch_{ad.pad(p)}" for p in self.layout.pads}
        nets = {p: f"obs/touch_net_{ad.pad(p)}" for p in self.layout.pads}
        has_touch = bool(self.layout.pads) and all(k in keys for k in (*taxels.values(), *nets.values()))
        samples = int(self.store.arrays(demo)[taxels[self.layout.pads[0]]].shape[1]) if has_touch else 0
        return Modalities(state, cams, taxels if has_touch else None, nets if has_touch else None, samples)

    def _aux_keys(self, demo: int) -> list[tuple[str, slice]]:
        """Parse and check `aux` against the layout's aux_dim and the first demo's keys."""
        if not self.cfg.aux or not self.layout.aux_dim:
            return []
        arr, out, dim = self.store.arrays(demo), [], 0
        for spec in self.cfg.aux:
            m = _AUX_SPEC.fullmatch(spec.strip())
            if not m:
                raise DataError(f"source {self.name!r}: aux entry {spec!r} is not '<obs key>' or "
                                "'<obs key>[start:stop]'. Fix: e.g. aux=[block_pose[0:3]]")
            key = f"obs/{m['key']}"
            if key not in arr or len(arr[key].shape) != 2:
                have = sorted(k[4:] for k in arr if k.startswith("obs/") and len(arr[k].shape) == 2)
                raise DataError(f"source {self.name!r}: aux key {m['key']!r} is not a (T, D) obs of "
                                f"{self.store.name(demo)}; low-dim obs there: {have}")
            sl = slice(int(m["start"] or 0), int(m["stop"]) if m["stop"] else None)
            dim += len(range(*sl.indices(int(arr[key].shape[1]))))
            out.append((key, sl))
        if dim > self.layout.aux_dim:
            raise DataError(f"source {self.name!r}: aux {self.cfg.aux} has {dim} values, policy.aux_dim is "
                            f"{self.layout.aux_dim}. Fix: policy.aux_dim={dim} (or more)")
        return out

    def _aux_raw(self, arr: Mapping[str, Any], t: int | slice) -> np.ndarray:
        return np.concatenate([np.asarray(arr[k][t], np.float32)[..., sl] for k, sl in self.aux], -1)

    def _aux_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (floored at 1 mm-scale 1e-3) of the aux targets over the training demos."""
        x = np.concatenate([self._aux_raw(self.store.arrays(int(i)), slice(None)) for i in self.demos["train"]])
        return x.mean(0), np.maximum(x.std(0), 1e-3)

    def expected_shapes(self, demo: int) -> dict[str, tuple[int, ...] | None]:
        """Per key, the per-step shape every demo must have (None: any image size, checked as (H, W, 3))."""
        arr, m, L = self.store.arrays(demo), self.modalities, self.layout
        out: dict[str, tuple[int, ...] | None] = {"actions": tuple(arr["actions"].shape[1:]) if "actions" in arr
                                                  else ()}
        if m.state:
            out[m.state] = tuple(arr[m.state].shape[1:])
        for key in (m.touch or {}).values():
            out[key] = (m.touch_samples, *L.taxel_shape, 3)
        for key in (m.touch_net or {}).values():
            out[key] = (3,)
        out.update({key: None for key in m.cameras.values() if key})
        return out

    def _check_schema(self, demos: list[int]) -> None:
        """Keys, per-step shapes and lengths of every demo (metadata only), then the adapter's dimensions."""
        want = self.expected_shapes(demos[0])
        for i in demos:
            arr, n = self.store.arrays(i), int(self.store.lengths[i])
            for key, shape in want.items():
                if key not in arr:
                    raise DataError(f"{self.store.name(i)}: missing {key!r} (source {self.name!r}; its first demo has "
                                    "it). Fix: regenerate the demo, or drop it (max_demos / mask)")
                got = tuple(arr[key].shape)
                bad = got[1:] != shape if shape is not None else (len(got) != 4 or got[-1] != 3)
                if bad or got[0] != n:
                    what = f"(T={n}, {', '.join(map(str, shape))})" if shape is not None else f"(T={n}, H, W, 3)"
                    raise DataError(f"{self.store.name(i)}: {key} has shape {got}, expected {what} (source "
                                    f"{self.name!r}). Fix: regenerate the demo or fix the adapter / policy layout")
        self._check_dims(want)

    def _check_dims(self, want: dict[str, tuple[int, ...] | None]) -> None:
        problems = self.adapter.action.problems("action", _last(want["actions"]), self.layout.action_dim)
        if self.modalities.state:
            problems += self.adapter.state.problems("state", _last(want[self.modalities.state]),
                                                    self.layout.proprio_dim)
        if problems and isinstance(self.store, EEPoseStore):
            a = _last(want["actions"])
            p = _last(want[self.modalities.state]) if self.modalities.state else self.layout.proprio_dim
            problems = [f"actions=ee_pose gives {a}-D actions and {p}-D proprio (joint positions + TCP pose per "
                        f"arm), the policy expects {self.layout.action_dim} and {self.layout.proprio_dim}. Fix: "
                        f"policy.action_dim={a} policy.proprio_dim={p}"]
        if problems:
            raise DataError(f"source {self.name!r} ({self.store.where}): " + "; ".join(problems))

    # -- reading
    def read(self, demo: int, t: int, rng: np.random.Generator | None, augment: AugmentCfg | None) -> dict[str, Any]:
        """One sample: the frame t of `demo`, adapted, checked, normalized and (when `augment`) augmented."""
        arr, L, m = self.store.arrays(demo), self.layout, self.modalities
        on = augment is not None and rng is not None
        touch_aug = augment.touch if on and augment.touch.enabled and m.touch else None
        img_aug = augment.image if on and augment.image.enabled else None
        raw = self._read_raw(arr, demo, t)
        self._check_finite(raw, demo, t)
        if touch_aug is not None:  # gain and dropout act on forces (N), noise on the normalized signal
            _augment_touch_raw(raw, touch_aug, rng)
        out = self._normalized(raw)
        if touch_aug is not None:
            _add_touch_noise(out, touch_aug.noise_std, rng)
        t_img = max(0, t - int(rng.integers(0, self.staleness + 1))) if on and self.staleness else t
        out["images"] = {c: (frame_to_tensor(self._frame(arr, c, k, demo, t_img), img_aug, rng) if k else
                             torch.zeros(3, L.image_size, L.image_size)) for c, k in m.cameras.items()}
        out["image_mask"] = {c: k is not None for c, k in m.cameras.items()}
        out["instruction"] = self.cfg.instruction or self.store.instruction(demo)
        out["source"] = self.index
        if L.aux_dim:  # z-scored targets padded to aux_dim; the mask says which are real
            aux, mask = np.zeros(L.aux_dim, np.float32), np.zeros(L.aux_dim, bool)
            if self.aux:
                a = (self._aux_raw(arr, t) - self.aux_mean) / self.aux_std
                aux[: len(a)], mask[: len(a)] = a, True
            out["aux"], out["aux_mask"] = aux, mask
        return out

    def _frame(self, arr: Mapping[str, Any], cam: str, key: str, demo: int, t: int) -> np.ndarray:
        """(s, s, 3) uint8 at the policy's resolution: from the frame cache, or resized now (same function)."""
        if self.frames is not None and self.frames.has(cam):
            return self.frames.get(cam, demo, t)
        try:
            img = np.asarray(arr[key][t])
        except (OSError, ValueError) as e:  # a corrupted chunk: name the file, demo and step
            raise DataError(f"{self.store.name(demo)}: {key} step {t} cannot be read ({e}). Fix: regenerate the "
                            f"demo; `rho dataset check {self.store.where}` lists every problem") from e
        return resize_frames(img[None], self.layout.image_size)[0]

    def _read_raw(self, arr: Mapping[str, Any], demo: int, t: int) -> dict[str, np.ndarray]:
        """Adapted raw values: actions (H, A) padded by repeating the last one, proprio (D,), touch (P, S, r, c, 3),
        touch_net (P, 3)."""
        L, m, n = self.layout, self.modalities, int(self.store.lengths[demo])
        end = min(t + L.horizon, n)
        chunk = np.asarray(arr["actions"][t:end])
        pad = L.horizon - len(chunk)
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)]) if pad else chunk
        raw = {"actions": self.adapter.action(chunk), "action_pad": np.arange(L.horizon) >= end - t}
        if m.state:
            raw["proprio"] = self.adapter.state(np.asarray(arr[m.state][t]))
        if m.touch and m.touch_net:
            raw["touch"] = np.stack([_touch_history(arr[m.touch[p]], t, L.touch_history) for p in L.pads])
            raw["touch_net"] = np.stack([np.asarray(arr[m.touch_net[p]][t], np.float32) for p in L.pads])
        return raw

    def _check_finite(self, raw: dict[str, np.ndarray], demo: int, t: int) -> None:
        for key in ("actions", "proprio", "touch", "touch_net"):
            if key in raw and not np.isfinite(raw[key]).all():
                raise DataError(f"{self.store.name(demo)}: {key} has NaN or inf at step {t} (source {self.name!r}). "
                                f"Fix: regenerate or drop the demo; `rho dataset check {self.store.where}` lists "
                                "every problem")

    def _normalized(self, raw: dict[str, np.ndarray]) -> dict[str, Any]:
        L, out = self.layout, {}
        out["actions"] = self.norm["actions"].normalize(raw["actions"])
        out["action_pad"] = raw["action_pad"]
        for key, shape in (("proprio", (L.proprio_dim,)), ("touch", (len(L.pads), L.touch_history, *L.taxel_shape, 3)),
                           ("touch_net", (len(L.pads), 3))):
            present = key in raw
            out[key] = self.norm[key].normalize(raw[key]) if present else np.zeros(shape, np.float32)
            if key != "touch_net":
                out[f"{key}_mask"] = present
        return out


_AUX_SPEC = re.compile(r"(?P<key>[A-Za-z0-9_./-]+)(\[(?P<start>\d*):(?P<stop>\d*)\])?")


def _last(shape: tuple[int, ...] | None) -> int:
    return int(shape[-1]) if shape else 1


def _touch_history(arr: Any, t: int, history: int) -> np.ndarray:
    """The last `history` touch samples up to step t, oldest first: (S, r, c, 3). A step holds S_src samples; at the
    episode start the first sample is repeated."""
    per_step = int(arr.shape[1])
    steps = math.ceil(history / per_step)
    x = np.asarray(arr[max(0, t - steps + 1): t + 1], np.float32)
    x = x.reshape(-1, *x.shape[2:])[-history:]
    return np.concatenate([np.repeat(x[:1], history - len(x), 0), x]) if len(x) < history else x


# ------------------------------------------------------------------------------------------------ statistics
def compute_stats(source: Source, max_demos: int, seed: int) -> dict[str, Stats]:
    """Mean/std of the adapted actions, proprio, touch (one scalar) and touch_net (per component, pooled over
    pads) over up to `max_demos` training demos; every value read is checked for NaN/inf."""
    demos = source.demos["train"]
    if max_demos and len(demos) > max_demos:
        demos = np.sort(np.random.default_rng([seed, source.index, 11]).choice(demos, max_demos, replace=False))
    acc = {k: _Moments() for k in MODALITIES}
    m = source.modalities
    for i in demos:
        arr = source.store.arrays(int(i))
        raw = {"actions": source.adapter.action(np.asarray(arr["actions"][()]))}
        if m.state:
            raw["proprio"] = source.adapter.state(np.asarray(arr[m.state][()]))
        if m.touch and m.touch_net:
            raw["touch"] = np.stack([np.asarray(arr[k][()], np.float32) for k in m.touch.values()])
            raw["touch_net"] = np.stack([np.asarray(arr[k][()], np.float32) for k in m.touch_net.values()])
        for key, x in raw.items():
            if not np.isfinite(x).all():
                raise DataError(f"{source.store.name(int(i))}: {key} has NaN or inf (source {source.name!r}). Fix: "
                                f"regenerate or drop the demo; `rho dataset check {source.store.where}` lists every "
                                "problem")
            acc[key].add(x.reshape(-1, 1) if key == "touch" else x.reshape(-1, x.shape[-1]))
    return {k: s for k, v in acc.items() if (s := v.stats()) is not None}


def embodiment_stats(sources: Sequence[Source]) -> dict[str, dict[str, Stats]]:
    """Per embodiment, per modality: the statistics pooled over every source of that embodiment that has it."""
    groups: dict[str, list[Source]] = {}
    for s in sources:
        groups.setdefault(s.embodiment, []).append(s)
    return {e: {k: pool_stats([s.stats[k] for s in g if k in s.stats]) for k in MODALITIES
                if any(k in s.stats for s in g)} for e, g in groups.items()}


def target_embodiment(sources: Sequence[Source], target: str = "") -> str:
    """The embodiment of the target source (default: the first)."""
    name = target or sources[0].name
    return next(s.embodiment for s in sources if s.name == name)


def target_norm_stats(sources: Sequence[Source], target: str = "",
                      emb: dict[str, dict[str, Stats]] | None = None) -> dict[str, Stats]:
    """The deployed embodiment's statistics (pooled over its sources), per modality; a modality it lacks (touch on
    real data) from the first other embodiment that has it. `emb`: `embodiment_stats(sources)` when at hand."""
    emb = emb if emb is not None else embodiment_stats(sources)
    tgt = target_embodiment(sources, target)
    order = [tgt, *(s.embodiment for s in sources if s.embodiment != tgt)]
    out: dict[str, Stats] = {}
    for key in MODALITIES:
        found = next((emb[e][key] for e in order if key in emb[e]), None)
        if found is not None:
            out[key] = found
    return out


def assign_norm(sources: Sequence[Source], mode: str, target: str = "") -> dict[str, Stats]:
    """Set what each source normalizes with (its embodiment's pooled stats, its own, or the target's); returns the
    target stats."""
    emb = embodiment_stats(sources)
    tgt = target_norm_stats(sources, target, emb)
    for s in sources:
        own = {"per_embodiment": emb[s.embodiment], "per_source": s.stats, "target": {}}[mode]
        s.norm = {**s.stats, **tgt} if mode == "target" else {**tgt, **own}
    return tgt


def build_sources(cfg: DataCfg, layout: Layout, seed: int,
                  stats: Mapping[str, Mapping[str, Any]] | None = None) -> list[Source]:
    """Open every source, then give each its statistics: `stats` (name → norm_stats JSON, from a checkpoint) or
    computed from the data."""
    sources = [Source(c, i, layout, cfg.valid_fraction, seed) for i, c in enumerate(cfg.source_cfgs())]
    for s in sources:
        if stats is not None:
            if s.name not in stats:
                raise DataError(f"source {s.name!r} has no saved statistics (the checkpoint has {sorted(stats)}). "
                                "Fix: resume with the data config the run started with")
            s.stats = stats_from_json(stats[s.name])
        else:
            s.stats = compute_stats(s, cfg.stats_max_demos, seed)
        s.staleness = cfg.image_staleness
        if cfg.frame_cache:
            s.frames = FrameCache.build(s.store, s.modalities.cameras, layout.image_size, cfg.frame_cache, log=_log)
    assign_norm(sources, cfg.normalize, cfg.target)
    check_instructions(sources, layout.max_text_tokens, layout.tokenizer)
    return sources


def _log(msg: str) -> None:
    print(msg, flush=True)


def check_instructions(sources: Sequence[Source], max_tokens: int, tokenizer: str = "words") -> None:
    """Refuse data whose instructions the builtin tokenizer (rho.policy.text) would cut: a cut instruction loses
    what tells tasks apart (plug types), silently."""
    if max_tokens <= 0:
        return
    longest, where = 0, ""
    for s in sources:
        for i in (*s.demos["train"], *s.demos["valid"]):
            text = s.cfg.instruction or s.store.instruction(int(i))
            n = len(tokens_of(tokenizer, text))
            if n > longest:
                longest, where = n, f"{s.store.name(int(i))}: {text!r}"
    if longest > max_tokens:
        raise DataError(f"the longest instruction needs {longest} {tokenizer} tokens ({where}), "
                        f"policy.backbone.max_text_tokens is "
                        f"{max_tokens}: it would be cut. Fix: policy.backbone.max_text_tokens={longest} (or more)")


# ------------------------------------------------------------------------------------------------ augmentation
def image_to_tensor(img: np.ndarray, size: int, aug: ImageAugCfg | None = None,
                    rng: np.random.Generator | None = None) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, size, size) float32 in [0, 1]: `resize_frames` (what inference does), then the
    augmentation of `frame_to_tensor`."""
    return frame_to_tensor(resize_frames(np.asarray(img)[None], size)[0], aug, rng)


def frame_to_tensor(frame: np.ndarray, aug: ImageAugCfg | None = None,
                    rng: np.random.Generator | None = None) -> torch.Tensor:
    """(s, s, 3) uint8 at the policy's resolution → (3, s, s) float32 in [0, 1]; with `aug`: random shift
    (edge-padded), optional random resized crop back to s, colour jitter. Without: exactly what inference feeds."""
    x = torch.tensor(frame).permute(2, 0, 1).float().div_(255.0)  # (3, s, s); a copy (cache frames are read-only)
    if aug is None or rng is None:
        return x
    size = x.shape[-1]
    if aug.crop_scale[0] < 1.0:
        x = _random_crop(x, aug, rng)
        x = functional.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True,
                                   align_corners=False)[0]
    if aug.shift > 0:
        p = aug.shift
        padded = functional.pad(x[None], (p, p, p, p), mode="replicate")[0]
        dy, dx = (int(v) for v in rng.integers(0, 2 * p + 1, size=2))
        x = padded[:, dy:dy + size, dx:dx + size]
    return _color_jitter(x, aug, rng).clamp_(0.0, 1.0)


def _random_crop(x: torch.Tensor, aug: ImageAugCfg, rng: np.random.Generator) -> torch.Tensor:
    _, h, w = x.shape
    area = rng.uniform(*aug.crop_scale) * h * w
    ratio = math.exp(rng.uniform(math.log(aug.crop_ratio[0]), math.log(aug.crop_ratio[1])))
    cw = min(max(round(math.sqrt(area * ratio)), 1), w)
    ch = min(max(round(math.sqrt(area / ratio)), 1), h)
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return x[:, top:top + ch, left:left + cw]


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_RGB = torch.linalg.inv(_YIQ)
_GREY = _YIQ[0]  # luma weights


def _color_jitter(x: torch.Tensor, aug: ImageAugCfg, rng: np.random.Generator) -> torch.Tensor:
    """Brightness b, contrast c (around the mean grey), saturation s (around each pixel's grey) and hue (a rotation
    of the YIQ chroma plane), folded into one affine colour map y = M x + o: one pass over the pixels."""
    b, c, s = (float(rng.uniform(1 - v, 1 + v)) for v in (aug.brightness, aug.contrast, aug.saturation))
    theta = 2 * math.pi * float(rng.uniform(-aug.hue, aug.hue))
    cos, sin = math.cos(theta), math.sin(theta)
    hue = _RGB @ torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]]) @ _YIQ
    sat = s * torch.eye(3) + (1 - s) * torch.ones(3, 1) * _GREY  # x ↦ s·x + (1 - s)·grey(x)
    mean_grey = float(_GREY @ x.mean((1, 2))) * b  # after brightness
    m = hue @ sat * (c * b)
    o = hue @ sat @ torch.full((3,), (1 - c) * mean_grey)
    return (torch.einsum("ij,jhw->ihw", m, x) + o[:, None, None]).clamp_(0.0, 1.0)


def _augment_touch_raw(raw: dict[str, np.ndarray], aug: TouchAugCfg, rng: np.random.Generator) -> None:
    """Raw forces: per-pad gain, dead taxels (0 N over the whole history), dead pads (taxels and net 0 N)."""
    touch, net = raw["touch"], raw["touch_net"]  # (P, S, r, c, 3), (P, 3)
    pads = touch.shape[0]
    gain = rng.uniform(1 - aug.gain, 1 + aug.gain, size=pads).astype(np.float32)
    alive = (rng.random(pads) >= aug.pad_dropout).astype(np.float32)
    taxel = (rng.random((pads, 1, *touch.shape[2:4], 1)) >= aug.taxel_dropout).astype(np.float32)
    raw["touch"] = touch * (gain * alive)[:, None, None, None, None] * taxel
    raw["touch_net"] = net * (gain * alive)[:, None]


def _add_touch_noise(out: dict[str, Any], std: float, rng: np.random.Generator) -> None:
    if std > 0:
        for key in ("touch", "touch_net"):
            out[key] = (out[key] + rng.normal(0.0, std, out[key].shape)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ mixture
class MixtureDataset(TorchDataset):
    """Draw k → one sample. The source is picked by weight, the frame uniformly within it, both (and every
    augmentation) from a generator seeded by (seed, split, k): the same draw gives the same sample anywhere."""

    def __init__(self, sources: Sequence[Source], split: str = "train", seed: int = 0,
                 augment: AugmentCfg | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.sources, self.split, self.seed, self.augment = list(sources), split, seed, augment
        w = np.array([s.cfg.weight if s.num_frames(split) else 0.0 for s in self.sources], np.float64)
        self.probs = w / w.sum() if w.sum() > 0 else w
        self._cum = np.cumsum(self.probs)

    @property
    def empty(self) -> bool:
        return not self.probs.sum() > 0

    def draw(self, k: int) -> tuple[np.random.Generator, int, int, int]:
        """(generator for the rest of the sample, source, demo, step) of draw k."""
        if self.empty:
            raise DataError(f"no {self.split} demos in any source. Fix: set data.valid_fraction > 0 or add "
                            "mask/valid to a dataset (`rho dataset split`)")
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), int(k)])
        s = min(int(np.searchsorted(self._cum, rng.random(), side="right")), len(self.sources) - 1)
        while self.probs[s] == 0:  # float rounding at the top end of the cumulative sum
            s -= 1
        src = self.sources[s]
        demo, t = src.locate(self.split, int(rng.integers(src.num_frames(self.split))))
        return rng, s, demo, t

    def __getitem__(self, k: int) -> dict[str, Any]:
        rng, s, demo, t = self.draw(k)
        return self.sources[s].read(demo, t, rng, self.augment)


class DrawSampler(Sampler[int]):
    """Draws start + rank, start + rank + world, ... (`count` of them, or forever): DDP sharding of the mixture."""

    def __init__(self, start: int = 0, rank: int = 0, world: int = 1, count: int | None = None) -> None:
        self.start, self.rank, self.world, self.count = start, rank, world, count

    def __iter__(self) -> Iterator[int]:
        i = 0
        while self.count is None or i < self.count:
            yield self.start + self.rank + self.world * i
            i += 1

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError("an endless DrawSampler has no length")
        return self.count


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Samples → the batch the policy's `loss` takes (see the contract in policy/train.py's docstring)."""

    def stack(key: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.stack([s[key] for s in samples]), dtype=dtype)

    cams = list(samples[0]["images"])
    aux = {"aux": stack("aux"), "aux_mask": stack("aux_mask", torch.bool)} if "aux" in samples[0] else {}  # (B, X)
    return aux | {
        "images": {c: torch.stack([s["images"][c] for s in samples]) for c in cams},  # (B, 3, size, size)
        "image_mask": {c: torch.tensor([s["image_mask"][c] for s in samples]) for c in cams},  # (B,)
        "instruction": [s["instruction"] for s in samples],
        "proprio": stack("proprio"), "proprio_mask": stack("proprio_mask", torch.bool),  # (B, D), (B,)
        "touch": stack("touch"), "touch_net": stack("touch_net"),  # (B, P, S, r, c, 3), (B, P, 3)
        "touch_mask": stack("touch_mask", torch.bool),  # (B,)
        "actions": stack("actions"), "action_pad": stack("action_pad", torch.bool),  # (B, H, A), (B, H)
        "source": stack("source", torch.int64),  # (B,)
    }
