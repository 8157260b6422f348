"""Alg(i) on tabular policies: KKT conditions, closed forms, Lemma 1/2, Appendix H."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from bomrl.tabular import inner
from bomrl.tabular.mdp import advantage, evaluate, expected_return, softmax_policy, visitation
from tabular_helpers import random_logits, random_mdp, rel_err


def _setup(seed, scale=1.0):
    mdp = random_mdp(seed)
    phi = random_logits(seed, scale=scale)
    _, Q = evaluate(mdp, softmax_policy(phi))
    return mdp, phi, Q


@pytest.mark.parametrize("distance,lam", [("kl", 0.5), ("kl", 0.05), ("rkl", 0.5), ("rkl", 0.05)])
def test_simplex_kkt(distance, lam):
    """Stationarity on the simplex: Q(a) − λ ∂d²/∂p_a is the same for every action, p > 0, Σp = 1."""
    _, phi, Q = _setup(0, scale=2.0)
    theta = inner.adapt(phi, Q, lam, distance)
    p, pi = softmax_policy(theta), softmax_policy(phi)
    grad_d = -pi / p if distance == "kl" else jnp.log(p) + 1 - jnp.log(pi)
    station = Q - lam * grad_d
    assert float(jnp.max(jnp.abs(station - station.mean(-1, keepdims=True)))) < 1e-10
    assert bool(jnp.all(p > 0)) and float(jnp.max(jnp.abs(p.sum(-1) - 1))) < 1e-12


@pytest.mark.parametrize("distance", ["kl", "rkl"])
def test_simplex_solution_is_the_global_maximum(distance):
    """Against an independent numerical optimiser (scipy SLSQP on the simplex)."""
    _, phi, Q = _setup(1)
    lam = 0.3
    p_ours = np.asarray(softmax_policy(inner.adapt(phi, Q, lam, distance)))
    pi = np.asarray(softmax_policy(phi))
    for s in range(Q.shape[0]):
        q = np.asarray(Q[s])

        def neg(p, s=s, q=q):
            p = np.clip(p, 1e-12, None)
            d = np.sum(pi[s] * np.log(pi[s] / p)) if distance == "kl" else np.sum(p * np.log(p / pi[s]))
            return -(p @ q - lam * d)

        res = scipy.optimize.minimize(neg, np.full(3, 1 / 3), method="SLSQP", bounds=[(1e-9, 1)] * 3,
                                      constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
                                      options={"ftol": 1e-14, "maxiter": 500})
        assert np.allclose(res.x, p_ours[s], atol=1e-5)
        assert -res.fun <= -neg(p_ours[s]) + 1e-12


def test_rkl_closed_form():
    """d2: p ∝ pi_phi exp(Q/λ) (docs/MATH.md §2)."""
    _, phi, Q = _setup(2)
    lam = 0.7
    pi = softmax_policy(phi)
    expected = pi * jnp.exp(Q / lam)
    expected = expected / expected.sum(-1, keepdims=True)
    assert rel_err(softmax_policy(inner.alg_rkl(phi, Q, lam)), expected) < 1e-13


def test_kl_multiplier_root():
    _, phi, Q = _setup(3, scale=3.0)
    pi = softmax_policy(phi)
    for lam in (1e-3, 0.1, 10.0):
        mu = inner.kl_multiplier(pi, Q, lam)
        assert bool(jnp.all(mu > Q.max(-1)))
        # float64-limited: with small λ, μ − max Q ~ 1e-7 while |μ| ~ 1, so ~1e-10 is the floor
        assert float(jnp.max(jnp.abs(jnp.sum(lam * pi / (mu[:, None] - Q), -1) - 1))) < 1e-9


@pytest.mark.parametrize("lam", [0.5, 0.04])
def test_euclid_kkt_local_maximum(lam):
    """d3: zero gradient and negative-definite Hessian of the per-state objective at θ'."""
    _, phi, Q = _setup(4, scale=1.5)
    theta = inner.alg_euclid(phi, Q, lam)
    g = jax.vmap(jax.grad(inner.euclid_objective), in_axes=(0, 0, 0, None))(theta, phi, Q, lam)
    H = jax.vmap(jax.hessian(inner.euclid_objective), in_axes=(0, 0, 0, None))(theta, phi, Q, lam)
    assert float(jnp.max(jnp.abs(g))) < 1e-10
    assert float(jnp.max(jnp.linalg.eigvalsh(H))) < 0
    # and it improves the objective over staying at phi
    f = jax.vmap(inner.euclid_objective, in_axes=(0, 0, 0, None))
    assert bool(jnp.all(f(theta, phi, Q, lam) >= f(phi, phi, Q, lam) - 1e-14))


@pytest.mark.parametrize("distance", ["kl", "rkl", "euclid"])
def test_lemma_monotonic_improvement(distance):
    """Lemma 1 (d1, d2) / Lemma 2 (d3, L1 = 1): J(Alg(pi)) ≥ J(pi) once λ meets the minorisation
    condition, λ ≥ 2γA/((1−γ)ε) (resp. 4γA/((1−γ)ε)), A = max|A^pi|, ε = min ν^pi."""
    for seed in range(4):
        mdp, phi, Q = _setup(10 + seed, scale=2.0)
        pi = softmax_policy(phi)
        a_max = float(jnp.max(jnp.abs(advantage(mdp, pi))))
        eps = float(jnp.min(visitation(mdp, pi)))
        c = 2.0 if distance != "euclid" else 4.0
        lam = c * mdp.gamma * a_max / ((1 - mdp.gamma) * eps)
        J0 = float(expected_return(mdp, pi))
        J1 = float(expected_return(mdp, softmax_policy(inner.adapt(phi, Q, lam, distance))))
        assert J1 >= J0 - 1e-12
        assert J1 > J0  # strictly: a test that could fail if Alg did nothing useful


def test_appendix_h_first_order_d3_is_one_pg_step():
    """Linearising the surrogate of eq. (2) at phi (jax.linearize, independent of the closed form)
    and maximising it minus λ‖θ − phi‖² gives exactly θ' = phi + 1/(2λ) E[∇ log pi_phi Q]."""
    mdp, phi, Q = _setup(5)
    nu = visitation(mdp, softmax_policy(phi))
    lam = 0.3

    def surrogate(theta):  # E_{s~ν, a~pi_phi}[pi_theta / pi_phi · Q]
        return jnp.sum(nu[:, None] * softmax_policy(theta) * Q)

    _, lin = jax.linearize(surrogate, phi)
    model = lambda th: lin(th - phi) - lam * jnp.sum((th - phi) ** 2)  # noqa: E731
    # the model is a concave quadratic: one Newton step from phi lands on its maximiser
    g = jax.grad(model)(phi)
    H = jax.hessian(model)(phi).reshape(phi.size, phi.size)
    theta_fo = phi - jnp.linalg.solve(H, g.ravel()).reshape(phi.shape)
    assert rel_err(theta_fo, inner.pg_step(phi, nu, Q, 1.0 / (2 * lam))) < 1e-12
    # and the PG step is (1-γ)/(2λ) times the exact policy gradient of J
    grad_J = jax.grad(lambda ph: expected_return(mdp, softmax_policy(ph)))(phi)
    assert rel_err(theta_fo - phi, (1 - mdp.gamma) / (2 * lam) * grad_J) < 1e-10
