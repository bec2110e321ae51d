"""Tests for rho.config: YAML + override merging, typed results and all-at-once error reporting."""

import enum
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
from omegaconf import MISSING

from rho import config as rc
from rho.config import ConfigError, config_to_dict, config_to_yaml, load_config, parse_cli


class Arm(enum.Enum):
    LEFT = "left"
    RIGHT = "right"


@dataclass
class SimCfg:
    num_envs: int = 1
    backend: Literal["cpu", "gpu"] = "cpu"
    renderer: Optional[Literal["egl", "osmesa"]] = None  # noqa: UP045 -- Optional[...] on purpose
    cams: list[str] = field(default_factory=lambda: ["cam_high"])
    dt: float = 0.002


@dataclass
class RobotCfg:
    kp: float = 100.0
    arm: Arm = Arm.LEFT
    gains: tuple[float, ...] = (1.0, 2.0)
    weights: dict[str, float] = field(default_factory=dict)
    modes: list[Literal["pos", "vel"]] = field(default_factory=lambda: ["pos"])
    name: str = "aloha"

    def validate(self) -> list[str]:
        return ["kp must be positive"] if self.kp <= 0 else []


@dataclass
class PolicyCfg:
    hidden: int = 64
    head: Literal["mlp", "diffusion"] = "mlp"


@dataclass
class RolloutCfg:
    steps: int = 10
    sim: SimCfg = field(default_factory=SimCfg)
    robot: RobotCfg = field(default_factory=RobotCfg)
    policy: Optional[PolicyCfg] = None  # noqa: UP045
    headless: bool = True

    def validate(self) -> list[str]:
        problems = []
        if self.steps % self.sim.num_envs:
            problems.append(f"steps ({self.steps}) must be a multiple of sim.num_envs ({self.sim.num_envs})")
        return problems


@dataclass
class RequiredCfg:
    task: str = MISSING
    seed: int = MISSING
    sim: SimCfg = field(default_factory=SimCfg)


def write_yaml(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return excinfo.value.problems


# --------------------------------------------------------------------------- happy paths


def test_defaults_give_real_dataclass_instances() -> None:
    cfg = load_config(RolloutCfg)
    assert isinstance(cfg, RolloutCfg)
    assert isinstance(cfg.sim, SimCfg)
    assert cfg.robot.arm is Arm.LEFT
    assert cfg.robot.gains == (1.0, 2.0)
    assert cfg.policy is None


def test_yaml_then_overrides_take_precedence(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        steps: 40
        sim:
          num_envs: 2
          backend: gpu
        robot:
          kp: 250
        """,
    )
    cfg = load_config(RolloutCfg, yaml=path, overrides=["sim.num_envs=4", "robot.name=vx300s"])
    assert cfg.steps == 40  # from YAML
    assert cfg.sim.backend == "gpu"  # from YAML
    assert cfg.sim.num_envs == 4  # override beats YAML
    assert cfg.sim.dt == 0.002  # untouched default
    assert cfg.robot.kp == 250.0
    assert isinstance(cfg.robot.kp, float)
    assert cfg.robot.name == "vx300s"


def test_yaml_accepts_string_path(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "steps: 7\n")
    assert load_config(RolloutCfg, yaml=str(path)).steps == 7


def test_bare_name_resolves_to_bundled_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "rho_test_bundled_configs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    write_yaml(pkg, "steps: 12\nsim:\n  num_envs: 3\n", name="rollout.yaml")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(rc, "CONFIG_PACKAGE", "rho_test_bundled_configs")
    monkeypatch.delitem(sys.modules, "rho_test_bundled_configs", raising=False)
    cfg = load_config(RolloutCfg, yaml="rollout")
    assert (cfg.steps, cfg.sim.num_envs) == (12, 3)
    with pytest.raises(ConfigError, match=r"no such config file.*bundled config name \(rollout\)"):
        load_config(RolloutCfg, yaml="rollot")


def test_uninstalled_checkout_falls_back_to_repo_configs_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rc, "CONFIG_PACKAGE", "rho_no_such_config_package")
    root = rc._bundled_root()
    assert Path(str(root)) == Path(rc.__file__).resolve().parent.parent / "configs"


def test_override_values_are_parsed_as_yaml() -> None:
    cfg = load_config(
        RolloutCfg,
        overrides=[
            "sim.cams=[cam_high,cam_left_wrist]",
            "robot.kp=1e3",
            "headless=false",
            "robot.gains=[3,4.5]",
            "robot.weights={grip: 2, lift: 0.5}",
            "sim.renderer=egl",
        ],
    )
    assert cfg.sim.cams == ["cam_high", "cam_left_wrist"]
    assert cfg.robot.kp == 1000.0
    assert cfg.headless is False
    assert cfg.robot.gains == (3.0, 4.5)
    assert cfg.robot.weights == {"grip": 2.0, "lift": 0.5}
    assert cfg.sim.renderer == "egl"


def test_type_coercion() -> None:
    cfg = load_config(
        RolloutCfg, overrides=["steps=20", "sim.dt=1", "robot.arm=RIGHT", "robot.weights.grip=3"]
    )
    assert cfg.steps == 20
    assert isinstance(cfg.sim.dt, float)
    assert cfg.sim.dt == 1.0
    assert cfg.robot.arm is Arm.RIGHT
    assert cfg.robot.weights == {"grip": 3.0}


def test_text_fields_keep_yaml_11_words_verbatim() -> None:
    # YAML 1.1 reads `no` as False; a str field must still get "no", not "False".
    cfg = load_config(RolloutCfg, overrides=["robot.name=no", "sim.cams=[a]"])
    assert cfg.robot.name == "no"


def test_null_and_empty_values() -> None:
    cfg = load_config(RolloutCfg, overrides=["sim.renderer=egl", "sim.renderer=null", "robot.name="])
    assert cfg.sim.renderer is None
    assert cfg.robot.name == ""


def test_optional_nested_dataclass_can_be_filled(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "policy:\n  hidden: 128\n")
    cfg = load_config(RolloutCfg, yaml=path, overrides=["policy.head=diffusion"])
    assert cfg.policy == PolicyCfg(hidden=128, head="diffusion")


def test_override_into_optional_dataclass_that_is_none() -> None:
    cfg = load_config(RolloutCfg, overrides=["policy.head=diffusion"])
    assert cfg.policy == PolicyCfg(head="diffusion")
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["policy.hiden=3", "policy.head=rnn"])
    assert "Did you mean `policy.hidden`?" in problems_of(ei)[0]
    assert problems_of(ei)[1].startswith("policy.head: expected one of 'mlp', 'diffusion', got 'rnn'")


def test_interpolation_is_resolved() -> None:
    cfg = load_config(RolloutCfg, overrides=["steps=8", "sim.num_envs=${steps}"])
    assert cfg.sim.num_envs == 8


# --------------------------------------------------------------------------- error kinds


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_wrong_type() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["sim.num_envs=abc"])
    assert problems_of(ei) == [
        "sim.num_envs: expected int, got 'abc' (str). Fix: pass an integer, e.g. sim.num_envs=1"
    ]
    assert str(ei.value).startswith("Invalid configuration (1 problem):\n  - sim.num_envs: expected int")


def test_wrong_type_inside_dict_and_list() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["robot.weights.grip=x", "sim.cams=cam_high"])
    assert problems_of(ei)[0].startswith(
        "robot.weights.grip: expected float, got 'x' (str). Fix: pass a number"
    )
    assert problems_of(ei)[1].startswith(
        "sim.cams: expected list[str], got 'cam_high' (str). Fix: pass a list"
    )


def test_unknown_key_override_suggests_nearest_path() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["sim.nm_envs=4"])
    (msg,) = problems_of(ei)
    assert msg.startswith("sim.nm_envs: unknown key. Did you mean `sim.num_envs`?")
    assert "Valid keys under `sim`: num_envs, backend, renderer, cams, dt" in msg


def test_unknown_key_matches_on_last_component() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["num_envs=4", "policy.hiden=3"])
    first, second = problems_of(ei)
    assert "Did you mean `sim.num_envs`?" in first
    assert "Valid keys at top level: steps, sim, robot, policy, headless" in first
    assert "Did you mean `policy.hidden`?" in second


def test_unknown_key_without_close_match() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["zzzzqqq=1"])
    assert "Did you mean" not in problems_of(ei)[0]
    assert "Fix: remove it or use a valid key." in problems_of(ei)[0]


def test_unknown_key_in_yaml_names_the_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "sim:\n  num_env: 2\n  backnd: gpu\n")
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, yaml=path)
    first, second = problems_of(ei)
    assert first.startswith(f"sim.num_env (in {path}): unknown key. Did you mean `sim.num_envs`?")
    assert "Did you mean `sim.backend`?" in second


def test_sub_key_of_scalar() -> None:
    with pytest.raises(ConfigError, match=r"steps\.x: `steps` is int, it has no sub-keys\. Fix: .* steps=10"):
        load_config(RolloutCfg, overrides=["steps.x=1"])


def test_literal_rejected_with_allowed_values() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["sim.backend=tpu"])
    assert problems_of(ei) == [
        "sim.backend: expected one of 'cpu', 'gpu', got 'tpu' (str). Fix: use one of cpu, gpu, e.g. sim.backend=cpu"
    ]


def test_optional_literal_and_literal_inside_list_and_nested(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "policy:\n  head: transformer\n")
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, yaml=path, overrides=["sim.renderer=vulkan", "robot.modes=[pos,torque]"])
    msgs = problems_of(ei)
    assert msgs[0].startswith(
        f"policy.head (in {path}): expected one of 'mlp', 'diffusion', got 'transformer'"
    )
    assert msgs[1].startswith("sim.renderer: expected one of 'egl', 'osmesa' or null, got 'vulkan' (str)")
    assert msgs[2].startswith("robot.modes[1]: expected one of 'pos', 'vel', got 'torque' (str)")


def test_literal_is_type_strict(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "sim:\n  backend: 1\n")
    with pytest.raises(
        ConfigError, match=r"sim\.backend \(in .*\): expected one of 'cpu', 'gpu', got 1 \(int\)"
    ):
        load_config(RolloutCfg, yaml=path)
    # On the command line a text-only Literal gets the raw text, so `1` is compared as "1".
    with pytest.raises(ConfigError, match=r"got '1' \(str\)"):
        load_config(RolloutCfg, overrides=["sim.backend=1"])


def test_enum_rejected_with_allowed_names() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["robot.arm=middle"])
    assert problems_of(ei) == [
        "robot.arm: expected one of LEFT, RIGHT (Arm), got 'middle' (str). Fix: use one of LEFT, RIGHT, e.g. robot.arm=LEFT"
    ]


def test_malformed_overrides() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["steps", "=3", "sim..num_envs=2", "steps=[1,"])
    msgs = problems_of(ei)
    assert msgs[0] == (
        "'steps': malformed override, expected key=value. Fix: write it as `steps=<value>` (or `--steps` for a flag)"
    )
    assert msgs[1].startswith("'=3': malformed key")
    assert msgs[2].startswith("'sim..num_envs=2': malformed key")
    assert msgs[3].startswith("steps: could not parse value '[1,'")


def test_missing_required_values() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RequiredCfg, overrides=["sim.num_envs=2"])
    assert problems_of(ei) == [
        "task: required value is missing (expected str, got ???). Fix: set it in the YAML or pass task=value",
        "seed: required value is missing (expected int, got ???). Fix: set it in the YAML or pass seed=1",
    ]


def test_required_values_supplied_by_yaml(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "task: peg_insert\nseed: 3\n")
    cfg = load_config(RequiredCfg, yaml=path)
    assert (cfg.task, cfg.seed) == ("peg_insert", 3)


def test_null_for_non_optional_field() -> None:
    with pytest.raises(ConfigError, match=r"steps: expected int, got null\. Fix: pass an integer"):
        load_config(RolloutCfg, overrides=["steps=null"])


def test_broken_interpolation() -> None:
    with pytest.raises(ConfigError, match=r"sim\.num_envs: interpolation failed: .*'nope' not found"):
        load_config(RolloutCfg, overrides=["sim.num_envs=${nope}"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps: [1,\n", "could not parse"),
        ("- 1\n- 2\n", "expected a mapping at top level"),
        ("5\n", "could not parse"),
        ("steps: 1\nsteps: 2\n", "could not parse"),
    ],
)
def test_bad_yaml_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write_yaml(tmp_path, text)
    with pytest.raises(ConfigError, match=expected):
        load_config(RolloutCfg, yaml=path)


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such config file"):
        load_config(RolloutCfg, yaml=tmp_path / "nope.yaml")


def test_schema_must_be_a_dataclass_type() -> None:
    with pytest.raises(TypeError):
        load_config(dict)
    with pytest.raises(TypeError):
        load_config(RolloutCfg())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- all problems at once


def test_every_bad_path_is_reported_in_one_error(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "sim:\n  num_envs: many\nrobot:\n  kpp: 3\n")
    overrides = ["sim.nm_envs=4", "sim.backend=tpu", "robot.arm=up", "headless", "steps=abc"]
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, yaml=path, overrides=overrides)
    msgs = problems_of(ei)
    assert [m.split(":")[0] for m in msgs] == [
        f"sim.num_envs (in {path})",
        f"robot.kpp (in {path})",
        "sim.nm_envs",
        "sim.backend",
        "robot.arm",
        "'headless'",
        "steps",
    ]
    text = str(ei.value)
    assert text.startswith("Invalid configuration (7 problems):\n  - ")
    assert text.count("\n  - ") == 7


def test_missing_values_reported_with_other_problems() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RequiredCfg, overrides=["sim.num_envs=x", "sim.cams=???"])
    assert [m.split(":")[0] for m in problems_of(ei)] == ["sim.num_envs", "task", "seed", "sim.cams"]


# --------------------------------------------------------------------------- validate() hooks


def test_validate_hooks_collect_messages_with_paths() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["steps=10", "sim.num_envs=4", "robot.kp=-1"])
    assert problems_of(ei) == [
        "(root): steps (10) must be a multiple of sim.num_envs (4)",
        "robot: kp must be positive",
    ]


def test_validate_hooks_run_only_after_fields_are_valid() -> None:
    # A field error stops before cross-field checks, which would otherwise see half-applied values.
    with pytest.raises(ConfigError) as ei:
        load_config(RolloutCfg, overrides=["sim.num_envs=abc", "robot.kp=-1"])
    assert [m.split(":")[0] for m in problems_of(ei)] == ["sim.num_envs"]


def test_validate_hooks_pass() -> None:
    assert load_config(RolloutCfg, overrides=["steps=12", "sim.num_envs=4"]).steps == 12


@dataclass
class FingerCfg:
    stiffness: float = 1.0

    def validate(self) -> list[str]:
        return [] if self.stiffness > 0 else ["stiffness must be > 0"]


@dataclass
class HandCfg:
    fingers: list[FingerCfg] = field(default_factory=lambda: [FingerCfg(), FingerCfg()])


def test_validate_hooks_inside_lists() -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(HandCfg, overrides=["fingers=[{stiffness: 2}, {stiffness: -1}]"])
    assert problems_of(ei) == ["fingers[1]: stiffness must be > 0"]


def test_unknown_key_inside_list_of_dataclasses() -> None:
    with pytest.raises(
        ConfigError, match=r"fingers\[0\]\.stifness: unknown key\. Did you mean `fingers\[0\]\.stiffness`\?"
    ):
        load_config(HandCfg, overrides=["fingers=[{stifness: 2}]"])


# --------------------------------------------------------------------------- serialisation


def test_config_to_dict_is_plain() -> None:
    cfg = load_config(RolloutCfg, overrides=["robot.arm=RIGHT"])
    data = config_to_dict(cfg)
    assert data["robot"]["arm"] == "RIGHT"
    assert data["robot"]["gains"] == [1.0, 2.0]
    assert data["policy"] is None
    assert data["sim"] == {
        "num_envs": 1,
        "backend": "cpu",
        "renderer": None,
        "cams": ["cam_high"],
        "dt": 0.002,
    }


def test_config_to_yaml_round_trips(tmp_path: Path) -> None:
    cfg = load_config(
        RolloutCfg,
        overrides=["robot.arm=RIGHT", "policy.hidden=32", "robot.weights={a: 1}", "robot.name=no", "steps=4"],
    )
    text = config_to_yaml(cfg)
    assert "arm: RIGHT" in text
    path = tmp_path / "resolved.yaml"
    path.write_text(text)
    assert load_config(RolloutCfg, yaml=path) == cfg


# --------------------------------------------------------------------------- parse_cli


def test_parse_cli_splits_overrides_and_flags() -> None:
    assert parse_cli(["steps=100", "sim.num_envs=2", "--json"]) == (
        ["steps=100", "sim.num_envs=2"],
        ["--json"],
    )


def test_parse_cli_keeps_flag_values_with_their_flag() -> None:
    argv = ["--out", "runs/x", "steps=3", "--seed=4", "-v", "sim.cams=[a,b]"]
    assert parse_cli(argv) == (["steps=3", "sim.cams=[a,b]"], ["--out", "runs/x", "--seed=4", "-v"])


def test_parse_cli_passes_stray_words_to_load_config() -> None:
    overrides, flags = parse_cli(["steps100", "x=-1"])
    assert (overrides, flags) == (["steps100", "x=-1"], [])
    with pytest.raises(ConfigError, match="malformed override"):
        load_config(RolloutCfg, overrides=overrides[:1])


def test_parse_cli_double_dash_ends_overrides() -> None:
    assert parse_cli(["a=1", "--", "b=2", "--x"]) == (["a=1"], ["--", "b=2", "--x"])


def test_parse_cli_empty() -> None:
    assert parse_cli([]) == ([], [])


def test_cli_mapping_replaces_dict_field_yaml_merges(tmp_path):
    """`cameras={}` on the command line empties a dict field; `cameras={a: {...}}` replaces it, typed."""
    from rho.tasks.lift_block import LiftBlockCfg

    assert load_config(LiftBlockCfg, overrides=["cameras={}"]).cameras == {}
    cams = load_config(LiftBlockCfg, overrides=["cameras={cam_high: {width: 64}}"]).cameras
    assert list(cams) == ["cam_high"]
    assert cams["cam_high"].width == 64
    assert cams["cam_high"].height == 128  # defaults of the value type fill the rest
    y = tmp_path / "c.yaml"
    y.write_text("cameras:\n  cam_high: {width: 32}\n")
    merged = load_config(LiftBlockCfg, yaml=y).cameras
    assert set(merged) == {"cam_high", "cam_left_wrist", "cam_right_wrist"}
    assert merged["cam_high"].width == 32
