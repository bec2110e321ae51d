"""Issue 12 (hardening): no code runs from a checkpoint, a local Ray cluster listens on loopback only, the command
line refuses what it does not know and ends user mistakes without a traceback, short RL curves plot, compare only
compares what both reports have, and `rho eval` checks its output path before any simulation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from rho.cli import main
from rho.config import ConfigError
from rho.safeload import CheckpointError, load_json, load_torch


class _Payload:
    """Unpickling this opens (creates) `marker`: what a crafted checkpoint could do with any function instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted_checkpoint(path, marker):
    """A .pt shaped like a `rho rl train` checkpoint whose unpickling runs code (creates `marker`)."""
    meta = {"format": 1, "task": "plug_insertion", "agent": {}, "env": {}, "policy_dim": 1, "critic_dim": 1,
            "num_actions": 1, "action_mode": "ee_delta", "iteration": 1, "env_steps": 1, "wall_s": 1.0}
    torch.save({"actor_state_dict": {}, "infos": {"rho": meta}, "payload": _Payload(marker)}, path)
    return path


@pytest.fixture
def crafted(tmp_path):
    marker = tmp_path / "PWNED"
    ckpt = _crafted_checkpoint(tmp_path / "evil.pt", marker)
    live = _crafted_checkpoint(tmp_path / "live.pt", tmp_path / "LIVE")  # proof the payload is real
    torch.load(live, weights_only=False)
    assert (tmp_path / "LIVE").exists()
    return ckpt, marker


# ------------------------------------------------------------------------------------------------ 1. pickle
def test_crafted_rl_checkpoint_is_refused_at_every_entry_point(tmp_path, crafted, capsys):
    from rho.config import config_to_yaml
    from rho.tasks.rl.train import load_train_config

    ckpt, marker = crafted
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(config_to_yaml(load_train_config([f"out={run}"])))
    for name in ("model_1.pt", "latest.pt"):
        (run / name).write_bytes(ckpt.read_bytes())
    entry_points = [
        (["datagen", "task=plug_insertion", f"expert=rl:{ckpt}", f"out={tmp_path / 'ds'}", "num_demos=1"], ckpt),
        (["eval", f"policy=rl:{ckpt}", "tasks=[plug_insertion]", "episodes=1", f"out={tmp_path / 'ev'}"], ckpt),
        (["rl", "play", f"checkpoint={ckpt}", f"out={tmp_path / 'play'}"], ckpt),
        (["rl", "curve", f"run={run}"], run / "model_1.pt"),
    ]
    if _has("rsl_rl"):  # train imports rsl-rl before it reads the checkpoint
        entry_points.append((["rl", "train", f"out={run}", "--resume"], run / "latest.pt"))
    for argv, named in entry_points:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "refused to load" in err and str(named) in err and "weights_only=True" in err, (argv, err)
        assert "Traceback" not in err
        assert not marker.exists(), f"the payload ran through {argv}"
    for out in ("ds", "ev", "play"):
        assert not (tmp_path / out).exists()  # refused before any output
    from rho.tasks.rl.expert import load_checkpoint

    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_rl_checkpoints_of_another_format_or_shape_are_refused(tmp_path):
    from rho.tasks.rl.expert import load_checkpoint

    meta = {"format": 99, "task": "plug_insertion"}
    torch.save({"actor_state_dict": {}, "infos": {"rho": meta}}, tmp_path / "new.pt")
    with pytest.raises(ValueError, match=r"format 99, this rho reads format 1.*Fix"):
        load_checkpoint(tmp_path / "new.pt")
    torch.save({"actor_state_dict": {}, "infos": [1]}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="expected a `rho rl train` checkpoint"):
        load_checkpoint(tmp_path / "odd.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="expected a `rho rl train` checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "short.pt").write_bytes((tmp_path / "other.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"short\.pt: cannot be read as a torch checkpoint"):
        load_checkpoint(tmp_path / "short.pt")


def test_no_pickle_loading_left_in_the_sources():
    """Every torch.load in rho is weights_only=True (or goes through rho.safeload), none unpickles."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for folder in ("rho", "sim", "tasks", "assets", "datagen", "policy", "eval"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            calls = [text[i:text.find(")", i)] for i in range(len(text)) if text.startswith("torch.load(", i)]
            if any("weights_only=True" not in c for c in calls) or re.search(r"pickle\.loads?\(|weights_only=False",
                                                                               text):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []


def _tiny_policy_checkpoint(path):
    from rho.policy.checkpoint import save_checkpoint
    from rho.policy.config import BackboneCfg, ExpertCfg, PolicyCfg
    from rho.policy.model import TwoStagePolicy

    backbone = BackboneCfg(image_size=16, width=32, depth=1, heads=2, max_text_tokens=8, cnn_channels=[8, 8],
                           keypoints=4)
    cfg = PolicyCfg(backbone=backbone, expert=ExpertCfg(width=32, depth=2, heads=2, horizon=4, flow_steps=3),
                    cameras=("cam_high",))
    return save_checkpoint(TwoStagePolicy(cfg).eval(), path, {"actions": {"mean": 0.0, "std": 1.0}}, {"step": 1})


@pytest.mark.parametrize(("name", "corrupt", "says"), [
    ("model.pt", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "cannot be read as a torch"),
    ("model.pt", lambda p: p.write_bytes(b"\x00" * 64), "cannot be read as a torch"),
    ("model.pt", lambda p: torch.save({"x": torch.zeros(1)}, p), "do not fit the architecture"),
    ("model.pt", lambda p: _crafted_checkpoint(p, p.parent / "PWNED"), "refused to load"),
    ("norm_stats.json", lambda p: p.write_text('{"actions": '), "invalid JSON"),
    ("extra.json", lambda p: p.write_bytes(b"\xff\xfe garbage"), "cannot be read"),
    ("extra.json", lambda p: p.write_text("[1, 2]"), "expected a JSON object"),
])
def test_corrupted_policy_checkpoint_files_give_one_line(tmp_path, name, corrupt, says):
    from rho.policy.checkpoint import load_checkpoint

    ckpt = _tiny_policy_checkpoint(tmp_path / "ckpt")
    corrupt(ckpt / name)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(ckpt)
    msg = str(e.value)
    assert str(ckpt / name) in msg and says in msg and "Fix:" in msg and "\n" not in msg, msg
    assert not (tmp_path / "ckpt" / "PWNED").exists()


def test_corrupted_trainer_state_gives_one_line(tmp_path):
    torch.save({"step": 3, "optimizer": {}, "rng": [torch.get_rng_state()]}, tmp_path / "trainer.pt")
    assert load_torch(tmp_path / "trainer.pt", "trainer state", "x")["step"] == 3
    data = (tmp_path / "trainer.pt").read_bytes()
    (tmp_path / "trainer.pt").write_bytes(data[: len(data) - 40])
    with pytest.raises(CheckpointError, match=r"trainer state .*trainer\.pt: cannot be read as a torch checkpoint"):
        load_torch(tmp_path / "trainer.pt", "trainer state", "resume from an earlier checkpoint")
    (tmp_path / "j.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"j\.json: invalid JSON"):
        load_json(tmp_path / "j.json", "stats", "x")


# ------------------------------------------------------------------------------------------------ 2. Ray
def _listening(procs) -> list[str]:
    """host:port of every listening TCP socket and every bound UDP socket of `procs`."""
    import psutil

    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN or (c.type == 2 and not c.raddr):  # SOCK_DGRAM
                out.append(f"{c.laddr.ip}:{c.laddr.port}")
    return out


def test_local_ray_cluster_listens_on_loopback_only(monkeypatch):
    pytest.importorskip("ray")
    psutil = pytest.importorskip("psutil")
    from rho.eval import launch
    from rho.eval.suite import SuiteCfg
    from rho.ray_cluster import is_loopback

    def fake_unit(suite, unit, policy):  # the launcher's own code path, without simulating an episode
        return os.getpid()

    monkeypatch.setattr(launch, "run_unit", fake_unit)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    results = launch._ray(SuiteCfg(launcher="ray", workers=1), [0, 1], None)
    worker = next(results)  # the cluster is up (a worker ran); inspect it before the launcher shuts it down
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    assert any(p.pid == worker for p in procs)
    sockets = _listening(procs)
    try:
        assert len(sockets) >= 3  # GCS, raylet, workers' and driver's gRPC servers
        assert [s for s in sockets if not is_loopback(s.rsplit(":", 1)[0])] == []
    finally:
        rest = list(results)  # finishes the generator: ray.shutdown()
    assert len(rest) == 1
    import ray

    assert not ray.is_initialized()
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") is None  # the switch does not leak


def test_ray_joins_a_given_address_and_datagen_uses_the_same_path(monkeypatch):
    ray = pytest.importorskip("ray")
    from rho import ray_cluster

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    assert ray_cluster.init_ray("10.1.2.3:6379") is True
    assert calls == [{"address": "10.1.2.3:6379", "include_dashboard": False, "log_to_driver": False}]
    calls.clear()
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "127.0.0.1")
    assert ray_cluster.init_ray("local", num_cpus=1) is True  # Ray's "local" is the loopback cluster too
    assert calls[0]["_node_ip_address"] == "127.0.0.1" and calls[0]["address"] == "local"
    calls.clear()
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "192.0.2.7")  # came up on the network anyway
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    with pytest.raises(RuntimeError, match=r"not loopback.*shut down"):
        ray_cluster.init_ray(None)
    assert calls[-1] == "shutdown"

    from rho.datagen import ray_launcher

    seen = []

    def refuse(address, num_cpus=None):
        seen.append(address)
        raise RuntimeError("stop here")

    monkeypatch.setattr(ray_cluster, "init_ray", refuse)

    class Cfg:
        ray_address = None

    with pytest.raises(RuntimeError, match="stop here"):
        ray_launcher.run_ray(Cfg(), set(), None, None, None)
    assert seen == [None]
    assert ray_cluster.is_loopback("::ffff:127.0.0.1") and ray_cluster.is_loopback("::1")
    assert not ray_cluster.is_loopback("0.0.0.0") and not ray_cluster.is_loopback("::")


# ------------------------------------------------------------------------------------------------ 3. command line
def test_unknown_flags_are_refused_like_unknown_keys(tmp_path, capsys, monkeypatch):
    from rho.eval import evaluation

    monkeypatch.setattr(evaluation.Evaluation, "run", lambda *a, **k: pytest.fail("an evaluation started"))
    assert main(["datagen", "out=", "num_demos=1"]) == 2 and "out: empty path" in capsys.readouterr().err
    assert main(["datagen", "--num_demos=5", f"out={tmp_path / 'ds'}"]) == 2
    err = capsys.readouterr().err
    assert "--num_demos=5: unknown flag" in err and "num_demos=5" in err.split("Fix:")[1]
    assert not (tmp_path / "ds").exists()
    assert main(["eval", "--print-confg", f"out={tmp_path / 'ev'}"]) == 2
    assert "did you mean `--print-config`" in capsys.readouterr().err
    assert main(["eval", "--print-config", "tasks=[lift_block]", f"out={tmp_path / 'ev'}"]) == 0
    assert "policy: expert" in capsys.readouterr().out and not (tmp_path / "ev").exists()
    assert main(["rollout", "--frobnicate"]) == 2 and "unknown flag of `rho rollout`" in capsys.readouterr().err
    assert main(["tasks", "--json"]) == 2
    assert main(["dataset", "check", str(tmp_path), "--images"]) == 2
    assert "unknown flag of `rho dataset check`" in capsys.readouterr().err
    assert main(["eval", "compare", "a", "b", "alpah=0.1"]) == 2
    assert "Did you mean `alpha`" in capsys.readouterr().err


def test_each_subcommand_has_its_own_help(capsys):
    texts = {}
    for argv in (["datagen"], ["eval"], ["rl", "train"], ["dataset", "view"], ["bench", "sim"], ["eval", "compare"],
                 ["train"], ["rl", "curve"]):
        assert main([*argv, "--help"]) == 0
        texts[" ".join(argv)] = capsys.readouterr().out
    assert len(set(texts.values())) == len(texts)  # not the same top-level text
    datagen = texts["datagen"]
    assert "example:" in datagen and "--resume" in datagen
    line = next(x for x in datagen.splitlines() if x.strip().startswith("num_demos "))
    assert "int" in line and " 10 " in line and "demos to keep" in line  # type, default, doc from the config
    assert "env.sim.physics_dt" in datagen
    assert "agent.max_iterations" in texts["rl train"]
    assert any(x.split()[:3] == ["demo", "int", "0"] for x in texts["dataset view"].splitlines() if x.strip())
    eval_line = next(x for x in texts["eval"].splitlines() if x.strip().startswith("episodes "))
    assert "int" in eval_line  # defaults after the suite's YAML
    assert main(["datagen", "task=plug_insertion", "--help"]) == 0
    assert "env.clearance" in capsys.readouterr().out  # the task's own env keys


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    from rho.config import load_config
    from rho.datagen.runner import datagen_schema, generate

    out = tmp_path_factory.mktemp("hardening") / "ds"
    cfg = load_config(datagen_schema("lift_block"), yaml="datagen", overrides=[
        f"out={out}", "num_demos=1", "num_envs=1", "env.cameras={}"])
    generate(cfg, progress=False)
    return out


def test_eval_takes_a_runs_latest_pointer(tmp_path):
    """policy=<run>/checkpoints/latest (a file naming the newest checkpoint) is what a user tab-completes; the
    loader always followed it, the pre-check refused it as "a file"."""
    from rho.eval.cli import policy_problems

    ckpts = tmp_path / "run" / "checkpoints"
    (ckpts / "step_00000002").mkdir(parents=True)
    for name in ("config.yaml", "model.pt"):
        (ckpts / "step_00000002" / name).write_text("x")
    (ckpts / "latest").write_text("step_00000002\n")
    assert policy_problems(str(ckpts / "latest")) == [] and policy_problems(str(tmp_path / "run")) == []
    (ckpts / "latest").write_text("step_00000009\n")
    (problem,) = policy_problems(str(ckpts / "latest"))
    assert "step_00000009 is not a policy checkpoint (missing config.yaml, model.pt)" in problem
    (tmp_path / "other").write_text("x")
    assert "is a file" in policy_problems(str(tmp_path / "other"))[0]


def test_user_mistakes_end_without_a_traceback(tmp_path, small_dataset, capsys, monkeypatch):
    from rho.eval import evaluation

    monkeypatch.setattr(evaluation.Evaluation, "run", lambda *a, **k: pytest.fail("an evaluation started"))
    for cmd in ("datagen", "rollout", "expert"):
        assert main([cmd, "task=lift_blok", f"out={tmp_path / cmd}"]) == 2
        assert "unknown task 'lift_blok'" in capsys.readouterr().err and not (tmp_path / cmd).exists()
    assert main(["eval", f"policy={tmp_path / 'no_such_policy'}", f"out={tmp_path / 'ev'}"]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "ev").exists()
    (tmp_path / "empty_policy").mkdir()
    assert main(["eval", f"policy={tmp_path / 'empty_policy'}", f"out={tmp_path / 'ev'}"]) == 2
    assert "not a policy checkpoint (missing config.yaml, model.pt)" in capsys.readouterr().err
    assert main(["dataset", "view", str(small_dataset), "demo=999"]) == 2
    err = capsys.readouterr().err
    assert "demo=999" in err and "has 1 demo (demo=0 .. demo=0)" in err
    assert main(["dataset", "replay", str(small_dataset), "demo=7"]) == 2
    assert "demo=7" in capsys.readouterr().err
    assert main(["dataset", "view", str(small_dataset), "demo=abc"]) == 2
    assert "demo: expected int" in capsys.readouterr().err
    assert main(["dataset", "info", "--json", str(small_dataset)]) == 0  # a switch before the path takes no value
    assert json.loads(capsys.readouterr().out)["demos"] == 1


def test_closed_stdout_is_not_an_error(small_dataset, monkeypatch):
    r, w = os.pipe()
    os.close(r)
    out = os.fdopen(w, "w")
    monkeypatch.setattr(sys, "stdout", out)
    try:
        assert main(["dataset", "info", str(small_dataset)]) == 141  # as a command killed by SIGPIPE
    finally:
        monkeypatch.undo()
        out.close()
    r, w = os.pipe()  # end to end, the interpreter's exit included: `rho dataset info <ds> | head -c0`
    os.close(r)
    res = subprocess.run([sys.executable, "-m", "rho.cli", "dataset", "info", str(small_dataset)], stdout=w,
                         stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(w)
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr
    assert res.returncode == 141


# ------------------------------------------------------------------------------------------------ 4. curve, compare
def test_rl_curve_plots_a_run_shorter_than_the_window(tmp_path):
    from rho.tasks.rl.curve import _training_log, plot

    (tmp_path / "progress.jsonl").write_text("".join(json.dumps(
        {"iteration": i + 1, "env_steps": 16 * (i + 1), "episodes": 2, "success": 0.5}) + "\n" for i in range(3)))
    log = _training_log(tmp_path / "progress.jsonl")
    point = {"env_steps": 48, "success_rate": 0.5, "ci95": [0.1, 0.9], "train_wall_s": 3.0}
    data = {"task": "plug_insertion", "episodes": 2, "points": [point], "baseline": None, "env": {}}
    assert plot(data, log, tmp_path / "curve.png").stat().st_size > 0
    assert plot(data, log[:1], tmp_path / "one.png").stat().st_size > 0
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ConfigError, match=r"bad\.jsonl line 1"):
        _training_log(tmp_path / "bad.jsonl")
    assert _training_log(tmp_path / "missing.jsonl") == []


def _cell(task, level, k, n):
    from rho.eval.metrics import wilson_interval

    return {"task": task, "level": level, "episodes": n, "successes": k, "success_rate": k / n,
            "ci95": list(wilson_interval(k, n)), "outcomes": "1" * k + "0" * (n - k), "episode_seeds": list(range(n))}


def _report_of(name, cells):
    from rho.eval.compare import _pool

    return {"policy": {"name": name}, "suite": {"name": "s"}, "per_cell": cells,
            "per_task": {t: _pool([c for c in cells if c["task"] == t]) for t in {c["task"] for c in cells}},
            "per_level": {lv: _pool([c for c in cells if c["level"] == lv]) for lv in {c["level"] for c in cells}},
            "overall": _pool(cells)}


def test_compare_only_compares_cells_both_reports_have(tmp_path, capsys):
    from rho.eval.compare import compare, compare_markdown

    a = _report_of("ten_tasks", [_cell("t1", "nominal", 25, 50), _cell("t2", "nominal", 0, 50)])
    b = _report_of("one_task", [_cell("t1", "nominal", 25, 50)])
    res = compare(a, b)
    overall = next(r for r in res["rows"] if r["task"] == "all" and r["level"] == "all")
    assert overall["a"]["episodes"] == 50 and overall["diff"] == 0.0 and not overall["significant"]
    assert res["only_in_a"] == [["t2", "nominal"]] and res["only_in_b"] == []
    assert {(r["task"], r["level"]) for r in res["rows"]} == {("t1", "nominal"), ("all", "nominal"),
                                                            ("t1", "all"), ("all", "all")}
    text = compare_markdown(res)
    assert "Compared only the 1 (task, level) cell both reports have" in text and "only in A: t2/nominal" in text
    same = compare(a, a)  # the same cells: the reports' own totals, nothing dropped
    assert not same["pooled_from_shared_cells"] and not same["only_in_a"]
    c = _report_of("other", [_cell("t3", "nominal", 1, 2)])
    with pytest.raises(ValueError, match="share no"):
        compare(a, c)
    for name, report in (("a.json", a), ("c.json", c)):
        (tmp_path / name).write_text(json.dumps(report))
    assert main(["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "c.json")]) == 2
    assert "share no (task, level) cell" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("{}")
    assert main(["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "junk.json")]) == 2
    assert "not an evaluation report" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ 5. eval output
def test_eval_output_path_is_checked_before_any_simulation(tmp_path, capsys, monkeypatch):
    from rho.eval import evaluation

    monkeypatch.setattr(evaluation.Evaluation, "run", lambda *a, **k: pytest.fail("an evaluation started"))
    (tmp_path / "file").write_text("x")
    base = ["eval", "tasks=[lift_block]", "episodes=1"]
    cases = {str(tmp_path / "file"): "is a file", "": "empty path",
             str(tmp_path / "file" / "sub"): "is a file, so the directory cannot be created"}
    for out, says in cases.items():
        assert main([*base, f"out={out}"]) == 2, out
        assert says in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere: a read-only directory only stops other users
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            assert main([*base, f"out={ro / 'report'}"]) == 2
            assert "not writable" in capsys.readouterr().err
        finally:
            ro.chmod(0o700)
    assert np.array(sorted(p.name for p in tmp_path.iterdir())).tolist() == ["file"]  # nothing written
