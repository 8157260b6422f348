"""Finite MDPs with known dynamics, evaluated exactly by linear solves.

Everything here is a pure, differentiable JAX function of the policy, so "automatic differentiation
through exact policy evaluation" is simply `jax.grad` of these functions: the ground truth every
hypergradient implementation is tested against (docs/MATH.md §3).

Shapes: S states, A actions. A policy is a row-stochastic array pi [S, A]; its logits are phi [S, A]
with pi = softmax(phi, axis=-1) (the tabular softmax policy of the paper's Section 5.1).

Terminal states (Frozen Lake's holes and goal) are absorbing with zero reward: the reward for
falling in is paid on the transition into them, r(s, a) = Σ_s' P(s'|s, a) R(s'). The policy at a
terminal state changes nothing, so "decision states" = non-terminal states are the ones the theory
(ε, D², Var) ranges over.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class TabularMDP(NamedTuple):
    P: jax.Array         # [S, A, S] transition probabilities
    r: jax.Array         # [S, A] expected reward of taking a in s
    rho: jax.Array       # [S] initial-state distribution
    gamma: float | jax.Array
    terminal: jax.Array  # [S] bool, absorbing zero-reward states

    @property
    def num_states(self) -> int:
        return self.P.shape[0]

    @property
    def num_actions(self) -> int:
        return self.P.shape[1]


def softmax_policy(phi: jax.Array) -> jax.Array:
    """pi(a|s) = exp(phi[s, a]) / Σ_b exp(phi[s, b]).  [S, A] -> [S, A]"""
    return jax.nn.softmax(phi, axis=-1)


def policy_transitions(mdp: TabularMDP, pi: jax.Array) -> jax.Array:
    """P_pi[s, s'] = Σ_a pi(a|s) P(s'|s, a).  -> [S, S]"""
    return jnp.einsum("sa,sat->st", pi, mdp.P)


def _resolvent(mdp: TabularMDP, pi: jax.Array) -> jax.Array:
    """(I - γ P_pi)^{-1}  [S, S]; rows give discounted state occupancies from each start state."""
    S = mdp.num_states
    return jnp.linalg.inv(jnp.eye(S, dtype=pi.dtype) - mdp.gamma * policy_transitions(mdp, pi))


def evaluate(mdp: TabularMDP, pi: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Exact V^pi [S] and Q^pi [S, A] by one linear solve: V = (I - γ P_pi)^{-1} r_pi."""
    S = mdp.num_states
    r_pi = jnp.sum(pi * mdp.r, axis=-1)
    V = jnp.linalg.solve(jnp.eye(S, dtype=pi.dtype) - mdp.gamma * policy_transitions(mdp, pi), r_pi)
    Q = mdp.r + mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, V)
    return V, Q


def advantage(mdp: TabularMDP, pi: jax.Array) -> jax.Array:
    """A^pi(s, a) = Q^pi(s, a) - V^pi(s)  [S, A]."""
    V, Q = evaluate(mdp, pi)
    return Q - V[:, None]


def expected_return(mdp: TabularMDP, pi: jax.Array) -> jax.Array:
    """J(pi) = E_{s0~rho}[V^pi(s0)]  (scalar)."""
    V, _ = evaluate(mdp, pi)
    return mdp.rho @ V


def visitation(mdp: TabularMDP, pi: jax.Array) -> jax.Array:
    """ν^pi(s) = (1-γ) Σ_t γ^t Pr(s_t = s | s0 ~ rho, pi)  [S]  (sums to 1)."""
    S = mdp.num_states
    A_T = (jnp.eye(S, dtype=pi.dtype) - mdp.gamma * policy_transitions(mdp, pi)).T
    return (1.0 - mdp.gamma) * jnp.linalg.solve(A_T, mdp.rho)


def successor_visitation(mdp: TabularMDP, pi: jax.Array) -> jax.Array:
    """σ^{(s,a)}(s') of Appendix C  [S, A, S].

    σ^{(s,a)}(s') = Σ_{s1} P(s1|s, a) (1-γ) Σ_k γ^k Pr(s_k = s' | s_0 = s1, pi): the normalised
    discounted visitation of the states that FOLLOW (s, a). With it,
    ∂Q^pi(s, a)/∂phi(s', a') = γ/(1-γ) σ^{(s,a)}(s') pi(a'|s') A^pi(s', a')   (tabular softmax).
    """
    D = (1.0 - mdp.gamma) * _resolvent(mdp, pi)
    return jnp.einsum("sat,tu->sau", mdp.P, D)


def grad_q_tabular(mdp: TabularMDP, pi: jax.Array) -> jax.Array:
    """Exact Jacobian ∂Q^pi(s, a)/∂phi(s', a') for the tabular softmax (Appendix C)  [S, A, S, A]."""
    sigma = successor_visitation(mdp, pi)
    A = advantage(mdp, pi)
    return mdp.gamma / (1.0 - mdp.gamma) * sigma[:, :, :, None] * (pi * A)[None, None]


def policy_gradient(mdp: TabularMDP, phi: jax.Array) -> jax.Array:
    """Exact ∇_phi J(pi_phi) = 1/(1-γ) ν(s) pi(a|s) A(s, a) for the tabular softmax  [S, A]."""
    pi = softmax_policy(phi)
    return visitation(mdp, pi)[:, None] * pi * advantage(mdp, pi) / (1.0 - mdp.gamma)


def optimal_q(mdp: TabularMDP, iters: int = 2000, tol: float = 1e-13) -> jax.Array:
    """Q* by value iteration to tolerance (γ < 1 makes it a contraction)  [S, A]."""

    def body(carry):
        Q, _, k = carry
        Qn = mdp.r + mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, jnp.max(Q, axis=-1))
        return Qn, jnp.max(jnp.abs(Qn - Q)), k + 1

    def cond(carry):
        _, delta, k = carry
        return (delta > tol) & (k < iters)

    Q0 = jnp.zeros_like(mdp.r)
    Q, _, _ = jax.lax.while_loop(cond, body, (Q0, jnp.asarray(jnp.inf, mdp.r.dtype), 0))
    return Q


def greedy_policy(Q: jax.Array) -> jax.Array:
    """Deterministic policy putting all mass on the first maximiser of Q(s, ·)  [S, A]."""
    return jax.nn.one_hot(jnp.argmax(Q, axis=-1), Q.shape[-1], dtype=Q.dtype)


def bounded_optimal_logits(mdp: TabularMDP, bound: float, steps: int = 500) -> jax.Array:
    """θ*_B = argmax_{θ ∈ [-B, B]^{S×A}} J(softmax θ): the optimal softmax policy of a bounded
    parameter set (docs/MATH.md §4: a deterministic optimum would have infinite KL to any softmax policy).

    Projected gradient ascent on the exact J, started at the vertex +B on the greedy optimal action
    and -B elsewhere, with a step normalised by the largest gradient entry (sign-free, so it moves
    at most `bound` per step and settles on the box faces).
    """
    Qstar = optimal_q(mdp)
    theta0 = bound * (2.0 * greedy_policy(Qstar) - 1.0)
    grad_J = jax.grad(lambda th: expected_return(mdp, softmax_policy(th)))

    def step(theta, k):
        g = grad_J(theta)
        lr = 0.5 * bound / (1.0 + k) ** 0.5 / (jnp.max(jnp.abs(g)) + 1e-30)
        return jnp.clip(theta + lr * g, -bound, bound), None

    theta, _ = jax.lax.scan(step, theta0, jnp.arange(steps, dtype=theta0.dtype))
    better = expected_return(mdp, softmax_policy(theta)) >= expected_return(mdp, softmax_policy(theta0))
    return jnp.where(better, theta, theta0)
