"""LeRobotDataset interop: export rho datasets as LeRobot v3.0; import LeRobot v3.0 and v2.1 (and v2.0) as Episodes.

Written by `export_lerobot` (LeRobot codebase_version "v3.0": many episodes per file, files rolled by size):

    <out>/
    ├── README.md                                   dataset card (Hub front matter: data_files data/*/*.parquet)
    ├── meta/
    │   ├── info.json                               codebase_version, robot_type, fps, total_episodes/frames/tasks,
    │   │                                           chunks_size, data/video file size limits, splits, data_path,
    │   │                                           video_path (templates), features {key: dtype, shape, names[, info]}
    │   ├── stats.json                              {feature: {min, max, mean, std, count, q01, q10, q50, q90, q99}}
    │   ├── tasks.parquet                           task_index (int64) + task (str, the pandas index)
    │   ├── episodes/chunk-000/file-000.parquet     one row per episode: episode_index, tasks, length,
    │   │                                           data/{chunk,file}_index, dataset_{from,to}_index,
    │   │                                           videos/<key>/{chunk_index, file_index, from_timestamp,
    │   │                                           to_timestamp}, stats/<feature>/<stat>, meta/episodes/{chunk,file}_index
    │   └── rho.json                                rho only (LeRobot ignores it): env_args, key map, per-episode
    │                                               rho metadata (seed, randomization, success), so a round trip
    │                                               restores what LeRobot has no field for
    ├── data/chunk-000/file-000.parquet             one row per frame, one row group per episode:
    │                                               observation.state (14,) = joint_pos, observation.velocity,
    │                                               observation.ee_pose (2, 7), observation.touch.<pad> (S, r, c, 3),
    │                                               observation.touch_net.<pad> (3,), observation.<task key>, action,
    │                                               next.reward, next.done, timestamp, frame_index, episode_index,
    │                                               index, task_index
    └── videos/observation.images.<cam>/chunk-000/file-000.mp4
                                                    every episode of that camera back to back (episode e is
                                                    [from_timestamp, to_timestamp) of its file), PyAV-encoded

Read by `import_lerobot` besides v3.0 (codebase_version "v2.1"; "v2.0" has the same files, stats.json instead of
episodes_stats.jsonl):

    <root>/
    ├── meta/info.json                              data_path  data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet
    │                                               video_path videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4
    ├── meta/episodes.jsonl                         {"episode_index": 0, "tasks": ["..."], "length": 400}
    ├── meta/tasks.jsonl                            {"task_index": 0, "task": "..."}
    ├── meta/episodes_stats.jsonl                   (v2.1) per-episode stats; not needed to read
    ├── data/chunk-000/episode_000000.parquet       one file per episode
    └── videos/chunk-000/observation.images.cam_high/episode_000000.mp4

Keys (rho obs key ↔ LeRobot feature), `lerobot_key` / `rho_key`:

    joint_pos ↔ observation.state          rgb_<cam>        ↔ observation.images.<cam>
    joint_vel ↔ observation.velocity       touch_<pad>      ↔ observation.touch.<pad>
    <key>     ↔ observation.<key>          touch_net_<pad>  ↔ observation.touch_net.<pad>
    actions   ↔ action      rewards ↔ next.reward      dones ↔ next.done
    (`actions` are absolute joint targets — format v2 and ALOHA/LeRobot agree on what an action is; a sim demo's
    `expert_actions`, the expert's own command, are not exported)

Any other LeRobot feature is kept under a sanitized name (`observation.effort` → `effort`,
`complementary_info.x` → `complementary_info_x`); a modality a dataset lacks (touch on real data) is simply absent.
The simulator state (states/sim) is not exported: LeRobot has no place for it and policies do not train on it.

Dependencies: pyarrow (parquet) and av (PyAV: mp4 encode/decode), imported on first use.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .episode import Episode
from .hdf5 import Dataset, DatasetError, ShardWriter

if TYPE_CHECKING:
    import pyarrow as pa

CODEBASE_VERSION = "v3.0"
READABLE_VERSIONS = ("v2.0", "v2.1", "v3.0")
CHUNKS_SIZE = 1000  # files per chunk folder (LeRobot's DEFAULT_CHUNK_SIZE)
DATA_FILE_MB = 100  # LeRobot's DEFAULT_DATA_FILE_SIZE_IN_MB
VIDEO_FILE_MB = 200  # LeRobot's DEFAULT_VIDEO_FILE_SIZE_IN_MB (v3.0 as released)
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)

V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V3_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
INFO_PATH, STATS_PATH, TASKS_PATH, RHO_PATH = "meta/info.json", "meta/stats.json", "meta/tasks.parquet", "meta/rho.json"

INDEX_FEATURES: dict[str, dict[str, Any]] = {  # every LeRobot frame carries these, in this order
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
NOT_OBS = {"action", "next.reward", "next.done", "next.success", *INDEX_FEATURES}
AXIS_NAMES = {  # LeRobot `names` of rho's multi-axis features: one name per axis
    "observation.ee_pose": ["arm", "pose"],
    "touch": ["sample", "row", "col", "force"],
    "touch_net": ["normal", "shear_x", "shear_y"],
}


class LeRobotFormatError(DatasetError):
    """A LeRobot dataset that cannot be read or written as asked; the message says why and how to fix it."""


def _pa():
    try:
        import pyarrow as pa  # the submodules below are reached as pa.compute / pa.parquet
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError as e:
        raise LeRobotFormatError("LeRobot interop needs pyarrow. Fix: pip install 'pyarrow>=17'") from e
    return pa


def _av():
    try:
        import av
    except ImportError as e:
        raise LeRobotFormatError("LeRobot videos need PyAV. Fix: pip install 'av>=15'") from e
    return av


# ------------------------------------------------------------------------------------------------ key mapping
def lerobot_key(key: str) -> str:
    """The LeRobot feature name of a rho observation key (see the module docstring's table)."""
    if key == "joint_pos":
        return "observation.state"
    if key == "joint_vel":
        return "observation.velocity"
    for prefix, group in (("rgb_", "images"), ("touch_net_", "touch_net"), ("touch_", "touch")):
        if key.startswith(prefix):
            return f"observation.{group}.{key[len(prefix):]}"
    return f"observation.{key}"


def rho_key(feature: str) -> str | None:
    """The rho observation key of a LeRobot feature; None for action, reward, done and the index columns."""
    if feature in NOT_OBS:
        return None
    special = {"observation.state": "joint_pos", "observation.velocity": "joint_vel", "observation.image": "rgb_image"}
    if feature in special:
        return special[feature]
    for group, prefix in (("images", "rgb_"), ("touch_net", "touch_net_"), ("touch", "touch_")):
        if feature.startswith(f"observation.{group}."):
            return prefix + _sanitize(feature[len(f"observation.{group}."):])
    return _sanitize(feature.removeprefix("observation."))


def _sanitize(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or "feature"


# ------------------------------------------------------------------------------------------------ arrow columns
def _hf_feature(ft: dict[str, Any], legacy: bool = False) -> dict[str, Any] | None:
    """The Hugging Face `datasets` feature of a LeRobot feature, as stored in the parquet schema metadata: vectors
    are `List` since datasets 4 (LeRobot v3.0), `Sequence` before (`legacy`, what v2.1-era LeRobot reads)."""
    dtype, shape = ft["dtype"], list(ft["shape"])
    if dtype == "video":
        return None
    if dtype == "image":
        return {"_type": "Image"}
    if shape == [1]:
        return {"dtype": dtype, "_type": "Value"}
    if len(shape) == 1:
        return {"feature": {"dtype": dtype, "_type": "Value"}, "length": shape[0],
                "_type": "Sequence" if legacy else "List"}
    if len(shape) > 5:
        raise LeRobotFormatError(f"a feature of shape {shape}: LeRobot (Hugging Face datasets) stores at most 5 "
                                 "axes per frame. Fix: reshape it before exporting")
    return {"shape": shape, "dtype": dtype, "_type": f"Array{len(shape)}D"}


def _arrow_column(arr: np.ndarray, ft: dict[str, Any]) -> pa.Array:
    """(T, *shape) → the column LeRobot writes: a value, a fixed-size list, nested lists, or an image struct."""
    pa = _pa()
    if ft["dtype"] == "image":
        return pa.array([{"bytes": _png(img), "path": None} for img in arr],
                        pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    shape = list(ft["shape"])
    values = pa.array(np.ascontiguousarray(arr).reshape(-1))
    if shape == [1]:
        return values
    if len(shape) == 1:
        return pa.FixedSizeListArray.from_arrays(values, shape[0])
    for size in reversed(shape):  # innermost axis first: lists of `size` items
        offsets = pa.array(np.arange(0, len(values) + 1, size, dtype=np.int32))
        values = pa.ListArray.from_arrays(offsets, values)
    return values


def _data_table(columns: dict[str, np.ndarray], features: dict[str, dict[str, Any]],
                legacy: bool = False) -> pa.Table:
    pa = _pa()
    keys = [k for k, ft in features.items() if ft["dtype"] != "video"]
    table = pa.table({k: _arrow_column(columns[k], features[k]) for k in keys})
    hf = {"info": {"features": {k: _hf_feature(features[k], legacy) for k in keys}}}
    return table.replace_schema_metadata({"huggingface": json.dumps(hf)})


def _numpy_column(table: pa.Table, key: str, ft: dict[str, Any], root: Path) -> np.ndarray:
    """A parquet column back to (T, *shape) numpy, whatever list encoding the writer used."""
    pa = _pa()
    col = table[key].combine_chunks()
    if ft["dtype"] == "image":
        return np.stack([_unpng(item, root) for item in col.to_pylist()])
    while pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
        col = col.flatten()
    values = col.to_numpy(zero_copy_only=False)
    shape = tuple(ft["shape"])
    if values.size != table.num_rows * math.prod(shape):
        raise LeRobotFormatError(f"column {key!r}: {values.size} values for {table.num_rows} frames, but info.json "
                                 f"declares shape {list(shape)} per frame. The dataset is inconsistent; re-export it")
    return values.reshape(table.num_rows, *shape)


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _unpng(item: dict[str, Any] | None, root: Path) -> np.ndarray:
    from PIL import Image

    if not item or not (item.get("bytes") or item.get("path")):
        raise LeRobotFormatError("an image cell holds neither bytes nor a path; the dataset is incomplete")
    src = io.BytesIO(item["bytes"]) if item.get("bytes") else root / item["path"]
    with Image.open(src) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------------------------ video
@dataclass(frozen=True)
class VideoOptions:
    """Encoder settings; the defaults are LeRobot's (AV1 via SVT-AV1, yuv420p, a key frame every 2 frames, CRF 30).
    `vcodec="h264"` (libx264) is the other codec LeRobot writes."""

    vcodec: str = "libsvtav1"
    pix_fmt: str = "yuv420p"
    gop: int = 2
    crf: int = 30


class _VideoWriter:
    """One mp4 file: frames appended episode after episode; frame k is shown at k / fps."""

    def __init__(self, path: Path, fps: int, opts: VideoOptions):
        av = _av()
        if opts.vcodec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole config to stderr otherwise
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fps, self.frames, self.bytes = path, fps, 0, 0
        self._c = av.open(str(path), "w")
        self._s = self._c.add_stream(opts.vcodec, rate=fps, options={"g": str(opts.gop), "crf": str(opts.crf)})
        self._s.pix_fmt = opts.pix_fmt
        self._av = av

    def add(self, frames: np.ndarray) -> None:
        """(n, H, W, 3) uint8 RGB."""
        if self.frames == 0:
            self._s.height, self._s.width = frames.shape[1:3]
        for img in frames:
            frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts, frame.time_base = self.frames, Fraction(1, self.fps)
            self._mux(self._s.encode(frame))
            self.frames += 1

    def _mux(self, packets) -> None:
        for p in packets:
            self.bytes += p.size
            self._c.mux(p)

    def close(self) -> None:
        self._mux(self._s.encode())
        self._c.close()


def _video_info(path: Path) -> dict[str, Any]:
    """What LeRobot records under features[<video key>]["info"], probed from the file."""
    av = _av()
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return {"video.height": s.height, "video.width": s.width, "video.codec": s.codec_context.codec.canonical_name,
                "video.pix_fmt": s.pix_fmt, "video.is_depth_map": False, "video.fps": int(s.base_rate),
                "video.channels": 3, "has_audio": bool(c.streams.audio)}


def _decode_at(path: Path, times: np.ndarray, fps: float) -> np.ndarray:
    """The frames shown at `times` (seconds into the file): (len(times), H, W, 3) uint8, nearest frame within half a
    frame period. Seeks to the key frame before the first time and decodes forward."""
    av = _av()
    if not path.exists():
        raise LeRobotFormatError(f"{path}: video file missing (info.json declares this camera). Fix: download the "
                                 "dataset's videos/ folder too, or import with decode_video=False")
    tol = 0.5 / fps
    t0, t1 = float(times.min()), float(times.max())
    got_t: list[float] = []
    got_f: list[np.ndarray] = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        start = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        if t0 - tol > 0:
            c.seek(int((t0 - tol + start) / s.time_base), stream=s, backward=True)
        for frame in c.decode(s):
            t = (float(frame.time) - start) if frame.pts is not None else len(got_t) / fps
            if t > t1 + tol:
                break
            if t >= t0 - tol:
                got_t.append(t)
                got_f.append(frame.to_ndarray(format="rgb24"))
    return _nearest(path, np.asarray(got_t), got_f, times, tol)


def _nearest(path: Path, got_t: np.ndarray, got_f: list[np.ndarray], times: np.ndarray, tol: float) -> np.ndarray:
    if not len(got_t):
        raise LeRobotFormatError(f"{path}: no frame between {times.min():.3f} s and {times.max():.3f} s; the video "
                                 "is shorter than the data says. Fix: re-encode the videos from the source")
    hi = np.clip(np.searchsorted(got_t, times), 0, len(got_t) - 1)
    lo = np.clip(hi - 1, 0, len(got_t) - 1)
    idx = np.where(np.abs(got_t[lo] - times) <= np.abs(got_t[hi] - times), lo, hi)
    err = np.abs(got_t[idx] - times)
    if err.max() > tol:
        bad = int(err.argmax())
        raise LeRobotFormatError(
            f"{path}: no frame within {tol * 1e3:.1f} ms of t={times[bad]:.4f} s (nearest {got_t[idx[bad]]:.4f} s; "
            f"decoded {got_t[0]:.3f}..{got_t[-1]:.3f} s). The video and the data timestamps disagree (dropped "
            "frames or a wrong fps). Fix: re-encode the video at info.json's fps")
    return np.stack(got_f)[idx]


# ------------------------------------------------------------------------------------------------ statistics
def _feature_stats(arr: np.ndarray, ft: dict[str, Any]) -> dict[str, np.ndarray]:
    """LeRobot's per-episode stats: images per channel in [0, 1] shaped (3, 1, 1); vectors per dimension; features
    with more axes per last axis (touch (S, r, c, 3) → per force component); scalars shaped (1,)."""
    if ft["dtype"] in ("image", "video"):
        step = max(1, len(arr) // 100)
        px = max(1, max(arr.shape[1:3]) // 150)  # LeRobot also downsamples large frames before its stats
        x = arr[::step, ::px, ::px].reshape(-1, arr.shape[-1]).astype(np.float64) / 255.0
        return {k: (v if k == "count" else v.reshape(-1, 1, 1)) for k, v in _stats(x, len(arr[::step])).items()}
    x = arr.reshape(len(arr), -1) if arr.ndim <= 2 else arr.reshape(-1, arr.shape[-1])
    x = x.astype(np.int64 if arr.dtype.kind in "iub" else np.float64)
    return _stats(x, len(arr))


def _stats(x: np.ndarray, count: int) -> dict[str, np.ndarray]:
    out = {"min": x.min(axis=0), "max": x.max(axis=0), "mean": x.mean(axis=0), "std": x.std(axis=0),
           "count": np.array([count], dtype=np.int64)}
    for q, v in zip(QUANTILES, np.quantile(x, QUANTILES, axis=0), strict=True):
        out[f"q{round(q * 100):02d}"] = v
    return out


def _aggregate(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset stats from episode stats as LeRobot aggregates them: count-weighted means (and quantiles), pooled
    variance, extreme min/max."""
    w = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    total = w.sum()

    def wmean(key: str) -> np.ndarray:
        return sum(wi * s[key] for wi, s in zip(w, per_episode, strict=True)) / total

    mean = wmean("mean")
    var = sum(wi * (s["std"] ** 2 + (s["mean"] - mean) ** 2) for wi, s in zip(w, per_episode, strict=True)) / total
    out = {"min": np.min([s["min"] for s in per_episode], axis=0), "max": np.max([s["max"] for s in per_episode], axis=0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(total)], dtype=np.int64)}
    out.update({k: wmean(k) for k in per_episode[0] if k.startswith("q")})
    return out


def _jsonable(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


# ------------------------------------------------------------------------------------------------ writing
def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


@dataclass
class Limits:
    """LeRobot's file layout limits: files per chunk folder, and the size at which a data / video file is closed
    and the next one started."""

    chunks_size: int = CHUNKS_SIZE
    data_files_size_in_mb: float = DATA_FILE_MB
    video_files_size_in_mb: float = VIDEO_FILE_MB


@dataclass
class _Rolling:
    """The (chunk, file) a growing file stream is at, and what has gone into it."""

    chunk: int = 0
    file: int = 0
    bytes: int = 0
    handle: Any = None


class _V3Writer:
    """Appends episodes to a v3.0 tree (see the module docstring) and writes the metadata when finished."""

    def __init__(self, root: Path, features: dict[str, dict[str, Any]], fps: int, video: VideoOptions,
                 limits: Limits):
        self.root, self.features, self.fps, self.video, self.limits = root, features, fps, video, limits
        self.video_keys = [k for k, ft in features.items() if ft["dtype"] == "video"]
        self.data = _Rolling()
        self.videos = {k: _Rolling() for k in self.video_keys}
        self.tasks: dict[str, int] = {}
        self.rows: list[dict[str, Any]] = []
        self.stats: list[dict[str, dict[str, np.ndarray]]] = []
        self.frames = 0

    def add(self, columns: dict[str, np.ndarray], task: str) -> None:
        """One episode: `columns` maps every non-index feature to (T, ...) arrays (images (T, H, W, 3) uint8)."""
        n, ep = len(columns["action"]), len(self.rows)
        task_index = self.tasks.setdefault(task, len(self.tasks))
        full = {**columns, **_index_columns(n, ep, self.frames, task_index, self.fps)}
        row: dict[str, Any] = {"episode_index": ep, "tasks": [task], "length": n}
        row.update(self._write_data(_data_table(full, self.features)))
        row.update(dataset_from_index=self.frames, dataset_to_index=self.frames + n)
        for key in self.video_keys:
            row.update(self._write_video(key, columns[key]))
        stats = {k: _feature_stats(full[k], ft) for k, ft in self.features.items()}
        row.update({f"stats/{k}/{name}": v.tolist() for k, s in stats.items() for name, v in s.items()})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        self.rows.append(row)
        self.stats.append(stats)
        self.frames += n

    def _write_data(self, table: pa.Table) -> dict[str, int]:
        pq, d = _pa().parquet, self.data
        if d.handle is not None and d.bytes >= self.limits.data_files_size_in_mb * 2**20:
            d.handle.close()
            d.handle, d.bytes = None, 0
            d.chunk, d.file = _next_file(d.chunk, d.file, self.limits.chunks_size)
        if d.handle is None:
            path = self.root / V3_DATA_PATH.format(chunk_index=d.chunk, file_index=d.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            d.handle = pq.ParquetWriter(path, table.schema, compression="snappy", use_dictionary=True)
        d.handle.write_table(table)
        d.bytes += table.nbytes
        return {"data/chunk_index": d.chunk, "data/file_index": d.file}

    def _write_video(self, key: str, frames: np.ndarray) -> dict[str, Any]:
        v = self.videos[key]
        if v.handle is not None and v.handle.bytes >= self.limits.video_files_size_in_mb * 2**20:
            v.handle.close()
            v.handle = None
            v.chunk, v.file = _next_file(v.chunk, v.file, self.limits.chunks_size)
        if v.handle is None:
            path = self.root / V3_VIDEO_PATH.format(video_key=key, chunk_index=v.chunk, file_index=v.file)
            v.handle = _VideoWriter(path, self.fps, self.video)
        start = v.handle.frames / self.fps
        v.handle.add(frames)
        return {f"videos/{key}/chunk_index": v.chunk, f"videos/{key}/file_index": v.file,
                f"videos/{key}/from_timestamp": start, f"videos/{key}/to_timestamp": v.handle.frames / self.fps}

    def close(self) -> None:
        """Close the open data and video files (also after a failure)."""
        for r in [self.data, *self.videos.values()]:
            if r.handle is not None:
                r.handle.close()
                r.handle = None

    def finish(self, robot_type: str | None) -> dict[str, Any]:
        """Write meta/ (info.json, stats.json, tasks.parquet, episodes/) once the files are closed."""
        pa = _pa()
        for key in self.video_keys:
            self.features[key]["info"] = _video_info(self.root / V3_VIDEO_PATH.format(
                video_key=key, chunk_index=0, file_index=0))
        episodes = self.root / V3_EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes.parent.mkdir(parents=True, exist_ok=True)
        pa.parquet.write_table(pa.Table.from_pylist(self.rows), episodes, compression="snappy")
        _write_tasks(self.root / TASKS_PATH, self.tasks)
        stats = {k: _aggregate([s[k] for s in self.stats]) for k in self.features}
        (self.root / STATS_PATH).write_text(json.dumps(_jsonable(stats), indent=4))
        info = _info(CODEBASE_VERSION, robot_type, self.fps, self.features, len(self.rows), self.frames,
                     len(self.tasks), self.limits)
        (self.root / INFO_PATH).write_text(json.dumps(info, indent=4))
        return info


def _index_columns(n: int, episode: int, first: int, task_index: int, fps: int) -> dict[str, np.ndarray]:
    t = np.arange(n, dtype=np.int64)
    return {"timestamp": (t / fps).astype(np.float32), "frame_index": t,
            "episode_index": np.full(n, episode, np.int64), "index": first + t,
            "task_index": np.full(n, task_index, np.int64)}


def _info(version: str, robot_type: str | None, fps: int, features: dict[str, dict[str, Any]], episodes: int,
          frames: int, tasks: int, limits: Limits) -> dict[str, Any]:
    has_video = any(ft["dtype"] == "video" for ft in features.values())
    out: dict[str, Any] = {"codebase_version": version, "robot_type": robot_type, "total_episodes": episodes,
                           "total_frames": frames, "total_tasks": tasks}
    if version == CODEBASE_VERSION:
        out.update(chunks_size=limits.chunks_size, data_files_size_in_mb=limits.data_files_size_in_mb,
                   video_files_size_in_mb=limits.video_files_size_in_mb, fps=fps,
                   splits={"train": f"0:{episodes}"}, data_path=V3_DATA_PATH,
                   video_path=V3_VIDEO_PATH if has_video else None)
    else:
        n_video = sum(ft["dtype"] == "video" for ft in features.values())
        out.update(total_videos=episodes * n_video, total_chunks=max(1, -(-episodes // limits.chunks_size)),
                   chunks_size=limits.chunks_size, fps=fps, splits={"train": f"0:{episodes}"},
                   data_path=V2_DATA_PATH, video_path=V2_VIDEO_PATH if has_video else None)
    out["features"] = features
    return out


def _write_tasks(path: Path, tasks: dict[str, int]) -> None:
    """tasks.parquet as pandas writes a frame indexed by task (what LeRobot's `pd.read_parquet` expects)."""
    pa = _pa()
    pandas_meta = {"index_columns": ["task"], "column_indexes": [
        {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
         "metadata": {"encoding": "UTF-8"}}], "columns": [
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
         "metadata": None},
        {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None}],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()),
                      "task": pa.array(list(tasks), pa.string())})
    pa.parquet.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), path)


# ------------------------------------------------------------------------------------------------ export
def export_lerobot(src: str | Path, out: str | Path, *, repo_id: str | None = None, video: bool = True,
                   video_options: VideoOptions | None = None, limits: Limits | None = None,
                   overwrite: bool = False) -> dict[str, Any]:
    """Write the rho dataset `src` (directory of shards or .hdf5 file) as a LeRobot v3.0 dataset at `out`.

    Cameras become mp4 videos (`video=True`, LeRobot's default) or PNG images inside the parquet (`video=False`,
    LeRobot dtype "image"). The tree is built in `.<out>.tmp` and renamed into place, so a killed export leaves no
    half dataset. Returns a summary (episodes, frames, tasks, fps, feature shapes).
    """
    out = Path(out)
    tmp = _prepare_out(out, overwrite)
    try:
        with Dataset(src) as ds:
            info, rho = _export(ds, tmp, video, video_options or VideoOptions(), limits or Limits())
        rho.update(repo_id=repo_id or f"rho/{rho['env_args'].get('task', 'dataset')}", source=str(src))
        (tmp / RHO_PATH).write_text(json.dumps(rho, indent=1, default=_json_default))
        (tmp / "README.md").write_text(_card(rho["repo_id"], info))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return {"out": str(out), "codebase_version": CODEBASE_VERSION, "episodes": info["total_episodes"],
            "frames": info["total_frames"], "tasks": info["total_tasks"], "fps": info["fps"],
            "features": {k: ft["shape"] for k, ft in info["features"].items()}}


def _export(ds: Dataset, root: Path, video: bool, opts: VideoOptions,
            limits: Limits) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write every demo of `ds` under `root`; (info.json, rho.json without repo_id/source)."""
    if ds.num_demos == 0:
        raise LeRobotFormatError(f"{ds.path}: no demos to export. Fix: generate some with `rho datagen`")
    args = ds.env_args()
    first = ds.episode(0)
    keymap = _key_map(list(first.obs))
    features = _features(_columns(first, keymap), video, _robot_names(args))
    writer = _V3Writer(root, features, _fps_of(args, ds.path), opts, limits)
    try:
        episodes = _export_episodes(ds, writer, keymap, first, args)
    finally:
        writer.close()
    info = writer.finish(robot_type=args.get("env_config", {}).get("robot"))
    return info, {"producer": "rho", "key_map": keymap, "env_args": args, "episodes": episodes}


def _export_episodes(ds: Dataset, writer: _V3Writer, keymap: dict[str, str], first: Episode,
                     args: dict[str, Any]) -> list[dict[str, Any]]:
    layout = {k: (v.shape[1:], v.dtype) for k, v in first.obs.items()}
    out = []
    for i in range(ds.num_demos):
        ep = first if i == 0 else ds.episode(i)
        got = {k: (v.shape[1:], v.dtype) for k, v in ep.obs.items()}
        if got != layout:
            raise LeRobotFormatError(f"demo {i} ({ds.demos[i].group}): observation keys/shapes {got} differ from "
                                     f"demo 0's {layout}; LeRobot needs one layout per dataset. Fix: export "
                                     "datasets of one task config separately")
        task = str(ep.meta.get("instruction") or ep.meta.get("task") or args.get("task", ""))
        writer.add(_columns(ep, keymap), task)
        out.append({"demo": ds.demos[i].group, "success": bool(ep.success), "meta": ep.meta})
    return out


def _columns(ep: Episode, keymap: dict[str, str]) -> dict[str, np.ndarray]:
    """LeRobot columns of a rho episode: state first, as LeRobot datasets list it, then proprio, touch, the task's
    keys, cameras; action, reward and done last."""
    rank = ("observation.state", "observation.velocity", "observation.ee_pose", "observation.touch.",
            "observation.touch_net.", "observation.images.")
    order = sorted(ep.obs, key=lambda k: (next((i for i, r in enumerate(rank) if keymap[k].startswith(r)),
                                               len(rank)), keymap[k]))
    cols = {keymap[k]: ep.obs[k] for k in order}
    cols["action"] = ep.actions.astype(np.float32)
    cols["next.reward"] = ep.rewards.astype(np.float32)
    cols["next.done"] = ep.dones.astype(bool)
    return cols


def _key_map(keys: list[str]) -> dict[str, str]:
    out = {k: lerobot_key(k) for k in keys}
    clash = {v for v in out.values() if list(out.values()).count(v) > 1}
    if clash:
        raise LeRobotFormatError(f"observation keys {sorted(k for k, v in out.items() if v in clash)} all map to "
                                 f"{sorted(clash)}. Fix: rename one of them in the task's observation spec")
    return out


def _features(columns: dict[str, np.ndarray], video: bool,
              names: dict[str, list[str]] | None = None) -> dict[str, dict[str, Any]]:
    """info.json features of one episode's columns (+ the index features), in LeRobot's form. `names` gives
    per-element names of vector features (e.g. joint names of observation.state)."""
    out: dict[str, dict[str, Any]] = {}
    for key, arr in columns.items():
        if arr.dtype == np.uint8 and arr.ndim == 4 and key.startswith("observation.image"):
            out[key] = {"dtype": "video" if video else "image", "shape": list(arr.shape[1:]),
                        "names": ["height", "width", "channels"]}
        else:
            out[key] = {"dtype": str(arr.dtype), "shape": list(arr.shape[1:]) or [1],
                        "names": _names(key, arr.shape[1:], (names or {}).get(key))}
    return {**out, **{k: dict(v) for k, v in INDEX_FEATURES.items()}}


def _names(key: str, shape: tuple[int, ...], given: list[str] | None) -> list[str] | None:
    if given and shape == (len(given),):
        return list(given)
    group = key.split(".")[1] if key.count(".") >= 2 else key
    axes = AXIS_NAMES.get(key) or AXIS_NAMES.get(group)
    if axes and (len(axes) == len(shape) or shape == (len(axes),)):
        return list(axes)
    return None


def _robot_names(args: dict[str, Any]) -> dict[str, list[str]]:
    """Per-element names of state and action when the robot is known, Mobile ALOHA style (left_waist, ...,
    left_gripper, right_waist, ...); the action's follow what the actions mean (`action_mode`: joint targets in
    format v2; a v1 dataset's were the env's action mode)."""
    cfg = args.get("env_config", {})
    try:
        from rho.assets.robots import get_robot

        robot = get_robot(cfg.get("robot", ""))
    except Exception:  # unknown or unregistered robot: LeRobot allows names=None
        return {}
    joints = [f"{arm}_{j.split('/')[-1]}" for arm in robot.arms for j in (*robot.joint_names(arm), "gripper")]
    ee = [f"{arm}_{c}" for arm in robot.arms for c in ("dx", "dy", "dz", "rx", "ry", "rz", "gripper")]
    action = ee if args.get("action_mode", cfg.get("action", {}).get("mode")) == "ee_delta" else joints
    return {"observation.state": joints, "observation.velocity": joints, "action": action}


def _fps_of(args: dict[str, Any], src: str | Path) -> int:
    hz = args.get("control_hz") or args.get("env_config", {}).get("sim", {}).get("control_hz")
    if not hz:
        raise LeRobotFormatError(f"{src}: env_args carry no control_hz, so the frame rate is unknown. Fix: "
                                 "regenerate with `rho datagen` (it records control_hz)")
    if abs(hz - round(hz)) > 1e-6:
        raise LeRobotFormatError(f"{src}: control rate {hz} Hz is not a whole number; LeRobot needs an integer fps")
    return round(hz)


def _prepare_out(out: Path, overwrite: bool) -> Path:
    if out.exists() and not overwrite:
        raise LeRobotFormatError(f"{out} exists; pick a new output folder, delete it, or pass overwrite=True")
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _card(repo_id: str, info: dict[str, Any]) -> str:
    return ("---\nlicense: apache-2.0\ntask_categories:\n- robotics\ntags:\n- LeRobot\n- rho\n- tactile\n"
            "configs:\n- config_name: default\n  data_files: data/*/*.parquet\n---\n\n"
            f"# {repo_id}\n\nSimulated tactile bimanual demonstrations exported by rho as a LeRobotDataset "
            f"{info['codebase_version']}: {info['total_episodes']} episodes, {info['total_frames']} frames at "
            f"{info['fps']} fps. Touch is stored as first-class features `observation.touch.<pad>` "
            "(samples, rows, cols, [normal, shear_x, shear_y]) in newtons.\n\n"
            f"[meta/info.json](meta/info.json):\n```json\n{json.dumps(info, indent=4)}\n```\n")


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


# ------------------------------------------------------------------------------------------------ reading
@dataclass
class _Source:
    """An opened LeRobot dataset: its info.json, tasks, per-episode metadata rows and (if rho wrote it) rho.json."""

    root: Path
    info: dict[str, Any]
    tasks: dict[int, str]
    episodes: list[dict[str, Any]]
    rho: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.info["codebase_version"]

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]


def _open(path: str | Path) -> _Source:
    root = Path(path)
    info_path = root / INFO_PATH
    if not info_path.exists():
        raise LeRobotFormatError(f"{root}: not a LeRobot dataset (expected {INFO_PATH}, as in LeRobot v2.x / v3.0). "
                                 "Fix: point at the dataset root, the folder holding meta/ and data/")
    info = json.loads(info_path.read_text())
    version = info.get("codebase_version")
    if version not in READABLE_VERSIONS:
        raise LeRobotFormatError(
            f"{root}: codebase_version {version!r} is not supported (readable: {', '.join(READABLE_VERSIONS)}). "
            "Fix: convert it with LeRobot's converters (v1.x → v2.x: lerobot/datasets/v2/convert_dataset_v1_to_v2; "
            "v2.1 → v3.0: lerobot/datasets/v30/convert_dataset_v21_to_v30), or upgrade rho if it is newer")
    rho_path = root / RHO_PATH
    rho = json.loads(rho_path.read_text()) if rho_path.exists() else {}
    if version == CODEBASE_VERSION:
        return _Source(root, info, _v3_tasks(root), _v3_episodes(root), rho)
    return _Source(root, info, _v2_tasks(root), _jsonl(root / "meta/episodes.jsonl"), rho)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise LeRobotFormatError(f"{path}: missing (a LeRobot v2.x dataset lists its episodes and tasks in "
                                 "meta/*.jsonl). Fix: download the whole meta/ folder")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _v2_tasks(root: Path) -> dict[int, str]:
    return {int(t["task_index"]): str(t["task"]) for t in _jsonl(root / "meta/tasks.jsonl")}


def _v3_tasks(root: Path) -> dict[int, str]:
    pa = _pa()
    path = root / TASKS_PATH
    if not path.exists():
        raise LeRobotFormatError(f"{path}: missing. Fix: download the whole meta/ folder of the dataset")
    table = pa.parquet.read_table(path)
    text = next((n for n in ("task", "__index_level_0__") if n in table.column_names), None)
    text = text or next(f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(
        f.type))
    return dict(zip(table["task_index"].to_pylist(), table[text].to_pylist(), strict=True))


def _v3_episodes(root: Path) -> list[dict[str, Any]]:
    pa = _pa()
    files = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise LeRobotFormatError(f"{root}: no meta/episodes/chunk-*/file-*.parquet. Fix: download the whole meta/ "
                                 "folder of the dataset")
    rows: list[dict[str, Any]] = []
    for f in files:
        names = [n for n in pa.parquet.read_schema(f).names if not n.startswith("stats/")]
        rows += pa.parquet.read_table(f, columns=names).to_pylist()
    return sorted(rows, key=lambda r: r["episode_index"])


class _DataFiles:
    """Reads each data parquet once (v3.0 files hold many episodes; import walks them in order)."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._table: pa.Table | None = None

    def episode(self, path: Path, episode: int) -> pa.Table:
        pa = _pa()
        if path != self._path:
            if not path.exists():
                raise LeRobotFormatError(f"{path}: data file missing. Fix: download the dataset's data/ folder")
            self._path, self._table = path, pa.parquet.read_table(path)
        table = self._table
        table = table.filter(pa.compute.equal(table["episode_index"], episode))
        return table.sort_by("frame_index") if "frame_index" in table.column_names else table


def _data_path(src: _Source, row: dict[str, Any]) -> Path:
    e = int(row["episode_index"])
    if src.version == CODEBASE_VERSION:
        return src.root / src.info["data_path"].format(chunk_index=row["data/chunk_index"],
                                                       file_index=row["data/file_index"])
    return src.root / src.info["data_path"].format(episode_chunk=e // src.info.get("chunks_size", CHUNKS_SIZE),
                                                   episode_index=e)


def _video_path(src: _Source, row: dict[str, Any], key: str) -> tuple[Path, float]:
    """The mp4 holding camera `key` of this episode, and where in it the episode starts (s)."""
    e = int(row["episode_index"])
    if src.version == CODEBASE_VERSION:
        path = src.info["video_path"].format(video_key=key, chunk_index=row[f"videos/{key}/chunk_index"],
                                             file_index=row[f"videos/{key}/file_index"])
        return src.root / path, float(row[f"videos/{key}/from_timestamp"])
    chunk = e // src.info.get("chunks_size", CHUNKS_SIZE)
    return src.root / src.info["video_path"].format(episode_chunk=chunk, video_key=key, episode_index=e), 0.0


def iter_lerobot(path: str | Path, *, episodes: Iterable[int] | None = None, decode_video: bool = True,
                 default_success: bool = True) -> Iterator[Episode]:
    """Episodes of a LeRobot v3.0 / v2.1 / v2.0 dataset, one at a time, in episode order.

    `episodes` picks episode indices; `decode_video=False` skips the cameras. LeRobot has no success flag, so an
    episode is marked `default_success` (recorded demonstrations succeed) unless `next.success` or rho's own
    metadata says otherwise; meta["success_from"] tells which.
    """
    src = _open(path)
    wanted = None if episodes is None else {int(e) for e in episodes}
    files = _DataFiles()
    for row in src.episodes:
        if wanted is None or int(row["episode_index"]) in wanted:
            yield _read_episode(src, row, files, decode_video, default_success)


def import_lerobot(path: str | Path, **kw: Any) -> list[Episode]:
    """All episodes of a LeRobot dataset (see `iter_lerobot` for the options) as rho `Episode`s."""
    return list(iter_lerobot(path, **kw))


def _read_episode(src: _Source, row: dict[str, Any], files: _DataFiles, decode_video: bool,
                  default_success: bool) -> Episode:
    e = int(row["episode_index"])
    table = files.episode(_data_path(src, row), e)
    if table.num_rows == 0 or ("length" in row and table.num_rows != int(row["length"])):
        raise LeRobotFormatError(f"{src.root}: episode {e} has {table.num_rows} frames in its data file, the episode "
                                 f"metadata says {row.get('length')}. The dataset is inconsistent; re-download it")
    cols = {k: _numpy_column(table, k, ft, src.root) for k, ft in src.features.items()
            if k in table.column_names and ft["dtype"] not in ("video", "string")}
    if "action" not in cols:
        raise LeRobotFormatError(f"{src.root}: no 'action' feature; rho episodes need actions to train on")
    obs = {rho_key(k): v for k, v in cols.items() if rho_key(k) is not None}
    if decode_video:
        ts = cols["timestamp"].reshape(-1).astype(np.float64) if "timestamp" in cols else np.arange(
            table.num_rows) / src.fps
        for key, ft in src.features.items():
            if ft["dtype"] == "video":
                path, start = _video_path(src, row, key)
                obs[rho_key(key)] = _decode_at(path, start + ts, src.fps)
    return _episode(src, row, cols, obs)


def _episode(src: _Source, row: dict[str, Any], cols: dict[str, np.ndarray], obs: dict[str, np.ndarray]) -> Episode:
    n = len(cols["action"])
    actions = cols["action"].reshape(n, -1).astype(np.float32)
    rewards = cols["next.reward"].reshape(n).astype(np.float32) if "next.reward" in cols else np.zeros(n, np.float32)
    if "next.done" in cols:
        dones = cols["next.done"].reshape(n).astype(np.uint8)
    else:
        dones = np.zeros(n, np.uint8)
        dones[-1] = 1
    meta, success = _meta(src, row, cols)
    return Episode(obs=obs, actions=actions, rewards=rewards, dones=dones, success=success, meta=meta)


def _meta(src: _Source, row: dict[str, Any], cols: dict[str, np.ndarray]) -> tuple[dict[str, Any], bool]:
    e = int(row["episode_index"])
    rho_eps = src.rho.get("episodes", [])
    rho_ep = rho_eps[e] if e < len(rho_eps) else None
    meta: dict[str, Any] = dict(rho_ep["meta"]) if rho_ep else {}
    if "source" in meta:
        meta["original_source"] = meta["source"]
    first_task = int(cols["task_index"].reshape(-1)[0]) if "task_index" in cols else None
    tasks = list(row.get("tasks") or [])
    instruction = src.tasks.get(first_task) if first_task is not None else None
    instruction = instruction or (tasks[0] if tasks else "")
    meta.update(instruction=instruction, episode_index=e, fps=src.fps, source="lerobot",
                codebase_version=src.version, dataset=src.root.name)
    meta.setdefault("task", src.rho.get("env_args", {}).get("task") or src.root.name)
    if src.info.get("robot_type"):
        meta["robot_type"] = src.info["robot_type"]
    if len(tasks) > 1:
        meta["lerobot_tasks"] = tasks
    if rho_ep is not None:
        meta["success_from"] = "rho"
        return meta, bool(rho_ep["success"])
    if "next.success" in cols:
        meta["success_from"] = "next.success"
        return meta, bool(cols["next.success"].any())
    meta["success_from"] = "default"
    return meta, True


# ------------------------------------------------------------------------------------------------ describe / HDF5
def describe_lerobot(path: str | Path) -> dict[str, Any]:
    """What a LeRobot dataset holds, from its metadata alone: version, sizes, tasks, features and the rho key each
    feature imports as."""
    src = _open(path)
    feats = src.features
    keymap = {k: rho_key(k) for k in feats if rho_key(k) is not None}
    return {"path": str(src.root.resolve()), "codebase_version": src.version, "robot_type": src.info.get("robot_type"),
            "fps": src.fps, "episodes": len(src.episodes), "frames": int(src.info.get("total_frames", 0)),
            "tasks": [src.tasks[k] for k in sorted(src.tasks)][:20], "num_tasks": len(src.tasks),
            "features": {k: {"dtype": ft["dtype"], "shape": list(ft["shape"])} for k, ft in feats.items()},
            "rho_keys": keymap, "cameras": [k for k, ft in feats.items() if ft["dtype"] in ("video", "image")],
            "touch": sorted(k for k in keymap.values() if k.startswith("touch_")),
            "written_by_rho": bool(src.rho),
            "bytes": sum(f.stat().st_size for f in src.root.rglob("*") if f.is_file())}


def import_to_hdf5(src: str | Path, out: str | Path, *, overwrite: bool = False, **kw: Any) -> dict[str, Any]:
    """Write a LeRobot dataset's episodes into one rho HDF5 file (demo_0, demo_1, ... in episode order), readable
    by `rho.datagen.hdf5.Dataset`. `kw` go to `iter_lerobot`."""
    out = Path(out)
    if out.suffix not in (".hdf5", ".h5"):
        raise LeRobotFormatError(f"{out}: import writes a single HDF5 file. Fix: give a path ending in .hdf5")
    if out.exists() and not overwrite:
        raise LeRobotFormatError(f"{out} exists; pick a new path, delete it, or pass overwrite=True")
    episodes = iter_lerobot(src, **kw)
    first = next(episodes, None)
    if first is None:
        raise LeRobotFormatError(f"{src}: no episodes to import")
    info = _open(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(out, _imported_env_args(info, first))
    try:
        for i, ep in enumerate(_chain(first, episodes)):
            ep.meta["attempt"] = i
            ep.states.setdefault("sim", np.zeros((ep.num_samples, 0)))  # no simulator state: zero columns, so
            ep.initial_state.setdefault("sim", np.zeros(0))  # rho's dataset tools find the groups they expect
            writer.add(ep, f"demo_{i}")
    except BaseException:
        writer.discard()
        raise
    writer.close()
    return {"out": str(out), "demos": len(writer.names), "samples": writer.samples,
            "obs_keys": {k: list(v.shape[1:]) for k, v in first.obs.items()}}


def _chain(first: Episode, rest: Iterator[Episode]) -> Iterator[Episode]:
    yield first
    yield from rest


def _imported_env_args(src: _Source, ep: Episode) -> dict[str, Any]:
    """env_args for imported data: rho's own when rho wrote the dataset, else an observation spec built from the
    LeRobot features."""
    lerobot = {"path": str(src.root.resolve()), "codebase_version": src.version, "robot_type": src.info.get(
        "robot_type"), "fps": src.fps}
    if src.rho.get("env_args"):  # a rho export: its actions mean what its env_args say (v2: joint targets; an
        args = src.rho["env_args"]  # export of a format-v1 dataset held the expert's command in the env's mode)
        mode = args.get("action_mode", args.get("env_config", {}).get("action", {}).get("mode", "joint_pos"))
        return {**args, "action_mode": mode, "imported_from": lerobot}
    spec = [{"name": k, "shape": list(v.shape[1:]), "dtype": str(v.dtype), "unit": "", "rate_hz": src.fps,
             "group": _group(k), "description": f"LeRobot feature {lerobot_key(k)}"} for k, v in ep.obs.items()]
    return {"task": ep.meta.get("task"), "backend": "real", "source": "lerobot", "control_hz": src.fps,
            "obs_spec": spec, "imported_from": lerobot, "action_mode": "joint_pos"}  # ALOHA: absolute joint targets


def _group(key: str) -> str:
    if key.startswith("rgb_"):
        return "camera"
    if key.startswith("touch_"):
        return "touch"
    return "proprio" if key in ("joint_pos", "joint_vel", "ee_pose", "effort") else "other"


# ------------------------------------------------------------------------------------------------ v2.1 (tests)
def _write_v21_for_tests(out: str | Path, episodes: list[tuple[dict[str, np.ndarray], str]], fps: int, *,
                         robot_type: str | None = "aloha", video_options: VideoOptions | None = None) -> Path:
    """Write a small LeRobot v2.1 dataset (layout in the module docstring), for tests: there is no network at test
    time to fetch a real one. `episodes` are (columns, task) with columns keyed by LeRobot feature name, e.g.
    observation.state (T, 14), action (T, 14), observation.images.cam_high (T, H, W, 3) uint8."""
    pa, root = _pa(), Path(out)
    features = _features(episodes[0][0], video=True)
    opts = video_options or VideoOptions(vcodec="h264")
    tasks: dict[str, int] = {}
    ep_rows, stat_rows, frames = [], [], 0
    for e, (columns, task) in enumerate(episodes):
        n, ti = len(columns["action"]), tasks.setdefault(task, len(tasks))
        full = {**columns, **_index_columns(n, e, frames, ti, fps)}
        path = root / V2_DATA_PATH.format(episode_chunk=0, episode_index=e)
        path.parent.mkdir(parents=True, exist_ok=True)
        pa.parquet.write_table(_data_table(full, features, legacy=True), path)
        for key in (k for k, ft in features.items() if ft["dtype"] == "video"):
            video = _VideoWriter(root / V2_VIDEO_PATH.format(episode_chunk=0, video_key=key, episode_index=e), fps,
                                 opts)
            video.add(columns[key])
            video.close()
        ep_rows.append({"episode_index": e, "tasks": [task], "length": n})
        stat_rows.append({"episode_index": e, "stats": _jsonable(
            {k: _feature_stats(full[k], ft) for k, ft in features.items()})})
        frames += n
    for key in (k for k, ft in features.items() if ft["dtype"] == "video"):
        features[key]["info"] = _video_info(root / V2_VIDEO_PATH.format(episode_chunk=0, video_key=key,
                                                                        episode_index=0))
    info = _info("v2.1", robot_type, fps, features, len(episodes), frames, len(tasks), Limits())
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))
    for name, rows in (("episodes", ep_rows), ("episodes_stats", stat_rows),
                       ("tasks", [{"task_index": i, "task": t} for t, i in tasks.items()])):
        (root / f"meta/{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root
