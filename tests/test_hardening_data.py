"""Issue 12 (hardening), the data half: `rho datagen --resume` refuses other settings with the diff, a full disk
stops the run cleanly (one worker or several) and resume continues, output paths are checked before any
simulation, and `rho dataset check` names every injected corruption (file, demo, key) without a traceback."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from rho.cli import main
from rho.config import load_config
from rho.datagen import hdf5, runner, tools
from rho.datagen.hdf5 import Dataset, DatasetError
from rho.datagen.runner import datagen_schema, generate

CAMS = "env.cameras={cam_high: {width: 16, height: 16}}"  # one tiny camera: images (and their chunks) exist


def _overrides(out, **kw) -> list[str]:
    return [f"out={out}", CAMS, "num_envs=1", "demos_per_shard=1"] + [f"{k}={v}" for k, v in kw.items()]


def _cfg(out, **kw):
    return load_config(datagen_schema(kw.get("task", "lift_block")), yaml="datagen", overrides=_overrides(out, **kw))


def _actions(path) -> list[np.ndarray]:
    with Dataset(path) as ds:
        return [ds.group(i)["actions"][()] for i in range(ds.num_demos)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """3 lift_block demos, one per shard, with a 16² camera."""
    out = tmp_path_factory.mktemp("hd") / "tiny"
    generate(_cfg(out, num_demos=3), progress=False)
    return out


@pytest.fixture
def partial(tiny, tmp_path) -> Path:
    """`tiny` as an interrupted run leaves it: two closed shards, no manifest."""
    out = tmp_path / "partial"
    shutil.copytree(tiny, out)
    (out / "manifest.json").unlink()
    (out / "shard_w00_00002.hdf5").unlink()
    return out


def _listing(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(path.iterdir())}


# ------------------------------------------------------------------------------------------------ 1. resume
def test_resume_with_other_settings_is_refused_with_the_diff(partial, monkeypatch):
    before = _listing(partial)
    cases = [({"seed": 1}, ["seed: 0 → 1"]),
             ({"keep_failures": "true"}, ["keep_failures: false → true"]),
             ({"env.cameras": "{}"}, ["env.cameras.cam_high.width: 16 → absent", "obs.rgb_cam_high.shape"]),
             ({"env.cameras": "{cam_high: {width: 24, height: 16}}"}, ["env.cameras.cam_high.width: 16 → 24",
                                                                       "obs.rgb_cam_high.shape: [16, 16, 3] → [16, 24, 3]"]),
             ({"env.touch.rows": 3}, ["env.touch.rows: 4 → 3"]),
             ({"task": "busybox_push_button"}, ['task: "lift_block" → "busybox_push_button"',
                                                 'expert: "lift_block_scripted" → ']),
             ({"env.sim.control_hz": 25.0}, ["env.sim.control_hz: 50.0 → 25.0"])]
    for kw, expected in cases:
        with pytest.raises(DatasetError) as e:
            generate(_cfg(partial, num_demos=3, resume="true", **kw), progress=False)
        msg = str(e.value)
        assert "would mix" in msg and "shard_w00_00000.hdf5, shard_w00_00001.hdf5" in msg, msg
        for line in expected:
            assert line in msg, (kw, msg)
        assert "Fix: rerun with the recorded settings" in msg
    from rho.tasks.lift_block import LiftBlockExpert

    monkeypatch.setattr(LiftBlockExpert, "version", "0.2")  # the expert changed between the runs
    with pytest.raises(DatasetError, match=r'expert_version: "0\.1" → "0\.2"'):
        generate(_cfg(partial, num_demos=3, resume="true"), progress=False)
    monkeypatch.undo()
    assert _listing(partial) == before  # nothing written, nothing removed


def test_resume_refusal_on_the_command_line_and_of_a_shard_of_another_format(partial, capsys):
    code = main(["datagen", *_overrides(partial, num_demos=3, seed=2), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "seed: 0 → 2" in err and "Traceback" not in err, err
    with h5py.File(partial / "shard_w00_00001.hdf5", "a") as f:
        f.attrs["format_version"] = 1
    with pytest.raises(DatasetError, match=r"shard_w00_00001\.hdf5 \(recorded → this command\):\n    "
                                           r"format_version: 1 → 2"):
        generate(_cfg(partial, num_demos=3, resume="true"), progress=False)


def test_resume_with_the_same_settings_continues(partial, tiny):
    s = generate(_cfg(partial, num_demos=3, resume="true", workers=1, num_envs=2), progress=False)  # num_envs free
    assert s["demos"] == 3 and s["resumed_attempts"] == 2
    for a, b in zip(_actions(partial), _actions(tiny), strict=True):
        np.testing.assert_array_equal(a, b)
    with h5py.File(partial / "shard_w00_00000.hdf5") as f:  # the run's settings travel with every shard
        assert json.loads(f.attrs["datagen"]) == {"seed": 0, "keep_failures": False, "num_demos": 3,
                                                  "expert": "scripted"}
    s = generate(_cfg(partial, num_demos=4, resume="true"), progress=False)  # a finished run grows
    assert s["demos"] == 4


def test_resume_of_a_single_file_checks_it_too(tmp_path):
    one = tmp_path / "one.hdf5"
    generate(_cfg(one, num_demos=1), progress=False)
    with pytest.raises(DatasetError, match=r"one\.hdf5 \(recorded → this command\):\n    seed: 0 → 5"):
        generate(_cfg(one, num_demos=1, seed=5, resume="true"), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.hdf5"]


# ------------------------------------------------------------------------------------------------ 2. disk full
def _enospc_on(call: int):
    """A ShardWriter.add that fails with ENOSPC on its `call`-th call, as h5py reports a full disk."""
    real_add = hdf5.ShardWriter.add
    calls = {"n": 0}

    def add(self, ep, name):
        calls["n"] += 1
        if calls["n"] == call:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_add(self, ep, name)

    return add


def test_disk_full_one_worker_clear_error_then_resume(tmp_path, monkeypatch, capsys, tiny):
    out = tmp_path / "full"
    monkeypatch.setattr(hdf5.ShardWriter, "add", _enospc_on(3))
    code = main(["datagen", *_overrides(out, num_demos=3), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert f"writing {out / '.shard_w00_00002.hdf5.tmp'} failed: No space left on device: " in err
    assert f"MiB free on the filesystem holding {out}" in err and "2 closed shard(s)" in err and "--resume" in err
    assert sorted(p.name for p in out.iterdir()) == ["shard_w00_00000.hdf5", "shard_w00_00001.hdf5"]
    with Dataset(out) as ds:
        assert ds.num_demos == 2 and all(ds.episode(i).validate() == [] for i in range(2))
    monkeypatch.undo()
    assert main(["datagen", *_overrides(out, num_demos=3), "--resume", "--quiet"]) == 0
    for a, b in zip(_actions(out), _actions(tiny), strict=True):
        np.testing.assert_array_equal(a, b)


def test_too_little_space_stops_before_hdf5_writes(tmp_path, monkeypatch):
    """HDF5 crashes (or hangs a worker) when a write fails for lack of space: datagen refuses before it tries,
    naming the path, the free space and what the demo needs."""
    writes = []
    monkeypatch.setattr(hdf5.ShardWriter, "add", lambda self, ep, name: writes.append(name))
    monkeypatch.setattr(runner, "free_bytes", lambda path: 3 * 2**20)
    out = tmp_path / "small_disk"
    with pytest.raises(DatasetError, match=r"No space left on device: 3\.0 MiB free on the filesystem holding "
                                           r".*small_disk, the next demo needs up to [\d.]+ MiB\. The 0 closed "
                                           r"shard"):
        generate(_cfg(out, num_demos=2), progress=False)
    assert writes == [] and list(out.iterdir()) == []


def test_manifest_write_failing_is_a_clear_error(tmp_path, monkeypatch):
    def no_space(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runner, "atomic_write_text", no_space)
    out = tmp_path / "m"
    with pytest.raises(DatasetError, match=r"writing .*manifest\.json failed: No space left on device: "):
        generate(_cfg(out, num_demos=1), progress=False)
    monkeypatch.undo()
    assert generate(_cfg(out, num_demos=1, resume="true"), progress=False)["demos"] == 1


HOOK = '''
import os
mode = os.environ.get("RHO_TEST_WORKER_FAULT")
if mode:  # a fault in datagen's worker processes (they are spawned: the test's monkeypatching does not reach them)
    import errno, signal
    from rho.datagen import hdf5
    real_add, calls = hdf5.ShardWriter.add, []

    def add(self, ep, name):
        calls.append(name)
        if len(calls) == 2:
            if mode == "enospc":
                raise OSError(errno.ENOSPC, "No space left on device")
            os.kill(os.getpid(), signal.SIGSEGV)  # what HDF5 did on a real full disk
        return real_add(self, ep, name)

    hdf5.ShardWriter.add = add
'''


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("mode", "expected"), [
    ("enospc", r"datagen worker \d: writing .*shard_w0\d_00001\.hdf5\.tmp failed: No space left on device: [\d.]+ MiB free"),
    ("segv", r"datagen worker \d died with signal SIGSEGV \(exit code -11\) without reporting an error.*--resume")])
def test_a_failing_worker_stops_the_run_instead_of_hanging(tmp_path, monkeypatch, mode, expected):
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(HOOK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "hook"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("RHO_TEST_WORKER_FAULT", mode)
    out = tmp_path / "w2"
    t0 = time.monotonic()
    with pytest.raises(DatasetError, match=expected):
        generate(_cfg(out, num_demos=8, workers=2, **{"env.cameras": "{}"}), progress=False)
    assert time.monotonic() - t0 < 200
    with Dataset(out) as ds:  # every closed shard readable
        assert all(ds.episode(i).validate() == [] for i in range(ds.num_demos))
    monkeypatch.delenv("RHO_TEST_WORKER_FAULT")
    s = generate(_cfg(out, num_demos=3, resume="true", workers=2, **{"env.cameras": "{}"}), progress=False)
    assert s["demos"] == 3 and s["resumed_attempts"] >= 1 and s["workers"] == 2
    assert not list(out.glob(".*.tmp"))  # a crashed worker's half-written shard is gone with the resume
    assert tools.check(out)[0] == []


# ------------------------------------------------------------------------------------------------ 3. out paths
@pytest.fixture
def no_simulation(monkeypatch):
    """Any env built (a simulation about to start) fails the test: paths must be refused before."""
    def boom(*a, **k):
        raise AssertionError("an env was built before the output path was checked")

    monkeypatch.setattr(runner, "_env_for", boom)


def test_bad_output_paths_are_refused_before_any_simulation(tmp_path, no_simulation, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    a_dir_named_hdf5 = tmp_path / "d.hdf5"
    a_dir_named_hdf5.mkdir()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (foreign / name).write_text("x")
    cases = [(a_file, f"out={a_file}: {a_file} is a file; datagen writes a directory"),
             (a_file / "ds", f"cannot write {a_file / 'ds'}: {a_file} is a file"),
             (a_dir_named_hdf5, "is a directory, but a name ending in .hdf5 asks for one file"),
             (foreign, f"{foreign} is not empty and is not a rho dataset (it holds a.jpg, b.jpg)")]
    for out, expected in cases:
        for resume in ("false", "true"):
            with pytest.raises(DatasetError) as e:
                generate(_cfg(out, num_demos=1, resume=resume), progress=False)
            assert expected in str(e.value), (out, resume, str(e.value))
        assert main(["datagen", *_overrides(out, num_demos=1), "--quiet"]) == 1
        assert "Traceback" not in capsys.readouterr().err
    assert a_file.read_text() == "mine" and sorted(p.name for p in foreign.iterdir()) == ["a.jpg", "b.jpg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner._prepare_out(_cfg(empty, num_demos=1)) == (empty, None)  # an empty directory is fine


def test_read_only_output_directory_is_refused_before_any_simulation(tmp_path, no_simulation):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits; an immutable directory stops it too
        if subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("running as root without chattr: no read-only directory to test with")
    else:
        ro.chmod(0o555)
    try:
        for out in (ro, ro / "sub", ro / "one.hdf5"):
            with pytest.raises(DatasetError, match=r"cannot write to .*ro.*Fix: choose a writable out=.*MiB free"):
                generate(_cfg(out, num_demos=1), progress=False)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(ro)], check=True)
        else:
            ro.chmod(0o755)
    assert list(ro.iterdir()) == []


def test_the_cli_refuses_before_building_anything(tmp_path):
    """End to end in a fresh process: out= a file exits 1 with one line, within the time of the imports."""
    a_file = tmp_path / "f"
    a_file.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "rho.cli", "datagen", f"out={a_file}", "num_demos=1", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "is a file" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------------------------ 4. check
def _set(path: Path, key: str, value: np.ndarray, num_samples: int | None = None) -> None:
    """Replace `key` of the shard's one demo with `value` (any dtype and shape)."""
    with h5py.File(path, "a") as f:
        g = next(iter(f["data"].values()))
        del g[key]
        g.create_dataset(key, data=value)
        if num_samples is not None:
            g.attrs["num_samples"] = num_samples


def _edit(path: Path, key: str, fn) -> None:
    """Rewrite `key` of the shard's one demo as fn(its values), same dtype and shape."""
    with h5py.File(path, "a") as f:
        d = next(iter(f["data"].values()))[key]
        d[...] = fn(d[()])


def _manifest(ds: Path, fn) -> None:
    m = json.loads((ds / "manifest.json").read_text())
    fn(m)
    (ds / "manifest.json").write_text(json.dumps(m))


def _rng_bytes(n: int) -> bytes:
    return np.random.default_rng(7).integers(0, 256, n, dtype=np.uint8).tobytes()


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _garbage_chunk(p: Path) -> None:
    """Overwrite the middle of one stored image chunk (step 2 of rgb_cam_high) with random bytes."""
    with h5py.File(p, "r") as f:
        d = next(iter(f["data"].values()))["obs/rgb_cam_high"]
        info = d.id.get_chunk_info_by_coord((2, 0, 0, 0))
    with open(p, "r+b") as fh:
        fh.seek(info.byte_offset + 4)
        fh.write(_rng_bytes(max(8, info.size - 8)))


def _zero_length(p: Path) -> None:
    with h5py.File(p, "a") as f:
        g = next(iter(f["data"].values()))
        for key in ["actions", "expert_actions", "rewards", "dones", "states/sim",
                    *(f"obs/{k}" for k in g["obs"])]:
            shape, dtype = g[key].shape, g[key].dtype
            del g[key]
            g.create_dataset(key, shape=(0, *shape[1:]), dtype=dtype)
        g.attrs["num_samples"] = 0


S0, S1, S2 = "shard_w00_00000.hdf5", "shard_w00_00001.hdf5", "shard_w00_00002.hdf5"
# kind → (corruption of a copy of `tiny`, what the one problem line must all name: file, demo, key / detail)
CORRUPTIONS = {
    "truncated_hdf5": (lambda ds: _truncate(ds / S1), [S1, "not a readable HDF5 file, truncated"]),
    "truncated_hdf5_demo_named": (lambda ds: _truncate(ds / S1),
                                  ["manifest.json: entry 1 (demo_1): in shard_w00_00001.hdf5, which cannot be read"]),
    "garbage_hdf5": (lambda ds: (ds / S1).write_bytes(_rng_bytes(4096)), [S1, "not a readable HDF5 file"]),
    "garbage_manifest": (lambda ds: (ds / "manifest.json").write_bytes(_rng_bytes(300)),
                         ["manifest.json: not valid JSON", "Fix: delete it and rerun"]),
    "manifest_not_an_object": (lambda ds: (ds / "manifest.json").write_text("[1, 2]"),
                               ["manifest.json: expected an object with a demos list"]),
    "manifest_missing": (lambda ds: (ds / "manifest.json").unlink(),
                         ["INCOMPLETE: no manifest.json", "Finish it with: rho datagen task=lift_block", "--resume"]),
    "manifest_entry_removed": (lambda ds: _manifest(ds, lambda m: m["demos"].pop(1)),
                               [S1, "demo demo_1 (attempt 1) is not in manifest.json", "entries were removed"]),
    "manifest_extra_entry": (lambda ds: _manifest(ds, lambda m: m["demos"].append(
        {**m["demos"][0], "group": "demo_9", "attempt": 9})), ["manifest.json: entry 3", S0, "has no demo demo_9"]),
    "manifest_wrong_length": (lambda ds: _manifest(ds, lambda m: m["demos"][2].update(num_samples=5)),
                              ["manifest.json: entry 2", S2, "demo_2", "manifest says 5 steps"]),
    "shard_deleted": (lambda ds: (ds / S2).unlink(), ["manifest.json: entry 2 (demo_2)", S2, "is missing"]),
    "shard_deleted_attempts_lost": (lambda ds: (ds / S2).unlink(),
                                    ["manifest.json: attempt(s) 2 of the run's 3 are in no shard"]),
    "orphaned_shard": (lambda ds: shutil.copy(ds / S1, ds / "shard_w01_00000.hdf5"),
                       ["shard_w01_00000.hdf5: demo demo_1 (attempt 1) is not in manifest.json"]),
    "format_version_99": (lambda ds: h5py.File(ds / S1, "a").attrs.__setitem__("format_version", 99),
                          [S1, "format_version 99", "newer rho: upgrade"]),
    "zero_length_demo": (lambda ds: _zero_length(ds / S1), [S1, "demo 1 (demo_1)", "num_samples is 0: an empty demo"]),
    "random_bytes_joint_pos": (lambda ds: _edit(ds / S1, "obs/joint_pos", lambda a: np.frombuffer(
        _rng_bytes(a.nbytes), np.float32).reshape(a.shape)), [S1, "demo 1 (demo_1)", "obs/joint_pos:"]),
    "actions_1e30": (lambda ds: _edit(ds / S0, "actions", lambda a: a + np.float32(1e30) * (np.arange(len(a)) == 4)[:, None]),
                     [S0, "demo 0 (demo_0)", "actions: values up to 1e+30 (first at step 4)", "corrupted data"]),
    "actions_out_of_bounds": (lambda ds: _edit(ds / S2, "actions", lambda a: a + 2.0 * (np.arange(14) == 1)),
                              [S2, "demo 2 (demo_2)", "actions: dim(s) [1] outside the joint_pos action space"]),
    "actions_int32": (lambda ds: _set(ds / S1, "actions", np.zeros((_len(ds / S1), 14), np.int32)),
                      [S1, "demo 1 (demo_1)", "actions: dtype int32, expected float32"]),
    "actions_T_by_7": (lambda ds: _set(ds / S1, "actions", np.zeros((_len(ds / S1), 7), np.float32)),
                       [S1, "demo 1 (demo_1)", "actions: per-step shape (7,), the joint_pos action of this robot is "
                                               "(14,)"]),
    "joints_beyond_limits": (lambda ds: _edit(ds / S1, "obs/joint_pos", lambda a: a + 4.0 * (np.arange(14) == 0)),
                             [S1, "demo 1 (demo_1)", "obs/joint_pos: dim(s) [0] outside the joint limits"]),
    "force_beyond_saturation": (lambda ds: _edit(ds / S1, "obs/touch_net_left_a", lambda a: a + 400.0),
                                [S1, "demo 1 (demo_1)", "obs/touch_net_left_a: reads up to", "saturation of 150 N"]),
    "taxel_beyond_saturation": (lambda ds: _edit(ds / S0, "obs/touch_right_b", lambda a: a - 90.0),
                                [S0, "demo 0 (demo_0)", "obs/touch_right_b", "saturation of 40 N"]),
    "nan_in_state": (lambda ds: _edit(ds / S2, "states/sim", lambda a: np.where(np.arange(len(a))[:, None] == 3, np.nan, a)),
                     [S2, "demo 2 (demo_2)", "states/sim: contains NaN or inf", "first at step 3"]),
    "image_chunk_garbage": (lambda ds: _garbage_chunk(ds / S1),
                            [S1, "demo 1 (demo_1)", "obs/rgb_cam_high: the chunk(s) of step(s) 2 fail to decode"]),
    "image_wrong_dtype": (lambda ds: _set(ds / S0, "obs/rgb_cam_high", np.zeros((_len(ds / S0), 16, 16, 3), np.float32)),
                          [S0, "demo 0 (demo_0)", "obs/rgb_cam_high: dtype float32, expected uint8"]),
    "length_mismatch": (lambda ds: _set(ds / S1, "rewards", np.zeros(3, np.float32)),
                        [S1, "demo 1 (demo_1)", "rewards: 3 steps, num_samples says"]),
}


def _len(shard: Path) -> int:
    with h5py.File(shard) as f:
        return int(next(iter(f["data"].values())).attrs["num_samples"])


def test_check_passes_the_clean_dataset(tiny, capsys):
    problems, stats = tools.check(tiny)
    assert problems == [] and stats["status"] == "OK" and stats["demos"] == 3
    assert main(["dataset", "check", str(tiny)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_check_names_every_corruption(tiny, tmp_path, capsys, kind):
    """Each corruption on a copy of a clean dataset: check names it (file, demo, key) and exits 1, no traceback."""
    corrupt, expected = CORRUPTIONS[kind]
    ds = tmp_path / "ds"
    shutil.copytree(tiny, ds)
    corrupt(ds)
    problems, stats = tools.check(ds)
    assert any(all(e in p for e in expected) for p in problems), (kind, problems)
    assert stats["status"] in ("PROBLEMS", "INCOMPLETE")
    assert main(["dataset", "check", str(ds)]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "PROBLEM" in out, (out, err)
    assert main(["dataset", "check", str(ds), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"] == problems


def test_check_of_single_files(tiny, tmp_path):
    one = tmp_path / "one.hdf5"
    tools.merge(one, [tiny])
    assert tools.check(one)[0] == []
    with h5py.File(one, "a") as f:
        f["data/demo_1/actions"][2, 3] = np.float32(3e20)
    assert any(p.startswith(f"{one}: demo 1 (demo_1): actions: values up to 3e+20") for p in tools.check(one)[0])
    _truncate(one)
    problems, _ = tools.check(one)
    assert len(problems) == 1 and problems[0].startswith(f"{one}: not a readable HDF5 file, truncated")


def test_incomplete_run_gives_the_command_that_finishes_it(tiny, tmp_path, capsys):
    """The resume command check prints for an interrupted run works as printed."""
    import shlex

    ds = tmp_path / "ds"
    shutil.copytree(tiny, ds)
    (ds / "manifest.json").unlink()
    (ds / S2).unlink()
    assert main(["dataset", "check", str(ds)]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("INCOMPLETE (1 problem(s)); finish it with: rho datagen task=lift_block")
    cmd = shlex.split(last.split("finish it with: ")[1])
    assert "num_demos=3" in cmd and 'env.cameras={"cam_high": {"width": 16, "height": 16}}' in cmd, cmd
    assert main([*cmd[1:], "--quiet"]) == 0
    assert tools.check(ds)[0] == []
    for a, b in zip(_actions(ds), _actions(tiny), strict=True):
        np.testing.assert_array_equal(a, b)


def test_cached_read_handles_bound_their_chunk_cache(tiny):
    """Readers keep one h5py handle per shard and the datasets of up to 4 096 demos open; with HDF5's own 8 MiB chunk
    cache per dataset, building a frame cache of 1 000 demos x 3 cameras grew a training run past 13 GiB (OOM)."""
    with Dataset(tiny) as ds:
        arrays = ds.datasets(0)
        for d in (arrays["actions"], next(v for k, v in arrays.items() if k.startswith("obs/rgb_"))):
            assert d.file.id.get_access_plist().get_cache()[2] == hdf5.CHUNK_CACHE_BYTES
    assert hdf5.CHUNK_CACHE_BYTES <= 1 << 20
