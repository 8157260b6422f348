"""The pieces of BO-MRL's implicit hypergradient ∇_φ J_τ(π_θ'(φ)) (docs/MATH.md §3, Prop. 2, eqs. 8 and 10).

`root_vjp` is the general piece (in the spirit of jaxopt's root_vjp): with the inner optimality
condition F(θ, x) = ∇_θ L(θ, x) = 0 at θ', and an outer gradient g = ∇_θ J at θ',

    solve (∇²_θθ L) v = g                with `linear_solve` (CG on Hessian-vector products by
                                         default; `dense_linear_solve` for small problems)
    return −∇²_xθ L · v                  by one vjp of x ↦ ∇_θ L(θ', x)

x is any pytree of the loss's inputs; BO-MRL differentiates in x = (φ, Q): the loss depends on φ
directly (the distance, θ_0) and through the Q estimate of the meta-policy's data, and how Q depends
on φ is the caller's choice, composed by the chain rule:

    constant Q        eq. (8)/(10), "practical": the ∇_φ Q term is dropped.
    q_fn(φ)           Prop. 2 with an exact differentiable Q (e.g. tabular evaluation), "exact".
    `score_q`         Prop. 2 with the Appendix C estimator from the meta-policy's own episodes, "score":
                      ∇_φ Q(s_t, a_t) ≈ Σ_{t' > t} γ^{t'−t} ∇_φ log π_φ(a_t'|s_t') A_t'.
                      This is γ/(1−γ) E_{σ^{(s,a)}}[∇ log π A] with σ normalised by (1−γ) and started
                      at s' ~ P(·|s, a), i.e. at the NEXT step (same convention as
                      `bomrl.tabular.mdp.successor_visitation`). Contracted with a cotangent c_t on Q_t:
                      Σ_t c_t ∇_φ Q_t = ∇_φ Σ_{t'} log π_φ(a_t'|s_t') A_t' C_t',  C_t' = Σ_{t<t'} γ^{t'−t} c_t,
                      a discounted forward cumsum within each episode (last axis = time).

`bomrl.core.adaptation.adapt` uses `root_vjp` as the derivative of its implicit mode, so that
jax.vjp(adapt, φ) is this hypergradient; `bomrl_hypergradient` is the same at a given solution θ'.
Hypergradients are for ONE task; vmap over tasks and average for the meta-step.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bomrl.core.cg import cg_solve
from bomrl.core.policies import Policy
from bomrl.core.tree import tree_norm
from bomrl.errors import check_choice

MODES = ("practical", "exact", "score")


LinearSolve = Callable[[Callable[[Any], Any], Any], tuple[Any, dict]]
LINEAR_STATS = ("cg/iterations", "cg/residual", "cg/rel_residual", "cg/failed")   # every linear solve's metrics


def cg_linear_solve(max_iters: int = 50, tol: float = 1e-10, damping: float = 0.0) -> LinearSolve:
    """(matvec, b) -> (x, metrics): (A + damping·I) x = b by conjugate gradients (`cg_solve`),
    metrics `LINEAR_STATS`."""
    def solve(matvec, b):
        return cg_solve(matvec, b, max_iters=max_iters, tol=tol, damping=damping)
    return solve


def dense_linear_solve(damping: float = 0.0) -> LinearSolve:
    """(matvec, b) -> (x, metrics): builds A column by column (one matvec per parameter) and solves
    (A + damping·I) x = b exactly (LU): for tests and small problems. metrics `LINEAR_STATS`
    (iterations = the dimension, the residual measured)."""
    def solve(matvec, b):
        flat_b, unravel = ravel_pytree(b)
        n = flat_b.shape[0]
        cols = jax.vmap(lambda e: ravel_pytree(matvec(unravel(e)))[0])(jnp.eye(n, dtype=flat_b.dtype))
        a = cols.T + damping * jnp.eye(n, dtype=flat_b.dtype)   # matvec(e_i) is column i
        x = jnp.linalg.solve(a, flat_b)
        res = jnp.linalg.norm(a @ x - flat_b)
        rel = res / jnp.maximum(jnp.linalg.norm(flat_b), jnp.finfo(flat_b.dtype).tiny)
        return unravel(x), {"cg/iterations": jnp.asarray(n), "cg/residual": res, "cg/rel_residual": rel,
                            "cg/failed": (~jnp.all(jnp.isfinite(x))).astype(flat_b.dtype)}
    return solve


def root_vjp(loss_fn: Callable[[Any, Any], jax.Array], theta, x, outer_grad, *, linear_solve: LinearSolve | None = None,
             damping: float = 0.0, cg_iters: int = 50, cg_tol: float = 1e-10) -> tuple[Any, Any, dict]:
    """Implicit-function-theorem vjp of θ'(x) defined by ∇_θ loss_fn(θ', x) = 0.

    Args:
      loss_fn: (theta, x) -> scalar inner loss (minimised at theta).
      theta, x: the inner solution and the inputs it depends on (arbitrary pytrees).
      outer_grad: g = ∇_θ J at θ' (pytree like theta).
      linear_solve: how to solve ∇²_θθ L v = g (default `cg_linear_solve(cg_iters, cg_tol, damping)`).
    Returns:
      (cotangent like x = (∂θ'/∂x)ᵀ g, v like theta, the linear solve's metrics `LINEAR_STATS`).
    """
    if linear_solve is None:
        linear_solve = cg_linear_solve(cg_iters, cg_tol, damping)
    grad_theta = jax.grad(loss_fn, argnums=0)

    def hvp(v):
        return jax.jvp(lambda th: grad_theta(th, x), (theta,), (v,))[1]

    v, info = linear_solve(hvp, outer_grad)
    _, mixed_vjp = jax.vjp(lambda xx: grad_theta(theta, xx), x)
    (cross,) = mixed_vjp(v)
    return jax.tree.map(jnp.negative, cross), v, info


def discounted_forward_cumsum(c: jax.Array, gamma: float) -> jax.Array:
    """C_t = Σ_{k<t} γ^{t−k} c_k along the last axis (strictly earlier steps). [..., H] -> [..., H]."""
    def step(carry, x):  # carry = C_t;  C_{t+1} = γ (C_t + c_t)
        return gamma * (carry + x), carry

    _, out = jax.lax.scan(step, jnp.zeros(c.shape[:-1], c.dtype), jnp.moveaxis(c, -1, 0))
    return jnp.moveaxis(out, 0, -1)


def score_q(policy: Policy, gamma: float) -> Callable[[Any, Any], jax.Array]:
    """q(φ, data) = data.q, the Q estimate of π_φ's own episodes, as a function of φ whose derivative
    is the Appendix C estimator (module docstring): a cotangent c on Q maps to
    ∇_φ Σ_t' log π_φ(a_t'|s_t') A_t' C_t' with C = `discounted_forward_cumsum`(c, γ) (steps of weight 0
    contribute nothing; c carries the weights already). data: `InnerData` of episodes [E, H, ...]
    with data.adv = A^{π_φ}. Only φ is differentiated (the data are samples)."""
    @jax.custom_vjp
    def q(phi, data):
        return data.q

    def fwd(phi, data):
        return data.q, (phi, data)

    def bwd(res, ct):
        phi, data = res
        coef = discounted_forward_cumsum(ct, gamma) * data.adv * (data.weight > 0)

        def score_obj(ph):
            return jnp.sum(policy.log_prob(policy.apply(ph, data.obs), data.act) * coef)

        return jax.grad(score_obj)(phi), zero_cotangent(data)

    q.defvjp(fwd, bwd)
    return q


def zero_cotangent(tree):
    """The zero cotangent of a pytree of arrays (float0 for integer and boolean leaves)."""
    def zero(x):
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.inexact):
            return jnp.zeros_like(x)
        return np.zeros(x.shape, jax.dtypes.float0)
    return jax.tree.map(zero, tree)


def bomrl_hypergradient(inner_loss: Callable[..., tuple[jax.Array, dict]], theta, phi, data, outer_grad, *,
                        mode: str = "practical", q_fn: Callable[[Any], jax.Array] | None = None,
                        policy: Policy | None = None, gamma: float | None = None,
                        linear_solve: LinearSolve | None = None, damping: float = 0.0,
                        cg_iters: int = 50, cg_tol: float = 1e-10) -> tuple[Any, dict]:
    """∇_φ J_τ(π_θ') for one task of BO-MRL at a given inner solution θ'.

    Args:
      inner_loss: (theta, phi, data, q=None) -> (loss, metrics), from `make_inner_loss`.
      theta: θ' (the inner solution), phi: φ, data: `InnerData` of the meta-policy's samples (for
        mode "score" its arrays are episodes [E, H, ...], with data.adv the advantages A^{π_φ}).
      outer_grad: g = ∇_θ J(π_θ)|θ' (e.g. `policy_gradient` on fresh data of π_θ', or exact).
      mode: how Q depends on φ: "practical" (constant) | "exact" (needs q_fn: φ -> Q on data's (s, a))
        | "score" (`score_q`; needs policy, gamma).
      linear_solve: default `cg_linear_solve(cg_iters, cg_tol, damping)`.
    Returns (hypergradient like phi, metrics with cg/* and hyper/{norm, score_norm}).
    """
    check_choice("hypergradient mode", mode, MODES)
    if mode == "exact" and q_fn is None:
        raise ValueError("mode='exact' needs q_fn(phi) -> Q on the data's state-action pairs")
    if mode == "score" and (policy is None or gamma is None):
        raise ValueError("mode='score' needs policy and gamma")
    q_of = {"practical": lambda ph: jax.lax.stop_gradient(data.q), "exact": q_fn,
            "score": lambda ph: score_q(policy, gamma)(ph, data)}[mode]
    q, q_vjp = jax.vjp(q_of, phi)

    def loss(th, x):
        return inner_loss(th, x[0], data._replace(q=x[1]))[0]

    (direct, q_ct), _, metrics = root_vjp(loss, theta, (phi, q), outer_grad, linear_solve=linear_solve,
                                          damping=damping, cg_iters=cg_iters, cg_tol=cg_tol)
    metrics = dict(metrics)
    hg = direct
    if mode != "practical":   # the chain rule through Q(φ)
        (through_q,) = q_vjp(q_ct)
        hg = jax.tree.map(jnp.add, direct, through_q)
        if mode == "score":
            metrics["hyper/score_norm"] = tree_norm(through_q)
    metrics["hyper/norm"] = tree_norm(hg)
    return hg, metrics
