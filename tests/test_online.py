"""Online learning from corrections (issue 13): the ee_delta bridge, the intervention-only data source, and a whole
headless session (takeover, recording, update with replay, evaluation, resume after a kill) on tiny models."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from rho.config import load_config
from rho.datagen.hdf5 import Dataset

CAMS = {c: {"width": 32, "height": 32} for c in ("cam_high", "cam_left_wrist", "cam_right_wrist")}


def _lift_env(mode: str, seed: int = 5):
    from rho.tasks import get_task

    entry = get_task("lift_block")
    cfg = load_config(entry.cfg_cls, overrides=["num_envs=2", f"seed={seed}", "cameras={}", f"action.mode={mode}"])
    return entry.env_cls(cfg)


def test_an_ee_delta_expert_drives_a_joint_pos_env_exactly():
    """The scripted expert through EeDeltaView + joint_action_from_ee_delta executes the same joint actions as in
    an ee_delta env, and succeeds."""
    from rho.online.corrector import EeDeltaView
    from rho.tasks import get_task

    entry = get_task("lift_block")
    ref_env, env = _lift_env("ee_delta"), _lift_env("joint_pos")
    ref_expert, expert = entry.expert_cls(ref_env), entry.expert_cls(EeDeltaView(env))
    ref_obs, _ = ref_env.reset()
    obs, _ = env.reset()
    ids, done = np.arange(env.num_envs), np.zeros(env.num_envs, bool)
    for _ in range(200):
        ref_obs, _, _, _, ref_info = ref_env.step(ref_expert.act(ref_obs))
        obs, _, _, _, info = env.step(env.joint_action_from_ee_delta(expert.act(obs), ids))
        np.testing.assert_array_equal(info["joint_action"], ref_info["joint_action"])
        np.testing.assert_array_equal(info["success"], ref_info["success"])
        done |= info["success"]
        if done.all():
            break
    assert done.all()


def test_joint_action_from_ee_delta_leaves_other_envs_alone():
    env = _lift_env("joint_pos")
    env.reset()
    before = env.ee_target.copy()
    delta = np.zeros((1, 14), np.float32)
    delta[0, 2] = 0.005  # 5 mm up, left arm of env 1
    out = env.joint_action_from_ee_delta(delta, np.array([1]))
    assert out.shape == (1, 14) and out.dtype == np.float32
    np.testing.assert_array_equal(env.ee_target[0], before[0])
    assert env.ee_target[1, 0, 2] == pytest.approx(before[1, 0, 2] + 0.005)
    with pytest.raises(ValueError, match="NaN"):
        env.joint_action_from_ee_delta(np.full((1, 14), np.nan), np.array([0]))


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """Two lift_block demos at 32 px and a tiny policy trained briefly on them (it does not solve the task, so the
    corrector has work)."""
    from rho.datagen.runner import datagen_schema, generate
    from rho.policy.config import PolicyCfg
    from rho.policy.data import DataCfg, SourceCfg
    from rho.policy.train import OptimCfg, TrainCfg, train

    root = tmp_path_factory.mktemp("online")
    data = root / "lift"
    generate(load_config(datagen_schema("lift_block"), overrides=[
        "task=lift_block", "num_demos=2", f"out={data}", "num_envs=1", "seed=3",
        f"env.cameras={json.dumps(CAMS)}"]), progress=False)
    policy = load_config(PolicyCfg, overrides=[
        "backbone.image_size=32", "backbone.cnn_channels=[8]", "backbone.keypoints=4", "backbone.width=32",
        "backbone.depth=1", "backbone.heads=2", "expert.width=32", "expert.depth=1", "expert.heads=2",
        "expert.horizon=4", "expert.flow_steps=2"])
    train(TrainCfg(out=str(root / "policy"), policy=policy, steps=10, batch_size=8, num_workers=0, cpu_threads=1,
                   save_every=10, progress=False, tensorboard=False, optim=OptimCfg(lr=1e-3, warmup_steps=2),
                   data=DataCfg(sources=[SourceCfg(str(data))], valid_fraction=0.0)))
    return root, data


def _session_cfg(root, data, out, **kw):
    from rho.online.config import OnlineCfg

    overrides = [f"policy={root / 'policy'}", f"out={out}", "task=lift_block", "rounds=2", "num_envs=2",
                 "update.every_episodes=2", "update.steps=4", "update.batch_size=8", "update.cpu_threads=1",
                 "eval.episodes=1", "eval.num_envs=1", "corrector.trigger.no_progress_steps=8",
                 "corrector.latency_steps=2", "corrector.hold_steps=0", f"replay.sources=[{data}]",
                 "replay.fraction=0.5", "progress=false", f"env={json.dumps({'cameras': CAMS, 'episode_length_s': 1.6})}"]
    return load_config(OnlineCfg, overrides=overrides + [f"{k}={v}" for k, v in kw.items()])


def test_a_session_corrects_records_updates_evaluates_and_resumes(tiny_policy, tmp_path, monkeypatch):
    from rho.online import session as sess

    root, data = tiny_policy
    out = tmp_path / "session"
    cfg = _session_cfg(root, data, out)
    real_evaluate, calls = sess.evaluate, []

    def killed_at_round_2(c, ckpt, where):
        calls.append(where.name)
        if where.name == "round_0002":
            raise KeyboardInterrupt  # a kill after round 2's collection and update
        return real_evaluate(c, ckpt, where)

    monkeypatch.setattr(sess, "evaluate", killed_at_round_2)
    with pytest.raises(KeyboardInterrupt):
        sess.run_session(cfg, log=lambda *_: None)
    state = json.loads((out / sess.STATE).read_text())
    assert state["round"] == 1 and len(state["history"]) == 2  # round 0 (start) and round 1 are kept
    shard2 = out / "corrections" / "round_0002.hdf5"
    assert shard2.is_file()
    mtime = shard2.stat().st_mtime_ns
    monkeypatch.setattr(sess, "evaluate", real_evaluate)
    state = sess.run_session(cfg, log=lambda *_: None)
    assert state["round"] == 2 and [h["round"] for h in state["history"]] == [0, 1, 2]
    assert shard2.stat().st_mtime_ns == mtime  # the finished collection was not redone
    lines = [json.loads(x) for x in (out / sess.PROGRESS).read_text().splitlines()]
    assert [x["round"] for x in lines] == [0, 1, 2]
    paired = lines[2]["vs_start"]["lift_block"]  # against round 0 on the same seeded episodes
    assert paired["test"] == "mcnemar" and 0.0 <= paired["p_value"] <= 1.0
    # recordings: executed joint actions, per-step intervention flags, corrections happened (the policy is untrained)
    with Dataset(out / "corrections" / "round_0001.hdf5") as ds:
        assert ds.num_demos == 2
        flags = [ds.episode(i).step_info["intervention"] for i in range(ds.num_demos)]
        eps = [ds.episode(i) for i in range(ds.num_demos)]
    assert all(f.dtype == np.uint8 and len(f) == e.num_samples for f, e in zip(flags, eps, strict=True))
    assert sum(int(f.sum()) for f in flags) > 0
    assert all(e.meta["intervened_steps"] == int(f.sum()) for f, e in zip(flags, eps, strict=True))
    assert eps[0].actions.shape[1] == 14 and eps[0].meta["triggers"]
    # each round's update fine-tuned the previous checkpoint and is what the state now points to
    assert "updates/round_0002" in state["checkpoint"]
    cfg_yaml = (out / "updates" / "round_0002" / "config.yaml").read_text()
    assert "round_0001" in cfg_yaml and "intervention" in cfg_yaml and str(data) in cfg_yaml
    page = (out / "report.html").read_text()
    assert page.count("<tr>") == 4  # header + rounds 0, 1, 2
    if importlib.util.find_spec("av") is not None:  # a video of a corrected episode per round
        from rho.eval.video import probe

        videos = sorted((out / "videos").glob("round_*.mp4"))
        assert len(videos) == 2 and page.count("<video") == 2
        assert probe(str(videos[0]))["frames"] == eps[[int(f.sum()) > 0 for f in flags].index(True)].num_samples


def test_resuming_with_other_settings_is_refused(tiny_policy, tmp_path, monkeypatch):
    from rho.online import session as sess

    root, data = tiny_policy
    out = tmp_path / "s"
    monkeypatch.setattr(sess, "collect", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    monkeypatch.setattr(sess, "evaluate", lambda *a, **k: {"lift_block": {"successes": 0, "episodes": 1,
                                                                     "success_rate": 0.0, "ci95": [0, 0.8]}})
    with pytest.raises(KeyboardInterrupt):
        sess.run_session(_session_cfg(root, data, out), log=lambda *_: None)
    with pytest.raises(sess.SessionError, match=r"seed: 1000 → 7"):
        sess.run_session(_session_cfg(root, data, out, seed=7), log=lambda *_: None)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("")
    with pytest.raises(sess.SessionError, match="not a session directory"):
        sess.run_session(_session_cfg(root, data, tmp_path / "other"), log=lambda *_: None)
    with pytest.raises(sess.SessionError, match="not a checkpoint"):
        sess.run_session(_session_cfg(tmp_path, data, tmp_path / "new"), log=lambda *_: None)


def test_intervention_steps_source_draws_only_corrected_steps(tmp_path):
    """steps=intervention: a source's frames are exactly the flagged steps."""
    from rho.datagen.episode import Episode
    from rho.datagen.hdf5 import ShardWriter
    from rho.policy.config import PolicyCfg
    from rho.policy.data import Layout, Source, SourceCfg

    rng = np.random.default_rng(0)
    path = tmp_path / "c.hdf5"
    w = ShardWriter(path, {"task": "lift_block", "action_mode": "joint_pos"})
    flags = [np.array([0, 1, 1, 0, 1], np.uint8), np.array([0, 0, 0], np.uint8), np.array([1, 0], np.uint8)]
    for k, f in enumerate(flags):
        t = len(f)
        w.add(Episode(obs={"joint_pos": rng.normal(size=(t, 14)).astype(np.float32),
                           "joint_vel": np.zeros((t, 14), np.float32)},
                      actions=rng.normal(size=(t, 14)).astype(np.float32), rewards=np.zeros(t, np.float32),
                      dones=np.eye(t, dtype=np.uint8)[-1], success=bool(k % 2), meta={"instruction": "lift"},
                      step_info={"intervention": f, "controller": f}), f"demo_{k}")
    w.close()
    layout = Layout.from_policy(load_config(PolicyCfg, overrides=["cameras=[]", "pads=[]", "expert.use_touch=false"]))
    src = Source(SourceCfg(str(path), only_success=False, steps="intervention"), 0, layout, 0.0, 0)
    got = sorted(src.locate("train", j) for j in range(src.num_frames("train")))
    assert got == [(0, 1), (0, 2), (0, 4), (2, 0)]
    assert Source(SourceCfg(str(path), only_success=False), 0, layout, 0.0, 0).num_frames("train") == 10
    # the round's figures come back from the shard by demo (10 steps, 3 demos: not by sample)
    from rho.online.session import _shard_stats

    stats = _shard_stats(path)
    assert (stats["episodes"], stats["successes"], stats["steps"]) == (3, 1, 10)


def test_a_seeded_episode_plays_the_same_at_any_num_envs(tiny_policy):
    """`rho eval` seeds a trained policy's flow noise per episode (`Policy.seed_envs`), so episode k of a suite is
    the same rollout whether it runs alone or beside others: paired tests pair the policy's draws too."""
    from rho.eval.evaluation import Evaluation

    root, _ = tiny_policy
    env = {"cameras": CAMS, "episode_length_s": 1.6}

    def records(num_envs):
        ev = Evaluation("smoke", out=None, tasks=["lift_block"], levels=["nominal"], episodes=3, num_envs=num_envs,
                        workers=1, videos=0, traces=0, env=env)
        ev.run(str(root / "policy"))
        return {r["episode"]: (r["steps"], r["success"], r["progress_max"], r["action_clipped_steps"])
                for r in ev.records}

    alone, batched = records(1), records(2)
    assert alone == batched and len(alone) == 3
