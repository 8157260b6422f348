"""The learning core shared by every algorithm: policies, distances, the inner solver, the
hypergradient, the TRPO meta-step and advantage estimation. Pure JAX functions over pytrees.

This package's `__init__` is import-light: it holds the distance registry (names -> factories
policy -> `bomrl.core.distances.Distance`), which the command line validates names against.

    # mymod.py, loaded with `bomrl train --plugins mymod --distance hellinger ...`
    from bomrl.core import register_distance
    from bomrl.core.distances import state_distance

    def hellinger(policy):             # factory: Policy -> Distance
        def d2(dist_phi, dist_theta):  # action-distribution parameters per state -> squared distance [...]
            ...
        return state_distance(d2, "hellinger")

    register_distance("hellinger", hellinger)
"""

from __future__ import annotations

from collections.abc import Callable

from bomrl.errors import ConfigError
from bomrl.registry import Registry

# the three distances of eq. (1); the aliases are the names the tabular track and older runs use
DISTANCES = Registry("distance", "distance")
DISTANCES.register("d1", "bomrl.core.distances:d1", aliases=("kl",))        # KL(π_φ ‖ π_θ)
DISTANCES.register("d2", "bomrl.core.distances:d2", aliases=("rkl",))       # KL(π_θ ‖ π_φ)
DISTANCES.register("d3", "bomrl.core.distances:d3", aliases=("euclid",))    # ‖θ − φ‖²
BUILTIN = ("d1", "d2", "d3", "kl", "rkl", "euclid")


def register_distance(name: str, factory: Callable, overwrite: bool = False) -> None:
    """Register factory(policy) -> Distance as `name` (usable as BoMrlConfig.distance / --distance)."""
    if name in BUILTIN:
        raise ConfigError(f"distance name {name!r} is reserved for a built-in distance")
    DISTANCES.register(name, factory, overwrite=overwrite)


def distance_names() -> list[str]:
    """Every usable distance name: d1, d2, d3, their aliases kl, rkl, euclid, then registered ones."""
    return [*BUILTIN, *DISTANCES.names()[3:]]
