"""Sampled batches as jax arrays with advantages: the input of every loss in `bomrl.algos`.

`process_batch` turns sampler arrays (obs, act, rew, mask) [T, E, H, ...] into `Data` using the
shared advantage pipeline `bomrl.core.advantages.estimate_advantages` (discounted returns, GAE,
per-task linear feature baseline, per-task normalisation; defaults in docs/BASELINES.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bomrl.core.advantages import estimate_advantages, normalize_advantages
from bomrl.limits import check_unit_interval


@dataclass(frozen=True)
class AdvantageSettings:
    """The knobs of `process_batch`, shared by the config of every algorithm that uses it (mixed in;
    an algorithm whose source differs re-declares the field with its own default and doc)."""

    discount: float = 0.99
    """discount γ for returns and GAE (pytorch-maml-rl, ProMP, rllab: 0.99)"""
    gae_lambda: float = 1.0
    """GAE λ (the MAML-family references: 1.0, i.e. Monte-Carlo returns minus the linear baseline)"""
    normalize_advantages: bool = True
    """standardise advantages per task (the MAML-family references: yes)"""

    def __post_init__(self):
        check_unit_interval("discount", self.discount)
        check_unit_interval("gae_lambda", self.gae_lambda)
        getattr(super(), "__post_init__", lambda: None)()


class Data(NamedTuple):
    """One batch of trajectories for T tasks (jax arrays).

    obs  [T, E, H, obs_dim];  act [T, E, H, act_dim] (or [T, E, H] int);  rew, mask, ret, adv [T, E, H]
    ret = discounted reward-to-go, adv = (normalised) GAE advantage; both 0 where mask = 0.
    adv_raw [T, E, H]: the GAE advantage before any normalisation (None where not computed).
    Loss functions take one task's slice (leading axes [E, H]) and are vmapped over T.
    """

    obs: jax.Array
    act: jax.Array
    rew: jax.Array
    mask: jax.Array
    ret: jax.Array
    adv: jax.Array
    adv_raw: jax.Array | None = None


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of x over the entries where mask = 1 (all axes of mask)."""
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def process_batch(arrays, discount: float, gae_lambda: float, normalize: bool = True) -> Data:
    """(obs, act, rew, mask) [T, E, H, ...] -> Data with returns and advantages (per-task baseline)."""
    obs, act, rew, mask = arrays
    out = estimate_advantages(obs, rew, mask, gamma=discount, gae_lambda=gae_lambda,
                              baseline="linear", normalize=False)
    adv = jax.vmap(normalize_advantages)(out["advantages"], mask) if normalize else out["advantages"]
    return Data(obs, act, rew, mask, out["returns"], adv, out["advantages"])
