"""Episode videos: the cam_high view with the finger pads' taxel heatmaps beside it, encoded as H.264 mp4 (yuv420p,
faststart) so browsers play it inline.

Frame layout (height 240 px): camera (320 × 240) | touch panel (240 × 240), one heatmap per pad in a 2 × 2 grid
(rows: arms; columns: fingers a, b). A heatmap shows each taxel's normal force, rows along the finger (tip up), on
a fixed 0..`vmax` N scale so frames compare; the pad's net normal force is printed above it.
"""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

PANEL = 240  # touch panel width and height (px)

# inferno-like colour ramp, anchors from black to pale yellow
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64)


def colormap(values: np.ndarray, vmax: float) -> np.ndarray:
    """(...,) forces in N → (..., 3) uint8 colours on a 0..vmax ramp."""
    x = np.clip(np.nan_to_num(np.asarray(values, np.float64)) / vmax, 0.0, 1.0) * (len(_ANCHORS) - 1)
    i = np.minimum(x.astype(int), len(_ANCHORS) - 2)
    w = (x - i)[..., None]
    return ((1 - w) * _ANCHORS[i] + w * _ANCHORS[i + 1]).astype(np.uint8)


def touch_panel(taxels: np.ndarray, net: np.ndarray, pads: list[str], vmax: float) -> np.ndarray:
    """(pads, rows, cols) taxel normal forces and (pads,) net normal forces in N → (PANEL, PANEL, 3) uint8."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (PANEL, PANEL), (24, 24, 28))
    draw = ImageDraw.Draw(img)
    cell, label = PANEL // 2, 14
    side = cell - label - 14  # heatmap side (px), leaving room for the scale note
    for j, pad in enumerate(pads[:4]):
        x0, y0 = (j % 2) * cell + 4, (j // 2) * cell + 2
        heat = colormap(taxels[j][::-1], vmax)  # tip (last row) at the top
        tile = Image.fromarray(heat).resize((side, side), Image.Resampling.NEAREST)
        img.paste(tile, (x0 + (cell - 8 - side) // 2, y0 + label))
        draw.text((x0, y0), f"{pad} {float(np.nan_to_num(net[j])):5.1f} N", fill=(230, 230, 230))
    draw.text((4, PANEL - 11), f"taxel normal 0-{vmax:g} N", fill=(160, 160, 160))
    return np.asarray(img)


def compose(camera: np.ndarray, panel: np.ndarray, caption: str) -> np.ndarray:
    """Camera frame with a caption, then the touch panel to its right (heights padded to match, even sizes)."""
    from PIL import Image, ImageDraw

    h = max(camera.shape[0], panel.shape[0])
    w = camera.shape[1] + panel.shape[1]
    out = Image.new("RGB", (w + w % 2, h + h % 2), (24, 24, 28))
    out.paste(Image.fromarray(camera), (0, 0))
    out.paste(Image.fromarray(panel), (camera.shape[1], 0))
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, 0, camera.shape[1], 13), fill=(0, 0, 0))
    draw.text((3, 1), caption, fill=(255, 255, 255))
    return np.asarray(out)


class Mp4Writer:
    """H.264 mp4 through a temporary file (faststart rewrites the file to put the index first, so browsers start
    playing at once); `close()` returns the file's bytes, so a remote worker can ship them back."""

    def __init__(self, fps: float, crf: int = 26):
        import av

        self._av, self._fps, self._crf = av, fps, crf
        self._dir = tempfile.TemporaryDirectory(prefix="rho_eval_video_")
        self._path = Path(self._dir.name) / "episode.mp4"
        self._container = av.open(str(self._path), "w", options={"movflags": "faststart"})
        self._stream = None
        self.frames = 0

    def _open_stream(self, width: int, height: int) -> None:
        s = self._container.add_stream("libx264", rate=Fraction(self._fps).limit_denominator(1000),
                                       options={"crf": str(self._crf), "preset": "veryfast"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        self._stream = s

    def add(self, rgb: np.ndarray) -> None:
        if self._stream is None:
            self._open_stream(rgb.shape[1], rgb.shape[0])
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> bytes:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()
        data = self._path.read_bytes()
        self._dir.cleanup()
        return data


def probe(path: str) -> dict[str, object]:
    """Decode a video back: frame count, size and codec (to check a written file plays)."""
    import av

    with av.open(path) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(s))
        return {"frames": frames, "width": s.codec_context.width, "height": s.codec_context.height,
                "codec": s.codec_context.name, "fps": float(s.average_rate or 0)}
