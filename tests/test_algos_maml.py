"""MAML-TRPO: the meta-gradient through the inner step equals central finite differences of the
post-adaptation objective, computed by an independent numpy implementation (tabular softmax, float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.algos.data import Data
from bomrl.algos.maml_trpo import (MamlTrpo, MamlTrpoConfig, adapt_batched, adapted_kl,
                                   maml_surrogate, reference_quantities)
from bomrl.core.policies import tabular_softmax

S, A, T, E, H = 3, 2, 2, 2, 3
ALPHA = 0.5


def synthetic(seed, t=T):
    rng = np.random.default_rng(seed)
    obs = rng.integers(0, S, size=(t, E, H))
    act = rng.integers(0, A, size=(t, E, H))
    adv = rng.normal(size=(t, E, H))
    rew = rng.normal(size=(t, E, H))
    mask = np.ones((t, E, H))
    mask[:, 1, -1] = 0.0     # one truncated episode per task
    onehot = np.eye(S)[obs]
    return Data(jnp.asarray(onehot), jnp.asarray(act), jnp.asarray(rew * mask), jnp.asarray(mask),
                jnp.asarray(rew * mask), jnp.asarray(adv * mask)), (obs, act, adv, mask)


def softmax(x):
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def np_inner_step(theta, raw, kind, logp_old):
    """θ + α ∇ mean[log π_θ A] (or mean[π_θ/π_old A]) for a tabular softmax, by hand."""
    obs, act, adv, mask = raw
    pi = softmax(theta)
    g = np.zeros_like(theta)
    n = mask.sum()
    for idx in np.ndindex(mask.shape):
        if mask[idx] == 0:
            continue
        s, a = obs[idx], act[idx]
        score = -pi[s].copy()
        score[a] += 1.0                       # ∇_θ[s] log π(a|s) = e_a − π(·|s)
        w = 1.0 if kind == "log_likelihood" else pi[s, a] / np.exp(logp_old[idx])
        g[s] += w * score * adv[idx] / n
    return theta + ALPHA * g


def np_post_objective(phi, pre_raw, post_raw, kind, logp_pre_old, logp_post_old):
    """mean over tasks of mean_post[π_θ(φ)(a|s)/π_old(a|s) · A]."""
    vals = []
    for i in range(T):
        pre_i = tuple(x[i] for x in pre_raw)
        theta = np_inner_step(phi, pre_i, kind, logp_pre_old[i])
        pi = softmax(theta)
        obs, act, adv, mask = (x[i] for x in post_raw)
        ratio = pi[obs, act] / np.exp(logp_post_old[i])
        vals.append((ratio * adv * mask).sum() / mask.sum())
    return float(np.mean(vals))


@pytest.mark.parametrize("kind", ["log_likelihood", "likelihood_ratio"])
def test_meta_gradient_matches_finite_differences(kind):
    policy = tabular_softmax(S, A)
    pre, pre_raw = synthetic(0)
    post, post_raw = synthetic(1)
    phi0 = {"theta": jnp.asarray(np.random.default_rng(2).normal(size=(S, A)))}
    consts = reference_quantities(policy, kind, ALPHA, phi0, (pre,), post)
    logps_old, _, post_logp_old = consts

    def f(phi):
        return maml_surrogate(policy, kind, ALPHA, phi, (pre,), post, consts)[0]

    g = np.asarray(jax.grad(f)(phi0)["theta"])

    # the value itself agrees with the numpy implementation at φ0 ...
    lp_pre, lp_post = np.asarray(logps_old[0]), np.asarray(post_logp_old)
    base = np.asarray(phi0["theta"])
    assert float(f(phi0)) == pytest.approx(np_post_objective(base, pre_raw, post_raw, kind, lp_pre, lp_post),
                                           rel=1e-12, abs=1e-12)
    # ... and so does its gradient, against central differences of the numpy objective
    eps = 1e-6
    fd = np.zeros_like(base)
    for idx in np.ndindex(base.shape):
        d = np.zeros_like(base)
        d[idx] = eps
        fd[idx] = (np_post_objective(base + d, pre_raw, post_raw, kind, lp_pre, lp_post)
                   - np_post_objective(base - d, pre_raw, post_raw, kind, lp_pre, lp_post)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    # the second-order path matters: the first-order (FOMAML) gradient, ∇_θ of the post objective
    # at θ(φ0) averaged over tasks, is different
    thetas = adapt_batched(policy, kind, ALPHA, {"theta": jnp.broadcast_to(phi0["theta"], (T, S, A))}, pre)

    def post_obj(th, o, a, adv, m, lp_old):
        lp = policy.log_prob(policy.apply(th, o), a)
        return jnp.sum(jnp.exp(lp - lp_old) * adv * m) / jnp.sum(m)

    g_fo = jax.vmap(jax.grad(post_obj))(thetas, post.obs, post.act, post.adv, post.mask, post_logp_old)
    g_fo = np.asarray(g_fo["theta"]).mean(0)
    assert np.max(np.abs(g_fo - g)) > 1e-3


def test_adapt_batched_equals_replayed_chain():
    """The params the sampler used for post-update data equal θ(φ_old) inside the meta-objective."""
    policy = tabular_softmax(S, A)
    pre, pre_raw = synthetic(3)
    phi0 = np.random.default_rng(4).normal(size=(S, A))
    params_t = {"theta": jnp.broadcast_to(jnp.asarray(phi0), (T, S, A))}
    out = np.asarray(adapt_batched(policy, "log_likelihood", ALPHA, params_t, pre)["theta"])
    for i in range(T):
        want = np_inner_step(phi0, tuple(x[i] for x in pre_raw), "log_likelihood", None)
        np.testing.assert_allclose(out[i], want, rtol=1e-12, atol=1e-12)


def test_trpo_meta_step_respects_adapted_kl_and_improves():
    policy = tabular_softmax(S, A)
    pre, _ = synthetic(5)
    post, _ = synthetic(6)
    algo = MamlTrpo(MamlTrpoConfig(inner_lr=ALPHA, max_kl=0.01), policy)
    phi0 = {"theta": jnp.asarray(np.random.default_rng(7).normal(size=(S, A)))}
    consts = reference_quantities(policy, "log_likelihood", ALPHA, phi0, (pre,), post)
    assert float(adapted_kl(policy, "log_likelihood", ALPHA, phi0, (pre,), post, consts)) == pytest.approx(0, abs=1e-14)
    new_phi, m = algo._update_jit(phi0, (pre,), post)
    assert m["trpo/accepted"] == 1.0
    kl = float(adapted_kl(policy, "log_likelihood", ALPHA, new_phi, (pre,), post, consts))
    assert 0 < kl <= 0.01 + 1e-12
    assert kl == pytest.approx(float(m["trpo/kl"]), rel=1e-10)
    f = lambda p: float(maml_surrogate(policy, "log_likelihood", ALPHA, p, (pre,), post, consts)[0])  # noqa: E731
    assert f(new_phi) > f(phi0)


def test_config_rejects_bad_values():
    from bomrl.errors import ConfigError

    with pytest.raises(ConfigError, match="inner_lr=-0.1"):
        MamlTrpoConfig(inner_lr=-0.1)
    with pytest.raises(ConfigError, match="inner_objective='dice'"):
        MamlTrpoConfig(inner_objective="dice")


def _adapted_kl_problem():
    """A small fixed MAML problem: (policy, pre, post, φ0, reference consts, exact adapted KL)."""
    policy = tabular_softmax(S, A)
    pre, _ = synthetic(8)
    post, _ = synthetic(9)
    phi0 = {"theta": jnp.asarray(np.random.default_rng(10).normal(size=(S, A)))}
    consts = reference_quantities(policy, "log_likelihood", ALPHA, phi0, (pre,), post)
    exact = lambda p: adapted_kl(policy, "log_likelihood", ALPHA, p, (pre,), post, consts)  # noqa: E731
    return policy, pre, post, phi0, consts, exact


def test_gauss_newton_fisher_products_equal_kl_hessian():
    """adapted_fisher_vp (what TRPO's CG uses) = the exact Hessian of the adapted KL at φ_old."""
    from jax.flatten_util import ravel_pytree

    from bomrl.algos.maml_trpo import adapted_batch, adapted_fisher_vp
    from bomrl.algos.pg_adaptation import pg_step

    policy, pre, post, phi0, consts, exact = _adapted_kl_problem()
    theta_fn = lambda p: adapted_batch(policy, "log_likelihood", ALPHA, p, (pre,), consts[0])  # noqa: E731
    step_fn = lambda p_t: jax.vmap(  # noqa: E731
        lambda p, d, lp: pg_step(policy, "log_likelihood", ALPHA, p, d, lp))(p_t, pre, consts[0][0])
    general = adapted_fisher_vp(policy, theta_fn, phi0, post)
    symmetric = adapted_fisher_vp(policy, theta_fn, phi0, post, step_fn=step_fn)  # Jᵀw via J's symmetry
    flat, unravel = ravel_pytree(phi0)
    h_exact = jax.hessian(lambda x: exact(unravel(x)))(flat)
    assert float(jnp.max(jnp.abs(h_exact))) > 1e-3
    for seed in range(3):
        v = jnp.asarray(np.random.default_rng(20 + seed).normal(size=flat.shape))
        for fvp in (general, symmetric):
            gn = ravel_pytree(fvp(unravel(v)))[0]
            np.testing.assert_allclose(gn, h_exact @ v, rtol=1e-9, atol=1e-12)


def test_trpo_with_subsampled_fisher_products():
    """fvp_subsample < 1: curvature from the first half of the episodes, exact KL in the line search."""
    policy = tabular_softmax(S, A)
    pre, _ = synthetic(12)
    post, _ = synthetic(13)
    algo = MamlTrpo(MamlTrpoConfig(inner_lr=ALPHA, max_kl=0.01, fvp_subsample=0.5), policy)
    phi0 = {"theta": jnp.asarray(np.random.default_rng(14).normal(size=(S, A)))}
    consts = reference_quantities(policy, "log_likelihood", ALPHA, phi0, (pre,), post)
    new_phi, m = algo._update_jit(phi0, (pre,), post)
    assert m["trpo/accepted"] == 1.0
    kl = float(adapted_kl(policy, "log_likelihood", ALPHA, new_phi, (pre,), post, consts))
    assert 0 < kl <= 0.01 + 1e-12 and kl == pytest.approx(float(m["trpo/kl"]), rel=1e-10)
