"""User-facing errors: raised for bad input, printed by the CLI as one line, never a traceback."""

from __future__ import annotations

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
