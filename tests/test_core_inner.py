"""Within-task solver and losses: Appendix H (first-order + d3 = MAML's policy-gradient step),
Appendix G's hypergradient through that step, h(x) of eq. (7), distances, vmapped Adam solves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from bomrl.core import distances as D
from bomrl.core.hypergradient import bomrl_hypergradient
from bomrl.core.inner_solver import solve_inner, solve_inner_tasks
from bomrl.core.losses import InnerData, first_order_gradient, h_transform, make_inner_loss, policy_gradient
from bomrl.core.policies import gaussian_mlp
from bomrl.errors import ConfigError


def _gaussian_data(seed=0, n=40, obs_dim=3, act_dim=2):
    policy = gaussian_mlp(obs_dim, act_dim, hidden=(8,), dtype=jnp.float64)
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    phi = policy.init(k[0])
    obs = jax.random.normal(k[1], (n, obs_dim))
    act = policy.sample(policy.apply(phi, obs), k[2])
    q = jax.random.normal(k[3], (n,))
    weight = jnp.ones(n).at[-5:].set(0.0)  # padding must not matter
    logp = policy.log_prob(policy.apply(phi, obs), act)
    return policy, phi, InnerData(obs, act, weight, q, q, logp)


def test_first_order_d3_is_maml_policy_gradient_step():
    policy, phi, data = _gaussian_data()
    lam = 2.0
    loss = make_inner_loss(policy, "d3", lam, "linear")
    theta, diag = jax.jit(lambda ph: solve_inner(loss, ph, data, steps=2, solver="newton"))(phi)  # quadratic
    pg = policy_gradient(policy, phi, data.obs, data.act, data.q, data.weight)
    expected = jax.tree.map(lambda p, g: p + g / (2 * lam), phi, pg)    # θ' = φ + (1/(2λ)) Ê[∇log π_φ Q]
    np.testing.assert_allclose(ravel_pytree(theta)[0], ravel_pytree(expected)[0], rtol=1e-10, atol=1e-12)
    assert float(diag["inner/grad_norm"]) < 1e-10
    # Adam (the practical solver) gets there too
    theta_adam, _ = jax.jit(lambda ph: solve_inner(loss, ph, data, steps=300, learning_rate=1e-2))(phi)
    np.testing.assert_allclose(ravel_pytree(theta_adam)[0], ravel_pytree(expected)[0], atol=2e-3)


def test_appendix_g_hypergradient_is_vjp_through_the_pg_step():
    # eq. (10) with d3 (∇²D² = 2I): (∂θ'/∂φ)ᵀ g for θ'(φ) = φ + G(φ)/(2λ), G(φ) = Ê[∇π_φ/π_sampling Q]
    policy, phi, data = _gaussian_data(1)
    lam = 1.5
    loss = make_inner_loss(policy, "d3", lam, "linear")
    theta, _ = jax.jit(lambda ph: solve_inner(loss, ph, data, steps=2, solver="newton"))(phi)
    g = jax.tree.map(lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype)).reshape(x.shape), theta)
    hg, met = jax.jit(lambda th, ph: bomrl_hypergradient(loss, th, ph, data, g, cg_iters=50, cg_tol=1e-14))(theta, phi)

    def step(ph):
        return jax.tree.map(lambda p, G: p + G / (2 * lam), ph, first_order_gradient(policy, ph, data))

    _, vjp = jax.vjp(step, phi)
    (ref,) = vjp(g)
    np.testing.assert_allclose(ravel_pytree(hg)[0], ravel_pytree(ref)[0], rtol=1e-9, atol=1e-12)
    assert int(met["cg/iterations"]) <= 2  # the Hessian is 2λ·I


def test_h_transform():
    x = jnp.linspace(-5.0, 10.0, 101)
    h = h_transform(x)
    assert float(h_transform(1.0)) == 1.0 and abs(float(jax.grad(h_transform)(1.0)) - 1.0) < 1e-12
    assert float(h.min()) > 0 and float(h.max()) < 2 and bool(jnp.all(jnp.diff(h) > 0))
    np.testing.assert_allclose(h, 2 / (1 + np.exp(-2 * (np.asarray(x) - 1))), rtol=1e-12)


def test_distances_directions_and_masking():
    policy = gaussian_mlp(1, 1, hidden=(), dtype=jnp.float64)
    phi = {"mlp": [{"w": jnp.zeros((1, 1)), "b": jnp.zeros(1)}], "log_std": jnp.zeros(1)}
    theta = {"mlp": [{"w": jnp.zeros((1, 1)), "b": jnp.ones(1)}], "log_std": jnp.log(2.0) * jnp.ones(1)}
    obs = jnp.zeros((4, 1))
    w = jnp.asarray([1.0, 1.0, 0.0, 0.0])

    def kl(m1, s1, m2, s2):  # KL(N(m1, s1²) ‖ N(m2, s2²))
        return np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5

    d1 = D.task_distance_sq(D.get_distance("d1", policy), policy, theta, phi, obs, w)
    d2 = D.task_distance_sq(D.get_distance("rkl", policy), policy, theta, phi, obs, w)
    np.testing.assert_allclose(d1, kl(0, 1, 1, 2), rtol=1e-12)   # meta-policy first
    np.testing.assert_allclose(d2, kl(1, 2, 0, 1), rtol=1e-12)   # adapted policy first
    d3 = D.task_distance_sq(D.get_distance("d3", policy), policy, theta, phi, obs, w)
    np.testing.assert_allclose(d3, 1.0 + np.log(2.0) ** 2, rtol=1e-12)
    user = D.param_distance(lambda th, ph: jnp.sum(jnp.abs(th["log_std"] - ph["log_std"])), "l1-std")
    np.testing.assert_allclose(D.task_distance_sq(user, policy, theta, phi, obs, w), np.log(2.0))
    with pytest.raises(ConfigError, match="distance='d4'"):
        D.get_distance("d4", policy)
    with pytest.raises(ConfigError, match="surrogate"):
        make_inner_loss(policy, "d1", 1.0, "quadratic")
    with pytest.raises(ConfigError, match="lam"):
        make_inner_loss(policy, "d1", 0.0)


def test_vmapped_adam_inner_solve_is_deterministic_and_descends():
    policy, phi, data = _gaussian_data(2)
    T = 3
    datas = jax.tree.map(lambda x: jnp.stack([x] * T) if x is not None else None, data)
    datas = datas._replace(q=datas.q * jnp.asarray([1.0, -1.0, 2.0])[:, None])  # three different tasks
    loss = make_inner_loss(policy, "d2", 0.5, "h")
    run = jax.jit(lambda ph, d: solve_inner_tasks(loss, ph, d, steps=50, learning_rate=1e-2))
    theta, diag = run(phi, datas)
    theta2, diag2 = run(phi, datas)
    for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(theta2)):
        np.testing.assert_array_equal(a, b)
    assert diag["inner/loss"].shape == (T,) and diag["inner/kl"].shape == (T,)
    assert bool(jnp.all(diag["inner/loss"] < diag["inner/loss_initial"]))
    assert bool(jnp.all(diag["inner/kl"] > 0)) and bool(jnp.all(jnp.isfinite(diag["inner/grad_norm"])))
    # each task adapted on its own data: the three solutions differ
    flat = jax.vmap(lambda t: ravel_pytree(t)[0])(theta)
    assert float(jnp.min(jnp.linalg.norm(flat[:, None] - flat[None], axis=-1) + jnp.eye(T))) > 1e-3


def _stiff_problem():
    """A loss whose curvature (30 on one axis) is beyond what a fixed step of 0.1 can take (2/0.1 = 20):
    plain gradient descent diverges, the backtracking solver must not. φ enters through the target."""
    A = jnp.diag(jnp.array([30.0, 1.0, 4.0]))

    def loss(th, phi, data):
        r = th["w"] - data * phi["w"]
        return 0.5 * r @ A @ r + 0.1 * jnp.sum(jnp.sin(3.0 * th["w"])), {}

    return loss, {"w": jnp.array([1.0, -2.0, 0.5])}, jnp.asarray(0.3)


def test_armijo_solver_cannot_diverge_where_sgd_does():
    loss, phi, data = _stiff_problem()
    value = lambda th: float(loss(th, phi, data)[0])  # noqa: E731
    _, sgd = solve_inner(loss, phi, data, steps=10, solver="sgd", learning_rate=0.1)
    assert float(sgd["inner/grad_ratio"]) > 100.0           # the fixed step blows up
    theta, bt = solve_inner(loss, phi, data, steps=10, solver="armijo", learning_rate=0.1, backtrack=6)
    assert float(bt["inner/grad_ratio"]) < 0.2 and float(bt["inner/loss"]) < float(bt["inner/loss_initial"])
    assert 0.0 < float(bt["inner/step_frac"]) < 1.0         # it did halve some steps
    # each step decreases the loss (Armijo), so K steps are monotone: compare against 1..K-step solves
    vals = [value(solve_inner(loss, phi, data, steps=k, solver="armijo", learning_rate=0.1)[0]) for k in range(6)]
    assert all(b <= a for a, b in zip(vals, vals[1:])), vals
    assert np.isclose(vals[-1], value(solve_inner(loss, phi, data, steps=5, solver="armijo",
                                                  learning_rate=0.1)[0]))
    # where the full step is fine (flat loss), armijo is plain gradient descent
    flat = lambda th, ph, d: (0.5 * jnp.sum((th["w"] - ph["w"]) ** 2) - jnp.sum(th["w"]), {})  # noqa: E731
    a, _ = solve_inner(flat, phi, data, steps=7, solver="armijo", learning_rate=0.1)
    b, _ = solve_inner(flat, phi, data, steps=7, solver="sgd", learning_rate=0.1)
    np.testing.assert_allclose(a["w"], b["w"], rtol=1e-12)
    np.testing.assert_allclose(theta["w"], solve_inner(loss, phi, data, steps=10, solver="armijo",
                                                       learning_rate=0.1)[0]["w"], rtol=0, atol=0)


def test_unrolled_derivative_through_armijo_equals_finite_differences():
    from bomrl.core.adaptation import adapt

    def unrolled_solution(*a, **k):
        return adapt(*a, derivative="unrolled", **k)[0]

    loss, phi, data = _stiff_problem()
    c = jnp.array([1.0, 2.0, -0.5])

    def f(w):
        return jnp.vdot(c, unrolled_solution(loss, {"w": w}, data, steps=10, solver="armijo",
                                             learning_rate=0.1, backtrack=6)["w"])

    g = jax.grad(f)(phi["w"])
    eps = 1e-6
    fd = jnp.array([(f(phi["w"] + eps * e) - f(phi["w"] - eps * e)) / (2 * eps) for e in jnp.eye(3)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    # and the unrolled solution is the solver's own answer
    th, _ = solve_inner(loss, phi, data, steps=10, solver="armijo", learning_rate=0.1, backtrack=6)
    np.testing.assert_allclose(unrolled_solution(loss, phi, data, steps=10, solver="armijo", learning_rate=0.1,
                                                 backtrack=6)["w"], th["w"], rtol=1e-12)
