"""`Evaluation`: closed-loop evaluation of a policy over a suite, independent of any training code.

    from rho.eval import Evaluation, load_suite
    ev = Evaluation(load_suite("smoke", tasks=["lift_block"], episodes=2), out="runs/eval/smoke_expert")
    report = ev.run("expert")            # or "random", a policy directory, or any object with act/reset
    report["overall"]["success_rate"], report["per_task"]["lift_block"]["ci95"]

`run` returns the report dict (what `report.json` holds) and, with `out`, writes the report directory
(see `rho.eval.report`).
"""

from __future__ import annotations

import dataclasses
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import held_out
from .launch import run_units
from .metrics import summarize
from .policies import check_policy, load_policy, policy_name, unsupported
from .rollout import Unit, UnitResult
from .suite import LEVELS, SuiteCfg, episode_seed, load_suite

FORMAT_VERSION = 1


class Evaluation:
    """A suite bound to an optional report directory; `run(policy)` evaluates one policy on it."""

    def __init__(self, suite: SuiteCfg | str = "smoke", out: str | Path | None = None, **overrides: Any):
        from rho.config import ConfigError, validate_config

        cfg = load_suite(suite, **overrides) if isinstance(suite, str) else dataclasses.replace(suite, **overrides)
        problems = validate_config(cfg)
        if problems:
            raise ConfigError(problems)
        self.suite = cfg
        self.out = Path(out) if out is not None else None
        self.records: list[dict[str, Any]] = []  # the last run's episode records (also episodes.jsonl)

    # ------------------------------------------------------------------ planning
    def cells(self) -> list[tuple[str, str]]:
        return [(t, lv) for t in self.suite.task_names() for lv in self.suite.levels]

    def episode_seeds(self, task: str, level: str) -> list[int]:
        """The seeds of the cell's episodes, the same for every policy: the suite's, or (`seeds_from`) the first
        `episodes` demo seeds of a dataset of that task."""
        given = self._dataset_seeds().get(task)
        if given is not None:
            if len(given) < self.suite.episodes:
                from rho.config import ConfigError

                raise ConfigError([f"seeds_from: the {task} dataset has {len(given)} demo seeds, episodes="
                                   f"{self.suite.episodes}. Fix: lower episodes"])
            return given[: self.suite.episodes]
        return [episode_seed(self.suite.seed, task, level, k) for k in range(self.suite.episodes)]

    def _dataset_seeds(self) -> dict[str, list[int]]:
        """task → episode seeds of the demos of the `seeds_from` datasets, in dataset order."""
        if not hasattr(self, "_seeds_cache"):
            from rho.datagen.hdf5 import Dataset

            out: dict[str, list[int]] = {}
            for path in self.suite.seeds_from:
                with Dataset(path) as ds:
                    task = str(ds.env_args().get("task", ""))
                    out.setdefault(task, []).extend(int(ds.group(i).attrs["episode_seed"])
                                                    for i in range(ds.num_demos))
            self._seeds_cache = out
        return self._seeds_cache

    def skip_reason(self, task: str, level: str, policy: Any) -> str | None:
        if level not in LEVELS:
            return f"unknown level {level!r}"
        if level == "held_out" and not held_out.has_held_out(task, self.suite):
            return "no held-out variation defined for this task (extend rho.eval.held_out.HELD_OUT)"
        return unsupported(policy, task)

    def plan(self, policy: Any) -> tuple[list[Unit], list[dict[str, str]]]:
        """Units of work (video episodes alone, the rest in chunks of 2 × num_envs) and the skipped cells."""
        s, units, skipped = self.suite, [], []
        probe = _planning_policy(policy)
        self._check_env_configs(probe)
        for task, level in self.cells():
            reason = self.skip_reason(task, level, probe)
            if reason:
                skipped.append({"task": task, "level": level, "reason": reason})
                continue
            traces = frozenset(range(min(s.traces, s.episodes)))
            videos = min(s.videos, s.episodes)
            seeds = self.episode_seeds(task, level)
            rest, chunk = list(range(videos, s.episodes)), 2 * s.num_envs
            groups = [((k,), True) for k in range(videos)]
            groups += [(tuple(rest[i:i + chunk]), False) for i in range(0, len(rest), chunk)]
            units += [Unit(task, level, eps, video=video, traces=traces, seeds=tuple(seeds[k] for k in eps))
                      for eps, video in groups]
        return units, skipped

    def _check_env_configs(self, probe: Any) -> None:
        """Build every cell's env config before any episode runs, so a bad `env` override fails at once, naming
        each task it does not fit."""
        from rho.config import ConfigError

        from .rollout import env_config

        problems = []
        for task, level in self.cells():
            try:
                env_config(self.suite, task, level, probe, 1)
            except ConfigError as e:
                problems += [f"{task} ({level}): {p}" for p in e.problems]
        if problems:
            raise ConfigError(problems)

    # ------------------------------------------------------------------ running
    def run(self, policy: Any = "expert", progress: bool = False) -> dict[str, Any]:
        """Evaluate `policy` (a spec string or a policy object) on every cell; returns the report dict."""
        from tqdm import tqdm

        if not isinstance(policy, str):
            check_policy(policy)  # before any worker starts
        units, skipped = self.plan(policy)
        t0 = time.perf_counter()
        results: list[UnitResult] = []
        bar = tqdm(total=sum(len(u.episodes) for u in units), desc=f"eval {self.suite.name}", unit="ep",
                   disable=not progress)
        for res in run_units(self.suite, units, policy):
            results.append(res)
            bar.update(len(res.records))
        bar.close()
        report = self._report(policy, results, skipped, time.perf_counter() - t0)
        if self.out is not None:
            from .report import write_report

            write_report(report, results, self.records, self.out)
        return report

    def _report(self, policy: Any, results: list[UnitResult], skipped: list[dict[str, str]],
                wall_s: float) -> dict[str, Any]:
        from rho.config import config_to_dict

        records = sorted((r for res in results for r in res.records), key=_order(self.cells()))
        self.records = records
        return {
            "format_version": FORMAT_VERSION, "suite": config_to_dict(self.suite),
            "policy": {"spec": policy if isinstance(policy, str) else type(policy).__name__,
                       "name": policy_name(policy), "bound": sorted({r["policy"] for r in records})},
            "created": datetime.now(UTC).isoformat(timespec="seconds"), "wall_s": wall_s,
            "host": {"python": platform.python_version(), "machine": platform.machine()},
            "overall": summarize(records), **_tables(records, self.cells()), "skipped": skipped,
            "files": {"episodes": "episodes.jsonl"},
        }


def _planning_policy(policy: Any) -> Any:
    """The policy object whose hooks decide what can run: built-ins are cheap to build; a trained policy directory
    is not loaded in the driver (its workers load it)."""
    if isinstance(policy, str) and (policy in ("expert", "random") or policy.startswith("rl:")):
        return load_policy(policy)  # cheap: an RL checkpoint is a small file
    return policy if not isinstance(policy, str) else None


def _order(cells: list[tuple[str, str]]):
    rank = {c: i for i, c in enumerate(cells)}
    return lambda r: (rank.get((r["task"], r["level"]), len(rank)), r["episode"])


def _tables(records: list[dict[str, Any]], cells: list[tuple[str, str]]) -> dict[str, Any]:
    """per_task, per_level and per_cell summaries; a cell also lists its outcomes by episode and its seeds, so
    `compare` can pair episodes."""
    def group(key) -> dict[Any, list[dict[str, Any]]]:
        out: dict[Any, list[dict[str, Any]]] = {}
        for r in records:
            out.setdefault(key(r), []).append(r)
        return out

    by_cell = group(lambda r: (r["task"], r["level"]))
    per_cell = []
    for task, level in cells:
        recs = by_cell.get((task, level))
        if recs:
            per_cell.append({"task": task, "level": level, **summarize(recs),
                             "outcomes": "".join("1" if r["success"] else "0" for r in recs),
                             "episode_seeds": [r["episode_seed"] for r in recs]})
    return {"per_task": {k: summarize(v) for k, v in group(lambda r: r["task"]).items()},
            "per_level": {k: summarize(v) for k, v in group(lambda r: r["level"]).items()},
            "per_cell": per_cell}

