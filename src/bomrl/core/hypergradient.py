"""Implicit hypergradients ∇_φ J_τ(π_θ'(φ)) of the bilevel problem (docs/MATH.md §3, Prop. 2, eqs. 8 and 10).

`root_vjp` is the general piece (in the spirit of jaxopt's root_vjp): with the inner optimality
condition F(θ, φ) = ∇_θ L(θ, φ) = 0 at θ', and an outer gradient g = ∇_θ J at θ',

    solve (∇²_θθ L + damping·I) v = g    by CG on Hessian-vector products (jvp of grad)
    return −∇²_φθ L · v                  by one vjp of φ ↦ ∇_θ L(θ', φ)

`bomrl_hypergradient` applies it to the BO-MRL inner loss in three modes:

    "practical"  eq. (8)/(10): Q is constant data; the ∇_φ Q term is dropped.
    "exact"      Prop. 2 with Q = q_fn(φ) an exact differentiable function (e.g. tabular evaluation);
                 autodiff of the mixed derivative then contains the ∇_φ Q term.
    "score"      Prop. 2 with the Appendix C estimator from the meta-policy's own episodes:
                 ∇_φ Q(s_t, a_t) ≈ Σ_{t' > t} γ^{t'−t} ∇_φ log π_φ(a_t'|s_t') A_t'.
                 This is γ/(1−γ) E_{σ^{(s,a)}}[∇ log π A] with σ normalised by (1−γ) and started at
                 s' ~ P(·|s, a), i.e. at the NEXT step (same convention as
                 `bomrl.tabular.mdp.successor_visitation`). Contracted with c_t = ∂(vᵀ∇_θ L)/∂Q_t:
                 Σ_t c_t ∇_φ Q_t = ∇_φ Σ_{t'} log π_φ(a_t'|s_t') A_t' C_t',  C_t' = Σ_{t<t'} γ^{t'−t} c_t,
                 a discounted forward cumsum within each episode (last axis = time).

Hypergradients are for ONE task; vmap over tasks and average for the meta-step.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from bomrl.core.cg import cg_solve
from bomrl.core.policies import Policy
from bomrl.core.tree import tree_norm, tree_vdot
from bomrl.errors import check_choice

MODES = ("practical", "exact", "score")


def root_vjp(loss_fn: Callable[[Any, Any], jax.Array], theta, phi, outer_grad, *, damping: float = 0.0,
             cg_iters: int = 50, cg_tol: float = 1e-10) -> tuple[Any, Any, dict]:
    """Implicit-function-theorem vjp of θ'(φ) defined by ∇_θ loss_fn(θ', φ) = 0.

    Args:
      loss_fn: (theta, phi) -> scalar inner loss (minimised at theta).
      theta, phi: the inner solution and the outer parameters (arbitrary pytrees).
      outer_grad: g = ∇_θ J at θ' (pytree like theta).
    Returns:
      (hypergrad like phi = (∂θ'/∂φ)ᵀ g, v like theta, metrics {cg/iterations, cg/residual,
      cg/rel_residual, cg/failed}).
    """
    grad_theta = jax.grad(loss_fn, argnums=0)

    def hvp(v):
        return jax.jvp(lambda th: grad_theta(th, phi), (theta,), (v,))[1]

    v, info = cg_solve(hvp, outer_grad, max_iters=cg_iters, tol=cg_tol, damping=damping)
    _, mixed_vjp = jax.vjp(lambda ph: grad_theta(theta, ph), phi)
    (cross,) = mixed_vjp(v)
    return jax.tree.map(jnp.negative, cross), v, info


def discounted_forward_cumsum(c: jax.Array, gamma: float) -> jax.Array:
    """C_t = Σ_{k<t} γ^{t−k} c_k along the last axis (strictly earlier steps). [..., H] -> [..., H]."""
    def step(carry, x):  # carry = C_t;  C_{t+1} = γ (C_t + c_t)
        return gamma * (carry + x), carry

    _, out = jax.lax.scan(step, jnp.zeros(c.shape[:-1], c.dtype), jnp.moveaxis(c, -1, 0))
    return jnp.moveaxis(out, 0, -1)


def bomrl_hypergradient(inner_loss: Callable[..., tuple[jax.Array, dict]], theta, phi, data, outer_grad, *,
                        mode: str = "practical", q_fn: Callable[[Any], jax.Array] | None = None,
                        policy: Policy | None = None, gamma: float | None = None, damping: float = 0.0,
                        cg_iters: int = 50, cg_tol: float = 1e-10) -> tuple[Any, dict]:
    """∇_φ J_τ(π_θ') for one task of BO-MRL.

    Args:
      inner_loss: (theta, phi, data, q=None) -> (loss, metrics), from `make_inner_loss`.
      theta: θ' (the inner solution), phi: φ, data: `InnerData` of the meta-policy's samples (for
        mode "score" its arrays are episodes [E, H, ...], with data.adv the advantages A^{π_φ}).
      outer_grad: g = ∇_θ J(π_θ)|θ' (e.g. `policy_gradient` on fresh data of π_θ', or exact).
      mode: "practical" | "exact" (needs q_fn: φ -> Q on data's (s, a)) | "score" (needs policy, gamma).
    Returns (hypergradient like phi, metrics with cg/* and hyper/{norm, score_norm}).
    """
    check_choice("hypergradient mode", mode, MODES)
    if mode == "exact":
        if q_fn is None:
            raise ValueError("mode='exact' needs q_fn(phi) -> Q on the data's state-action pairs")

        def loss(th, ph):
            return inner_loss(th, ph, data, q_fn(ph))[0]
    else:
        def loss(th, ph):
            return inner_loss(th, ph, data)[0]

    hg, v, metrics = root_vjp(loss, theta, phi, outer_grad, damping=damping, cg_iters=cg_iters, cg_tol=cg_tol)
    metrics = dict(metrics)
    if mode == "score":
        if policy is None or gamma is None:
            raise ValueError("mode='score' needs policy and gamma")

        def v_dot_grad(q):  # vᵀ ∇_θ L(θ', φ; q), linear in q
            g_theta = jax.grad(lambda th: inner_loss(th, phi, data, q)[0])(theta)
            return tree_vdot(g_theta, v)

        c = jax.grad(v_dot_grad)(jnp.asarray(data.q))                       # c_t = ∂(vᵀ∇_θ L)/∂Q_t
        big_c = discounted_forward_cumsum(c, gamma)                          # C_t'
        coef = jax.lax.stop_gradient(big_c * data.adv * (data.weight > 0))  # c_t carries w_t already

        def score_obj(ph):
            return jnp.sum(policy.log_prob(policy.apply(ph, data.obs), data.act) * coef)

        score = jax.grad(score_obj)(phi)
        hg = jax.tree.map(jnp.subtract, hg, score)                           # −Σ_t c_t ∇_φ Q_t
        metrics["hyper/score_norm"] = tree_norm(score)
    metrics["hyper/norm"] = tree_norm(hg)
    return hg, metrics
