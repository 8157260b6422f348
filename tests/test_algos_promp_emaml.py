"""ProMP's and E-MAML's meta-objectives against values computed by hand on tiny batches
(tabular softmax, 2 states × 2 actions, float64)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.algos.data import Data
from bomrl.algos.emaml import EMaml, EMamlConfig, emaml_objective, exploration_weights
from bomrl.algos.maml_trpo import maml_surrogate, reference_quantities
from bomrl.algos.promp import ProMP, ProMPConfig, adapt_kl_coef, promp_objective, promp_reference
from bomrl.core.policies import tabular_softmax

POLICY = tabular_softmax(2, 2)


def data(states, actions, advs, rews=None):
    """[T, E=1, H] tiny batch from nested lists (one row per task)."""
    s = np.asarray(states)[:, None, :]
    a = np.asarray(actions)[:, None, :]
    adv = np.asarray(advs, float)[:, None, :]
    rew = adv if rews is None else np.asarray(rews, float)[:, None, :]
    m = np.ones_like(adv)
    return Data(jnp.asarray(np.eye(2)[s]), jnp.asarray(a), jnp.asarray(rew), jnp.asarray(m),
                jnp.asarray(rew), jnp.asarray(adv))


def sm(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def test_promp_objective_by_hand():
    alpha, eps, eta = 1.0, 0.3, 0.5
    phi_old = np.zeros((2, 2))                        # π_old = (½, ½) in both states
    phi = np.array([[2.2, -0.8], [-0.6, 0.9]])         # current params during the outer Adam steps
    pre = data([[0, 1]], [[0, 1]], [[2.0, -1.0]])
    post = data([[0, 1]], [[0, 0]], [[1.5, -1.0]])

    # --- by hand -------------------------------------------------------------------------
    def inner(p):  # θ = p + α ∇ mean_pre[π_p/π_old · A], π_old(a|s) = ½ for the pre data
        g = np.zeros((2, 2))
        for s, a, adv in [(0, 0, 2.0), (1, 1, -1.0)]:
            pi = sm(p[s])
            score = -pi.copy()
            score[a] += 1
            g[s] += (pi[a] / 0.5) * score * adv / 2
        return p + alpha * g

    th, th_old = inner(phi), inner(phi_old)
    # θ(φ_old): g = ½·[(e0 − ½)·2, (e1 − ½)·(−1)] -> rows [+½, −½] and [+¼, −¼]
    np.testing.assert_allclose(th_old, [[0.5, -0.5], [0.25, -0.25]])
    terms = []
    for s, a, adv in [(0, 0, 1.5), (1, 0, -1.0)]:
        r = sm(th[s])[a] / sm(th_old[s])[a]
        terms.append(min(r * adv, np.clip(r, 1 - eps, 1 + eps) * adv))
    clip_obj = np.mean(terms)
    kl = np.mean([sum(0.5 * math.log(0.5 / q) for q in sm(phi[s])) for s in (0, 1)])
    want = clip_obj - eta * kl

    # the example exercises clipping on both sides: r > 1 + ε with A > 0 and r < 1 − ε with A < 0
    r0, r1 = sm(th[0])[0] / sm(th_old[0])[0], sm(th[1])[0] / sm(th_old[1])[0]
    assert r0 > 1 + eps and r1 < 1 - eps

    consts = promp_reference(POLICY, "likelihood_ratio", alpha, {"theta": jnp.asarray(phi_old)}, (pre,), post)
    got, m = promp_objective(POLICY, "likelihood_ratio", alpha, eps, eta, {"theta": jnp.asarray(phi)},
                             (pre,), post, consts)
    assert float(got) == pytest.approx(want, rel=1e-12)
    assert float(m["losses/clip_objective"]) == pytest.approx(clip_obj, rel=1e-12)
    assert float(m["inner/kl"]) == pytest.approx(kl, rel=1e-12)


def test_promp_update_improves_objective_and_kl_rule():
    pre = data([[0, 1, 1], [1, 0, 0]], [[0, 1, 0], [1, 1, 0]], [[1.0, -0.5, 0.3], [0.2, 0.8, -1.0]])
    post = data([[1, 0, 1], [0, 0, 1]], [[0, 1, 1], [0, 1, 0]], [[0.5, 1.0, -0.2], [-0.7, 0.4, 1.1]])
    cfg = ProMPConfig(learning_rate=0.05)
    algo = ProMP(cfg, POLICY)
    state = algo.init(jax.random.key(0))
    state = state._replace(params={"theta": jnp.asarray([[0.2, -0.1], [0.3, 0.0]])})
    consts = promp_reference(POLICY, cfg.inner_objective, cfg.inner_lr, state.params, (pre,), post)
    j = lambda p: float(promp_objective(POLICY, cfg.inner_objective, cfg.inner_lr, cfg.clip_eps,  # noqa: E731
                                        cfg.inner_kl_coef, p, (pre,), post, consts)[0])
    new_state, m = algo._meta_update(state, (pre,), post, None, jax.random.key(1))
    assert j(new_state.params) > j(state.params)
    assert int(new_state.iteration) == 1
    assert float(m["inner/kl_coef"]) == cfg.inner_kl_coef        # fixed by default
    assert float(m["inner/kl_after"]) > 0
    # the adaptive rule: halve below target/1.5, double above 1.5·target, keep in between
    assert float(adapt_kl_coef(1.0, 0.001, 0.01)) == 0.5
    assert float(adapt_kl_coef(1.0, 0.02, 0.01)) == 2.0
    assert float(adapt_kl_coef(1.0, 0.01, 0.01)) == 1.0


def test_emaml_objective_by_hand():
    alpha = 0.1
    phi = np.array([[0.4, -0.2], [0.0, 0.7]])
    pre = data([[0, 1], [1, 1]], [[1, 0], [1, 1]], [[0.5, -1.0], [1.0, 0.2]])
    post = data([[0, 0], [1, 0]], [[0, 1], [1, 0]], [[1.0, -1.0], [0.5, 0.5]], rews=[[1.0, 2.0], [3.0, 6.0]])

    # R̃ by hand: μ = 3, σ = sqrt((4 + 1 + 0 + 9) / 4)
    sd = math.sqrt(3.5)
    weights = np.array([(-2 - 1) / 2 / sd, (0 + 3) / 2 / sd])
    np.testing.assert_allclose(np.asarray(exploration_weights(post)), weights, rtol=1e-6)
    logp = lambda s, a: math.log(sm(phi[s])[a])  # noqa: E731
    mean_logp = np.array([(logp(0, 1) + logp(1, 0)) / 2, (logp(1, 1) + logp(1, 1)) / 2])
    explore = float(np.mean(weights * mean_logp))

    p = {"theta": jnp.asarray(phi)}
    consts = reference_quantities(POLICY, "log_likelihood", alpha, p, (pre,), post)
    maml = float(maml_surrogate(POLICY, "log_likelihood", alpha, p, (pre,), post, consts)[0])
    got, m = emaml_objective(POLICY, "log_likelihood", alpha, 1.0, p, (pre,), post, consts)
    assert float(m["losses/exploration"]) == pytest.approx(explore, rel=1e-6)
    assert float(got) == pytest.approx(maml + explore, rel=1e-6)
    # at φ_old every post ratio is 1, so the MAML part is the mean advantage
    assert maml == pytest.approx(np.mean([0.0, 0.5]), abs=1e-12)
    # its gradient w.r.t. φ adds Σ_i R̃_i mean ∇log π_φ(pre actions)/T to MAML's
    g_e = jax.grad(lambda q: emaml_objective(POLICY, "log_likelihood", alpha, 1.0, q, (pre,), post, consts)[0])(p)
    g_m = jax.grad(lambda q: maml_surrogate(POLICY, "log_likelihood", alpha, q, (pre,), post, consts)[0])(p)
    want = np.zeros((2, 2))
    for i, pairs in enumerate([[(0, 1), (1, 0)], [(1, 1), (1, 1)]]):
        for s, a in pairs:
            score = -sm(phi[s])
            score[a] += 1
            want[s] += weights[i] * score / 2 / 2
    np.testing.assert_allclose(np.asarray(g_e["theta"] - g_m["theta"]), want, rtol=1e-6, atol=1e-12)


def test_emaml_trpo_step_runs():
    pre = data([[0, 1], [1, 1]], [[1, 0], [1, 1]], [[0.5, -1.0], [1.0, 0.2]])
    post = data([[0, 0], [1, 0]], [[0, 1], [1, 0]], [[1.0, -1.0], [0.5, 0.5]], rews=[[1.0, 2.0], [3.0, 6.0]])
    algo = EMaml(EMamlConfig(), POLICY)
    state = algo.init(jax.random.key(0))
    new, m = algo._meta_update(state, (pre,), post, None, jax.random.key(1))
    assert m["trpo/accepted"] == 1.0 and 0 < float(m["trpo/kl"]) <= 0.01
    assert "losses/exploration" in m
