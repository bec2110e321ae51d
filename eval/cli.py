"""`rho eval`: entry points for `rho.cli` (which dispatches `rho eval ...` to `cmd_eval`).

    rho eval policy=<dir|expert|random> suite=<name|file.yaml> out=<dir> [episodes=… workers=… num_envs=…
             launcher=local|ray ray_address=… seed=… tasks=[…] levels=[nominal,shifted,held_out] force_limit=40
             videos=1 env.episode_length_s=…] [--json] [--quiet]
    rho eval compare <report A> <report B> [alpha=0.05 test=fisher|z|mcnemar out=<file.md>] [--json]
    rho eval suites                                                      the bundled suites
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rho.config import ConfigError, check_flags, config_to_yaml, load_config, output_dir_problems, parse_cli


@dataclass
class CompareCfg:
    """Settings of `rho eval compare`."""

    alpha: float = 0.05  # significance level
    test: Literal["fisher", "z", "mcnemar"] = "fisher"  # fisher exact, pooled z, or paired exact McNemar
    out: str | None = None  # also write the markdown table to this file

    def validate(self) -> list[str]:
        return [] if 0 < self.alpha < 1 else [f"alpha must be in (0, 1), got {self.alpha}"]


def policy_problems(spec: str) -> list[str]:
    """Problems with `policy=` found before any episode (and before the progress bar): an RL checkpoint that does
    not load (weights only: a crafted file runs nothing), a policy directory that is missing or holds no
    checkpoint."""
    if spec in ("expert", "random"):
        return []
    if spec.startswith("rl:"):
        from .policies import load_policy

        try:
            load_policy(spec)
        except (FileNotFoundError, ValueError) as e:
            return [f"policy={spec}: {e}"]
        return []
    path = Path(spec)
    pointer = path.is_file() and path.name == "latest"  # a run's checkpoints/latest names its newest checkpoint
    if not spec.strip() or not (path.is_dir() or pointer):
        what = "empty" if not spec.strip() else (f"{path} is a file" if path.exists() else f"{path} does not exist")
        return [f"policy={spec}: {what}. Fix: policy=expert, random, rl:<checkpoint> or a trained policy directory "
                "(the out= of `rho train`)"]
    try:
        from rho.policy.checkpoint import CONFIG, WEIGHTS, resolve_checkpoint
    except ImportError:  # the policy extra is missing: the loader says so with its own message
        return []
    ckpt = resolve_checkpoint(path)
    missing = [n for n in (CONFIG, WEIGHTS) if not (ckpt / n).is_file()]
    if missing:
        return [f"policy={spec}: {ckpt} is not a policy checkpoint (missing {', '.join(missing)}). Fix: pass the "
                "out= directory of `rho train` or one of its checkpoints/step_* directories"]
    return []


def cmd_eval(args: list[str]) -> int:
    if args and args[0] == "compare":
        return cmd_compare(args[1:])
    if args and args[0] == "suites":
        from .suite import bundled_suites

        print("\n".join(bundled_suites()))
        return 0
    from .evaluation import Evaluation
    from .report import markdown
    from .suite import EvalCfg, SuiteCfg, suite_yaml

    overrides, flags = parse_cli(args, flags_take_values=False)
    check_flags(flags, ("--json", "--quiet", "--print-config"), "eval", EvalCfg)
    from rho.cli import backend_shortcuts

    overrides = backend_shortcuts(overrides)
    suite = next((o.split("=", 1)[1] for o in overrides if o.startswith("suite=")), EvalCfg.suite)
    try:
        yaml = suite_yaml(suite)
    except (KeyError, FileNotFoundError) as e:
        print(f"rho eval: {e.args[0]}", file=sys.stderr)
        return 2
    cfg = load_config(EvalCfg, yaml=yaml, overrides=overrides)
    if "--print-config" in flags:
        print(config_to_yaml(cfg))
        return 0
    problems = policy_problems(cfg.policy)  # all before any simulation starts
    if not problems:
        problems = output_dir_problems("out", cfg.out)
    if problems:
        raise ConfigError(problems)
    suite_cfg = SuiteCfg(**{k: getattr(cfg, k) for k in SuiteCfg.__dataclass_fields__})
    ev = Evaluation(suite_cfg, out=cfg.out)
    report = ev.run(cfg.policy, progress="--quiet" not in flags and "--json" not in flags)
    if "--json" in flags:
        print(json.dumps({k: report[k] for k in ("overall", "per_task", "per_level", "skipped")}, default=str))
    else:
        print(markdown(report))
        print(f"report: {Path(cfg.out) / 'report.html'}")
    return 0


def cmd_compare(args: list[str]) -> int:
    from .compare import compare, compare_markdown

    overrides, flags = parse_cli(args, flags_take_values=False)
    check_flags(flags, ("--json",), "eval compare", CompareCfg)
    paths = [o for o in overrides if "=" not in o]
    if len(paths) != 2:
        print("usage: rho eval compare <report A> <report B> [alpha=0.05 test=fisher|z|mcnemar out=<file.md>]; got "
              f"{len(paths)} report path(s)", file=sys.stderr)
        return 2
    cfg = load_config(CompareCfg, overrides=[o for o in overrides if "=" in o])
    if cfg.out is not None and (not cfg.out.strip() or Path(cfg.out).is_dir()):
        raise ConfigError([f"out={cfg.out}: expected a file path for the markdown table, e.g. out=compare.md"])
    try:
        result = compare(paths[0], paths[1], alpha=cfg.alpha, test=cfg.test)
    except (FileNotFoundError, ValueError) as e:
        print(f"rho eval compare: {e}", file=sys.stderr)
        return 2
    text = compare_markdown(result)
    if cfg.out is not None:
        Path(cfg.out).write_text(text)
    print(json.dumps(result) if "--json" in flags else text)
    return 0
