"""Distances between the meta-policy π_φ and an adapted policy π_θ (eq. (1) of the paper).

A `Distance` is either
  - a state distance: fn(dist_phi, dist_theta) -> d² per state [...], where dist_* are the policy's
    distribution parameters at the same states (Gaussian (mean, log_std); categorical logits), or
  - a parameter distance: fn(theta, phi) -> scalar d² of the two parameter pytrees.

    d1² = KL(π_φ(·|s) ‖ π_θ(·|s))   state   (meta-policy first)
    d2² = KL(π_θ(·|s) ‖ π_φ(·|s))   state   (adapted policy first; PPO/NPG)
    d3² = ‖θ − φ‖²                  param

The task-level D²_τ(π_φ, π_θ) = E_{s~ν^{π_φ}}[d²] is `task_distance_sq`: the weighted mean over the
states of the meta-policy's data (weights = mask for samples, or exact ν(s) weights).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from bomrl.core import DISTANCES, distance_names
from bomrl.core.policies import Policy
from bomrl.errors import ConfigError



class Distance(NamedTuple):
    name: str
    kind: str  # "state" | "param"
    fn: Callable[..., jax.Array]


def d1(policy: Policy) -> Distance:
    """KL(π_φ ‖ π_θ) per state."""
    return Distance("d1", "state", lambda dist_phi, dist_theta: policy.kl(dist_phi, dist_theta))


def d2(policy: Policy) -> Distance:
    """KL(π_θ ‖ π_φ) per state."""
    return Distance("d2", "state", lambda dist_phi, dist_theta: policy.kl(dist_theta, dist_phi))


def _sq_norm(theta, phi):
    return sum(jnp.sum((a - b) ** 2) for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(phi)))


def d3(policy: Policy | None = None) -> Distance:
    """‖θ − φ‖² over every leaf of the parameter pytree (the policy is not needed)."""
    return Distance("d3", "param", _sq_norm)


def state_distance(fn: Callable[[Any, Any], jax.Array], name: str = "user") -> Distance:
    """A user distance of two action distributions at a state: fn(dist_phi, dist_theta) -> [...]."""
    return Distance(name, "state", fn)


def param_distance(fn: Callable[[Any, Any], jax.Array], name: str = "user") -> Distance:
    """A user distance of two parameter pytrees: fn(theta, phi) -> scalar."""
    return Distance(name, "param", fn)


def logit_sq_distance() -> Distance:
    """‖f_θ(s,·) − f_φ(s,·)‖² on a categorical policy's logits; for the tabular softmax this is the
    per-state d3 of eq. (1) (the tabular module's "euclid")."""
    return state_distance(lambda lp, lt: jnp.sum((lt - lp) ** 2, axis=-1), "logit_l2")


def get_distance(spec: str | Distance, policy: Policy) -> Distance:
    """Resolve a registered name (d1, d2, d3, aliases kl, rkl, euclid, or one registered with
    `bomrl.core.register_distance`) for `policy`, or pass a Distance through."""
    if not isinstance(spec, Distance):
        if not isinstance(spec, str) or spec not in DISTANCES:
            raise ConfigError(f"distance={spec!r} is invalid: allowed values are {', '.join(distance_names())}, "
                              "or a Distance from state_distance()/param_distance()")
        name, spec = spec, DISTANCES.get(spec)(policy)
        if not isinstance(spec, Distance):
            raise ConfigError(f"the distance factory registered as {name!r} returned {type(spec).__name__}, "
                              "not a Distance")
    if spec.kind not in ("state", "param"):
        raise ConfigError(f"distance kind={spec.kind!r} is invalid: allowed values are state, param")
    return spec


def weighted_mean(x: jax.Array, weight: jax.Array) -> jax.Array:
    """Σ w x / Σ w over all entries (0 if every weight is 0)."""
    w = jnp.asarray(weight, x.dtype)
    return jnp.sum(w * x) / jnp.maximum(jnp.sum(w), jnp.finfo(x.dtype).tiny)


def task_distance_sq(distance: Distance, policy: Policy, theta, phi, obs: jax.Array,
                     weight: jax.Array) -> jax.Array:
    """D²_τ(π_φ, π_θ): weighted mean over states obs [..., obs_dim] (weights [...]) or the parameter
    distance. Differentiable in both θ and φ (the mixed derivative is part of the hypergradient)."""
    if distance.kind == "param":
        return distance.fn(theta, phi)
    return weighted_mean(distance.fn(policy.apply(phi, obs), policy.apply(theta, obs)), weight)
