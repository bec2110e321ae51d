"""The `rho` command. Subcommands take `key=value` overrides of their config (YAML under `configs/`).

    rho rollout [task=lift_block steps=120 out=runs/rollout env.num_envs=1 ...]   headless rollout, cameras + touch
    rho tasks [list]                                                              tasks, gym ids, instructions
    rho expert task=lift_block episodes=100 [env.num_envs=8] [--json]             scripted expert success rate
    rho datagen task=lift_block|all num_demos=20 out=runs/datasets/lift [num_envs=4 workers=1 seed=0
                keep_failures=false demos_per_shard=10 launcher=local|ray] [--resume] [--json]
                                                                                  record expert demos (HDF5)
    rho dataset check|info <path> [--json]                                        validate / describe a dataset
    rho dataset split <path> [valid_fraction=0.1 seed=0]                          train/valid masks
    rho dataset merge <out.hdf5> <path> <path> ...                                concatenate datasets
    rho dataset replay <path> [demo=0|all actions=actions|expert_actions]         re-simulate, report divergence
    rho dataset view <path> [demo=0 out=demo.png|demo.rrd frames=10]              cameras, touch, joints
    rho dataset export-lerobot <path> <out_dir> [repo_id=... vcodec=h264] [--images]  LeRobotDataset v3.0
    rho dataset import-lerobot <lerobot_dir> <out.hdf5> [episodes=0,3] [--no-video]  v2.1 / v3.0 → HDF5
    rho dataset describe-lerobot <lerobot_dir>                                    features and their rho keys
    rho dataset convert <old.hdf5|dir> <new.hdf5|dir> [tol=1e-4]                  upgrade an older format_version
    rho train policy=<name|x.yaml> data=<name|mix.yaml> out=<dir> [steps=… batch_size=… resume=true] [--json]
                                                                                  train the two-stage policy
    rho eval policy=<dir|expert|random> suite=<smoke|standard|generalization|file.yaml> out=<dir>
             [episodes=… workers=… num_envs=… launcher=local|ray tasks=[…] levels=[…]] [--json]   closed-loop suites
    rho eval compare <report A> <report B> [alpha=0.05 test=fisher|z|mcnemar] [--json]  significance per task/level
    rho eval suites                                                               bundled suites
    rho rl train task=plug_insertion out=runs/rl/plug [agent.max_iterations=300 agent.num_envs=16
                env.clearance=0.0002 ...] [--resume] [--json]                      PPO (rsl-rl) RL expert, residual
    rho rl play checkpoint=<run dir|.pt> [episodes=8 out=runs/rl/play env.clearance=...] [--json]
                                                                                  render episodes, report success
    rho rl curve run=<run dir> [episodes=50 num_envs=10 every=1 baseline=true] [--json]
                                                                                  checkpoints on fixed episodes → png
    rho bench sim [--json] [repeats=5 parallel_envs=8 render=true]                simulation throughput
    rho bench datagen [--json] [task=lift_block demos=10 repeats=3 read_procs=2]   recording and reading cost
    rho bench policy [--json] [threads=1 repeats=30]                              prefix / expert latency, Hz
    rho <command> --help                                                          this text and the config keys
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rho.config import ConfigError, config_to_yaml, load_config, parse_cli


@dataclass
class BenchSimCfg:
    """Settings of `rho bench sim`."""

    repeats: int = 5  # runs per figure; medians are reported
    parallel_envs: int = 8  # envs for the 1-vs-2-thread speedup
    control_steps: int = 150  # length of the recorded grasp-and-lift workload
    render: bool = True  # also measure offscreen rendering


@dataclass
class BenchDatagenCfg:
    """Settings of `rho bench datagen`."""

    task: str = "lift_block"  # task whose expert is recorded
    demos: int = 10  # demos per repeat
    repeats: int = 3  # medians over repeats
    read_procs: int = 2  # processes reading random frames together


def _usage() -> str:
    return __doc__ or ""


def cmd_rollout(args: list[str]) -> int:
    from rho.sim.rollout import describe, rollout_schema, run_rollout

    overrides, flags = parse_cli(args)
    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), "lift_block")
    cfg = load_config(rollout_schema(task), yaml="rollout", overrides=overrides)
    if "--print-config" in flags:
        print(config_to_yaml(cfg))
        return 0
    summary = run_rollout(cfg, progress="--quiet" not in flags)
    print(json.dumps(summary, default=str) if "--json" in flags else describe(summary))
    return 0


def cmd_tasks(args: list[str]) -> int:
    from rho.tasks import ALL_TASKS

    if args and args[0] != "list":
        print(f"usage: rho tasks [list]; got {args}", file=sys.stderr)
        return 2
    for entry in ALL_TASKS.values():
        expert = entry.expert_cls.__name__ if entry.expert_cls else "-"
        doc = (sys.modules[entry.env_cls.__module__].__doc__ or "").strip()
        print(f"{entry.name:24s} {entry.gym_id:32s} expert: {expert}")
        print(f"    {doc.splitlines()[0] if doc else ''}")
        for example in entry.env_cls.instruction_examples()[:3]:
            print(f"    e.g. {example!r}")
    return 0


def backend_shortcuts(overrides: list[str], prefix: str = "env.") -> list[str]:
    """``backend=isaaclab`` / ``device=cuda:0`` → ``env.sim.backend=…`` / ``env.sim.device=…`` (the physics engine
    of the task env: ``mujoco``, the default, or ``isaaclab`` — Isaac Lab 3.0 Newton, Python 3.12)."""
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        out.append(f"{prefix}sim.{key}={value}" if key in ("backend", "device") else o)
    return out


def cmd_expert(args: list[str]) -> int:
    from rho.tasks.run_expert import expert_schema, run_expert

    overrides, flags = parse_cli(args)
    overrides = backend_shortcuts(overrides)
    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), "lift_block")
    if not any(o.startswith("env.cameras") for o in overrides):
        overrides = [*overrides, "env.cameras={}"]  # experts use privileged state; cameras only when asked
    cfg = load_config(expert_schema(task), overrides=overrides)
    result = run_expert(cfg, progress="--quiet" not in flags and "--json" not in flags)
    if "--json" in flags:
        print(json.dumps(result))
    else:
        lo, hi = result["ci95"]
        print(f"{result['task']}: {result['expert']} succeeded in {result['successes']}/{result['episodes']} "
              f"episodes ({result['success_rate']:.1%}, 95% CI {lo:.1%}–{hi:.1%}), mean episode "
              f"{result['mean_episode_s']:.2f} s")
    return 0


def cmd_bench(args: list[str]) -> int:
    if not args or args[0] not in ("sim", "datagen", "policy"):
        print("usage: rho bench sim|datagen|policy [--json] [key=value ...]", file=sys.stderr)
        return 2
    overrides, flags = parse_cli(args[1:])
    if args[0] == "policy":
        from rho.policy.bench import bench_policy

        kv = dict(o.split("=", 1) for o in overrides)
        result = bench_policy(threads=int(kv.get("threads", 1)), repeats=int(kv.get("repeats", 30)))
    elif args[0] == "datagen":
        from rho.datagen.bench import bench_datagen

        dcfg = load_config(BenchDatagenCfg, overrides=overrides)
        result = bench_datagen(dcfg.task, dcfg.demos, dcfg.repeats, dcfg.read_procs)
    else:
        from rho.sim.bench import bench_sim

        cfg = load_config(BenchSimCfg, yaml="bench_sim", overrides=overrides)
        result = bench_sim(cfg.repeats, cfg.parallel_envs, cfg.control_steps, cfg.render)
    if "--json" in flags:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:32s} {v}")
    return 0


def cmd_datagen(args: list[str]) -> int:
    from rho.datagen.hdf5 import DatasetError
    from rho.datagen.runner import datagen_schema, generate
    from rho.tasks import ALL_TASKS

    overrides, flags = parse_cli(args)
    overrides = backend_shortcuts(overrides)
    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), "lift_block")
    if "--resume" in flags:
        overrides.append("resume=true")
    if task == "all":  # one dataset per task with a scripted expert, under out/<task>
        base = next((o.split("=", 1)[1] for o in overrides if o.startswith("out=")), "runs/datasets")
        rest = [o for o in overrides if not o.startswith(("task=", "out="))]
        names = [n for n, e in ALL_TASKS.items() if e.expert_cls is not None]
        return max(cmd_datagen([f"task={n}", f"out={base}/{n}", *rest, *flags]) for n in names)
    cfg = load_config(datagen_schema(task), yaml="datagen", overrides=overrides)
    try:
        summary = generate(cfg, progress="--quiet" not in flags)
    except DatasetError as e:
        print(f"rho datagen: {e}", file=sys.stderr)
        return 1
    if "--json" in flags:
        print(json.dumps(summary))
        return 0
    print(f"{summary['demos']} demos ({summary['samples']} steps, {summary['bytes'] / 2**20:.1f} MiB) of "
          f"{summary['task']} written to {summary['out']} in {summary['wall_s']:.1f} s "
          f"({summary['demos_per_s']:.2f} demos/s); expert success {summary['success_rate']:.0%} over "
          f"{summary['attempts']} attempts" + (f" ({summary['resumed_attempts']} from an earlier run)"
                                               if summary["resumed_attempts"] else ""))
    print("per step: " + ", ".join(f"{k} {tuple(v)}" for k, v in summary["obs_keys"].items()))
    print(f"check it: rho dataset check {summary['out']}")
    return 0


def cmd_dataset(args: list[str]) -> int:
    from rho.datagen import tools
    from rho.datagen.hdf5 import DatasetError

    sub = args[0] if args else ""
    overrides, flags = parse_cli(args[1:])
    paths = [o for o in overrides if "=" not in o]
    kv = dict(o.split("=", 1) for o in overrides if "=" in o)
    usage = "usage: rho dataset check|info|split|merge|replay <path> ... (see rho --help)"
    if sub not in ("check", "info", "split", "merge", "replay", "view", "export-lerobot", "import-lerobot",
                   "describe-lerobot", "convert") or not paths:
        print(usage, file=sys.stderr)
        return 2
    try:
        if sub == "check":
            problems, stats = tools.check(paths[0])
            if "--json" in flags:
                print(json.dumps({"problems": problems, **stats}))
            else:
                print(f"{paths[0]}: {stats['demos']} demos, {stats['samples']} steps, success "
                      f"{stats['success_rate']:.0%}, touch felt in {stats['touch_demos']}/{stats['checked']} demos")
                for p in problems:
                    print(f"  PROBLEM {p}")
                print("OK" if not problems else f"{len(problems)} problem(s)")
            return 1 if problems else 0
        if sub == "info":
            result = tools.info(paths[0])
        elif sub == "split":
            masks = tools.split(paths[0], float(kv.get("valid_fraction", 0.1)), int(kv.get("seed", 0)))
            result = {k: len(v) for k, v in masks.items()}
        elif sub == "merge":
            result = tools.merge(paths[0], paths[1:])
        elif sub == "view":
            from rho.datagen.view import view

            result = view(paths[0], int(kv.get("demo", 0)), kv.get("out"), int(kv.get("frames", 10)))
        elif sub == "export-lerobot":
            from rho.datagen.lerobot import VideoOptions, export_lerobot

            opts = VideoOptions(vcodec=kv["vcodec"]) if "vcodec" in kv else None
            result = export_lerobot(paths[0], paths[1], repo_id=kv.get("repo_id"), video="--images" not in flags,
                                    video_options=opts, overwrite="--overwrite" in flags)
        elif sub == "import-lerobot":
            from rho.datagen.lerobot import import_to_hdf5

            eps = [int(x) for x in kv["episodes"].split(",")] if "episodes" in kv else None
            result = import_to_hdf5(paths[0], paths[1], episodes=eps, decode_video="--no-video" not in flags,
                                    overwrite="--overwrite" in flags)
        elif sub == "convert":
            from rho.datagen.hdf5 import convert

            if len(paths) != 2:
                print("usage: rho dataset convert <old.hdf5|old_dir> <new.hdf5|new_dir> [tol=1e-4]", file=sys.stderr)
                return 2
            result = convert(paths[0], paths[1], **({"tol": float(kv["tol"])} if "tol" in kv else {}))
        elif sub == "describe-lerobot":
            from rho.datagen.lerobot import describe_lerobot

            result = describe_lerobot(paths[0])
        else:
            demo = kv.get("demo", "0")
            result = tools.replay(paths[0], demo if demo == "all" else int(demo), kv.get("actions", "actions"))
    except DatasetError as e:
        print(f"rho dataset {sub}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result) if "--json" in flags else json.dumps(result, indent=1))
    return 0


def cmd_train(args: list[str]) -> int:
    from rho.policy.train import describe, load_train_config, train

    overrides, flags = parse_cli(args)
    if "--resume" in flags:
        overrides.append("resume=true")
    cfg = load_train_config(overrides)
    if "--print-config" in flags:
        print(config_to_yaml(cfg))
        return 0
    summary = train(cfg)
    print(json.dumps(summary, default=str) if "--json" in flags else describe(summary))
    return 0


def cmd_rl(args: list[str]) -> int:
    sub = args[0] if args else ""
    if sub not in ("train", "play", "curve"):
        print("usage: rho rl train|play|curve key=value ... (see rho --help)", file=sys.stderr)
        return 2
    overrides, flags = parse_cli(args[1:])
    if sub == "train":
        from rho.tasks.rl.train import describe, load_train_config, train

        if "--resume" in flags:
            overrides.append("resume=true")
        cfg = load_train_config(overrides)
        if "--print-config" in flags:
            print(config_to_yaml(cfg))
            return 0
        summary = train(cfg, progress="--quiet" not in flags)
        print(json.dumps(summary) if "--json" in flags else describe(summary))
        return 0
    if sub == "curve":
        from rho.tasks.rl.curve import curve, describe, load_curve_config

        out = curve(load_curve_config(overrides), progress="--quiet" not in flags and "--json" not in flags)
        print(json.dumps(out) if "--json" in flags else describe(out))
        return 0
    from rho.tasks.rl.play import describe as describe_play
    from rho.tasks.rl.play import load_play_config, play

    cfg = load_play_config(overrides)
    summary = play(cfg, progress="--quiet" not in flags and "--json" not in flags)
    print(json.dumps(summary) if "--json" in flags else describe_play(summary))
    return 0


def cmd_eval(args: list[str]) -> int:
    from rho.eval.cli import cmd_eval as run

    return run(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {"rollout": cmd_rollout, "tasks": cmd_tasks, "expert": cmd_expert,
                                                   "datagen": cmd_datagen, "dataset": cmd_dataset, "train": cmd_train,
                                                   "eval": cmd_eval, "bench": cmd_bench, "rl": cmd_rl}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    cmd, rest = args[0], args[1:]
    if cmd not in COMMANDS:
        import difflib

        near = difflib.get_close_matches(cmd, COMMANDS, n=1)
        hint = f" Did you mean `rho {near[0]}`?" if near else ""
        print(f"rho: unknown command {cmd!r}; commands: {', '.join(COMMANDS)}.{hint}", file=sys.stderr)
        return 2
    if "--help" in rest or "-h" in rest:
        print(_usage())
        return 0
    try:
        return COMMANDS[cmd](rest)
    except ConfigError as e:
        print(f"rho {cmd}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
