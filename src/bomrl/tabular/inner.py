"""The tabular within-task algorithm Alg(pi_phi, λ, τ): eq. (1), solved to optimality per state.

    pi'(·|s) = argmax_p  Σ_a p(a) Q(s, a) − λ d²(pi_phi(·|s), p)

Distances (docs/MATH.md §1), named as on the command line:
    "kl"     d1² = KL(pi_phi ‖ p)   p(a) = λ pi_phi(a) / (μ − Q(a)),  μ > max Q with Σ p = 1
    "rkl"    d2² = KL(p ‖ pi_phi)   p(a) ∝ pi_phi(a) exp(Q(a) / λ)  (closed form)
    "euclid" d3² = ‖θ_s − phi_s‖²   on the logits of state s; damped Newton ascent from phi_s

Every solver returns the adapted LOGITS θ' [S, A] (log p for d1/d2), is a pure JAX function of
(phi, Q) and is differentiable by unrolling, which the ground-truth tests rely on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DISTANCES = ("kl", "rkl", "euclid")
PAPER_DISTANCE_NAMES = {"kl": "d1 (Alg(1))", "rkl": "d2 (Alg(2))", "euclid": "d3 (Alg(3))"}


def alg_rkl(phi: jax.Array, Q: jax.Array, lam: float) -> jax.Array:
    """d2: log p = log pi_phi + Q/λ (normalised).  [S, A] -> [S, A]"""
    return jax.nn.log_softmax(jax.nn.log_softmax(phi, axis=-1) + Q / lam, axis=-1)


def kl_multiplier(pi: jax.Array, Q: jax.Array, lam: float, iters: int = 100) -> jax.Array:
    """μ(s) > max_a Q(s, a) solving Σ_a λ pi(a|s) / (μ − Q(s, a)) = 1, per state  [S].

    f(μ) = Σ λ pi / (μ − Q) − 1 is convex and decreasing on (max Q, ∞). Newton's method started at
    μ0 = Q_k + λ pi_k (k = argmax Q, so f(μ0) ≥ 0) increases monotonically to the root and never
    leaves the domain; near a pole each step at least doubles μ − max Q, so 100 steps reach float64
    precision from any start.
    """
    k = jnp.argmax(Q, axis=-1)
    qk = jnp.take_along_axis(Q, k[:, None], -1)[:, 0]
    pk = jnp.take_along_axis(pi, k[:, None], -1)[:, 0]
    mu0 = qk + lam * pk

    def newton(_, mu):
        gap = mu[:, None] - Q
        f = jnp.sum(lam * pi / gap, -1) - 1.0
        df = -jnp.sum(lam * pi / gap**2, -1)
        return mu - f / df

    return jax.lax.fori_loop(0, iters, newton, mu0)


def alg_kl(phi: jax.Array, Q: jax.Array, lam: float, iters: int = 100) -> jax.Array:
    """d1: p(a) = λ pi_phi(a) / (μ − Q(a)); returns log p, renormalised against round-off."""
    pi = jax.nn.softmax(phi, axis=-1)
    mu = kl_multiplier(pi, Q, lam, iters)
    p = lam * pi / (mu[:, None] - Q)
    return jnp.log(p) - jnp.log(jnp.sum(p, -1, keepdims=True))


def euclid_objective(theta_s, phi_s, q_s, lam):
    """Per-state objective of Alg(3): softmax(θ_s)·Q(s) − λ‖θ_s − phi_s‖²."""
    return jax.nn.softmax(theta_s) @ q_s - lam * jnp.sum((theta_s - phi_s) ** 2)


def _euclid_state(phi_s, q_s, lam, iters, tol):
    f = lambda th: euclid_objective(th, phi_s, q_s, lam)  # noqa: E731
    grad, hess = jax.grad(f), jax.hessian(f)
    eye = jnp.eye(phi_s.shape[0], dtype=phi_s.dtype)
    steps = 0.5 ** jnp.arange(30, dtype=phi_s.dtype)

    def newton(th):
        g, H = grad(th), hess(th)
        # Make the model strictly concave where f is not (possible when λ is small): shift the
        # Hessian's spectrum below -λ. At a strict local maximum the shift is 0 (pure Newton).
        top = jax.lax.stop_gradient(jnp.max(jnp.linalg.eigvalsh(H)))
        shift = jnp.maximum(0.0, top + lam)
        d = -jnp.linalg.solve(H - shift * eye, g)
        # Backtracking (Armijo): the first step in 1, 1/2, 1/4, ... that increases f enough.
        # The slack of a few ulps lets the full Newton step through once f is flat to round-off;
        # without it, Armijo rejects every step there and convergence stalls near |g| ~ 1e-8.
        f0 = f(th)
        vals = jax.vmap(lambda t: f(th + t * d))(steps)
        ok = vals >= f0 + 1e-4 * steps * (g @ d) - 1e-14 * (1.0 + jnp.abs(f0))
        t = jnp.where(jnp.any(ok), steps[jnp.argmax(ok)], 0.0)
        return th + t * d

    if tol is None:  # fixed iteration count: differentiable by unrolling (ground-truth tests)
        theta, _ = jax.lax.scan(lambda th, _: (newton(th), None), phi_s, None, length=iters)
        return theta

    def cond(carry):
        th, k = carry
        return (k < iters) & (jnp.max(jnp.abs(grad(th))) > tol)

    theta, _ = jax.lax.while_loop(cond, lambda c: (newton(c[0]), c[1] + 1), (phi_s, 0))
    return theta


def alg_euclid(phi: jax.Array, Q: jax.Array, lam: float, iters: int = 40, tol: float | None = None) -> jax.Array:
    """d3: per-state damped Newton ascent on the logits from θ = phi (converges to the local
    maximum reached from the meta-policy; the unique maximum when λ makes it concave).

    tol=None runs exactly `iters` steps (reverse-differentiable); a tolerance stops each state once
    max|∇| ≤ tol (a while loop: faster, used where the solution is not differentiated through,
    i.e. everywhere the implicit hypergradient is used)."""
    return jax.vmap(_euclid_state, in_axes=(0, 0, None, None, None))(phi, Q, lam, iters, tol)


def adapt(phi: jax.Array, Q: jax.Array, lam: float, distance: str, differentiable: bool = True) -> jax.Array:
    """One-time policy adaptation Alg(pi_phi, λ, τ) given Q^{pi_phi}_τ (exact or estimated).

    differentiable=False lets the d3 solver stop at convergence (not reverse-differentiable)."""
    if distance == "kl":
        return alg_kl(phi, Q, lam)
    if distance == "rkl":
        return alg_rkl(phi, Q, lam)
    if distance == "euclid":
        return alg_euclid(phi, Q, lam, tol=None if differentiable else 1e-13)
    raise ValueError(f"unknown distance {distance!r}; allowed: {', '.join(DISTANCES)}")


def divergence(phi: jax.Array, theta: jax.Array, distance: str) -> jax.Array:
    """d²(pi_phi(·|s), pi_theta(·|s)) per state  [S]."""
    if distance == "euclid":
        return jnp.sum((theta - phi) ** 2, -1)
    lp, lq = jax.nn.log_softmax(phi, -1), jax.nn.log_softmax(theta, -1)
    if distance == "kl":
        return jnp.sum(jnp.exp(lp) * (lp - lq), -1)
    if distance == "rkl":
        return jnp.sum(jnp.exp(lq) * (lq - lp), -1)
    raise ValueError(f"unknown distance {distance!r}; allowed: {', '.join(DISTANCES)}")


def pg_step(phi: jax.Array, nu: jax.Array, Q: jax.Array, step: float) -> jax.Array:
    """One policy-gradient step θ' = phi + step · E_{s~ν, a~pi_phi}[∇ log pi_phi(a|s) Q(s, a)].

    For the tabular softmax the expectation is ν(s) pi(a|s) (Q(s, a) − V(s)). With step = 1/(2λ)
    this is exactly the first-order expansion of eq. (2) with d3 (Appendix H), i.e. MAML's inner step.
    Differentiating it w.r.t. phi gives MAML's meta-gradient: the data (ν, Q and the sampling
    policy pī) are constants; only ∇ log pi_phi depends on phi (MAML ignores ∇_phi Q, docs/MATH.md §3).
    """
    nu, Q = jax.lax.stop_gradient(nu), jax.lax.stop_gradient(Q)
    pi = jax.nn.softmax(phi, axis=-1)
    pi_bar = jax.lax.stop_gradient(pi)
    # Σ_a pī(a) (e_a − pi_phi) Q(a) = pī ⊙ Q − pi_phi (pī · Q)
    score_q = pi_bar * Q - pi * jnp.sum(pi_bar * Q, -1, keepdims=True)
    return phi + step * nu[:, None] * score_q
