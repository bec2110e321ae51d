"""`rho eval compare <report A> <report B>`: success rates side by side per cell, level, task and overall, with
the difference (B − A) and whether it is significant.

Tests (`test=`): `fisher` (two-sided Fisher exact, the default: exact at the small N of simulation suites), `z`
(pooled two-proportion z-test) or `mcnemar` (exact, paired: uses each episode's outcome, valid because both
reports ran the same seeded episodes; falls back to Fisher where the episode seeds differ).

Only the (task, level) cells both reports have are compared. When one report has cells the other lacks (another
task list or levels), those cells are dropped and named (`only_in_a`, `only_in_b`), and the "all" rows are pooled
again from the shared cells alone — a report's own totals over ten tasks against another's over one would make the
overall difference, and its significance, meaningless.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from .metrics import fisher_exact, mcnemar_exact, two_proportion_z, wilson_interval

Test = Literal["fisher", "z", "mcnemar"]


def load_report(path: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A report dict, or the report.json of a report directory (or the file itself)."""
    if isinstance(path, dict):
        return path
    p = Path(path)
    p = p / "report.json" if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"no evaluation report at {path} (expected a report directory or its report.json)")
    try:
        report = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p}: not an evaluation report (invalid JSON: {e})") from None
    missing = [k for k in ("per_cell", "per_task", "per_level", "overall", "policy", "suite")
               if not isinstance(report, dict) or k not in report]
    if missing:
        raise ValueError(f"{p}: not an evaluation report (missing {missing}); expected the report.json of `rho eval`")
    return report


def _cells(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["task"], c["level"]): c for c in report["per_cell"]}


def _rows(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    rows = _cells(report)
    rows |= {("all", lv): s for lv, s in report["per_level"].items()}
    rows |= {(t, "all"): s for t, s in report["per_task"].items()}
    rows[("all", "all")] = report["overall"]
    return rows


def _pool(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Success counts of several cells together (outcomes and seeds concatenated, so paired tests still pair)."""
    k, n = sum(c["successes"] for c in cells), sum(c["episodes"] for c in cells)
    out = {"episodes": n, "successes": k, "success_rate": k / n if n else None, "ci95": list(wilson_interval(k, n))}
    if all("outcomes" in c and "episode_seeds" in c for c in cells):
        out["outcomes"] = "".join(c["outcomes"] for c in cells)
        out["episode_seeds"] = [s for c in cells for s in c["episode_seeds"]]
    return out


def _shared_rows(report: dict[str, Any], keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Rows of `report` restricted to the cells `keys`, its "all" rows pooled over those cells only."""
    cells = _cells(report)
    rows = {k: cells[k] for k in keys}
    for lv in dict.fromkeys(lv for _, lv in keys):
        rows[("all", lv)] = _pool([cells[k] for k in keys if k[1] == lv])
    for t in dict.fromkeys(t for t, _ in keys):
        rows[(t, "all")] = _pool([cells[k] for k in keys if k[0] == t])
    rows[("all", "all")] = _pool([cells[k] for k in keys])
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
    ca, cb = _cells(ra), _cells(rb)
    shared = [k for k in ca if k in cb]
    only_a, only_b = [k for k in ca if k not in cb], [k for k in cb if k not in ca]
    if not shared:
        raise ValueError(f"the reports share no (task, level) cell: A has {['/'.join(k) for k in ca]}, B has "
                         f"{['/'.join(k) for k in cb]}. Fix: compare reports of the same tasks and levels")
    if only_a or only_b:  # totals over different cells are not comparable: pool the shared cells again
        xa, xb = _shared_rows(ra, shared), _shared_rows(rb, shared)
    else:
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
            "only_in_a": [list(k) for k in only_a], "only_in_b": [list(k) for k in only_b],
            "pooled_from_shared_cells": bool(only_a or only_b), "rows": rows}


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
    if result.get("pooled_from_shared_cells"):
        n = sum(1 for r in result["rows"] if r["task"] != "all" and r["level"] != "all")
        lines.append(f"\nCompared only the {n} (task, level) cell{'' if n == 1 else 's'} both reports have; the "
                     "\"all\" rows pool those cells, not the reports' own totals.")
    for side, label in (("only_in_a", "dropped, only in A"), ("only_in_b", "dropped, only in B")):
        if result[side]:
            lines.append(f"{label}: " + ", ".join("/".join(k) for k in result[side]))
    return "\n".join(lines) + "\n"


def _rate(s: dict[str, Any]) -> str:
    return f"{s['successes']}/{s['episodes']} ({s['success_rate']:.0%})"
