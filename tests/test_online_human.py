"""The human corrector (issue 13, the person's path), headless: recorded device/key events replayed step by step
drive takeover, arm motion, the gripper and hand-back deterministically on lift_block; the mapping (deadzone, key
holds, button edges, device frame); the recorder's files replay to the same actions; refusals (no display, no
pyspacemouse, num_envs > 1, bad replay files). A physical SpaceMouse and the viewer window are not exercised here."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from rho.config import ConfigError, load_config

TAKE, BACK, GRIP_AT, END = 5, 35, 25, 50  # the recorded session: take over, +x, close the gripper, hand back


def _events(path, extra=()):
    events = [{"step": TAKE, "keys": ["ENTER"]}, {"step": TAKE, "axes": [1, 0, 0, 0, 0, 0]},
              {"step": GRIP_AT, "axes": [0, 0, 0, 0, 0, 0], "buttons": [1, 0]},  # button 0: gripper
              {"step": GRIP_AT + 1, "buttons": [0, 0]}, {"step": BACK, "buttons": [0, 1]}, *extra]  # button 1: takeover
    path.write_text(json.dumps({"format": "rho.human_events/1", "events": events}))
    return path


def _corrector_cfg(**human):
    from rho.online.config import CorrectorCfg

    return load_config(CorrectorCfg, overrides=["kind=human", "human.device=replay", "human.viewer=false"]
                       + [f"human.{k}={v}" for k, v in human.items()])


def _lift_env(num_envs: int = 1):
    from rho.tasks import get_task

    entry = get_task("lift_block")
    cfg = load_config(entry.cfg_cls, overrides=[f"num_envs={num_envs}", "seed=5", "cameras={}",
                                                "action.mode=joint_pos"])
    return entry.env_cls(cfg)


def _drive(corrector_cfg, steps: int = END):
    """The session loop of online.session.collect with a policy that holds its last joint targets: per step, who
    drove, the executed joint actions and the TCP poses (n=1)."""
    from rho.online.human import HumanCorrector

    env = _lift_env()
    corr = HumanCorrector(corrector_cfg, env)
    obs, _ = env.reset()
    corr.reset(np.arange(1))
    flags, executed, tcp = [], [], [env.ee_pose()[0].copy()]
    progress = np.zeros(1)
    try:
        for _ in range(steps):
            planned = env.joint_action.copy()  # the "policy": hold
            corr.observe(obs, progress, planned)
            driving = corr.in_control()
            actions = planned.copy()
            if driving.any():
                actions[driving] = corr.actions(np.flatnonzero(driving))
            obs, _, _, _, info = env.step(actions)
            progress = np.asarray(info["progress"], np.float64)
            flags.append(bool(driving[0]))
            executed.append(info["joint_action"][0].copy())
            tcp.append(env.ee_pose()[0].copy())
    finally:
        corr.close()
        env.close()
    return np.array(flags), np.array(executed), np.array(tcp), corr


def test_replayed_events_take_over_move_plus_x_close_the_gripper_and_hand_back(tmp_path):
    cfg = _corrector_cfg(replay_file=_events(tmp_path / "ev.json"))
    flags, executed, tcp, corr = _drive(cfg)
    # the intervention window: Enter at step 5 to the takeover button at step 35 (that step back to the policy)
    np.testing.assert_array_equal(np.flatnonzero(flags), np.arange(TAKE, BACK))
    assert corr.fired == ["human"] and corr.name == "human:replay"
    left, right = tcp[:, 0, :3], tcp[:, 1, :3]  # (steps + 1, 3) TCP positions (m), arm 0 = left (selected)
    moved = left[GRIP_AT] - left[TAKE]
    # 20 steps of full +x deflection at the default gain 0.005 m/step: ~0.1 m commanded
    assert moved[0] > 0.06, f"the left TCP moved {moved} m, expected mostly +x"
    assert abs(moved[1]) < 0.01 and abs(moved[2]) < 0.01
    assert np.abs(right[BACK] - right[TAKE]).max() < 0.005  # the other arm held its pose
    # gripper (the joint_pos layout's 7th value of the left arm): policy's opening, then closed by button 0
    grip = executed[:, 6]
    assert grip[GRIP_AT - 1] > 0.5 and np.all(grip[GRIP_AT:BACK] == 0.0)
    # while the policy drives again the TCP stays where the person left it (the hold-policy)
    assert np.abs(left[END] - left[BACK]).max() < 0.01


def test_the_replay_is_deterministic_and_recording_replays_to_the_same_actions(tmp_path):
    ev = _events(tmp_path / "ev.json", extra=[{"step": 12, "keys": ["A"]}, {"step": 14, "keys": ["A", "UP"]}])
    rec = tmp_path / "rec" / "recorded.json"
    f1, a1, _, _ = _drive(_corrector_cfg(replay_file=ev, record_file=rec))
    f2, a2, _, _ = _drive(_corrector_cfg(replay_file=ev))
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(a1, a2)  # bit-identical
    saved = json.loads(rec.read_text())
    assert saved["format"] == "rho.human_events/1" and saved["device"] == "replay"
    assert {"step": TAKE, "keys": ["ENTER"], "axes": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]} in saved["events"]
    f3, a3, _, _ = _drive(_corrector_cfg(replay_file=rec))  # the recording replays to the same session
    np.testing.assert_array_equal(f1, f3)
    np.testing.assert_array_equal(a1, a3)


def test_mapping_deadzone_key_holds_button_edges_and_device_frame():
    from rho.online.config import HumanCfg
    from rho.online.human import KEY_CODES, DeviceInput, TeleopMapper

    m = TeleopMapper(load_config(HumanCfg, overrides=["deadzone=0.2", "key_hold_steps=2"]))
    c = m.map(DeviceInput(axes=np.array([0.1, -0.6, 1.0, 0, 0, 0])))
    np.testing.assert_allclose(c.motion, [0, -0.5, 1.0, 0, 0, 0])  # below the deadzone: 0; rescaled beyond it
    c = m.map(DeviceInput(buttons=(1, 1, 0), keys=(KEY_CODES["PAGE_UP"], KEY_CODES["G"])))
    assert c.actions == ["gripper", "takeover", "gripper"] and c.motion[2] == 1.0
    c = m.map(DeviceInput(buttons=(1, 1, 1)))  # held buttons do not repeat; button 2 pressed: arm
    assert c.actions == ["arm"] and c.motion[2] == 1.0  # the key still holds (2 steps)
    assert m.map(DeviceInput()).motion[2] == 0.0
    turned = TeleopMapper(load_config(HumanCfg, overrides=["yaw_deg=90"])).map(DeviceInput(axes=np.array([1.0, 0, 0, 1.0, 0, 0])))
    np.testing.assert_allclose(turned.motion, [0, 1, 0, 0, 1, 0], atol=1e-12)  # device x is world y


def test_a_session_collect_records_the_human_intervention_window(tmp_path, monkeypatch):
    """online.session.collect with corrector.kind=human (replay, headless): the shard's per-step intervention
    flags are the replayed window, the trigger is "human"."""
    from rho.datagen.hdf5 import Dataset
    from rho.online import session as sess
    from rho.online.config import OnlineCfg
    from rho.policy import inference

    class HoldPolicy:  # acts like a policy that holds the measured joints
        def act(self, obs, texts):
            return np.asarray(obs["joint_pos"], np.float32).copy()

        def reset(self, env_ids=None):
            pass

    monkeypatch.setattr(inference.Policy, "load", classmethod(lambda cls, path: HoldPolicy()))
    cfg = load_config(OnlineCfg, overrides=[
        "policy=unused", f"out={tmp_path / 's'}", "task=lift_block", "num_envs=1", "corrector.kind=human",
        "corrector.human.device=replay", f"corrector.human.replay_file={_events(tmp_path / 'ev.json')}",
        "corrector.human.viewer=false", f"env={json.dumps({'cameras': {}, 'episode_length_s': 1.0})}"])
    stats = sess.collect(cfg, "unused", 0, 1, tmp_path / "shard.hdf5")
    assert stats["episodes"] == 1 and stats["interventions"] == 1 and stats["intervened_steps"] == BACK - TAKE
    with Dataset(tmp_path / "shard.hdf5") as ds:
        ep = ds.episode(0)
    np.testing.assert_array_equal(np.flatnonzero(ep.step_info["intervention"]), np.arange(TAKE, BACK))
    assert ep.meta["triggers"] == ["human"] and ep.meta["corrector"] == "human:replay"


def test_refusals_without_a_display_pyspacemouse_one_env_or_a_good_replay_file(tmp_path, monkeypatch):
    from rho.online import human
    from rho.online.config import CorrectorCfg, OnlineCfg

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(human.sys, "platform", "linux")
    for device in ("spacemouse", "keyboard"):
        cfg = load_config(CorrectorCfg, overrides=["kind=human", f"human.device={device}"])
        with pytest.raises(human.HumanInputError, match=r"needs a display.*DISPLAY.*Fix:.*device=replay"):
            human.preflight(cfg)
    # no viewer, no pyspacemouse: says how to install it (or to use the keyboard)
    monkeypatch.setitem(human.sys.modules, "pyspacemouse", None)  # import fails
    with pytest.raises(human.HumanInputError, match=r"pyspacemouse.*pip install 'rho\[online\]'.*hidapi"):
        human.preflight(load_config(CorrectorCfg, overrides=["kind=human", "human.viewer=false"]))
    # one person, one env: refused by the config and by the corrector
    with pytest.raises(ConfigError, match="num_envs must be 1, got 2"):
        load_config(OnlineCfg, overrides=["policy=p", "num_envs=2", "corrector.kind=human"])
    env = _lift_env(num_envs=2)
    try:
        with pytest.raises(human.HumanInputError, match=r"num_envs must be 1, got 2\. Fix: num_envs=1"):
            human.HumanCorrector(_corrector_cfg(replay_file=_events(tmp_path / "ev.json")), env)
    finally:
        env.close()
    # the replay file: missing, not the format, a bad event; replay without a file; keyboard without the viewer
    with pytest.raises(human.HumanInputError, match="no such file"):
        human.preflight(_corrector_cfg(replay_file=tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text(json.dumps({"events": []}))
    with pytest.raises(human.HumanInputError, match=r"expected an object with format 'rho\.human_events/1'"):
        human.preflight(_corrector_cfg(replay_file=tmp_path / "bad.json"))
    (tmp_path / "bad2.json").write_text(json.dumps({"format": "rho.human_events/1",
                                                    "events": [{"step": 1, "axes": [2, 0, 0], "keys": ["F13"]}]}))
    with pytest.raises(human.HumanInputError, match=r"(?s)events\[0\]: 'axes' is 6 numbers.*events\[0\]: key 'F13'"):
        human.preflight(_corrector_cfg(replay_file=tmp_path / "bad2.json"))
    with pytest.raises(ConfigError, match="device=replay needs the recorded events"):
        _corrector_cfg()
    with pytest.raises(ConfigError, match="keyboard reads the keys of MuJoCo's viewer"):
        load_config(CorrectorCfg, overrides=["kind=human", "human.device=keyboard", "human.viewer=false"])


@pytest.mark.skipif(not (os.environ.get("RHO_TEST_VIEWER")
                         and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))),
                    reason="opens MuJoCo's viewer window: set RHO_TEST_VIEWER=1 on a display (or under xvfb-run)")
def test_the_viewer_mirrors_the_env_takes_keys_and_stops_when_closed():
    """The keyboard device with MuJoCo's passive viewer: keys (pushed as the viewer's key_callback would) take
    over and move the left TCP in +x; closing the window stops the session with the resume hint."""
    from rho.online.config import CorrectorCfg
    from rho.online.human import KEY_CODES, HumanCorrector, HumanInputError

    env = _lift_env()
    corr = HumanCorrector(load_config(CorrectorCfg, overrides=["kind=human", "human.device=keyboard",
                                                               "human.realtime=0"]), env)
    try:
        assert corr.viewer is not None and corr.viewer.handle.is_running()
        obs, _ = env.reset()
        corr.reset(np.arange(1))
        for t in range(30):
            if t == 5:
                corr.device.keys.push(KEY_CODES["ENTER"])
            if t >= 5:
                corr.device.keys.push(KEY_CODES["UP"])
            planned = env.joint_action.copy()
            corr.observe(obs, np.zeros(1), planned)
            if t == 5:
                start = env.ee_pose()[0, 0, :3].copy()
            if corr.in_control()[0]:
                planned = corr.actions(np.arange(1))
            obs, *_ = env.step(planned)
        assert corr.control[0] and env.ee_pose()[0, 0, 0] - start[0] > 0.05
        corr.viewer.handle.close()
        time.sleep(0.5)
        with pytest.raises(HumanInputError, match=r"viewer window was closed.*resume"):
            corr.observe(obs, np.zeros(1), None)
    finally:
        corr.close()
        env.close()


def test_spacemouse_device_drains_hid_reports_through_pyspacemouse_api(monkeypatch):
    """SpaceMouseDevice against a stand-in for pyspacemouse 2.1's API (open(device, axis_convention) → an object
    whose read() applies one HID report per call and returns the state): a poll drains every pending report; the
    preflight refuses when no device is connected. (A physical device is not available here.)"""
    import types

    from rho.online import human
    from rho.online.config import CorrectorCfg

    class State:
        def __init__(self):
            self.t, self.x, self.y, self.z, self.roll, self.pitch, self.yaw = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
            self.buttons = [0, 0]

    class Dev:
        def __init__(self):
            self.state, self.reports, self.closed = State(), [], False

        def read(self):
            if self.reports:
                for k, v in self.reports.pop(0).items():
                    setattr(self.state, k, v)
                self.state.t += 0.001
            return self.state

        def close(self):
            self.closed = True

    dev, opened, connected = Dev(), {}, ["SpaceMouse Compact"]
    fake = types.SimpleNamespace(AxisConvention=types.SimpleNamespace(HID_Z_UP="hid_z_up"),
                                 open=lambda device=None, axis_convention=None: opened.update(
                                     device=device, axis_convention=axis_convention) or dev,
                                 get_connected_devices=lambda: connected)
    monkeypatch.setitem(human.sys.modules, "pyspacemouse", fake)
    cfg = load_config(CorrectorCfg, overrides=["kind=human", "human.viewer=false"])
    human.preflight(cfg)  # a device is connected: no refusal
    keys = human.KeyQueue()
    sm = human.SpaceMouseDevice(keys, "")
    assert opened == {"device": None, "axis_convention": "hid_z_up"}
    dev.reports = [{"x": 0.5}, {"buttons": [1, 0]}, {"z": -0.3, "yaw": 0.2}]
    keys.push(human.KEY_CODES["A"])
    inp = sm.poll(0)
    np.testing.assert_allclose(inp.axes, [0.5, 0, -0.3, 0, 0, 0.2])
    assert inp.buttons == (1, 0) and inp.keys == (human.KEY_CODES["A"],) and not dev.reports
    again = sm.poll(1)  # nothing new: the held state, no keys
    np.testing.assert_allclose(again.axes, inp.axes)
    assert again.keys == ()
    sm.close()
    assert dev.closed
    connected.clear()
    with pytest.raises(human.HumanInputError, match=r"expected a supported SpaceMouse connected, found none.*Fix:"):
        human.preflight(cfg)


def test_a_session_from_before_corrector_human_resumes(tmp_path):
    """state.json written before corrector.human existed (no 'human' under corrector) is not a settings change."""
    from rho.config import config_to_dict
    from rho.online import session as sess
    from rho.online.config import OnlineCfg

    cfg = load_config(OnlineCfg, overrides=["policy=p", f"out={tmp_path}"])
    saved = {k: config_to_dict(cfg)[k] for k in sess.SESSION_KEYS}
    del saved["corrector"]["human"]
    (tmp_path / sess.STATE).write_text(json.dumps({"session": saved, "round": 1, "checkpoint": "p", "episodes": 2,
                                                   "history": []}))
    assert sess._state(cfg, tmp_path)["round"] == 1
    human_cfg = load_config(OnlineCfg, overrides=["policy=p", f"out={tmp_path}", "corrector.kind=human",
                                                  "corrector.human.viewer=false"])
    with pytest.raises(sess.SessionError, match="corrector:"):
        sess._state(human_cfg, tmp_path)
