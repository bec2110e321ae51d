"""The `rho` command: the README's main job, config errors, and the benchmark's report."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from rho.cli import main


def test_rollout_writes_images_touch_and_summary(tmp_path, capsys):
    out = tmp_path / "ro"
    assert main(["rollout", f"out={out}", "steps=60", "env.cameras.cam_high.width=64",
                 "env.cameras.cam_high.height=64", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert str(out) in text
    assert "touch_left_a" in text
    assert "peak pad normal force" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success"] == [True]
    assert max(summary["peak_pad_normal_force_N"].values()) > 2.0  # it touched the block
    data = np.load(out / "rollout.npz")
    steps = summary["steps"]
    assert data["rgb_cam_high"].shape == (steps + 1, 1, 64, 64, 3)
    assert data["touch_left_a"].shape == (steps + 1, 1, 1, 4, 4, 3)
    assert data["actions"].shape == (steps, 1, 14)
    assert Image.open(out / "cameras.png").size[1] == 3 * 128
    assert Image.open(out / "touch.png").size[1] == 4 * 128


def test_bad_overrides_fail_before_running(tmp_path, capsys):
    code = main(["rollout", f"out={tmp_path / 'x'}", "steps=abc", "env.sim.nm_threads=2", "policy=foo"])
    err = capsys.readouterr().err
    assert code == 2
    assert "steps: expected int" in err
    assert "Did you mean `env.sim.num_threads`" in err
    assert "policy" in err
    assert not (tmp_path / "x").exists()


def test_unknown_command_suggests(capsys):
    assert main(["rollot"]) == 2
    assert "Did you mean `rho rollout`" in capsys.readouterr().err


def test_tasks_lists_registry(capsys):
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert "rho/LiftBlock-v0" in out
    assert "e.g. 'pick up the red block'" in out


def test_expert_reports_success_with_ci(capsys):
    assert main(["expert", "task=lift_block", "episodes=8", "env.num_envs=4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 8
    assert result["success_rate"] >= 0.9
    assert 0.0 <= result["ci95"][0] <= result["success_rate"] <= result["ci95"][1] <= 1.0


@pytest.mark.slow
def test_console_script_bench_json():
    out = subprocess.run([sys.executable, "-m", "rho.cli", "bench", "sim", "--json", "repeats=1",
                          "control_steps=20", "parallel_envs=2", "render=false"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in ("raw_mujoco_steps_per_s", "env_physics_steps_per_s", "tactile_overhead",
                "parallel_speedup_2cores"):
        assert result[key] > 0


def test_bench_reports_every_figure():
    from rho.sim.bench import bench_sim

    result = bench_sim(repeats=1, parallel_envs=2, control_steps=10, render=True)
    for key in ("raw_mujoco_steps_per_s", "env_physics_steps_per_s", "tactile_overhead", "render_fps_128",
                "render_fps_224", "parallel_speedup_2cores", "env_vs_raw", "task_env_physics_steps_per_s",
                "env_ee_pose_physics_steps_per_s", "ee_pose_overhead"):
        assert result[key] > 0, key
