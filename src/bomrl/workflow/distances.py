"""User distances for BO-MRL by name, so `bomrl train --distance NAME` can use them.

    # mymod.py, loaded with `bomrl train --plugins mymod --distance hellinger ...`
    import jax.numpy as jnp
    from bomrl.core.distances import state_distance
    from bomrl.workflow.distances import register_distance

    def hellinger(policy):           # factory: Policy -> Distance
        def d2(dist_phi, dist_theta):  # Gaussian (mean, log_std) per state -> squared distance [...]
            ...
        return state_distance(d2, "hellinger")

    register_distance("hellinger", hellinger)

The built-in names (kl = d1, rkl = d2, euclid = d3) go straight to the algorithm config. A
registered name is applied by `apply_distance`: the algorithm is built with a placeholder and
its inner loss L(θ, φ) of eq. (2)/(7) is rebuilt with the user's distance before the first
(jit-traced) use, so adaptation and the hypergradient (which differentiates L) both use it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from bomrl.errors import ConfigError

BUILTIN = ("kl", "rkl", "euclid")
_REGISTRY: dict[str, Callable] = {}


def register_distance(name: str, factory: Callable, overwrite: bool = False) -> None:
    """Register factory(policy) -> bomrl.core.distances.Distance under `name`."""
    if name in BUILTIN:
        raise ConfigError(f"distance name {name!r} is reserved for a built-in distance")
    if name in _REGISTRY and not overwrite and _REGISTRY[name] is not factory:
        raise ConfigError(f"distance {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = factory


def distance_names() -> list[str]:
    return [*BUILTIN, *sorted(_REGISTRY)]


def import_plugins(modules) -> None:
    """Import user modules (they register task families and distances); one-line error on failure.

    The current directory is searched too (as with `python -m`), also from the `bomrl` script."""
    import os

    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any failure of user code is reported in one line
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ConfigError(f"--plugins {name!r} cannot be imported ({type(exc).__name__}: {first}); "
                              f"it must be a module in the current directory or on PYTHONPATH") from None


def apply_distance(algo, name: str | None):
    """Adapter: give a BoMrl instance the registered user distance `name` (no-op for built-ins)."""
    if name is None or name in BUILTIN:
        return algo
    from bomrl.core.losses import make_inner_loss

    if name not in _REGISTRY:
        raise ConfigError(f"--distance={name!r} is invalid: allowed values are {', '.join(distance_names())}")
    c = algo.config
    algo.inner_loss = make_inner_loss(algo.policy, _REGISTRY[name](algo.policy), c.lam, c.surrogate)
    return algo
