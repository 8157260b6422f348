"""Implicit hypergradients against known answers: a quadratic closed form, the exact tabular ground
truth on Frozen Lake written as function approximation, central finite differences, and the
Appendix C score-function term against exact ∇_φ Q on an enumerable finite-horizon MDP."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from bomrl.core.distances import logit_sq_distance
from bomrl.core.hypergradient import bomrl_hypergradient, discounted_forward_cumsum, root_vjp
from bomrl.core.inner_solver import solve_inner
from bomrl.core.losses import InnerData, make_inner_loss
from bomrl.core.policies import categorical_mlp, tabular_softmax


def test_quadratic_inner_problem_closed_form():
    # L(θ, φ) = ½ θᵀAθ − θᵀ(Bφ + c): θ*(φ) = A⁻¹(Bφ + c), so ∇_φ J(θ*) = Bᵀ A⁻¹ ∇J(θ*).
    rng = np.random.default_rng(0)
    m = rng.normal(size=(5, 5))
    a = jnp.asarray(m @ m.T + np.eye(5))
    b = jnp.asarray(rng.normal(size=(5, 3)))
    c = jnp.asarray(rng.normal(size=5))
    target = jnp.asarray(rng.normal(size=5))

    def flat(th):
        return jnp.concatenate([th["u"], th["w"].reshape(-1)])

    def loss(th, ph):
        x = flat(th)
        return 0.5 * x @ a @ x - x @ (b @ ph + c)

    phi = jnp.asarray(rng.normal(size=3))
    x_star = jnp.linalg.solve(a, b @ phi + c)
    theta = {"u": x_star[:1], "w": x_star[1:].reshape(2, 2)}
    g_flat = x_star - target                                    # ∇ of J(θ) = ½‖θ − target‖²
    g = {"u": g_flat[:1], "w": g_flat[1:].reshape(2, 2)}
    hg, v, info = root_vjp(loss, theta, phi, g, cg_iters=20, cg_tol=1e-14)
    closed = b.T @ jnp.linalg.solve(a, g_flat)
    np.testing.assert_allclose(hg, closed, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(flat(v), jnp.linalg.solve(a, g_flat), rtol=1e-10, atol=1e-12)
    assert int(info["cg/iterations"]) <= 5 and float(info["cg/residual"]) < 1e-12
    # and against autodiff through the closed-form solution
    auto = jax.grad(lambda p: 0.5 * jnp.sum((jnp.linalg.solve(a, b @ p + c) - target) ** 2))(phi)
    np.testing.assert_allclose(hg, auto, rtol=1e-10)


@pytest.fixture(scope="module")
def lake():
    from bomrl.tabular import mdp as tm
    from bomrl.tabular.frozenlake import sample_lake_tasks, task

    m = task(sample_lake_tasks(num_tasks=1, size=4, hole_prob=0.3, gamma=0.8, seed=3).mdp, 0)
    m = tm.TabularMDP(jnp.asarray(m.P), jnp.asarray(m.r), jnp.asarray(m.rho), m.gamma, jnp.asarray(m.terminal))
    S, A = m.num_states, m.num_actions
    policy = tabular_softmax(S, A)
    phi = {"theta": 0.5 * jax.random.normal(jax.random.PRNGKey(0), (S, A))}

    def q_fn(ph):  # exact Q^{π_φ} on every (s, a), differentiable in φ
        return tm.evaluate(m, tm.softmax_policy(ph["theta"]))[1].reshape(-1)

    pi = tm.softmax_policy(phi["theta"])
    q = q_fn(phi)
    # Enumerated "data": every (s, a) with exact weight ν^{π_φ}(s) π_φ(a|s)
    data = InnerData(jnp.repeat(jnp.arange(S), A), jnp.tile(jnp.arange(A), S),
                     (tm.visitation(m, pi)[:, None] * pi).reshape(-1), q, q)
    return m, policy, phi, q_fn, data


@pytest.mark.parametrize("name,lam", [("kl", 0.5), ("rkl", 0.5), ("euclid", 0.3)])
def test_frozenlake_fa_hypergradient_equals_tabular_ground_truth(lake, name, lam):
    from bomrl.tabular import hypergrad as thg
    from bomrl.tabular import inner as tinner
    from bomrl.tabular import mdp as tm

    m, policy, phi, q_fn, data = lake
    distance = {"kl": "d1", "rkl": "d2", "euclid": logit_sq_distance()}[name]
    loss = make_inner_loss(policy, distance, lam, "ratio")
    theta, diag = jax.jit(lambda ph, d: solve_inner(loss, ph, d, steps=30, solver="newton"))(phi, data)
    S, A = m.num_states, m.num_actions
    # the FA inner solution is the tabular eq. (1) solution
    ref = tinner.adapt(phi["theta"], data.q.reshape(S, A), lam, name)
    np.testing.assert_allclose(jax.nn.softmax(theta["theta"]), jax.nn.softmax(ref), atol=1e-7)
    assert float(diag["inner/grad_norm"]) < 1e-8

    g = jax.jit(jax.grad(lambda th: tm.expected_return(m, tm.softmax_policy(th["theta"]))))(theta)

    @jax.jit
    def both_modes(theta, phi, g):
        kw = dict(cg_iters=200, cg_tol=1e-13)
        return (bomrl_hypergradient(loss, theta, phi, data, g, mode="exact", q_fn=q_fn, **kw),
                bomrl_hypergradient(loss, theta, phi, data, g, mode="practical", **kw)[0])

    (hg, met), hgp = both_modes(theta, phi, g)
    truth = jax.jit(jax.grad(lambda ph: thg.meta_objective(m, ph, lam, name)))(phi["theta"])
    rel = float(jnp.linalg.norm(hg["theta"] - truth) / jnp.linalg.norm(truth))
    assert rel <= 1e-4, rel
    assert float(met["cg/failed"]) == 0.0 and float(met["cg/rel_residual"]) < 1e-10

    # the practical eq. (8) drops ∇_φ Q: it equals Prop. 1 without the ∇_φ Q term, and differs from the truth
    no_dq, _ = thg.hypergradient(m, phi["theta"], lam, name, include_dq=False)
    assert float(jnp.linalg.norm(hgp["theta"] - no_dq) / jnp.linalg.norm(no_dq)) <= 1e-4
    assert float(jnp.linalg.norm(hgp["theta"] - truth) / jnp.linalg.norm(truth)) > 1e-2

    if name != "kl":
        return
    # CG equals a dense solve of the same (singular for d1/d2: softmax shift) system
    flat_t, unravel = ravel_pytree(theta)
    hess = jax.hessian(lambda x: loss(unravel(x), phi, data)[0])(flat_t)
    flat_g = ravel_pytree(g)[0]
    dense = np.linalg.lstsq(np.asarray(hess), np.asarray(flat_g), rcond=1e-12)[0]
    _, v, _ = jax.jit(lambda th, ph, g: root_vjp(lambda a, b: loss(a, b, data)[0], th, ph, g, cg_iters=200,
                                                 cg_tol=1e-14))(theta, phi, g)
    np.testing.assert_allclose(ravel_pytree(v)[0], dense, atol=1e-8 * max(1.0, np.abs(dense).max()))


def test_practical_hypergradient_matches_finite_differences():
    # neural categorical policy, eq. (7) surrogate with h, d1; Q constant; J = expected reward of π_θ
    policy = categorical_mlp(3, 3, hidden=(4,), dtype=jnp.float64)
    k = jax.random.split(jax.random.PRNGKey(1), 5)
    phi = policy.init(k[0])
    obs = jax.random.normal(k[1], (200, 3))
    act = jax.random.randint(k[2], (200,), 0, 3)
    q = jax.random.normal(k[3], (200,))
    # the sampling log-probs are data: finite differences move φ but not the samples' probabilities
    data = InnerData(obs, act, jnp.ones(200), q, q, policy.log_prob(policy.apply(phi, obs), act))
    fresh_obs = jax.random.normal(k[4], (16, 3))
    rewards = jax.random.normal(jax.random.PRNGKey(99), (16, 3))
    loss = make_inner_loss(policy, "d1", 5.0, "h")  # λ large enough for an isolated inner optimum
    solve = jax.jit(lambda ph: solve_inner(loss, ph, data, steps=60, solver="newton")[0])

    def outer(th):  # a function of the policy only (softmax logits have a shift gauge)
        return jnp.mean(jnp.sum(jax.nn.softmax(policy.apply(th, fresh_obs), -1) * rewards, -1))

    theta = solve(phi)
    hg, met = jax.jit(lambda th, ph: bomrl_hypergradient(loss, th, ph, data, jax.grad(outer)(th), cg_iters=200,
                                                         cg_tol=1e-13))(theta, phi)
    assert float(met["cg/failed"]) == 0.0
    flat_phi, unravel = ravel_pytree(phi)
    flat_hg = ravel_pytree(hg)[0]
    eps = 1e-4
    for i in range(3):
        u = jax.random.normal(jax.random.PRNGKey(10 + i), flat_phi.shape)
        fd = (outer(solve(unravel(flat_phi + eps * u))) - outer(solve(unravel(flat_phi - eps * u)))) / (2 * eps)
        np.testing.assert_allclose(float(flat_hg @ u), float(fd), rtol=1e-4, atol=1e-8)


def test_discounted_forward_cumsum():
    c = jnp.asarray([[1.0, 2.0, 3.0, 4.0]])
    got = np.asarray(discounted_forward_cumsum(c, 0.5))
    ref = [[0.0, 0.5 * 1, 0.25 * 1 + 0.5 * 2, 0.125 * 1 + 0.25 * 2 + 0.5 * 3]]
    np.testing.assert_allclose(got, ref)


def test_score_term_equals_exact_grad_q_on_enumerated_episodes():
    """Appendix C estimator, contracted as in Prop. 2, with every episode of a horizon-3 MDP
    enumerated (weights = episode probabilities) is an exact expectation: it must equal the
    ∇_φ Q term obtained by autodiff through exact finite-horizon Q."""
    S, A, H, gamma = 2, 2, 3, 0.9
    rng = np.random.default_rng(7)
    P = jnp.asarray(rng.dirichlet(np.ones(S), size=(S, A)))
    r = jnp.asarray(rng.normal(size=(S, A)))
    rho = jnp.asarray([0.6, 0.4])
    policy = tabular_softmax(S, A)
    phi = {"theta": jnp.asarray(rng.normal(size=(S, A)))}

    def q_tables(ph):  # finite-horizon Q_t, t = 0..H-1 (Q_t has H - t steps to go)
        pi = jax.nn.softmax(ph["theta"], -1)
        qs, v_next = [], jnp.zeros(S)
        for _ in range(H):
            q = r + gamma * P @ v_next
            qs.append(q)
            v_next = jnp.sum(pi * q, -1)
        return jnp.stack(qs[::-1])  # [H, S, A]

    episodes = list(itertools.product(range(S), range(A), repeat=H))  # (s0, a0, s1, a1, s2, a2)
    ep = np.asarray(episodes)
    states, actions = ep[:, 0::2], ep[:, 1::2]                         # [E, H]
    pi0 = np.asarray(jax.nn.softmax(phi["theta"], -1))
    prob = np.asarray(rho)[states[:, 0]] * pi0[states[:, 0], actions[:, 0]]
    for t in range(1, H):
        prob = prob * np.asarray(P)[states[:, t - 1], actions[:, t - 1], states[:, t]] * pi0[states[:, t], actions[:, t]]
    assert abs(prob.sum() - 1) < 1e-12
    tidx = np.broadcast_to(np.arange(H), states.shape)

    def q_fn(ph):
        return q_tables(ph)[tidx, states, actions]

    qt = q_tables(phi)
    adv = qt[tidx, states, actions] - jnp.sum(pi0[None] * qt, -1)[tidx, states]
    weight = jnp.broadcast_to(jnp.asarray(prob)[:, None], states.shape)
    data = InnerData(jnp.asarray(states), jnp.asarray(actions), weight, q_fn(phi), adv)
    loss = make_inner_loss(policy, "d1", 0.7, "h")
    g = {"theta": jnp.asarray(rng.normal(size=(S, A)))}               # any outer gradient works

    @jax.jit
    def three_modes(phi, data, g):
        theta, _ = solve_inner(loss, phi, data, steps=20, solver="newton")
        kw = dict(cg_iters=100, cg_tol=1e-14)
        return (bomrl_hypergradient(loss, theta, phi, data, g, mode="exact", q_fn=q_fn, **kw)[0],
                bomrl_hypergradient(loss, theta, phi, data, g, mode="practical", **kw)[0],
                bomrl_hypergradient(loss, theta, phi, data, g, mode="score", policy=policy, gamma=gamma, **kw))

    exact, practical, (score, met) = three_modes(phi, data, g)
    np.testing.assert_allclose(score["theta"], exact["theta"], rtol=1e-9, atol=1e-12)
    assert float(jnp.max(jnp.abs(practical["theta"] - exact["theta"]))) > 1e-4  # the term matters
    assert float(met["hyper/score_norm"]) > 0


def test_bad_mode_is_a_config_error():
    from bomrl.errors import ConfigError

    with pytest.raises(ConfigError, match="mode"):
        bomrl_hypergradient(None, None, None, None, None, mode="implicit")
