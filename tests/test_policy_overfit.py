"""Overfit sanity (issue 16): a correct pipeline reproduces its own training demos closed-loop.

A tiny two-stage policy (CNN + keypoints at 32 px, a 2-layer expert) trains on two lift_block demos and is then run
closed-loop in the env on those demos' own episode seeds (`seeds_from`): datagen → joint-target actions → frame
cache → normalization → training → checkpoint (EMA) → inference (same resize) → env in joint_pos. Every bug issue 16
found (hidden ee_delta target, wrong decoding statistics, stale images, train/eval resize mismatch) broke this.
"""

from __future__ import annotations

import pytest

from rho.config import load_config
from rho.datagen.hdf5 import Dataset
from rho.policy.config import PolicyCfg
from rho.policy.data import DataCfg, SourceCfg
from rho.policy.train import OptimCfg, TrainCfg, train

CAMS = ["env.cameras={cam_high: {width: 48, height: 48}, cam_left_wrist: {width: 48, height: 48}, "
        "cam_right_wrist: {width: 48, height: 48}}"]
SEEDS = 2


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_policy_reproduces_its_training_demos(tmp_path):
    from rho.datagen.runner import datagen_schema, generate
    from rho.eval.evaluation import Evaluation

    data = tmp_path / "lift"
    generate(load_config(datagen_schema("lift_block"), overrides=[
        "task=lift_block", f"num_demos={SEEDS}", f"out={data}", "num_envs=1", "seed=3", *CAMS]), progress=False)
    policy = load_config(PolicyCfg, overrides=[
        "backbone.image_size=32", "backbone.cnn_channels=[8,16]", "backbone.keypoints=8", "backbone.width=64",
        "backbone.depth=1", "backbone.heads=2", "expert.width=64", "expert.depth=2", "expert.heads=2",
        "expert.horizon=8", "expert.flow_steps=5",
        # measured 2026-12-07: with the (default) hashed-word text path this tiny config reproduced 0/2 demos at
        # 2 000 steps and 1/2 at 3 000, with 80 byte tokens 2/2 at 2 000 — the word path at this size is an open
        # question (issue 16); the recipe-size policy uses words (docs/results.md). The test checks the pipeline.
        "backbone.tokenizer=bytes", "backbone.max_text_tokens=80"])
    # measured (lr 1e-3): 900 steps reproduce 1 of the 2 demos, 1 500 steps 2 or 1 depending on the initial weights,
    # 2 500 both; lr 2e-3 × 2 000 steps both (~2 min on one core of the 2-core CI machine)
    cfg = TrainCfg(out=str(tmp_path / "policy"), policy=policy, steps=2000, batch_size=32, num_workers=0,
                   cpu_threads=1, log_every=100, save_every=2000, progress=False, tensorboard=False, seed=0,
                   optim=OptimCfg(lr=2e-3, warmup_steps=50, ema=0.99),
                   data=DataCfg(sources=[SourceCfg(str(data))], valid_fraction=0.0))
    summary = train(cfg)
    assert summary["loss"] < 0.12, summary
    report = Evaluation("smoke", out=tmp_path / "eval", tasks=["lift_block"], episodes=SEEDS, num_envs=SEEDS,
                        videos=0, seeds_from=[str(data)], env={"cameras": {c: {"width": 48, "height": 48} for c in
                                                                           ("cam_high", "cam_left_wrist",
                                                                            "cam_right_wrist")}}
                        ).run(str(tmp_path / "policy"))
    cell = report["per_cell"][0]
    with Dataset(data) as ds:
        seeds = [int(ds.group(i).attrs["episode_seed"]) for i in range(ds.num_demos)]
    assert cell["episode_seeds"] == seeds  # the demos' own episodes
    assert cell["outcomes"] == "1" * SEEDS, cell
