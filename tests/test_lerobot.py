"""LeRobotDataset interop: v3.0 export layout, rho → v3.0 → rho round trip, v2.1 (Mobile ALOHA shaped) import."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("av", reason="LeRobot interop needs PyAV (pip install av)")
pa = pytest.importorskip("pyarrow", reason="LeRobot interop needs pyarrow (pip install pyarrow)")
import pyarrow.parquet as pq  # noqa: E402

from rho.config import load_config  # noqa: E402
from rho.datagen import lerobot as lr  # noqa: E402
from rho.datagen import tools  # noqa: E402
from rho.datagen.hdf5 import Dataset  # noqa: E402
from rho.datagen.runner import datagen_schema, generate  # noqa: E402

SMALL_CAMS = "env.cameras={cam_high: {width: 32, height: 32}, cam_left_wrist: {width: 32, height: 32}}"
PADS = ("left_a", "left_b", "right_a", "right_b")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("rho") / "ds"
    cfg = load_config(datagen_schema("lift_block"), yaml="datagen",
                      overrides=[f"out={out}", SMALL_CAMS, "num_demos=2", "num_envs=2"])
    generate(cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("lerobot") / "rho_lift"
    summary = lr.export_lerobot(source, out, repo_id="rho/lift_block_test")
    return out, summary


def _originals(path) -> list:
    with Dataset(path) as ds:
        return [ds.episode(i) for i in range(ds.num_demos)]


def test_export_info_json_is_v30_with_touch_features(exported, source):
    out, summary = exported
    info = json.loads((out / "meta/info.json").read_text())
    eps = _originals(source)
    assert info["codebase_version"] == "v3.0" and info["fps"] == 50 and info["robot_type"] == "aloha"
    assert info["total_episodes"] == 2 == summary["episodes"]
    assert info["total_frames"] == sum(e.num_samples for e in eps)
    assert info["total_tasks"] == len({e.meta["instruction"] for e in eps})
    assert info["chunks_size"] == 1000 and info["splits"] == {"train": "0:2"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    ft = info["features"]
    for pad in PADS:
        assert ft[f"observation.touch.{pad}"]["shape"] == [2, 4, 4, 3]
        assert ft[f"observation.touch.{pad}"]["dtype"] == "float32"
        assert ft[f"observation.touch_net.{pad}"]["shape"] == [3]
    assert ft["observation.state"]["shape"] == [14] and ft["observation.state"]["names"][:2] == ["left_waist",
                                                                                                 "left_shoulder"]
    assert ft["observation.ee_pose"]["shape"] == [2, 7] and ft["action"]["shape"] == [14]
    cam = ft["observation.images.cam_high"]
    assert cam["dtype"] == "video" and cam["shape"] == [32, 32, 3] and cam["names"] == ["height", "width", "channels"]
    assert cam["info"]["video.codec"] == "av1" and cam["info"]["video.fps"] == 50
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert ft[key]["shape"] == [1]


def test_export_files_match_v30_layout(exported, source):
    out, _ = exported
    lengths = [e.num_samples for e in _originals(source)]
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    info = json.loads((out / "meta/info.json").read_text())
    assert set(data.column_names) == {k for k, f in info["features"].items() if f["dtype"] != "video"}
    assert data["index"].to_pylist() == list(range(sum(lengths)))
    assert b"huggingface" in data.schema.metadata
    assert pa.types.is_fixed_size_list(data.schema.field("observation.state").type)
    for cam in ("cam_high", "cam_left_wrist"):
        assert (out / f"videos/observation.images.{cam}/chunk-000/file-000.mp4").exists()
    eps = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in eps] == lengths
    assert [e["dataset_from_index"] for e in eps] == [0, lengths[0]]
    key = "videos/observation.images.cam_high"
    assert eps[0][f"{key}/from_timestamp"] == 0.0
    assert eps[1][f"{key}/from_timestamp"] == pytest.approx(eps[0][f"{key}/to_timestamp"]) == lengths[0] / 50
    assert eps[0]["stats/observation.touch.left_a/count"] == [lengths[0]]
    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    assert sorted(tasks["task"].to_pylist()) == sorted({e["tasks"][0] for e in eps})
    stats = json.loads((out / "meta/stats.json").read_text())
    assert np.array(stats["observation.touch.left_a"]["mean"]).shape == (3,)  # per force component
    assert np.array(stats["observation.images.cam_high"]["mean"]).shape == (3, 1, 1)
    assert stats["action"]["count"] == [sum(lengths)]
    assert {"min", "max", "mean", "std", "count", "q01", "q99"} <= set(stats["observation.state"])


def test_round_trip_v30_keeps_data(exported, source):
    out, _ = exported
    back, orig = lr.import_lerobot(out), _originals(source)
    assert [e.num_samples for e in back] == [e.num_samples for e in orig]
    for b, o in zip(back, orig, strict=True):
        assert set(b.obs) == set(o.obs)
        assert b.actions.dtype == np.float32 and np.array_equal(b.actions, o.actions)
        for key, arr in o.obs.items():
            if key.startswith("rgb_"):
                assert b.obs[key].shape == arr.shape and b.obs[key].dtype == np.uint8
                assert np.abs(b.obs[key].astype(int) - arr).mean() < 8, key  # lossy AV1
            else:
                assert b.obs[key].dtype == arr.dtype and np.array_equal(b.obs[key], arr), key
        assert np.array_equal(b.rewards, o.rewards) and np.array_equal(b.dones, o.dones)
        assert b.meta["instruction"] == o.meta["instruction"] and b.success == o.success
        assert b.meta["source"] == "lerobot" and b.meta["episode_seed"] == o.meta["episode_seed"]
        assert b.meta["fps"] == 50 and b.meta["task"] == "lift_block"


def test_import_to_hdf5_passes_dataset_check(exported, source, tmp_path):
    out, _ = exported
    summary = lr.import_to_hdf5(out, tmp_path / "back.hdf5")
    assert summary["demos"] == 2
    problems, stats = tools.check(tmp_path / "back.hdf5")
    assert problems == [] and stats["touch_demos"] == 2
    with Dataset(tmp_path / "back.hdf5") as ds:
        assert np.array_equal(ds.episode(1).actions, _originals(source)[1].actions)
    with pytest.raises(lr.LeRobotFormatError, match="exists"):
        lr.import_to_hdf5(out, tmp_path / "back.hdf5")


def test_export_as_images_is_lossless(source, tmp_path):
    lr.export_lerobot(source, tmp_path / "img", video=False)
    info = json.loads((tmp_path / "img/meta/info.json").read_text())
    assert info["features"]["observation.images.cam_high"]["dtype"] == "image" and info["video_path"] is None
    assert not (tmp_path / "img/videos").exists()
    back = lr.import_lerobot(tmp_path / "img", episodes=[1])
    assert np.array_equal(back[0].obs["rgb_cam_high"], _originals(source)[1].obs["rgb_cam_high"])


def test_files_roll_over_by_size_and_chunk(source, tmp_path):
    """Tiny limits: every episode starts a new data file and a new video file, each in a new chunk folder."""
    limits = lr.Limits(chunks_size=1, data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6)
    lr.export_lerobot(source, tmp_path / "roll", limits=limits, video_options=lr.VideoOptions(vcodec="h264"))
    assert (tmp_path / "roll/data/chunk-001/file-000.parquet").exists()
    assert (tmp_path / "roll/videos/observation.images.cam_high/chunk-001/file-000.mp4").exists()
    eps = pq.read_table(tmp_path / "roll/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert eps[1]["data/chunk_index"] == 1 and eps[1]["videos/observation.images.cam_high/from_timestamp"] == 0.0
    back, orig = lr.import_lerobot(tmp_path / "roll"), _originals(source)
    assert np.array_equal(back[1].obs["touch_left_a"], orig[1].obs["touch_left_a"])
    assert np.abs(back[1].obs["rgb_cam_high"].astype(int) - orig[1].obs["rgb_cam_high"]).mean() < 8


def test_export_refuses_to_overwrite(exported, source):
    out, _ = exported
    with pytest.raises(lr.LeRobotFormatError, match="exists"):
        lr.export_lerobot(source, out)


def _aloha_episode(rng: np.random.Generator, n: int, ep: int) -> dict[str, np.ndarray]:
    """What a Mobile ALOHA LeRobot episode holds: 14-D state/effort/action, three cameras, no touch."""
    cols = {k: rng.standard_normal((n, 14)).astype(np.float32)
            for k in ("observation.state", "observation.effort", "action")}
    for c, cam in enumerate(("cam_high", "cam_left_wrist", "cam_right_wrist")):
        img = np.zeros((n, 24, 32, 3), np.uint8)
        img[..., 0] = (10 * np.arange(n) + 60 * ep)[:, None, None]
        img[:, :12, :, 1] = 50 * c + 50
        cols[f"observation.images.{cam}"] = img
    return cols


def test_read_v21_mobile_aloha(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [(_aloha_episode(rng, 6, 0), "open the busybox lid"), (_aloha_episode(rng, 9, 1), "press the button")]
    root = lr._write_v21_for_tests(tmp_path / "busybox", episodes, fps=50)
    assert json.loads((root / "meta/info.json").read_text())["codebase_version"] == "v2.1"
    assert (root / "videos/chunk-000/observation.images.cam_high/episode_000001.mp4").exists()
    back = lr.import_lerobot(root)
    assert [e.num_samples for e in back] == [6, 9]
    for b, (cols, task) in zip(back, episodes, strict=True):
        assert set(b.obs) == {"joint_pos", "effort", "rgb_cam_high", "rgb_cam_left_wrist", "rgb_cam_right_wrist"}
        assert np.array_equal(b.obs["joint_pos"], cols["observation.state"])
        assert np.array_equal(b.obs["effort"], cols["observation.effort"]) and np.array_equal(b.actions, cols["action"])
        for cam in ("cam_high", "cam_left_wrist", "cam_right_wrist"):
            assert np.abs(b.obs[f"rgb_{cam}"].astype(int) - cols[f"observation.images.{cam}"]).mean() < 8
        assert b.meta["instruction"] == task and b.meta["source"] == "lerobot"
        assert b.meta["codebase_version"] == "v2.1" and b.meta["robot_type"] == "aloha"
        assert b.dones[-1] == 1 and b.dones[:-1].sum() == 0 and b.meta["success_from"] == "default"
    assert lr.import_lerobot(root, episodes=[1])[0].meta["episode_index"] == 1
    desc = lr.describe_lerobot(root)
    assert desc["episodes"] == 2 and desc["touch"] == [] and desc["rho_keys"]["observation.effort"] == "effort"
    assert len(desc["cameras"]) == 3 and desc["tasks"] == ["open the busybox lid", "press the button"]
    out = tmp_path / "real.hdf5"  # real data holds joint targets already: format v2, action_mode joint_pos
    lr.import_to_hdf5(root, out, decode_video=False)
    with Dataset(out) as ds:
        assert ds.env_args()["action_mode"] == "joint_pos" and "expert_actions" not in ds.group(0)
        assert ds.group(0).file.attrs["format_version"] == 2


def test_unknown_codebase_version_is_refused(tmp_path):
    with pytest.raises(lr.LeRobotFormatError, match="not a LeRobot dataset"):
        lr.import_lerobot(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text(json.dumps({"codebase_version": "v1.6", "features": {}}))
    with pytest.raises(lr.LeRobotFormatError, match=r"'v1\.6' is not supported.*v2\.1.*convert"):
        lr.describe_lerobot(tmp_path)


def test_key_mapping_round_trips():
    keys = ["joint_pos", "joint_vel", "ee_pose", "block_pose", "rgb_cam_high", *(f"touch_{p}" for p in PADS),
            *(f"touch_net_{p}" for p in PADS)]
    assert all(lr.rho_key(lr.lerobot_key(k)) == k for k in keys)
    assert lr.lerobot_key("touch_net_left_a") == "observation.touch_net.left_a"
    assert lr.lerobot_key("rgb_cam_left_wrist") == "observation.images.cam_left_wrist"
    assert lr.rho_key("observation.image") == "rgb_image"
    assert lr.rho_key("complementary_info.discount") == "complementary_info_discount"
    assert lr.rho_key("action") is None and lr.rho_key("next.done") is None and lr.rho_key("timestamp") is None


def test_any_list_encoding_reads_back():
    """Older LeRobot/datasets versions wrote vectors as variable lists; newer ones as fixed-size lists."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    flat = pa.array(x.reshape(-1))
    offsets = pa.array([0, 4, 8, 12], pa.int32())
    columns = {"fixed": pa.FixedSizeListArray.from_arrays(flat, 4), "list": pa.ListArray.from_arrays(offsets, flat),
               "large": pa.LargeListArray.from_arrays(pa.array([0, 4, 8, 12], pa.int64()), flat)}
    table = pa.table(columns)
    for name in columns:
        got = lr._numpy_column(table, name, {"dtype": "float32", "shape": [4]}, root=None)
        assert np.array_equal(got, x)
    with pytest.raises(lr.LeRobotFormatError, match="declares shape"):
        lr._numpy_column(table, "list", {"dtype": "float32", "shape": [5]}, root=None)
