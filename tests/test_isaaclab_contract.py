"""Isaac Lab's scene-state dicts (`rho dataset export-isaaclab`) and Isaac Lab Mimic subtask signals (issue 14).

- the `initial_state` / `states` dicts equal what MuJoCo itself gives for the recorded flat state set into the
  demo's own model (joint values by joint name, body poses, the centre-of-mass velocity from
  `mj_objectVelocity`), on lift_block (a free block), plug_insertion (a floating strip with shutter joints, a free
  plug) and busybox_insert_wire (a fixed-base panel whose pose is drawn into the model, free jacks);
- the file honours Isaac Lab's reader contract, written from its source (IsaacLab commit 032e26b:
  `InteractiveScene.get_state` / `reset_to`, `EpisodeData.get_initial_state` / `get_state`,
  `scripts/tools/replay_demos.py`'s `compare_states`) — Isaac Lab itself is not installed here;
- every task's `mimic_subtask_signals` rise 0 → 1 exactly once, before the end, in real expert demos.
"""

from __future__ import annotations

import json
import shutil

import h5py
import mujoco
import numpy as np
import pytest

from rho.cli import main
from rho.config import load_config
from rho.datagen.hdf5 import DatasetError
from rho.datagen.isaaclab_export import export_isaaclab
from rho.datagen.robomimic import export_robomimic, pad_grasp
from rho.datagen.runner import datagen_schema, generate
from rho.tasks import make_env_from_dataset

NO_CAMS = "env.cameras={}"


def _demos(tmp_path_factory, task: str, n: int = 2, seed: int = 0):
    out = tmp_path_factory.mktemp(task) / f"{task}.hdf5"
    cfg = load_config(datagen_schema(task), yaml="datagen",
                      overrides=[f"task={task}", f"out={out}", f"num_demos={n}", "num_envs=2", f"seed={seed}", NO_CAMS])
    generate(cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def lift(tmp_path_factory):
    return _demos(tmp_path_factory, "lift_block")


@pytest.fixture(scope="module")
def plug(tmp_path_factory):
    return _demos(tmp_path_factory, "plug_insertion")


@pytest.fixture(scope="module")
def wire(tmp_path_factory):
    return _demos(tmp_path_factory, "busybox_insert_wire")


# ------------------------------------------------------------------------------------------------ state dicts
def _mujoco_state(env, model, flat: np.ndarray, scene: dict, quat: str) -> dict:
    """What MuJoCo gives for one flat state in `model`, in Isaac Lab's dict: independent of the exporter's
    address arithmetic (joints found by name, poses from mj_kinematics, velocities from mj_objectVelocity)."""
    d = mujoco.MjData(model)
    mujoco.mj_setState(model, d, flat, mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(model, d)
    order = [1, 2, 3, 0] if quat == "xyzw" else [0, 1, 2, 3]

    def root(body: str) -> dict:
        b = model.body(body).id
        vel = np.zeros(6)  # (angular, linear) at the centre of mass, world orientation
        mujoco.mj_objectVelocity(model, d, mujoco.mjtObj.mjOBJ_BODY, b, vel, 0)
        return {"root_pose": np.r_[d.xpos[b], d.xquat[b][order]], "root_velocity": np.r_[vel[3:], vel[:3]]}

    out = {"articulation": {}, "rigid_object": {}}
    for name, e in scene["articulation"].items():
        joints = [model.joint(j) for j in e["joint_names"]]
        out["articulation"][name] = {**root(e["root_body"]),
                                     "joint_position": np.array([d.qpos[model.jnt_qposadr[j.id]] for j in joints]),
                                     "joint_velocity": np.array([d.qvel[model.jnt_dofadr[j.id]] for j in joints])}
    for name, e in scene["rigid_object"].items():
        out["rigid_object"][name] = root(e["root_body"])
    return out


def _round_trip(src, tmp_path, quat: str = "xyzw") -> dict:
    out = tmp_path / f"il_{quat}.hdf5"
    summary = export_isaaclab(src, out, quat=quat)
    assert summary["states_not_written"] == [] and summary["demos_with_states"] == summary["demos"]
    scene = summary["isaaclab_scene"]
    env = make_env_from_dataset(src, cameras={})
    try:
        with h5py.File(src, "r") as s, h5py.File(out, "r") as f:
            assert json.loads(f["data"].attrs["env_args"])["rho_export"]["isaaclab_scene"] == scene
            for name, g in f["data"].items():
                native = s["data"][name]
                env.reset(options={"episode_seeds": [int(native.attrs["episode_seed"])]})
                model = env._models[0]
                flat = native["states/sim"][()]
                t = int(g.attrs["num_samples"])
                rows = [("initial_state", 0, native["initial_state/sim"][()])]
                rows += [("states", k, flat[k + 1]) for k in (0, t // 2, t - 2)]  # post-step: states[k] = obs k+1
                for group, k, state in rows:
                    want = _mujoco_state(env, model, state, scene, quat)
                    for kind, entities in want.items():
                        for ent, values in entities.items():
                            for key, v in values.items():
                                got = g[f"{group}/{kind}/{ent}/{key}"]
                                assert got.dtype == np.float32
                                np.testing.assert_allclose(got[k], v, atol=2e-5, rtol=1e-5,
                                                           err_msg=f"{name} {group}[{k}] {kind}/{ent}/{key}")
                assert len(g["states/articulation/left/root_pose"]) == t - 1  # none after the final action
    finally:
        env.close()
    return summary


def test_lift_block_state_dicts_match_mujoco(lift, tmp_path):
    summary = _round_trip(lift, tmp_path, "xyzw")
    scene = summary["isaaclab_scene"]
    assert sorted(scene["articulation"]) == ["left", "right"] and list(scene["rigid_object"]) == ["block"]
    assert scene["articulation"]["left"]["joint_names"][-2:] == ["left/finger_a", "left/finger_b"]
    _round_trip(lift, tmp_path, "wxyz")
    with h5py.File(tmp_path / "il_xyzw.hdf5") as a, h5py.File(tmp_path / "il_wxyz.hdf5") as b:
        qa = a["data/demo_0/initial_state/rigid_object/block/root_pose"][0, 3:]
        qb = b["data/demo_0/initial_state/rigid_object/block/root_pose"][0, 3:]
        np.testing.assert_array_equal(qa, qb[[1, 2, 3, 0]])  # the block starts yawed only: x = y = 0
        assert qa[0] == qa[1] == 0 and qb[1] == qb[2] == 0


def test_plug_insertion_state_dicts_match_mujoco(plug, tmp_path):
    scene = _round_trip(plug, tmp_path)["isaaclab_scene"]
    strip = scene["articulation"]["strip"]
    assert not strip["fixed_base"] and all(j.startswith("strip/shutter_") for j in strip["joint_names"])
    assert list(scene["rigid_object"]) == ["plug"]
    with h5py.File(tmp_path / "il_xyzw.hdf5") as f:  # the plug moves: its velocity is not trivially zero
        assert np.abs(f["data/demo_0/states/rigid_object/plug/root_velocity"][()]).max() > 0.01


def test_busybox_fixed_base_pose_comes_from_the_episode_model(wire, tmp_path):
    scene = _round_trip(wire, tmp_path)["isaaclab_scene"]
    assert scene["articulation"]["busybox"]["fixed_base"]
    assert sorted(scene["rigid_object"]) == [f"bb_jack_{c}" for c in ("blue", "green", "red", "yellow")]
    with h5py.File(wire) as s, h5py.File(tmp_path / "il_xyzw.hdf5") as f:
        for name in ("demo_0", "demo_1"):  # the panel's pose is drawn per episode into the model, not the state
            panel = s[f"data/{name}/obs/panel_pose"][0]
            pose = f[f"data/{name}/initial_state/articulation/busybox/root_pose"][0]
            np.testing.assert_allclose(pose[:3], panel[:3], atol=1e-6)
            np.testing.assert_allclose(pose[3:], panel[[4, 5, 6, 3]], atol=1e-6)
            assert np.abs(f[f"data/{name}/states/articulation/busybox/root_velocity"][()]).max() == 0


# ------------------------------------------------------------------------------------------------ Isaac Lab's reader
def _load_episode(g: h5py.Group) -> dict:
    """HDF5DatasetFileHandler.load_episode's recursion: every group a dict, every dataset an array."""
    return {k: _load_episode(v) if isinstance(v, h5py.Group) else np.array(v) for k, v in g.items()}


def _get_state(states: dict, index: int):
    """EpisodeData.get_state: the nested dict at `index`, None once any leaf is exhausted."""
    if isinstance(states, dict):
        out = {}
        for k, v in states.items():
            out[k] = _get_state(v, index)
            if out[k] is None:
                return None
        return out
    return states[index] if index < len(states) else None


def _compare_states(dataset_state: dict, runtime_state: dict) -> bool:
    """replay_demos.py's compare_states for one env: per entity and key, equal lengths and every value within 0.01."""
    for kind in ("articulation", "rigid_object"):
        for name, values in runtime_state[kind].items():
            for key, runtime in values.items():
                data = dataset_state[kind][name][key]
                if len(data) != len(runtime):
                    raise ValueError(f"State shape of {key} for asset {name} don't match")
                if np.any(np.abs(data - runtime) > 0.01):
                    return False
    return True


def test_isaaclab_reads_the_state_dicts(plug, tmp_path):
    """The keys, shapes and steps Isaac Lab reads: `env.reset_to(episode.get_initial_state(), env_ids,
    is_relative=True)` takes state["articulation"][name] with root_pose (n, 7), root_velocity (n, 6),
    joint_position / joint_velocity (n, J) and state["rigid_object"][name] with root_pose, root_velocity;
    `replay_demos.py --validate_states` compares `get_next_state()` after each step with the scene's state."""
    out = tmp_path / "plug_isaaclab.hdf5"
    export_isaaclab(plug, out)
    keys = {"articulation": {"root_pose", "root_velocity", "joint_position", "joint_velocity"},
            "rigid_object": {"root_pose", "root_velocity"}}
    with h5py.File(out, "r") as f:
        env_args = json.loads(f["data"].attrs["env_args"])
        assert env_args["type"] == 2 and env_args["env_name"] == "rho/PlugInsertion-v0"
        assert env_args["rho_export"]["quat_order"] == "xyzw"
        for g in f["data"].values():
            ep = _load_episode(g)
            t = int(g.attrs["num_samples"])
            assert len(ep["actions"]) == t and "seed" in g.attrs and "success" in g.attrs
            init = ep["initial_state"]
            assert set(init) == set(keys)
            for kind, entities in init.items():
                for ent, values in entities.items():
                    assert set(values) == keys[kind], (kind, ent)
                    assert values["root_pose"].shape == (1, 7) and values["root_velocity"].shape == (1, 6)
                    np.testing.assert_allclose(np.linalg.norm(values["root_pose"][:, 3:], axis=1), 1, atol=1e-6)
                    if kind == "articulation":
                        j = values["joint_position"].shape
                        assert len(j) == 2 and j[0] == 1 and values["joint_velocity"].shape == j
            # replay with --validate_states: the state after step k is states[k]; none after the last recorded one
            for k in range(t - 1):
                state = _get_state(ep["states"], k)
                assert state is not None and _compare_states(state, {kind: {e: dict(v) for e, v in ents.items()}
                                                                     for kind, ents in state.items()})
            assert _get_state(ep["states"], t - 1) is None
            first = _get_state(ep["states"], 0)
            assert not _compare_states(first, _get_state(ep["states"], t - 2)) or t <= 2  # the scene moves


def test_cli_export_isaaclab_and_its_refusals(lift, tmp_path, capsys):
    out = tmp_path / "cli.hdf5"
    assert main(["dataset", "export-isaaclab", str(lift), f"out={out}", "quat=wxyz", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["isaaclab_scene"]["quat_order"] == "wxyz" and result["mimic"]["subtask_term_signals"] == ["grasp"]
    assert main(["dataset", "export-isaaclab", str(lift), f"out={out}"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["dataset", "export-isaaclab", str(lift), f"out={out}", "quat=xyz", "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert "quat='xyz'" in err and "xyzw" in err and "Fix" in err
    assert main(["dataset", "export-isaaclab", "--help"]) == 0
    assert "quat" in capsys.readouterr().out
    bad = tmp_path / "bad.hdf5"  # a state vector of another model layout
    shutil.copyfile(lift, bad)
    with h5py.File(bad, "a") as f:
        g = f["data/demo_0"]
        short = g["states/sim"][()][:, :-1]
        del g["states/sim"]
        g["states"].create_dataset("sim", data=short)
        del g["initial_state/sim"]
        g["initial_state"].create_dataset("sim", data=short[0])
    with pytest.raises(DatasetError, match="another rho or MuJoCo version"):
        export_isaaclab(bad, tmp_path / "bad_il.hdf5")
    assert not (tmp_path / "bad_il.hdf5").exists() and not (tmp_path / ".bad_il.hdf5.tmp").exists()
    with h5py.File(bad, "a") as f:
        args = json.loads(f["data"].attrs["env_args"])
        args["task"] = "no_such_task"
        f["data"].attrs["env_args"] = json.dumps(args)
    with pytest.raises(DatasetError, match="does not register"):
        export_isaaclab(bad, tmp_path / "bad_il.hdf5")


def test_data_without_states_is_exported_without_state_dicts(lift, tmp_path):
    """Imported real data has no simulator state and names no task: the export says which demos lack the dicts."""
    real = tmp_path / "real.hdf5"
    shutil.copyfile(lift, real)
    with h5py.File(real, "a") as f:
        args = json.loads(f["data"].attrs["env_args"])
        f["data"].attrs["env_args"] = json.dumps({k: v for k, v in args.items() if k not in ("task", "env_config")})
        for g in f["data"].values():
            del g["states"], g["initial_state"]
    summary = export_isaaclab(real, tmp_path / "real_il.hdf5", mimic=False)
    assert summary["states_not_written"] == ["demo_0", "demo_1"] and summary["isaaclab_scene"] is None
    with h5py.File(tmp_path / "real_il.hdf5") as f:
        assert "states" not in f["data/demo_0"] and "initial_state" not in f["data/demo_0"]


# ------------------------------------------------------------------------------------------------ Mimic signals
SIGNALS = {  # task → its signals, in each arm's subtask order
    "lift_block": [["grasp"]],
    "plug_insertion": [["hold_strip"], ["grasp_plug", "plug_aligned"]],
    "plug_insertion_occluded": [["hold_strip"], ["grasp_plug", "plug_aligned"]],
    "toolbox_close": [["hold_box"], ["lid_down"]],
    "busybox_push_button": [["touch_control"]],
    "busybox_flip_switch": [["touch_control"]],
    "busybox_move_slider": [["grasp_control"]],
    "busybox_turn_knob": [["grasp_control"]],
    "busybox_pull_wire": [["grasp_control"]],
    "busybox_insert_wire": [["grasp_control"]],
}


@pytest.mark.parametrize("task", sorted(SIGNALS))
def test_subtask_signals_rise_once_in_expert_demos(task, tmp_path_factory):
    """In successful expert demos each signal is 0 at the start and rises 0 → 1 exactly once before the end (the
    boundary DataGenInfoPool takes: the first 0 → 1); an arm's subtasks end in their order."""
    src = _demos(tmp_path_factory, task)
    out = src.with_name("rm.hdf5")
    summary = export_robomimic(src, out, mimic=True)
    assert summary["mimic_not_annotated"] == []
    expected = [s for arm in SIGNALS[task] for s in arm]
    with h5py.File(out, "r") as f:
        for name, g in f["data"].items():
            t = int(g.attrs["num_samples"])
            assert g.attrs["success"], f"{task} {name}: the expert failed"
            sig = g["obs/datagen_info/subtask_term_signals"]
            assert sorted(sig) == sorted(expected)
            end = {}
            for key in expected:
                s = sig[key][()]
                assert s.dtype == bool and s.shape == (t,)
                rises = np.flatnonzero(np.diff(s.astype(int)) == 1) + 1
                assert not s[0] and len(rises) == 1 and rises[0] < t, (task, name, key, rises.tolist(), t)
                end[key] = int(rises[0])
            for arm in SIGNALS[task]:
                assert [end[k] for k in arm] == sorted(end[k] for k in arm), (task, name, end)


def test_pad_grasp_hysteresis():
    """A grasp forms above `force`, rings and single-sample dropouts are not releases, two samples under half are."""
    low = np.array([0.0, 0.5, 1.2, 0.8, 1.5, 3.0, 0.1, 3.0, 3.0, 0.2, 0.1, 0.0, 1.1])
    obs = {"touch_net_left_a": np.stack([low, 0 * low, 0 * low], 1), "touch_net_left_b": np.full((13, 3), 5.0)}
    got = pad_grasp(obs, "left", 1.0)
    assert got.tolist() == [False, False, True, True, True, True, True, True, True, True, False, False, True]
    assert pad_grasp(obs, "right", 1.0) is None
