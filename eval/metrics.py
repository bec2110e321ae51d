"""Episode metrics, their aggregation, and the significance tests `compare` uses.

An episode record (one JSONL line) holds, among others: success, steps, duration_s, time_to_success_s (s, None on
failure), progress (final, [0, 1]), progress_max, peak_force_n (largest pad net normal force over the episode, N),
peak_force_pad, force_violation_steps (control steps whose largest pad normal force exceeded the limit),
force_violation_s, sim_failed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rho.tasks.run_expert import wilson_interval

__all__ = ["fisher_exact", "force_stats", "mcnemar_exact", "summarize", "two_proportion_z", "wilson_interval"]


def force_stats(force: np.ndarray, limit: float, control_dt: float, pads: Sequence[str] = ()) -> dict[str, Any]:
    """Peak force and limit violations of one episode from its (steps, pads) pad net normal forces in N.

    A violation is a control step whose largest pad force exceeds `limit`; non-finite readings (a diverged sim)
    are ignored."""
    f = np.asarray(force, np.float64)
    if f.size == 0 or not np.isfinite(f).any():
        return {"peak_force_n": None, "peak_force_pad": None, "force_violation_steps": 0, "force_violation_s": 0.0}
    f = np.where(np.isfinite(f), f, -np.inf).reshape(len(f), -1)
    over = int(np.sum(f.max(axis=1) > limit))
    t, p = np.unravel_index(int(np.argmax(f)), f.shape)
    return {"peak_force_n": float(f[t, p]), "peak_force_pad": pads[p] if len(pads) > p else int(p),
            "force_violation_steps": over, "force_violation_s": over * control_dt}


def _mean(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def _median(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.median(v)) if v else None


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Success rate with its 95% Wilson interval and the mean episode metrics of a set of episode records."""
    n = len(records)
    k = int(sum(bool(r["success"]) for r in records))
    lo, hi = wilson_interval(k, n)
    peaks = [r.get("peak_force_n") for r in records]
    return {
        "episodes": n, "successes": k, "success_rate": k / n if n else None, "ci95": [lo, hi],
        "progress_mean": _mean(r.get("progress") for r in records),
        "progress_max_mean": _mean(r.get("progress_max") for r in records),
        "time_to_success_s_mean": _mean(r.get("time_to_success_s") for r in records),
        "time_to_success_s_median": _median(r.get("time_to_success_s") for r in records),
        "peak_force_n_mean": _mean(peaks),
        "peak_force_n_max": max((p for p in peaks if p is not None), default=None),
        "force_violation_episodes": int(sum(r.get("force_violation_steps", 0) > 0 for r in records)),
        "force_violation_steps_mean": _mean(r.get("force_violation_steps", 0) for r in records),
        "sim_failures": int(sum(bool(r.get("sim_failed")) for r in records)),
    }


# ------------------------------------------------------------------------------------------ significance tests
def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact test p-value of k1/n1 vs k2/n2 successes (sum of tables no more likely than the
    observed one, with the margins fixed)."""
    total, n = k1 + k2, n1 + n2
    if n1 == 0 or n2 == 0:
        return 1.0

    def logp(x: int) -> float:
        return _log_comb(n1, x) + _log_comb(n2, total - x) - _log_comb(n, total)

    observed = logp(k1)
    xs = range(max(0, total - n2), min(total, n1) + 1)
    return min(1.0, sum(math.exp(logp(x)) for x in xs if logp(x) <= observed + 1e-7))


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1 when both rates are 0 or both 1)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k2 / n2 - k1 / n1) / se
    return math.erfc(abs(z) / math.sqrt(2))


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value for paired outcomes: episodes only A solved vs only B solved."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    tail = sum(math.exp(_log_comb(m, i) - m * math.log(2)) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail)
