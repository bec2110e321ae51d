"""HDF5 datasets in the robomimic / Isaac Lab Mimic layout, written atomically per shard, read lazily.

One file (a shard, or a whole dataset):

    <file>.hdf5
    ├── attrs: format_version=2, producer="rho", task, created
    ├── data                                    attrs: total (samples), env_args (JSON: task, config, obs spec,
    │   │                                              action_mode="joint_pos", expert_action_mode; and what
    │   │                                              robomimic / Isaac Lab read: env_name, type=2, env_kwargs)
    │   ├── demo_0                              attrs: num_samples, success, attempt, episode_seed (= seed), task,
    │   │   │                                          instruction, randomization (JSON), expert, expert_version,
    │   │   │                                          source="sim", backend="mujoco", action_mode, ...
    │   │   ├── actions          (T, 14) float32          executed joint targets (joint_pos layout): train on these
    │   │   ├── expert_actions   (T, A)  float32          the expert's own command (sim demos only)
    │   │   ├── rewards          (T,)    float32
    │   │   ├── dones            (T,)    uint8
    │   │   ├── obs/
    │   │   │   ├── joint_pos    (T, 14) float32          rad / gripper opening
    │   │   │   ├── touch_left_a (T, S, r, c, 3) float32  N, S touch samples per control step
    │   │   │   ├── rgb_cam_high (T, H, W, 3) uint8       chunks of one frame, gzip
    │   │   │   └── ...          every key of the env's observation spec
    │   │   ├── states/sim       (T, nstate) float64      MuJoCo mjSTATE_INTEGRATION at obs t
    │   │   └── initial_state/sim (nstate,) float64
    │   └── demo_1 ...
    └── mask                                    train / valid: demo names (bytes)

A dataset directory holds shards `shard_w<worker>_<index>.hdf5` (each a file as above, demos named
`demo_<attempt>`) and `manifest.json` (the ordered demo list, config, counts). Shards are written as
`.<name>.tmp` and renamed when closed, so a killed run (even kill -9) leaves every closed shard intact and the
half-written one invisible. `Dataset` reads a directory or a single file the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .episode import Episode, attrs_to_meta, meta_to_attrs

FORMAT_VERSION = 2  # 2: `actions` are executed joint targets (joint_pos), the expert's command in `expert_actions`
MANIFEST = "manifest.json"
SHARD_GLOB = "shard_*.hdf5"
IMAGE_COMPRESSION = {"compression": "gzip", "compression_opts": 1}  # portable (any HDF5 reader); level 1: 2× faster writes than 4 for +18% size


class DatasetError(RuntimeError):
    """A dataset that cannot be read or written as asked; the message says why and how to fix it."""


# Chunk cache of every dataset read through a cached handle. HDF5 2.x's default is 8 MiB per open dataset, and a
# reader keeps thousands open (`Dataset.datasets` caches them per demo): building the frame cache of 200 plug demos
# (per-frame chunks of 48 KiB) grew the process by 2.0 GiB for one camera (0.8 GiB with 64 KiB caches, measured), and
# two training runs starting together on 3 cameras x 1 000 demos were killed for memory on a 24 GiB machine.
# 64 KiB holds a whole low-dim array's chunk or one image frame.
CHUNK_CACHE_BYTES = 64 << 10
ENV_TYPE_GYM = 2  # robomimic 0.3.0's EnvType.GYM_TYPE; Isaac Lab's HDF5DatasetFileHandler writes `type: 2` too


def consumer_env_args(args: dict[str, Any]) -> dict[str, Any]:
    """`args` (a dataset's env_args) plus the keys other readers look for, next to rho's own (values already there
    are kept): `env_name`, the gymnasium id of the task (robomimic's env_meta; Isaac Lab's `EpisodeData.env_id`),
    `type` (robomimic's EnvType: 2, gym, as Isaac Lab writes it) and `env_kwargs`, the env config less `num_envs`,
    so `gymnasium.make(env_name, **env_kwargs)` builds the env the data was recorded in. Data of no registered
    task (imported real data) get `env_name: ""` and `env_kwargs: {}`, as Isaac Lab writes for an unnamed env."""
    out = dict(args)
    cfg = args.get("env_config")
    out.setdefault("env_name", args.get("gym_id") or "")
    out.setdefault("type", ENV_TYPE_GYM)
    out.setdefault("env_kwargs", {k: v for k, v in cfg.items() if k != "num_envs"} if isinstance(cfg, dict) else {})
    return out


def dataset_env_args(path: str | Path) -> dict[str, Any]:
    """The env_args of a dataset without opening its demos: a directory's manifest (else its first shard), or a
    file's `data.attrs["env_args"]` — rho's native files and their robomimic exports alike."""
    p = Path(path)
    if p.is_dir():
        if (p / MANIFEST).exists():
            return json.loads((p / MANIFEST).read_text()).get("env_args", {})
        shards = sorted(p.glob(SHARD_GLOB))
        if not shards:
            raise DatasetError(f"{p}: a directory without {MANIFEST} or {SHARD_GLOB} files is not a dataset")
        p = shards[0]
    if not p.is_file():
        raise DatasetError(f"{p}: no such dataset (expected a .hdf5 file or a directory of shards)")
    try:
        with h5py.File(p, "r") as f:
            raw = f["data"].attrs.get("env_args") if "data" in f else None
    except OSError as e:
        raise DatasetError(f"{p}: not a readable HDF5 file ({e})") from e
    if raw is None:
        raise DatasetError(f"{p}: no data.attrs['env_args']: not a rho, robomimic or Isaac Lab dataset. Fix: pass a "
                           "dataset written by `rho datagen` (or its `rho dataset export-robomimic`)")
    return json.loads(raw)


def _v1_to_v2(f: h5py.File, **options: Any) -> dict[str, Any]:
    from .relabel import migrate_v1_to_v2

    return migrate_v1_to_v2(f, **options)


# Upgrades of an opened (writable) copy from format_version v to v + 1; `rho dataset convert` applies them in turn.
# Each takes the file and the convert options (keyword) and may return a report (a dict) of what it did.
MIGRATIONS: dict[int, Callable[..., dict[str, Any] | None]] = {1: _v1_to_v2}


def check_version(version: Any, where: str) -> None:
    """Refuse a file this rho cannot read, with the command that fixes it."""
    if version == FORMAT_VERSION:
        return
    if isinstance(version, np.integer):
        version = int(version)  # shown as 99, not np.int64(99)
    if isinstance(version, (int, np.integer)) and version > FORMAT_VERSION:
        fix = "it was written by a newer rho: upgrade (`pip install -U rho-sim`)"
    elif isinstance(version, (int, np.integer)) and all(v in MIGRATIONS for v in range(int(version), FORMAT_VERSION)):
        fix = f"convert it with `rho dataset convert {where} {'<out_dir>' if Path(where).is_dir() else '<out.hdf5>'}`"
    else:
        fix = "no conversion exists from it; regenerate the data with `rho datagen`"
    raise DatasetError(f"{where}: format_version {version!r} is not the version this rho reads ({FORMAT_VERSION}); "
                       f"{fix}.")


def convert(src: str | Path, out: str | Path, **options: Any) -> dict[str, Any]:
    """Rewrite an older-format dataset as the current format: a file into a new file, a dataset directory (shards +
    manifest) into a new directory. `options` go to the migrations (v1 → v2: `tol`, the largest state error a
    demo may replay with; see `rho.datagen.relabel`). Nothing is written at `out` unless every file converts."""
    src, out = Path(src), Path(out)
    if out.exists():
        raise DatasetError(f"{out} exists; convert writes a new {'directory' if src.is_dir() else 'file'}")
    if not src.exists():
        raise DatasetError(f"{src}: no such dataset (expected a .hdf5 file or a directory of shards)")
    if src.is_dir():
        if out.suffix in (".hdf5", ".h5"):
            raise DatasetError(f"{src} is a dataset directory; convert writes a directory like it, not {out.name}. "
                               f"Fix: `rho dataset convert {src} <out_dir>` (then `rho dataset merge` for one file)")
        return _convert_dir(src, out, options)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        report = _convert_file(src, tmp, options)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return {"out": str(out), **report}


def _convert_file(src: Path, dst: Path, options: dict[str, Any]) -> dict[str, Any]:
    shutil.copyfile(src, dst)
    reports: dict[str, Any] = {}
    with h5py.File(dst, "a") as f:
        version = int(f.attrs.get("format_version", -1))
        if version > FORMAT_VERSION or any(v not in MIGRATIONS for v in range(version, FORMAT_VERSION)):
            check_version(version, str(src))
        for v in range(version, FORMAT_VERSION):
            report = MIGRATIONS[v](f, **options)
            f.attrs["format_version"] = v + 1
            if report:
                reports[f"v{v}_to_v{v + 1}"] = report
        if "env_args" in f["data"].attrs:  # what robomimic / Isaac Lab read (env_name, type, env_kwargs)
            f["data"].attrs["env_args"] = json.dumps(consumer_env_args(json.loads(f["data"].attrs["env_args"])))
    return {"from_version": version, "to_version": FORMAT_VERSION, **reports}


def _convert_dir(src: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    shards = sorted(src.glob(SHARD_GLOB))
    if not shards:
        raise DatasetError(f"{src}: a directory without {SHARD_GLOB} files is not a dataset")
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        files = {s.name: _convert_file(s, tmp / s.name, options) for s in shards}
        if (src / MANIFEST).exists():
            m = json.loads((src / MANIFEST).read_text())
            first = tmp / (m["demos"][0]["file"] if m.get("demos") else shards[0].name)
            with h5py.File(first, "r") as f:
                m["env_args"] = json.loads(f["data"].attrs.get("env_args", "{}"))
            m["format_version"] = FORMAT_VERSION
            (tmp / MANIFEST).write_text(json.dumps(m, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, out)
    versions = sorted({r["from_version"] for r in files.values()})
    return {"out": str(out), "from_version": versions[0] if len(versions) == 1 else versions,
            "to_version": FORMAT_VERSION, "shards": files}


# ------------------------------------------------------------------------------------------------ writing
def write_episode(group: h5py.Group, ep: Episode) -> None:
    """Write one episode into `group` (an empty `data/demo_*` group)."""
    group.create_dataset("actions", data=ep.actions.astype(np.float32))
    if ep.expert_actions is not None:
        group.create_dataset("expert_actions", data=ep.expert_actions.astype(np.float32))
    for key, arr in ep.step_info.items():  # per-step flags (`rho online`: intervention, controller)
        if key in _DEMO_ENTRIES:
            raise ValueError(f"step_info key {key!r} would overwrite the demo's own {key!r}; rename it")
        group.create_dataset(key, data=arr)
    group.create_dataset("rewards", data=ep.rewards.astype(np.float32))
    group.create_dataset("dones", data=ep.dones.astype(np.uint8))
    obs = group.create_group("obs")
    for key, arr in ep.obs.items():
        if arr.dtype == np.uint8 and arr.ndim >= 3:  # images: one frame per chunk for random access
            obs.create_dataset(key, data=arr, chunks=(1, *arr.shape[1:]), **IMAGE_COMPRESSION)
        else:
            obs.create_dataset(key, data=arr)
    for name, states in (("states", ep.states), ("initial_state", ep.initial_state)):
        g = group.create_group(name)
        for key, arr in states.items():
            g.create_dataset(key, data=arr)
    meta = dict(ep.meta)
    if "episode_seed" in meta:  # Isaac Lab's reader takes an episode's seed from `seed`
        meta.setdefault("seed", int(meta["episode_seed"]))
    group.attrs.update(meta_to_attrs({**meta, "num_samples": ep.num_samples, "success": bool(ep.success)}))


def read_episode(group: h5py.Group, keys: list[str] | None = None) -> Episode:
    """Load a `demo_*` group into memory (only `keys` of obs when given)."""
    obs_keys = list(group["obs"]) if keys is None else keys
    meta = attrs_to_meta(group.attrs)
    return Episode(
        obs={k: group["obs"][k][()] for k in obs_keys},
        actions=group["actions"][()], rewards=group["rewards"][()], dones=group["dones"][()],
        states={k: v[()] for k, v in group.get("states", {}).items()},
        initial_state={k: v[()] for k, v in group.get("initial_state", {}).items()},
        success=bool(meta.pop("success", False)), meta=meta,
        expert_actions=group["expert_actions"][()] if "expert_actions" in group else None,
        step_info={k: v[()] for k, v in group.items() if k not in _DEMO_ENTRIES and isinstance(v, h5py.Dataset)})


# a demo group's own entries; any other dataset directly in it is a per-step flag (Episode.step_info)
_DEMO_ENTRIES = ("actions", "expert_actions", "rewards", "dones", "obs", "states", "initial_state")


DEFAULT_VALID_FRACTION = 0.1  # the default split's held-out share (at least one demo once there are two)


def default_split(names: list[str], valid_fraction: float = DEFAULT_VALID_FRACTION) -> dict[str, list[str]]:
    """A deterministic train/valid split of demo names: each name's CRC-32 decides, so a demo's side never depends
    on which other demos share its file (shards of one run split the same way as their merge)."""
    import zlib

    if len(names) < 2:
        return {"train": list(names), "valid": []}
    rank = sorted(names, key=lambda n: (zlib.crc32(n.encode()) % 1000, n))
    n_valid = max(1, round(valid_fraction * len(names)))
    valid = set(rank[:n_valid])
    return {"train": [n for n in names if n not in valid], "valid": [n for n in names if n in valid]}


def write_default_masks(f: h5py.File, names: list[str]) -> None:
    """mask/train and mask/valid with `default_split`, marked `mask.attrs["default"] = 1`: readers that need a
    split (robomimic's `--filter_key valid`) find one, while `rho train` keeps its own `data.valid_fraction` unless
    the split was chosen with `rho dataset split` (which clears the mark)."""
    if "mask" in f:
        del f["mask"]
    mask = f.create_group("mask")
    for k, v in default_split(names).items():
        mask.create_dataset(k, data=np.array(v, dtype="S"))
    mask.attrs["default"] = 1


class ShardWriter:
    """Appends episodes to a temporary shard file; `close()` renames it into place (atomic per shard).

    `attrs` are extra root attributes (JSON-able values are stored as JSON text)."""

    def __init__(self, path: Path, env_args: dict[str, Any], attrs: dict[str, Any] | None = None):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.env_args = env_args
        self.names: list[str] = []
        self.samples = 0
        self._f = h5py.File(self.tmp, "w")
        self._f.attrs.update({"format_version": FORMAT_VERSION, "producer": "rho", "task": env_args.get("task", ""),
                              "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        for k, v in (attrs or {}).items():
            self._f.attrs[k] = v if isinstance(v, (str, int, float)) else json.dumps(v)
        self._data = self._f.create_group("data")

    def add(self, ep: Episode, name: str) -> None:
        write_episode(self._data.create_group(name), ep)
        self.names.append(name)
        self.samples += ep.num_samples
        self._f.flush()

    def close(self) -> Path:
        self._data.attrs["total"] = self.samples
        self._data.attrs["env_args"] = json.dumps(consumer_env_args(self.env_args), default=str)
        write_default_masks(self._f, self.names)
        self._f.close()
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self._f.close()
        self.tmp.unlink(missing_ok=True)


def episode_nbytes(ep: Episode) -> int:
    """Bytes of an episode's arrays, uncompressed: an upper bound of what writing it adds to a file (images are
    stored gzip-compressed, the rest as is), HDF5's per-dataset overhead aside."""
    arrays = [ep.actions, ep.rewards, ep.dones, *ep.obs.values(), *ep.states.values(), *ep.initial_state.values()]
    if ep.expert_actions is not None:
        arrays.append(ep.expert_actions)
    return int(sum(np.asarray(a).nbytes for a in arrays))


def free_bytes(path: Path) -> int | None:
    """Bytes free for an unprivileged writer on the filesystem holding `path` (its nearest existing ancestor);
    None when that cannot be asked."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def mib(n: int | None) -> str:
    """`n` bytes for a message: "12.3 MiB" ("unknown" for None)."""
    return "unknown" if n is None else f"{n / 2**20:.1f} MiB"


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class DemoRef:
    file: Path
    group: str  # name inside data/
    num_samples: int
    success: bool
    attempt: int


class Dataset:
    """A dataset directory (shards + manifest) or a single HDF5 file, read lazily.

    `episode(i)` loads demo i; `frame(i)` returns the observation/action of global sample i without reading
    whole files (image datasets are chunked one frame per chunk). File handles open lazily per process, so a
    `Dataset` can be handed to DataLoader workers.
    """

    def __init__(self, path: str | Path, only_kept: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(f"{self.path}: no such dataset (expected a .hdf5 file or a directory of shards)")
        self.demos = self._index(only_kept)
        self.lengths = np.array([d.num_samples for d in self.demos], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self._handles: dict[Path, h5py.File] = {}
        self._dsets: dict[int, dict[str, h5py.Dataset]] = {}  # demo → key → dataset (h5py path lookups are slow)
        self._pid = os.getpid()

    # -- index
    def _index(self, only_kept: bool) -> list[DemoRef]:
        if self.path.is_file():
            return self._scan_file(self.path)
        manifest = self.path / MANIFEST
        if manifest.exists():
            m = json.loads(manifest.read_text())
            check_version(m.get("format_version"), str(self.path))
            refs = [DemoRef(self.path / d["file"], d["group"], d["num_samples"], d["success"], d["attempt"])
                    for d in m["demos"]]
            if only_kept:
                return refs
        demos = [r for f in sorted(self.path.glob(SHARD_GLOB)) for r in self._scan_file(f)]
        return sorted(demos, key=lambda r: r.attempt)

    @staticmethod
    def _scan_file(path: Path) -> list[DemoRef]:
        try:
            with h5py.File(path, "r") as f:
                check_version(f.attrs.get("format_version"), str(path))
                out = []
                for name, g in f["data"].items():
                    out.append(DemoRef(path, name, int(g.attrs["num_samples"]), bool(g.attrs["success"]),
                                       int(g.attrs.get("attempt", len(out)))))
                return sorted(out, key=lambda r: r.attempt)
        except OSError as e:
            raise DatasetError(f"{path}: not a readable HDF5 file ({e}). A half-written shard is never named "
                               "*.hdf5; delete the file if it is not a dataset.") from e

    # -- access
    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_demos(self) -> int:
        return len(self.demos)

    def _file(self, path: Path) -> h5py.File:
        if os.getpid() != self._pid:  # forked into a worker: handles are not shareable
            self._handles, self._dsets, self._pid = {}, {}, os.getpid()
        f = self._handles.get(path)
        if f is None:
            f = self._handles[path] = h5py.File(path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
        return f

    def group(self, i: int) -> h5py.Group:
        d = self.demos[i]
        return self._file(d.file)["data"][d.group]

    def episode(self, i: int, keys: list[str] | None = None) -> Episode:
        return read_episode(self.group(i), keys)

    def datasets(self, i: int) -> dict[str, h5py.Dataset]:
        """Demo i's arrays as open datasets: "obs/<key>", "actions", "rewards", "dones" and, where the demo has
        them, "expert_actions" (cached per demo)."""
        if os.getpid() != self._pid:
            self._file(self.demos[i].file)
        found = self._dsets.get(i)
        if found is None:
            if len(self._dsets) > 4096:  # bound the cache for huge datasets
                self._dsets.clear()
            g = self.group(i)
            found = {f"obs/{k}": v for k, v in g["obs"].items()}
            found.update(actions=g["actions"], rewards=g["rewards"], dones=g["dones"])
            if "expert_actions" in g:
                found["expert_actions"] = g["expert_actions"]
            found.update({k: v for k, v in g.items() if k not in _DEMO_ENTRIES and isinstance(v, h5py.Dataset)})
            self._dsets[i] = found
        return found

    def locate(self, index: int) -> tuple[int, int]:
        """Global sample index → (demo, step)."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range [0, {len(self)})")
        i = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return i, index - int(self.offsets[i])

    def frame(self, index: int, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """Global sample `index` → {"obs/<key>": ..., "action": ..., "demo": i, "t": t} (+ "expert_action" where
        the demo has one), reading one step of each array (one chunk per image), never whole files."""
        i, t = self.locate(index)
        d = self.datasets(i)
        names = [f"obs/{k}" for k in keys] if keys is not None else [k for k in d if k.startswith("obs/")]
        out: dict[str, Any] = {k: d[k][t] for k in names}
        out.update(action=d["actions"][t], demo=i, t=t)
        if "expert_actions" in d:
            out["expert_action"] = d["expert_actions"][t]
        return out

    def env_args(self) -> dict[str, Any]:
        if self.path.is_dir() and (self.path / MANIFEST).exists():
            return json.loads((self.path / MANIFEST).read_text()).get("env_args", {})
        if not self.demos:
            return {}
        return json.loads(self._file(self.demos[0].file)["data"].attrs.get("env_args", "{}"))

    def close(self) -> None:
        for f in self._handles.values():
            f.close()
        self._handles, self._dsets = {}, {}

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
