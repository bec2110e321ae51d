"""Datasets honour robomimic 0.3.0's and Isaac Lab's file contracts (issue 14), not only their layout.

- native files carry `env_args.env_name / type / env_kwargs` and a per-demo `seed`;
- `rho dataset export-robomimic` writes flat `states`, `next_obs`, flat low-dim obs, env_meta, a train/valid split
  and (mimic=true) Isaac Lab Mimic's `obs/datagen_info`;
- `rho.tasks.make_env_from_dataset` builds the env from `env_args` alone;
- robomimic's own `SequenceDataset` (defaults: load_next_obs=True) and `EnvUtils.get_env_type` read the export
  (skipped where robomimic is not installed); Isaac Lab's reader contract is checked from its documented keys
  (`isaaclab.utils.datasets.HDF5DatasetFileHandler`, `isaaclab_mimic.datagen.DataGenInfoPool`) without Isaac Lab.
"""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import h5py
import numpy as np
import pytest

from rho.cli import main
from rho.config import config_to_dict, load_config
from rho.datagen import tools
from rho.datagen.hdf5 import Dataset, DatasetError
from rho.datagen.robomimic import export_robomimic, pose_matrices
from rho.datagen.runner import datagen_schema, generate
from rho.tasks import make_env_from_dataset

ONE_CAM = "env.cameras={cam_high: {width: 32, height: 32}}"


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """A 2-demo lift_block dataset in one file (demo_0, demo_1), one 32² camera."""
    out = tmp_path_factory.mktemp("fc") / "lift.hdf5"
    cfg = load_config(datagen_schema("lift_block"), yaml="datagen",
                      overrides=[f"out={out}", "num_demos=2", "num_envs=2", ONE_CAM])
    generate(cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def export(native, tmp_path_factory):
    out = tmp_path_factory.mktemp("fc_rm") / "lift_robomimic.hdf5"
    summary = export_robomimic(native, out, mimic=True)
    return out, summary


def _without_consumer_keys(src, dst):
    """A copy of `src` as the code before issue 14 wrote it: no env_name/type/env_kwargs, no demo `seed`."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "a") as f:
        args = json.loads(f["data"].attrs["env_args"])
        for k in ("env_name", "type", "env_kwargs"):
            args.pop(k)
        f["data"].attrs["env_args"] = json.dumps(args)
        for g in f["data"].values():
            del g.attrs["seed"]
    return dst


# ------------------------------------------------------------------------------------------------ native format
def test_native_env_args_name_the_env_for_robomimic_and_isaaclab(native):
    with h5py.File(native, "r") as f:
        args = json.loads(f["data"].attrs["env_args"])
        assert args["env_name"] == "rho/LiftBlock-v0" == args["gym_id"]
        assert args["type"] == 2  # robomimic EnvType.GYM_TYPE, what Isaac Lab writes
        expected = {k: v for k, v in args["env_config"].items() if k != "num_envs"}
        assert args["env_kwargs"] == expected
        for g in f["data"].values():
            assert int(g.attrs["seed"]) == int(g.attrs["episode_seed"])  # Isaac Lab reads `seed`
        # a default split (one of the two demos held out) that rho's trainer does not follow (marked default)
        masks = {k: sorted(n.decode() for n in f[f"mask/{k}"][()]) for k in ("train", "valid")}
        assert sorted(masks["train"] + masks["valid"]) == ["demo_0", "demo_1"] and len(masks["valid"]) == 1
        assert f["mask"].attrs["default"] == 1


def test_old_files_still_read_and_export(native, tmp_path):
    old = _without_consumer_keys(native, tmp_path / "old.hdf5")
    with Dataset(old) as ds:
        assert ds.num_demos == 2 and "env_name" not in ds.env_args()
    env = make_env_from_dataset(old, cameras={})  # falls back to gym_id + env_config
    try:
        assert env.task_name == "lift_block"
    finally:
        env.close()
    out = export_robomimic(old, tmp_path / "old_rm.hdf5")
    with h5py.File(out["out"], "r") as f:
        assert json.loads(f["data"].attrs["env_args"])["env_name"] == "rho/LiftBlock-v0"
        assert all(int(g.attrs["seed"]) == int(g.attrs["episode_seed"]) for g in f["data"].values())


# ------------------------------------------------------------------------------------------------ the export
def test_export_layout_is_what_robomimic_reads(native, export):
    out, summary = export
    assert summary["demos"] == 2 and summary["masks"] == {"train": 1, "valid": 1}
    with h5py.File(native, "r") as src, h5py.File(out, "r") as f:
        meta = json.loads(f["data"].attrs["env_args"])
        assert meta["env_name"] == "rho/LiftBlock-v0" and meta["type"] == 2 and isinstance(meta["env_kwargs"], dict)
        assert f["data"].attrs["total"] == sum(int(g.attrs["num_samples"]) for g in f["data"].values())
        train = {n.decode() for n in f["mask/train"][()]}
        valid = {n.decode() for n in f["mask/valid"][()]}
        assert train and valid and not train & valid and train | valid == set(f["data"])
        for name in ("demo_0", "demo_1"):
            g, s = f["data"][name], src["data"][name]
            t = int(g.attrs["num_samples"])
            assert isinstance(g["states"], h5py.Dataset) and g["states"].ndim == 2  # flat, not states/sim
            np.testing.assert_array_equal(g["states"][()], s["states/sim"][()])
            np.testing.assert_array_equal(g["actions"][()], s["actions"][()])
            assert g["dones"][-1] == 1 and len(g["rewards"]) == t
            for key, arr in g["obs"].items():
                if key == "datagen_info":
                    continue
                native_arr = s["obs"][key][()]
                if key.startswith("rgb_"):
                    assert arr.dtype == np.uint8 and arr.shape == native_arr.shape
                else:  # robomimic's low_dim: one vector per step
                    assert arr.ndim == 2 and arr.dtype == np.float32
                    np.testing.assert_array_equal(arr[()], native_arr.reshape(t, -1))
                nxt = g["next_obs"][key][()]
                np.testing.assert_array_equal(nxt[:-1], arr[1:])
                np.testing.assert_array_equal(nxt[-1], arr[-1])  # final observation not recorded: repeated


def test_export_keeps_the_datasets_own_split(native, tmp_path):
    own = tmp_path / "split.hdf5"
    shutil.copyfile(native, own)
    masks = tools.split(own, valid_fraction=0.5, seed=3)
    out = export_robomimic(own, tmp_path / "split_rm.hdf5")
    with h5py.File(out["out"], "r") as f:
        assert sorted(n.decode() for n in f["mask/valid"][()]) == masks["valid"]  # demo_i keep their names here


def test_cli_export_robomimic(native, tmp_path, capsys):
    out = tmp_path / "cli.hdf5"
    assert main(["dataset", "export-robomimic", str(native), f"out={out}", "valid_fraction=0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["masks"] == {"train": 1, "valid": 1}
    assert main(["dataset", "export-robomimic", str(native), f"out={out}"]) == 1  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["dataset", "export-robomimic", str(native), f"out={out}", "--overwrite", "--json"]) == 0
    assert main(["dataset", "export-robomimic", str(native), f"out={tmp_path / 'x.txt'}"]) == 1
    assert ".hdf5" in capsys.readouterr().err
    assert main(["dataset", "export-robomimic", "--help"]) == 0
    assert "valid_fraction" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ Isaac Lab
def _isaaclab_load(path) -> list[dict]:
    """What isaaclab.utils.datasets.HDF5DatasetFileHandler does on open + load_episode, with its checks made
    explicit: `data` group, `data.attrs["total"]`, `env_args` JSON whose `env_name` becomes EpisodeData.env_id,
    per demo every dataset (recursively through groups) turned into a tensor, attrs `seed` and `success`."""
    torch = pytest.importorskip("torch")
    episodes = []
    with h5py.File(path, "r") as f:
        data = f["data"]
        env_args = json.loads(data.attrs["env_args"])
        assert env_args.get("type") == 2, "Isaac Lab writes type 2 (robomimic's gym type)"
        env_id = env_args.get("env_name")
        assert env_id, "EpisodeData.env_id comes from env_args.env_name"
        assert int(data.attrs["total"]) == sum(int(g.attrs["num_samples"]) for g in data.values())

        def load(group):
            return {k: load(v) if isinstance(v, h5py.Group) else torch.tensor(np.array(v)) for k, v in group.items()}

        for name, g in data.items():
            assert name.startswith("demo_")
            ep = {"data": load(g), "seed": g.attrs["seed"], "success": g.attrs["success"], "env_id": env_id}
            assert int(g.attrs["num_samples"]) == len(ep["data"]["actions"])
            episodes.append(ep)
    return episodes


def test_isaaclab_reads_native_and_export(native, export):
    for path in (native, export[0]):
        eps = _isaaclab_load(path)
        assert len(eps) == 2 and all(ep["env_id"] == "rho/LiftBlock-v0" for ep in eps)
        assert gym.spec(eps[0]["env_id"]) is not None  # replay tools can gym.make it without --task


def test_mimic_datagen_info(native, export):
    """The keys and shapes isaaclab_mimic's DataGenInfoPool._add_episode reads from obs/datagen_info, and its
    subtask-boundary rule (first 0 → 1 transition of each non-final subtask's signal) on them."""
    out, summary = export
    assert summary["mimic_not_annotated"] == []
    with h5py.File(native, "r") as src, h5py.File(out, "r") as f:
        for name in ("demo_0", "demo_1"):
            info, s = f["data"][name]["obs/datagen_info"], src["data"][name]
            t = int(f["data"][name].attrs["num_samples"])
            for arm in ("left", "right"):
                for kind in ("eef_pose", "target_eef_pose"):
                    m = info[kind][arm][()]
                    assert m.shape == (t, 4, 4) and m.dtype == np.float32
                    np.testing.assert_allclose(m[:, :3, :3] @ m[:, :3, :3].transpose(0, 2, 1),
                                               np.broadcast_to(np.eye(3), (t, 3, 3)), atol=1e-5)
                    np.testing.assert_array_equal(m[:, 3], np.broadcast_to([0, 0, 0, 1], (t, 4)))
            ee = s["obs/ee_pose"][()]  # (T, arms, 7)
            np.testing.assert_allclose(info["eef_pose/left"][:, :3, 3], ee[:, 0, :3], atol=1e-6)
            np.testing.assert_allclose(info["object_pose/block"][()], pose_matrices(s["obs/block_pose"][()]))
            tgt = s["obs/ee_target"][()].reshape(t, 2, 7)
            np.testing.assert_allclose(info["target_eef_pose/right"][:-1, :3, 3], tgt[1:, 1, :3], atol=1e-6)
            grasp = info["subtask_term_signals/grasp"][()]
            assert grasp.dtype == bool and grasp.shape == (t,)
            diffs = np.diff(grasp.astype(int))
            end = int(np.flatnonzero(diffs)[0]) + 1  # DataGenInfoPool: the grasp subtask ends here
            assert 0 < end < t and grasp[end] and not grasp[:end].any()


def test_pose_matrices_match_mujoco():
    from rho.sim.randomization import quat_to_mat

    q = np.array([0.9, 0.1, -0.3, 0.2])
    q /= np.linalg.norm(q)
    m = pose_matrices(np.array([[0.1, 0.2, 0.3, *q]]))[0]
    np.testing.assert_allclose(m[:3, :3], quat_to_mat(q), atol=1e-6)
    np.testing.assert_allclose(m[:3, 3], [0.1, 0.2, 0.3], atol=1e-7)


# ------------------------------------------------------------------------------------------------ env from data
def test_make_env_from_dataset_rebuilds_the_recorded_env(native, export):
    with h5py.File(native, "r") as f:
        args = json.loads(f["data"].attrs["env_args"])
    for path in (native, export[0]):
        env = make_env_from_dataset(path, num_envs=2)
        try:
            cfg = config_to_dict(env.cfg)
            assert env.num_envs == 2 and cfg.pop("num_envs") == 2
            assert cfg == args["env_kwargs"]
        finally:
            env.close()
    single = gym.make(args["env_name"], **{**args["env_kwargs"], "cameras": {}})  # robomimic's EnvGym path
    try:
        obs, _ = single.reset(seed=0)
        assert "joint_pos" in obs
    finally:
        single.close()
    env = make_env_from_dataset(native, cameras={}, action={"mode": "joint_pos"})  # replays the recorded actions
    try:
        assert env.cfg.action.mode == "joint_pos" and env.cfg.cameras == {}
    finally:
        env.close()


def test_make_env_from_dataset_refuses_what_names_no_env(native, tmp_path):
    bad = tmp_path / "real.hdf5"
    shutil.copyfile(native, bad)
    with h5py.File(bad, "a") as f:
        f["data"].attrs["env_args"] = json.dumps({"env_name": "", "type": 2, "env_kwargs": {}})
    with pytest.raises(DatasetError, match="name no env"):
        make_env_from_dataset(bad)
    with h5py.File(bad, "a") as f:
        f["data"].attrs["env_args"] = json.dumps({"env_name": "rho/NoSuchTask-v0", "type": 2, "env_kwargs": {}})
    with pytest.raises(DatasetError, match="does not register"):
        make_env_from_dataset(bad)
    with pytest.raises(DatasetError, match="no such dataset"):
        make_env_from_dataset(tmp_path / "missing.hdf5")


# ------------------------------------------------------------------------------------------------ robomimic itself
def test_robomimic_sequence_dataset_reads_the_export(export):
    """robomimic 0.3.0's own loader with its defaults (load_next_obs=True), flat `states` among dataset_keys, the
    default split's filter keys, and its env-type lookup on the env_meta (`pip install --no-deps robomimic==0.3.0
    termcolor`: its dataset and env utils need nothing more)."""
    pytest.importorskip("robomimic")
    from robomimic.envs import env_base
    from robomimic.utils import env_utils, obs_utils
    from robomimic.utils.dataset import SequenceDataset

    out, summary = export
    low = [k for k, s in summary["obs_keys"].items() if len(s) == 1]
    rgb = [k for k, s in summary["obs_keys"].items() if len(s) == 3]
    obs_utils.initialize_obs_utils_with_obs_specs({"obs": {"low_dim": low, "rgb": rgb}})
    for key in ("train", "valid"):
        ds = SequenceDataset(hdf5_path=str(out), obs_keys=tuple(low + rgb),
                             dataset_keys=("actions", "rewards", "dones", "states"), seq_length=10,
                             filter_by_attribute=key)
        item = ds[len(ds) - 1]
        assert item["actions"].shape == (10, 14) and item["states"].ndim == 2
        assert item["next_obs"]["joint_pos"].shape == (10, 14)
        assert item["obs"][rgb[0]].shape == (10, 32, 32, 3)
        ds.close_and_delete_hdf5_handle()
    with h5py.File(out, "r") as f:
        env_meta = json.loads(f["data"].attrs["env_args"])  # = FileUtils.get_env_metadata_from_dataset
    assert env_utils.get_env_type(env_meta=env_meta) == env_base.EnvType.GYM_TYPE
    assert env_utils.is_robosuite_env(env_meta) is False


def test_native_files_carry_a_default_split_that_rho_train_does_not_follow(tmp_path):
    """Every written file has a non-empty mask/valid (robomimic's `--filter_key valid` needs one), marked default,
    so `rho train` keeps `data.valid_fraction`; `rho dataset split` makes a chosen split that training follows."""
    import h5py
    import numpy as np

    from rho.datagen.episode import Episode
    from rho.datagen.hdf5 import ShardWriter, default_split
    from rho.datagen.tools import split
    from rho.policy.data import _read_masks

    names = [f"demo_{i}" for i in range(20)]
    parts = default_split(names)
    assert len(parts["valid"]) == 2 and sorted(parts["train"] + parts["valid"]) == sorted(names)
    assert default_split(names) == parts and default_split(names[:1]) == {"train": names[:1], "valid": []}
    path = tmp_path / "d.hdf5"
    w = ShardWriter(path, {"task": "lift_block"})
    for n in names[:5]:
        w.add(Episode(obs={"joint_pos": np.zeros((3, 14), np.float32)}, actions=np.zeros((3, 14), np.float32),
                      rewards=np.zeros(3, np.float32), dones=np.array([0, 0, 1], np.uint8),
                      meta={"instruction": "x"}), n)
    w.close()
    with h5py.File(path) as f:
        assert len(f["mask/valid"]) == 1 and len(f["mask/train"]) == 4 and f["mask"].attrs["default"] == 1
    assert _read_masks(path) == {}  # training: data.valid_fraction decides
    chosen = split(path, valid_fraction=0.4)
    assert _read_masks(path) == chosen and len(chosen["valid"]) == 2
