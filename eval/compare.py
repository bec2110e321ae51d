"""`rho eval compare <report A> <report B>`: success rates side by side per cell, level, task and overall, with
the difference (B − A) and whether it is significant.

Tests (`test=`): `fisher` (two-sided Fisher exact, the default: exact at the small N of simulation suites), `z`
(pooled two-proportion z-test) or `mcnemar` (exact, paired: uses each episode's outcome, valid because both
reports ran the same seeded episodes; falls back to Fisher where the episode seeds differ).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from .metrics import fisher_exact, mcnemar_exact, two_proportion_z

Test = Literal["fisher", "z", "mcnemar"]


def load_report(path: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A report dict, or the report.json of a report directory (or the file itself)."""
    if isinstance(path, dict):
        return path
    p = Path(path)
    p = p / "report.json" if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"no evaluation report at {path} (expected a report directory or its report.json)")
    return json.loads(p.read_text())


def _rows(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    rows = {(c["task"], c["level"]): c for c in report["per_cell"]}
    rows |= {("all", lv): s for lv, s in report["per_level"].items()}
    rows |= {(t, "all"): s for t, s in report["per_task"].items()}
    rows[("all", "all")] = report["overall"]
    return rows


def _paired(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a.get("episode_seeds")) and a.get("episode_seeds") == b.get("episode_seeds")


def _p_value(a: dict[str, Any], b: dict[str, Any], test: str) -> tuple[float, str]:
    k1, n1, k2, n2 = a["successes"], a["episodes"], b["successes"], b["episodes"]
    if test == "z":
        return two_proportion_z(k1, n1, k2, n2), "z"
    if test == "mcnemar" and _paired(a, b):
        only_a = sum(x == "1" and y == "0" for x, y in zip(a["outcomes"], b["outcomes"], strict=True))
        only_b = sum(x == "0" and y == "1" for x, y in zip(a["outcomes"], b["outcomes"], strict=True))
        return mcnemar_exact(only_a, only_b), "mcnemar"
    return fisher_exact(k1, n1, k2, n2), "fisher"


def compare(a: str | Path | dict[str, Any], b: str | Path | dict[str, Any], alpha: float = 0.05,
            test: Test = "fisher") -> dict[str, Any]:
    """Rows for every (task, level) both reports share — cells, then 'all' aggregates — with A's and B's success
    rate and CI, the difference B − A, the p-value and `significant` (p < alpha)."""
    if test not in ("fisher", "z", "mcnemar"):
        raise ValueError(f"test must be fisher, z or mcnemar, got {test!r}")
    ra, rb = load_report(a), load_report(b)
    xa, xb = _rows(ra), _rows(rb)
    rows = []
    for key in [k for k in xa if k in xb]:
        sa, sb = xa[key], xb[key]
        p, used = _p_value(sa, sb, test)
        diff = (sb["success_rate"] or 0.0) - (sa["success_rate"] or 0.0)
        rows.append({"task": key[0], "level": key[1], "a": _side(sa), "b": _side(sb), "diff": diff, "p_value": p,
                     "test": used, "significant": p < alpha, "same_episodes": _paired(sa, sb)})
    return {"a": {"policy": ra["policy"]["name"], "suite": ra["suite"]["name"]},
            "b": {"policy": rb["policy"]["name"], "suite": rb["suite"]["name"]}, "alpha": alpha, "test": test,
            "only_in_a": [list(k) for k in xa if k not in xb], "only_in_b": [list(k) for k in xb if k not in xa],
            "rows": rows}


def _side(s: dict[str, Any]) -> dict[str, Any]:
    return {"successes": s["successes"], "episodes": s["episodes"], "success_rate": s["success_rate"],
            "ci95": s["ci95"]}


def compare_markdown(result: dict[str, Any]) -> str:
    a, b = result["a"]["policy"], result["b"]["policy"]
    head = f"| task | level | A: {a} | B: {b} | B − A | p ({result['test']}) | significant |"
    lines = [f"A = {a} ({result['a']['suite']}), B = {b} ({result['b']['suite']}); significant at "
             f"p < {result['alpha']:g}", "", head, "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        sa, sb = r["a"], r["b"]
        mark = "**yes**" if r["significant"] else "no"
        same = "" if r["same_episodes"] or r["task"] == "all" or r["level"] == "all" else " (different episodes)"
        lines.append(f"| {r['task']} | {r['level']} | {_rate(sa)} | {_rate(sb)} | {r['diff']:+.0%} | "
                     f"{r['p_value']:.3g} | {mark}{same} |")
    for side in ("only_in_a", "only_in_b"):
        if result[side]:
            lines.append(f"\n{side.replace('_', ' ')}: " + ", ".join("/".join(k) for k in result[side]))
    return "\n".join(lines) + "\n"


def _rate(s: dict[str, Any]) -> str:
    return f"{s['successes']}/{s['episodes']} ({s['success_rate']:.0%})"
