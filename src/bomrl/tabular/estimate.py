"""Sample-based estimates on tabular MDPs: the JAX-native environment path (no gymnasium).

The paper evaluates Q by Monte-Carlo sampling (Appendix A). Here every estimate comes from
simulated episodes of the known MDP, stepped in JAX (`lax.scan` over time, vectorised over
episodes and, by the caller's `vmap`, over tasks):

- Q̂(s, a): `rollouts_per_pair` episodes started in (s, a) (exploring starts, so every pair has an
  estimate), discounted return truncated at `horizon`.
- ∇_phi Q̂(s, a) (Appendix C, score function): on the same episodes,
  Σ_{t≥1} γ^t ∇_phi log pi_phi(a_t|s_t) Â(s_t, a_t), whose expectation is
  γ/(1-γ) E_{σ^{(s,a)}}[∇ log pi A] (see mdp.successor_visitation).
- ν̂(s): `visitation_episodes` episodes from rho, discounted occupancy normalised to sum to 1.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bomrl.tabular.mdp import TabularMDP


class MCEstimate(NamedTuple):
    Q: jax.Array       # [S, A]
    dQ: jax.Array      # [S, A, S, A]  ∂Q(s,a)/∂phi(s',a') estimate
    nu: jax.Array      # [S]
    env_steps: jax.Array  # scalar, number of simulated transitions


def _draw(cdf: jax.Array, u: jax.Array) -> jax.Array:
    """One draw per row of cumulative probabilities [N, K] by inverse CDF with uniforms u [N]
    (one uniform per draw: ~K times fewer random numbers than Gumbel-max, the cost that matters)."""
    return jnp.minimum(jnp.sum(cdf < u[:, None] * cdf[..., -1:], axis=-1), cdf.shape[-1] - 1)


def simulate(mdp: TabularMDP, pi: jax.Array, key: jax.Array, s0: jax.Array, a0: jax.Array | None,
             horizon: int):
    """Episodes from states s0 [N] (first action a0 [N] if given, else drawn from pi).

    Returns states [N, H], actions [N, H], rewards [N, H]. Terminal states are absorbing with zero
    reward, so stepping past the end of an episode adds nothing. All uniforms are drawn in one call.
    """
    n = s0.shape[0]
    u = jax.random.uniform(key, (horizon + 1, 2, n), pi.dtype)
    P_cdf, pi_cdf = jnp.cumsum(mdp.P, -1), jnp.cumsum(pi, -1)
    if a0 is None:
        a0 = _draw(pi_cdf[s0], u[-1, 0])

    def step(carry, u_t):
        s, a = carry
        s_next = _draw(P_cdf[s, a], u_t[0])
        a_next = _draw(pi_cdf[s_next], u_t[1])
        return (s_next, a_next), (s, a, mdp.r[s, a])

    _, (S, A, R) = jax.lax.scan(step, (s0, a0), u[:horizon])
    return S.T, A.T, R.T


def mc_estimate(mdp: TabularMDP, phi: jax.Array, key: jax.Array, rollouts_per_pair: int = 10,
                visitation_episodes: int = 200, horizon: int = 40) -> MCEstimate:
    """Monte-Carlo Q̂, ∇_phi Q̂ and ν̂ for the softmax policy with logits phi, from fresh episodes."""
    S, A = mdp.num_states, mdp.num_actions
    pi = jax.nn.softmax(phi, axis=-1)
    k_q, k_nu, k_rho = jax.random.split(key, 3)
    disc = mdp.gamma ** jnp.arange(horizon, dtype=pi.dtype)

    # Q̂ by exploring starts: every (s, a) pair, rollouts_per_pair episodes each.
    s0 = jnp.repeat(jnp.arange(S), A * rollouts_per_pair)
    a0 = jnp.tile(jnp.repeat(jnp.arange(A), rollouts_per_pair), S)
    st, at, rt = simulate(mdp, pi, k_q, s0, a0, horizon)
    G = (rt @ disc).reshape(S, A, rollouts_per_pair)
    Q = G.mean(-1)

    # ∇_phi Q̂ (Appendix C): Σ_{t≥1} γ^t (e_{a_t} − pi(s_t)) Â(s_t, a_t) placed at state s_t.
    Ahat = Q - jnp.sum(pi * Q, -1, keepdims=True)
    score = jax.nn.one_hot(at, A, dtype=pi.dtype) - pi[st]               # [N, H, A]
    weight = (disc * (jnp.arange(horizon) >= 1))[None, :] * Ahat[st, at]  # [N, H]
    pair = jnp.arange(S * A * rollouts_per_pair) // rollouts_per_pair    # start pair of each episode
    rows = (pair[:, None] * S + st).ravel()                               # (start pair, s_t)
    dQ = jnp.zeros((S * A * S, A), pi.dtype).at[rows].add((weight[..., None] * score).reshape(-1, A))
    dQ = dQ.reshape(S, A, S, A) / rollouts_per_pair

    # ν̂ from rho: discounted occupancy of the sampled episodes, normalised over the horizon.
    starts = jax.random.choice(k_rho, S, (visitation_episodes,), p=mdp.rho)
    sv, _, _ = simulate(mdp, pi, k_nu, starts, None, horizon)
    occ = jnp.zeros(S, pi.dtype).at[sv.ravel()].add(jnp.broadcast_to(disc, sv.shape).ravel())
    nu = occ / occ.sum()
    steps = jnp.asarray((S * A * rollouts_per_pair + visitation_episodes) * horizon)
    return MCEstimate(Q=Q, dQ=dQ, nu=nu, env_steps=steps)
