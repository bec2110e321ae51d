"""Sensor realism for batched simulated sensors: rate, latency, noise, quantization, saturation, dead elements.

In the spirit of dm_control's observables/corruptors, but batched over ``num_envs`` environments, configured per
sensor with a :class:`SensorCfg`, and pure numpy (no MuJoCo dependency). All quantities are SI: rates in Hz, times in
seconds, noise and saturation in the sensor's own unit (N for forces, rad for joint angles, ...).

Semantics
---------
**Rate (sample-and-hold).** A :class:`SensorChannel` does not keep time itself. The env calls
:meth:`SensorChannel.push` once per *sample period* (every ``rate_to_period_steps(cfg.rate_hz, physics_dt)``
physics steps, or once per control step when ``cfg.rate_hz is None``) and :meth:`SensorChannel.read` once per
control step. Between two pushes ``read()`` keeps returning the same value: the reading is held until the next
sample, as a real sensor sampling slower than the controller would appear. The env passes the actual sample
period to the channel (``sample_period_s``); when ``cfg.rate_hz`` is set the two must agree.

**Latency (delay of whole samples).** Latency is modelled as a delay of an integer number of samples,
``latency_samples = round(latency_s / sample_period_s)`` (nearest, halves rounded up). With
``latency_samples == k``, after pushes ``s_1 .. s_n`` the delivered reading is ``s_{n-k}``. Until ``k`` samples
have been pushed since a reset, the oldest available sample is delivered, i.e. the (corrupted) ``initial`` reading
given to :meth:`SensorChannel.reset`, or zeros.

**History.** With ``history = H > 1``, ``read()`` returns the ``H`` most recent *delivered* readings, shape
``(num_envs, H, *shape)``, ordered **oldest first, newest last**: ``out[:, -1]`` is what ``history=1`` would
return, ``out[:, -2]`` the delivered reading one sample period before it, and so on. Latency applies to the whole
window.

**Corruption, applied once at sample time (in push), in this order:**

1. *dead elements*: a per-episode mask (drawn in ``reset``) zeroes whole elements, e.g. all channels of a taxel.
   A dead element reads exactly 0 for the whole episode: it stays 0 through the later stages (no noise is added
   to it, and 0 survives quantization and saturation).
2. *noise*: ``x <- x * (1 + noise_rel * n_rel) + noise_std * n_abs`` with independent standard normals, drawn per
   env from that env's own ``numpy.random.Generator``. When ``nonneg=True`` the result is clipped at 0.
3. *quantization*: ``x <- round(x / quantization) * quantization`` (nearest step, numpy's half-to-even).
4. *saturation*: ``x <- clip(x, -saturation, saturation)`` (``[0, saturation]`` when ``nonneg=True``).

Because corruption happens at sample time, a held reading does not get fresh noise on every control step, and the
delayed reading is exactly the corrupted sample taken ``latency_samples`` periods ago.

Randomness
----------
All randomness comes from the Generators passed to ``reset``/``push`` (one per env; never numpy's global state),
so each episode is reproducible from its own seed whatever batch slot it runs in. Per env and per call the draw
order is fixed: ``reset`` draws the dead mask (``Generator.permutation`` over elements, only when
``dead_fraction > 0``) and then, only when ``initial`` is given and noise is on, one noise block; ``push`` draws one
``standard_normal`` block of shape ``(n_noise, *shape)`` where ``n_noise`` is the number of enabled noise terms
(index 0 additive, then multiplicative). No draws at all happen when ``noise_std == noise_rel == 0``.

Example
-------
>>> cfg = SensorCfg(rate_hz=100.0, latency_s=0.02, noise_std=0.05, saturation=20.0)
>>> ch = SensorChannel("fingertip_force", cfg, (3,), num_envs=2, sample_period_s=0.01, nonneg=True)
>>> rngs = [np.random.default_rng(s) for s in (0, 1)]
>>> ch.reset(np.arange(2), rngs)
>>> ch.push(np.ones((2, 3)), rngs)
>>> ch.read().shape
(2, 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SensorCfg", "SensorChannel", "rate_to_period_steps"]

try:  # the per-sample corruption runs in the env's hot loop: one compiled pass instead of ~8 numpy calls
    import numba

    _njit = numba.njit(cache=True, nogil=True)
except ImportError:  # pragma: no cover - numba is a core dependency
    def _njit(fn):
        return fn


@_njit
def _corrupt_into(clean, noise, scale, has_add, has_rel, std, rel, has_q, q, has_lo, lo, has_hi, hi, is_u8, dead,
                  chan, buf, slots):  # pragma: no cover - jitted
    """Corrupt samples and write them into ring slots.

    clean (n, s, m) clean samples, m = elements × channels flattened; noise (n, k, s, m) standard normals,
    additive block first, multiplicative last; dead (n, elements) bool, or (n, 0) for none; chan = channels per
    element; buf (n, ring, m) the ring buffer; slots (s,) ring index of each sample; scale (n,) per-env factor
    on both noise terms.
    """
    n, ns, m = clean.shape
    k = noise.shape[1]
    has_dead = dead.shape[1] > 0
    for e in range(n):
        se_rel, se_std = rel * scale[e], std * scale[e]
        for si in range(ns):
            slot = slots[si]
            for j in range(m):
                if has_dead and dead[e, j // chan]:
                    buf[e, slot, j] = 0
                    continue
                x = clean[e, si, j]
                if has_rel:
                    x = x * (1.0 + se_rel * noise[e, k - 1, si, j])
                if has_add:
                    x = x + se_std * noise[e, 0, si, j]
                if has_q:
                    x = np.rint(x / q) * q
                if has_lo:
                    x = max(x, lo)
                if has_hi:
                    x = min(x, hi)
                if is_u8:
                    x = np.rint(min(max(x, 0.0), 255.0))
                buf[e, slot, j] = x

_RATE_RTOL = 1e-6


def _round_half_up(x: float) -> int:
    """Nearest integer, halves rounded up; a tiny slack absorbs float error (0.03/0.01 = 2.9999999999999996)."""
    return math.floor(x + 0.5 + 1e-9)


def rate_to_period_steps(rate_hz: float, physics_dt: float) -> int:
    """Sample period of a sensor running at ``rate_hz`` [Hz], in physics steps of ``physics_dt`` [s].

    The period must be a whole number of physics steps (relative tolerance 1e-6), since a sample can only be taken
    at a physics step. Raises ``ValueError`` otherwise, naming the nearest rates that would work.
    """
    if not (math.isfinite(physics_dt) and physics_dt > 0):
        raise ValueError(f"physics_dt must be a finite time step > 0 s, got {physics_dt!r}")
    if rate_hz is None or not (math.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(
            f"sensor rate_hz must be a finite rate > 0 Hz, got {rate_hz!r}; "
            "use rate_hz=None in SensorCfg to sample once per control step"
        )
    physics_hz = 1.0 / physics_dt
    period = physics_hz / rate_hz  # in physics steps
    steps = round(period)
    if steps < 1:
        raise ValueError(
            f"sensor rate_hz={rate_hz:g} Hz is faster than the physics rate {physics_hz:g} Hz "
            f"(physics_dt={physics_dt:g} s): expected rate_hz <= {physics_hz:g} Hz. "
            f"Fix: lower rate_hz to {physics_hz:g} Hz or an integer fraction of it, or reduce physics_dt."
        )
    if abs(period - steps) > _RATE_RTOL * period:
        lo, hi = math.floor(period), math.ceil(period)
        options = ", ".join(f"{physics_hz / k:g} Hz ({k} steps)" for k in sorted({max(lo, 1), hi}))
        raise ValueError(
            f"sensor rate_hz={rate_hz:g} Hz does not divide the physics rate {physics_hz:g} Hz "
            f"(physics_dt={physics_dt:g} s): the sample period would be {period:.6g} physics steps, expected a "
            f"whole number. Fix: use rate_hz = {physics_hz:g} / k for an integer k, e.g. {options}, "
            f"or change physics_dt."
        )
    return int(steps)


@dataclass
class SensorCfg:
    """Realism settings for one sensor. All fields in SI units; defaults give a perfect sensor."""

    # Sample rate [Hz]. None = sample once per control step (the env then passes the control period as the
    # sample period). Otherwise must divide the physics rate evenly (see rate_to_period_steps).
    rate_hz: float | None = None
    # Transport/processing delay [s]: the delivered reading is the one sampled latency_s ago, rounded to the
    # nearest whole sample period.
    latency_s: float = 0.0
    # Additive Gaussian noise standard deviation, in the sensor's unit (e.g. N, rad).
    noise_std: float = 0.0
    # Multiplicative Gaussian noise standard deviation, as a fraction of the reading (dimensionless).
    noise_rel: float = 0.0
    # Full-scale range, in the sensor's unit: readings are clipped to [-saturation, saturation]
    # ([0, saturation] for non-negative sensors). None = no clipping.
    saturation: float | None = None
    # Fraction in [0, 1) of elements (e.g. taxels) that read 0 for a whole episode; the dead set is drawn per
    # episode at reset, round(dead_fraction * n_elements) elements per env.
    dead_fraction: float = 0.0
    # Quantization step, in the sensor's unit (e.g. ADC resolution): readings are rounded to a multiple of it.
    # None = off.
    quantization: float | None = None

    def validate(self) -> list[str]:
        """Problems with this config, as human-readable strings (empty list = OK)."""
        problems: list[str] = []

        def _finite(name: str, value: float) -> bool:
            if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
                problems.append(f"{name} must be a number, got {value!r}")
                return False
            if not math.isfinite(value):
                problems.append(f"{name} must be finite, got {value!r}")
                return False
            return True

        if self.rate_hz is not None and _finite("rate_hz", self.rate_hz) and self.rate_hz <= 0:
            problems.append(
                f"rate_hz must be > 0 Hz, got {self.rate_hz!r}; use rate_hz=None to sample every control step"
            )
        if _finite("latency_s", self.latency_s) and self.latency_s < 0:
            problems.append(f"latency_s must be >= 0 s, got {self.latency_s!r}")
        if _finite("noise_std", self.noise_std) and self.noise_std < 0:
            problems.append(f"noise_std must be >= 0 (a standard deviation), got {self.noise_std!r}")
        if _finite("noise_rel", self.noise_rel) and self.noise_rel < 0:
            problems.append(f"noise_rel must be >= 0 (a relative standard deviation), got {self.noise_rel!r}")
        if self.saturation is not None and _finite("saturation", self.saturation) and self.saturation <= 0:
            problems.append(f"saturation must be > 0 or None (no clipping), got {self.saturation!r}")
        if _finite("dead_fraction", self.dead_fraction) and not 0.0 <= self.dead_fraction < 1.0:
            problems.append(f"dead_fraction must be in [0, 1), got {self.dead_fraction!r}")
        if (
            self.quantization is not None
            and _finite("quantization", self.quantization)
            and self.quantization <= 0
        ):
            problems.append(f"quantization must be > 0 or None (off), got {self.quantization!r}")
        if problems:
            return problems
        # Cross-field checks (only meaningful once every field is individually valid).
        if (
            self.quantization is not None
            and self.saturation is not None
            and self.quantization > self.saturation
        ):
            problems.append(
                f"quantization step {self.quantization!r} is larger than saturation {self.saturation!r}: every "
                "reading would quantize to 0 or beyond full scale"
            )
        if self.rate_hz is not None and self.latency_s > 0:
            period = 1.0 / self.rate_hz
            if _round_half_up(self.latency_s / period) == 0:
                problems.append(
                    f"latency_s={self.latency_s!r} s rounds to 0 samples at rate_hz={self.rate_hz!r} Hz "
                    f"(period {period:g} s); latency is a whole number of samples, so use latency_s >= "
                    f"{period / 2:g} s or 0"
                )
        return problems


class SensorChannel:
    """One sensor stream for a batch of ``num_envs`` environments.

    Args:
        name: sensor name (for messages).
        cfg: realism settings; validated here (``ValueError`` listing every problem).
        shape: shape of one clean reading for one env, e.g. ``(4, 4, 3)`` for a 4x4 taxel grid with 3 channels.
        num_envs: batch size.
        sample_period_s: time between two ``push`` calls [s]; must equal ``1 / cfg.rate_hz`` when that is set.
        history: how many most-recent delivered samples ``read()`` returns (>= 1); oldest first.
        nonneg: the quantity is physically >= 0 (e.g. normal force): noisy readings are clipped at 0 and
            saturation clips to ``[0, saturation]``.
        element_dims: how many leading dims of ``shape`` index elements that can die (2 for a ``(rows, cols, 3)``
            grid: a dead taxel zeroes all 3 channels). 0 = the whole reading is one element, and then
            ``dead_fraction`` must be 0.
        dtype: float dtype of the readings (float32 or float64).

    Call :meth:`reset` for every env before the first ``push``/``read``; before that, the dead mask is empty and
    the buffers hold zeros.
    """

    def __init__(
        self,
        name: str,
        cfg: SensorCfg,
        shape: tuple[int, ...],
        num_envs: int,
        sample_period_s: float,
        *,
        history: int = 1,
        nonneg: bool = False,
        element_dims: int = 0,
        dtype=np.float32,
        max_extra_latency_s: float = 0.0,
    ) -> None:
        problems = cfg.validate()
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            problems.append(f"shape must have non-negative dims, got {shape}")
        if int(num_envs) < 1:
            problems.append(f"num_envs must be >= 1, got {num_envs!r}")
        if int(history) < 1:
            problems.append(f"history must be >= 1, got {history!r}")
        if not 0 <= int(element_dims) <= len(shape):
            problems.append(f"element_dims must be in [0, len(shape)={len(shape)}], got {element_dims!r}")
        if element_dims == 0 and cfg.dead_fraction > 0:
            problems.append(
                f"dead_fraction={cfg.dead_fraction!r} needs element_dims >= 1 (which leading dims of the reading "
                "are elements that can die); with element_dims=0 the whole reading is one element"
            )
        try:
            sample_period_s = float(sample_period_s)
        except (TypeError, ValueError):
            sample_period_s = math.nan
        if not (math.isfinite(sample_period_s) and sample_period_s > 0):
            problems.append(f"sample_period_s must be a finite time > 0 s, got {sample_period_s!r}")
        elif (
            cfg.rate_hz is not None
            and cfg.rate_hz > 0
            and abs(sample_period_s * cfg.rate_hz - 1.0) > _RATE_RTOL
        ):
            problems.append(
                f"sample_period_s={sample_period_s!r} s does not match rate_hz={cfg.rate_hz!r} Hz "
                f"(expected {1.0 / cfg.rate_hz!r} s); pass the sensor's own period, "
                "physics_dt * rate_to_period_steps(rate_hz, physics_dt)"
            )
        store = np.dtype(dtype)
        if store not in (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.uint8)):
            problems.append(f"dtype must be float32, float64 or uint8 (8-bit images), got {store}")
        # uint8 readings (camera images) are corrupted in float32 and stored rounded and clipped to [0, 255]
        dt = np.dtype(np.float32) if store == np.uint8 else store
        if problems:
            raise ValueError(f"sensor {name!r}: invalid configuration:\n  - " + "\n  - ".join(problems))

        self.name = name
        self.cfg = cfg
        self.shape = shape
        self.num_envs = int(num_envs)
        self.sample_period_s = float(sample_period_s)
        self.history = int(history)
        self.nonneg = bool(nonneg)
        self.element_dims = int(element_dims)
        self.dtype = dt  # dtype the corruption is computed in
        self.store_dtype = store  # dtype of delivered readings

        self._latency = _round_half_up(cfg.latency_s / self.sample_period_s)
        # per-episode extra latency (domain randomization) needs room in the ring for older samples
        self._max_extra = _round_half_up(max(0.0, float(max_extra_latency_s)) / self.sample_period_s)
        self._len = self._latency + self._max_extra + self.history  # ring length: the oldest delivered sample
        self._env_lat = np.full(self.num_envs, self._latency, np.int64)  # per-env latency (samples)
        self._uniform_lat = True
        self._ages = np.arange(self.history - 1, -1, -1)  # oldest first
        self._buf = np.zeros((self.num_envs, self._len, *shape), dtype=store)
        self._slots = [self._buf[:, i] for i in range(self._len)]  # cached views, one per ring slot
        self._head = 0  # ring index of the newest sample

        # Ring indices delivered by read() when every env has the same latency, per (latency, head); built lazily.
        self._read_tables: dict[int, list] = {}

        # Dead elements.
        elem_shape = shape[: self.element_dims]
        self._n_elem = math.prod(elem_shape) if self.element_dims else 1
        self._n_dead = _round_half_up(cfg.dead_fraction * self._n_elem) if self.element_dims else 0
        self._dead = np.zeros((self.num_envs, *elem_shape), dtype=bool)

        # Corruption constants for the compiled kernel (see _corrupt_into).
        self._n_noise = int(cfg.noise_std > 0) + int(cfg.noise_rel > 0)
        self._has_add = cfg.noise_std > 0
        self._has_rel = cfg.noise_rel > 0
        lo = 0.0 if self.nonneg else (None if cfg.saturation is None else -float(cfg.saturation))
        hi = None if cfg.saturation is None else float(cfg.saturation)
        self._kconst = (float(cfg.noise_std), float(cfg.noise_rel), cfg.quantization is not None,
                        float(cfg.quantization or 1.0), lo is not None, lo or 0.0, hi is not None, hi or 0.0,
                        store == np.uint8)
        self._m = math.prod(shape)  # numbers per reading
        self._chan = math.prod(shape[self.element_dims:]) if self.element_dims else max(self._m, 1)
        self._scale = np.ones(self.num_envs, np.float64)  # per-episode noise factor (set_episode)
        self._buf_flat = self._buf.reshape(self.num_envs, self._len, self._m)
        # same memory as _dead, flattened per env (elements); (n, 0) when no element can die
        self._dead_flat = self._dead.reshape(self.num_envs, -1) if self._n_dead else np.zeros((self.num_envs, 0), bool)
        self._many_noise: dict[int, np.ndarray] = {}  # noise work buffers by sample count
        self._many_slots: dict[tuple[int, int], np.ndarray] = {}  # ring slots by (head, sample count)
        self._full_shape = (self.num_envs, *shape)

    # ------------------------------------------------------------------ properties

    @property
    def latency_samples(self) -> int:
        """Delay of delivered readings, in whole samples: ``round(latency_s / sample_period_s)``."""
        return self._latency

    @property
    def latency_effective_s(self) -> float:
        """Delay actually applied [s]: ``latency_samples * sample_period_s``."""
        return self._latency * self.sample_period_s

    @property
    def dead_mask(self) -> np.ndarray:
        """``(num_envs, *shape[:element_dims])`` bool, True = dead for the current episode (a copy)."""
        return self._dead.copy()

    @property
    def num_dead(self) -> int:
        """Dead elements per env per episode: ``round(dead_fraction * n_elements)``."""
        return self._n_dead

    def __repr__(self) -> str:
        return (
            f"SensorChannel({self.name!r}, shape={self.shape}, num_envs={self.num_envs}, "
            f"period={self.sample_period_s:g} s, latency_samples={self._latency}, history={self.history})"
        )

    # ------------------------------------------------------------------ corruption

    # ------------------------------------------------------------------ API

    def reset(
        self, env_ids: np.ndarray, rngs: Sequence[np.random.Generator], initial: np.ndarray | None = None
    ) -> None:
        """Start a new episode for ``env_ids``.

        Args:
            env_ids: ``(k,)`` int indices of the envs being reset (others are untouched).
            rngs: one ``numpy.random.Generator`` per id in ``env_ids`` (same order), owned by the env per episode.
            initial: ``(k, *shape)`` clean reading to fill the history/latency buffers with (corrupted once, with
                the same corruption as ``push``, and held in every slot), or None for zeros (no noise drawn).

        Draws the dead-element mask first (when ``dead_fraction > 0``), then the initial noise.
        """
        env_ids = np.asarray(env_ids, dtype=np.intp).reshape(-1)
        k = env_ids.shape[0]
        if len(rngs) != k:
            raise ValueError(f"sensor {self.name!r}: reset got {k} env ids but {len(rngs)} generators")
        if k == 0:
            return
        if env_ids.min() < 0 or env_ids.max() >= self.num_envs:
            raise IndexError(f"sensor {self.name!r}: env_ids out of range [0, {self.num_envs}): {env_ids}")
        if np.unique(env_ids).shape[0] != k:
            raise ValueError(f"sensor {self.name!r}: duplicate env ids in reset: {env_ids}")

        if self._n_dead:
            dead = np.zeros((k, self._n_elem), dtype=bool)
            for i, rng in enumerate(rngs):
                dead[i, rng.permutation(self._n_elem)[: self._n_dead]] = True
            self._dead[env_ids] = dead.reshape((k, *self.shape[: self.element_dims]))

        if initial is None:
            self._buf[env_ids] = 0
            return
        x = np.array(initial, dtype=self.dtype, copy=True)
        if x.shape != (k, *self.shape):
            raise ValueError(
                f"sensor {self.name!r}: initial has shape {x.shape}, expected {(k, *self.shape)} (k=len(env_ids))"
            )
        noise = np.empty((k, self._n_noise, 1, self._m), dtype=self.dtype)
        if self._n_noise:
            for i, rng in enumerate(rngs):
                rng.standard_normal(dtype=self.dtype, out=noise[i])
        first = np.empty((k, 1, self._m), dtype=self.store_dtype)
        _corrupt_into(x.reshape(k, 1, self._m), noise, self._scale[env_ids], self._has_add, self._has_rel,
                      *self._kconst, self._dead_flat[env_ids], self._chan, first, np.zeros(1, np.int64))
        self._buf[env_ids] = first.reshape(k, 1, *self.shape)  # held in every slot until new samples arrive

    def push(self, clean: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        """Take one sample for every env: corrupt ``clean`` ``(num_envs, *shape)`` and append it to the ring.

        ``rngs``: one Generator per env (``len == num_envs``); only used when noise is enabled. Call once per
        sample period.
        """
        if np.shape(clean) != self._full_shape:
            raise ValueError(
                f"sensor {self.name!r}: push got shape {np.shape(clean)}, expected {self._full_shape}"
            )
        self._push(np.asarray(clean)[:, None], rngs)

    def push_many(self, clean: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        """Take ``S`` consecutive samples at once: ``clean`` is ``(num_envs, S, *shape)``, oldest first.

        Same result as ``S`` calls to :meth:`push` (the same noise draws, in the same order) — the env records
        touch at every physics substep and hands over all samples of a control step together.
        """
        clean = np.asarray(clean)
        n_samples = clean.shape[1] if clean.ndim == len(self._full_shape) + 1 else -1
        if clean.shape != (self.num_envs, n_samples, *self.shape):
            raise ValueError(
                f"sensor {self.name!r}: push_many got shape {np.shape(clean)}, expected "
                f"{(self.num_envs, 'S', *self.shape)}"
            )
        self._push(clean, rngs)

    def _push(self, clean: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        n_samples = clean.shape[1]
        if self._n_noise and len(rngs) != self.num_envs:
            raise ValueError(f"sensor {self.name!r}: push needs {self.num_envs} generators, got {len(rngs)}")
        noise = self._many_noise.get(n_samples)
        if noise is None:  # (n, n_noise, S, m): per env one contiguous draw, additive block first
            noise = np.empty((self.num_envs, self._n_noise, n_samples, self._m), dtype=self.dtype)
            self._many_noise[n_samples] = noise
        if self._n_noise:
            dt = self.dtype
            for i, rng in enumerate(rngs):
                rng.standard_normal(dtype=dt, out=noise[i])
        slots = self._many_slots.get((self._head, n_samples))
        if slots is None:
            slots = (self._head + 1 + np.arange(n_samples)) % self._len
            self._many_slots[(self._head, n_samples)] = slots
        flat = clean.reshape(self.num_envs, n_samples, self._m)
        if flat.dtype != self.dtype:
            flat = flat.astype(self.dtype)
        _corrupt_into(flat, noise, self._scale, self._has_add, self._has_rel, *self._kconst, self._dead_flat,
                      self._chan, self._buf_flat, slots)
        self._head = int(slots[-1])

    def read(self) -> np.ndarray:
        """Delivered readings (a new array).

        Returns ``(num_envs, *shape)`` when ``history == 1``: the sample taken ``latency_samples`` samples ago.
        Otherwise ``(num_envs, history, *shape)``, oldest first, newest (= the ``history == 1`` reading) last.
        Before enough samples exist since a reset, the oldest available (initial) reading fills in.
        """
        if self._uniform_lat:
            lat = int(self._env_lat[0])
            table = self._read_tables.get(lat)
            if table is None:
                table = [(h - lat - self._ages) % self._len for h in range(self._len)]
                self._read_tables[lat] = table
            if self.history == 1:
                return self._slots[int(table[self._head][0])].copy()
            return self._buf[:, table[self._head]]
        idx = (self._head - self._env_lat[:, None] - self._ages[None, :]) % self._len  # (n, history)
        out = self._buf[np.arange(self.num_envs)[:, None], idx]
        return out[:, 0] if self.history == 1 else out

    def set_episode(self, env_ids: np.ndarray, noise_scale: np.ndarray | None = None,
                    extra_latency_s: np.ndarray | None = None) -> None:
        """Per-episode sensor randomization of ``env_ids``: a factor on both noise terms, and latency added to
        ``cfg.latency_s`` (s, rounded to whole samples, at most ``max_extra_latency_s``)."""
        env_ids = np.asarray(env_ids, dtype=np.intp).reshape(-1)
        if noise_scale is not None:
            if np.any(np.asarray(noise_scale) < 0):
                raise ValueError(f"sensor {self.name!r}: noise_scale must be >= 0, got {noise_scale}")
            self._scale[env_ids] = noise_scale
        if extra_latency_s is not None:
            extra = np.floor(np.asarray(extra_latency_s, float) / self.sample_period_s + 0.5 + 1e-9).astype(np.int64)
            if np.any(extra < 0) or np.any(extra > self._max_extra):
                raise ValueError(
                    f"sensor {self.name!r}: extra latency {extra_latency_s} s outside [0, "
                    f"{self._max_extra * self.sample_period_s:g}] s; raise max_extra_latency_s")
            self._env_lat[env_ids] = self._latency + extra
        self._uniform_lat = bool((self._env_lat == self._env_lat[0]).all())

    @property
    def episode_latency_samples(self) -> np.ndarray:
        """(num_envs,) latency of each env's current episode, in samples."""
        return self._env_lat.copy()
