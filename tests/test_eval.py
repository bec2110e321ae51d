"""Closed-loop evaluation: suites, fixed episodes, metrics, reports, videos, comparison and launchers."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from rho.config import ConfigError
from rho.eval import (
    Evaluation,
    ExpertPolicy,
    RandomPolicy,
    compare,
    compare_markdown,
    episode_seed,
    fisher_exact,
    force_stats,
    load_policy,
    load_suite,
    mcnemar_exact,
    summarize,
    two_proportion_z,
    wilson_interval,
)

TASKS = ["lift_block", "busybox_push_button"]
SHORT = {"episode_length_s": 1.5}  # random episodes run to the time limit: keep them short


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The smoke suite on two tasks, 2 episodes each, for the expert and a random policy."""
    root = tmp_path_factory.mktemp("eval")
    suite = load_suite("smoke", tasks=TASKS, episodes=2, env=SHORT)
    out = {}
    for name in ("expert", "random"):
        ev = Evaluation(suite, out=root / name)
        out[name] = (ev, ev.run(name), root / name)
    return out


# ------------------------------------------------------------------------------------------------ the smoke run
def test_smoke_report_files(reports):
    _ev, report, out = reports["expert"]
    for f in ("report.json", "report.md", "report.html", "episodes.jsonl", "traces.npz"):
        assert (out / f).is_file(), f
    if importlib.util.find_spec("matplotlib"):  # the `eval` extra; without it the report says how to get plots
        assert {"success", "forces", "touch"} <= set(report["plots"]) and len(report["plots"]["touch"]) == 2
        assert all((out / p).is_file() for p in ("plots/success.png", "plots/forces.png"))
    else:
        assert "matplotlib" in report["plots"]["note"]
    saved = json.loads((out / "report.json").read_text())
    assert saved["overall"]["success_rate"] == report["overall"]["success_rate"] == 1.0  # the experts solve both
    assert set(saved["per_task"]) == set(TASKS)
    lo, hi = saved["per_task"]["lift_block"]["ci95"]
    assert 0 < lo < 1 and hi == pytest.approx(1.0)
    lines = (out / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 4
    rec = json.loads(lines[0])
    assert rec["task"] == "lift_block" and rec["success"] and rec["time_to_success_s"] > 0
    assert rec["peak_force_n"] > 1.0  # the grasp squeezes the block between the pads
    assert "| lift_block / nominal | 100% |" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "<video controls" in html and "lift_block / nominal" in html


def test_smoke_videos_decode(reports):
    from rho.eval.video import probe

    _, report, out = reports["expert"]
    assert len(report["videos"]) == len(TASKS)  # one per cell
    for v in report["videos"]:
        info = probe(str(out / v["path"]))
        rec = next(r for r in reports["expert"][0].records if r["video"] == v["path"])
        assert info["codec"] == "h264" and (info["width"], info["height"]) == (560, 240)
        assert info["frames"] == rec["steps"] + 1  # the reset frame, then one per step
        assert info["fps"] == pytest.approx(50.0)
        assert (out / v["path"]).with_suffix(".jpg").stat().st_size > 1000  # poster: the outcome frame


def test_random_policy_fails_on_same_episodes(reports):
    ev_e, rep_e, _ = reports["expert"]
    ev_r, rep_r, _ = reports["random"]
    assert rep_r["overall"]["success_rate"] == 0.0
    seeds = {c["task"]: c["episode_seeds"] for c in rep_e["per_cell"]}
    assert seeds == {c["task"]: c["episode_seeds"] for c in rep_r["per_cell"]}
    assert seeds["lift_block"] == ev_e.episode_seeds("lift_block", "nominal")
    # same initial states: the drawn block pose and layout match episode by episode
    pairs = zip(ev_e.records, ev_r.records, strict=True)
    assert all(a["randomization"] == b["randomization"] for a, b in pairs)
    assert all(r["steps"] == 75 for r in ev_r.records)  # time limit 1.5 s at 50 Hz


def test_compare_reports(reports, tmp_path):
    from rho.eval.cli import cmd_eval

    res = compare(reports["random"][2], reports["expert"][2])
    overall = next(r for r in res["rows"] if r["task"] == "all" and r["level"] == "all")
    assert overall["diff"] == pytest.approx(1.0) and overall["significant"]  # 4/4 vs 0/4: p = 0.029
    cell = next(r for r in res["rows"] if r["task"] == "lift_block" and r["level"] == "nominal")
    assert cell["same_episodes"] and not cell["significant"]  # 2/2 vs 0/2 is too few episodes
    assert "| all | all |" in compare_markdown(res)
    assert cmd_eval(["compare", str(reports["random"][2]), str(reports["expert"][2]), f"out={tmp_path / 'c.md'}"]) == 0
    assert "significant" in (tmp_path / "c.md").read_text()


# ------------------------------------------------------------------------------------------------ statistics
def test_wilson_interval():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    s = summarize([{"success": k < 3, "progress": 1.0} for k in range(4)])
    assert s["success_rate"] == 0.75 and s["ci95"] == pytest.approx(list(wilson_interval(3, 4)))


def _report(k: int, n: int, outcomes: str | None = None) -> dict:
    outcomes = outcomes or "1" * k + "0" * (n - k)
    s = {"episodes": n, "successes": k, "success_rate": k / n, "ci95": list(wilson_interval(k, n))}
    return {"policy": {"name": f"p{k}"}, "suite": {"name": "s"}, "overall": s, "per_task": {"t": s},
            "per_level": {"nominal": s},
            "per_cell": [{"task": "t", "level": "nominal", **s, "outcomes": outcomes, "episode_seeds": list(range(n))}]}


def test_compare_significance():
    big = compare(_report(10, 50), _report(40, 50))["rows"][0]
    assert big["significant"] and big["diff"] == pytest.approx(0.6) and big["p_value"] < 1e-6
    tiny = compare(_report(25, 50), _report(27, 50))["rows"][0]
    assert not tiny["significant"] and tiny["p_value"] > 0.5
    assert compare(_report(25, 50), _report(27, 50), test="z")["rows"][0]["p_value"] > 0.5
    paired = compare(_report(20, 50), _report(30, 50), test="mcnemar")["rows"][0]
    assert paired["test"] == "mcnemar" and paired["significant"]  # 10 discordant pairs, all one way
    # reference values (scipy.stats.fisher_exact / exact binomial)
    assert fisher_exact(1, 10, 7, 10) == pytest.approx(0.01977, abs=1e-4)
    assert fisher_exact(3, 3, 0, 3) == pytest.approx(0.1, abs=1e-9)
    assert mcnemar_exact(0, 6) == pytest.approx(0.03125)
    assert two_proportion_z(0, 10, 0, 10) == 1.0


def test_force_limit_violations_on_synthetic_record():
    t = np.arange(100) * 0.02
    force = np.zeros((100, 4))
    force[:, 1] = 50.0 * np.exp(-((t - 1.0) / 0.1) ** 2)  # a 50 N spike on pad 1 around t = 1 s
    force[10, 3] = np.nan  # a diverged reading is ignored
    s = force_stats(force, limit=40.0, control_dt=0.02, pads=["la", "lb", "ra", "rb"])
    over = int(np.sum(force[:, 1] > 40.0))
    assert s["force_violation_steps"] == over > 0 and s["force_violation_s"] == pytest.approx(over * 0.02)
    assert s["peak_force_n"] == pytest.approx(50.0, rel=1e-3) and s["peak_force_pad"] == "lb"
    assert force_stats(force, limit=60.0, control_dt=0.02)["force_violation_steps"] == 0
    assert force_stats(np.zeros((0, 4)), 40.0, 0.02)["peak_force_n"] is None


# ------------------------------------------------------------------------------------------------ seeds, levels
def test_episode_seeds_are_fixed_and_distinct():
    a = [episode_seed(0, "lift_block", "nominal", k) for k in range(3)]
    assert a == [episode_seed(0, "lift_block", "nominal", k) for k in range(3)]
    others = {episode_seed(1, "lift_block", "nominal", 0), episode_seed(0, "lift_block", "shifted", 0),
              episode_seed(0, "toolbox_close", "nominal", 0)}
    assert len(set(a) | others) == 6
    assert a[0] == 14518051148444723877  # crc32-derived: the same on every machine and Python version


def test_level_configs():
    from rho.eval.rollout import env_config

    suite = load_suite("generalization", tasks=["plug_insertion"])
    expert = ExpertPolicy()
    held = env_config(suite, "plug_insertion", "held_out", expert, 1)
    nominal = env_config(suite, "plug_insertion", "nominal", expert, 1)
    shifted = env_config(suite, "busybox_turn_knob", "shifted", RandomPolicy(), 3)
    assert held.plug_type == "rect" and nominal.held_out == "rect" and nominal.plug_type is None
    assert held.action.mode == "ee_delta" and held.cameras == {}
    assert env_config(suite, "busybox_turn_knob", "held_out", expert, 1).layout_split == "heldout"
    assert shifted.randomization.physics.friction_scale.high <= 0.8 and shifted.action.mode == "joint_pos"
    assert shifted.num_envs == 3 and shifted.layout_split == "train"
    assert shifted.touch.history == 2  # 100 Hz touch at 50 Hz control, as datagen records it


def test_cli(tmp_path, capsys):
    from rho.eval.cli import cmd_eval

    assert cmd_eval(["suites"]) == 0 and "smoke" in capsys.readouterr().out.split()
    args = ["policy=expert", "suite=smoke", "tasks=[lift_block]", "episodes=1", "videos=0", f"out={tmp_path}",
            "--quiet"]
    assert cmd_eval(args) == 0
    assert "| lift_block / nominal | 100% |" in capsys.readouterr().out
    assert json.loads((tmp_path / "report.json").read_text())["overall"]["episodes"] == 1
    assert cmd_eval(["suite=smok"]) == 2 and "Did you mean 'smoke'" in capsys.readouterr().err


def test_held_out_and_shifted_episodes():
    ev = Evaluation(load_suite("smoke", tasks=["lift_block"], levels=["shifted", "held_out"], episodes=1, videos=0,
                               traces=0))
    report = ev.run("expert")
    shifted, held = ev.records
    assert 0.5 <= shifted["randomization"]["friction_scale"] <= 0.8  # beyond the training 0.8–1.2
    assert held["held_out_instruction"] and held["instruction"] != held["task_instruction"]
    assert report["overall"]["success_rate"] == 1.0 and not report["skipped"]


def test_cells_without_a_variation_or_expert_are_skipped(monkeypatch):
    from rho.eval import held_out

    monkeypatch.setattr(held_out, "HELD_OUT", {})
    ev = Evaluation(load_suite("smoke", tasks=["lift_block"], levels=["held_out"]))
    units, skipped = ev.plan("expert")
    assert not units and "no held-out variation" in skipped[0]["reason"]
    reason = ExpertPolicy("lift_block").supports("busybox_push_button")
    assert reason and "lift_block" in reason


# ------------------------------------------------------------------------------------------------ errors
def test_suite_config_errors_are_clear():
    with pytest.raises(ConfigError) as e:
        load_suite("smoke", episodes=0, tasks=["lift_blok"], levels=["nominl"])
    msg = str(e.value)
    assert "levels" in msg and "nominal" in msg  # the Literal's choices
    with pytest.raises(ConfigError) as e:
        load_suite("smoke", episodes=0, tasks=["lift_blok"], held_out_plug="usb")
    msg = str(e.value)
    assert "episodes must be >= 1" in msg and "Did you mean 'lift_block'" in msg and "held_out_plug" in msg
    with pytest.raises(KeyError, match="bundled suites"):
        load_suite("smok")
    with pytest.raises(ConfigError, match="episodez"):
        load_suite("smoke", episodez=3)
    bad_env = Evaluation(load_suite("smoke", tasks=TASKS, env={"layout_split": "heldout"}))
    with pytest.raises(ConfigError, match=r"lift_block \(nominal\): layout_split: unknown key"):
        bad_env.run("expert")  # fails before any episode runs


def test_policy_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="'expert', 'random' or a trained policy directory"):
        load_policy(str(tmp_path / "missing"))
    monkeypatch.setitem(sys.modules, "rho.policy.inference", None)  # as if the module were not there
    with pytest.raises(RuntimeError, match=r"rho\.policy\.inference"):
        load_policy(str(tmp_path))

    class Bad:
        def act(self, obs, instruction):
            return np.zeros((len(instruction), 3))

        def reset(self, env_ids):
            pass

    ev = Evaluation(load_suite("smoke", tasks=["lift_block"], episodes=1, videos=0, traces=0))
    with pytest.raises(RuntimeError, match=r"expected \(1, 14\)"):
        ev.run(Bad())
    with pytest.raises(TypeError, match="not a policy"):
        ev.run(object())


# ------------------------------------------------------------------------------------------------ launchers
def test_worker_processes_give_the_same_episodes():
    suite = load_suite("smoke", tasks=["lift_block"], episodes=3, videos=0, traces=0, num_envs=2)
    local = Evaluation(suite)
    local.run("expert")
    spawned = Evaluation(suite, workers=2, num_envs=1)
    spawned.run("expert")
    key = [(r["episode_seed"], r["steps"], r["success"], r["peak_force_n"]) for r in local.records]
    assert key == [(r["episode_seed"], r["steps"], r["success"], r["peak_force_n"]) for r in spawned.records]


@pytest.mark.slow
def test_ray_launcher_on_a_local_cluster():
    pytest.importorskip("ray")
    suite = load_suite("smoke", tasks=["lift_block"], episodes=2, videos=1, traces=0, workers=2, launcher="ray")
    ev = Evaluation(suite)
    report = ev.run("expert")
    assert report["overall"]["episodes"] == 2 and ev.records[0]["video"] is None  # no out: nothing written
    ref = Evaluation(suite, launcher="local", workers=1)
    ref.run("expert")
    assert [r["steps"] for r in ev.records] == [r["steps"] for r in ref.records]
