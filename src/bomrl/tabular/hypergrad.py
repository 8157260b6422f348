"""Hypergradients ∇_phi J_τ(Alg(pi_phi, λ, τ)) for the tabular softmax meta-policy.

Three independent computations, which the tests hold equal to 1e-6 in float64:

1. `hypergradient` — Proposition 1 (Appendices K.1, L.1): implicit differentiation of the
   constrained per-state problem (1). With G(s, a) = ∂J(pi')/∂pi'(a|s) = ν^{pi'}(s) Q^{pi'}(s, a)/(1-γ)
   and K(s) = M⁻¹ − M⁻¹11ᵀM⁻¹/(1ᵀM⁻¹1), M(s) = λ ∇²_p d²(pi_phi(·|s), p) at p = pi':
       ∇_phi J = Σ_s (∂Q^{pi_phi}(s,·)/∂phi)ᵀ w(s) − λ Σ_s ∂/∂phi [∇_p d²(pi_phi(·|s), p)·w(s)],  w = K G.
   For d3 (logit space, unconstrained) the same shape arises with w(s) = J_softmax(θ'_s) z_s,
   z_s = −H_s⁻¹ ∇_{θ_s} J(pi'), H_s the per-state Hessian of the Alg(3) objective.
   The first term is the ∇_phi Q term of Appendix C (Prop. 2 keeps it, eq. (8) and MAML drop it):
   Σ_{s,a} w(s,a) ∂Q(s,a)/∂phi(s',a') = γ/(1-γ) u(s') pi(a'|s') A(s',a'), u(s') = Σ w(s,a) σ^{(s,a)}(s').
2. `meta_objective` + `jax.grad` — automatic differentiation through exact policy evaluation and
   the (unrolled) exact inner solution: the ground truth.
3. Central finite differences of `meta_objective` (in the tests).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bomrl.tabular import inner
from bomrl.tabular.mdp import TabularMDP, evaluate, expected_return, grad_q_tabular, softmax_policy, visitation


def meta_objective(mdp: TabularMDP, phi: jax.Array, lam: float, distance: str) -> jax.Array:
    """J_τ(Alg(pi_phi, λ, τ)) with exact Q^{pi_phi}; differentiable end to end."""
    _, Q = evaluate(mdp, softmax_policy(phi))
    theta = inner.adapt(phi, Q, lam, distance)
    return expected_return(mdp, softmax_policy(theta))


def outer_gradient(mdp: TabularMDP, theta: jax.Array) -> jax.Array:
    """G(s, a) = ∂J(pi)/∂pi(a|s) at pi = softmax(theta): ν^pi(s) Q^pi(s, a) / (1-γ)  [S, A]."""
    pi = softmax_policy(theta)
    _, Q = evaluate(mdp, pi)
    return visitation(mdp, pi)[:, None] * Q / (1.0 - mdp.gamma)


def softmax_jvp(p, x):
    """J_softmax(θ) x = p ⊙ x − p (p·x), per state (J symmetric)."""
    return p * x - p * jnp.sum(p * x, -1, keepdims=True)


def implicit_weights(phi: jax.Array, theta: jax.Array, Q: jax.Array, G: jax.Array, lam: float,
                     distance: str) -> tuple[jax.Array, jax.Array]:
    """Per-state pieces of Prop. 1: returns (w [S, A], local [S, A]).

    ∇_phi J = (∂Q/∂phi)ᵀ w + local, where `local` is the derivative through the distance's
    explicit dependence on pi_phi (−λ ∂/∂phi ∇_p d²·w for d1/d2; 2λ z for d3).
    G is the outer gradient w.r.t. the adapted policy's probabilities (d1, d2) — for d3 we need
    ∇_θ J = J_softmax(θ') G, computed here from G.
    """
    pi = softmax_policy(phi)
    p = softmax_policy(theta)
    if distance in ("kl", "rkl"):
        # M(s) = λ diag(m): d1 m = pi/p², d2 m = 1/p. K G = M⁻¹G − M⁻¹1 (1ᵀM⁻¹G)/(1ᵀM⁻¹1).
        minv = (p**2 / pi if distance == "kl" else p) / lam
        w = minv * G - minv * jnp.sum(minv * G, -1, keepdims=True) / jnp.sum(minv, -1, keepdims=True)
        if distance == "kl":
            # ∇_p d1²·w = −Σ pi w / p ;  −λ ∂/∂phi_s of it = λ J_softmax(phi_s) (w / p)
            local = lam * softmax_jvp(pi, w / p)
        else:
            # ∇_p d2²·w = Σ w (log p + 1 − log pi);  −λ ∂/∂phi_s = λ (w − pi Σ w) = λ w (Σ w = 0)
            local = lam * (w - pi * jnp.sum(w, -1, keepdims=True))
        return w, local
    if distance == "euclid":
        g_theta = softmax_jvp(p, G)  # ∇_θ J(pi_θ) at θ'

        def hess_s(th, ph, q):
            return jax.hessian(inner.euclid_objective)(th, ph, q, lam)

        H = jax.vmap(hess_s)(theta, phi, Q)                    # [S, A, A]
        z = -jnp.linalg.solve(H, g_theta[..., None])[..., 0]   # z_s = −H_s⁻¹ ∇_{θ_s} J
        # F(θ, phi) = J_softmax(θ) Q − 2λ(θ − phi);  ∂F/∂phi = J_softmax(θ) ∂Q/∂phi + 2λ I
        return softmax_jvp(p, z), 2.0 * lam * z
    raise ValueError(f"unknown distance {distance!r}; allowed: {', '.join(inner.DISTANCES)}")


def contract_dq(dQ: jax.Array, w: jax.Array) -> jax.Array:
    """Σ_{s,a} w(s, a) ∂Q(s, a)/∂phi(s', a')  [S, A], from a Jacobian dQ [S, A, S, A]."""
    return jnp.einsum("sa,satb->tb", w, dQ)


def hypergradient(mdp: TabularMDP, phi: jax.Array, lam: float, distance: str,
                  include_dq: bool = True) -> tuple[jax.Array, dict]:
    """Prop. 1 with exact quantities: (∇_phi J_τ(Alg(pi_phi, λ, τ)) [S, A], diagnostics)."""
    pi = softmax_policy(phi)
    _, Q = evaluate(mdp, pi)
    theta = inner.adapt(phi, Q, lam, distance, differentiable=False)
    G = outer_gradient(mdp, theta)
    w, local = implicit_weights(phi, theta, Q, G, lam, distance)
    grad = local + (contract_dq(grad_q_tabular(mdp, pi), w) if include_dq else 0.0)
    return grad, {"J_adapted": expected_return(mdp, softmax_policy(theta))}


def hypergradient_from_estimates(phi: jax.Array, theta: jax.Array, Q: jax.Array, dQ: jax.Array,
                                 G: jax.Array, lam: float, distance: str, include_dq: bool = True) -> jax.Array:
    """Prop. 1 with estimated quantities (sample mode): Q̂^{pi_phi}, ∇_phi Q̂ (score function,
    Appendix C) and Ĝ = ν̂^{pi'} Q̂^{pi'}/(1-γ) estimated from fresh episodes of pi'."""
    w, local = implicit_weights(phi, theta, Q, G, lam, distance)
    return local + (contract_dq(dQ, w) if include_dq else 0.0)


def maml_objective(mdp: TabularMDP, phi: jax.Array, step: float) -> jax.Array:
    """J_τ(phi + step · E[∇ log pi_phi Q]) with exact data: MAML's one-step objective."""
    pi = softmax_policy(phi)
    _, Q = evaluate(mdp, pi)
    theta = inner.pg_step(phi, visitation(mdp, pi), Q, step)
    return expected_return(mdp, softmax_policy(theta))


def maml_gradient(mdp: TabularMDP, phi: jax.Array, step: float) -> jax.Array:
    """MAML's meta-gradient: exact outer gradient through the inner PG step, with the inner step's
    data (ν, Q, sampling policy) held constant — it ignores ∇_phi Q, as MAML does."""
    return jax.grad(lambda ph: maml_objective(mdp, ph, step))(phi)
