"""Plain-Python configs for the flat tools (pretraining, classification evals).

A config file is a Python file that defines ``config`` (a dataclass instance). A variant loads its
base and changes a few fields::

    from mae_transfer.config import load_config
    config = load_config("mae_vit_large_1600ep.py",
    relative_to=__file__).replace(model="mae_vit_huge_patch14")

``key=value`` overrides on the command line are parsed against the dataclass field types; an unknown
key is an error that names it (with the closest known keys).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import runpy
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

from .errors import ConfigError

C = TypeVar("C", bound="ConfigBase")


def option(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field with a help string (shown by ``--help`` of the tools)."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    if dataclasses.is_dataclass(default):
        return dataclasses.field(
            default_factory=lambda: dataclasses.replace(default), metadata={"help": help}
        )
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class ConfigBase:
    def replace(self: C, **changes: Any) -> C:
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(_unknown_key_message(unknown[0], self))
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range value (subclasses state their ranges)."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        return cls().replace(
            **{k: tuple(v) if isinstance(v, list) and _is_tuple_field(cls, k) else v for k, v in data.items()}
        )

    @classmethod
    def help_text(cls) -> str:
        lines = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            tname = getattr(hints[f.name], "__name__", str(hints[f.name]).replace("typing.", ""))
            lines.append(f"  {f.name}={default!r}  ({tname})  {f.metadata.get('help', '')}")
        return "\n".join(lines)


def _is_tuple_field(cls: type, name: str) -> bool:
    hint = typing.get_type_hints(cls).get(name)
    return typing.get_origin(hint) is tuple


def _unknown_key_message(key: str, cfg: ConfigBase) -> str:
    names = [f.name for f in dataclasses.fields(cfg)]
    close = difflib.get_close_matches(key, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown config key {key!r} for {type(cfg).__name__}{hint}"


def _parse_value(raw: str, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _parse_value(raw, inner[0], key) if len(inner) == 1 else _literal(raw)
    if hint is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"config key {key!r} expects true/false, got {raw!r}")
    if hint in (int, float):
        try:
            value = float(raw) if hint is float else int(raw)
        except ValueError:
            raise ConfigError(f"config key {key!r} expects {hint.__name__}, got {raw!r}") from None
        return value
    if hint is str:
        return raw
    if origin in (tuple, list):
        value = _literal(raw)
        if not isinstance(value, (list, tuple)):
            value = (value,)
        element = next((a for a in args if a is not Ellipsis), None)
        if element in (int, float) and not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"config key {key!r} expects numbers like (0.9, 0.95), got {raw!r}")
        if origin is tuple and Ellipsis not in args and args and len(value) != len(args):
            raise ConfigError(f"config key {key!r} expects {len(args)} values, got {raw!r}")
        return tuple(value) if origin is tuple else list(value)
    if hint is dict or origin is dict:
        value = _literal(raw)
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} expects a dict like {{'depth': 4}}, got {raw!r}")
        return value
    return _literal(raw)


def _literal(raw: str) -> Any:
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def apply_overrides(cfg: C, overrides: Sequence[str]) -> C:
    """Apply ``key=value`` strings; unknown keys and ill-typed values raise ConfigError."""
    hints = typing.get_type_hints(type(cfg))
    changes: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-").replace("-", "_")
        if key not in hints:
            raise ConfigError(_unknown_key_message(key, cfg))
        changes[key] = _parse_value(raw.strip(), hints[key], key)
    cfg = cfg.replace(**changes)
    cfg.validate()
    return cfg


def check_ranges(cfg: ConfigBase, positive: Sequence[str] = (), non_negative: Sequence[str] = ()) -> None:
    """ConfigError naming the first field that is not > 0 (``positive``) or >= 0 (``non_negative``)."""
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"config key {name!r} must be > 0, got {getattr(cfg, name)}")
    for name in non_negative:
        if getattr(cfg, name) < 0:
            raise ConfigError(f"config key {name!r} must be >= 0, got {getattr(cfg, name)}")


def check_override_type(key: str, old: Any, new: Any) -> None:
    """An override must keep a number a number and a flag a flag (``train.max_iter=abc`` is refused here,
    not deep inside training)."""
    if isinstance(old, bool):
        ok = isinstance(new, bool)
    elif isinstance(old, (int, float)):
        ok = (
            isinstance(new, (int, float))
            and not isinstance(new, bool)
            and (isinstance(old, float) or float(new).is_integer())
        )
    else:
        return
    if not ok:
        raise ConfigError(f"override {key}={new!r}: expects {type(old).__name__} like the config's {old!r}")


def accepts_kwarg(target: Any, name: str) -> bool:
    """Whether calling ``target(..., name=...)`` can be valid: ``name`` is a parameter of the callable, or
    of a base class its ``**kwargs`` are handed on to (followed up the MRO). Targets that forward their
    ``**kwargs`` elsewhere say so with ``forwards_kwargs = True`` (they validate them themselves)."""
    if getattr(target, "forwards_kwargs", False):
        return True
    chain = (
        [c.__init__ for c in target.__mro__ if "__init__" in vars(c)]
        if isinstance(target, type)
        else [target]
    )
    for fn in chain:
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            return True
        if name in params:
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


def load_config(
    path: str | Path, relative_to: str | Path | None = None, expect: type | None = None, name: str = "config"
) -> Any:
    """Run a config file and return its ``config`` object (or another global ``name`` it defines)."""
    p = Path(path)
    if relative_to is not None and not p.is_absolute():
        p = Path(relative_to).resolve().parent / p
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        namespace = runpy.run_path(str(p))
    except TypeError as e:
        frame = e.__traceback__
        while frame.tb_next is not None:
            frame = frame.tb_next
        if Path(frame.tb_frame.f_code.co_filename).resolve() != p.resolve():
            raise  # raised inside code the config calls: a bug there, keep the traceback
        # raised at a call in the config file itself (an unknown field, a missing argument): the user's
        raise ConfigError(f"{p}:{frame.tb_lineno}: {e}") from None
    if name not in namespace:
        raise ConfigError(f"config file {p} does not define `{name}`")
    cfg = namespace[name]
    if expect is not None and not isinstance(cfg, expect):
        raise ConfigError(f"config file {p} defines a {type(cfg).__name__}, expected {expect.__name__}")
    return cfg
