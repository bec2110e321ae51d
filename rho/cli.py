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
    rho dataset export-robomimic <path> [out=x.hdf5 valid_fraction=0.1 mimic=false]  robomimic / Isaac Lab file
    rho dataset export-isaaclab <path> [out=x.hdf5 mimic=true quat=xyzw|wxyz]     Isaac Lab file: state dicts
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
    rho bench policy [--json] [threads=1 image_size=96 data=<dataset>]             latency, Hz, training samples/s
    rho <command> [<subcommand>] --help                                           its keys (type, default, doc), flags, example
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rho.config import ConfigError, check_flags, config_help, config_to_yaml, load_config, parse_cli
from rho.safeload import CheckpointError


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


@dataclass
class DatasetSplitCfg:
    """Settings of `rho dataset split`."""

    valid_fraction: float = 0.1  # share of demos masked as validation
    seed: int = 0  # shuffle seed of the split


@dataclass
class DatasetViewCfg:
    """Settings of `rho dataset view`."""

    demo: int = 0  # demo index (0 .. demos-1)
    out: str | None = None  # .png (image strip) or .rrd (Rerun); default <dataset>_demo<i>.png beside it
    frames: int = 10  # frames per camera row in the strip


@dataclass
class DatasetReplayCfg:
    """Settings of `rho dataset replay`."""

    demo: str = "0"  # demo index, or all
    actions: Literal["actions", "expert_actions"] = "actions"  # which stored actions to replay


@dataclass
class DatasetExportCfg:
    """Settings of `rho dataset export-lerobot`."""

    repo_id: str | None = None  # LeRobot repo id written into the dataset's info (default: from the path)
    vcodec: str | None = None  # video codec (default h264)


@dataclass
class DatasetExportRobomimicCfg:
    """Settings of `rho dataset export-robomimic`."""

    out: str | None = None  # output .hdf5 file (default: <dataset>_robomimic.hdf5 beside the dataset)
    valid_fraction: float = 0.1  # demos in mask/valid when the dataset has no validation split (>= 1 of 2+ demos)
    seed: int = 0  # shuffle seed of that default split
    mimic: bool = False  # also write Isaac Lab Mimic annotations (obs/datagen_info: eef, object poses, signals)


@dataclass
class DatasetExportIsaacLabCfg:
    """Settings of `rho dataset export-isaaclab`."""

    out: str | None = None  # output .hdf5 file (default: <dataset>_isaaclab.hdf5 beside the dataset)
    mimic: bool = True  # write Isaac Lab Mimic annotations (obs/datagen_info: eef, object poses, subtask signals)
    quat: str = "xyzw"  # quaternion order of root_pose: xyzw (Isaac Lab 3.x) or wxyz (Isaac Lab 2.x)
    valid_fraction: float = 0.1  # demos in mask/valid when the dataset has no validation split (>= 1 of 2+ demos)
    seed: int = 0  # shuffle seed of that default split


@dataclass
class DatasetImportCfg:
    """Settings of `rho dataset import-lerobot`."""

    episodes: str = ""  # comma-separated episode indices to import (empty: all), e.g. episodes=0,3


@dataclass
class DatasetConvertCfg:
    """Settings of `rho dataset convert`."""

    tol: float | None = None  # replay tolerance of the relabelled actions (default 1e-4)


@dataclass
class NoKeysCfg:
    """A command without config keys."""


@dataclass(frozen=True)
class Command:
    """One `rho` (sub)command: what `rho <cmd> --help` prints and the flags it accepts."""

    summary: str
    usage: str
    example: str
    flags: tuple[str, ...] = ()
    schema: Callable[[list[str]], tuple[type, str | None]] | None = None  # overrides → (config class, yaml)
    note: str = ""


FLAG_DOCS = {"--json": "print the result as JSON", "--quiet": "no progress bar",
             "--resume": "continue the run in out= (same as resume=true)",
             "--print-config": "print the resolved config and exit without running anything",
             "--images": "store frames as PNG images instead of videos", "--overwrite": "replace an existing output",
             "--no-video": "do not decode the videos (no camera frames)", "-h, --help": "this help"}


def _task_arg(overrides: Sequence[str], default: str = "lift_block") -> str:
    """The `task=` of the overrides, checked against the registry (an unknown one is a ConfigError, not a
    traceback); `all` passes through."""
    from rho.tasks import get_task

    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), default)
    if task == "all":
        return task
    try:
        get_task(task)
    except KeyError as e:
        raise ConfigError([f"task={task}: {e.args[0]}"]) from None
    return task


def _rollout_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.sim.rollout import rollout_schema

    return rollout_schema(_task_arg(ov)), "rollout"


def _expert_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.tasks.run_expert import expert_schema

    return expert_schema(_task_arg(ov)), None


def _datagen_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.datagen.runner import datagen_schema

    task = _task_arg(ov)
    return datagen_schema("lift_block" if task == "all" else task), "datagen"


def _train_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.policy.train import train_schema

    return train_schema(), None


def _eval_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.eval.suite import EvalCfg, suite_yaml

    suite = next((o.split("=", 1)[1] for o in ov if o.startswith("suite=")), EvalCfg.suite)
    try:
        return EvalCfg, str(suite_yaml(suite))
    except (KeyError, FileNotFoundError):
        return EvalCfg, None


def _compare_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.eval.cli import CompareCfg

    return CompareCfg, None


def _rl_train_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.tasks.rl.train import train_schema

    return train_schema(_task_arg(ov, "plug_insertion")), None


def _rl_play_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.tasks.rl.play import RlPlayCfg

    return RlPlayCfg, None


def _rl_curve_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.tasks.rl.curve import RlCurveCfg

    return RlCurveCfg, None


def _bench_policy_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.policy import bench

    return getattr(bench, "BenchPolicyCfg", NoKeysCfg), None


def _online_schema(ov: list[str]) -> tuple[type, str | None]:
    from rho.online.config import OnlineCfg

    return OnlineCfg, None


def _fixed(cls: type, yaml: str | None = None) -> Callable[[list[str]], tuple[type, str | None]]:
    return lambda ov: (cls, yaml)


J, Q, P = "--json", "--quiet", "--print-config"
COMMAND_HELP: dict[str, Command] = {
    "rollout": Command("headless rollout of a task with its scripted expert: camera images, touch heatmaps, a "
                       "summary", "rho rollout [key=value ...]", "rho rollout task=lift_block steps=60 "
                       "env.num_envs=4 out=runs/four", (J, Q, P), _rollout_schema,
                       "env.* are the task's env config (shown for task=lift_block; add task=<name> for another)"),
    "tasks": Command("list the registered tasks, their gym ids and example instructions", "rho tasks [list]",
                     "rho tasks list"),
    "expert": Command("success rate of a task's scripted expert, with a 95% confidence interval",
                      "rho expert [key=value ...]", "rho expert task=lift_block episodes=100 env.num_envs=8",
                      (J, Q, P), _expert_schema, "cameras are off unless env.cameras=... is given"),
    "datagen": Command("record expert demonstrations (cameras, touch, proprioception, actions, sim state) into "
                       "HDF5", "rho datagen [key=value ...]", "rho datagen task=lift_block num_demos=100 "
                       "out=runs/datasets/lift_block num_envs=8", ("--resume", J, Q, P), _datagen_schema,
                       "task=all records every task with a scripted expert under out/<task>; env.* are the task's "
                       "env config (shown for task=lift_block; add task=<name> for another)"),
    "dataset": Command("inspect and convert datasets", "rho dataset check|info|split|merge|replay|view|"
                       "export-lerobot|export-robomimic|export-isaaclab|import-lerobot|describe-lerobot|convert <path> ... "
                       "[key=value ...]",
                       "rho dataset check runs/datasets/lift_block", (),
                       note="rho dataset <subcommand> --help for each one's keys"),
    "dataset check": Command("validate a dataset: schema, values, lengths, touch felt during contact; exit 1 on "
                             "problems", "rho dataset check <path>", "rho dataset check runs/datasets/lift_block",
                             (J,), _fixed(NoKeysCfg)),
    "dataset info": Command("describe a dataset", "rho dataset info <path>", "rho dataset info runs/datasets/lift",
                            (J,), _fixed(NoKeysCfg)),
    "dataset split": Command("write train/valid masks", "rho dataset split <path> [key=value ...]",
                             "rho dataset split runs/datasets/lift valid_fraction=0.2", (J,),
                             _fixed(DatasetSplitCfg)),
    "dataset merge": Command("concatenate datasets into one file", "rho dataset merge <out.hdf5> <path> <path> ...",
                             "rho dataset merge all.hdf5 runs/datasets/a runs/datasets/b", (J,), _fixed(NoKeysCfg)),
    "dataset replay": Command("re-simulate demos from their seeds and report the divergence",
                              "rho dataset replay <path> [key=value ...]", "rho dataset replay runs/datasets/lift "
                              "demo=all", (J,), _fixed(DatasetReplayCfg)),
    "dataset view": Command("an image strip (.png) or Rerun recording (.rrd) of one demo",
                            "rho dataset view <path> [key=value ...]", "rho dataset view runs/datasets/lift demo=0 "
                            "out=demo0.png", (J,), _fixed(DatasetViewCfg)),
    "dataset export-lerobot": Command("export as a LeRobotDataset v3.0", "rho dataset export-lerobot <path> "
                                      "<out_dir> [key=value ...]", "rho dataset export-lerobot runs/datasets/lift "
                                      "runs/lerobot/lift", ("--images", "--overwrite", J),
                                      _fixed(DatasetExportCfg)),
    "dataset export-robomimic": Command("export as one file robomimic 0.3.0 and Isaac Lab (Mimic) read: flat states, "
                                        "next_obs, env_meta, train/valid masks (docs/datasets.md)",
                                        "rho dataset export-robomimic <path> [key=value ...]",
                                        "rho dataset export-robomimic runs/datasets/lift out=runs/lift_robomimic.hdf5 "
                                        "mimic=true", ("--overwrite", J), _fixed(DatasetExportRobomimicCfg)),
    "dataset export-isaaclab": Command("export as one Isaac Lab dataset file: initial_state / states as Isaac Lab's "
                                       "articulation / rigid_object dicts (env.reset_to, replay --validate_states), "
                                       "Isaac Lab Mimic annotations (docs/datasets.md)",
                                       "rho dataset export-isaaclab <path> [key=value ...]",
                                       "rho dataset export-isaaclab runs/datasets/lift out=runs/lift_isaaclab.hdf5",
                                       ("--overwrite", J), _fixed(DatasetExportIsaacLabCfg)),
    "dataset import-lerobot": Command("import a LeRobotDataset (v2.1 / v3.0) into HDF5", "rho dataset "
                                      "import-lerobot <lerobot_dir> <out.hdf5> [key=value ...]",
                                      "rho dataset import-lerobot runs/lerobot/lift lift.hdf5 episodes=0,3",
                                      ("--no-video", "--overwrite", J), _fixed(DatasetImportCfg)),
    "dataset describe-lerobot": Command("a LeRobotDataset's features and the rho keys they map to",
                                        "rho dataset describe-lerobot <lerobot_dir>",
                                        "rho dataset describe-lerobot runs/lerobot/lift", (J,), _fixed(NoKeysCfg)),
    "dataset convert": Command("upgrade a dataset of an older format_version (relabelled by replay)",
                               "rho dataset convert <old.hdf5|dir> <new.hdf5|dir> [key=value ...]",
                               "rho dataset convert old/ new/ tol=1e-4", (J,), _fixed(DatasetConvertCfg)),
    "train": Command("train the two-stage policy", "rho train policy=<name|x.yaml> data=<name|mix.yaml> out=<dir> "
                     "[key=value ...]", "rho train policy=builtin data=lift_block out=runs/policy/lift steps=3000",
                     ("--resume", J, P), _train_schema,
                     "policy= / data= also name a YAML file (configs/policy/, configs/data/)"),
    "eval": Command("closed-loop evaluation of a policy on a suite, with an HTML report",
                    "rho eval [key=value ...] | rho eval compare <A> <B> | rho eval suites",
                    "rho eval policy=runs/policy/lift suite=smoke out=runs/eval/lift", (J, Q, P), _eval_schema,
                    "defaults shown after the suite's YAML (suite=smoke unless given); policy= is expert, random, "
                    "rl:<checkpoint> or a trained policy directory"),
    "eval compare": Command("success rates of two reports side by side, with significance per cell",
                            "rho eval compare <report A> <report B> [key=value ...]",
                            "rho eval compare runs/eval/expert runs/eval/lift test=mcnemar", (J,), _compare_schema),
    "eval suites": Command("list the bundled evaluation suites", "rho eval suites", "rho eval suites"),
    "online": Command("learn online from corrections: the policy drives, a corrector takes over on triggers; "
                      "periodic fine-tuning with replay; forgetting measured on every task it knew",
                      "rho online task=<name> policy=<dir> out=<dir> [key=value ...]",
                      "rho online task=lift_block policy=runs/p16/policy_v2 out=runs/online/lift rounds=3 "
                      "'eval.tasks=[busybox_push_button]' 'replay.sources=[runs/p16/data/lift_block]'",
                      (J, P), _online_schema,
                      "a session directory resumes where it stopped (same settings); see docs/online.md"),
    "rl": Command("RL experts (rsl-rl PPO)", "rho rl train|play|curve [key=value ...]",
                  "rho rl train task=plug_insertion out=runs/rl/plug", (),
                  note="rho rl <subcommand> --help for each one's keys"),
    "rl train": Command("train an RL expert (PPO, residual over the scripted expert)", "rho rl train "
                        "[key=value ...]", "rho rl train task=plug_insertion out=runs/rl/plug "
                        "agent.max_iterations=300", ("--resume", J, Q, P), _rl_train_schema),
    "rl play": Command("render a checkpoint's episodes and report success", "rho rl play checkpoint=<run dir|.pt> "
                       "[key=value ...]", "rho rl play checkpoint=runs/rl/plug episodes=8", (J, Q, P),
                       _rl_play_schema, "env.* default to the env the checkpoint trained in"),
    "rl curve": Command("learning curve: every checkpoint on the same fixed episodes → curve.json, curve.png",
                        "rho rl curve run=<run dir> [key=value ...]", "rho rl curve run=runs/rl/plug episodes=50",
                        (J, Q, P), _rl_curve_schema),
    "bench": Command("benchmarks", "rho bench sim|datagen|policy [key=value ...]", "rho bench sim --json", (),
                     note="rho bench <subcommand> --help for each one's keys"),
    "bench sim": Command("simulation throughput", "rho bench sim [key=value ...]", "rho bench sim repeats=3 --json",
                         (J,), _fixed(BenchSimCfg, "bench_sim")),
    "bench datagen": Command("recording and reading cost", "rho bench datagen [key=value ...]",
                             "rho bench datagen demos=5 --json", (J,), _fixed(BenchDatagenCfg)),
    "bench policy": Command("policy latency (prefix, action expert) and training samples/s on this CPU",
                            "rho bench policy [key=value ...]", "rho bench policy threads=1 --json", (J,),
                            _bench_policy_schema),
}
_GROUPS = ("dataset", "eval", "rl", "bench")


def _usage() -> str:
    return __doc__ or ""


def _help_key(cmd: str, rest: Sequence[str]) -> str:
    sub = next((a for a in rest if not a.startswith("-")), "")
    return f"{cmd} {sub}" if cmd in _GROUPS and f"{cmd} {sub}" in COMMAND_HELP else cmd


def command_help(cmd: str, rest: Sequence[str] = ()) -> str:
    """`rho <cmd> [<sub>] --help`: what it does, usage, example, flags, and its config keys (type, default, doc)
    generated from the typed config."""
    key = _help_key(cmd, rest)
    c = COMMAND_HELP[key]
    lines = [f"rho {key}: {c.summary}", "", f"usage: {c.usage}" + "".join(f" [{f}]" for f in c.flags), "",
             "example:", f"  {c.example}"]
    if key in _GROUPS:
        subs = [k.split(" ", 1)[1] for k in COMMAND_HELP if k.startswith(f"{key} ")]
        lines += ["", "subcommands:"] + [f"  {s:18s} {COMMAND_HELP[f'{key} {s}'].summary}" for s in subs]
    flags = [*c.flags, "-h, --help"]
    lines += ["", "flags:"] + [f"  {f:16s} {FLAG_DOCS.get(f, '')}" for f in flags]
    if c.schema is not None:
        overrides = [a for a in rest if "=" in a and not a.startswith("-")]
        try:
            schema, yaml = c.schema(overrides)
            rows = config_help(schema, yaml=yaml)
        except ConfigError as e:
            rows, lines = [], [*lines, "", str(e)]
        if rows:
            width = min(max(len(r[0]) for r in rows), 40)
            tw = min(max(len(r[1]) for r in rows), 28)
            lines += ["", "config keys (key=value; type, default, what it does):"]
            for k, t, d, doc in rows:
                d = d if len(d) <= 40 else d[:37] + "..."
                lines.append(f"  {k:{width}s}  {t:{tw}s}  {d:12s}  {doc}".rstrip())
        elif not lines[-1].startswith("Invalid"):
            lines += ["", "config keys: none"]
    if c.note:
        lines += ["", c.note]
    return "\n".join(lines)


def _flags(cmd: str, flags: list[str], schema: type | None = None) -> None:
    check_flags(flags, COMMAND_HELP[cmd].flags, cmd, schema)


def cmd_rollout(args: list[str]) -> int:
    from rho.sim.rollout import describe, run_rollout

    overrides, flags = parse_cli(args, flags_take_values=False)
    schema, yaml = _rollout_schema(overrides)
    _flags("rollout", flags, schema)
    cfg = load_config(schema, yaml=yaml, overrides=overrides)
    if "--print-config" in flags:
        print(config_to_yaml(cfg))
        return 0
    summary = run_rollout(cfg, progress="--quiet" not in flags)
    print(json.dumps(summary, default=str) if "--json" in flags else describe(summary))
    return 0


def cmd_tasks(args: list[str]) -> int:
    from rho.tasks import ALL_TASKS

    overrides, flags = parse_cli(args, flags_take_values=False)
    _flags("tasks", flags)
    if overrides not in ([], ["list"]):
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
    from rho.tasks.run_expert import run_expert

    overrides, flags = parse_cli(args, flags_take_values=False)
    overrides = backend_shortcuts(overrides)
    schema, _ = _expert_schema(overrides)
    _flags("expert", flags, schema)
    if not any(o.startswith("env.cameras") for o in overrides):
        overrides = [*overrides, "env.cameras={}"]  # experts use privileged state; cameras only when asked
    cfg = load_config(schema, overrides=overrides)
    if "--print-config" in flags:
        print(config_to_yaml(cfg))
        return 0
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
    overrides, flags = parse_cli(args[1:], flags_take_values=False)
    _flags(f"bench {args[0]}", flags)
    if args[0] == "policy":
        from rho.policy.bench import BenchPolicyCfg, bench_policy

        pcfg = load_config(BenchPolicyCfg, overrides=overrides)
        result = bench_policy(pcfg.policy_cfg(), threads=pcfg.threads, repeats=pcfg.repeats, data=pcfg.data,
                              load_samples=pcfg.load_samples)
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
    from rho.datagen.runner import generate
    from rho.tasks import ALL_TASKS

    overrides, flags = parse_cli(args, flags_take_values=False)
    overrides = backend_shortcuts(overrides)
    schema, yaml = _datagen_schema(overrides)
    _flags("datagen", flags, schema)
    task = _task_arg(overrides)
    if "--resume" in flags:
        overrides.append("resume=true")
    if task == "all":  # one dataset per task with a scripted expert, under out/<task>
        base = next((o.split("=", 1)[1] for o in overrides if o.startswith("out=")), "runs/datasets")
        rest = [o for o in overrides if not o.startswith(("task=", "out="))]
        names = [n for n, e in ALL_TASKS.items() if e.expert_cls is not None]
        return max(cmd_datagen([f"task={n}", f"out={base}/{n}", *rest, *flags]) for n in names)
    cfg = load_config(schema, yaml=yaml, overrides=overrides)
    if "--print-config" in flags:
        print(config_to_yaml(cfg))
        return 0
    if not str(cfg.out).strip():  # would write shards into the working directory
        raise ConfigError(["out: empty path. Fix: out=<directory or file.hdf5>, e.g. out=runs/datasets/lift_block"])
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


DATASET_ARGS = {"check": 1, "info": 1, "split": 1, "merge": -2, "replay": 1, "view": 1, "export-lerobot": 2,
                "export-robomimic": 1, "export-isaaclab": 1, "import-lerobot": 2, "describe-lerobot": 1, "convert": 2}  # positional paths (-n: at least n)


def _demo_in_range(path: str, demo: int) -> None:
    """A ConfigError naming the valid range when `demo` is not a demo of the dataset (before any work)."""
    from rho.datagen.hdf5 import Dataset

    with Dataset(path) as ds:
        n = ds.num_demos
    if not 0 <= demo < n:
        raise ConfigError([f"demo={demo}: {path} has {n} demo{'' if n == 1 else 's'}"
                           + (f" (demo=0 .. demo={n - 1})" if n else "") + ". Fix: pick one of them"])


def cmd_dataset(args: list[str]) -> int:
    from rho.datagen import tools
    from rho.datagen.hdf5 import DatasetError

    sub = args[0] if args else ""
    overrides, flags = parse_cli(args[1:], flags_take_values=False)
    paths = [o for o in overrides if "=" not in o]
    usage = "usage: rho dataset check|info|split|merge|replay|view|export-lerobot|export-robomimic|export-isaaclab|" \
            "import-lerobot|describe-lerobot|convert <path> ... (rho dataset <subcommand> --help)"
    if sub not in DATASET_ARGS or not paths:
        print(usage, file=sys.stderr)
        return 2
    name = f"dataset {sub}"
    schema, _ = COMMAND_HELP[name].schema([])  # type: ignore[misc]
    _flags(name, flags, schema)
    need = DATASET_ARGS[sub]
    if (need > 0 and len(paths) != need) or len(paths) < abs(need):
        print(f"usage: {COMMAND_HELP[name].usage}; got {len(paths)} path(s): {paths}", file=sys.stderr)
        return 2
    opts = load_config(schema, overrides=[o for o in overrides if "=" in o])
    try:
        if sub == "check":
            try:
                problems, stats = tools.check(paths[0])
            except DatasetError:
                raise
            except Exception as e:  # check reports bad data itself; this is a bug of ours, still one line
                print(f"rho dataset check: {paths[0]} could not be checked ({type(e).__name__}: {e}); please report "
                      "this with the dataset", file=sys.stderr)
                return 1
            if "--json" in flags:
                print(json.dumps({"problems": problems, **stats}))
            else:
                print(f"{paths[0]}: {stats['demos']} demos, {stats['samples']} steps, success "
                      f"{stats['success_rate']:.0%}, touch felt in {stats['touch_demos']}/{stats['checked']} demos")
                for p in problems:
                    print(f"  PROBLEM {p}")
                if stats.get("status") == "INCOMPLETE":
                    print(f"INCOMPLETE ({len(problems)} problem(s)); finish it with: {stats['resume_command']}")
                else:
                    print("OK" if not problems else f"{len(problems)} problem(s)")
            return 1 if problems else 0
        if sub == "info":
            result = tools.info(paths[0])
        elif sub == "split":
            masks = tools.split(paths[0], opts.valid_fraction, opts.seed)
            result = {k: len(v) for k, v in masks.items()}
        elif sub == "merge":
            result = tools.merge(paths[0], paths[1:])
        elif sub == "view":
            from rho.datagen.view import view

            _demo_in_range(paths[0], opts.demo)
            result = view(paths[0], opts.demo, opts.out, opts.frames)
        elif sub == "export-lerobot":
            from rho.datagen.lerobot import VideoOptions, export_lerobot

            vopts = VideoOptions(vcodec=opts.vcodec) if opts.vcodec else None
            result = export_lerobot(paths[0], paths[1], repo_id=opts.repo_id, video="--images" not in flags,
                                    video_options=vopts, overwrite="--overwrite" in flags)
        elif sub == "export-robomimic":
            from rho.datagen.robomimic import export_robomimic

            result = export_robomimic(paths[0], opts.out, valid_fraction=opts.valid_fraction, seed=opts.seed,
                                      mimic=opts.mimic, overwrite="--overwrite" in flags)
        elif sub == "export-isaaclab":
            from rho.datagen.isaaclab_export import export_isaaclab

            result = export_isaaclab(paths[0], opts.out, mimic=opts.mimic, quat=opts.quat,
                                     valid_fraction=opts.valid_fraction, seed=opts.seed,
                                     overwrite="--overwrite" in flags)
        elif sub == "import-lerobot":
            from rho.datagen.lerobot import import_to_hdf5

            try:
                eps = [int(x) for x in opts.episodes.split(",")] if opts.episodes else None
            except ValueError:
                raise ConfigError([f"episodes={opts.episodes}: expected comma-separated episode indices, e.g. "
                                   "episodes=0,3"]) from None
            result = import_to_hdf5(paths[0], paths[1], episodes=eps, decode_video="--no-video" not in flags,
                                    overwrite="--overwrite" in flags)
        elif sub == "convert":
            from rho.datagen.hdf5 import convert

            result = convert(paths[0], paths[1], **({"tol": opts.tol} if opts.tol is not None else {}))
        elif sub == "describe-lerobot":
            from rho.datagen.lerobot import describe_lerobot

            result = describe_lerobot(paths[0])
        else:
            demo: int | str = opts.demo
            if demo != "all":
                try:
                    demo = int(demo)
                except ValueError:
                    raise ConfigError([f"demo={demo}: expected a demo index or all"]) from None
                _demo_in_range(paths[0], demo)
            result = tools.replay(paths[0], demo, opts.actions)
    except DatasetError as e:
        print(f"rho dataset {sub}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result) if "--json" in flags else json.dumps(result, indent=1))
    return 0


def cmd_train(args: list[str]) -> int:
    from rho.policy.train import describe, load_train_config, train

    overrides, flags = parse_cli(args, flags_take_values=False)
    _flags("train", flags, _train_schema(overrides)[0])
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
    overrides, flags = parse_cli(args[1:], flags_take_values=False)
    schema_of = {"train": _rl_train_schema, "play": _rl_play_schema, "curve": _rl_curve_schema}[sub]
    _flags(f"rl {sub}", flags, schema_of(overrides)[0])
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

        ccfg = load_curve_config(overrides)
        if "--print-config" in flags:
            print(config_to_yaml(ccfg))
            return 0
        out = curve(ccfg, progress="--quiet" not in flags and "--json" not in flags)
        print(json.dumps(out) if "--json" in flags else describe(out))
        return 0
    from rho.tasks.rl.play import describe as describe_play
    from rho.tasks.rl.play import load_play_config, play

    cfg = load_play_config(overrides)
    if "--print-config" in flags:
        print(config_to_yaml(cfg))
        return 0
    summary = play(cfg, progress="--quiet" not in flags and "--json" not in flags)
    print(json.dumps(summary) if "--json" in flags else describe_play(summary))
    return 0


def cmd_online(args: list[str]) -> int:
    from rho.config import load_config
    from rho.online.config import OnlineCfg
    from rho.online.session import SessionError, run_session

    overrides, flags = parse_cli(args, flags_take_values=False)
    _flags("online", flags, OnlineCfg)
    cfg = load_config(OnlineCfg, overrides=[o for o in overrides if not o.startswith("resume=")])
    if "--print-config" in flags:
        print(config_to_yaml(cfg))
        return 0
    try:
        state = run_session(cfg)
    except SessionError as e:
        print(f"rho online: {e}", file=sys.stderr)
        return 1
    last = state["history"][-1] if state["history"] else {}
    if "--json" in flags:
        print(json.dumps(state, default=str))
    else:
        print(f"{state['round']} rounds; checkpoint {state['checkpoint']}; last success "
              + ", ".join(f"{t} {v['successes']}/{v['episodes']}" for t, v in last.get("success", {}).items())
              + f"; report {cfg.out}/report.html")
    return 0


def cmd_eval(args: list[str]) -> int:
    from rho.eval.cli import cmd_eval as run

    return run(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {"rollout": cmd_rollout, "tasks": cmd_tasks, "expert": cmd_expert,
                                                   "datagen": cmd_datagen, "dataset": cmd_dataset, "train": cmd_train,
                                                   "eval": cmd_eval, "bench": cmd_bench, "rl": cmd_rl,
                                                   "online": cmd_online}


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
    try:
        if "--help" in rest or "-h" in rest:
            print(command_help(cmd, rest))
            sys.stdout.flush()
            return 0
        try:
            code = COMMANDS[cmd](rest)
        except ConfigError as e:
            print(f"rho {cmd}: {e}", file=sys.stderr)
            return 2
        except CheckpointError as e:  # a corrupted or refused checkpoint: one line naming the file
            print(f"rho {cmd}: {e}", file=sys.stderr)
            return 1
        except Exception as e:  # bad data (DatasetError, DataError): one line, the message says what and the fix
            if not _is_data_error(e):
                raise
            print(f"rho {cmd}: {e}", file=sys.stderr)
            return 1
        sys.stdout.flush()  # inside the try: a closed pipe (`rho ... | head`) is not an error of ours
        return code
    except BrokenPipeError:
        return _stdout_closed()


def _is_data_error(e: BaseException) -> bool:
    """A `rho.datagen.hdf5.DatasetError` (or subclass), looked up without importing h5py for every command: a
    command that never loaded the module cannot have raised one."""
    mod = sys.modules.get("rho.datagen.hdf5")
    return mod is not None and isinstance(e, mod.DatasetError)


def _stdout_closed() -> int:
    """The reader of our stdout went away (`| head`): stop quietly, as a command killed by SIGPIPE would."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what the shell reports for a command killed by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
