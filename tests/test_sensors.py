"""Tests for rho.sim.sensors: rate/latency/history semantics, noise, clipping, dead taxels, resets, validation."""

from __future__ import annotations

import numpy as np
import pytest

from rho.sim.sensors import SensorCfg, SensorChannel, rate_to_period_steps


def rngs_for(seeds):
    return [np.random.default_rng(s) for s in seeds]


def ramp(step, num_envs, shape):
    """Distinct clean sample per (step, env): value = 100 * step + env (every element)."""
    vals = 100.0 * step + np.arange(num_envs, dtype=np.float64)
    return np.broadcast_to(vals.reshape((num_envs,) + (1,) * len(shape)), (num_envs, *shape)).copy()


# ---------------------------------------------------------------- latency / history / rate


@pytest.mark.parametrize("latency_s", [0.0, 0.01, 0.03, 0.049])
def test_latency_delivers_sample_from_k_ago(latency_s):
    period = 0.01
    ch = SensorChannel("f", SensorCfg(rate_hz=100.0, latency_s=latency_s), (3,), 2, period)
    k = round(latency_s / period)
    assert ch.latency_samples == k
    assert ch.latency_effective_s == pytest.approx(k * period)
    rngs = rngs_for([0, 1])
    init = np.full((2, 3), -7.0)
    ch.reset(np.arange(2), rngs, initial=init)
    for n in range(1, 12):
        ch.push(ramp(n, 2, (3,)), rngs)
        out = ch.read()
        assert out.shape == (2, 3)
        assert out.dtype == np.float32
        expected = ramp(n - k, 2, (3,)) if n - k >= 1 else init  # before k samples exist: the initial one
        np.testing.assert_array_equal(out, expected)


def test_latency_rounds_to_nearest_sample():
    def lat(latency_s, period):
        return SensorChannel("x", SensorCfg(latency_s=latency_s), (1,), 1, period).latency_samples

    assert lat(0.014, 0.01) == 1
    assert lat(0.015, 0.01) == 2  # half rounds up
    assert lat(0.03, 0.01) == 3  # 0.03 / 0.01 == 2.9999999999999996 in floats
    assert lat(0.004, 0.01) == 0


def test_sample_and_hold_between_pushes():
    ch = SensorChannel("f", SensorCfg(noise_std=0.1), (2,), 1, 0.01)
    rngs = rngs_for([3])
    ch.reset(np.arange(1), rngs)
    ch.push(np.ones((1, 2)), rngs)
    a, b = ch.read(), ch.read()
    np.testing.assert_array_equal(a, b)  # no fresh noise when no new sample was taken
    a[...] = 123.0  # returned array is the caller's: buffers unaffected
    np.testing.assert_array_equal(ch.read(), b)


def test_history_oldest_first_newest_last_with_latency():
    ch = SensorChannel("touch", SensorCfg(latency_s=0.02), (2, 2), 3, 0.01, history=4)
    assert ch.latency_samples == 2
    rngs = rngs_for([0, 1, 2])
    init = np.full((3, 2, 2), -1.0)
    ch.reset(np.arange(3), rngs, initial=init)
    out = ch.read()
    assert out.shape == (3, 4, 2, 2)
    np.testing.assert_array_equal(out, np.broadcast_to(init[:, None], out.shape))
    for n in range(1, 10):
        ch.push(ramp(n, 3, (2, 2)), rngs)
        out = ch.read()
        for j in range(4):  # j = 0 oldest ... 3 newest
            age = 2 + (3 - j)
            expected = ramp(n - age, 3, (2, 2)) if n - age >= 1 else init
            np.testing.assert_array_equal(out[:, j], expected)
    prev = ch.read()
    prev[...] = 0.0  # read() returns a new array
    assert ch.read()[0, -1, 0, 0] == ramp(7, 3, (2, 2))[0, 0, 0]


def test_history_one_matches_last_of_history():
    cfg = SensorCfg(latency_s=0.01, noise_std=0.2)
    a = SensorChannel("a", cfg, (3,), 2, 0.01, history=1)
    b = SensorChannel("b", cfg, (3,), 2, 0.01, history=3)
    ra, rb = rngs_for([5, 6]), rngs_for([5, 6])
    a.reset(np.arange(2), ra)
    b.reset(np.arange(2), rb)
    for n in range(5):
        a.push(ramp(n, 2, (3,)), ra)
        b.push(ramp(n, 2, (3,)), rb)
        np.testing.assert_array_equal(a.read(), b.read()[:, -1])


def test_float64_dtype_and_input_cast():
    ch = SensorChannel("q", SensorCfg(noise_std=0.1), (2,), 1, 0.002, dtype=np.float64)
    rngs = rngs_for([0])
    ch.reset(np.arange(1), rngs)
    ch.push(np.zeros((1, 2), dtype=np.float32), rngs)
    assert ch.read().dtype == np.float64


# ---------------------------------------------------------------- noise


def test_noise_off_draws_nothing():
    ch = SensorChannel("f", SensorCfg(), (4,), 2, 0.01)
    rngs = rngs_for([0, 1])
    state = [r.bit_generator.state for r in rngs]
    ch.reset(np.arange(2), rngs, initial=np.ones((2, 4)))
    x = np.random.default_rng(9).normal(size=(2, 4))
    ch.push(x, rngs)
    np.testing.assert_array_equal(ch.read(), x.astype(np.float32))
    assert [r.bit_generator.state for r in rngs] == state


def test_additive_noise_statistics():
    ch = SensorChannel("f", SensorCfg(noise_std=0.5), (50,), 2, 0.01)
    rngs = rngs_for([11, 12])
    ch.reset(np.arange(2), rngs)
    clean = np.full((2, 50), 3.0)
    samples = []
    for _ in range(200):
        ch.push(clean, rngs)
        samples.append(ch.read())
    err = np.stack(samples) - 3.0  # 20000 samples per env
    assert abs(err.mean()) < 0.02
    for e in range(2):
        assert err[:, e].std() == pytest.approx(0.5, rel=0.03)
    assert not np.array_equal(err[:, 0], err[:, 1])  # envs get independent noise


def test_relative_noise_statistics():
    ch = SensorChannel("f", SensorCfg(noise_rel=0.1), (100,), 1, 0.01)
    rngs = rngs_for([4])
    ch.reset(np.arange(1), rngs)
    clean = np.concatenate([np.full(50, 2.0), np.full(50, -10.0)])[None]
    out = []
    for _ in range(200):
        ch.push(clean, rngs)
        out.append(ch.read()[0])
    out = np.stack(out)
    assert out[:, :50].std() == pytest.approx(0.2, rel=0.05)  # 0.1 * |2|
    assert out[:, 50:].std() == pytest.approx(1.0, rel=0.05)  # 0.1 * |-10|
    assert out[:, :50].mean() == pytest.approx(2.0, abs=0.01)


def test_noise_reproducible_regardless_of_batch_position():
    cfg = SensorCfg(noise_std=0.3, noise_rel=0.05, latency_s=0.02, dead_fraction=0.25, quantization=0.01)
    shape = (4, 4, 3)
    solo = SensorChannel("t", cfg, shape, 1, 0.01, element_dims=2, history=2)
    batch = SensorChannel("t", cfg, shape, 3, 0.01, element_dims=2, history=2)
    r_solo = rngs_for([42])
    r_batch = rngs_for([7, 42, 8])  # the seed-42 episode runs in slot 1 of the batch
    init = np.random.default_rng(0).uniform(0, 1, size=(3, *shape))
    solo.reset(np.array([0]), r_solo, initial=init[1:2])
    batch.reset(np.arange(3), r_batch, initial=init)
    np.testing.assert_array_equal(solo.dead_mask[0], batch.dead_mask[1])
    src = np.random.default_rng(1)
    for _ in range(10):
        clean = src.uniform(0, 2, size=(3, *shape))
        solo.push(clean[1:2], r_solo)
        batch.push(clean, r_batch)
        np.testing.assert_array_equal(solo.read()[0], batch.read()[1])


def test_noise_uses_only_passed_generators():
    cfg = SensorCfg(noise_std=1.0)
    outs = []
    for global_seed in (0, 1):
        np.random.seed(global_seed)  # noqa: NPY002 -- deliberately perturb the legacy global state
        before = np.random.get_state()[1].copy()  # noqa: NPY002
        ch = SensorChannel("f", cfg, (5,), 1, 0.01)
        rngs = rngs_for([3])
        ch.reset(np.arange(1), rngs)
        ch.push(np.zeros((1, 5)), rngs)
        outs.append(ch.read())
        np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002 -- global state untouched
    np.testing.assert_array_equal(outs[0], outs[1])


# ---------------------------------------------------------------- saturation / nonneg / quantization


def test_saturation_symmetric():
    ch = SensorChannel("tau", SensorCfg(saturation=2.0), (4,), 1, 0.01)
    rngs = rngs_for([0])
    ch.reset(np.arange(1), rngs)
    ch.push(np.array([[-5.0, -1.5, 1.0, 9.0]]), rngs)
    np.testing.assert_array_equal(ch.read(), [[-2.0, -1.5, 1.0, 2.0]])


def test_nonneg_clips_noise_at_zero_and_saturates():
    ch = SensorChannel("fn", SensorCfg(noise_std=1.0, saturation=1.5), (1000,), 1, 0.01, nonneg=True)
    rngs = rngs_for([0])
    ch.reset(np.arange(1), rngs)
    ch.push(np.full((1, 1000), 0.5), rngs)
    out = ch.read()
    assert out.min() == 0.0
    assert out.max() == 1.5
    assert (out == 0.0).mean() > 0.2  # P(0.5 + N(0,1) < 0) ~ 0.31
    assert (out == 1.5).mean() > 0.1  # P(0.5 + N(0,1) > 1.5) ~ 0.16


def test_nonneg_without_saturation():
    ch = SensorChannel("fn", SensorCfg(noise_std=1.0), (500,), 1, 0.01, nonneg=True)
    rngs = rngs_for([1])
    ch.reset(np.arange(1), rngs)
    ch.push(np.zeros((1, 500)), rngs)
    out = ch.read()
    assert out.min() == 0.0
    assert out.max() > 1.0


def test_quantization():
    ch = SensorChannel("adc", SensorCfg(quantization=0.25), (5,), 1, 0.01)
    rngs = rngs_for([0])
    ch.reset(np.arange(1), rngs)
    ch.push(np.array([[0.1, 0.2, -0.6, 1.01, 3.0]]), rngs)
    np.testing.assert_allclose(ch.read(), [[0.0, 0.25, -0.5, 1.0, 3.0]])


def test_quantize_before_saturate_and_noise_on_grid():
    ch = SensorChannel("adc", SensorCfg(noise_std=0.05, quantization=0.1, saturation=0.25), (200,), 1, 0.01)
    rngs = rngs_for([2])
    ch.reset(np.arange(1), rngs)
    ch.push(np.linspace(-1, 1, 200)[None], rngs)
    out = ch.read()[0].astype(np.float64)
    assert out.min() == pytest.approx(-0.25)
    assert out.max() == pytest.approx(0.25)
    inner = out[np.abs(out) < 0.249]
    np.testing.assert_allclose(inner / 0.1, np.round(inner / 0.1), atol=1e-5)


# ---------------------------------------------------------------- dead elements


def test_dead_fraction_count_channels_and_redraw():
    cfg = SensorCfg(dead_fraction=0.25, noise_std=0.1)
    ch = SensorChannel("taxels", cfg, (4, 4, 3), 3, 0.01, element_dims=2)
    assert ch.num_dead == 4
    rngs = rngs_for([0, 1, 2])
    ch.reset(np.arange(3), rngs, initial=np.ones((3, 4, 4, 3)))
    mask = ch.dead_mask
    assert mask.shape == (3, 4, 4)
    assert mask.dtype == bool
    assert (mask.sum(axis=(1, 2)) == 4).all()
    assert not all(np.array_equal(mask[0], mask[i]) for i in (1, 2))  # drawn per env
    for _ in range(3):
        ch.push(np.full((3, 4, 4, 3), 5.0), rngs)
        out = ch.read()
        assert (out[mask] == 0.0).all()  # every channel of a dead taxel, despite noise
        assert (np.abs(out[~mask] - 5.0) < 1.0).all()
    # also held in the initial fill
    ch.reset(np.arange(3), rngs_for([0, 1, 2]), initial=np.ones((3, 4, 4, 3)))
    assert (ch.read()[ch.dead_mask] == 0.0).all()
    # redrawn on reset with new generators
    ch.reset(np.arange(3), rngs_for([10, 11, 12]))
    new_mask = ch.dead_mask
    assert (new_mask.sum(axis=(1, 2)) == 4).all()
    assert not np.array_equal(new_mask, mask)


def test_dead_mask_property_is_a_copy():
    ch = SensorChannel("t", SensorCfg(dead_fraction=0.5), (2, 2), 1, 0.01, element_dims=1)
    ch.reset(np.arange(1), rngs_for([0]))
    m = ch.dead_mask
    m[...] = True
    assert ch.dead_mask.sum() == 1


def test_no_dead_elements_by_default():
    ch = SensorChannel("f", SensorCfg(), (3,), 2, 0.01)
    assert ch.dead_mask.shape == (2,)
    assert not ch.dead_mask.any()


def test_dead_fraction_needs_element_dims():
    with pytest.raises(ValueError, match="element_dims"):
        SensorChannel("f", SensorCfg(dead_fraction=0.1), (3,), 1, 0.01)


# ---------------------------------------------------------------- resets


def test_reset_subset_leaves_other_envs_untouched():
    cfg = SensorCfg(noise_std=0.1, latency_s=0.02, dead_fraction=0.25)
    ch = SensorChannel("t", cfg, (2, 2, 3), 3, 0.01, history=2, element_dims=2)
    rngs = rngs_for([0, 1, 2])
    ch.reset(np.arange(3), rngs)
    for n in range(1, 6):
        ch.push(ramp(n, 3, (2, 2, 3)), rngs)
    before = ch.read()
    mask_before = ch.dead_mask
    buf_before = ch._buf.copy()
    init = np.full((1, 2, 2, 3), 9.0)
    ch.reset(np.array([1]), rngs_for([99]), initial=init)
    after = ch.read()
    for e in (0, 2):
        np.testing.assert_array_equal(after[e], before[e])
        np.testing.assert_array_equal(ch.dead_mask[e], mask_before[e])
        np.testing.assert_array_equal(ch._buf[e], buf_before[e])
    # the reset env delivers its (corrupted) initial reading in every slot until the latency has elapsed
    alive = ~ch.dead_mask[1]
    assert (after[1][:, ch.dead_mask[1]] == 0.0).all()
    assert (np.abs(after[1][:, alive] - 9.0) < 1.0).all()
    np.testing.assert_array_equal(after[1][0], after[1][1])  # one corrupted initial sample, held
    # without initial: zeros
    ch.reset(np.array([2]), rngs_for([5]))
    assert (ch.read()[2] == 0.0).all()
    # after enough pushes env 1 delivers post-reset samples again
    for n in range(6, 9):
        ch.push(ramp(n, 3, (2, 2, 3)), rngs)
    assert (np.abs(ch.read()[1][-1][alive] - ramp(6, 3, (2, 2, 3))[1][alive]) < 1.0).all()


def test_reset_argument_checks():
    ch = SensorChannel("f", SensorCfg(), (3,), 2, 0.01)
    with pytest.raises(ValueError, match="generators"):
        ch.reset(np.array([0, 1]), rngs_for([0]))
    with pytest.raises(IndexError):
        ch.reset(np.array([2]), rngs_for([0]))
    with pytest.raises(ValueError, match="shape"):
        ch.reset(np.array([0]), rngs_for([0]), initial=np.zeros((2, 3)))
    ch.reset(np.array([], dtype=int), [])  # no-op


def test_push_shape_check():
    ch = SensorChannel("f", SensorCfg(), (3,), 2, 0.01)
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        ch.push(np.zeros((1, 3)), rngs_for([0]))


# ---------------------------------------------------------------- validation / config errors


def test_default_cfg_is_valid():
    assert SensorCfg().validate() == []
    assert (
        SensorCfg(rate_hz=100, latency_s=0.01, noise_std=0.1, saturation=5, quantization=0.01).validate()
        == []
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"rate_hz": 0.0}, "rate_hz must be > 0"),
        ({"rate_hz": -10.0}, "rate_hz must be > 0"),
        ({"latency_s": -0.01}, "latency_s must be >= 0"),
        ({"noise_std": -1.0}, "noise_std must be >= 0"),
        ({"noise_rel": -0.1}, "noise_rel must be >= 0"),
        ({"saturation": 0.0}, "saturation must be > 0"),
        ({"dead_fraction": 1.0}, "dead_fraction must be in [0, 1)"),
        ({"dead_fraction": -0.1}, "dead_fraction must be in [0, 1)"),
        ({"quantization": 0.0}, "quantization must be > 0"),
        ({"noise_std": float("nan")}, "noise_std must be finite"),
        ({"quantization": 2.0, "saturation": 1.0}, "larger than saturation"),
        ({"rate_hz": 100.0, "latency_s": 0.004}, "rounds to 0 samples"),
    ],
)
def test_validate_messages(kwargs, fragment):
    problems = SensorCfg(**kwargs).validate()
    assert len(problems) == 1, problems
    assert fragment in problems[0]


def test_validate_reports_all_problems():
    assert len(SensorCfg(noise_std=-1, noise_rel=-1, dead_fraction=2).validate()) == 3


def test_channel_rejects_invalid_cfg_and_args():
    with pytest.raises(ValueError, match="rate_hz must be > 0"):
        SensorChannel("f", SensorCfg(rate_hz=0.0), (3,), 1, 0.01)
    with pytest.raises(ValueError, match="does not match rate_hz"):
        SensorChannel("f", SensorCfg(rate_hz=100.0), (3,), 1, 0.02)
    with pytest.raises(ValueError, match="history"):
        SensorChannel("f", SensorCfg(), (3,), 1, 0.01, history=0)
    with pytest.raises(ValueError, match="element_dims"):
        SensorChannel("f", SensorCfg(), (3,), 1, 0.01, element_dims=2)
    with pytest.raises(ValueError, match="dtype"):
        SensorChannel("f", SensorCfg(), (3,), 1, 0.01, dtype=np.int16)


# ---------------------------------------------------------------- rate_to_period_steps


@pytest.mark.parametrize(
    ("rate_hz", "physics_dt", "steps"),
    [(500.0, 0.002, 1), (100.0, 0.002, 5), (50.0, 0.002, 10), (1000.0 / 3.0, 0.001, 3), (60.0, 1 / 240, 4)],
)
def test_rate_to_period_steps(rate_hz, physics_dt, steps):
    assert rate_to_period_steps(rate_hz, physics_dt) == steps


def test_rate_to_period_steps_uneven_rate_message():
    with pytest.raises(ValueError, match="does not divide") as exc:
        rate_to_period_steps(300.0, 0.002)
    msg = str(exc.value)
    assert "1.66667 physics steps" in msg
    assert "whole number" in msg
    assert "500 Hz (1 steps)" in msg
    assert "250 Hz (2 steps)" in msg


@pytest.mark.parametrize(
    ("rate_hz", "physics_dt", "fragment"),
    [
        (1000.0, 0.002, "faster than the physics rate"),
        (0.0, 0.002, "rate_hz must be a finite rate > 0"),
        (-5.0, 0.002, "rate_hz must be a finite rate > 0"),
        (100.0, 0.0, "physics_dt must be"),
    ],
)
def test_rate_to_period_steps_errors(rate_hz, physics_dt, fragment):
    with pytest.raises(ValueError, match=fragment):
        rate_to_period_steps(rate_hz, physics_dt)


# ---------------------------------------------------------------------------- per-episode randomization


def test_set_episode_noise_scale_scales_std():
    cfg = SensorCfg(noise_std=0.5)
    ch = SensorChannel("s", cfg, (2000,), num_envs=2, sample_period_s=0.01)
    rngs = [np.random.default_rng(0), np.random.default_rng(1)]
    ch.reset(np.arange(2), rngs)
    ch.set_episode(np.array([1]), noise_scale=np.array([3.0]))
    ch.push(np.zeros((2, 2000)), rngs)
    out = ch.read()
    assert out[0].std() == pytest.approx(0.5, rel=0.08)
    assert out[1].std() == pytest.approx(1.5, rel=0.08)


def test_set_episode_latency_per_env():
    cfg = SensorCfg(rate_hz=100.0, latency_s=0.01)  # 1 sample
    ch = SensorChannel("s", cfg, (1,), num_envs=2, sample_period_s=0.01, max_extra_latency_s=0.03, history=2)
    rngs = [np.random.default_rng(0)] * 2
    ch.reset(np.arange(2), rngs)
    ch.set_episode(np.array([1]), extra_latency_s=np.array([0.02]))  # env 1: 1 + 2 = 3 samples
    for v in range(1, 7):
        ch.push(np.full((2, 1), float(v)), rngs)
    out = ch.read()[..., 0]  # (2, history): oldest first
    assert out[0].tolist() == [4.0, 5.0]  # newest delivered = 6 - 1
    assert out[1].tolist() == [2.0, 3.0]  # newest delivered = 6 - 3
    np.testing.assert_array_equal(ch.episode_latency_samples, [1, 3])
    with pytest.raises(ValueError, match="extra latency"):
        ch.set_episode(np.array([0]), extra_latency_s=np.array([0.05]))
