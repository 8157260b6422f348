"""Sampled batches as jax arrays with advantages: the input of every loss in `bomrl.algos`.

`process_batch` turns sampler arrays (obs, act, rew, mask) [T, E, H, ...] into `Data` using the
shared advantage pipeline `bomrl.core.advantages.estimate_advantages` (discounted returns, GAE,
per-task linear feature baseline, per-task normalisation; defaults in docs/BASELINES.md), or the
paper's released scripts' Q (`QSettings`: Monte-Carlo Q centred per task, extended by a
continuation rollout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from bomrl.core.advantages import continuation_rewards, estimate_advantages, normalize_advantages
from bomrl.errors import check, check_literals
from bomrl.limits import MAX_COUNT, check_int, check_unit_interval

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
        check_literals(self)   # every Literal[...] field of the whole config (its subclasses' too)
        check_unit_interval("discount", self.discount)
        check_unit_interval("gae_lambda", self.gae_lambda)
        getattr(super(), "__post_init__", lambda: None)()


@dataclass(frozen=True)
class QSettings:
    """How Q is estimated from a batch, for the algorithms that can run the paper's released-scripts
    protocol (BO-MRL, MAML-TRPO; mixed in beside `AdvantageSettings`)."""

    advantage_estimator: Literal["gae", "centred-mc"] = "gae"
    """gae = GAE(gae_lambda) with the per-task linear feature baseline (the MAML family's); centred-mc
    = the Monte-Carlo return minus its mean over the task's batch, no baseline (the paper's released
    scripts, 36902121699). normalize_advantages then standardises either"""
    continuation: int = 0
    """steps at the END of each sampled episode that are a continuation rollout, not data: their
    discounted rewards extend the Monte-Carlo Q of the steps before them, which alone enter the
    losses and the reported return (the released scripts: 200 more steps after each 200-step
    episode, so sample with --horizon 400). 0 = none"""

    def __post_init__(self):
        check_int("continuation", self.continuation, 0, MAX_COUNT)
        check(self.continuation == 0 or self.advantage_estimator == "centred-mc" or self.gae_lambda == 1.0,
              "continuation", self.continuation, "0 unless gae_lambda is 1 or advantage_estimator is centred-mc")
        getattr(super(), "__post_init__", lambda: None)()


# The Q of the paper's released scripts (36902121699, 36935422779): γ 0.995, the Monte-Carlo return
# of each 200-step episode extended by up to 200 more steps, centred per task, not standardised
RELEASED_Q = {"discount": 0.995, "advantage_estimator": "centred-mc", "normalize_advantages": False,
              "continuation": 200}


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


def process_batch(arrays, discount: float, gae_lambda: float, normalize: bool = True,
                  estimator: str = "gae", continuation: int = 0) -> Data:
    """(obs, act, rew, mask) [T, E, H, ...] -> Data with returns and advantages.

    estimator "gae": GAE with the per-task linear baseline; "centred-mc": the discounted return minus
    its mean over the task's valid steps. continuation C > 0: the last C steps only extend the
    returns of the first H − C (`continuation_rewards`); Data keeps the first H − C steps."""
    obs, act, rew, mask = arrays
    check(continuation < rew.shape[-1], "continuation", continuation, f"< the batch's horizon {rew.shape[-1]}")
    q_rew = rew
    if continuation:
        h = rew.shape[-1] - continuation
        q_rew = continuation_rewards(rew, mask, discount, continuation)
        obs, act, rew, mask = obs[..., :h, :], act[:, :, :h], rew[..., :h], mask[..., :h]
    baseline = "linear" if estimator == "gae" else "none"
    out = estimate_advantages(obs, q_rew, mask, gamma=discount, gae_lambda=gae_lambda,
                              baseline=baseline, normalize=False)
    raw = out["advantages"]
    if estimator == "centred-mc":
        n = jnp.maximum(jnp.sum(mask, axis=(1, 2), keepdims=True), 1.0)
        raw = (out["returns"] - jnp.sum(out["returns"] * mask, axis=(1, 2), keepdims=True) / n) * mask
    adv = jax.vmap(normalize_advantages)(raw, mask) if normalize else raw
    return Data(obs, act, rew, mask, out["returns"], adv, raw)
