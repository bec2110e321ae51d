"""Typed configuration for rho: OmegaConf structured configs with friendly, all-at-once errors.

A config schema is a plain (possibly nested) dataclass. ``load_config`` builds it from the dataclass
defaults, merges an optional YAML file, applies ``key=value`` command-line overrides and returns a
real instance of the dataclass. Every problem found along the way -- unknown keys, wrong types,
values outside a ``Literal``/``Enum``, malformed overrides, required values still missing, failed
``validate()`` hooks -- is collected and raised as ONE ``ConfigError`` before anything runs.

Usage::

    from dataclasses import dataclass, field
    from typing import Literal

    from rho.config import load_config, parse_cli

    @dataclass
    class SimCfg:
        num_envs: int = 1
        backend: Literal["cpu", "gpu"] = "cpu"

    @dataclass
    class RolloutCfg:
        steps: int = 100
        sim: SimCfg = field(default_factory=SimCfg)

        def validate(self) -> list[str]:  # optional cross-field checks
            return [] if self.steps > 0 else ["steps must be positive"]

    overrides, flags = parse_cli(["steps=10", "sim.num_envs=4", "--json"])
    cfg = load_config(RolloutCfg, yaml="rollout", overrides=overrides)  # configs/rollout.yaml
    assert cfg.sim.num_envs == 4

A bad command line fails like this::

    ConfigError: Invalid configuration (2 problems):
      - sim.num_envs: expected int, got 'abc' (str). Fix: pass an integer, e.g. sim.num_envs=1
      - sim.nm_envs: unknown key. Did you mean `sim.num_envs`? Valid keys under `sim`: num_envs, backend
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml as pyyaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

__all__ = ["CONFIG_PACKAGE", "ConfigError", "check_flags", "config_from_dict", "config_help", "config_to_dict",
           "config_to_yaml", "load_config", "output_dir_problems", "parse_cli", "validate_config"]

T = TypeVar("T")

#: Package whose ``*.yaml`` files are addressable by bare name (``yaml="rollout"``).
CONFIG_PACKAGE = "rho.configs"

Part = str | int  # one step of a config path: a key, or a list index
_UNKNOWN: Any = object()  # sentinel: the path names no field of the schema
_NO_DEFAULT: Any = object()
_MAX_KEYS_SHOWN = 20
_KEY_RE = re.compile(r"^[\w\-]+(?:\.[\w\-]+|\[\d+\])*$")


class ConfigError(ValueError):
    """Every problem of one configuration, reported together; ``problems`` holds one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(dict.fromkeys(problems))  # dedupe, keep order
        n = len(self.problems)
        lines = [f"Invalid configuration ({n} problem{'' if n == 1 else 's'}):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- public API


def load_config(
    schema: type[T],
    *,
    yaml: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> T:
    """Build ``schema`` from its defaults, then ``yaml``, then ``overrides``; return an instance.

    ``yaml`` is a ``Path``, a string ending in ``.yaml``/``.yml`` (a file path), or a bare name such
    as ``"rollout"`` or ``"tasks/peg"`` resolved to ``<name>.yaml`` inside :data:`CONFIG_PACKAGE`.
    ``overrides`` are ``dotted.key=value`` strings; values are parsed as YAML (``[a,b]``, ``1e3``,
    ``null``, ``true``). Raises :class:`ConfigError` listing every problem at once.
    """
    if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
        raise TypeError(f"load_config needs a dataclass type as schema, got {schema!r}")
    loader = _Loader(schema)
    if yaml is not None:
        loader.merge_yaml(yaml)
    for item in overrides:
        loader.apply_override(item)
    return loader.finish()


def parse_cli(argv: Sequence[str], *, flags_take_values: bool = True) -> tuple[list[str], list[str]]:
    """Split ``argv`` into (``key=value`` overrides, ``--flag`` options with their values).

    ``--out runs/x`` keeps ``runs/x`` with its flag so the options list can go straight to argparse;
    everything after a bare ``--`` is an option. Any other word is returned as an override, so a
    typo like ``steps100`` is reported by :func:`load_config` instead of being silently dropped.
    With ``flags_take_values=False`` (the `rho` commands, whose flags are all switches) a word after a
    flag stays an override or path: ``rho dataset check --json runs/ds``.
    """
    overrides: list[str] = []
    flags: list[str] = []
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--":
            flags += args[i:]
            break
        if arg.startswith("-") or (flags_take_values and _is_flag_value(args, i)):
            flags.append(arg)
        else:
            overrides.append(arg)
    return overrides, flags


def check_flags(flags: Sequence[str], allowed: Sequence[str], command: str, schema: type | None = None) -> None:
    """Refuse every ``--flag`` of ``flags`` (as `parse_cli` returned them) that ``command`` does not take: one
    `ConfigError` naming each, with the nearest flag, or the ``key=value`` form when it names a config key."""
    problems = []
    keys = _all_paths(schema) if schema is not None else ()
    for flag in flags:
        if flag in allowed or not flag.startswith("-"):  # (a word parse_cli took as the flag's value)
            continue
        name, eq, value = flag.lstrip("-").partition("=")
        key = name.replace("-", "_")
        if key in keys or name in keys:
            fix = f"config keys take no dashes: {key if key in keys else name}={value if eq else '<value>'}"
        else:
            near = difflib.get_close_matches(flag.split("=")[0], list(allowed), n=1, cutoff=0.6)
            fix = f"did you mean `{near[0]}`?" if near else "remove it"
        shown = ", ".join(allowed) if allowed else "none"
        problems.append(f"{flag}: unknown flag of `rho {command}`. Fix: {fix} (its flags: {shown}; "
                        f"see rho {command} --help)")
    if problems:
        raise ConfigError(problems)


def config_help(schema: type, *, yaml: str | Path | None = None, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, one-line doc) of every config key of ``schema`` (nested dataclasses flattened to dotted
    keys), defaults after ``yaml``; the doc is the comment on the field's line, else the first line of the field
    type's docstring. What ``rho <command> --help`` prints."""
    loader = _Loader(schema)
    if yaml is not None:
        loader.merge_yaml(yaml)
    rows: list[tuple[str, str, str, str]] = []
    _help_rows(schema, loader.cfg, (), rows)
    return [(prefix + k, t, d, doc) for k, t, d, doc in rows]


def _help_rows(cls: type, node: Any, parts: tuple[Part, ...], rows: list[tuple[str, str, str, str]]) -> None:
    docs = _field_docs(cls)
    for name, hint in _field_hints(cls).items():
        sub = (*parts, name)
        target = _strip_optional(hint)
        try:
            value = OmegaConf.select(node, _join(sub), throw_on_missing=False) if node is not None else None
        except OmegaConfBaseException:
            value = None
        doc = docs.get(name) or (_first_line(target.__doc__) if _is_dataclass_type(target) else "")
        if _is_dataclass_type(target) and isinstance(value, DictConfig):
            _help_rows(target, node, sub, rows)
            continue
        if OmegaConf.is_missing(node, _join(sub)) if node is not None and len(sub) == 1 else value == "???":
            shown = "(required)"
        else:
            shown = _format_cli(OmegaConf.to_container(value, resolve=False) if OmegaConf.is_config(value) else value)
            shown = shown or '""'
        rows.append((_join(sub), _describe(hint), shown, doc))


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n")[0].strip()


@cache
def _field_docs(cls: type) -> dict[str, str]:
    """Field name → the comment on its line in the class body (``name: type = default  # doc``), over the MRO."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # made with make_dataclass, or no source shipped
            continue
        comments = {tok.start[0]: tok.string.lstrip("#").strip()
                    for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
        body = ast.parse(source).body[0]
        for stmt in getattr(body, "body", []):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                text = comments.get(stmt.lineno) or comments.get(stmt.end_lineno or stmt.lineno)
                if text:
                    out[stmt.target.id] = text
    return out


def output_dir_problems(key: str, path: str | Path, create: bool = True) -> list[str]:
    """Problems with `path` as an output directory (empty, a file, not creatable or not writable), found before
    any work; with `create`, a usable directory is created (and a probe file written and removed in it)."""
    import os
    import tempfile

    if not str(path).strip():
        return [f"{key}: empty path. Fix: {key}=<directory>, e.g. {key}=runs/out"]
    p = Path(path)
    if p.exists() and not p.is_dir():
        return [f"{key}={path}: is a file, not a directory. Fix: remove it or choose another {key}=<directory>"]
    parent = next((a for a in [p, *p.parents] if a.exists()), None)
    if parent is not None and not parent.is_dir():
        return [f"{key}={path}: {parent} is a file, so the directory cannot be created. Fix: choose another {key}"]
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        return [f"{key}={path}: {parent} is not writable. Fix: choose a writable {key}=<directory>"]
    if not create:
        return []
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".rho-write-check-"):
            pass
    except OSError as e:
        return [f"{key}={path}: cannot write there ({e.strerror or e}). Fix: choose a writable {key}=<directory>"]
    return []


def config_from_dict(schema: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a config saved with `config_to_dict` (e.g. a dataset's env_args), checked like `load_config`.

    Each top-level entry is applied as a command-line override, so dict-typed fields are replaced, not merged.
    """
    import json

    return load_config(schema, overrides=[f"{k}={json.dumps(v)}" for k, v in data.items()])


def validate_config(cfg: Any) -> list[str]:
    """Messages of every ``validate()`` hook in a config object's tree (for configs built in code, not loaded)."""
    return list(_validator_problems(cfg, ()))


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, JSON/YAML-safe dict of a config (dataclass instance or DictConfig): enums become
    names, tuples become lists, interpolations are resolved."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    data = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return typing.cast(dict[str, Any], _plain(data))


def config_to_yaml(cfg: Any) -> str:
    """YAML text of a config, loadable again with ``load_config(schema, yaml=path)``."""
    return OmegaConf.to_yaml(config_to_dict(cfg))


# --------------------------------------------------------------------------- loading


class _Loader:
    """One ``load_config`` call: the live config plus the problems found so far."""

    def __init__(self, schema: type) -> None:
        self.schema = schema
        self.cfg = OmegaConf.structured(schema)
        self.defaults = OmegaConf.structured(schema)  # pristine copy, for "e.g." examples
        self.problems: list[str] = []

    # -- sources

    def merge_yaml(self, spec: str | Path) -> None:
        try:
            data, label = _read_yaml(spec)
        except _YamlError as e:
            self.problems.append(str(e))
            return
        self.apply((), data, f" (in {label})")

    def apply_override(self, item: str) -> None:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.match(key):
            self.problems.append(_malformed_override(item, sep))
            return
        parts = _split_path(key)
        try:
            value = _parse_value(text)
        except (pyyaml.YAMLError, OmegaConfBaseException) as e:
            first = str(e).splitlines()[0]
            self.problems.append(
                f"{key}: could not parse value {text!r} ({first}). Fix: quote it, e.g. {key}='{text}'"
            )
            return
        hint, _ = _resolve(self.schema, parts)
        self.apply(parts, _keep_text(value, text, hint), "")

    def apply(self, parts: tuple[Part, ...], value: Any, where: str) -> None:
        """Set ``value`` at ``parts``, descending into dataclass mappings so each leaf fails alone."""
        hint, bad_at = _resolve(self.schema, parts)
        if hint is _UNKNOWN:
            self.problems.append(self.unknown_key(parts[: bad_at + 1], where))
            return
        if isinstance(value, Mapping) and _is_dataclass_type(_strip_optional(hint)) and self.is_node(parts):
            for key, sub in value.items():
                self.apply((*parts, key), sub, where)
            return
        parts, value = self.lift_over_none(parts, value)
        hint = _resolve(self.schema, parts)[0]
        issues = list(self.check_value(parts, value, hint, where))
        if issues:
            self.problems += issues
            return
        # A mapping given on the command line replaces a dict-typed field (`cameras={}` empties it); YAML merges.
        replace = where == "" and isinstance(value, Mapping) and _is_mapping_hint(_strip_optional(hint))
        try:
            if replace:  # empty it, then merge: typed values (dataclasses) are built from the mapping
                OmegaConf.update(self.cfg, _join(parts), {}, merge=False)
            OmegaConf.update(self.cfg, _join(parts), value, merge=True)
        except OmegaConfBaseException as e:
            self.problems.append(self.translate(e, parts, value, where))

    def lift_over_none(self, parts: tuple[Part, ...], value: Any) -> tuple[tuple[Part, ...], Any]:
        """`policy.hidden=32` while `policy` is None: assign `policy={hidden: 32}` instead, so
        OmegaConf creates the Optional dataclass from its defaults rather than failing."""
        for i in range(1, len(parts)):
            if OmegaConf.select(self.cfg, _join(parts[:i]), throw_on_missing=False) is None:
                for key in reversed(parts[i:]):
                    value = {key: value}
                return parts[:i], value
        return parts, value

    def is_node(self, parts: tuple[Part, ...]) -> bool:
        # An Optional dataclass that is still None has no node to descend into; assign it whole.
        node = OmegaConf.select(self.cfg, _join(parts), throw_on_missing=False) if parts else self.cfg
        return isinstance(node, DictConfig)

    # -- final checks

    def finish(self) -> Any:
        self.scan(self.cfg, ())
        if self.problems:
            raise ConfigError(self.problems)
        try:
            obj = OmegaConf.to_object(self.cfg)
        except OmegaConfBaseException as e:  # scan() should have caught it; keep the promise anyway
            raise ConfigError([self.translate(e, (), None, "")]) from e
        problems = list(_validator_problems(obj, ()))
        if problems:
            raise ConfigError(problems)
        return obj

    def scan(self, node: Any, parts: tuple[Part, ...]) -> None:
        """Report values still missing (``???``) and interpolations that do not resolve."""
        keys: Sequence[Any] = list(node.keys()) if isinstance(node, DictConfig) else range(len(node))
        for key in keys:
            sub_parts = (*parts, key)
            if OmegaConf.is_missing(node, key):
                self.problems.append(self.missing(sub_parts))
                continue
            try:
                value = node[key]
            except OmegaConfBaseException as e:
                self.problems.append(self.translate(e, sub_parts, None, ""))
                continue
            if OmegaConf.is_config(value):  # DictConfig, ListConfig or TupleConfig
                self.scan(value, sub_parts)

    # -- checks OmegaConf does not do (or does with poorer messages)

    def check_value(self, parts: tuple[Part, ...], value: Any, hint: Any, where: str) -> Iterator[str]:
        """Unknown keys and Literal violations anywhere inside ``value``, found by walking type hints."""
        if value is None or _is_deferred(value):
            return  # None: OmegaConf knows what is Optional; ???/${..}: checked once resolved
        target = _strip_optional(hint)
        if get_origin(target) is Literal:
            if not _literal_ok(value, target):
                yield self.bad_value(parts, value, hint, where)
        elif _is_dataclass_type(target) and isinstance(value, Mapping):
            fields = _field_hints(target)
            for key, sub in value.items():
                if key in fields:
                    yield from self.check_value((*parts, key), sub, fields[key], where)
                else:
                    yield self.unknown_key((*parts, key), where)
        elif isinstance(value, list | tuple) and _is_sequence_hint(target):
            for i, sub in enumerate(value):
                yield from self.check_value((*parts, i), sub, _child_hint(target, i), where)
        elif isinstance(value, Mapping) and _is_mapping_hint(target):
            for key, sub in value.items():
                yield from self.check_value((*parts, key), sub, _child_hint(target, key), where)

    # -- messages

    def unknown_key(self, parts: tuple[Part, ...], where: str) -> str:
        path, parent = _join(parts), parts[:-1]
        parent_hint = _strip_optional(_resolve(self.schema, parent)[0])
        if not _is_dataclass_type(parent_hint):
            what = _describe(parent_hint)
            return (
                f"{path}{where}: `{_join(parent)}` is {what}, it has no sub-keys. "
                f"Fix: set it directly, e.g. {_join(parent)}={self.example(parent, parent_hint)}"
            )
        keys = list(_field_hints(parent_hint))
        shown = ", ".join(keys[:_MAX_KEYS_SHOWN]) + (", ..." if len(keys) > _MAX_KEYS_SHOWN else "")
        under = f"under `{_join(parent)}`" if parent else "at top level"
        # Siblings too: paths inside lists/dicts of dataclasses are not in _all_paths.
        siblings = [_join((*parent, k)) for k in keys]
        guess = _suggest(path, [*siblings, *_all_paths(self.schema)])
        fix = f"Did you mean `{guess}`?" if guess else "Fix: remove it or use a valid key."
        return f"{path}{where}: unknown key. {fix} Valid keys {under}: {shown}"

    def bad_value(self, parts: tuple[Part, ...], value: Any, hint: Any, where: str) -> str:
        path = _join(parts)
        return f"{path}{where}: expected {_describe(hint)}, got {_show(value)}. Fix: {self.fix(parts, hint)}"

    def missing(self, parts: tuple[Part, ...]) -> str:
        hint, _ = _resolve(self.schema, parts)
        path = _join(parts)
        return (
            f"{path}: required value is missing (expected {_describe(hint)}, got ???). "
            f"Fix: set it in the YAML or pass {path}={self.example(parts, hint)}"
        )

    def translate(self, e: OmegaConfBaseException, parts: tuple[Part, ...], value: Any, where: str) -> str:
        """Turn an OmegaConf exception into our one-line format, using the type hint at its path."""
        if e.full_key:
            parts, value = _split_path(e.full_key), e.value
        path, hint = _join(parts), _resolve(self.schema, parts)[0]
        reason = str(e.msg or e).splitlines()[0]
        if isinstance(e, InterpolationResolutionError):
            return f"{path}{where}: interpolation failed: {reason}. Fix: point it at an existing key with a valid value"
        if hint is _UNKNOWN:
            return f"{path}{where}: {reason}"
        return self.bad_value(parts, value, hint, where)

    def fix(self, parts: tuple[Part, ...], hint: Any) -> str:
        path, target = _join(parts), _strip_optional(hint)
        if _is_dataclass_type(target):
            first = next(iter(_field_hints(target)), None)
            if first is None:
                return f"pass a mapping, e.g. {path}={{}}"
            sub = (*parts, first)
            return f"set its fields, e.g. {_join(sub)}={self.example(sub, _field_hints(target)[first])}"
        return f"{_verb(target)}, e.g. {path}={self.example(parts, hint)}"

    def example(self, parts: tuple[Part, ...], hint: Any) -> str:
        """The schema default at ``parts`` when it is a usable example, else a value of the right type."""
        default = _default_at(self.defaults, parts)
        if default is _NO_DEFAULT or default is None or default in ([], {}):
            default = _sample(hint)
        return _format_cli(default)


# --------------------------------------------------------------------------- YAML and overrides


class _YamlError(Exception):
    """A YAML source that cannot be used at all; its text is one ConfigError line."""


def _read_yaml(spec: str | Path) -> tuple[dict[str, Any], str]:
    """(top-level mapping, label for messages), or raise _YamlError."""
    source, label = _locate_yaml(spec)
    if source is None:
        names = ", ".join(_bundled_names()) or "none"
        fix = f"pass a path to a .yaml file or a bundled config name ({names})"
        raise _YamlError(f"yaml {str(spec)!r}: no such config file. Fix: {fix}")
    try:
        with source.open("r", encoding="utf-8") as f:
            loaded = OmegaConf.load(f)
    # OmegaConf.load raises OSError for scalar documents and AssertionError for a bare string.
    except (pyyaml.YAMLError, OSError, OmegaConfBaseException, ValueError, AssertionError) as e:
        reason = " ".join(str(e).split())
        raise _YamlError(
            f"yaml {label}: could not parse ({reason}). Fix: make it a valid YAML mapping"
        ) from e
    if not isinstance(loaded, DictConfig):
        raise _YamlError(
            f"yaml {label}: expected a mapping at top level, got a list. Fix: use `key: value` lines"
        )
    return typing.cast(dict[str, Any], OmegaConf.to_container(loaded, resolve=False)), label


def _locate_yaml(spec: str | Path) -> tuple[Traversable | None, str]:
    if isinstance(spec, Path) or spec.endswith((".yaml", ".yml")):
        path = Path(spec)
        return (path if path.is_file() else None), str(path)
    found = _bundled_root() / f"{spec}.yaml"
    return (found if found.is_file() else None), f"{spec}.yaml"


def _bundled_root() -> Traversable:
    try:
        return resources.files(CONFIG_PACKAGE)
    except ModuleNotFoundError:
        # Uninstalled source checkout: `rho.configs` maps to the repo's top-level configs/ folder
        # (see package-dir in pyproject.toml), which sits next to this package.
        return Path(__file__).resolve().parent.parent / "configs"


def _bundled_names() -> list[str]:
    root = _bundled_root()
    return (
        sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))
        if root.is_dir()
        else []
    )


def _parse_value(text: str) -> Any:
    # `key=` means the empty string; `key=null` is how to ask for None.
    if text == "":
        return ""
    parsed = OmegaConf.from_dotlist([f"v={text}"])  # OmegaConf's own YAML rules: 1e3 is a float
    return OmegaConf.to_container(parsed, resolve=False)["v"]


def _keep_text(value: Any, text: str, hint: Any) -> Any:
    """Undo YAML 1.1 surprises for text targets: `name=no` must stay "no", not False -> "False"."""
    target = _strip_optional(hint)
    texty = target is str or (
        get_origin(target) is Literal and all(isinstance(a, str) for a in get_args(target))
    )
    if texty and isinstance(value, bool | int | float):
        return text.strip()
    if _is_enum_type(target) and isinstance(value, bool):
        return text.strip()
    return value


def _malformed_override(item: str, sep: str) -> str:
    if not sep:
        return f"{item!r}: malformed override, expected key=value. Fix: write it as `{item}=<value>` (or `--{item}` for a flag)"
    return f"{item!r}: malformed key, expected a dotted path like sim.num_envs. Fix: write it as `sim.num_envs=4`"


def _is_flag_value(args: list[str], i: int) -> bool:
    """A plain word right after a ``--flag`` (no ``=`` in either) is taken as that flag's value."""
    prev = args[i - 1] if i else ""
    return prev.startswith("-") and "=" not in prev and "=" not in args[i] and prev != "--"


# --------------------------------------------------------------------------- type hints


@cache
def _field_hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _strip_optional(hint: Any) -> Any:
    if get_origin(hint) not in (Union, types.UnionType):
        return hint
    rest = [a for a in get_args(hint) if a is not type(None)]
    return rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007 -- built from a runtime tuple


def _is_dataclass_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _is_enum_type(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, enum.Enum)


def _is_sequence_hint(hint: Any) -> bool:
    return hint in (list, tuple) or get_origin(hint) in (list, tuple, Sequence)


def _is_mapping_hint(hint: Any) -> bool:
    return hint is dict or get_origin(hint) in (dict, Mapping)


def _child_hint(hint: Any, key: Part) -> Any:
    """Hint of ``hint[key]``; ``_UNKNOWN`` if ``hint`` has no such child."""
    target = _strip_optional(hint)
    if target is Any:
        return Any
    if _is_dataclass_type(target):
        return _field_hints(target).get(str(key), _UNKNOWN)
    args = get_args(target)
    if _is_mapping_hint(target):
        return args[1] if len(args) == 2 else Any
    if _is_sequence_hint(target):
        if not str(key).isdigit():
            return _UNKNOWN
        if get_origin(target) is tuple and args and args[-1] is not Ellipsis:
            return args[int(key)] if int(key) < len(args) else _UNKNOWN
        return args[0] if args else Any
    return _UNKNOWN


def _resolve(schema: type, parts: tuple[Part, ...]) -> tuple[Any, int]:
    """(hint at ``parts``, -1), or (``_UNKNOWN``, index of the first part the schema lacks)."""
    hint: Any = schema
    for i, part in enumerate(parts):
        hint = _child_hint(hint, part)
        if hint is _UNKNOWN:
            return _UNKNOWN, i
    return hint, -1


@cache
def _all_paths(schema: type) -> tuple[str, ...]:
    """Every dotted path through nested dataclasses, in field order (used for suggestions)."""
    out: list[str] = []
    for name, hint in _field_hints(schema).items():
        out.append(name)
        target = _strip_optional(hint)
        if _is_dataclass_type(target):
            out += [f"{name}.{sub}" for sub in _all_paths(target)]
    return tuple(out)


def _literal_ok(value: Any, literal: Any) -> bool:
    # Compare types too, like OmegaConf: Literal[1] must not accept True (True == 1 in Python).
    return any(type(value) is type(arg) and value == arg for arg in get_args(literal))


def _is_deferred(value: Any) -> bool:
    return isinstance(value, str) and (value == "???" or "${" in value)


# --------------------------------------------------------------------------- messages


def _suggest(bad: str, paths: Sequence[str]) -> str | None:
    """Closest valid path, scoring the full dotted path and its last component (`num_envs=4`
    at top level should still find `sim.num_envs`)."""
    last = bad.rsplit(".", 1)[-1]

    def score(path: str) -> tuple[float, float]:
        full = difflib.SequenceMatcher(None, bad, path).ratio()
        tail = difflib.SequenceMatcher(None, last, path.rsplit(".", 1)[-1]).ratio()
        return max(full, tail), full

    best = max(paths, key=score, default=None)
    return best if best is not None and score(best)[0] >= 0.6 else None


def _describe(hint: Any) -> str:
    if hint is Any:
        return "any value"
    target = _strip_optional(hint)
    if target is not hint:
        return f"{_describe(target)} or null"
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if _is_enum_type(hint):
        return "one of " + ", ".join(m.name for m in hint) + f" ({hint.__name__})"
    if _is_dataclass_type(hint):
        return f"a {hint.__name__} mapping"
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    return _type_name(hint)


def _type_name(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is None:
        return getattr(hint, "__name__", str(hint).replace("typing.", ""))
    args = ", ".join("..." if a is Ellipsis else _type_name(a) for a in get_args(hint))
    return f"{getattr(origin, '__name__', origin)}[{args}]" if args else _type_name(origin)


def _verb(target: Any) -> str:
    if get_origin(target) is Literal:
        return "use one of " + ", ".join(_format_cli(a) for a in get_args(target))
    if _is_enum_type(target):
        return "use one of " + ", ".join(m.name for m in target)
    verbs = {bool: "pass true or false", int: "pass an integer", float: "pass a number", str: "pass a string"}
    if target in verbs:
        return verbs[target]
    if _is_sequence_hint(target):
        return "pass a list"
    if _is_mapping_hint(target):
        return "pass a mapping"
    return f"pass {_describe(target)}"


def _sample(hint: Any) -> Any:
    """A plausible value of type ``hint``, for examples in error messages."""
    target = _strip_optional(hint)
    if get_origin(target) is Literal:
        return get_args(target)[0]
    if _is_enum_type(target):
        return next(iter(target))
    if _is_sequence_hint(target):
        args = [a for a in get_args(target) if a is not Ellipsis]
        if get_origin(target) is tuple and len(get_args(target)) > 1 and Ellipsis not in get_args(target):
            return [_sample(a) for a in args]
        return [_sample(args[0] if args else str)] * 2
    if _is_mapping_hint(target):
        args = get_args(target)
        return {"key": _sample(args[1] if len(args) == 2 else str)}
    return {bool: True, int: 1, float: 1.0}.get(target, "value")


def _default_at(defaults: DictConfig, parts: tuple[Part, ...]) -> Any:
    try:
        node = OmegaConf.select(defaults, _join(parts), default=_NO_DEFAULT, throw_on_missing=True)
    except OmegaConfBaseException:  # missing or unresolvable: no usable default
        return _NO_DEFAULT
    if OmegaConf.is_config(node):  # DictConfig, ListConfig or TupleConfig
        return OmegaConf.to_container(node, resolve=False)
    return node


def _format_cli(value: Any) -> str:
    """``value`` written the way an override would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, list | tuple):
        return "[" + ",".join(_format_cli(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_format_cli(v)}" for k, v in value.items()) + "}"
    return str(value)


def _show(value: Any) -> str:
    return "null" if value is None else f"{value!r} ({type(value).__name__})"


# --------------------------------------------------------------------------- paths and hooks


def _split_path(path: str) -> tuple[Part, ...]:
    return tuple(int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[\]]+", path))


def _join(parts: Sequence[Part]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validator_problems(obj: Any, parts: tuple[Part, ...]) -> Iterator[str]:
    """Messages of every ``validate()`` hook in the tree, prefixed with the dataclass's path."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        hook = getattr(obj, "validate", None)
        if callable(hook):
            found = hook() or []
            for msg in [found] if isinstance(found, str) else found:
                yield f"{_join(parts) or '(root)'}: {msg}"
        for f in dataclasses.fields(obj):
            yield from _validator_problems(getattr(obj, f.name), (*parts, f.name))
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            yield from _validator_problems(item, (*parts, i))
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _validator_problems(item, (*parts, str(key)))


def _plain(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    return data
