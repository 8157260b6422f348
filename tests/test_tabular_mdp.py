"""Exact evaluation and Frozen Lake generation against independent computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.errors import ConfigError
from bomrl.tabular.frozenlake import lake_mdp, reachable, sample_lake_tasks, task
from bomrl.tabular.mdp import (
    bounded_optimal_logits,
    evaluate,
    expected_return,
    grad_q_tabular,
    greedy_policy,
    optimal_q,
    policy_gradient,
    softmax_policy,
    visitation,
)
from tabular_helpers import random_logits, random_mdp, rel_err


def test_evaluation_matches_bellman_iteration():
    mdp = random_mdp(0)
    pi = softmax_policy(random_logits(0))
    V, Q = evaluate(mdp, pi)
    Vi = jnp.zeros(5)
    for _ in range(400):  # iterate the Bellman operator independently
        Vi = jnp.sum(pi * (mdp.r + mdp.gamma * mdp.P @ Vi), -1)
    assert rel_err(V, Vi) < 1e-12
    assert rel_err(Q, mdp.r + mdp.gamma * mdp.P @ Vi) < 1e-12


def test_visitation_is_discounted_occupancy():
    mdp = random_mdp(1)
    pi = softmax_policy(random_logits(1))
    Ppi = jnp.einsum("sa,sat->st", pi, mdp.P)
    d, occ = mdp.rho, jnp.zeros(5)
    for t in range(400):
        occ = occ + (1 - mdp.gamma) * mdp.gamma**t * d
        d = d @ Ppi
    nu = visitation(mdp, pi)
    assert rel_err(nu, occ) < 1e-12
    assert abs(float(nu.sum()) - 1.0) < 1e-12


def test_grad_q_closed_form_matches_autodiff():
    """Appendix C: ∂Q(s,a)/∂phi(s',a') = γ/(1-γ) σ^{(s,a)}(s') pi(a'|s') A(s',a')."""
    mdp = random_mdp(2)
    phi = random_logits(2)
    auto = jax.jacobian(lambda ph: evaluate(mdp, softmax_policy(ph))[1])(phi)
    assert rel_err(grad_q_tabular(mdp, softmax_policy(phi)), auto) < 1e-10


def test_policy_gradient_matches_autodiff():
    mdp = random_mdp(3)
    phi = random_logits(3)
    auto = jax.grad(lambda ph: expected_return(mdp, softmax_policy(ph)))(phi)
    assert rel_err(policy_gradient(mdp, phi), auto) < 1e-10


def test_value_iteration_and_bounded_optimum():
    mdp = random_mdp(4)
    Qs = optimal_q(mdp)
    pi_star = greedy_policy(Qs)
    _, Q_pi = evaluate(mdp, pi_star)
    assert rel_err(Q_pi, Qs) < 1e-10  # the greedy policy of Q* has Q = Q*
    J_det = float(expected_return(mdp, pi_star))
    for B in (1.0, 4.0):
        th = bounded_optimal_logits(mdp, B)
        assert float(jnp.max(jnp.abs(th))) <= B + 1e-12
        J_B = float(expected_return(mdp, softmax_policy(th)))
        assert J_B <= J_det + 1e-12
        vertex = B * (2 * pi_star - 1)
        assert J_B >= float(expected_return(mdp, softmax_policy(vertex))) - 1e-12
    assert J_det - J_B < 0.05  # B = 4 is nearly deterministic


def test_lake_structure_and_rewards():
    holes = np.zeros((3, 3), bool)
    holes[1, 1] = True
    m = lake_mdp(holes, 0.8)
    assert np.allclose(m.P.sum(-1), 1.0)
    # from cell (2,1)=7 moving right (2) enters the goal (8): reward +1
    assert m.r[7, 2] == pytest.approx(1.0)
    # from cell (0,1)=1 moving down (1) enters the hole (4): reward -1
    assert m.r[1, 1] == pytest.approx(-1.0)
    assert m.terminal[4] and m.terminal[8] and not m.terminal[0]
    assert np.allclose(m.rho[~m.terminal], 1.0 / 7) and np.all(m.rho[m.terminal] == 0)
    # walls: moving left from the start stays in place
    assert m.P[0, 0, 0] == 1.0
    slippery = lake_mdp(holes, 0.8, slip=2 / 3)
    assert np.allclose(slippery.P[0, 2], np.eye(9)[[1, 0, 3]].T @ np.array([1 / 3, 1 / 3, 1 / 3]))


def test_lake_sampling_deterministic_reachable_and_varied():
    a = sample_lake_tasks(8, 4, 0.3, seed=5)
    b = sample_lake_tasks(8, 4, 0.3, seed=5)
    c = sample_lake_tasks(8, 4, 0.3, seed=6)
    assert np.array_equal(a.maps, b.maps) and np.array_equal(a.mdp.P, b.mdp.P)
    assert not np.array_equal(a.maps, c.maps)
    assert len({m.tobytes() for m in a.maps}) > 1
    for k, m in enumerate(a.maps):
        assert m[0, 0] == "S" and m[-1, -1] == "G"
        assert reachable(m == "H")
        assert np.array_equal(task(a.mdp, k).terminal.reshape(4, 4), (m == "H") | (m == "G"))


@pytest.mark.parametrize("kwargs,name", [({"size": 1}, "size"), ({"hole_prob": 1.0}, "hole_prob"),
                                         ({"hole_prob": -0.1}, "hole_prob"), ({"init": "x"}, "init"),
                                         ({"hole_prob": "0.3"}, "hole_prob='0.3'"), ({"gamma": None}, "gamma=None"),
                                         ({"num_tasks": 2.0}, "tasks=2.0"), ({"size": True}, "size=True")])
def test_lake_sampling_rejects_bad_input(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        sample_lake_tasks(**kwargs)
