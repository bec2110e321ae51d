"""Dataset generation: layout, determinism, kill -9 and resume, tools, replay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from rho.config import load_config
from rho.datagen import tools
from rho.datagen.hdf5 import Dataset, DatasetError
from rho.datagen.runner import datagen_schema, generate

SMALL_CAMS = "env.cameras={cam_high: {width: 32, height: 32}, cam_left_wrist: {width: 32, height: 32}}"


def _cfg(out, **kw):
    overrides = [f"out={out}", SMALL_CAMS] + [f"{k}={v}" for k, v in kw.items()]
    return load_config(datagen_schema("lift_block"), yaml="datagen", overrides=overrides)


def _actions(path) -> list[np.ndarray]:
    with Dataset(path) as ds:
        return [ds.group(i)["actions"][()] for i in range(ds.num_demos)]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("dg") / "ds"
    summary = generate(_cfg(out, num_demos=4, num_envs=2, demos_per_shard=3), progress=False)
    return out, summary


def test_layout_is_robomimic(small):
    out, summary = small
    assert summary["demos"] == 4
    assert (out / "manifest.json").exists()
    assert len(list(out.glob("shard_*.hdf5"))) == 2  # 3 + 1 demos
    with Dataset(out) as ds:
        g = ds.group(0)
        assert g["actions"].shape[1:] == (14,) and g["actions"].dtype == np.float32
        # v2: actions are the executed joint targets, the expert's ee_delta command is kept beside them
        assert g["expert_actions"].shape == g["actions"].shape and g["expert_actions"].dtype == np.float32
        assert g.attrs["action_mode"] == "joint_pos" and g.attrs["expert_action_mode"] == "ee_delta"
        assert g["obs/ee_target"].shape[1:] == (14,)  # the running TCP target ee_delta moves is observed
        args = ds.env_args()
        assert args["action_mode"] == "joint_pos" and args["expert_action_mode"] == "ee_delta"
        assert args["env_config"]["action"]["mode"] == "ee_delta"  # the env the expert ran in
        assert "ee_target" in [k["name"] for k in args["obs_spec"]]
        assert g["dones"][-1] == 1 and g["dones"][:-1].sum() == 0
        assert g["states/sim"].shape[0] == g.attrs["num_samples"]
        assert g["initial_state/sim"].ndim == 1
        img = g["obs/rgb_cam_high"]
        assert img.dtype == np.uint8 and img.chunks == (1, 32, 32, 3) and img.compression == "gzip"
        assert g["obs/touch_left_a"].shape[1:] == (2, 4, 4, 3)  # 2 touch samples per control step (100 / 50 Hz)
        for attr in ("episode_seed", "instruction", "randomization", "expert", "expert_version", "task"):
            assert attr in g.attrs
        assert g.attrs["source"] == "sim" and g.attrs["backend"] == "mujoco"
        assert json.loads(g.attrs["randomization"])["friction_scale"] > 0
        f = g.file
        assert f.attrs["format_version"] == 2
        assert "env_args" in f["data"].attrs and f["data"].attrs["total"] > 0
        assert "train" in f["mask"]
        frame = ds.frame(len(ds) - 1)
        assert frame["obs/rgb_cam_high"].shape == (32, 32, 3) and frame["action"].shape == (14,)
        assert frame["expert_action"].shape == (14,)


def test_check_passes_and_catches_problems(small, tmp_path):
    out, _ = small
    problems, stats = tools.check(out)
    assert problems == []
    assert stats["touch_demos"] == 4 and stats["success_rate"] == 1.0
    bad = tmp_path / "bad.hdf5"
    tools.merge(bad, [out])
    with h5py.File(bad, "a") as f:
        f["data/demo_1/obs/joint_pos"][3, 2] = np.nan
        del f["data/demo_2/obs/touch_left_a"]
        f["data/demo_3"].attrs["num_samples"] = 999
        f["data/demo_0/actions"][5, 1] = 2.0  # shoulder beyond its 1.257 rad limit
    problems, _ = tools.check(bad)
    text = "\n".join(problems)
    assert "demo 1" in text and "NaN" in text
    assert "obs/touch_left_a: missing" in text
    assert "num_samples says 999" in text
    assert "demo 0 (demo_0): actions: dim(s) [1] outside the joint_pos action space" in text
    with h5py.File(bad, "a") as f:
        del f["data/demo_0/expert_actions"]
    assert any("demo 0 (demo_0): missing expert_actions" in p for p in tools.check(bad)[0])


def test_same_seed_same_demos_whatever_the_batch(small, tmp_path):
    out, _ = small
    other = tmp_path / "one_env.hdf5"  # a single file, one env at a time
    generate(_cfg(other, num_demos=4, num_envs=1), progress=False)
    for a, b in zip(_actions(out), _actions(other), strict=True):
        np.testing.assert_array_equal(a, b)


def test_replay_is_bit_identical(small):
    """Both the training actions (joint targets, in joint_pos mode) and the expert's own commands (ee_delta)
    reproduce the recorded states bit-identically (qpos and qvel error exactly 0)."""
    out, _ = small
    result = tools.replay(out, demo=3)
    assert result["action_mode"] == "joint_pos" and result["bit_identical"], result
    assert result["max_qvel_divergence"] == 0.0, result
    result = tools.replay(out, demo=3, actions="expert_actions")
    assert result["bit_identical"] and result["action_mode"] == "ee_delta", result


def test_busybox_joint_targets_replay_the_demo(tmp_path):
    """A BusyBox task: every demo's joint-target actions, replayed in joint_pos mode from its seed and initial
    state, reproduce the recorded states bit-identically (qpos and qvel error exactly 0), and the dataset checks."""
    cfg = load_config(datagen_schema("busybox_push_button"), yaml="datagen", overrides=[
        "task=busybox_push_button", f"out={tmp_path / 'bb'}", "num_demos=2", "num_envs=2", "env.cameras={}"])
    generate(cfg, progress=False)
    assert tools.check(tmp_path / "bb")[0] == []
    for demo in range(2):
        result = tools.replay(tmp_path / "bb", demo=demo)
        assert result["bit_identical"] and result["max_qvel_divergence"] == 0.0, result


def _as_v1(path: Path, legacy_config: bool = False) -> None:
    """Rewrite a v2 file as format v1 wrote it: the expert's command as `actions`, no `expert_actions`, no
    `ee_target` observation, no action_mode in env_args or demo attrs (`legacy_config`: nor
    action.servo_float32 in the env config, which v1 did not have)."""
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 1
        args = json.loads(f["data"].attrs["env_args"])
        for k in ("action_mode", "expert_action_mode"):
            del args[k]
        if legacy_config:
            del args["env_config"]["action"]["servo_float32"]
        args["obs_spec"] = [k for k in args["obs_spec"] if k["name"] != "ee_target"]
        f["data"].attrs["env_args"] = json.dumps(args)
        for g in f["data"].values():
            del g["actions"], g["obs/ee_target"], g.attrs["action_mode"], g.attrs["expert_action_mode"]
            g.move("expert_actions", "actions")


def test_v1_converts_by_replay_to_what_v2_datagen_writes(small, tmp_path):
    """`rho dataset convert` relabels a v1 dataset (file or shard directory) by replay: the same actions,
    expert_actions and observations as a fresh v2 datagen; a demo that does not replay is refused."""
    import shutil

    from rho.cli import main
    from rho.datagen import hdf5

    out, _ = small
    old = tmp_path / "v1"
    shutil.copytree(out, old)
    for shard in old.glob("shard_*.hdf5"):
        _as_v1(shard)
    m = json.loads((old / "manifest.json").read_text())
    m["format_version"] = 1
    (old / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DatasetError, match=r"format_version 1 .* `rho dataset convert .*v1 <out_dir>`"):
        Dataset(old)
    assert main(["dataset", "convert", str(old), str(tmp_path / "v2"), "--json"]) == 0
    with Dataset(out) as fresh, Dataset(tmp_path / "v2") as conv:
        assert conv.num_demos == fresh.num_demos == 4
        assert conv.env_args()["action_mode"] == "joint_pos" and conv.env_args()["expert_action_mode"] == "ee_delta"
        assert conv.env_args()["obs_spec"] == fresh.env_args()["obs_spec"]
        for i in range(4):
            a, b = fresh.episode(i), conv.episode(i)
            np.testing.assert_array_equal(a.actions, b.actions)
            np.testing.assert_array_equal(a.expert_actions, b.expert_actions)
            assert a.obs.keys() == b.obs.keys()
            np.testing.assert_array_equal(a.obs["ee_target"], b.obs["ee_target"])
            assert b.meta["replay_max_qpos_error"] == 0.0  # same machine: the v1 actions replay bit-identically
    assert tools.check(tmp_path / "v2")[0] == []
    # one file; a demo whose recorded states the replay does not reproduce is refused, nothing written
    one = tmp_path / "one.hdf5"
    shutil.copyfile(next(iter(sorted(old.glob("shard_*.hdf5")))), one)
    result = hdf5.convert(one, tmp_path / "one_v2.hdf5")
    assert result["from_version"] == 1 and result["v1_to_v2"]["relabelled"] == 3
    with h5py.File(one, "a") as f:
        f["data/demo_1/states/sim"][10, 3] += 0.01
    with pytest.raises(DatasetError, match=r"demo_1 does not replay: from step 10 .* up to 0\.01"):
        hdf5.convert(one, tmp_path / "bad_v2.hdf5")
    assert not (tmp_path / "bad_v2.hdf5").exists() and not list(tmp_path.glob(".*.tmp"))


def test_refuses_existing_output_and_unwritable_path(small, tmp_path):
    out, _ = small
    with pytest.raises(DatasetError, match="--resume"):
        generate(_cfg(out, num_demos=4), progress=False)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(DatasetError, match="cannot write"):  # before any simulation starts
        generate(_cfg(blocker / "ds", num_demos=1), progress=False)
    assert blocker.read_text() == "not a directory"


def test_unknown_format_version_is_refused(small, tmp_path, monkeypatch):
    from rho.datagen import hdf5

    out, _ = small
    f2 = tmp_path / "v99.hdf5"
    tools.merge(f2, [out])
    with h5py.File(f2, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(DatasetError, match="newer rho: upgrade"):
        Dataset(f2)
    with h5py.File(f2, "a") as f:  # an older format with a registered migration: refused with the converter
        f.attrs["format_version"] = 1
        f["data/demo_0"].attrs["instruction"] = "old name"

    def v1_to_v2(f):  # what a migration looks like: edit the copy in place
        for g in f["data"].values():
            g.attrs["instruction"] = str(g.attrs["instruction"]).upper()

    monkeypatch.setitem(hdf5.MIGRATIONS, 1, v1_to_v2)
    with pytest.raises(DatasetError, match=r"rho dataset convert .*v99\.hdf5 <out\.hdf5>"):
        Dataset(f2)
    result = hdf5.convert(f2, tmp_path / "new.hdf5")
    assert result == {"out": str(tmp_path / "new.hdf5"), "from_version": 1, "to_version": 2}
    with Dataset(tmp_path / "new.hdf5") as ds:
        assert ds.episode(0).meta["instruction"] == "OLD NAME"


def test_v1_with_float64_servo_targets_converts(tmp_path):
    """A v1 dataset as rho wrote it (ee_delta servoing to the IK's float64 targets; the env config has no
    servo_float32): convert replays it in that env, bit-identically, and labels it with the executed targets —
    those of a v2 run in the same env — which replay it in joint_pos up to their float32 rounding."""
    from rho.datagen import hdf5

    cfg = load_config(datagen_schema("lift_block"), yaml="datagen", overrides=[
        f"out={tmp_path / 'old.hdf5'}", "num_demos=2", "num_envs=2", "env.cameras={}",
        "env.action.servo_float32=false"])
    generate(cfg, progress=False)
    with Dataset(tmp_path / "old.hdf5") as ds:
        fresh = [(ds.episode(i).actions, ds.episode(i).expert_actions) for i in range(2)]
    _as_v1(tmp_path / "old.hdf5", legacy_config=True)
    report = hdf5.convert(tmp_path / "old.hdf5", tmp_path / "new.hdf5")["v1_to_v2"]
    assert report["relabelled"] == 2 and report["max_qpos_error"] == 0.0 and report["max_qvel_error"] == 0.0
    assert 0.0 < report["joint_replay_max_qpos_error"] < 1e-6, report  # float32 rounding of float64 targets
    with Dataset(tmp_path / "new.hdf5") as ds:
        assert ds.env_args()["env_config"]["action"]["servo_float32"] is False
        assert tools.replay(tmp_path / "new.hdf5", demo=1, actions="expert_actions")["bit_identical"]
        for i, (actions, expert_actions) in enumerate(fresh):
            np.testing.assert_array_equal(ds.episode(i).actions, actions)
            np.testing.assert_array_equal(ds.episode(i).expert_actions, expert_actions)


def test_split_and_merge(small, tmp_path):
    out, _ = small
    merged = tmp_path / "m.hdf5"
    result = tools.merge(merged, [out, out])
    assert result["demos"] == 8
    masks = tools.split(merged, valid_fraction=0.25, seed=1)
    assert len(masks["valid"]) == 2 and len(masks["train"]) == 6
    with h5py.File(merged) as f:
        assert sorted(x.decode() for x in f["mask/valid"][()]) == masks["valid"]


def test_keep_failures_and_give_up(tmp_path):
    with pytest.raises(DatasetError, match="the expert is failing"):
        # episodes of 0.3 s are too short to lift the block: every attempt fails
        generate(_cfg(tmp_path / "g", num_demos=2, num_envs=2, max_attempts=4, keep_failures="true",
                      **{"env.episode_length_s": 0.3}), progress=False)
    with Dataset(tmp_path / "g", only_kept=False) as ds:  # the failed attempts were kept, labelled
        assert ds.num_demos >= 4 and not any(d.success for d in ds.demos)


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path):
    """kill -9 mid-run: closed shards stay readable; --resume reaches the target without duplicates and gives the
    same demos as an uninterrupted run."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rho.cli", "datagen", "num_demos=10", f"out={out}", "num_envs=2",
           "demos_per_shard=1", SMALL_CAMS, "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while len(list(out.glob("shard_*.hdf5"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = list(out.glob("shard_*.hdf5"))
    assert 3 <= len(finished) < 10, "the run finished before it could be killed"
    with Dataset(out) as ds:  # no manifest yet: shards are scanned, every finished demo readable
        assert ds.num_demos == len(finished)
        for i in range(ds.num_demos):
            assert ds.episode(i).validate() == []
    subprocess.run([*cmd, "--resume"], check=True, capture_output=True, timeout=600)
    reference = tmp_path / "reference"
    subprocess.run([c.replace(str(out), str(reference)) for c in cmd], check=True, capture_output=True, timeout=600)
    with Dataset(out) as ds:
        attempts = [d.attempt for d in ds.demos]
        assert len(attempts) == len(set(attempts)) == 10
    for a, b in zip(_actions(out), _actions(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    assert tools.check(out)[0] == []


@pytest.mark.slow
def test_worker_processes_give_the_same_demos(small, tmp_path):
    out, _ = small
    two = tmp_path / "two"
    s = generate(_cfg(two, num_demos=4, num_envs=1, workers=2), progress=False)
    assert s["workers"] == 2 and {p.name[:9] for p in Path(two).glob("shard_*.hdf5")} == {"shard_w00", "shard_w01"}
    for a, b in zip(_actions(out), _actions(two), strict=True):
        np.testing.assert_array_equal(a, b)


def test_view_strip_and_rerun(small, tmp_path):
    from PIL import Image

    from rho.datagen.view import view

    out, _ = small
    png = view(out, demo=1, out=tmp_path / "d.png", frames=5)
    img = Image.open(png["out"])
    assert img.width == 5 * 112  # one tile per frame
    assert png["instruction"]
    rrd = view(out, demo=1, out=tmp_path / "d.rrd")
    assert Path(rrd["out"]).stat().st_size > 10_000


@pytest.mark.slow
def test_ray_launcher_on_a_local_cluster(small, tmp_path):
    """launcher=ray: Ray tasks on a local cluster write the same demos, one manifest, and resume."""
    pytest.importorskip("ray")
    out, _ = small
    ray_out = tmp_path / "ray"
    s = generate(_cfg(ray_out, num_demos=4, num_envs=1, workers=2, launcher="ray"), progress=False)
    assert s["demos"] == 4
    assert json.loads((ray_out / "manifest.json").read_text())["num_demos"] == 4
    for a, b in zip(_actions(out), _actions(ray_out), strict=True):
        np.testing.assert_array_equal(a, b)


def test_disk_full_mid_run_keeps_closed_shards(tmp_path, monkeypatch):
    """A write failing mid-run (ENOSPC) gives a clear error; closed shards stay readable; --resume finishes."""
    import errno

    from rho.datagen import hdf5

    calls = {"n": 0}
    real_add = hdf5.ShardWriter.add

    def flaky_add(self, ep, name):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_add(self, ep, name)

    monkeypatch.setattr(hdf5.ShardWriter, "add", flaky_add)
    out = tmp_path / "full"
    with pytest.raises(DatasetError, match=r"No space left on device.*--resume"):
        generate(_cfg(out, num_demos=4, num_envs=1, demos_per_shard=1), progress=False)
    with Dataset(out) as ds:
        assert ds.num_demos == 2
        assert all(ds.episode(i).validate() == [] for i in range(2))
    monkeypatch.setattr(hdf5.ShardWriter, "add", real_add)
    s = generate(_cfg(out, num_demos=4, num_envs=1, demos_per_shard=1, resume="true"), progress=False)
    assert s["demos"] == 4
    assert not list(out.glob(".*.tmp"))


def test_cli_lerobot_round_trip(small, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    pytest.importorskip("av")
    from rho.cli import main

    out, _ = small
    assert main(["dataset", "export-lerobot", str(out), str(tmp_path / "lr"), "repo_id=test/lift", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["codebase_version"] == "v3.0"
    back = tmp_path / "back.hdf5"
    assert main(["dataset", "import-lerobot", str(tmp_path / "lr"), str(back), "--json"]) == 0
    capsys.readouterr()
    assert main(["dataset", "check", str(back)]) == 0
    for a, b in zip(_actions(out), _actions(back), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_readme_main_job_all_tasks(tmp_path, capsys):
    """The README's main job: one checked dataset per task with an expert."""
    from rho.cli import main
    from rho.tasks import ALL_TASKS

    assert main(["datagen", "task=all", "num_demos=1", f"out={tmp_path}", "num_envs=1", "env.cameras={}",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    names = [n for n, e in ALL_TASKS.items() if e.expert_cls is not None]
    for name in names:
        assert f"written to {tmp_path / name}" in printed
        assert tools.check(tmp_path / name)[0] == []
