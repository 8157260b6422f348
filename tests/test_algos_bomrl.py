"""BO-MRL (Algorithm 2): the task-mean hypergradient that drives the TRPO meta-step equals central
finite differences of the post-adaptation policy-gradient surrogate through the exactly solved
inner problem eq. (7) (float64, a linear-Gaussian policy, an independently written inner loss)."""

import math

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.algos.bomrl import BoMrl, BoMrlConfig
from bomrl.algos.data import Data
from bomrl.core.inner_solver import solve_inner
from bomrl.core.policies import gaussian_mlp

T, E, H, D = 2, 3, 4, 2
LAM = 0.5
POLICY = gaussian_mlp(D, 1, hidden=(), dtype=jnp.float64)   # mean = w·s + b, learned log-std


def batch(seed):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(T, E, H, D))
    act = rng.normal(size=(T, E, H, 1))
    adv = 0.5 * rng.normal(size=(T, E, H))
    mask = np.ones((T, E, H))
    mask[:, 0, -1] = 0.0
    adv *= mask
    return Data(*(jnp.asarray(x) for x in (obs, act, adv, mask, adv, adv)))


def gauss_logp(p, obs, act):
    mean = obs @ p["mlp"][0]["w"] + p["mlp"][0]["b"]
    ls = p["log_std"]
    return jnp.sum(-0.5 * ((act - mean) / jnp.exp(ls)) ** 2 - ls - 0.5 * math.log(2 * math.pi), -1)


def gauss_kl(p_phi, p_theta, obs):
    """KL(π_φ(·|s) ‖ π_θ(·|s)) for 1-D Gaussians, written out."""
    m1 = obs @ p_phi["mlp"][0]["w"] + p_phi["mlp"][0]["b"]
    m2 = obs @ p_theta["mlp"][0]["w"] + p_theta["mlp"][0]["b"]
    s1, s2 = p_phi["log_std"], p_theta["log_std"]
    return jnp.sum(s2 - s1 + (jnp.exp(2 * s1) + (m1 - m2) ** 2) / (2 * jnp.exp(2 * s2)) - 0.5, -1)


def make_loss(logp_sampling):
    """Eq. (7) for one task with the sampling log-probabilities FIXED (the expectation over
    a ~ π_φ of π_θ/π_φ·Q does not depend on φ; eq. 8 differentiates only the distance in φ)."""
    def loss(theta, phi, d):
        obs, act, q, m, lp = d
        x = jnp.exp(gauss_logp(theta, obs, act) - lp)
        h = 2.0 / (1.0 + jnp.exp(-2.0 * (x - 1.0)))
        n = m.sum()
        return -jnp.sum(h * q * m) / n + LAM * jnp.sum(gauss_kl(phi, theta, obs) * m) / n, {}
    return loss


@jax.jit
def solve_exact(phi, pre, logp_sampling):
    """θ'_i(φ) for every task: damped Newton-CG (core solver), polished by dense Newton steps.
    Returns (θ' [T, ...], ‖∇_θ L‖ [T], min Hessian eigenvalue [T])."""
    def one(obs, act, q, m, lp):
        d = (obs, act, q, m, lp)
        loss = make_loss(lp)
        th, _ = solve_inner(loss, phi, d, steps=30, solver="newton")
        x, unravel = jax.flatten_util.ravel_pytree(th)
        fun = lambda x_: loss(unravel(x_), phi, d)[0]  # noqa: E731
        for _ in range(3):
            x = x - jnp.linalg.solve(jax.hessian(fun)(x), jax.grad(fun)(x))
        return unravel(x), jnp.linalg.norm(jax.grad(fun)(x)), jnp.min(jnp.linalg.eigvalsh(jax.hessian(fun)(x)))

    return jax.vmap(one)(pre.obs, pre.act, pre.adv, pre.mask, logp_sampling)


def post_surrogate(thetas, post):
    """mean_i Ê_post_i[log π_θ'_i(a|s) · A]: its θ-gradient is the outer policy gradient g_τ."""
    vals = [jnp.sum(gauss_logp(jax.tree.map(lambda x: x[i], thetas), post.obs[i], post.act[i]) * post.adv[i]
                    * post.mask[i]) / post.mask[i].sum() for i in range(T)]
    return jnp.mean(jnp.stack(vals))


def test_bomrl_meta_gradient_matches_finite_differences():
    pre, post = batch(0), batch(1)
    phi0 = POLICY.init(jax.random.key(3))
    phi0 = {"mlp": phi0["mlp"], "log_std": jnp.asarray([-0.2])}
    # pre-update actions sampled from π_φ0, as in Algorithm 2
    noise = jax.random.normal(jax.random.key(9), pre.act.shape, jnp.float64)
    pre = pre._replace(act=pre.obs @ phi0["mlp"][0]["w"] + phi0["mlp"][0]["b"] + jnp.exp(-0.2) * noise)
    logp_sampling = jnp.stack([gauss_logp(phi0, pre.obs[i], pre.act[i]) for i in range(T)])

    algo = BoMrl(BoMrlConfig(lam=LAM, distance="kl", surrogate="h", hypergradient="practical", hyper_damping=0.0,
                             hyper_cg_iters=50), POLICY)
    thetas, grad_norm, min_eig = solve_exact(phi0, pre, logp_sampling)
    assert np.all(np.asarray(grad_norm) < 1e-12) and np.all(np.asarray(min_eig) > 0)   # strict minima
    grad, metrics = algo.meta_gradient(phi0, pre, post, thetas)
    assert float(metrics["hyper/failed"]) == 0.0

    flat0, unravel = jax.flatten_util.ravel_pytree(phi0)
    f = lambda x: float(post_surrogate(solve_exact(unravel(x), pre, logp_sampling)[0], post))  # noqa: E731
    eps = 1e-5
    fd = np.array([(f(flat0 + eps * e) - f(flat0 - eps * e)) / (2 * eps) for e in np.eye(flat0.size)])
    got = np.asarray(jax.flatten_util.ravel_pytree(grad)[0])
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-8)
    assert np.linalg.norm(got) > 1e-3


def test_bomrl_trpo_step_stays_in_trust_region():
    pre, post = batch(4), batch(5)
    algo = BoMrl(BoMrlConfig(max_kl=1e-3, inner_steps=20), POLICY)
    state = algo.init(jax.random.key(0))
    thetas, diag = algo._adapt_with_metrics(jax.tree.map(lambda x: jnp.broadcast_to(x, (T, *x.shape)), state.params), pre)
    assert float(jnp.mean(diag["inner/loss"])) < float(jnp.mean(diag["inner/loss_initial"]))
    kl_fn = algo.pre_kl(state.params, pre)
    assert float(kl_fn(state.params)) == pytest.approx(0.0, abs=1e-14)
    new, m = algo._meta_update(state, (pre,), post, thetas, jax.random.key(1))
    assert float(m["trpo/accepted"]) == 1.0
    assert 0 < float(kl_fn(new.params)) <= 1e-3 + 1e-12


@pytest.mark.parametrize("hypergradient", ["unrolled", "practical", "score"])
def test_meta_step_with_the_adaptations_pullbacks_equals_recomputing_them(hypergradient):
    # training keeps the adaptation's pullbacks (the solve runs once per iteration); the meta-step
    # computed from them equals the one that differentiates the adaptation again
    pre, post = batch(6), batch(7)
    algo = BoMrl(BoMrlConfig(hypergradient=hypergradient, inner_solver="adam", inner_steps=8), POLICY)
    state = algo.init(jax.random.key(2))
    phi_t = jax.tree.map(lambda x: jnp.broadcast_to(x, (T, *x.shape)), state.params)
    thetas, _ = algo._adapt_with_metrics(phi_t, pre)
    kept = algo._pending[1]
    new_kept, m_kept = algo._update_jit(state.params, pre, post, thetas, kept)
    new_again, m_again = algo._update_jit(state.params, pre, post, thetas, None)
    np.testing.assert_allclose(jax.flatten_util.ravel_pytree(new_kept)[0], jax.flatten_util.ravel_pytree(new_again)[0],
                               rtol=1e-12, atol=1e-14)
    assert m_kept.keys() == m_again.keys() and float(m_kept["hyper/norm"]) > 0
    for k in m_kept:
        np.testing.assert_allclose(m_kept[k], m_again[k], rtol=1e-9, atol=1e-12, err_msg=k)
    if hypergradient != "unrolled":
        assert float(m_kept["hyper/iterations"]) >= 1
    # _meta_update consumes the kept pullbacks once, and only for the θ' they belong to
    algo._meta_update(state, (pre,), post, thetas, jax.random.key(1))
    assert algo._pending is None
