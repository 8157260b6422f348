"""Meta-gradient RL (bomrl.algos.mgrl): the λ-return against hand-computed values, the meta-gradient
dJ'/dη against central finite differences through the update (float64), the n-step runner's
episode bookkeeping, determinism and exact resume, config validation, and a short learning test on
CartPole-v1."""

import csv
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.algos.mgrl import (Mgrl, MgrlConfig, Seg, agent_loss, inner_update, meta_loss_through_update,
                              reference_advantages, value_apply, value_init)
from bomrl.core.lambda_return import lambda_return
from bomrl.core.policies import categorical_mlp, gaussian_mlp
from bomrl.errors import ConfigError


# ---- the λ-return ---------------------------------------------------------------------------------

def test_lambda_return_hand_computed_termination():
    # γ = 0.5, λ = 0.5, terminal at t = 2 (no bootstrap there, no look-ahead past it)
    r = jnp.array([1.0, 2.0, 3.0, 4.0])
    term = jnp.array([0.0, 0.0, 1.0, 0.0])
    v_next = jnp.array([10.0, 20.0, 30.0, 40.0])
    g = lambda_return(r, 0.5 * (1 - term), v_next, term, 0.5)
    # G3 = 4 + .5·40 = 24; G2 = 3; G1 = 2 + .5(.5·20 + .5·3) = 7.75; G0 = 1 + .5(.5·10 + .5·7.75)
    np.testing.assert_allclose(g, [5.4375, 7.75, 3.0, 24.0], rtol=1e-12)


def test_lambda_return_hand_computed_truncation():
    # truncated (time limit) at t = 1: bootstrap from v(s'_1) = 20, do not look past it
    r = jnp.array([1.0, 2.0, 3.0, 4.0])
    cut = jnp.array([0.0, 1.0, 0.0, 0.0])
    v_next = jnp.array([10.0, 20.0, 30.0, 40.0])
    g = lambda_return(r, jnp.full(4, 0.5), v_next, cut, 0.5)
    # G3 = 24; G2 = 3 + .5(.5·30 + .5·24) = 16.5; G1 = 2 + .5·20 = 12; G0 = 1 + .5(.5·10 + .5·12) = 6.5
    np.testing.assert_allclose(g, [6.5, 12.0, 16.5, 24.0], rtol=1e-12)


def test_lambda_return_limits():
    rng = np.random.default_rng(0)
    r, v = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    gamma = 0.9
    none = np.zeros((7, 3))
    g1 = lambda_return(jnp.asarray(r), jnp.full((7, 3), gamma), jnp.asarray(v), jnp.asarray(none), 1.0)
    # λ = 1: n-step return bootstrapped from the last next state
    want = np.zeros((7, 3))
    acc = v[-1]
    for t in reversed(range(7)):
        acc = r[t] + gamma * acc
        want[t] = acc
    np.testing.assert_allclose(g1, want, rtol=1e-12)
    g0 = lambda_return(jnp.asarray(r), jnp.full((7, 3), gamma), jnp.asarray(v), jnp.asarray(none), 0.0)
    np.testing.assert_allclose(g0, r + gamma * v, rtol=1e-12)


# ---- the meta-gradient ------------------------------------------------------------------------------

def _segment(rng, n, N, obs_dim, act_dim, discrete):
    obs = rng.normal(size=(n, N, obs_dim))
    next_obs = np.concatenate([obs[1:], rng.normal(size=(1, N, obs_dim))])
    act = rng.integers(0, act_dim, size=(n, N)) if discrete else rng.normal(size=(n, N, act_dim))
    term = np.zeros((n, N))
    term[2, 0] = 1.0
    cut = term.copy()
    cut[4, 1] = 1.0    # a time-limit truncation
    return Seg(jnp.asarray(obs), jnp.asarray(act, jnp.int32 if discrete else jnp.float64),
               jnp.asarray(rng.normal(size=(n, N))), jnp.asarray(next_obs), jnp.asarray(term), jnp.asarray(cut))


@pytest.mark.parametrize("discrete, optimizer, meta_critic", [
    (True, "adam", "reference"), (False, "adam", "inner"), (True, "sgd", "inner"), (False, "sgd", "reference")])
def test_meta_gradient_matches_finite_differences(discrete, optimizer, meta_critic):
    """dJ'/dη through one update (autodiff, and the algorithm's forward-mode trace) = central
    finite differences of η -> J'(τ', θ + f(τ, θ, η)), float64, at a non-trivial point."""
    rng = np.random.default_rng(1)
    obs_dim, act_dim = 4, 3
    policy = (categorical_mlp(obs_dim, act_dim, hidden=(8,), dtype=jnp.float64) if discrete else
              gaussian_mlp(obs_dim, act_dim, hidden=(8,), dtype=jnp.float64))
    c = MgrlConfig(inner_optimizer=optimizer, meta_critic=meta_critic, learning_rate=0.05, max_grad_norm=5.0,
                   entropy_coef=0.01, value_width=8, initial_discount=0.8, initial_lambda=0.7)
    algo = Mgrl(c, policy)
    state = algo.init(jax.random.PRNGKey(3))
    carry0 = algo._carry(state)
    # one Adam step from a fresh state is sign-like; take a first inner step so that the moments
    # are non-trivial (the point is not special)
    seg0, seg, seg_meta = (_segment(rng, 6, 3, obs_dim, act_dim, discrete) for _ in range(3))
    th, st, _ = inner_update(carry0["theta"], carry0["inner_opt"], carry0["eta"], seg0, policy, c, algo.inner_opt)
    carry0 = {**carry0, "theta": th, "inner_opt": st}

    # the algorithm's path: update on τ (stores z = ∂θ'/∂η), then the meta-step on τ'
    carry1, _ = algo._update_jit(carry0, seg)
    np.testing.assert_array_equal(carry1["eta"], carry0["eta"])     # zero trace: no meta-step yet
    critic = carry1["ref_v"] if meta_critic == "reference" else carry1["theta"]["v"]
    adv, _ = reference_advantages(seg_meta, value_apply(critic, seg_meta.obs), value_apply(critic, seg_meta.next_obs),
                                  c.meta_discount, c.meta_lambda)
    _, m = algo._update_jit(carry1, seg_meta)
    traced = np.array([m["meta/grad_gamma"], m["meta/grad_lambda"]])

    f = jax.jit(lambda e: meta_loss_through_update(e, carry0["theta"], carry0["inner_opt"], seg, seg_meta,
                                                   adv, policy, c, algo.inner_opt))
    eta = carry0["eta"]
    auto = np.asarray(jax.grad(f)(eta))
    eps = 1e-5
    fd = np.array([(f(eta + eps * e) - f(eta - eps * e)) / (2 * eps) for e in np.eye(2)])
    assert np.all(np.abs(fd) > 1e-8), fd            # a non-trivial meta-gradient
    np.testing.assert_allclose(auto, fd, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(traced, fd, rtol=1e-6, atol=1e-12)


def test_trace_accumulates_with_decay():
    """trace_decay μ: z after two updates = μ ∂f(τ1)/∂η + ∂f(τ2)/∂η (paper eq. (6), ∂f/∂θ dropped)."""
    rng = np.random.default_rng(4)
    policy = categorical_mlp(4, 3, hidden=(8,), dtype=jnp.float64)
    c = MgrlConfig(trace_decay=0.5, value_width=8, learning_rate=0.05)
    algo = Mgrl(c, policy)
    carry = algo._carry(algo.init(jax.random.PRNGKey(0)))
    segs = [_segment(rng, 5, 2, 4, 3, True) for _ in range(2)]
    jacs = []
    for seg in segs:
        f = lambda e, cr=carry, sg=seg: inner_update(cr["theta"], cr["inner_opt"], e, sg, policy, c,  # noqa: E731
                                                     algo.inner_opt)[0]
        carry, _ = algo._update_jit(carry, seg)
        jacs.append(jax.jacfwd(f)(carry["eta"]))
    want = jax.tree.map(lambda a, b: 0.5 * a + b, *jacs)
    for a, b in zip(jax.tree.leaves(carry["trace"]), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-14)


def test_agent_loss_depends_on_eta_only_through_the_return():
    """With λ = 1 and no cuts, ∂L/∂γ equals the hand-derived ∂G/∂γ chain (G = Σ γ^k r + γ^n v)."""
    rng = np.random.default_rng(2)
    policy = categorical_mlp(3, 2, hidden=(4,), dtype=jnp.float64)
    c = MgrlConfig(value_coef=0.0, entropy_coef=0.0, value_width=4)
    theta = {"pi": policy.init(jax.random.PRNGKey(0)), "v": value_init(jax.random.PRNGKey(1), 3, 4, jnp.float64)}
    n, N = 5, 2
    seg = Seg(jnp.asarray(rng.normal(size=(n, N, 3))), jnp.asarray(rng.integers(0, 2, (n, N)), jnp.int32),
              jnp.asarray(rng.normal(size=(n, N))), jnp.asarray(rng.normal(size=(n, N, 3))),
              jnp.zeros((n, N)), jnp.zeros((n, N)))
    eta = jnp.array([0.3, 40.0])          # λ = sigmoid(40) = 1 in float64
    gamma = float(jax.nn.sigmoid(0.3))
    logp = policy.log_prob(policy.apply(theta["pi"], seg.obs), seg.act)
    vlast = value_apply(theta["v"], seg.next_obs)[-1]
    dg = np.zeros((n, N))                 # dG_t/dγ = Σ_k k γ^{k−1} r_{t+k} + (n−t) γ^{n−t−1} v_last
    for t in range(n):
        for k in range(1, n - t):
            dg[t] += k * gamma ** (k - 1) * np.asarray(seg.rew[t + k])
        dg[t] += (n - t) * gamma ** (n - t - 1) * np.asarray(vlast)
    want = -np.mean(dg * np.asarray(logp)) * gamma * (1 - gamma)
    got = jax.grad(lambda e: agent_loss(theta, e, seg, policy, c)[0])(eta)
    np.testing.assert_allclose(got[0], want, rtol=1e-9)


# ---- the n-step runner ----------------------------------------------------------------------------

def test_nstep_runner_bookkeeping():
    from bomrl.envs.families import get_family
    from bomrl.envs.nstep import NStepRunner

    family = get_family("CartPole-v1")
    runner = NStepRunner(family, num_envs=3, horizon=7)
    runner.reset(np.zeros(1), np.array([1, 2, 3]))
    right = lambda p, obs, key, t: np.ones(len(obs), np.int64)  # noqa: E731  (falls in ~9-10 steps)
    seg = runner.rollout(right, None, None, 30)
    runner.close()
    assert seg.rew.shape == (30, 3) and np.all(seg.rew == 1.0)
    # every episode ends at the time limit 7 (truncation: not terminal) before the pole falls
    assert np.all(seg.episode_lengths == 7) and np.all(seg.episode_returns == 7)
    assert seg.terminated.sum() == 0
    np.testing.assert_array_equal(seg.cut[:, 0], (np.arange(30) % 7 == 6).astype(float))
    # after a cut, the next observation is a fresh reset state, not the stored next state
    assert not np.allclose(seg.obs[7, 0], seg.next_obs[6, 0])
    np.testing.assert_allclose(seg.obs[1:7, 0], seg.next_obs[:6, 0])
    # with a long limit the pole falls: terminations, returns = lengths
    runner = NStepRunner(family, num_envs=2, horizon=500)
    runner.reset(np.zeros(1), np.array([4, 5]))
    seg = runner.rollout(right, None, None, 40)
    runner.close()
    assert seg.terminated.sum() >= 2 and np.all(seg.cut >= seg.terminated)
    np.testing.assert_array_equal(seg.episode_returns, seg.episode_lengths)
    assert np.all(seg.episode_lengths < 20)


# ---- config -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("num_envs", 0), ("rollout_len", -1), ("inner_optimizer", "rmsprop"), ("learn", "gamma"),
    ("initial_discount", 1.0), ("initial_lambda", 0.0), ("meta_discount", 1.5), ("meta_critic", "outer"),
    ("meta_learning_rate", 0.0), ("trace_decay", 2.0), ("task", "fast"), ("task", "nan"), ("max_grad_norm", -1.0)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError) as exc:
        MgrlConfig(**{field: value})
    msg = str(exc.value)
    assert field in msg and "\n" not in msg


def _cartpole(horizon=500, num_tasks=1, episodes=2, seed=0):
    from bomrl.envs import make_sampler

    return make_sampler("CartPole-v1", num_tasks, episodes, horizon, seed=seed)


def test_iteration_shorter_than_horizon_is_refused():
    policy = categorical_mlp(4, 2, dtype=jnp.float64)
    algo = Mgrl(MgrlConfig(rollout_len=10, updates_per_iteration=4), policy)
    with _cartpole(horizon=50) as sampler, pytest.raises(ConfigError, match="horizon"):
        algo.step(algo.init(jax.random.PRNGKey(0)), sampler, None, jax.random.PRNGKey(1), call=0)


# ---- determinism, resume, learning ----------------------------------------------------------------------

SMALL = MgrlConfig(num_envs=4, rollout_len=10, updates_per_iteration=5)


def _run(config, iterations, horizon=50, seed=0):
    policy = categorical_mlp(4, 2, dtype=jnp.float64)
    algo = Mgrl(config, policy)
    key = jax.random.PRNGKey(seed)
    state = algo.init(jax.random.fold_in(key, 0))
    rows = []
    with _cartpole(horizon=horizon, seed=seed) as sampler:
        for it in range(iterations):
            state, m = algo.step(state, sampler, None, jax.random.fold_in(key, it + 1), call=it * 1000)
            rows.append({k: v for k, v in m.items() if not k.startswith("time/")})
    return algo, state, rows


def test_same_seed_same_numbers_and_eta_moves():
    _, s1, r1 = _run(SMALL, 2)
    _, s2, r2 = _run(SMALL, 2)
    assert r1 == r2
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
        np.testing.assert_array_equal(a, b)
    assert r1[-1]["meta/gamma"] != pytest.approx(0.9, abs=1e-6)     # η is learned
    _, _, fixed = _run(MgrlConfig(**{**SMALL.__dict__, "learn": "none"}), 2)
    assert fixed[-1]["meta/gamma"] == pytest.approx(0.9, rel=1e-12)
    assert fixed[-1]["meta/lambda"] == pytest.approx(0.9, rel=1e-12)


@pytest.mark.parametrize("learn, fixed, value", [("discount", "lambda", 1.0), ("lambda", "discount", 1.0),
                                                 ("none", "lambda", 1.0), ("none", "discount", 0.0)])
def test_unlearned_meta_parameter_may_sit_at_0_or_1(learn, fixed, value):
    """A meta-parameter that is not learned may be exactly 0 or 1 (logit ±inf, e.g. the fixed
    reference λ = 1): every number stays finite, the fixed one stays exact, the learned one moves."""
    name = {"discount": "initial_discount", "lambda": "initial_lambda"}[fixed]
    _, state, rows = _run(MgrlConfig(**{**SMALL.__dict__, "learn": learn, name: value}), 2)
    for r in rows:
        assert all(math.isfinite(v) for v in r.values()), r
        assert r["meta/lambda" if fixed == "lambda" else "meta/gamma"] == value
    for leaf in jax.tree.leaves(state.params):
        assert np.all(np.isfinite(leaf))
    if learn != "none":
        moved = "meta/gamma" if learn == "discount" else "meta/lambda"
        assert rows[-1][moved] != pytest.approx(0.9, abs=1e-6)


def test_train_resume_is_exact(tmp_path):
    from bomrl.workflow.config import TrainConfig
    from bomrl.workflow.train import train

    common = dict(env="CartPole-v1", algo="mgrl", tasks=1, episodes=2, horizon=50, seed=3, progress=False,
                  tensorboard=False, set=("num_envs=3", "rollout_len=10", "updates_per_iteration=5"))
    train(TrainConfig(**common, iterations=3, out=tmp_path / "full"))
    train(TrainConfig(**common, iterations=2, checkpoint_every=1, out=tmp_path / "part"))
    train(TrainConfig(resume=tmp_path / "part", iterations=3))

    def rows(d):
        with open(d / "metrics.csv") as f:
            return [{k: v for k, v in r.items() if k != "wall_s" and not k.startswith("time/")}
                    for r in csv.DictReader(f)]

    assert rows(tmp_path / "full") == rows(tmp_path / "part")
    assert len(rows(tmp_path / "full")) == 3


def test_adapt_evaluates_the_single_task():
    algo, state, _ = _run(SMALL, 1)
    with _cartpole(horizon=50, num_tasks=2, episodes=2) as sampler:
        out = algo.adapt(state, sampler, None, jax.random.PRNGKey(0), steps=2, call=0)
    assert out["returns"].shape == (3,) and out["task_returns"].shape == (3, 2)
    assert np.all((out["returns"] >= 1) & (out["returns"] <= 50))


def test_learns_cartpole():
    """A few seconds of meta-gradient A2C on CartPole-v1 (horizon 200): the mean episode return
    of the last iteration is several times that of the first (a random policy: ~22)."""
    c = MgrlConfig(num_envs=8, rollout_len=20, updates_per_iteration=10, learning_rate=3e-3)
    _, _, rows = _run(c, 12, horizon=200, seed=1)
    first, last = rows[0]["charts/pre_return"], rows[-1]["charts/pre_return"]
    print("cartpole learning test: first/last iteration return", first, last)
    assert first < 40 and last > 100, (first, last)
    assert all(math.isfinite(r["meta/gamma"]) for r in rows)
