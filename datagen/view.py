"""`rho dataset view`: look at an episode the way robotics people do — cameras, touch heatmaps per pad over time,
joint and action plots.

Two outputs: a Rerun recording (`.rrd`, open with `rerun file.rrd`; needs `pip install rerun-sdk`, in the
`viz` extra) with images, per-pad touch heatmaps, scalar series and the instruction, on the demo's own timeline
(`step` and `time` in s); and an image strip (`.png`, no display or extra dependency needed): one row per camera,
one per pad (normal force per taxel, white 0 N → red max), then joint and action plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .episode import Episode
from .hdf5 import Dataset

TILE = 112  # px per frame tile in the strip
PLOT_H = 140
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]


def view(path: str | Path, demo: int = 0, out: str | Path | None = None, frames: int = 10) -> dict[str, Any]:
    """Write `out` (.rrd or .png; default `<dataset>_demo<i>.png` beside it) and return what was written."""
    with Dataset(path) as ds:
        ep = ds.episode(demo)
        fps = float(ds.env_args().get("control_hz", 50.0))
    out = Path(out) if out is not None else Path(path).with_name(f"{Path(path).stem}_demo{demo}.png")
    if out.suffix == ".rrd":
        write_rrd(ep, out, fps)
    else:
        strip(ep, frames).save(out)
    return {"out": str(out), "demo": demo, "steps": ep.num_samples, "instruction": ep.meta.get("instruction", ""),
            "success": ep.success}


def strip(ep: Episode, frames: int = 10) -> Image.Image:
    """The image strip of an episode."""
    t = np.unique(np.linspace(0, ep.num_samples - 1, min(frames, ep.num_samples)).round().astype(int))
    cams = sorted(k for k in ep.obs if k.startswith("rgb_"))
    pads = sorted(k for k in ep.obs if k.startswith("touch_") and not k.startswith("touch_net_"))
    width = TILE * len(t)
    rows = [_image_row(ep.obs[c], t, c[4:]) for c in cams]
    vmax = max([float(ep.obs[p][..., 0].max()) for p in pads] + [1e-6])
    rows += [_touch_row(ep.obs[p], t, p[6:], vmax) for p in pads]
    if "joint_pos" in ep.obs:
        rows.append(_plot(ep.obs["joint_pos"], width, "joint_pos (rad, gripper 0..1)"))
    rows.append(_plot(ep.actions, width, "actions"))
    title = Image.new("RGB", (width, 18), (255, 255, 255))
    ImageDraw.Draw(title).text((4, 3), f"{ep.meta.get('instruction', '')!r}  success={ep.success}  "
                                       f"{ep.num_samples} steps", fill=(0, 0, 0))
    rows.insert(0, title)
    sheet = Image.new("RGB", (width, sum(r.height for r in rows)), (255, 255, 255))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return sheet


def _image_row(images: np.ndarray, t: np.ndarray, name: str) -> Image.Image:
    row = Image.new("RGB", (TILE * len(t), TILE))
    for j, k in enumerate(t):
        tile = Image.fromarray(images[k]).resize((TILE, TILE), Image.BILINEAR)
        ImageDraw.Draw(tile).text((3, 2), f"{name} {k}" if j == 0 else str(k), fill=(255, 255, 0))
        row.paste(tile, (j * TILE, 0))
    return row


def _heat(grid: np.ndarray, vmax: float) -> np.ndarray:
    v = np.clip(grid / vmax, 0, 1)
    return np.stack([np.full_like(v, 255), 255 * (1 - v), 255 * (1 - v)], -1).astype(np.uint8)


def _touch_row(touch: np.ndarray, t: np.ndarray, name: str, vmax: float) -> Image.Image:
    """touch (T, S, r, c, 3): the newest sample of each step's normal force."""
    row = Image.new("RGB", (TILE * len(t), TILE // 2), (255, 255, 255))
    for j, k in enumerate(t):
        g = touch[k, -1, ..., 0]
        tile = Image.fromarray(_heat(g, vmax)).resize((TILE // 2 - 6, TILE // 2 - 6), Image.NEAREST)
        row.paste(tile, (j * TILE + 3, 3))
        ImageDraw.Draw(row).text((j * TILE + TILE // 2, 3), f"{name}\n{g.sum():.1f} N" if j == 0 else
                                 f"{g.sum():.1f} N", fill=(0, 0, 0))
    return row


def _plot(series: np.ndarray, width: int, label: str) -> Image.Image:
    """Line plot of (T, D) series, each dimension min-max normalised to the panel."""
    img = Image.new("RGB", (width, PLOT_H), (255, 255, 255))
    d = ImageDraw.Draw(img)
    s = series.reshape(len(series), -1).astype(float)
    lo, hi = s.min(0), s.max(0)
    scale = np.maximum(hi - lo, 0.1)  # a joint that barely moves stays flat instead of showing its sensor noise
    x = np.linspace(4, width - 4, len(s))
    for j in range(s.shape[1]):
        y = PLOT_H - 6 - (s[:, j] - lo[j]) / scale[j] * (PLOT_H - 24)
        d.line(list(zip(x, y, strict=True)), fill=PALETTE[j % len(PALETTE)], width=1)
    d.text((4, 3), f"{label} ({s.shape[1]} dims, each scaled to its range)", fill=(0, 0, 0))
    return img


def write_rrd(ep: Episode, out: Path, fps: float) -> None:
    """A Rerun recording of the episode (`rerun <out>` opens it)."""
    try:
        import rerun as rr
    except ImportError as e:
        raise RuntimeError("writing .rrd needs rerun: `pip install 'rho-sim[viz]'` (or rerun-sdk); or save an image "
                           "strip with out=<file>.png") from e
    rr.init("rho_dataset_view", spawn=False)
    rr.save(str(out))
    rr.log("instruction", rr.TextDocument(str(ep.meta.get("instruction", ""))), static=True)
    vmax = max([float(v[..., 0].max()) for k, v in ep.obs.items() if k.startswith("touch_")
                and not k.startswith("touch_net_")] + [1e-6])
    for t in range(ep.num_samples):
        rr.set_time("step", sequence=t)
        rr.set_time("time", duration=t / fps)
        for k, v in ep.obs.items():
            if k.startswith("rgb_"):
                rr.log(f"cameras/{k[4:]}", rr.Image(v[t]))
            elif k.startswith("touch_net_"):
                rr.log(f"touch_net/{k[10:]}", rr.Scalars(v[t]))
            elif k.startswith("touch_"):
                rr.log(f"touch/{k[6:]}", rr.Image(_heat(v[t, -1, ..., 0], vmax)))
            elif k in ("joint_pos", "joint_vel"):
                rr.log(f"proprio/{k}", rr.Scalars(v[t]))
        rr.log("action", rr.Scalars(ep.actions[t]))
        rr.log("reward", rr.Scalars(ep.rewards[t : t + 1]))
    rr.disconnect()
