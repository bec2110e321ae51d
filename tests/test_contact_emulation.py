"""The contact-sensor emulation the Isaac Lab backend uses for touch reproduces MuJoCo's own `<contact>` sensors."""

import mujoco
import numpy as np

from rho.sim.isaaclab.contacts import fill_contact_sensors
from rho.tasks import get_task


def _emulated(env, m, d) -> np.ndarray:
    nc = d.ncon
    force = np.zeros((nc, 3))
    for k in range(nc):
        f6 = np.zeros(6)
        mujoco.mj_contactForce(m, d, k, f6)
        force[k] = f6[:3]
    out = np.zeros((1, m.nsensordata))
    fill_contact_sensors(out, np.zeros(nc, int), d.contact.geom[:nc], d.contact.pos[:nc], d.contact.frame[:nc], force,
                         env.pad_geoms, env.cfg.sim.contact_slots, env.contact_idx.start, env.net_idx.start)
    return out[0]


def test_contact_sensor_emulation_matches_mujoco():
    entry = get_task("lift_block")
    cfg = entry.cfg_cls()
    cfg.num_envs, cfg.cameras = 2, {}
    cfg.action.mode = entry.expert_action_mode
    env = entry.env_cls(cfg)
    expert = entry.expert_cls(env)
    obs, _ = env.reset(seed=3)
    m, d = env.model, mujoco.MjData(env.model)
    idx = np.r_[env.contact_idx.start:env.contact_idx.stop, env.net_idx.start:env.net_idx.stop]
    touched = 0
    for _ in range(25):
        obs, *_ = env.step(expert.act(obs))
        for i in range(env.num_envs):
            env.batch.get_data(i, d)
            mujoco.mj_forward(m, d)
            ref = d.sensordata[idx]
            touched += int(np.abs(ref).max() > 0.1)
            np.testing.assert_allclose(_emulated(env, m, d)[idx], ref, atol=1e-9)
    env.close()
    assert touched >= 5, "the expert should have grasped the block (pads in contact) within 25 steps"


def test_contact_sensor_emulation_second_geom_and_slots():
    """A pad as the contact's second geom flips normal and tangent; more contacts than slots keep the strongest."""
    pad = 7
    geom = np.array([[pad, 1], [2, pad], [pad, 3], [pad, 4]])
    frame = np.tile(np.eye(3).ravel(), (4, 1))
    force = np.array([[1.0, 0.1, 0.0], [3.0, 0.0, 0.2], [2.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    pos = np.arange(12.0).reshape(4, 3)
    out = np.zeros((1, 2 * 12 + 3))
    fill_contact_sensors(out, np.zeros(4, int), geom, pos, frame, force, np.array([pad]), 2, 0, 24)
    s0, s1 = out[0, :12], out[0, 12:24]
    np.testing.assert_allclose(s0[:3], force[1])  # strongest first, force kept in the contact frame
    np.testing.assert_allclose(s0[6:9], [-1, 0, 0])  # pad is geom2: normal negated
    np.testing.assert_allclose(s1[:3], force[2])
    net = force[[0, 2, 3]].sum(0) * [1, 1, 1] + (-force[1])  # world vectors (identity frames), geom2 flipped
    np.testing.assert_allclose(out[0, 24:], net)
