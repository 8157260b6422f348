"""User plugins: `--plugins MODULE ...` imports modules that register task families
(`bomrl.envs.register_family`), distances (`bomrl.core.register_distance`) or algorithms
(`bomrl.algos.register_algorithm`) before anything is resolved by name.

`register_distance` is re-exported here for plugins written against the older location; it is the
same function and the same registry (`bomrl.core.DISTANCES`).
"""

from __future__ import annotations

import importlib
import os
import sys

from bomrl.core import distance_names, register_distance
from bomrl.errors import ConfigError

__all__ = ["import_plugins", "register_distance", "distance_names"]


def import_plugins(modules) -> None:
    """Import user modules (they register task families, distances, algorithms); one-line error on
    failure. The current directory is searched too (as with `python -m`), also from the `bomrl` script."""
    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name != exc.name and not name.startswith(exc.name + "."):
                # the plugin was found; something IT imports is missing
                raise ConfigError(f"--plugins {name!r} failed on import: it needs module {exc.name!r}, "
                                  "which is not installed") from None
            raise ConfigError(f"--plugins {name!r} is not found: it must be a module in the current directory "
                              "or on PYTHONPATH") from None
        except SystemExit as exc:
            raise ConfigError(f"--plugins {name!r} called sys.exit({exc.code!r}) on import; a plugin module "
                              "must only define and register") from None
        except Exception as exc:  # noqa: BLE001 - any failure of user code is reported in one line
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ConfigError(f"--plugins {name!r} raised on import ({type(exc).__name__}: {first})") from None
