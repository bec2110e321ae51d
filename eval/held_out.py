"""What the `held_out` level changes per task, as tables keyed by task-name patterns (fnmatch); extend them with
`register_held_out(...)` when a task gains a held-out variation.

Environment overrides (applied to the task's config):
    busybox_*          layout_split=heldout: module layouts never drawn in training (`rho.assets.busybox.is_heldout`)
    plug_insertion*    plug_type=<held_out_plug>; nominal and shifted set held_out=<held_out_plug> instead, so the
                       training-distribution levels never draw it (train with `env.held_out=<type>` to match)

Instructions: no task exposes held-out instruction templates, so the evaluator paraphrases the episode's goal
with templates no task draws from (below), built from the values the task drew at reset (`env.episode_params`).
The policy receives the paraphrase; the record keeps both. A task missing from the table, or whose drawn values
lack a key, keeps its own instruction (`held_out_instruction: false` in the record).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Paraphrase = Callable[[dict[str, Any], int], str]


@dataclass(frozen=True)
class HeldOut:
    """One task pattern's held-out variation."""

    env: Callable[[Any], dict[str, Any]] = lambda suite: {}  # config overrides in the held_out level
    train_env: Callable[[Any], dict[str, Any]] = lambda suite: {}  # config overrides in nominal and shifted
    instruction: Paraphrase | None = None  # (episode params, episode seed) → held-out instruction
    notes: list[str] = field(default_factory=list)


def _pick(templates: tuple[str, ...], seed: int, **fmt: Any) -> str:
    return templates[seed % len(templates)].format(**fmt)


def _lift(p: dict[str, Any], seed: int) -> str:
    return _pick(("hoist the {c} block into the air", "raise the {c} cube up off the tabletop"), seed,
                 c=p["block_color"])


def _toolbox(p: dict[str, Any], seed: int) -> str:
    return _pick(("secure the lid of the {c} toolbox", "bring the {c} toolbox's lid down until it locks"), seed,
                 c=p["box_color"])


_PLUG_NOUNS = {"flat": "plug with two flat blades", "round": "plug with two round pins", "rect": "USB-A connector"}


def _plug(p: dict[str, Any], seed: int) -> str:
    return _pick(("seat the {c} {n} in the socket block", "keep the strip still and push the {n} home"), seed,
                 c=p["plug_color"], n=_PLUG_NOUNS[p["plug_type"]])


def _control(p: dict[str, Any]) -> tuple[str, str]:
    kind, _, which = str(p["target_control"]).partition("_")
    return kind, which


def _button(p: dict[str, Any], seed: int) -> str:
    return _pick(("tap the {c} push button once", "depress the {c} key on the panel"), seed, c=_control(p)[1])


def _switch(p: dict[str, Any], seed: int) -> str:
    state = "on" if float(p["target_value"]) > 0 else "off"
    return _pick(("put the {w} toggle in the {s} position", "move the {w} switch lever to {s}"), seed,
                 w=_control(p)[1], s=state)


def _slider(p: dict[str, Any], seed: int) -> str:
    return _pick(("drag the {w} slider to notch {n}", "push the {w} fader to stop {n}"), seed,
                 w=_control(p)[1], n=p["target_position"])


def _knob(p: dict[str, Any], seed: int) -> str:
    return _pick(("rotate the dial until it points at {n}", "dial the knob to setting {n}"), seed,
                 n=p["target_position"])


def _pull(p: dict[str, Any], seed: int) -> str:
    return _pick(("remove the {c} cable from the panel", "yank the {c} lead out"), seed, c=_control(p)[1])


def _insert(p: dict[str, Any], seed: int) -> str:
    return _pick(("reconnect the {c} cable to the panel", "seat the {c} lead in its jack"), seed, c=_control(p)[1])


HELD_OUT: dict[str, HeldOut] = {
    "lift_block": HeldOut(instruction=_lift, notes=["no held-out scene variation; held-out instructions only"]),
    "toolbox_close": HeldOut(instruction=_toolbox, notes=["no held-out scene variation; held-out instructions only"]),
    "plug_insertion*": HeldOut(env=lambda s: {"plug_type": s.held_out_plug},
                               train_env=lambda s: {"held_out": s.held_out_plug}, instruction=_plug),
    "busybox_push_button": HeldOut(instruction=_button),
    "busybox_flip_switch": HeldOut(instruction=_switch),
    "busybox_move_slider": HeldOut(instruction=_slider),
    "busybox_turn_knob": HeldOut(instruction=_knob),
    "busybox_pull_wire": HeldOut(instruction=_pull),
    "busybox_insert_wire": HeldOut(instruction=_insert),
    "busybox_*": HeldOut(env=lambda s: {"layout_split": "heldout"}),
}


def register_held_out(pattern: str, held_out: HeldOut) -> None:
    """Add (or replace) the held-out variation of the tasks matching `pattern`."""
    HELD_OUT[pattern] = held_out


def _matches(task: str) -> list[HeldOut]:
    return [h for pat, h in HELD_OUT.items() if fnmatch.fnmatchcase(task, pat)]


def env_overrides(task: str, level: str, suite: Any) -> dict[str, Any]:
    """Config overrides a level makes to a task (merged over every matching pattern)."""
    out: dict[str, Any] = {}
    for h in _matches(task):
        out.update(h.env(suite) if level == "held_out" else h.train_env(suite))
    return out


def paraphraser(task: str) -> Paraphrase | None:
    return next((h.instruction for h in _matches(task) if h.instruction is not None), None)


def held_out_instruction(task: str, params: dict[str, Any], seed: int) -> str | None:
    """The held-out paraphrase of an episode's goal, or None when the task has none (or lacks the values)."""
    fn = paraphraser(task)
    if fn is None:
        return None
    try:
        return fn(params, seed)
    except (KeyError, TypeError, ValueError):  # the task's drawn values changed: keep its own instruction
        return None


def has_held_out(task: str, suite: Any) -> bool:
    """Whether the held_out level differs from nominal for this task at all."""
    return bool(env_overrides(task, "held_out", suite)) or paraphraser(task) is not None
