"""The paper's released-scripts protocol (docs/REPRODUCTION.md, "Under the released scripts'
protocol"): each element against a hand-computed value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from bomrl.core.adaptation import adapt
from bomrl.core.inner_solver import solve_inner
from bomrl.core.losses import InnerData, make_inner_loss
from bomrl.core.policies import gaussian_mlp
from bomrl.errors import ConfigError


# ---- the inner solver's distance stop (58686367566: break before a step once the mean distance > 3) ----

def _line_loss(lam):
    """L(θ, φ) = −θ + λ(θ − φ)² on a scalar, with inner/distance = (θ − φ)²."""
    def loss(theta, phi, data):
        d = jnp.sum((theta - phi) ** 2)
        return -jnp.sum(theta) + lam * d, {"inner/distance": d}
    return loss


def test_stop_distance_keeps_the_crossing_step():
    # sgd, lr 1, λ 0.25 from θ = φ = 0: u = θ − φ runs 0, 1, 1.5, 1.75, 1.875, ... (u ← u/2 + 1);
    # distances u² = 0, 1, 2.25, 3.0625: the check before step 3 sees 3.0625 > 3 and stops at u = 1.75
    phi = jnp.zeros(1)
    theta, diag = solve_inner(_line_loss(0.25), phi, None, steps=10, solver="sgd", learning_rate=1.0,
                              stop_distance=3.0)
    np.testing.assert_allclose(theta, [1.75], rtol=1e-12)
    assert int(diag["inner/steps_taken"]) == 3
    free, diag_free = solve_inner(_line_loss(0.25), phi, None, steps=10, solver="sgd", learning_rate=1.0)
    assert float(free[0]) > 1.99 and "inner/steps_taken" not in diag_free
    # a threshold never reached changes nothing
    same, d = solve_inner(_line_loss(0.25), phi, None, steps=10, solver="sgd", learning_rate=1.0, stop_distance=5.0)
    np.testing.assert_allclose(same, free, rtol=0, atol=0)
    assert int(d["inner/steps_taken"]) == 10


def test_stopped_adam_solve_and_its_derivative_equal_the_shorter_solve():
    # on a real inner problem (d1, h surrogate, 50 Adam steps at 1e-3 as the released solver, λ small
    # so that the distance grows past the threshold): the stopped solve returns exactly the solve of
    # `steps_taken` steps, and reverse mode through it is that shorter solve's derivative
    policy = gaussian_mlp(3, 2, hidden=(8,), dtype=jnp.float64)
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    phi = policy.init(k[0])
    obs = jax.random.normal(k[1], (30, 3), jnp.float64)
    act = policy.sample(policy.apply(phi, obs), k[2])
    q = 50.0 * jax.random.normal(k[3], (30,), jnp.float64)
    data = InnerData(obs, act, jnp.ones(30), q, q)
    loss = make_inner_loss(policy, "d1", 0.2, "h")
    kw = dict(solver="adam", learning_rate=1e-3)
    theta, diag = jax.jit(lambda p: solve_inner(loss, p, data, steps=50, stop_distance=0.01, **kw))(phi)
    n = int(diag["inner/steps_taken"])
    assert 1 < n < 50, n
    short, _ = jax.jit(lambda p: solve_inner(loss, p, data, steps=n, **kw))(phi)
    np.testing.assert_allclose(ravel_pytree(theta)[0], ravel_pytree(short)[0], rtol=1e-12, atol=1e-14)
    assert float(diag["inner/distance"]) > 0.01          # the crossing step is kept
    v = jax.tree.map(lambda x: jnp.sin(jnp.arange(x.size, dtype=x.dtype)).reshape(x.shape), phi)

    def vjp_of(fn):
        return ravel_pytree(jax.vjp(fn, phi)[1](v)[0])[0]

    stopped = vjp_of(lambda p: adapt(loss, p, data, steps=50, stop_distance=0.01, **kw)[0])
    shorter = vjp_of(lambda p: adapt(loss, p, data, steps=n, **kw)[0])
    np.testing.assert_allclose(stopped, shorter, rtol=1e-10, atol=1e-12)


def test_stop_distance_refusals():
    with pytest.raises(ConfigError, match="stop_distance"):
        solve_inner(_line_loss(1.0), jnp.zeros(1), None, steps=2, solver="sgd", stop_distance=-1.0)
    with pytest.raises(ConfigError, match="adam or sgd"):
        solve_inner(_line_loss(1.0), jnp.zeros(1), None, steps=2, solver="armijo", stop_distance=3.0)
    from bomrl.algos.bomrl import BoMrlConfig
    with pytest.raises(ConfigError, match="inner_stop_distance"):
        BoMrlConfig(inner_solver="armijo", inner_stop_distance=3.0)
    assert BoMrlConfig(inner_solver="adam", inner_stop_distance=3.0).solver_kwargs["stop_distance"] == 3.0
    assert BoMrlConfig().solver_kwargs["stop_distance"] is None


# ---- Q: Monte-Carlo, centred per task, extended by a continuation rollout (36902121699) ---------

def test_continuation_rewards_fold_the_tail_into_the_last_data_step():
    from bomrl.core.advantages import continuation_rewards, discounted_returns

    g = 0.5
    rew = jnp.array([[1.0, 2.0, 4.0, 8.0, 16.0]])        # H = 5: 3 data steps + 2 continuation steps
    mask = jnp.ones((1, 5))
    folded = continuation_rewards(rew, mask, g, 2)
    # tail return 8 + 0.5·16 = 16, folded into step 2 as 0.5·16 = 8: rewards 1, 2, 4 + 8
    np.testing.assert_allclose(folded, [[1.0, 2.0, 12.0]])
    # the Q of the data steps is the discounted return of the whole 5-step episode
    np.testing.assert_allclose(discounted_returns(folded, mask[:, :3], g), discounted_returns(rew, mask, g)[:, :3])
    # an episode that ended inside the data steps gets no tail; one that ended inside the tail a partial one
    ended = jnp.array([[1.0, 1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.0]])
    out = continuation_rewards(jnp.ones((2, 5)) * ended, ended, g, 2)
    np.testing.assert_allclose(out, [[1.0, 1.0, 0.0], [1.0, 1.0, 1.5]])


def test_centred_mc_with_continuation_by_hand():
    from bomrl.algos.data import process_batch

    g = 0.5
    # one task, two episodes of 2 data steps + 1 continuation step; obs/act unused by this estimator
    rew = jnp.array([[[1.0, 2.0, 4.0], [0.0, 2.0, 0.0]]])
    mask = jnp.array([[[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]])   # episode 2 ended before its continuation
    obs = jnp.zeros((1, 2, 3, 1))
    act = jnp.zeros((1, 2, 3, 1))
    d = process_batch((obs, act, rew, mask), discount=g, gae_lambda=1.0, normalize=False,
                      estimator="centred-mc", continuation=1)
    # Q: episode 1: step 1: 2 + 0.5·4 = 4, step 0: 1 + 0.5·4 = 3; episode 2: 2 and 0 + 0.5·2 = 1
    np.testing.assert_allclose(d.ret, [[[3.0, 4.0], [1.0, 2.0]]])
    np.testing.assert_allclose(d.adv, [[[0.5, 1.5], [-1.5, -0.5]]])          # minus the mean 2.5
    assert d.obs.shape == (1, 2, 2, 1) and d.rew.shape == (1, 2, 2)          # only the data steps
    # standardised on request; and the default pipeline is untouched by the new settings
    d_std = process_batch((obs, act, rew, mask), discount=g, gae_lambda=1.0, normalize=True,
                          estimator="centred-mc", continuation=1)
    np.testing.assert_allclose(d_std.adv, np.array([[[0.5, 1.5], [-1.5, -0.5]]]) / np.sqrt(1.25), rtol=1e-6)
    a = process_batch((obs, act, rew, mask), discount=g, gae_lambda=1.0)
    b = process_batch((obs, act, rew, mask), discount=g, gae_lambda=1.0, estimator="gae", continuation=0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_q_settings_refusals():
    from bomrl.algos.bomrl import BoMrlConfig
    from bomrl.algos.data import process_batch
    from bomrl.algos.maml_trpo import MamlTrpoConfig

    with pytest.raises(ConfigError, match="advantage_estimator"):
        MamlTrpoConfig(advantage_estimator="td")
    with pytest.raises(ConfigError, match="continuation"):
        BoMrlConfig(continuation=5, gae_lambda=0.95)
    assert BoMrlConfig(continuation=5, gae_lambda=0.95, advantage_estimator="centred-mc").continuation == 5
    z = jnp.zeros((1, 1, 3))
    with pytest.raises(ConfigError, match="continuation"):
        process_batch((z[..., None], z[..., None], z, z), discount=0.9, gae_lambda=1.0, continuation=3)


# ---- MAML's inner step on the h surrogate (36935422779) --------------------------------------------

def test_maml_h_objective_equals_likelihood_ratio_to_second_order_at_the_sampling_policy():
    # h(1) = 1, h'(1) = 1, h''(1) = 0: at φ = φ_old the inner step and its derivative (the meta-gradient)
    # are the likelihood-ratio objective's exactly; away from φ_old they differ
    from bomrl.algos.data import Data
    from bomrl.algos.pg_adaptation import log_prob, pg_step

    h2 = jax.grad(jax.grad(lambda x: 2.0 * jax.nn.sigmoid(2.0 * (x - 1.0))))(1.0)
    assert abs(float(h2)) < 1e-15
    policy = gaussian_mlp(3, 2, hidden=(8,), dtype=jnp.float64)
    k = jax.random.split(jax.random.PRNGKey(1), 4)
    phi = policy.init(k[0])
    obs = jax.random.normal(k[1], (2, 5, 3), jnp.float64)
    act = policy.sample(policy.apply(phi, obs), k[2])
    adv = jax.random.normal(k[3], (2, 5), jnp.float64)
    data = Data(obs, act, adv, jnp.ones((2, 5)), adv, adv)
    lp_old = jax.lax.stop_gradient(log_prob(policy, phi, obs, act))
    v = jax.tree.map(lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype)).reshape(x.shape), phi)

    def step_and_vjp(kind, p):
        out, vjp = jax.vjp(lambda q: pg_step(policy, kind, 0.1, q, data, lp_old), p)
        return ravel_pytree(out)[0], ravel_pytree(vjp(v)[0])[0]

    for a, b in zip(step_and_vjp("h", phi), step_and_vjp("likelihood_ratio", phi)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    away = jax.tree.map(lambda x: x + 0.3, phi)
    assert not np.allclose(step_and_vjp("h", away)[0], step_and_vjp("likelihood_ratio", away)[0])


# ---- the meta-test's mean-action episodes and three aggregates (36952404750, 36942303703) ---------

def test_mean_action_policy_acts_with_the_mode():
    from bomrl.core.policies import categorical_mlp, mean_action

    g = gaussian_mlp(3, 2, hidden=(4,), dtype=jnp.float64)
    p = g.init(jax.random.PRNGKey(0))
    obs = jnp.ones((5, 3))
    dist = g.apply(p, obs)
    np.testing.assert_array_equal(mean_action(g).sample(dist, jax.random.PRNGKey(1)), dist[0])
    assert mean_action(g).log_prob is g.log_prob
    c = categorical_mlp(3, 4, hidden=(4,), dtype=jnp.float64)
    logits = jnp.array([[0.0, 2.0, 1.0, -1.0], [3.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(mean_action(c).sample(logits, jax.random.PRNGKey(1)), [1, 0])


def test_released_aggregates_by_hand():
    from bomrl.workflow.metatest import released_aggregates

    sto = [[1.0, 5.0, 2.0], [4.0, 4.0, 4.0]]       # [rounds 2, tasks 3]
    mode = [[2.0, 3.0, 2.0], [3.0, 6.0, 0.0]]
    out = released_aggregates(sto, mode)
    np.testing.assert_allclose(out["returns_mean_action"], [7 / 3, 3.0])
    np.testing.assert_allclose(out["returns_best"], [(2 + 5 + 2) / 3, (4 + 6 + 4) / 3])
    np.testing.assert_allclose(out["stderr_best"][0], np.std([2, 5, 2], ddof=1) / np.sqrt(3))
    assert out["task_returns_mean_action"] == mode


class _FixedSampler:
    """Returns one hand-made batch whatever the policy and call index."""

    def __init__(self, batch):
        self.batch = batch

    def sample(self, policy, params, tasks, key, *, call):
        return self.batch, None


def test_reported_return_excludes_the_continuation_but_the_cost_counts_it():
    from bomrl.algos.base import PhaseTimer
    from bomrl.algos.maml_trpo import MamlTrpo, MamlTrpoConfig
    from bomrl.core.batch import Batch

    rew = np.array([[[1.0, 2.0, 4.0], [3.0, 0.0, 0.0]]])          # 1 task, 2 episodes, H = 2 + 1
    mask = np.array([[[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]])
    batch = Batch(np.zeros((1, 2, 3, 2)), np.zeros((1, 2, 3, 2)), rew, mask, (rew * mask).sum(-1),
                  mask.sum(-1))
    policy = gaussian_mlp(2, 2, hidden=(4,), dtype=jnp.float64)
    params = jax.tree.map(lambda x: x[None], policy.init(jax.random.PRNGKey(0)))
    for cont, expected in ((1, (3.0 + 3.0) / 2), (0, (7.0 + 3.0) / 2)):
        algo = MamlTrpo(MamlTrpoConfig(continuation=cont, advantage_estimator="centred-mc"), policy)
        data, ret, steps = algo._sample(_FixedSampler(batch), params, np.zeros((1, 1)), jax.random.PRNGKey(0),
                                        PhaseTimer(), call=0)
        assert ret == expected and steps == 4
        assert data.obs.shape[2] == 3 - cont


def test_released_settings_train_and_meta_test_end_to_end(tmp_path, capsys):
    # MAML-TRPO with the released scripts' inner objective and Q, and BO-MRL with the released
    # solver, on nav2d; the released meta-test adds mean-action returns and leaves the stochastic
    # returns exactly those of the standard meta-test
    import json

    from bomrl.cli import main

    tiny = ["--env", "nav2d", "--tasks", "2", "--episodes", "3", "--horizon", "12", "--iterations", "2",
            "--no-progress", "--seed", "3"]
    q = ["advantage_estimator=centred-mc", "normalize_advantages=false", "continuation=4", "discount=0.995"]
    runs = {"maml": ["--algo", "maml-trpo", "--set", "inner_objective=h", *q],
            "bomrl": ["--algo", "bomrl", "--fixed-std", "--distance", "d1", "--lam", "5", "--set", "inner_solver=adam",
                      "inner_steps=50", "inner_lr=0.001", "inner_stop_distance=3", *q]}
    for name, args in runs.items():
        run = tmp_path / name
        assert main(["train", *tiny, *args, "--out", str(run)]) == 0
        rows = (run / "metrics.csv").read_text().splitlines()
        header = rows[0].split(",")
        steps = float(rows[1].split(",")[header.index("env_steps")])
        assert steps <= 2 * 2 * 3 * 12 and steps > 2 * 2 * 3 * 8   # the continuation is paid for
        std, rel = tmp_path / f"{name}-std.json", tmp_path / f"{name}-rel.json"
        assert main(["meta-test", str(run), "--adapt-steps", "1", "--tasks", "3", "--out", str(std)]) == 0
        assert main(["meta-test", str(run), "--adapt-steps", "1", "--tasks", "3", "--protocol", "released",
                     "--out", str(rel)]) == 0
        a, b = json.loads(std.read_text()), json.loads(rel.read_text())
        assert a["task_returns"] == b["task_returns"]
        mode, sto = np.asarray(b["task_returns_mean_action"]), np.asarray(b["task_returns"])
        assert mode.shape == sto.shape == (2, 3) and not np.allclose(mode, sto)
        np.testing.assert_allclose(b["returns_best"], np.maximum(mode, sto).mean(1))
        assert b["env_steps"] == 2 * a["env_steps"] and b["protocol"] == "released"
    assert "mean-action" in capsys.readouterr().err
    cfg = json.loads((tmp_path / "bomrl" / "config.json").read_text())["train"]
    assert cfg["fixed_std"] is True
    assert main(["train", *tiny, "--algo", "rl2", "--fixed-std", "--out", str(tmp_path / "rl2")]) == 2
    assert "--fixed-std is invalid for --algo rl2" in capsys.readouterr().err
    for algo in ("rl2", "mgrl"):   # their own policy / their own loop: the filter would never advance
        assert main(["train", *tiny, "--algo", algo, "--obs-filter", "--out", str(tmp_path / algo)]) == 2
        assert f"--obs-filter is invalid for --algo {algo}" in capsys.readouterr().err


def test_fixed_std_policy_has_no_std_parameter():
    p = gaussian_mlp(3, 2, hidden=(4,), init_std=1.0, learn_std=False)
    params = p.init(jax.random.PRNGKey(0))
    assert set(params) == {"mlp"}
    mean, log_std = p.apply(params, jnp.ones((5, 3)))
    np.testing.assert_array_equal(log_std, np.zeros((5, 2)))
    learned = gaussian_mlp(3, 2, hidden=(4,), init_std=1.0)
    lp = learned.init(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(learned.apply(lp, jnp.ones((5, 3)))[0], mean)   # same mean network


def test_released_presets_hold_the_scripts_values(tmp_path, capsys):
    from bomrl.algos.bomrl import BoMrl
    from bomrl.algos.emaml import EMaml
    from bomrl.algos.maml_trpo import MamlTrpo
    from bomrl.cli import main
    from bomrl.workflow.config import TrainConfig, build_algo_config

    b = build_algo_config(TrainConfig(env="ant-dir", algo="bomrl", preset="released", set=("distance=d3",)))
    assert (b.lam, b.inner_solver, b.inner_steps, b.inner_lr, b.inner_stop_distance) == (5.0, "adam", 50, 1e-3, 3.0)
    assert (b.hypergradient, b.hyper_cg_iters, b.hyper_damping, b.max_kl, b.cg_damping) == ("practical", 10, 0.0, 0.03, 0.0)
    assert (b.discount, b.advantage_estimator, b.normalize_advantages, b.continuation) == (0.995, "centred-mc", False, 200)
    assert b.distance == "d3" and b.surrogate == "h" and b.trust_region == "pre"
    # the paper's per-env λ (0.4 for d2 on halfcheetah-vel) sits below the preset
    assert build_algo_config(TrainConfig(env="halfcheetah-vel", algo="bomrl", preset="released", set=("distance=d2",))).lam == 5.0
    m = build_algo_config(TrainConfig(env="halfcheetah-dir", algo="maml-trpo", preset="released"))
    assert (m.inner_objective, m.inner_lr, m.max_kl, m.cg_damping, m.continuation) == ("h", 0.1, 3e-3, 0.0, 200)
    assert "released" in BoMrl.PRESETS and "released" in MamlTrpo.PRESETS and not EMaml.PRESETS
    # the continuation must fit in the sampled episode: one line before any work
    assert main(["train", "--env", "nav2d", "--algo", "maml-trpo", "--preset", "released", "--tasks", "2",
                 "--episodes", "2", "--horizon", "100", "--iterations", "1", "--no-progress",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "continuation=200" in err and "--horizon 100" in err


def test_fixed_tasks_are_the_scripts_list_or_the_first_draw(tmp_path, monkeypatch):
    # direction families: −1, +1, −1, +1 (36902121699); others: the first iteration's tasks, kept
    import json

    from bomrl.cli import main
    from bomrl.envs.families import get_family
    from bomrl.envs import make_sampler
    from bomrl.workflow.run import fixed_tasks, training_tasks

    np.testing.assert_array_equal(get_family("halfcheetah-dir").fixed_tasks(4), [[-1.0], [1.0], [-1.0], [1.0]])
    assert get_family("halfcheetah-vel").fixed_tasks(4) is None
    with make_sampler("nav2d", 3, 2, 10, seed=0) as s:
        np.testing.assert_array_equal(fixed_tasks(s, np.random.default_rng([5, 0])), training_tasks(s, 5, 0))
        assert not np.array_equal(training_tasks(s, 5, 1), training_tasks(s, 5, 0))
    # a run with --fixed-tasks hands the same tasks to every iteration; without, fresh ones
    from bomrl.algos.maml_trpo import MamlTrpo

    seen = []
    step = MamlTrpo.step
    monkeypatch.setattr(MamlTrpo, "step", lambda self, st, sm, tasks, key, **kw: (seen.append(np.array(tasks)),
                                                                                   step(self, st, sm, tasks, key, **kw))[1])
    for flag in (["--fixed-tasks"], []):
        seen.clear()
        run = tmp_path / f"run{len(flag)}"
        assert main(["train", "--env", "nav2d", "--algo", "maml-trpo", "--tasks", "2", "--episodes", "2", "--horizon",
                     "10", "--iterations", "2", "--no-progress", *flag, "--out", str(run)]) == 0
        assert len(seen) == 2 and np.array_equal(seen[0], seen[1]) == bool(flag)
        assert json.loads((run / "config.json").read_text())["train"]["fixed_tasks"] is bool(flag)


def test_post_episodes_enlarge_only_the_post_update_batch(tmp_path, capsys, monkeypatch):
    # the released scripts sample 5× the pre-update episodes after adaptation (36902121699)
    import csv

    from bomrl.algos.base import MetaAlgorithm
    from bomrl.cli import main

    shapes, seeds = [], []
    sample = MetaAlgorithm._sample

    def spy(self, sampler, *a, **k):
        seeds.append(sampler.reset_seeds(k["call"]).tolist())
        out = sample(self, sampler, *a, **k)
        shapes.append(out[0].obs.shape[:3])
        return out

    monkeypatch.setattr(MetaAlgorithm, "_sample", spy)
    tiny = ["--env", "halfcheetah-vel", "--tasks", "2", "--episodes", "2", "--horizon", "10", "--iterations", "2",
            "--no-progress", "--algo", "maml-trpo"]
    run = tmp_path / "post"
    assert main(["train", *tiny, "--post-episodes", "6", "--out", str(run)]) == 0
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [float(r["env_steps"]) for r in rows] == [2 * (2 + 6) * 10, 2 * 2 * (2 + 6) * 10]
    assert shapes == [(2, 2, 10), (2, 6, 10)] * 2
    flat = [s for call in seeds for s in call]
    assert len(set(flat)) == len(flat)                  # every episode of every call: its own reset seed
    assert main(["train", "--env", "nav2d", "--algo", "rl2", "--tasks", "2", "--episodes", "2", "--horizon", "10",
                 "--iterations", "1", "--no-progress", "--post-episodes", "4", "--out", str(tmp_path / "r")]) == 2
    assert "--post-episodes is invalid for --algo rl2" in capsys.readouterr().err


def test_model_selection_keeps_the_best_post_adaptation_policy(tmp_path, capsys):
    # 36902121699: after each step adapt once on 2 fixed tasks; keep the policy only when that
    # post-adaptation return beats the best so far; the meta-test uses the kept one
    import csv
    import json

    from bomrl.cli import main
    from bomrl.workflow.checkpoint import BEST_NAME, load_checkpoint

    run = tmp_path / "sel"
    args = ["train", "--env", "nav2d", "--algo", "maml-trpo", "--tasks", "2", "--episodes", "3", "--horizon", "15",
            "--no-progress", "--select-tasks", "2", "--seed", "1", "--out", str(run)]
    assert main([*args, "--iterations", "3"]) == 0
    assert main([*args[:-2], "--resume", str(run), "--iterations", "5"]) == 0     # a resumed run continues it
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    ret = [float(r["select/return"]) for r in rows]
    best = [float(r["select/best"]) for r in rows]
    assert best == list(np.maximum.accumulate(ret))
    assert all(float(r["select/env_steps"]) > 0 for r in rows)
    kept = load_checkpoint(run / BEST_NAME)
    assert kept.iteration == int(np.argmax(ret)) + 1 and kept.meta["select_return"] == max(ret)
    out = tmp_path / "mt.json"
    assert main(["meta-test", str(run), "--checkpoint", "best", "--adapt-steps", "1", "--tasks", "2",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["iteration"] == kept.iteration and res["checkpoint"] == "best"
    # a run without selection has no best.bomrl: one line
    plain = tmp_path / "plain"
    assert main([*args[:-6], "--out", str(plain), "--iterations", "1"]) == 0
    capsys.readouterr()
    assert main(["meta-test", str(plain), "--checkpoint", "best"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--checkpoint=best is invalid" in err


# ---- the running observation filter (36902121699: ZFilter, clip 5) --------------------------------

def test_obs_filter_statistics_and_clip_by_hand():
    from bomrl.core.policies import obs_filter_apply, obs_filter_init, obs_filter_update

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(2, 5, 7, 3))
    mask = (rng.random((2, 5, 7)) > 0.2).astype(float)
    stats = obs_filter_init(3, jnp.float64)
    # before any data: the identity (std 1, + 1e-8) with the clip
    np.testing.assert_allclose(obs_filter_apply(stats, jnp.array([[7.0, -0.5, 2.0]])), [[5.0, -0.5, 2.0]], rtol=1e-7)
    for part in (slice(0, 1), slice(1, 2)):          # two batches merged = one batch of all
        stats = obs_filter_update(stats, x[part], mask[part])
    valid = x[mask > 0]
    assert float(stats["n"]) == len(valid)
    np.testing.assert_allclose(stats["mean"], valid.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats["m2"] / (stats["n"] - 1), valid.var(0, ddof=1), rtol=1e-10)
    z = obs_filter_apply(stats, jnp.asarray(valid))
    np.testing.assert_allclose(z, np.clip((valid - valid.mean(0)) / (valid.std(0, ddof=1) + 1e-8), -5, 5),
                               rtol=1e-9)
    far = obs_filter_apply(stats, jnp.asarray(valid.mean(0) + 100 * valid.std(0)))
    np.testing.assert_array_equal(far, [5.0, 5.0, 5.0])
    # zero gradient through the statistics
    p = gaussian_mlp(3, 2, hidden=(4,), dtype=jnp.float64, obs_filter=True)
    params = {**p.init(jax.random.PRNGKey(0)), "obs_filter": stats}
    g = jax.grad(lambda q: jnp.sum(p.apply(q, jnp.asarray(valid[:4]))[0]))(params)
    assert all(float(jnp.max(jnp.abs(v))) == 0 for v in jax.tree.leaves(g["obs_filter"]))


def test_obs_filter_advances_by_each_iterations_data_only(tmp_path, monkeypatch):
    # a run with --obs-filter: after training, the filter holds exactly the valid observations of
    # every pre- and post-update batch of training (none of meta-test's); the TRPO step leaves it alone
    import json

    from bomrl.algos.base import MetaAlgorithm
    from bomrl.cli import main
    from bomrl.workflow.checkpoint import load_latest, restore_tree

    seen = []
    sample = MetaAlgorithm._sample

    def spy(self, *a, **k):
        out = sample(self, *a, **k)
        seen.append((np.asarray(out[0].obs), np.asarray(out[0].mask)))
        return out

    monkeypatch.setattr(MetaAlgorithm, "_sample", spy)
    run = tmp_path / "filt"
    assert main(["train", "--env", "halfcheetah-vel", "--algo", "bomrl", "--preset", "one-step", "--tasks", "2",
                 "--episodes", "2", "--horizon", "10", "--iterations", "2", "--no-progress", "--obs-filter",
                 "--precision", "float64", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["obs_filter"] is True
    valid = np.concatenate([o[m > 0] for o, m in seen])
    ckpt = load_latest(run)
    from bomrl.algos.bomrl import BoMrl, BoMrlConfig
    from bomrl.core.policies import gaussian_mlp

    policy = gaussian_mlp(17, 6, obs_filter=True, dtype=jnp.float64)
    state = restore_tree(BoMrl(BoMrlConfig(), policy).init(jax.random.PRNGKey(0)), ckpt)
    f = state.params["obs_filter"]
    assert float(f["n"]) == len(valid) == 2 * 2 * 2 * 2 * 10
    np.testing.assert_allclose(f["mean"], valid.mean(0), rtol=1e-10)
    np.testing.assert_allclose(f["m2"], ((valid - valid.mean(0)) ** 2).sum(0), rtol=1e-8)
    seen.clear()
    assert main(["meta-test", str(run), "--adapt-steps", "1", "--tasks", "2"]) == 0
    assert len(seen) == 2    # meta-test samples; the saved filter is not touched by it
    assert load_latest(run).leaves[0].shape == ckpt.leaves[0].shape


def test_meta_test_on_the_released_task_grid(tmp_path, capsys):
    # 36952404750: HalfCheetah-vel targets 0.0 ... 1.9 by 0.1 with 0 left out of the means -> 0.1 ... 1.9
    import json

    from bomrl.cli import main
    from bomrl.envs.families import get_family

    np.testing.assert_allclose(get_family("halfcheetah-vel").test_grid()[:, 0], np.arange(1, 20) / 10)
    np.testing.assert_allclose(get_family("ant-vel").test_grid()[:, 0], np.arange(1, 30) / 10)
    np.testing.assert_array_equal(get_family("ant-dir").test_grid(), [[-1.0], [1.0]])
    run = tmp_path / "r"
    assert main(["train", "--env", "halfcheetah-vel", "--algo", "maml-trpo", "--tasks", "2", "--episodes", "2",
                 "--horizon", "10", "--iterations", "1", "--no-progress", "--out", str(run)]) == 0
    assert main(["meta-test", str(run), "--task-grid", "--adapt-steps", "1"]) == 0
    res = json.loads((run / "meta_test.json").read_text())
    assert res["tasks"] == 19 and res["split"] == "grid" and np.shape(res["task_returns"]) == (2, 19)
    nav = tmp_path / "nav"
    assert main(["train", "--env", "nav2d", "--algo", "maml-trpo", "--tasks", "2", "--episodes", "2",
                 "--horizon", "10", "--iterations", "1", "--no-progress", "--out", str(nav)]) == 0
    capsys.readouterr()
    assert main(["meta-test", str(nav), "--task-grid"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--task-grid is invalid for 'nav2d'" in err


def test_plot_label_names_the_preset_then_what_differs_from_it():
    import dataclasses

    from bomrl.workflow.config import TrainConfig, build_algo_config
    from bomrl.workflow.plot import run_label

    train = {"env": "halfcheetah-dir", "algo": "bomrl", "preset": "released"}
    algo = dataclasses.asdict(build_algo_config(TrainConfig(env="halfcheetah-dir", algo="bomrl", preset="released",
                                                            set=("distance=d1", "continuation=5"))))
    assert run_label(train, algo) == "BO-MRL d1 (preset released, continuation=5)"
    assert run_label({**train, "preset": None}, algo).startswith("BO-MRL d1 (advantage_estimator=centred-mc, ")
