"""Losses (pure functions returning (loss, metrics)) of the within-task problem and the policy gradient.

The inner loss of one task is L(θ, φ) = −surrogate(θ; φ, Q) + λ D²_τ(π_φ, π_θ), minimised over θ:

    "ratio"   eq. (2):  surrogate = Ê[ π_θ(a|s)/π_φ(a|s) · Q(s,a) ]
    "h"       eq. (7):  surrogate = Ê[ h(π_θ(a|s)/π_φ(a|s)) · Q(s,a) ],  h(x) = 2/(1+exp(−2(x−1)))
    "linear"  eq. (9), Appendix G:  surrogate = G(φ)ᵀ(θ − φ),  G(φ) = ∇_θ Ê[π_θ/π_φ Q]|_{θ=φ}

Ê is the weighted mean over the meta-policy's data: weights are the mask for sampled data, or exact
weights ν(s)π_φ(a|s) for enumerated data. The denominator π_φ(a|s) is the sampling probability and
is held constant (stop_gradient); the φ-dependence of the loss is through the distance (always) and
through Q when the caller passes Q as a function of φ (`q=q_fn(phi)`, exact Prop. 2).
Conventions: Q is the unnormalised Q = Σ_k γ^k r_{t+k} (or an advantage), as in `bomrl.tabular.mdp`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from bomrl.core.distances import Distance, get_distance, weighted_mean
from bomrl.core.policies import Policy
from bomrl.core.tree import tree_vdot
from bomrl.errors import check, check_choice

SURROGATES = ("ratio", "h", "linear")


class InnerData(NamedTuple):
    """The meta-policy's data of ONE task (add a leading task axis and vmap for many).

    obs    [..., obs_dim]  states (e.g. [E, H, obs_dim] episodes, or [N, obs_dim])
    act    [..., act_dim] continuous / [...] int discrete  actions taken by π_φ
    weight [...]  mask (1 valid, 0 padding) or exact probability weights
    q      [...]  Q^{π_φ}(s, a) estimates (or advantages); constant data
    adv    [...]  advantages A^{π_φ}(s, a) for the Appendix C score term (may equal q)
    logp   [...]  log π_φ(a|s) recorded when sampling (optional). None: recomputed from φ (under
                  stop_gradient); either way the ratio's denominator is a constant sampling probability.
    """

    obs: jax.Array
    act: jax.Array
    weight: jax.Array
    q: jax.Array
    adv: jax.Array
    logp: jax.Array | None = None


def h_transform(x: jax.Array) -> jax.Array:
    """h(x) = 2 / (1 + exp(−2(x − 1))) of eq. (7): h(1) = 1, h'(1) = 1, bounded in (0, 2)."""
    return 2.0 * jax.nn.sigmoid(2.0 * (x - 1.0))


def ratio_surrogate(policy: Policy, theta, obs, act, logp_sampling, q, weight, transform=None) -> jax.Array:
    """Ê[ψ(π_θ(a|s)/π_sampling(a|s)) Q]; ψ = identity or `h_transform`."""
    ratio = jnp.exp(policy.log_prob(policy.apply(theta, obs), act) - logp_sampling)
    if transform is not None:
        ratio = transform(ratio)
    return weighted_mean(ratio * q, weight)


def _sampling_logp(policy: Policy, dist_phi, data: InnerData) -> jax.Array:
    if data.logp is not None:
        return jax.lax.stop_gradient(data.logp)
    return jax.lax.stop_gradient(policy.log_prob(dist_phi, data.act))


def make_inner_loss(policy: Policy, distance: str | Distance, lam: float, surrogate: str = "h"
                    ) -> Callable[..., tuple[jax.Array, dict]]:
    """Build L(theta, phi, data, q=None) -> (loss, metrics) for one task (q defaults to data.q).

    metrics: inner/surrogate, inner/distance (λ-free D²), inner/kl (Ê KL(π_φ ‖ π_θ), reported for every
    distance). The returned function has an attribute `at_phi(phi, data, q=None) -> (θ -> (loss,
    metrics))` that computes the φ-only terms once; the solvers use it.
    """
    check_choice("surrogate", surrogate, SURROGATES)
    check(float(lam) > 0, "lam", lam, "> 0")
    dist = get_distance(distance, policy)
    transform = h_transform if surrogate == "h" else None

    def _value(theta, phi, data, q, dist_phi, logp_phi, first_order):
        dist_theta = policy.apply(theta, data.obs)
        if surrogate == "linear":
            delta = jax.tree.map(jnp.subtract, theta, phi)
            if first_order is None:  # G(φ)ᵀ(θ − φ) as a directional derivative at θ = φ (differentiable in φ)
                surr = jax.jvp(lambda th: ratio_surrogate(policy, th, data.obs, data.act, logp_phi, q, data.weight),
                               (phi,), (delta,))[1]
            else:
                surr = tree_vdot(first_order, delta)
        else:
            ratio = jnp.exp(policy.log_prob(dist_theta, data.act) - logp_phi)
            surr = weighted_mean((ratio if transform is None else transform(ratio)) * q, data.weight)
        if dist.kind == "param":
            d_sq = dist.fn(theta, phi)
        else:
            d_sq = weighted_mean(dist.fn(dist_phi, dist_theta), data.weight)
        kl = weighted_mean(policy.kl(jax.lax.stop_gradient(dist_phi), dist_theta), data.weight)
        metrics = {"inner/surrogate": surr, "inner/distance": d_sq, "inner/kl": jax.lax.stop_gradient(kl)}
        return -surr + lam * d_sq, metrics

    def loss(theta, phi, data: InnerData, q=None):
        q = data.q if q is None else q
        dist_phi = policy.apply(phi, data.obs)
        return _value(theta, phi, data, q, dist_phi, _sampling_logp(policy, dist_phi, data), None)

    def at_phi(phi, data: InnerData, q=None):
        """θ ↦ loss(θ, φ, data, q), with every φ-only quantity (π_φ at the data, the sampling
        log-probabilities, G(φ)) computed once rather than at every θ. Still a function of φ (and
        q) for autodiff: reverse mode through a solve of it is the derivative of the solve."""
        q = data.q if q is None else q
        dist_phi = policy.apply(phi, data.obs)
        logp_phi = _sampling_logp(policy, dist_phi, data)
        first_order = None
        if surrogate == "linear":
            first_order = jax.grad(lambda th: ratio_surrogate(policy, th, data.obs, data.act, logp_phi, q,
                                                              data.weight))(phi)
        return lambda theta: _value(theta, phi, data, q, dist_phi, logp_phi, first_order)

    loss.at_phi = at_phi
    return loss


def pg_surrogate(policy: Policy, params, obs, act, adv, weight) -> jax.Array:
    """Ê[log π(a|s) · A]: its gradient is the usual policy-gradient estimate (MAML-family convention:
    mean over valid steps, no γ^t factor). Use it for the outer gradient g = ∇_θ J(π_θ)|_{θ'}."""
    return weighted_mean(policy.log_prob(policy.apply(params, obs), act) * jax.lax.stop_gradient(adv), weight)


def policy_gradient(policy: Policy, params, obs, act, adv, weight) -> Any:
    """∇_params Ê[log π(a|s) A] (pytree like params)."""
    return jax.grad(lambda p: pg_surrogate(policy, p, obs, act, adv, weight))(params)


def first_order_gradient(policy: Policy, phi, data: InnerData, q=None) -> Any:
    """G(φ) = Ê[∇_φ π_φ(a|s)/π_φ(a|s) · Q] of Appendix G (a pytree like φ). Differentiating it in φ
    gives the Ê[∇²π_φ/π_φ Q] term of eq. (10) (the sampling denominator is held constant)."""
    q = data.q if q is None else q
    logp = _sampling_logp(policy, policy.apply(phi, data.obs), data)
    return jax.grad(lambda th: ratio_surrogate(policy, th, data.obs, data.act, logp, q, data.weight))(phi)
