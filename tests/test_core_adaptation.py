"""`bomrl.core.adaptation.adapt`: the adaptation as one differentiable function.

Known answers: central finite differences in float64 at the settings BO-MRL trains with (armijo,
10 steps, d1, h surrogate: far from the inner optimum, where only the unrolled derivative is the
derivative); the implicit derivative equal to `bomrl_hypergradient` at a Newton solution in each
of its Q modes (constant, exact, Appendix C); a dense LU solve equal to CG; the linear solve's
statistics returned through `linear_stats`; the pullback kept across jit calls equal to one
`jax.grad`; and the refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from bomrl.core.adaptation import adapt, zero_stats
from bomrl.core.hypergradient import bomrl_hypergradient, cg_linear_solve, dense_linear_solve, score_q
from bomrl.core.losses import InnerData, make_inner_loss
from bomrl.core.policies import gaussian_mlp
from bomrl.errors import ConfigError

TRAINING = dict(steps=10, solver="armijo", learning_rate=0.1, backtrack=6)   # BoMrlConfig's defaults


def _problem(lam=0.5, n=40, seed=0):
    """A Gaussian MLP policy's batch of `n` steps (float64) as 4 episodes, and an outer objective."""
    policy = gaussian_mlp(3, 2, hidden=(6,), dtype=jnp.float64)
    k = jax.random.split(jax.random.PRNGKey(seed), 6)
    phi = policy.init(k[0])
    obs = jax.random.normal(k[1], (4, n // 4, 3), jnp.float64)
    act = policy.sample(policy.apply(phi, obs), k[2])
    q = jax.random.normal(k[3], (4, n // 4), jnp.float64)
    # the sampling log-probs are data: a perturbed φ does not move the samples' probabilities
    data = InnerData(obs, act, jnp.ones((4, n // 4)), q, q, policy.log_prob(policy.apply(phi, obs), act))
    fresh = jax.random.normal(k[4], (16, 3), jnp.float64)
    target = jax.random.normal(k[5], (16, 2), jnp.float64)

    def outer(theta):   # a smooth function of the adapted policy's means on other states
        return -jnp.mean((policy.apply(theta, fresh)[0] - target) ** 2)

    return policy, make_inner_loss(policy, "d1", lam, "h"), phi, data, outer


def _fd_check(fun, phi, n_dirs=3, eps=1e-5, rtol=1e-6):
    flat, unravel = ravel_pytree(phi)
    grad = ravel_pytree(jax.grad(fun)(phi))[0]
    for i in range(n_dirs):
        u = jax.random.normal(jax.random.PRNGKey(100 + i), flat.shape, flat.dtype)
        fd = (fun(unravel(flat + eps * u)) - fun(unravel(flat - eps * u))) / (2 * eps)
        np.testing.assert_allclose(float(grad @ u), float(fd), rtol=rtol, atol=1e-10)


def test_unrolled_derivative_is_the_derivative_at_the_training_settings():
    policy, loss, phi, data, outer = _problem()
    theta, diag = adapt(loss, phi, data, derivative="unrolled", **TRAINING)
    assert float(diag["inner/grad_ratio"]) > 0.05        # not an optimum: the implicit premise fails here
    _fd_check(jax.jit(lambda p: outer(adapt(loss, p, data, derivative="unrolled", **TRAINING)[0])), phi)


def test_unrolled_forward_equals_the_solver():
    from bomrl.core.inner_solver import solve_inner

    _, loss, phi, data, _ = _problem()
    a, da = adapt(loss, phi, data, derivative="unrolled", **TRAINING)
    b, db = solve_inner(loss, phi, data, **TRAINING)
    np.testing.assert_array_equal(ravel_pytree(a)[0], ravel_pytree(b)[0])
    assert da.keys() == db.keys()
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)


@pytest.mark.parametrize("q_mode", ["practical", "exact", "score"])
def test_implicit_vjp_equals_the_hypergradient_at_the_solution(q_mode):
    # at a Newton solution (λ large: an isolated optimum), jax.vjp of the implicit adaptation is
    # bomrl_hypergradient in each Q mode; exact: Q a smooth function of φ
    policy, loss, phi, data, outer = _problem(lam=5.0)
    newton = dict(steps=50, solver="newton", newton_max_step=10.0, newton_cg_iters=200)

    def q_fn(ph):   # any differentiable Q(φ) on the batch's pairs
        return data.q * (1.0 + 0.3 * jnp.tanh(policy.apply(ph, data.obs)[0][..., 0]))

    def with_q(ph):
        if q_mode == "exact":
            return data._replace(q=q_fn(ph))
        if q_mode == "score":
            return data._replace(q=score_q(policy, 0.9)(ph, data))
        return data

    @jax.jit
    def both(ph):
        theta, pullback = jax.vjp(lambda p: adapt(loss, p, with_q(p), derivative="implicit", **newton)[0], ph)
        g = jax.grad(outer)(theta)
        d = with_q(ph)
        ref, _ = bomrl_hypergradient(loss, theta, ph, d if q_mode == "exact" else data, g, mode=q_mode,
                                     q_fn=q_fn, policy=policy, gamma=0.9)
        return pullback(g)[0], ref, adapt(loss, ph, d, derivative="implicit", **newton)[1]

    got, ref, diag = both(phi)
    assert float(diag["inner/grad_ratio"]) < 1e-8
    np.testing.assert_allclose(ravel_pytree(got)[0], ravel_pytree(ref)[0], rtol=1e-9, atol=1e-12)
    if q_mode == "practical":   # and, at the optimum, it is the derivative (Q constant): finite differences
        from bomrl.core.inner_solver import solve_inner   # of the optimum that θ' continues to (warm start)

        theta = adapt(loss, phi, data, derivative="implicit", **newton)[0]
        pullback = jax.vjp(lambda p: adapt(loss, p, data, derivative="implicit", solution=theta,
                                           linear_solve=dense_linear_solve(), **newton)[0], phi)[1]
        grad = ravel_pytree(pullback(jax.grad(outer)(theta))[0])[0]
        nearby = jax.jit(lambda p: outer(solve_inner(loss, p, data, theta0=theta, **newton)[0]))
        flat, unravel = ravel_pytree(phi)
        for i in range(3):
            u = jax.random.normal(jax.random.PRNGKey(100 + i), flat.shape, flat.dtype)
            fd = (nearby(unravel(flat + 1e-5 * u)) - nearby(unravel(flat - 1e-5 * u))) / 2e-5
            np.testing.assert_allclose(float(grad @ u), float(fd), rtol=1e-6)


def test_dense_solve_equals_cg_and_stats_come_back():
    _, loss, phi, data, outer = _problem(lam=5.0)
    newton = dict(steps=50, solver="newton", newton_max_step=10.0, newton_cg_iters=200)
    theta = adapt(loss, phi, data, derivative="implicit", **newton)[0]
    g = jax.grad(outer)(theta)

    def vjp(linear_solve):
        f = lambda p, s: adapt(loss, p, data, derivative="implicit", linear_solve=linear_solve,  # noqa: E731
                               linear_stats=s, solution=theta, **newton)[0]
        return jax.vjp(f, phi, zero_stats(jnp.float64))[1](g)

    (cg, cg_stats), (dense, dense_stats) = vjp(cg_linear_solve(200, 1e-13)), vjp(dense_linear_solve())
    np.testing.assert_allclose(ravel_pytree(cg)[0], ravel_pytree(dense)[0], rtol=1e-8, atol=1e-12)
    n = ravel_pytree(phi)[0].size
    assert int(dense_stats["cg/iterations"]) == n and float(dense_stats["cg/rel_residual"]) < 1e-10
    assert 1 <= int(cg_stats["cg/iterations"]) <= 200 and float(cg_stats["cg/rel_residual"]) < 1e-12
    assert float(cg_stats["cg/failed"]) == 0.0
    # the stats are the linear solve's: a 2-iteration cap shows up in them
    _, short = vjp(cg_linear_solve(2, 1e-13))
    assert int(short["cg/iterations"]) == 2 and float(short["cg/rel_residual"]) > 1e-6


def test_a_given_solution_skips_the_solve():
    _, loss, phi, data, outer = _problem(lam=5.0)
    newton = dict(steps=50, solver="newton", newton_max_step=10.0, newton_cg_iters=200)
    theta = adapt(loss, phi, data, derivative="implicit", **newton)[0]
    shifted = jax.tree.map(lambda x: x + 0.01, theta)
    back, _ = adapt(loss, phi, data, derivative="implicit", solution=shifted, **newton)
    np.testing.assert_array_equal(ravel_pytree(back)[0], ravel_pytree(shifted)[0])


def test_pullback_kept_across_jit_calls_equals_one_grad():
    # BO-MRL keeps the adaptation's pullback from the adaptation to the meta-step (two jit calls,
    # sampling between them): the result equals differentiating in one go, vmapped over tasks
    _, loss, phi, data, outer = _problem()
    tasks = jax.tree.map(lambda x: jnp.stack([x, x[::-1]]), data)
    phi_t = jax.tree.map(lambda x: jnp.stack([x, x]), phi)

    @jax.jit
    def forward(pt, d):
        return jax.vmap(lambda p, dd: jax.vjp(lambda q: adapt(loss, q, dd, **TRAINING)[0], p))(pt, d)

    @jax.jit
    def backward(pullbacks, thetas):
        return jax.vmap(lambda pb, th: pb(jax.grad(outer)(th))[0])(pullbacks, thetas)

    thetas, pullbacks = forward(phi_t, tasks)
    got = backward(pullbacks, thetas)
    ref = jax.vmap(lambda dd: jax.grad(lambda p: outer(adapt(loss, p, dd, **TRAINING)[0]))(phi))(tasks)
    np.testing.assert_allclose(ravel_pytree(got)[0], ravel_pytree(ref)[0], rtol=1e-12, atol=1e-14)


def test_refusals():
    _, loss, phi, data, _ = _problem()
    with pytest.raises(ConfigError, match="derivative"):
        adapt(loss, phi, data, derivative="implicit-ish")
    with pytest.raises(ConfigError, match="unrolled"):
        adapt(loss, phi, data, derivative="unrolled", solver="newton")
    with pytest.raises(ConfigError, match="solution"):
        adapt(loss, phi, data, derivative="unrolled", solution=phi, **TRAINING)
