"""Policy training data and loop: mixture weights, per-source statistics, masks, adapters, augmentation, resume,
loss going down, bad data named. The model is a tiny stand-in implementing the batch contract's `loss(batch)`."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from rho.config import ConfigError, load_config
from rho.datagen.episode import Episode
from rho.datagen.runner import datagen_schema, generate
from rho.policy.data import (
    Adapter,
    AdapterCfg,
    AugmentCfg,
    DataCfg,
    DataError,
    DrawSampler,
    EpisodeStore,
    ImageAugCfg,
    Layout,
    MixtureDataset,
    Source,
    SourceCfg,
    TouchAugCfg,
    _augment_touch_raw,
    build_sources,
    collate,
    embodiment_stats,
    image_to_tensor,
    stats_to_json,
    target_norm_stats,
)
from rho.policy.train import ModelIO, OptimCfg, TrainCfg, describe, latest_checkpoint, train

CAMS = "env.cameras={cam_high: {width: 32, height: 32}, cam_left_wrist: {width: 32, height: 32}, " \
       "cam_right_wrist: {width: 32, height: 32}}"
LAYOUT = Layout(image_size=24, horizon=4, touch_history=3)  # 3 samples from steps of 2: crosses a step boundary


# ------------------------------------------------------------------------------------------------ stand-in model
@dataclass
class TinyBackbone:
    image_size: int = 24


@dataclass
class TinyExpert:
    horizon: int = 4
    touch_history: int = 3


@dataclass
class TinyPolicyCfg:
    """The PolicyCfg fields the data pipeline reads (same names as rho.policy.config.PolicyCfg)."""

    backbone: TinyBackbone = field(default_factory=TinyBackbone)
    expert: TinyExpert = field(default_factory=TinyExpert)
    action_dim: int = 14
    proprio_dim: int = 14
    cameras: tuple[str, ...] = ("cam_high", "cam_left_wrist", "cam_right_wrist")
    pads: tuple[str, ...] = ("left_a", "left_b", "right_a", "right_b")
    taxel_shape: tuple[int, int] = (4, 4)
    hidden: int = 64

    @classmethod
    def from_dict(cls, d: dict) -> TinyPolicyCfg:
        return cls(TinyBackbone(**d["backbone"]), TinyExpert(**d["expert"]), d["action_dim"], d["proprio_dim"],
                   tuple(d["cameras"]), tuple(d["pads"]), tuple(d["taxel_shape"]), d["hidden"])


class TinyPolicy(nn.Module):
    """Pooled image colours + proprio + touch → an MLP → the action chunk; masked MSE. Asserts the batch contract."""

    def __init__(self, cfg: TinyPolicyCfg) -> None:
        super().__init__()
        self.cfg, self.L = cfg, Layout.from_policy(cfg)
        n_in = 3 * len(cfg.cameras) + cfg.proprio_dim + 3 * len(cfg.pads) + 1
        self.net = nn.Sequential(nn.Linear(n_in, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 4 * cfg.action_dim))

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        L, b = self.L, len(batch["instruction"])
        assert batch["actions"].shape == (b, L.horizon, L.action_dim) and batch["action_pad"].dtype == torch.bool
        assert batch["touch"].shape == (b, len(L.pads), L.touch_history, *L.taxel_shape, 3)
        assert batch["touch_net"].shape == (b, len(L.pads), 3) and batch["proprio"].shape == (b, L.proprio_dim)
        assert batch["source"].dtype == torch.int64 and all(isinstance(s, str) for s in batch["instruction"])
        feats = [batch["images"][c].mean((2, 3)) * batch["image_mask"][c][:, None] for c in L.cameras]
        tm = batch["touch_mask"][:, None].float()
        feats += [batch["proprio"] * batch["proprio_mask"][:, None], batch["touch_net"].flatten(1) * tm,
                  batch["touch"].flatten(1).mean(1, keepdim=True) * tm]
        pred = self.net(torch.cat(feats, 1)).view(b, L.horizon, L.action_dim)
        w = (~batch["action_pad"]).float()
        loss = (((pred - batch["actions"]) ** 2).mean(-1) * w).sum() / w.sum().clamp(min=1)
        return loss, {"mse": loss.detach()}


def _save(model: TinyPolicy, d: Path, norm_stats: dict, extra: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), d / "model.pt")
    (d / "norm_stats.json").write_text(json.dumps(norm_stats))
    (d / "extra.json").write_text(json.dumps(extra))
    (d / "policy.json").write_text(json.dumps(asdict(model.cfg)))


def _load(d: Path) -> tuple[TinyPolicy, dict, dict]:
    model = TinyPolicy(TinyPolicyCfg.from_dict(json.loads((d / "policy.json").read_text())))
    model.load_state_dict(torch.load(d / "model.pt", weights_only=True))
    return model, json.loads((d / "norm_stats.json").read_text()), json.loads((d / "extra.json").read_text())


TINY_IO = ModelIO(build=TinyPolicy, save=_save, load=_load)


# ------------------------------------------------------------------------------------------------ data fixtures
@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    """3 lift_block demos (~30 steps each) with three 32² cameras and touch."""
    out = tmp_path_factory.mktemp("sim") / "lift"
    cfg = load_config(datagen_schema("lift_block"), yaml="datagen",
                      overrides=[f"out={out}", "num_demos=3", "num_envs=1", CAMS])
    generate(cfg, progress=False)
    return out


def _aloha_columns(rng: np.random.Generator, n: int, cams: tuple[str, ...]) -> dict[str, np.ndarray]:
    cols = {"observation.state": (rng.standard_normal((n, 14)) * 0.3 + 1.0).astype(np.float32),
            "action": (rng.standard_normal((n, 14)) * 0.5 - 2.0).astype(np.float32)}
    for c, cam in enumerate(cams):
        cols[f"observation.images.{cam}"] = np.full((n, 24, 32, 3), 40 * c + 30, np.uint8)
    return cols


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    """A LeRobot v2.1 Mobile-ALOHA-like dataset: 14-D state/action, no touch, no cam_right_wrist."""
    from rho.datagen.lerobot import _write_v21_for_tests

    rng = np.random.default_rng(0)
    eps = [(_aloha_columns(rng, n, ("cam_high", "cam_left_wrist")), f"press button {i}")
           for i, n in enumerate((12, 15, 10))]
    return _write_v21_for_tests(tmp_path_factory.mktemp("real") / "busybox", eps, fps=50)


def _data(*sources: SourceCfg, **kw) -> DataCfg:
    return DataCfg(sources=list(sources), **kw)


def _sources(*sources: SourceCfg, layout: Layout = LAYOUT, **kw) -> list[Source]:
    return build_sources(_data(*sources, **kw), layout, seed=0)


# ------------------------------------------------------------------------------------------------ mixture
def test_mixture_sampling_respects_weights(sim, real):
    sources = _sources(SourceCfg(str(sim), weight=3.0), SourceCfg(str(real), weight=1.0), valid_fraction=0.0)
    ds = MixtureDataset(sources, "train", seed=0)
    draws = [ds.draw(k) for k in range(4000)]
    picked = np.array([s for _, s, _, _ in draws])
    assert abs((picked == 0).mean() - 0.75) < 0.03 and ds.probs.tolist() == [0.75, 0.25]
    # frames uniform within a source: demo frequencies follow demo lengths
    demos = np.array([d for _, s, d, _ in draws if s == 1])
    lengths = sources[1].store.lengths
    assert np.abs(np.bincount(demos, minlength=3) / len(demos) - lengths / lengths.sum()).max() < 0.06
    assert all(0 <= t < lengths[d] for _, s, d, t in draws if s == 1)
    # a draw is a pure function of (seed, split, k); other seeds give other draws
    assert [ds.draw(k)[1:] for k in range(50)] == [d[1:] for d in draws[:50]]
    assert [MixtureDataset(sources, "train", seed=1).draw(k)[1:] for k in range(50)] != [d[1:] for d in draws[:50]]
    # DDP sharding: ranks partition the draws
    shards = [list(DrawSampler(8, r, 3, count=4)) for r in range(3)]
    assert sorted(x for shard in shards for x in shard) == list(range(8, 20))


def test_normalization_stats_per_source(sim, real):
    sources = _sources(SourceCfg(str(sim), name="sim", embodiment="sim_robot"), SourceCfg(str(real), name="real"),
                       valid_fraction=0.0, normalize="per_source")
    s_sim, s_real = sources
    acts = np.concatenate([s_sim.store.arrays(i)["actions"][()] for i in range(3)])
    np.testing.assert_allclose(s_sim.stats["actions"].mean, acts.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s_sim.stats["actions"].std, np.where(acts.std(0) < 1e-4, 1, acts.std(0)), rtol=1e-3)
    touch = np.concatenate([s_sim.store.arrays(i)[f"obs/touch_{p}"][()].ravel() for i in range(3)
                            for p in LAYOUT.pads])
    assert s_sim.stats["touch"].mean.shape == (1,)  # one scalar over every taxel value of every pad
    np.testing.assert_allclose([s_sim.stats["touch"].mean[0], s_sim.stats["touch"].std[0]],
                               [touch.mean(), touch.std()], rtol=1e-4)
    real_state = np.concatenate([e.obs["joint_pos"] for e in s_real.store.episodes])
    np.testing.assert_allclose(s_real.stats["proprio"].mean, real_state.mean(0), rtol=1e-4)
    assert set(s_real.stats) == {"actions", "proprio"}  # no touch on real data
    # each source normalized with its own statistics into one shared space
    for s in sources:
        out = s.read(1, 5, None, None)
        raw = s.adapter.state(np.asarray(s.store.arrays(1)["obs/joint_pos"][5]))
        np.testing.assert_allclose(out["proprio"], (raw - s.stats["proprio"].mean) / s.stats["proprio"].std,
                                   rtol=1e-5, atol=1e-5)
    # the checkpoint's stats: the target's, per modality falling back to the first source that has it
    tgt = stats_to_json(target_norm_stats(sources, "real"))
    assert tgt["actions"]["mean"] == pytest.approx(s_real.stats["actions"].mean.tolist())
    assert tgt["touch"] == stats_to_json(s_sim.stats)["touch"] and isinstance(tgt["touch"]["mean"], float)
    assert set(tgt) == {"actions", "proprio", "touch", "touch_net"} and len(tgt["touch_net"]["mean"]) == 3
    # normalize=target: every source uses the target's statistics
    shared = _sources(SourceCfg(str(sim), name="sim", embodiment="sim_robot"), SourceCfg(str(real), name="real"),
                      valid_fraction=0.0, normalize="target")
    assert shared[1].norm["actions"] is shared[0].stats["actions"]


def test_normalization_pools_sources_of_one_embodiment(sim, real):
    """Regression (issue 16): per-source z-scoring decoded every task with the first source's statistics. Sources
    of one embodiment now share pooled statistics, which are the ones the checkpoint decodes with."""
    a, b = SourceCfg(str(sim), name="a", embodiment="aloha/joint_pos"), SourceCfg(str(real), name="b",
                                                                                  embodiment="aloha/joint_pos")
    sources = _sources(a, b, valid_fraction=0.0)
    acts = np.concatenate([*(sources[0].store.arrays(i)["actions"][()] for i in range(sources[0].store.num_demos)),
                           *(sources[1].adapter.action(e.actions) for e in sources[1].store.episodes)])
    pooled = target_norm_stats(sources)["actions"]
    np.testing.assert_allclose(pooled.mean, acts.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pooled.std, np.where(acts.std(0) < 1e-4, 1, acts.std(0)), rtol=1e-3, atol=1e-5)
    assert sources[0].norm["actions"] is sources[1].norm["actions"]  # one space for the embodiment
    # the target embodiment's pooled stats decode, whichever source is first
    assert target_norm_stats(sources, "b")["actions"].mean.tolist() == pooled.mean.tolist()
    # two embodiments: each keeps its own
    c = SourceCfg(str(real), name="c", embodiment="other/joint_pos")
    two = _sources(a, c, valid_fraction=0.0)
    assert set(embodiment_stats(two)) == {"aloha/joint_pos", "other/joint_pos"}
    assert two[1].norm["actions"].mean.tolist() == two[1].stats["actions"].mean.tolist()


def test_missing_modalities_are_masked(sim, real):
    sources = _sources(SourceCfg(str(sim)), SourceCfg(str(real), instruction="use the panel"), valid_fraction=0.0)
    a, b = sources[0].read(0, 3, None, None), sources[1].read(0, 3, None, None)
    assert a["touch_mask"] and a["proprio_mask"] and all(a["image_mask"].values())
    assert not b["touch_mask"] and b["proprio_mask"] and not np.any(b["touch"]) and not np.any(b["touch_net"])
    assert b["image_mask"] == {"cam_high": True, "cam_left_wrist": True, "cam_right_wrist": False}
    assert not b["images"]["cam_right_wrist"].any() and b["instruction"] == "use the panel"
    assert a["instruction"] == "lift the blue cube"
    batch = collate([a, b, sources[0].read(2, 0, None, None)])
    assert batch["touch"].shape == (3, 4, 3, 4, 4, 3) and batch["touch_net"].shape == (3, 4, 3)
    assert batch["images"]["cam_high"].shape == (3, 3, 24, 24) and batch["images"]["cam_high"].dtype == torch.float32
    assert batch["touch_mask"].tolist() == [True, False, True] and batch["source"].tolist() == [0, 1, 0]
    assert batch["image_mask"]["cam_right_wrist"].tolist() == [True, False, True]
    assert batch["actions"].shape == (3, 4, 14) and batch["proprio"].shape == (3, 14)
    # the action chunk runs past the episode end: padded with the last action and flagged
    n = int(sources[1].store.lengths[0])
    end = sources[1].read(0, n - 2, None, None)
    assert end["action_pad"].tolist() == [False, False, True, True]
    np.testing.assert_array_equal(end["actions"][2], end["actions"][1])


def test_adapter_maps_layouts(tmp_path):
    ex = Adapter.make_example()
    cfg = AdapterCfg(state_index=[*range(7, 14), *range(7)], state_scale=[0.01 if i in (6, 13) else 1 for i in
                                                                           range(14)],
                     action_index=[*range(7, 14), *range(7)], action_scale=[0.01 if i in (6, 13) else 1 for i in
                                                                             range(14)],
                     cameras={"cam_high": "top"})
    assert Adapter.from_cfg(cfg) == ex and hash(ex) == hash(Adapter.from_cfg(cfg))  # frozen, comparable
    target = np.linspace(-1, 1, 14, dtype=np.float32)
    logged = np.concatenate([target[7:], target[:7]])
    logged[[6, 13]] *= 100  # that robot's grippers in percent
    np.testing.assert_allclose(ex.state(logged), target, rtol=1e-6)
    # a source in that layout reads as the policy's layout
    n = 8
    ep = Episode(obs={"joint_pos": np.tile(logged, (n, 1)), "rgb_top": np.full((n, 16, 16, 3), 200, np.uint8)},
                 actions=np.tile(logged, (n, 1)), rewards=np.zeros(n, np.float32), dones=np.eye(n, dtype=np.uint8)[-1],
                 success=True, meta={"instruction": "x"})
    src = Source(SourceCfg("mem", adapter=cfg), 0, LAYOUT, 0.0, 0, store=EpisodeStore([ep], "mem"))
    raw = src._read_raw(src.store.arrays(0), 0, 2)
    np.testing.assert_allclose(raw["proprio"], target, rtol=1e-6)
    np.testing.assert_allclose(raw["actions"], np.tile(target, (4, 1)), rtol=1e-6)
    assert src.modalities.cameras == {"cam_high": "obs/rgb_top", "cam_left_wrist": None, "cam_right_wrist": None}
    # -1: a dim the source lacks, filled with the offset
    assert np.allclose(Adapter.from_cfg(AdapterCfg(state_index=[0, -1], state_offset=[0, 0.5])).state(
        np.array([3.0, 4.0])), [3.0, 0.5])
    # a layout that does not fit fails with the fix
    short = Episode(obs={"joint_pos": np.zeros((n, 7), np.float32)}, actions=np.zeros((n, 14), np.float32),
                    rewards=np.zeros(n, np.float32), dones=np.zeros(n, np.uint8), success=True)
    with pytest.raises(DataError, match=r"state has 7 dims.*expects 14.*adapter\.state_index"):
        Source(SourceCfg("mem7"), 0, LAYOUT, 0.0, 0, store=EpisodeStore([short], "mem7"))


def test_augmentation_shapes_and_ranges(sim):
    img = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    plain = image_to_tensor(img, 24)
    aug = ImageAugCfg(crop_scale=[0.5, 0.8], brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1)
    a1 = image_to_tensor(img, 24, aug, np.random.default_rng(1))
    a2 = image_to_tensor(img, 24, aug, np.random.default_rng(1))
    assert plain.shape == a1.shape == (3, 24, 24) and a1.dtype == torch.float32
    assert a1.min() >= 0 and a1.max() <= 1 and torch.equal(a1, a2) and not torch.allclose(a1, plain, atol=0.05)
    assert torch.allclose(plain, image_to_tensor(img, 24, aug, None))  # no generator: no augmentation
    # touch: per-pad gain in [1 - g, 1 + g]; dead pads and taxels read 0 N
    rng = np.random.default_rng(0)
    raw = {"touch": rng.uniform(0.1, 1, (4, 3, 4, 4, 3)).astype(np.float32),
           "touch_net": rng.uniform(0.1, 1, (4, 3)).astype(np.float32)}
    out = dict(raw)
    _augment_touch_raw(out, TouchAugCfg(gain=0.3, pad_dropout=0.0, taxel_dropout=0.0), rng)
    ratio = out["touch"] / raw["touch"]
    assert np.all((ratio >= 0.7 - 1e-6) & (ratio <= 1.3 + 1e-6))
    assert np.allclose(ratio, ratio[:, :1, :1, :1, :1])  # one gain per pad
    np.testing.assert_allclose(out["touch_net"] / raw["touch_net"], ratio[:, 0, 0, 0, :], rtol=1e-5)
    dead = dict(raw)
    _augment_touch_raw(dead, TouchAugCfg(pad_dropout=1.0), rng)
    assert not dead["touch"].any() and not dead["touch_net"].any()
    dead = dict(raw)
    _augment_touch_raw(dead, TouchAugCfg(gain=0.0, taxel_dropout=1.0, pad_dropout=0.0), rng)
    assert not dead["touch"].any() and np.allclose(dead["touch_net"], raw["touch_net"])
    # through the mixture: same draw, same augmented sample; values stay in range
    sources = _sources(SourceCfg(str(sim)), valid_fraction=0.0)
    ds = MixtureDataset(sources, "train", seed=0, augment=AugmentCfg())
    s1, s2 = ds[7], ds[7]
    assert all(torch.equal(s1["images"][c], s2["images"][c]) for c in LAYOUT.cameras)
    assert np.array_equal(s1["touch"], s2["touch"]) and np.isfinite(s1["touch"]).all()
    assert all(s1["images"][c].min() >= 0 and s1["images"][c].max() <= 1 for c in LAYOUT.cameras)
    plain = MixtureDataset(sources, "train", seed=0)[7]
    assert not np.array_equal(plain["touch"], s1["touch"]) and np.array_equal(plain["actions"], s1["actions"])
    copy = pickle.loads(pickle.dumps(ds))[7]  # spawn / forkserver workers get a pickled dataset
    assert np.array_equal(copy["touch"], s1["touch"]) and torch.equal(copy["images"]["cam_high"],
                                                                      s1["images"]["cam_high"])


def test_validation_demos_from_dataset_masks(sim, tmp_path):
    from rho.datagen import tools

    shutil.copytree(sim, tmp_path / "split")
    masks = tools.split(tmp_path / "split", valid_fraction=0.34, seed=3)
    (src,) = _sources(SourceCfg(str(tmp_path / "split")), valid_fraction=0.0)  # the masks win over the fraction
    groups = [d.group for d in src.store.ds.demos]
    assert [groups[i] for i in src.demos["valid"]] == masks["valid"] and len(masks["valid"]) == 1
    assert sorted(groups[i] for i in src.demos["train"]) == sorted(masks["train"])
    (held,) = _sources(SourceCfg(str(sim)), valid_fraction=0.34)  # no mask/valid: a seeded held-out fraction
    assert len(held.demos["valid"]) == 1 and len(held.demos["train"]) == 2
    assert MixtureDataset([held], "valid").draw(0)[2] == held.demos["valid"][0]


# ------------------------------------------------------------------------------------------------ training
def _train_cfg(out: Path, sources: list[SourceCfg], **kw) -> TrainCfg:
    base = {"steps": 3, "batch_size": 4, "num_workers": 0, "log_every": 1, "valid_every": 2, "valid_batches": 1,
            "save_every": 100, "progress": False, "seed": 0, "optim": OptimCfg(lr=1e-3, warmup_steps=1)}
    return TrainCfg(out=str(out), policy=TinyPolicyCfg(), data=_data(*sources, valid_fraction=0.34), **{**base, **kw})


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_train_then_resume_is_exact(sim, real, tmp_path):
    srcs = [SourceCfg(str(sim), weight=2.0), SourceCfg(str(real))]
    straight = train(_train_cfg(tmp_path / "a", srcs), io=TINY_IO)
    assert straight["steps"] == 3 and "valid_loss" in straight
    first = train(_train_cfg(tmp_path / "b", srcs, steps=2), io=TINY_IO)
    assert first["steps"] == 2 and latest_checkpoint(tmp_path / "b").name == "step_00000002"
    with pytest.raises(ConfigError, match="resume=true"):
        train(_train_cfg(tmp_path / "b", srcs, steps=3), io=TINY_IO)
    with pytest.raises(ConfigError, match="sources is empty"):
        train(TrainCfg(out=str(tmp_path / "c"), policy=TinyPolicyCfg()), io=TINY_IO)
    with pytest.raises(ConfigError, match="seed"):
        train(_train_cfg(tmp_path / "b", srcs, steps=3, seed=1, resume=True), io=TINY_IO)
    resumed = train(_train_cfg(tmp_path / "b", srcs, steps=3, resume=True), io=TINY_IO)
    assert resumed["start_step"] == 2 and resumed["steps"] == 3 and "resume=true" in describe(resumed)
    a, _, extra_a = _load(latest_checkpoint(tmp_path / "a"))
    b, stats_b, extra_b = _load(latest_checkpoint(tmp_path / "b"))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    opt_a = torch.load(latest_checkpoint(tmp_path / "a") / "trainer.pt", weights_only=True)["optimizer"]
    opt_b = torch.load(latest_checkpoint(tmp_path / "b") / "trainer.pt", weights_only=True)["optimizer"]
    assert all(torch.equal(opt_a["state"][k]["exp_avg_sq"], opt_b["state"][k]["exp_avg_sq"]) for k in opt_a["state"])
    log_a, log_b = _log(tmp_path / "a"), _log(tmp_path / "b")
    step3 = [[r["loss"] for r in log if r.get("step") == 3 and "loss" in r] for log in (log_a, log_b)]
    assert step3[0] == step3[1] and len(step3[1]) == 1
    assert [r["valid_loss"] for r in log_a if "valid_loss" in r] == [r["valid_loss"] for r in log_b
                                                                     if "valid_loss" in r]
    assert any(r.get("event") == "resume" for r in log_b)
    # the checkpoint carries the target's stats (first source: sim) and every source's own
    assert set(stats_b) == {"actions", "proprio", "touch", "touch_net"} and extra_b["step"] == 3
    assert set(extra_b["source_stats"]) == {"lift", "busybox"} and "touch" not in extra_b["source_stats"]["busybox"]
    # both sim sources are one embodiment: the checkpoint decodes with their pooled statistics
    assert extra_b["source_embodiments"] == {"lift": "aloha/joint_pos", "busybox": "aloha/joint_pos"}
    emb_a, emb_b = extra_a["embodiment_stats"], extra_b["embodiment_stats"]
    assert stats_b == emb_b["aloha/joint_pos"] == emb_a["aloha/joint_pos"]
    assert extra_b["source_stats"]["lift"] == extra_a["source_stats"]["lift"]
    assert (tmp_path / "b" / "config.yaml").exists()
    if _has_tensorboard():
        assert list((tmp_path / "b" / "tb").glob("events.out.tfevents.*"))


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def test_loss_decreases(sim, tmp_path):
    cfg = _train_cfg(tmp_path / "run", [SourceCfg(str(sim))], steps=60, batch_size=16, num_workers=1,
                     optim=OptimCfg(lr=3e-3, warmup_steps=0, schedule="constant"))
    cfg.data.valid_fraction = 0.0  # every demo trains; no validation (logged as such)
    out = train(cfg, io=TINY_IO)
    log = _log(tmp_path / "run")
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 60 and out["samples_per_s"] > 0 and "valid_loss" not in out
    assert np.mean(losses[-20:]) < np.mean(losses[:10]), losses
    assert any(r.get("event") == "no_validation" for r in log)
    # the training objective on every frame, without augmentation: initial weights vs trained
    sources = build_sources(cfg.data, LAYOUT, seed=0)
    frames = [sources[0].read(d, t, None, None) for d in range(3) for t in range(sources[0].store.lengths[d])]
    batch = collate(frames)
    torch.manual_seed(cfg.seed)  # train() builds the model right after seeding with cfg.seed
    before = TinyPolicy(TinyPolicyCfg()).loss(batch)[0].item()
    after = _load(latest_checkpoint(tmp_path / "run"))[0].loss(batch)[0].item()
    assert after < 0.5 * before, (before, after)


# ------------------------------------------------------------------------------------------------ bad data
def _copy_with(sim: Path, dst: Path, edit) -> tuple[Path, str]:
    shutil.copytree(sim, dst)
    shard = sorted(dst.glob("shard_*.hdf5"))[0]
    with h5py.File(shard, "a") as f:
        name = sorted(f["data"])[1]
        edit(f["data"][name])
    return shard, name


def test_bad_data_names_dataset_and_demo(sim, tmp_path):
    def nan(g):
        g["obs/joint_pos"][4, 2] = np.nan

    shard, demo = _copy_with(sim, tmp_path / "nan", nan)
    with pytest.raises(DataError, match=rf"{shard}: demo {demo}: proprio has NaN"):
        _sources(SourceCfg(str(tmp_path / "nan")), valid_fraction=0.0)
    source = Source(SourceCfg(str(tmp_path / "nan")), 0, LAYOUT, 0.0, 0)  # frames are checked as they are read
    with pytest.raises(DataError, match=rf"{shard}: demo {demo}: proprio has NaN or inf at step 4"):
        source.read(1, 4, None, None)

    def missing(g):
        del g["obs/touch_net_right_b"]

    shard, demo = _copy_with(sim, tmp_path / "missing", missing)
    with pytest.raises(DataError, match=rf"{shard}: demo {demo}: missing 'obs/touch_net_right_b'"):
        _sources(SourceCfg(str(tmp_path / "missing")))

    def short(g):
        a = g["actions"][()]
        del g["actions"]
        g["actions"] = a[:, :13]

    shard, demo = _copy_with(sim, tmp_path / "shape", short)
    with pytest.raises(DataError, match=rf"{shard}: demo {demo}: actions has shape \(\d+, 13\), expected"):
        _sources(SourceCfg(str(tmp_path / "shape")))
    with pytest.raises(DataError, match="does not exist"):
        _sources(SourceCfg(str(tmp_path / "nowhere")))


# ------------------------------------------------------------------------------------------------ config
def test_train_config_from_files(sim, tmp_path):
    pytest.importorskip("rho.policy.config")
    from rho.policy.train import load_train_config

    (tmp_path / "mix.yaml").write_text(f"sources:\n  - path: {sim}\n    weight: 2\n  - path: {sim}\n    name: b\n"
                                       "normalize: target\n")
    (tmp_path / "pol.yaml").write_text("expert:\n  horizon: 8\n")
    cfg = load_train_config([f"policy={tmp_path / 'pol.yaml'}", f"data={tmp_path / 'mix.yaml'}",
                             "data.sources[1].weight=0.5", "out=runs/x", "policy.expert.touch_history=3"])
    assert cfg.policy.expert.horizon == 8 and cfg.policy.expert.touch_history == 3
    assert [s.weight for s in cfg.data.sources] == [2.0, 0.5] and cfg.data.normalize == "target"
    with pytest.raises(ConfigError, match="no such file"):
        load_train_config(["data=not_a_mixture"])
    with pytest.raises(ConfigError, match="wieght"):
        load_train_config([f"data={{sources: [{{path: {sim}, wieght: 2}}]}}"])


def test_trains_the_rho_policy(sim, real, tmp_path):
    """The real TwoStagePolicy through its own checkpoint functions (skipped until rho.policy.checkpoint exists)."""
    pytest.importorskip("rho.policy.checkpoint")
    from rho.policy.checkpoint import load_checkpoint
    from rho.policy.config import PolicyCfg

    policy = load_config(PolicyCfg, overrides=["backbone.image_size=32", "backbone.width=32", "backbone.depth=1",
                                               "backbone.heads=2", "expert.width=32", "expert.depth=1",
                                               "expert.heads=2", "expert.horizon=4"])
    cfg = _train_cfg(tmp_path / "rho", [SourceCfg(str(sim)), SourceCfg(str(real))], steps=2)
    cfg.policy = policy
    train(cfg, io=None)
    cfg.steps, cfg.resume = 3, True
    assert train(cfg)["steps"] == 3
    model, stats, extra = load_checkpoint(latest_checkpoint(tmp_path / "rho"))
    assert set(stats) == {"actions", "proprio", "touch", "touch_net"} and extra["step"] == 3
    assert extra["action_mode"] == "joint_pos"  # datasets hold the executed joint targets, whatever the expert drove
    assert list(extra["source_action_modes"].values()) == ["joint_pos", "joint_pos"]  # LeRobot: joint targets too
    assert model.cfg.expert.horizon == 4


# ------------------------------------------------------------------------------------------------ auxiliary targets
def test_aux_targets_are_read_normalized_and_masked(sim, real):
    """`aux` reads privileged low-dim obs (the block's position) z-scored per source; a source without them (the
    LeRobot one) gets zeros with a False mask, so the auxiliary loss ignores it."""
    layout = Layout(image_size=24, horizon=4, touch_history=3, aux_dim=4)
    sim_src, real_src = _sources(SourceCfg(str(sim), aux=["block_pose[0:3]"]), SourceCfg(str(real)), layout=layout,
                                 valid_fraction=0.0)
    demo = int(sim_src.demos["train"][0])
    sample = sim_src.read(demo, 2, None, None)
    pos = np.asarray(sim_src.store.arrays(demo)["obs/block_pose"][2, :3])
    np.testing.assert_allclose(sample["aux"][:3], (pos - sim_src.aux_mean) / sim_src.aux_std, atol=1e-5)
    assert np.all(sim_src.aux_std > 1e-3 - 1e-9) and abs(float(pos[2]) - 0.02) < 0.01  # a resting block, m
    assert sample["aux_mask"].tolist() == [True, True, True, False]
    assert not real_src.read(int(real_src.demos["train"][0]), 0, None, None)["aux_mask"].any()
    batch = collate([sample, real_src.read(int(real_src.demos["train"][0]), 0, None, None)])
    assert batch["aux"].shape == (2, 4) and batch["aux_mask"].dtype == torch.bool


@pytest.mark.parametrize(("aux", "dim", "match"), [
    (["block_pos"], 3, "not a \\(T, D\\) obs.*block_pose"),
    (["block_pose[0:3"], 3, "is not '<obs key>'"),
    (["block_pose"], 3, "has 7 values, policy.aux_dim is 3"),
])
def test_bad_aux_specs_are_refused_with_the_fix(sim, aux, dim, match):
    layout = Layout(image_size=24, horizon=4, touch_history=3, aux_dim=dim)
    with pytest.raises(DataError, match=match):
        _sources(SourceCfg(str(sim), aux=aux), layout=layout)


def test_aux_loss_trains_the_prefix(sim, tmp_path):
    """The real policy with policy.aux_dim: the auxiliary loss is logged apart from the flow loss (train and
    validation) and its gradient reaches the vision path."""
    from rho.policy.config import PolicyCfg
    from rho.policy.model import TwoStagePolicy

    policy = load_config(PolicyCfg, overrides=["backbone.image_size=32", "backbone.width=32", "backbone.depth=1",
                                               "backbone.heads=2", "backbone.cnn_channels=[8,8]", "backbone.keypoints=4",
                                               "expert.width=32", "expert.depth=1", "expert.heads=2",
                                               "expert.horizon=4", "aux_dim=3"])
    layout = Layout.from_policy(policy)
    (src,) = _sources(SourceCfg(str(sim), aux=["block_pose[0:3]"]), layout=layout, valid_fraction=0.0)
    batch = collate([src.read(int(src.demos["train"][0]), t, None, None) for t in range(4)])
    torch.manual_seed(0)
    model = TwoStagePolicy(policy)
    loss, info = model.loss(batch)
    assert info["aux_loss"] > 0 and info["loss"] == pytest.approx(info["flow_loss"] + 0.5 * info["aux_loss"], rel=1e-5)
    loss.backward()
    assert model.backbone.stems[0].down[0][0].weight.grad.abs().sum() > 0
    model.zero_grad()
    model.cfg.aux_weight = 0.0
    _, info0 = model.loss({k: v for k, v in batch.items() if k not in ("aux", "aux_mask")})
    assert "aux_loss" not in info0

    cfg = _train_cfg(tmp_path / "aux", [SourceCfg(str(sim), aux=["block_pose[0:3]"])], steps=2, valid_every=1)
    cfg.policy = policy
    train(cfg, io=None)
    rows = _log(tmp_path / "aux")
    assert any("aux_loss" in r and "flow_loss" in r for r in rows)
    assert any("valid_aux_loss" in r for r in rows)

    # per-source diagnosis of the checkpoint (python -m rho.policy.diagnose): the same held-out demos the run
    # validated on, the aux error in the source's units (m), deterministic
    from rho.policy import diagnose

    ckpt = latest_checkpoint(tmp_path / "aux")
    rows = diagnose.per_source_validation(ckpt, samples=6, batch=4)
    assert rows == diagnose.per_source_validation(ckpt, samples=6, batch=4)
    (row,) = rows
    assert row["valid_demos"] >= 1 and np.isfinite(row["flow_loss"]) and row["flow_loss"] > 0
    assert row["aux_keys"] == ["block_pose[0:3]"] and len(row["aux_abs_err"]) == len(row["aux_std"]) == 3
    assert all(0 < e < 1.0 for e in row["aux_abs_err"])  # metres: an untrained head is off, but not by a metre
    src = build_sources(cfg.data, Layout.from_policy(policy), 0)[0]
    np.testing.assert_allclose(row["aux_std"], src.aux_std, rtol=1e-6)
    assert diagnose.main([str(ckpt), "samples=4"]) == 0
    assert diagnose.main([str(tmp_path / "nothing")]) == 1 and diagnose.main([str(ckpt), "bogus=1"]) == 2
    # the closed-loop reach diagnosis finds the task's object from the run's own aux keys
    assert diagnose._default_target(tmp_path / "aux", "lift_block") == "block_pose[0:3]"
    with pytest.raises(ConfigError, match="target="):
        diagnose._default_target(tmp_path / "aux", "plug_insertion")


def test_reach_offsets_follow_the_policy_to_the_object():
    """`diagnose reach=<task>`: per suite episode, the nearest TCP approach to the object, from the policy's own
    observations. The scripted expert grasps the block, so its TCP comes within 3 cm of the block's centre (the TCP
    site sits between the fingers, above the pads' contact); episodes are the suite's, in order, with outcomes."""
    from rho.policy import diagnose

    rows = diagnose.reach_offsets("expert", "lift_block", "block_pose[0:3]", episodes=2)
    assert [r["episode"] for r in rows] == [0, 1] and all(r["success"] for r in rows)
    for r in rows:
        assert 0 <= r["min_dist"] < 0.03 and r["arm"] in (0, 1) and 0 <= r["step"] < r["steps"]
        assert np.isclose(np.linalg.norm(r["offset"]), r["min_dist"])
    # the fingertips, not the TCP, press a button: the expert's come within a few mm of the press point
    (press,) = diagnose.reach_offsets("expert", "busybox_push_button", "target_site", episodes=1)
    assert press["success"] and press["tip_dist"] < 0.006 < 0.03 < press["min_dist"], press
    assert np.isclose(np.linalg.norm(press["tip_offset"]), press["tip_dist"])
    with pytest.raises(ConfigError, match="not an observation"):
        diagnose.reach_offsets("expert", "lift_block", "no_such_key", episodes=1)
    with pytest.raises(ConfigError, match="needs 3"):
        diagnose.reach_offsets("expert", "lift_block", "block_pose[0:2]", episodes=1)


def test_bad_out_is_refused_before_any_data_is_read(tmp_path):
    """An output path that cannot hold the run fails first, naming it (the data path here does not even exist)."""
    from rho.config import ConfigError
    from rho.policy.data import DataCfg, SourceCfg
    from rho.policy.train import TrainCfg, train

    blocker = tmp_path / "afile"
    blocker.write_text("")
    data = DataCfg(sources=[SourceCfg(str(tmp_path / "missing"))])
    for out, why in ((blocker, "is a file"), (blocker / "run", "is a file"), ("", "out is empty")):
        with pytest.raises(ConfigError, match=why):
            train(TrainCfg(out=str(out), data=data, progress=False, tensorboard=False))


def test_resume_after_an_upgrade_that_added_config_keys(sim, tmp_path):
    """A run saved before keys existed (init_from, a source's `steps`) resumes: missing keys read as their
    defaults; a setting that really differs is still refused."""
    srcs = [SourceCfg(str(sim))]
    train(_train_cfg(tmp_path / "r", srcs, steps=2, save_every=2), io=TINY_IO)
    extra_path = latest_checkpoint(tmp_path / "r") / "extra.json"
    extra = json.loads(extra_path.read_text())
    saved = extra["train_cfg"]
    del saved["init_from"]
    for s in saved["data"]["sources"]:
        del s["steps"]
    extra_path.write_text(json.dumps(extra))
    with pytest.raises(ConfigError, match="data"):
        train(_train_cfg(tmp_path / "r", [SourceCfg(str(sim), weight=3.0)], steps=3, resume=True), io=TINY_IO)
    resumed = train(_train_cfg(tmp_path / "r", srcs, steps=3, resume=True), io=TINY_IO)
    assert resumed["start_step"] == 2 and resumed["steps"] == 3
