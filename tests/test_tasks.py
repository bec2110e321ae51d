"""One contract test over every registered task, and the scripted experts."""

from __future__ import annotations

import numpy as np
import pytest

from rho.tasks import ALL_TASKS, get_task, make_env

TASKS = sorted(ALL_TASKS)


def _small(name: str, num_envs: int = 2):
    cfg = ALL_TASKS[name].cfg_cls(num_envs=num_envs, seed=0)
    cfg.cameras = {}
    return cfg


@pytest.mark.parametrize("name", TASKS)
def test_task_contract(name):
    """Build, seeded reset, random steps: observations match the spec, no NaN, finite rewards, determinism."""
    runs = []
    for _ in range(2):
        env = make_env(name, _small(name))
        obs, info = env.reset(seed=11)
        rng = np.random.default_rng(0)
        trace = [obs]
        space = env.single_action_space
        for _ in range(10):
            a = rng.uniform(space.low, space.high, (env.num_envs, space.shape[0]))
            obs, rew, _term, _trunc, info = env.step(a)
            assert env.obs_spec.check(obs, batch=env.num_envs) == []
            assert np.isfinite(rew).all()
            assert rew.shape == (env.num_envs,)
            assert all(np.isfinite(v).all() for v in info["reward_terms"].values())
            m = env.evaluate()
            assert m["success"].dtype == bool
            assert ((m["progress"] >= 0) & (m["progress"] <= 1)).all()
            trace.append(obs)
        assert all(env.instruction(i) for i in range(env.num_envs))
        runs.append(trace)
    for a, b in zip(*runs, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    doc = ALL_TASKS[name].env_cls.__module__
    import sys

    text = sys.modules[doc].__doc__
    for heading in ("Task description:", "Randomizations", "Success conditions:"):
        assert heading in text, f"{name}: task docstring lacks {heading!r}"


@pytest.mark.parametrize("name", [n for n in TASKS if ALL_TASKS[n].expert_cls is not None])
def test_scripted_expert_succeeds(name):
    entry = ALL_TASKS[name]
    cfg = _small(name, num_envs=4)
    cfg.action.mode = entry.expert_action_mode
    env = make_env(name, cfg)
    expert = entry.expert_cls(env)
    obs, _ = env.reset(seed=2)
    results: list[bool] = []
    for _ in range(int(env.max_episode_steps) + 5):
        obs, _, term, trunc, info = env.step(expert.act(obs))
        done = term | trunc
        if done.any():
            results += info["final_info"]["success"][done].tolist()
            expert.reset(np.flatnonzero(done))
        if len(results) >= 8:
            break
    assert len(results) >= 8
    assert np.mean(results) >= 0.9


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.filterwarnings("ignore:.*symmetric and normalized space")  # actions are in SI units, by design
def test_gymnasium_env_checker(name):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    env = gym.make(ALL_TASKS[name].gym_id, cfg=_small(name, num_envs=1))
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("name", TASKS)
def test_success_not_trivially_true_at_reset(name):
    env = make_env(name, _small(name, num_envs=4))
    env.reset(seed=0)
    assert not env.evaluate()["success"].any()


def test_wilson_interval():
    from rho.tasks.run_expert import wilson_interval

    lo, hi = wilson_interval(95, 100)
    assert lo == pytest.approx(0.8882, abs=1e-3)
    assert hi == pytest.approx(0.9785, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_lookup_suggests():
    with pytest.raises(KeyError, match="Did you mean 'lift_block'"):
        get_task("lift_blok")
    assert get_task("rho/LiftBlock-v0").name == "lift_block"
