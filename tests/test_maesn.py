"""MAESN: the latent score-function gradient against central finite differences and against the
closed-form gradient of a Gaussian expectation, the KL to the prior against its closed form, the
whole meta-gradient (through the inner step, with and without the θ step) against finite
differences, the Gauss-Newton Fisher product against the KL's Hessian (all float64), latents fixed
within an episode and independent across episodes, the fixed training-task set, the meta-test's
prior start, same seed / same numbers, config errors, a learning check on nav2d, and train /
resume / meta-test through the command line."""

import csv
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.algos import get_algorithm
from bomrl.algos.data import Data
from bomrl.algos.maesn import (MaesnConfig, PreBatch, adapt_tasks, gauss_newton_fvp, inner_latent_step,
                               latent_objective, maesn_objective, mean_kl, post_dists)
from bomrl.core.latent_policy import kl_to_prior, latent_gaussian_mlp, latent_log_prob, sample_latents
from bomrl.core.policies import gaussian_mlp
from bomrl.envs import make_sampler
from bomrl.errors import ConfigError

pytestmark = pytest.mark.usefixtures("shared_compilation_cache")


def _algo(**kw):
    algo_cls, cfg_cls = get_algorithm("maesn")
    kw = {"num_train_tasks": 8, **kw}
    cfg = cfg_cls(**kw)
    return algo_cls(cfg, latent_gaussian_mlp(2, 2, cfg.latent_dim, hidden=(16,), dtype=jnp.float64))


# ---- the latent distribution: closed forms -------------------------------------------------------

def test_kl_to_prior_closed_form():
    # by hand: μ = (1, 0), σ = (1, 2): ½[(1 + 1 − 1 − 0) + (4 + 0 − 1 − 2 ln 2)] = 2 − ln 2
    mu, ls = jnp.array([1.0, 0.0]), jnp.log(jnp.array([1.0, 2.0]))
    assert float(kl_to_prior(mu, ls)) == pytest.approx(2.0 - math.log(2.0), abs=1e-12)
    assert float(kl_to_prior(jnp.zeros(3), jnp.zeros(3))) == 0.0
    # the same KL as the Gaussian policy's (an independent formula), on random batches
    rng = np.random.default_rng(0)
    mu, ls = jnp.asarray(rng.normal(size=(5, 3))), jnp.asarray(0.5 * rng.normal(size=(5, 3)))
    ref = gaussian_mlp(1, 3).kl((mu, ls), (jnp.zeros_like(mu), jnp.zeros_like(ls)))
    np.testing.assert_allclose(kl_to_prior(mu, ls), ref, rtol=1e-12)
    # and a Monte-Carlo estimate E_q[log q − log p]
    z, _ = sample_latents(jax.random.PRNGKey(0), mu[0], ls[0], 400_000)
    mc = jnp.mean(latent_log_prob(z, mu[0], ls[0]) - latent_log_prob(z, jnp.zeros(3), jnp.zeros(3)))
    assert float(mc) == pytest.approx(float(kl_to_prior(mu[0], ls[0])), abs=0.02)


def test_latent_log_prob_closed_form():
    z, mu, ls = jnp.array([0.5, -1.0]), jnp.array([0.0, 1.0]), jnp.log(jnp.array([2.0, 0.5]))
    by_hand = sum(-0.5 * ((zi - mi) / si) ** 2 - math.log(si) - 0.5 * math.log(2 * math.pi)
                  for zi, mi, si in [(0.5, 0.0, 2.0), (-1.0, 1.0, 0.5)])
    assert float(latent_log_prob(z, mu, ls)) == pytest.approx(by_hand, abs=1e-12)


def test_latent_score_gradient_matches_finite_differences_and_closed_form():
    rng = np.random.default_rng(1)
    E, d = 7, 3
    mu, ls = jnp.asarray(rng.normal(size=d)), jnp.asarray(0.3 * rng.normal(size=d))
    z, adv = jnp.asarray(rng.normal(size=(E, d))), jnp.asarray(rng.normal(size=E))
    g_mu, g_ls = jax.grad(latent_objective, argnums=(0, 1))(mu, ls, z, adv)
    # closed form of ∇ mean[log q(z) Â]: (z − μ)/σ² and (z − μ)²/σ² − 1, weighted by Â
    s2 = jnp.exp(2 * ls)
    np.testing.assert_allclose(g_mu, jnp.mean(adv[:, None] * (z - mu) / s2, axis=0), rtol=1e-12)
    np.testing.assert_allclose(g_ls, jnp.mean(adv[:, None] * ((z - mu) ** 2 / s2 - 1), axis=0), rtol=1e-12)
    h = 1e-6
    for k in range(d):
        e = jnp.zeros(d).at[k].set(h)
        fd_mu = (latent_objective(mu + e, ls, z, adv) - latent_objective(mu - e, ls, z, adv)) / (2 * h)
        fd_ls = (latent_objective(mu, ls + e, z, adv) - latent_objective(mu, ls - e, z, adv)) / (2 * h)
        assert float(g_mu[k]) == pytest.approx(float(fd_mu), rel=1e-7, abs=1e-9)
        assert float(g_ls[k]) == pytest.approx(float(fd_ls), rel=1e-7, abs=1e-9)


def test_score_function_estimates_the_gradient_of_a_gaussian_expectation():
    """R(z) = −‖z − c‖²: E_q[R] = −‖μ − c‖² − Σσ², so ∇_μ = −2(μ − c) and ∇_{log σ} = −2σ²; the
    score-function estimate (z constants, Â = R − mean R) converges to it."""
    mu, ls, c = jnp.array([0.5, -1.0]), jnp.log(jnp.array([0.8, 1.5])), jnp.array([1.0, 1.0])
    z, _ = sample_latents(jax.random.PRNGKey(3), mu, ls, 1_000_000)
    r = -jnp.sum((z - c) ** 2, axis=-1)
    g_mu, g_ls = jax.grad(latent_objective, argnums=(0, 1))(mu, ls, z, r - jnp.mean(r))
    np.testing.assert_allclose(g_mu, -2 * (mu - c), atol=0.03)
    np.testing.assert_allclose(g_ls, -2 * jnp.exp(2 * ls), atol=0.03)
    # one inner step with step sizes α moves ω by α ∘ that gradient
    mu1, ls1 = inner_latent_step(mu, ls, jnp.array([0.5, 0.25]), jnp.array([0.1, 0.2]), z, r - jnp.mean(r))
    np.testing.assert_allclose(mu1, mu + jnp.array([0.5, 0.25]) * g_mu, rtol=1e-12)
    np.testing.assert_allclose(ls1, ls + jnp.array([0.1, 0.2]) * g_ls, rtol=1e-12)


# ---- the meta-gradient and the Fisher product: finite differences / Hessian (float64) -------------

def _problem(adapt_policy: bool, T=3, E=4, H=5, N=6, d=2, seed=0):
    rng = np.random.default_rng(seed)
    cfg = MaesnConfig(num_train_tasks=N, latent_dim=d, adapt_policy=adapt_policy, kl_weight=0.3)
    policy = latent_gaussian_mlp(2, 2, d, hidden=(8,), dtype=jnp.float64)
    params = {"theta": policy.init(jax.random.PRNGKey(seed)),
              "mu": jnp.asarray(rng.normal(size=(N, d))), "log_sigma": jnp.asarray(0.2 * rng.normal(size=(N, d))),
              "step_mu": jnp.asarray([0.7, 1.2]), "step_log_sigma": jnp.asarray([0.4, 0.9])}
    idx = jnp.asarray([4, 0, 2])

    def data(k):
        r = np.random.default_rng(k)
        mask = np.ones((T, E, H))
        mask[0, 1, 3:] = 0.0                         # an early termination
        return Data(*(jnp.asarray(x) for x in (r.normal(size=(T, E, H, 2)), r.normal(size=(T, E, H, 2)),
                                               r.normal(size=(T, E, H)), mask, r.normal(size=(T, E, H)),
                                               r.normal(size=(T, E, H)) * mask)))

    pre = PreBatch(jnp.asarray(rng.normal(size=(T, E, d))), jnp.asarray(rng.normal(size=(T, E))), data(10))
    eps1, post = jnp.asarray(rng.normal(size=(T, E, d))), data(11)
    logp_old = jnp.asarray(rng.normal(size=(T, E, H)) - 2.0)
    return cfg, policy, params, idx, pre, eps1, post, logp_old


def _tree_dot(a, b):
    return sum(float(jnp.vdot(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("adapt_policy", [False, True])
def test_meta_gradient_matches_finite_differences(adapt_policy):
    cfg, policy, params, idx, pre, eps1, post, logp_old = _problem(adapt_policy)
    f = lambda p: maesn_objective(policy, cfg, p, idx, pre, eps1, post, logp_old)[0]  # noqa: E731
    g = jax.grad(f)(params)
    # rows of tasks outside the meta-batch get no gradient
    assert float(jnp.abs(g["mu"][jnp.asarray([1, 3, 5])]).max()) == 0.0
    assert float(jnp.abs(g["step_mu"]).max()) > 0 and float(jnp.abs(g["step_log_sigma"]).max()) > 0
    h = 1e-6
    for k in range(4):
        v = jax.tree.map(lambda x, kk=k: jnp.asarray(np.random.default_rng(100 + kk).normal(size=x.shape)), params)
        plus = jax.tree.map(lambda x, y: x + h * y, params, v)
        minus = jax.tree.map(lambda x, y: x - h * y, params, v)
        fd = (float(f(plus)) - float(f(minus))) / (2 * h)
        assert _tree_dot(g, v) == pytest.approx(fd, rel=1e-6, abs=1e-9)
    # the inner step adapts θ only when asked to
    theta1, _, _ = adapt_tasks(policy, cfg, params, idx, pre)
    assert (theta1 is None) == (not adapt_policy)


def test_frozen_step_sizes_get_no_gradient():
    cfg, policy, params, idx, pre, eps1, post, logp_old = _problem(False)
    cfg = MaesnConfig(num_train_tasks=6, learn_inner_lr=False)
    g = jax.grad(lambda p: maesn_objective(policy, cfg, p, idx, pre, eps1, post, logp_old)[0])(params)
    assert float(jnp.abs(g["step_mu"]).max()) == 0.0 and float(jnp.abs(g["step_log_sigma"]).max()) == 0.0
    assert float(jnp.abs(g["mu"][idx]).max()) > 0


def test_kl_term_is_the_prior_kl_of_the_pre_update_latents():
    cfg, policy, params, idx, pre, eps1, post, logp_old = _problem(False)
    _, m = maesn_objective(policy, cfg, params, idx, pre, eps1, post, logp_old)
    want = np.mean([float(kl_to_prior(params["mu"][i], params["log_sigma"][i])) for i in (4, 0, 2)])
    assert float(m["losses/kl_prior"]) == pytest.approx(want, rel=1e-12)
    assert float(m["losses/objective"]) == pytest.approx(float(m["losses/surrogate"]) - 0.3 * want, rel=1e-12)


@pytest.mark.parametrize("adapt_policy", [False, True])
def test_gauss_newton_fisher_equals_the_kl_hessian(adapt_policy):
    cfg, policy, params, idx, pre, eps1, post, _ = _problem(adapt_policy)
    dist_fn = lambda p: post_dists(policy, cfg, p, idx, pre, eps1, post.obs)  # noqa: E731
    old = jax.lax.stop_gradient(dist_fn(params))
    kl_fn = lambda p: mean_kl(policy, old, dist_fn(p), post.mask)  # noqa: E731
    fvp = gauss_newton_fvp(policy, dist_fn, params, post.mask)
    v = jax.tree.map(lambda x: jnp.asarray(np.random.default_rng(7).normal(size=x.shape)), params)
    hv = jax.jvp(jax.grad(kl_fn), (params,), (v,))[1]
    for a, b in zip(jax.tree.leaves(fvp(v)), jax.tree.leaves(hv)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


# ---- sampling: z fixed within an episode, independent across episodes ------------------------------

def test_latents_fixed_within_episode_and_independent_across_episodes():
    """With a near-deterministic policy the sampled action is the mean: every action of episode e
    is π's mean at (s_t, z_e) (the episode's own latent at every step, none of another episode's),
    and the drawn latents are independent N(μ, σ²) across episodes."""
    algo = _algo()
    policy = algo.policy
    T, E, H = 2, 3, 8
    theta = policy.init(jax.random.PRNGKey(1))
    theta = {**theta, "log_std": jnp.full_like(theta["log_std"], -30.0)}
    mu, ls = jnp.array([[0.3, -0.4], [1.0, 2.0]]), jnp.array([[0.0, 0.5], [-0.3, 0.1]])
    z, _ = algo._draw(jax.random.PRNGKey(2), mu, ls, E)
    assert z.shape == (T, E, 2)
    with make_sampler("nav2d", T, E, H, seed=0, dtype=np.float64) as s:
        theta_t = jax.tree.map(lambda x: jnp.stack([x] * T), theta)
        batch, _ = s.sample(policy, {"theta": theta_t, "z": z}, s.sample_tasks(), jax.random.PRNGKey(3), call=0)
    for t in range(T):
        for e in range(E):
            L = int(batch.lengths[t, e])
            mean = policy.apply_latent(theta, jnp.asarray(batch.obs[t, e, :L]), z[t, e])[0]
            np.testing.assert_allclose(batch.act[t, e, :L], mean, atol=1e-9)
            other = policy.apply_latent(theta, jnp.asarray(batch.obs[t, e, :L]), z[t, (e + 1) % E])[0]
            assert float(jnp.max(jnp.abs(other - mean))) > 1e-4
    # independence across episodes: 50,000 episode latents of one task
    big, _ = algo._draw(jax.random.PRNGKey(4), mu[1:], ls[1:], 50_000)
    x = np.asarray(big[0])
    np.testing.assert_allclose(x.mean(axis=0), mu[1], atol=0.03)
    np.testing.assert_allclose(x.std(axis=0), np.exp(ls[1]), rtol=0.02)
    for k in range(2):
        lag1 = np.corrcoef(x[:-1, k], x[1:, k])[0, 1]
        assert abs(lag1) < 0.02, lag1
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.02


# ---- the algorithm ---------------------------------------------------------------------------------

def test_meta_batch_comes_from_the_fixed_training_tasks():
    algo = _algo(num_train_tasks=8)
    with make_sampler("nav2d", 3, 2, 5, seed=4, dtype=np.float64) as s:
        fixed = algo.train_tasks(s)
        assert fixed.shape == (8, 2)
        np.testing.assert_array_equal(fixed, algo.train_tasks(s))
        seen = []
        orig = s.sample
        s.sample = lambda policy, params, tasks, key, call: (seen.append((call, np.asarray(tasks))),
                                                             orig(policy, params, tasks, key, call=call))[1]
        state = algo.init(jax.random.PRNGKey(0))
        algo.step(state, s, s.sample_tasks(), jax.random.PRNGKey(1), call=7)
    assert [c for c, _ in seen] == [7, 8] and algo.sampler_calls == 2   # pre and post: call indices 7, 8
    assert np.array_equal(seen[0][1], seen[1][1])                        # pre and post: the same tasks
    rows = [int(np.flatnonzero((fixed == t).all(axis=1))[0]) for t in seen[0][1]]
    assert len(set(rows)) == 3                                           # distinct rows of the fixed set
    with make_sampler("nav2d", 9, 2, 5, seed=4, dtype=np.float64) as s:
        with pytest.raises(ConfigError, match="--tasks=9 is invalid: must be <= num_train_tasks=8"):
            algo.step(state, s, s.sample_tasks(), jax.random.PRNGKey(1), call=0)


def test_step_is_deterministic_and_meta_test_starts_from_the_prior():
    algo = _algo()
    with make_sampler("nav2d", 3, 4, 10, seed=0, dtype=np.float64) as s:
        tasks = s.sample_tasks()
        state = algo.init(jax.random.PRNGKey(0))
        assert state.params["mu"].shape == (8, 2) and float(jnp.abs(state.params["log_sigma"]).max()) == 0.0
        np.testing.assert_array_equal(state.params["step_mu"], [1.0, 1.0])
        s1, m1 = algo.step(state, s, tasks, jax.random.PRNGKey(1), call=0)
        s2, m2 = algo.step(state, s, tasks, jax.random.PRNGKey(1), call=0)
        for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
            np.testing.assert_array_equal(a, b)
        strip = lambda m: {k: v for k, v in m.items() if not k.startswith("time/")}  # noqa: E731
        assert strip(m1) == strip(m2)
        assert m1["charts/env_steps"] == 2 * 3 * 4 * 10 and m1["trpo/accepted"] == 1.0
        assert int(s1.iteration) == 1
        out = algo.adapt(s1, s, tasks, jax.random.PRNGKey(2), steps=2, call=5)
        assert out["returns"].shape == (3,) and out["task_returns"].shape == (3, 3)
        assert out["env_steps"] == 3 * 3 * 4 * 10
        # the training tasks' latents play no part at meta-test (q starts at the prior)
        other = s1._replace(params={**s1.params, "mu": s1.params["mu"] + 5.0, "log_sigma": s1.params["log_sigma"] - 1})
        out2 = algo.adapt(other, s, tasks, jax.random.PRNGKey(2), steps=2, call=5)
        np.testing.assert_array_equal(out["task_returns"], out2["task_returns"])


@pytest.mark.parametrize("kw, fragment", [({"latent_dim": 0}, "latent_dim=0"),
                                          ({"num_train_tasks": 2.5}, "num_train_tasks=2.5"),
                                          ({"inner_lr_init": -1.0}, "inner_lr_init=-1.0"),
                                          ({"kl_weight": -0.1}, "kl_weight=-0.1"),
                                          ({"test_lr_decay": 0.0}, "test_lr_decay=0.0"),
                                          ({"policy_inner_lr": float("inf")}, "policy_inner_lr=inf"),
                                          ({"kl_weight": float("nan")}, "kl_weight=nan"),
                                          ({"kl_weight": float("inf")}, r"kl_weight=inf.*\[0, 1e\+06\]"),
                                          ({"latent_dim": 2000}, r"latent_dim=2000.*\[1, 1,024\]")])
def test_config_errors_are_one_line(kw, fragment):
    with pytest.raises(ConfigError, match=fragment) as exc:
        MaesnConfig(**kw)
    assert "\n" not in str(exc.value)


def test_learns_nav2d_within_seconds():
    """10 tasks (the whole fixed set of 10) × 20 episodes × 50 steps, 15 meta-iterations (float64):
    the post-update return rises, and one meta-test adaptation from the prior on new tasks is
    better after meta-training than before."""
    algo = _algo(num_train_tasks=10)
    with make_sampler("nav2d", 10, 20, 50, seed=0, dtype=np.float64) as s:
        test_tasks = s.sample_tasks(np.random.default_rng(99))
        state = algo.init(jax.random.PRNGKey(0))
        before = algo.adapt(state, s, test_tasks, jax.random.PRNGKey(7), steps=1, call=10**6)["returns"]
        curve = []
        for it in range(15):
            state, m = algo.step(state, s, s.sample_tasks(), jax.random.PRNGKey(it + 1), call=it * 10)
            curve.append(m["charts/post_return"])
        after = algo.adapt(state, s, test_tasks, jax.random.PRNGKey(7), steps=1, call=10**6)["returns"]
    # measured (2026-12-02): post-update return -53.5, -55.4, -57.4 at iterations 1-3 and
    # -17.9, -17.2, -15.7 at 13-15; meta-test after one adaptation -44.3 before, -16.1 after training
    assert np.mean(curve[-3:]) - np.mean(curve[:3]) >= 15.0, curve
    assert after[1] - before[1] >= 10.0, (before, after)


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k != "wall_s" and not k.startswith("time/")}
                for r in csv.DictReader(f)]


def test_train_resume_bit_identical_and_meta_test(tmp_path):
    from bomrl.cli import main
    from bomrl.workflow.checkpoint import load_latest

    tiny = ["--env", "nav2d", "--algo", "maesn", "--tasks", "3", "--episodes", "4", "--horizon", "15",
            "--workers", "1", "--seed", "3", "--no-progress", "--no-tensorboard", "--checkpoint-every", "2",
            "--hidden", "8", "--set", "num_train_tasks=10", "kl_weight=0.5"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", *tiny, "--iterations", "4", "--out", str(full)]) == 0
    assert main(["train", *tiny, "--iterations", "2", "--out", str(part)]) == 0
    assert main(["train", "--resume", str(part), "--iterations", "4", "--no-progress"]) == 0
    a, b = _rows(full / "metrics.csv"), _rows(part / "metrics.csv")
    assert len(a) == len(b) == 4 and a == b
    ca, cb = load_latest(full), load_latest(part)
    assert all(np.array_equal(x, y) for x, y in zip(ca.leaves, cb.leaves))
    assert any(x.shape == (10, 2) for x in ca.leaves)          # the per-task latents are checkpointed
    saved = json.loads((full / "config.json").read_text())
    assert saved["train"]["algo"] == "maesn" and saved["algo_config"]["kl_weight"] == 0.5
    assert "losses/kl_prior" in a[0] and "latent/step_mu" in a[0]
    out = tmp_path / "mt.json"
    assert main(["meta-test", str(full), "--adapt-steps", "2", "--tasks", "2", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["algo"] == "maesn" and len(res["returns"]) == 3
    # 3 rounds x 2 tasks x 4 episodes x at most 15 steps (a nav2d episode ends early at the goal)
    assert 3 * 2 * 4 <= res["env_steps"] <= 3 * 2 * 4 * 15
    # the same run tested on the sparse reward (--env, as MAESN is evaluated): the same test tasks
    # and, before any adaptation, the same trajectories, so per task max(-d, -0.2) >= -d per step
    assert main(["meta-test", str(full), "--adapt-steps", "2", "--tasks", "2", "--env", "nav2d-sparse"]) == 0
    sparse = json.loads((full / "meta_test-nav2d-sparse.json").read_text())
    assert sparse["env"] == "nav2d-sparse" and sparse["trained_env"] == "nav2d" and res["trained_env"] == "nav2d"
    dense0, sparse0 = np.asarray(res["task_returns"][0]), np.asarray(sparse["task_returns"][0])
    assert np.all(sparse0 >= dense0) and np.any(sparse0 > dense0) and np.all(sparse0 >= -0.2 * 15)
    assert not (full / "meta_test.json").exists()      # the run's own meta-test file is not overwritten
