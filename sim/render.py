"""Offscreen camera rendering for the MuJoCo backend: EGL by default, OSMesa as fallback, fast settings.

`MUJOCO_GL` picks the OpenGL platform (`egl` or `osmesa`). When it is unset, `select_gl()` probes EGL once in a
subprocess (PyOpenGL fixes its platform at first import, so a failed EGL context cannot be retried in-process) and
falls back to OSMesa (`apt install libosmesa6`). Fast settings: no shadows, reflections, skybox or multisampling —
MuJoCo's defaults render about 50× slower on a software rasteriser.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import weakref

import numpy as np

_PROBE = "from mujoco.egl import GLContext; c = GLContext(8, 8); c.make_current(); c.free(); print('ok')"


def select_gl() -> str:
    """Set `MUJOCO_GL` / `PYOPENGL_PLATFORM` before any OpenGL import; returns the platform chosen."""
    chosen = os.environ.get("MUJOCO_GL", "").lower()
    if not chosen:
        env = {**os.environ, "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}
        probe = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)
        chosen = "egl" if "ok" in probe.stdout else "osmesa"
        os.environ["MUJOCO_GL"] = chosen
    if chosen not in ("egl", "osmesa", "glfw"):
        raise RuntimeError(f"MUJOCO_GL={chosen!r} is not supported for offscreen rendering; use egl or osmesa")
    os.environ.setdefault("PYOPENGL_PLATFORM", chosen if chosen != "glfw" else "")
    return chosen


def _gl_context(width: int, height: int):
    platform = select_gl()
    try:
        if platform == "egl":
            from mujoco.egl import GLContext
        elif platform == "osmesa":
            from mujoco.osmesa import GLContext
        else:
            from mujoco.glfw import GLContext
        ctx = GLContext(width, height)
        ctx.make_current()
        _hook_exit()
        return ctx
    except Exception as e:  # the platform's libraries are missing or broken
        raise RuntimeError(
            f"could not create an offscreen OpenGL context with MUJOCO_GL={platform}: {e}. "
            "Fix: install EGL (libegl1, libgl1-mesa-dri) or OSMesa (`apt install libosmesa6`) and set "
            "MUJOCO_GL=egl or MUJOCO_GL=osmesa before starting Python; or disable cameras (cameras={})."
        ) from e


_LIVE: weakref.WeakSet = weakref.WeakSet()
_HOOKED = False


def _close_all() -> None:
    # free GL contexts before interpreter teardown; freeing them later raises inside PyOpenGL
    for r in list(_LIVE):
        with contextlib.suppress(Exception):
            r.close()


def _hook_exit() -> None:
    """Register `_close_all` after the GL platform module (atexit is LIFO: ours must run before its teardown)."""
    global _HOOKED
    if not _HOOKED:
        atexit.register(_close_all)
        _HOOKED = True


class Renderer:
    """Renders named cameras of one MjModel at per-camera resolutions into uint8 RGB (and float32 depth, m).

    One GL context and one offscreen buffer sized to the largest camera; each camera renders into a viewport.
    """

    def __init__(self, model, max_width: int, max_height: int, max_geom: int = 2000):
        import mujoco

        self._mj = mujoco
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), max_width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), max_height)
        model.vis.quality.offsamples = 0
        model.vis.quality.shadowsize = 0
        self._ctx = _gl_context(max_width, max_height)
        self._scene = mujoco.MjvScene(model, maxgeom=max_geom)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX, mujoco.mjtRndFlag.mjRND_FOG):
            self._scene.flags[flag] = 0
        self._con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._con)
        self._opt = mujoco.MjvOption()
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._model = model
        _LIVE.add(self)

    def render(self, model, data, camera: str | int, width: int, height: int, depth: bool = False):
        """(height, width, 3) uint8 RGB, and (height, width) float32 depth in m when `depth`."""
        mj = self._mj
        self._ctx.make_current()
        self._cam.fixedcamid = camera if isinstance(camera, int) else model.camera(camera).id
        mj.mjv_updateScene(model, data, self._opt, None, self._cam, mj.mjtCatBit.mjCAT_ALL, self._scene)
        rect = mj.MjrRect(0, 0, width, height)
        mj.mjr_render(rect, self._scene, self._con)
        rgb = np.empty((height, width, 3), np.uint8)
        raw_depth = np.empty((height, width), np.float32) if depth else None
        mj.mjr_readPixels(rgb, raw_depth, rect, self._con)
        rgb = np.flipud(rgb)
        if not depth:
            return rgb, None
        # OpenGL depth buffer in [0, 1] → metric distance along the optical axis
        extent = model.stat.extent
        near, far = model.vis.map.znear * extent, model.vis.map.zfar * extent
        z = near / (1.0 - raw_depth * (1.0 - near / far))
        return rgb, np.flipud(z).astype(np.float32)

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.make_current()
            self._con.free()
            self._ctx.free()
            self._ctx = None

    def __del__(self):  # contexts freed at interpreter exit raise inside PyOpenGL; free them early
        with contextlib.suppress(Exception):
            self.close()
