"""User-facing errors: raised for bad input, printed by the CLI as one line, never a traceback."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable


class BomrlError(Exception):
    """Base class of every error the CLI reports as a single line."""


class ConfigError(BomrlError, ValueError):
    """A configuration value is outside what is allowed."""


def check(cond: bool, name: str, value, allowed: str) -> None:
    """Raise ConfigError("NAME=VALUE is invalid: must be ALLOWED") unless cond holds."""
    if not cond:
        raise ConfigError(f"{name}={value!r} is invalid: must be {allowed}")


def check_choice(name: str, value, choices: Iterable) -> None:
    """Raise ConfigError unless value is one of choices, listing them."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is invalid: allowed values are {', '.join(map(str, choices))}")


def check_literals(config) -> None:
    """Every field of the dataclass instance `config` annotated Literal[...] holds one of the
    annotation's values (check_choice's one-line error): the annotation is the one definition of a
    setting's choices (tyro reads it for the command line, this for config files and --set)."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        hint = hints.get(field.name)
        if typing.get_origin(hint) is typing.Literal:
            check_choice(field.name, getattr(config, field.name), typing.get_args(hint))
