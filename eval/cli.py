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
from pathlib import Path

from rho.config import load_config, parse_cli


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

    overrides, flags = parse_cli(args)
    from rho.cli import backend_shortcuts

    overrides = backend_shortcuts(overrides)
    suite = next((o.split("=", 1)[1] for o in overrides if o.startswith("suite=")), EvalCfg.suite)
    try:
        yaml = suite_yaml(suite)
    except (KeyError, FileNotFoundError) as e:
        print(f"rho eval: {e.args[0]}", file=sys.stderr)
        return 2
    cfg = load_config(EvalCfg, yaml=yaml, overrides=overrides)
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

    overrides, flags = parse_cli(args)
    paths = [o for o in overrides if "=" not in o]
    kv = dict(o.split("=", 1) for o in overrides if "=" in o)
    unknown = sorted(set(kv) - {"alpha", "test", "out"})
    if len(paths) != 2 or unknown:
        print("usage: rho eval compare <report A> <report B> [alpha=0.05 test=fisher|z|mcnemar out=<file.md>]"
              + (f"; unknown keys {unknown}" if unknown else ""), file=sys.stderr)
        return 2
    try:
        result = compare(paths[0], paths[1], alpha=float(kv.get("alpha", 0.05)), test=kv.get("test", "fisher"))
    except (FileNotFoundError, ValueError) as e:
        print(f"rho eval compare: {e}", file=sys.stderr)
        return 2
    text = compare_markdown(result)
    if "out" in kv:
        Path(kv["out"]).write_text(text)
    print(json.dumps(result) if "--json" in flags else text)
    return 0
