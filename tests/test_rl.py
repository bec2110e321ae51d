"""RL experts: the rsl-rl VecEnv adapter, `rho rl train` (checkpoints, resume), the RL expert in datagen and eval,
and the errors bad inputs get."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rho.cli import main
from rho.config import ConfigError, load_config
from rho.datagen import tools
from rho.datagen.hdf5 import Dataset
from rho.datagen.runner import datagen_schema, generate
from rho.tasks import make_env
from rho.tasks.plug_insertion import RIGHT, PlugInsertionCfg
from rho.tasks.rl.expert import RlExpert, load_checkpoint, make_expert
from rho.tasks.rl.train import load_train_config, train

pytest.importorskip("rsl_rl")

TINY = ["agent.num_envs=2", "agent.num_steps_per_env=8", "agent.algorithm.num_mini_batches=2",
        "agent.algorithm.num_learning_epochs=1", "agent.save_interval=1", "env.episode_length_s=0.3",
        # an untrained policy's offsets stay well inside the 0.5 mm per side play, so its demos succeed
        "agent.residual.mode=offset", "agent.residual.scale=[0.0001,0.0001,0.0001]"]


def _train(out, iterations: int, *extra: str, resume: bool = False):
    cfg = load_train_config([f"out={out}", f"agent.max_iterations={iterations}", *TINY, *extra]
                            + (["resume=true"] if resume else []))
    return train(cfg, progress=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rl") / "run"
    summary = _train(out, 2)
    return out, summary


def _venv(num_envs=2, episode_length_s=0.1):
    from rho.tasks.agents.plug_insertion_rsl_rl_ppo import PlugInsertionPPORunnerCfg
    from rho.tasks.rl.vecenv import RslRlVecEnv

    cfg = PlugInsertionCfg(num_envs=num_envs, episode_length_s=episode_length_s)
    cfg.cameras = {}
    cfg.action.mode = "ee_delta"
    return RslRlVecEnv(make_env("plug_insertion", cfg), PlugInsertionPPORunnerCfg())


def test_vecenv_shapes_dtypes_and_resets():
    venv = _venv()
    obs = venv.get_observations()
    assert obs["policy"].shape == (2, venv.spec.policy_dim) and obs["policy"].dtype == torch.float32
    assert obs["critic"].shape == (2, venv.spec.critic_dim)
    assert venv.num_actions == 2 and venv.max_episode_length == 5  # lateral mode; 0.1 s at 50 Hz
    for t in range(5):
        obs, rew, dones, extras = venv.step(torch.full((2, 2), 0.5))
        assert rew.shape == (2,) and rew.dtype == torch.float32 and torch.isfinite(rew).all()
        assert dones.dtype == torch.bool and extras["time_outs"].shape == (2,)
        assert "/reward/insert" in extras["log"]
        if t < 4:
            assert not dones.any() and (venv.episode_length_buf == t + 1).all()
    assert dones.all() and extras["time_outs"].all()  # time limit: truncated, bootstrapped by rsl-rl
    assert (venv.episode_length_buf == 0).all()  # autoreset: the new episodes' first observation
    assert (venv.spec.prev == 0).all() and (venv.expert.phase == 0).all()
    assert venv.episodes == 2 and venv.successes == 0
    assert [ok for ok, _ in venv.drain_finished()] == [False, False]
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 2\)"):
        venv.step(torch.zeros(2, 3))


def _outlet_frame(obs) -> np.ndarray:
    from rho.tasks.plug_insertion import _quats_to_mats

    return _quats_to_mats(obs["socket_pose"][:, 3:].astype(float))[0]


@pytest.mark.parametrize("mode", ["lateral", "offset"])
def test_policy_acts_only_in_active_phases_and_within_bounds(mode):
    from rho.tasks.agents.rsl_rl_cfg import ResidualCfg
    from rho.tasks.rl.residual import PlugInsertionResidual

    cfg = PlugInsertionCfg(num_envs=1, cameras={})
    cfg.action.mode = "ee_delta"
    env = make_env("plug_insertion", cfg)
    obs, _ = env.reset(seed=0)
    spec = PlugInsertionResidual(env, make_expert("scripted", env), ResidualCfg(mode=mode))
    base = make_expert("scripted", env)
    k = spec.num_actions
    assert k == (2 if mode == "lateral" else 3) and spec.policy_dim == 12 + k
    a = spec.env_action(obs, np.full((1, k), 5.0))  # approaching the plug: the expert alone
    assert (spec.prev == 0).all() and np.allclose(a, base.act(obs))
    spec.expert.phase[0, RIGHT] = base.phase[0, RIGHT] = 5  # pushing: the policy acts
    a = spec.env_action(obs, np.full((1, k), 5.0))
    ref = base.act(obs)
    assert (spec.prev == 1.0).all()  # clipped to [-1, 1]
    assert np.allclose(a[:, :7], ref[:, :7]) and np.allclose(a[:, 10:], ref[:, 10:])  # left arm, rotation, grip
    ro = _outlet_frame(obs)
    local, local_ref = ro.T @ a[0, 7:10], ro.T @ ref[0, 7:10]
    if mode == "lateral":  # y, z replaced by the policy's step (m), kept in the box; x left to the expert's push
        assert local[0] == pytest.approx(local_ref[0], abs=1e-9)
        est = obs["plug_in_socket"][0, 1:].astype(float) - spec.expert.error[0, 1:]
        assert local[1:] == pytest.approx(np.clip(est + 0.0005, -0.003, 0.003) - est, abs=1e-9)
        near = {**obs, "plug_in_socket": np.r_[obs["plug_in_socket"][0, 0], spec.expert.error[0, 1:]][None]}
        a = spec.env_action(near, np.full((1, k), 1.0))  # on the estimated axis: a free step of 0.5 mm
        assert (_outlet_frame(obs).T @ a[0, 7:10])[1:] == pytest.approx([0.0005, 0.0005], abs=1e-9)
    else:
        assert local - local_ref == pytest.approx([0.0025] * 3, abs=1e-9)


def test_unknown_reward_terms_fail_clearly():
    from rho.tasks.agents.plug_insertion_rsl_rl_ppo import PlugInsertionPPORunnerCfg
    from rho.tasks.rl.vecenv import RslRlVecEnv

    cfg = PlugInsertionCfg(num_envs=1, cameras={})
    cfg.action.mode = "ee_delta"
    agent = PlugInsertionPPORunnerCfg()
    agent.reward.step["sucess"] = 1.0
    with pytest.raises(ValueError, match=r"names \['sucess'\].*its terms: .*'success'"):
        RslRlVecEnv(make_env("plug_insertion", cfg), agent)


def test_train_writes_checkpoints_logs_and_config(run):
    out, summary = run
    assert summary["env_steps"] == 2 * 2 * 8
    for name in ("model_1.pt", "model_2.pt", "latest.pt", "config.yaml", "progress.jsonl"):
        assert (out / name).exists(), name
    rows = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2] and rows[-1]["env_steps"] == 32
    _, state, meta = load_checkpoint(out)
    assert meta["task"] == "plug_insertion" and meta["iteration"] == 2 and meta["action_mode"] == "ee_delta"
    assert state["iter"] == 2 and meta["env"]["clearance"] == pytest.approx(0.001)
    with pytest.raises(ConfigError, match="already holds a run"):
        _train(out, 3)


def test_resume_continues_exactly_from_the_checkpoint(run, tmp_path):
    import shutil

    out, _ = run
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        shutil.copytree(out, d)
        (d / "latest.pt").write_bytes((out / "model_1.pt").read_bytes())  # as if killed after iteration 1
        (d / "model_2.pt").unlink()
    s = _train(a, 2, resume=True)
    assert s["resumed_from"] == 1 and s["env_steps"] == 32
    _train(b, 2, resume=True)
    wa, wb = (torch.load(d / "model_2.pt", weights_only=True) for d in (a, b))  # no pickle needed
    for k, v in wa["actor_state_dict"].items():  # resumed runs are deterministic
        assert torch.equal(v, wb["actor_state_dict"][k]), k
    assert wa["optimizer_state_dict"]["state"][0]["step"] == 2 * 1 * 2  # epochs × mini-batches per iteration, ×2
    rows = [json.loads(x) for x in (a / "progress.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]  # the row logged after the last checkpoint was dropped


def test_resume_without_run_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match=r"config.yaml not found.*drop --resume"):
        load_train_config([f"out={tmp_path / 'nothing'}", "resume=true"])


def test_rl_expert_drives_datagen_and_records_itself(run, tmp_path):
    out, _ = run
    cfg = load_config(datagen_schema("plug_insertion"), yaml="datagen", overrides=[
        "task=plug_insertion", f"out={tmp_path / 'ds'}", "num_demos=1", "num_envs=1", f"expert=rl:{out}", "env.cameras={}",
        "max_attempts=3"])
    summary = generate(cfg, progress=False)
    assert summary["demos"] == 1
    problems, stats = tools.check(tmp_path / "ds")
    assert problems == [] and stats["success_rate"] == 1.0
    with Dataset(tmp_path / "ds") as ds:
        g = ds.group(0)
        assert g.attrs["expert"] == "plug_insertion_rl" and g.attrs["expert_version"].startswith("it2-")
        args = ds.env_args()
        assert args["expert"] == "plug_insertion_rl" and args["expert_rl"]["iteration"] == 2
        assert args["expert_rl"]["base_expert"] == "plug_insertion_scripted@1.0"
        assert args["env_config"]["action"]["mode"] == "ee_delta"
        # v2: the RL expert's ee_delta command beside the executed joint targets the dataset trains on
        assert args["action_mode"] == "joint_pos" and args["expert_action_mode"] == "ee_delta"
        assert g["expert_actions"].shape == g["actions"].shape == (g.attrs["num_samples"], 14)
    assert tools.replay(tmp_path / "ds")["bit_identical"]  # the joint targets replay the RL demo exactly


def test_rl_expert_refuses_wrong_task_and_mode(run):
    out, _ = run
    from rho.tasks.lift_block import LiftBlockCfg

    with pytest.raises(ValueError, match="trained on task 'plug_insertion', not 'lift_block'"):
        RlExpert(make_env("lift_block", LiftBlockCfg(cameras={})), out)
    cfg = PlugInsertionCfg(cameras={})  # joint_pos
    with pytest.raises(ValueError, match=r"action\.mode='ee_delta'"):
        RlExpert(make_env("plug_insertion", cfg), out)


def test_bad_expert_specs_fail_before_running(run, tmp_path):
    out, _ = run
    schema = datagen_schema("lift_block")
    with pytest.raises(ConfigError, match="trained on task 'plug_insertion', not task='lift_block'"):
        load_config(schema, overrides=[f"expert=rl:{out}"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(schema, overrides=[f"expert=rl:{tmp_path / 'missing.pt'}"])
    with pytest.raises(ConfigError, match="expert must be 'scripted' or 'rl:<checkpoint>'"):
        load_config(schema, overrides=["expert=ppo"])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot be read as a torch checkpoint"):
        load_config(schema, overrides=[f"expert=rl:{tmp_path / 'junk.pt'}"])


def test_cli_errors(tmp_path, capsys):
    assert main(["rl", "dance"]) == 2
    assert main(["rl", "train", "task=lift_block"]) == 2
    assert "no RL agent config" in capsys.readouterr().err
    assert main(["rl", "train", "agent.max_iteration=3"]) == 2
    assert "agent.max_iterations" in capsys.readouterr().err  # nearest-key hint
    assert main(["rl", "play", f"checkpoint={tmp_path}"]) == 2
    assert "without latest.pt" in capsys.readouterr().err


def test_eval_runs_rl_policy(run, tmp_path):
    from rho.eval.policies import load_policy

    out, _ = run
    pol = load_policy(f"rl:{out}")
    assert pol.supports("plug_insertion") is None and "drives 'plug_insertion'" in pol.supports("lift_block")
    assert pol.action_mode_for("plug_insertion") == "ee_delta"


@pytest.mark.render
def test_play_renders_and_reports(run, tmp_path):
    out, _ = run
    rc = main(["rl", "play", f"checkpoint={out}", "episodes=1", f"out={tmp_path / 'play'}", "frames=2",
               "width=64", "height=48", "video=false", "env.episode_length_s=0.2", "--json"])
    assert rc == 0
    summary = json.loads((tmp_path / "play" / "summary.json").read_text())
    assert summary["episodes"] == 1 and summary["episode_steps"] == [10]
    assert (tmp_path / "play" / "episodes.png").stat().st_size > 0


def test_agent_configs_import_without_torch():
    code = ("import sys, rho.tasks.agents.plug_insertion_rsl_rl_ppo as m; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "print(m.PlugInsertionPPORunnerCfg().to_rsl_rl()['algorithm']['class_name'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "PPO"
