"""Prop. 1 hypergradient = autodiff through exact evaluation and the exact inner solution =
central finite differences of phi ↦ J(Alg(phi)), float64, rel. error ≤ 1e-6 (issue acceptance)."""

import jax
import jax.numpy as jnp
import pytest

from bomrl.tabular import hypergrad as hg
from bomrl.tabular import inner
from bomrl.tabular.estimate import mc_estimate
from bomrl.tabular.frozenlake import sample_lake_tasks, task
from bomrl.tabular.mdp import evaluate, expected_return, grad_q_tabular, softmax_policy, visitation
from tabular_helpers import random_logits, random_mdp, rel_err

CASES = [("kl", 0.5), ("kl", 0.1), ("rkl", 0.5), ("rkl", 0.1), ("euclid", 0.5), ("euclid", 0.04)]


def central_differences(f, x, eps=1e-6):
    """(f(x + eps e_i) − f(x − eps e_i)) / 2eps for every coordinate, as one jitted vmap."""
    E = eps * jnp.eye(x.size).reshape((x.size,) + x.shape)
    fv = jax.jit(jax.vmap(f))
    return ((fv(x + E) - fv(x - E)) / (2 * eps)).reshape(x.shape)


def _lake(k=0, p=0.3, size=3):
    lake = sample_lake_tasks(num_tasks=k + 1, size=size, hole_prob=p, seed=11)
    return jax.tree_util.tree_map(jnp.asarray, task(lake.mdp, k))._replace(gamma=0.8)


@pytest.mark.parametrize("distance,lam", CASES)
def test_prop1_equals_autodiff_equals_fd_random_mdp(distance, lam):
    mdp = random_mdp(7)
    phi = random_logits(7)
    prop1, _ = hg.hypergradient(mdp, phi, lam, distance)
    auto = jax.grad(lambda ph: hg.meta_objective(mdp, ph, lam, distance))(phi)
    fd = central_differences(lambda ph: hg.meta_objective(mdp, ph, lam, distance), phi)
    assert rel_err(prop1, auto) < 1e-6
    assert rel_err(auto, fd) < 1e-6
    assert rel_err(prop1, fd) < 1e-6


@pytest.mark.parametrize("distance,lam", [("kl", 0.5), ("rkl", 0.25), ("euclid", 0.04)])
def test_prop1_equals_autodiff_equals_fd_frozen_lake(distance, lam):
    mdp = _lake()
    phi = random_logits(3, S=9, A=4, scale=0.5)
    prop1, _ = hg.hypergradient(mdp, phi, lam, distance)
    f = lambda ph: hg.meta_objective(mdp, ph, lam, distance)  # noqa: E731
    auto = jax.grad(f)(phi)
    fd = central_differences(f, phi)
    assert float(jnp.linalg.norm(auto)) > 1e-3  # a real signal, not 0 = 0
    assert rel_err(prop1, auto) < 1e-6
    assert rel_err(prop1, fd) < 1e-6


@pytest.mark.parametrize("distance,lam", [("kl", 0.5), ("rkl", 0.5), ("euclid", 0.3)])
def test_dropping_grad_q_is_the_partial_derivative_with_q_frozen(distance, lam):
    """include_dq=False (eq. (8), MAML-style) = autodiff with Q^{pi_phi} held constant; and the
    Appendix C term it drops is not negligible."""
    mdp = random_mdp(8)
    phi = random_logits(8)
    _, Q0 = evaluate(mdp, softmax_policy(phi))
    frozen = jax.grad(lambda ph: expected_return(mdp, softmax_policy(inner.adapt(ph, Q0, lam, distance))))(phi)
    no_dq, _ = hg.hypergradient(mdp, phi, lam, distance, include_dq=False)
    full, _ = hg.hypergradient(mdp, phi, lam, distance)
    assert rel_err(no_dq, frozen) < 1e-8
    assert rel_err(no_dq, full) > 1e-2


def test_maml_gradient_is_fd_of_the_inner_step_with_data_frozen():
    mdp = random_mdp(9)
    phi0 = random_logits(9)
    step = 2.0
    pi0 = softmax_policy(phi0)
    _, Q0 = evaluate(mdp, pi0)
    nu0 = visitation(mdp, pi0)

    def frozen(ph):  # θ' = phi + η ν0 (pī ⊙ Q0 − pi_phi (pī·Q0)),  pī = pi_phi0 fixed
        score = pi0 * Q0 - softmax_policy(ph) * jnp.sum(pi0 * Q0, -1, keepdims=True)
        return expected_return(mdp, softmax_policy(ph + step * nu0[:, None] * score))

    assert rel_err(hg.maml_gradient(mdp, phi0, step), central_differences(frozen, phi0)) < 1e-6


def test_monte_carlo_estimates_converge_to_exact():
    mdp = _lake(size=3)
    phi = random_logits(4, S=9, A=4, scale=0.5)
    pi = softmax_policy(phi)
    _, Q = evaluate(mdp, pi)
    est = mc_estimate(mdp, phi, jax.random.PRNGKey(0), rollouts_per_pair=400, visitation_episodes=4000, horizon=60)
    live = ~mdp.terminal
    assert float(jnp.max(jnp.abs((est.Q - Q)[live]))) < 0.06
    assert float(jnp.max(jnp.abs(est.nu - visitation(mdp, pi)))) < 0.02
    dQ = grad_q_tabular(mdp, pi)
    assert rel_err(est.dQ[live], dQ[live]) < 0.15
    # same key, same numbers
    again = mc_estimate(mdp, phi, jax.random.PRNGKey(0), rollouts_per_pair=400, visitation_episodes=4000, horizon=60)
    assert bool(jnp.all(again.Q == est.Q)) and bool(jnp.all(again.dQ == est.dQ))


def test_sampled_hypergradient_points_along_exact_one():
    """Prop. 1 from Monte-Carlo estimates (sample mode) agrees in direction with the exact one."""
    mdp = _lake(size=3)
    phi = random_logits(5, S=9, A=4, scale=0.5)
    lam = 0.5
    exact, _ = hg.hypergradient(mdp, phi, lam, "kl")
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    est = mc_estimate(mdp, phi, k1, 200, 2000, 60)
    theta = inner.adapt(phi, est.Q, lam, "kl")
    est2 = mc_estimate(mdp, theta, k2, 200, 2000, 60)
    G = est2.nu[:, None] * est2.Q / (1 - mdp.gamma)
    sampled = hg.hypergradient_from_estimates(phi, theta, est.Q, est.dQ, G, lam, "kl")
    cos = float(jnp.sum(exact * sampled) / (jnp.linalg.norm(exact) * jnp.linalg.norm(sampled)))
    assert cos > 0.9
