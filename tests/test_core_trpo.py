"""TRPO meta-step: KL radius measured on its own data, natural-gradient direction, skip paths."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from bomrl.core.policies import gaussian_mlp
from bomrl.core.trpo import policy_fisher_vp, skip_reason, trpo_step


# the MAML family's TRPO settings (the algorithms' configs hold them; trpo_step has no defaults)
TRPO = dict(max_kl=1e-3, cg_iters=10, cg_damping=1e-5, ls_steps=15, ls_ratio=0.8)


def _problem(seed=0, n=64, obs_dim=3, act_dim=2):
    policy = gaussian_mlp(obs_dim, act_dim, hidden=(), dtype=jnp.float64)
    key = jax.random.PRNGKey(seed)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = policy.init(k1)
    obs = jax.random.normal(k2, (n, obs_dim))
    old = policy.apply(params, obs)
    act = policy.sample(old, k3)
    advs = jax.random.normal(k4, (n,))
    logp_old = policy.log_prob(old, act)

    def objective(p):
        return jnp.mean(jnp.exp(policy.log_prob(policy.apply(p, obs), act) - logp_old) * advs)

    def kl(p):
        return jnp.mean(policy.kl(old, policy.apply(p, obs)))

    return params, objective, kl


@pytest.mark.parametrize("seed,max_kl", [(0, 1e-3), (1, 1e-2), (2, 1e-4)])
def test_step_respects_kl_radius_and_improves(seed, max_kl):
    params, objective, kl = _problem(seed)
    new, m = jax.jit(lambda p: trpo_step(objective, kl, p, **{**TRPO, "max_kl": max_kl}))(params)
    assert int(m["trpo/skipped_code"]) == 0 and float(m["trpo/accepted"]) == 1.0
    measured = float(kl(new))
    assert 0 < measured <= max_kl
    assert abs(measured - float(m["trpo/kl"])) < 1e-15
    assert float(objective(new)) > float(objective(params))
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(new))


def test_direction_is_dense_natural_gradient():
    params, objective, kl = _problem(3)
    g = jax.grad(objective)(params)
    new, m = jax.jit(lambda p, g: trpo_step(None, kl, p, grad=g, **{**TRPO, "max_kl": 1e-4, "cg_iters": 100, "cg_damping": 0.0}))(params, g)
    flat_p, unravel = ravel_pytree(params)
    fisher = jax.hessian(lambda x: kl(unravel(x)))(flat_p)
    nat = np.linalg.solve(np.asarray(fisher), np.asarray(ravel_pytree(g)[0]))
    step = np.asarray(ravel_pytree(new)[0] - flat_p)
    beta = np.sqrt(2 * 1e-4 / (nat @ np.asarray(fisher) @ nat))
    # linear-model improvement is positive, so the full step is taken (if its KL is inside the radius)
    frac = 0.8 ** (int(m["trpo/ls_iterations"]) - 1)
    np.testing.assert_allclose(step, frac * beta * nat, rtol=1e-6, atol=1e-12)
    assert float(kl(new)) <= 1e-4


def test_failed_line_search_is_skipped_and_logged(caplog):
    params, objective, kl = _problem(4)
    bad_dir = jax.tree.map(jnp.negative, jax.grad(objective)(params))  # points downhill
    with caplog.at_level(logging.WARNING, logger="bomrl.trpo"):
        new, m = jax.jit(lambda p, g: trpo_step(objective, kl, p, grad=g, **TRPO))(params, bad_dir)
    assert int(m["trpo/skipped_code"]) == 4 and float(m["trpo/accepted"]) == 0.0
    assert "line search" in skip_reason(m) and "line search" in caplog.text
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)


def test_nan_gradient_is_skipped(caplog):
    params, objective, kl = _problem(5)
    nan_grad = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), params)
    with caplog.at_level(logging.WARNING, logger="bomrl.trpo"):
        new, m = jax.jit(lambda p, g: trpo_step(None, kl, p, grad=g, **TRPO))(params, nan_grad)
    assert int(m["trpo/skipped_code"]) == 1 and "non-finite" in caplog.text
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(new))
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)


def test_cg_failure_is_skipped(caplog):
    params, objective, _ = _problem(7)

    def bad_kl(p):  # negative curvature: no trust region exists
        return -sum(jnp.sum(x**2) for x in jax.tree.leaves(p))

    with caplog.at_level(logging.WARNING, logger="bomrl.trpo"):
        new, m = jax.jit(lambda p: trpo_step(objective, bad_kl, p, **TRPO))(params)
    assert int(m["trpo/skipped_code"]) == 2 and "conjugate gradients" in caplog.text
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)


def test_gauss_newton_fisher_product_equals_kl_hessian():
    policy = gaussian_mlp(3, 2, hidden=(5,), dtype=jnp.float64)
    params = policy.init(jax.random.PRNGKey(8))
    obs = jax.random.normal(jax.random.PRNGKey(9), (30, 3))
    weight = jnp.ones(30).at[:4].set(0.0)
    old = policy.apply(params, obs)

    def kl(p):
        return jnp.sum(weight * policy.kl(old, policy.apply(p, obs))) / weight.sum()

    v = jax.tree.map(lambda x: jnp.sin(jnp.arange(x.size, dtype=x.dtype)).reshape(x.shape), params)
    hvp = jax.jvp(jax.grad(kl), (params,), (v,))[1]
    gn = policy_fisher_vp(policy, params, obs, weight)(v)
    np.testing.assert_allclose(ravel_pytree(gn)[0], ravel_pytree(hvp)[0], rtol=1e-10, atol=1e-13)
    new, m = jax.jit(lambda p: trpo_step(lambda q: -kl(q) + q["log_std"].sum(), kl, p, **TRPO,
                                         fvp_fn=policy_fisher_vp(policy, p, obs, weight)))(params)
    assert int(m["trpo/skipped_code"]) == 0 and float(kl(new)) <= 1e-3
