"""The one registry pattern behind every extension point (task families, distances, algorithms).

    FAMILIES = Registry("task family", "env")            # bomrl.envs.families
    DISTANCES = Registry("distance", "distance")          # bomrl.core.distances_registry
    ALGORITHMS = Registry("algorithm", "algo")            # bomrl.algos

    ALGORITHMS.register("maml-trpo", "bomrl.algos.maml_trpo:MamlTrpo")   # lazy: imported on get()
    ALGORITHMS.register("mine", MyAlgorithm)                            # or the object itself
    ALGORITHMS.get("maml-trpo")        # the object (importing its module the first time)
    ALGORITHMS.canonical("kl")         # an alias's canonical name; one-line ConfigError if unknown

An entry is the registered object or a "module:attribute" string, resolved on first use, so that
the registries (and everything that validates names against them, like the command line) stay
free of heavy imports. Import-light: no JAX, no numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

from bomrl.errors import ConfigError


class Registry:
    """Names -> entries, with aliases; see the module docstring."""

    def __init__(self, kind: str, flag: str):
        self.kind = kind          # "task family", used in messages
        self.flag = flag          # the setting that names an entry ("env", "distance", "algo")
        self._entries: dict[str, Any] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, entry: Any, *, aliases: tuple[str, ...] = (), overwrite: bool = False) -> None:
        """Register `entry` (an object or a "module:attribute" string) as `name` (+ aliases)."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{self.kind} name {name!r} is invalid: must be a non-empty string")
        for n in (name, *aliases):
            taken = self._entries.get(self._aliases.get(n, n), None)
            if (n in self._entries or n in self._aliases) and not overwrite and taken is not entry:
                raise ConfigError(f"{self.kind} {n!r} is already registered (pass overwrite=True to replace it)")
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name

    def unregister(self, name: str) -> None:
        """Remove `name` and its aliases (no error if absent; for tests and plugin reloads)."""
        self._entries.pop(name, None)
        for alias in [a for a, n in self._aliases.items() if n == name]:
            del self._aliases[alias]

    def names(self, aliases: bool = False) -> list[str]:
        """Registered names in registration order (then the aliases, if asked)."""
        return [*self._entries, *(self._aliases if aliases else ())]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def canonical(self, name: str) -> str:
        """The canonical name of `name` (itself or the name it aliases)."""
        if name not in self:
            allowed = ", ".join(self.names(aliases=True))
            raise ConfigError(f"--{self.flag}={name!r} is invalid: allowed values are {allowed}")
        return self._aliases.get(name, name)

    def get(self, name: str) -> Any:
        """The registered object (a lazy entry is imported now and remembered)."""
        key = self.canonical(name)
        entry = self._entries[key]
        if isinstance(entry, str) and ":" in entry:
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[key] = entry
        return entry
