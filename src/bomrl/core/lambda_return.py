"""The λ-return of an n-step rollout from persistent environments, as one pure function.

Xu, van Hasselt & Silver (2018), "Meta-Gradient Reinforcement Learning", eq. (2)-(3): the
λ-return G^λ_η with η = (γ, λ),

    G_t = r_t + γ_t [ (1 − λ_t) v(s'_t) + λ_t G_{t+1} ],

written per step so that it also handles episode ends inside the rollout:

- `discounts[t]` = γ (1 − terminated_t): a termination stops bootstrapping (γ_t = 0);
- `next_values[t]` = v(s'_t), the value of the TRUE next state of step t (before any automatic
  reset), so a time-limit truncation bootstraps from the state where it was cut;
- `cuts[t]` = 1 if the episode ended at t (terminated or truncated): then G_{t+1} belongs to another
  episode and is not used (λ_t = 0 there);
- the last step bootstraps: G_{n−1} = r_{n−1} + γ_{n−1} v(s'_{n−1}).

λ = 1, no cuts: the bootstrapped n-step Monte-Carlo return; λ = 0: the one-step TD target.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def lambda_return(rewards, discounts, next_values, cuts, lam):
    """G^λ [n, ...] of a rollout; every argument [n, ...] (time first), `lam` a scalar or [n, ...].

    Differentiable in rewards, discounts, next_values and lam (the meta-gradient differentiates it
    in γ and λ). See the module docstring for the recursion and the meaning of each input."""
    lam_t = jnp.broadcast_to(lam, rewards.shape) * (1.0 - cuts)

    def back(g_next, x):
        r, d, v, lt = x
        g = r + d * ((1.0 - lt) * v + lt * g_next)
        return g, g

    _, g = jax.lax.scan(back, next_values[-1], (rewards, discounts, next_values, lam_t), reverse=True)
    return g
