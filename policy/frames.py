"""Camera frames at the policy's resolution: one resize function shared by training and inference, and a cache.

Training used to decode a gzip'd 128² frame and resize it for every sample (the bottleneck: 470–1 980 samples/s
even on a large GPU machine). `FrameCache` decodes and resizes every frame of a source once, with `resize_frames`
— the function `Policy` applies to live camera images, so train and eval pixels are identical — and keeps them as
uint8 `(frames, s, s, 3)` arrays, one `.npy` per camera, memory-mapped for random access:

    <root>/<key>/<camera>.npy      uint8 (N, s, s, 3): every frame of every demo of the source, in store order
    <root>/<key>/meta.json         what the key was made from (files with sizes and mtimes, size, version)

`key` hashes the source's files (path, size, modification time), the camera's key and the size, so a changed or
regenerated dataset gets a new cache and stale frames are never served. Written to a temporary name and renamed:
a killed build leaves no partial cache. Stores without files (LeRobot folders imported in memory) are cached in
memory instead.

Legend: N frames of the source, s the policy's image side, T a demo's steps.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

CACHE_VERSION = 1  # bump when resize_frames changes
DEFAULT_ROOT = "~/.cache/rho/frames"  # DataCfg.frame_cache's default; $RHO_FRAME_CACHE overrides it


def cache_root(root: str | Path) -> Path:
    """The folder caches go to: `root`, or $RHO_FRAME_CACHE when `root` is the default."""
    if str(root) == DEFAULT_ROOT and os.environ.get("RHO_FRAME_CACHE"):
        root = os.environ["RHO_FRAME_CACHE"]
    return Path(root).expanduser()


def resize_frames(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, size, size, 3) uint8: bilinear with antialiasing, the whole image (aspect squashed),
    rounded back to 8 bits. The one resize of the policy: training (through the cache) and inference use it."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {x.dtype} {x.shape}")
    if x.shape[1:3] == (size, size):
        return np.ascontiguousarray(x)
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
    t = functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _source_files(where: str) -> list[Path]:
    path = Path(where)
    if path.is_dir():
        return sorted(p for p in path.glob("*.hdf5") if not p.name.startswith("."))
    return [path]


def cache_key(where: str, camera_key: str, size: int) -> tuple[str, dict[str, Any]]:
    files = [{"file": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
             for p in _source_files(where)]
    meta = {"version": CACHE_VERSION, "source": str(Path(where).resolve()), "camera": camera_key, "size": int(size),
            "files": files}
    return hashlib.sha1(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16], meta


class FrameCache:
    """Resized frames of one source's cameras: `get(camera, demo, t)` → (s, s, 3) uint8."""

    def __init__(self, offsets: np.ndarray, arrays: dict[str, Any] | None = None,
                 paths: dict[str, str] | None = None) -> None:
        self.offsets = offsets  # (demos + 1,) first frame of each demo in the arrays
        self.paths = paths or {}  # camera → .npy (memory-mapped lazily, so the cache pickles into workers cheaply)
        self._arrays: dict[str, Any] = dict(arrays or {})

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.paths:
            state["_arrays"] = {}
        return state

    def has(self, camera: str) -> bool:
        return camera in self.paths or camera in self._arrays

    def array(self, camera: str) -> Any:
        if camera not in self._arrays:
            self._arrays[camera] = np.load(self.paths[camera], mmap_mode="r")
        return self._arrays[camera]

    def get(self, camera: str, demo: int, t: int) -> np.ndarray:
        return np.asarray(self.array(camera)[int(self.offsets[demo]) + int(t)])

    @classmethod
    def build(cls, store: Any, cameras: dict[str, str | None], size: int, root: str | Path = DEFAULT_ROOT,
              log: Any = None) -> FrameCache:
        """Cache `cameras` (policy camera → source obs key; None skipped) of every demo of `store`."""
        lengths = np.asarray(store.lengths, np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        files = getattr(store, "ds", None) is not None
        arrays, paths = {}, {}
        for cam, key in cameras.items():
            if key is None:
                continue
            if not files:
                arrays[cam] = np.concatenate([resize_frames(np.asarray(store.arrays(i)[key][()]), size)
                                              for i in range(store.num_demos)])
                continue
            digest, meta = cache_key(store.where, key, size)
            folder = cache_root(root) / digest
            path = folder / f"{cam}.npy"
            if not path.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                if log:
                    log(f"frame cache: resizing {key} of {store.where} to {size}² once → {path}")
                tmp = folder / f".{cam}.{os.getpid()}.tmp.npy"
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(int(offsets[-1]), size, size, 3))
                for i in range(store.num_demos):
                    out[offsets[i]:offsets[i + 1]] = resize_frames(np.asarray(store.arrays(i)[key][()]), size)
                out.flush()
                del out
                os.replace(tmp, path)
                (folder / "meta.json").write_text(json.dumps(meta, indent=1))
            paths[cam] = str(path)
        return cls(offsets, arrays, paths)


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N, s, s, 3) uint8 → (N, 3, s, s) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
