"""The bound calculator against hand-computed values and its own definitions."""

import jax
import jax.numpy as jnp
import pytest

from bomrl.errors import ConfigError
from bomrl.tabular.frozenlake import sample_lake_tasks
from bomrl.tabular.theory import (
    TheoryOptions,
    compute_theory,
    optimal_logits,
    task_distance,
    task_variance,
    theorem_constants,
    TASK_AXES,
)


def test_theorem_constants_by_hand():
    c = theorem_constants("kl", gamma=0.8, a=2.0, eps=0.01, lam=0.5)
    # Theorem 3: 2(1+γ)A/((1−γ)²ε) = 2·1.8·2/(0.04·0.01) = 18000
    assert c["bound_coefficient"] == pytest.approx(18000.0)
    assert c["lambda_theorem"] == pytest.approx(2 * 2.0 / (0.2 * 0.01))      # 2000
    assert c["lambda_minorization"] == pytest.approx(2 * 0.8 * 2.0 / (0.2 * 0.01))  # 1600
    assert not c["lambda_used_meets_theorem"] and not c["lambda_used_meets_minorization"]
    assert c["theorem"] == "Theorem 3"
    c3 = theorem_constants("euclid", gamma=0.8, a=2.0, eps=0.01, lam=5000.0)
    # Theorem 4 with L1 = 1, L2 = 0: (6+4γ)A/((1−γ)²ε) = 9.2·2/(0.0004) = 46000; λ = 6A/((1−γ)ε) = 6000
    assert c3["bound_coefficient"] == pytest.approx(46000.0)
    assert c3["lambda_theorem"] == pytest.approx(6000.0)
    assert c3["lambda_minorization"] == pytest.approx(4 * 0.8 * 2.0 / (0.2 * 0.01))
    assert c3["lambda_used_meets_minorization"] and not c3["lambda_used_meets_theorem"]


@pytest.fixture(scope="module")
def small_tasks():
    lake = sample_lake_tasks(num_tasks=4, size=3, hole_prob=0.3, seed=2)
    return jax.tree_util.tree_map(jnp.asarray, lake.mdp)._replace(gamma=0.8)


def test_task_variance_is_a_minimum(small_tasks):
    theta_star = optimal_logits(small_tasks, 3.0)
    assert float(jnp.max(jnp.abs(theta_star))) <= 3.0 + 1e-12
    var, phi_c = task_variance(small_tasks, theta_star, "rkl", steps=500)
    mean_d = lambda ph: float(jnp.mean(jax.vmap(task_distance, in_axes=(TASK_AXES, None, 0, None))(  # noqa: E731
        small_tasks, ph, theta_star, "rkl")))
    assert var == pytest.approx(mean_d(phi_c), rel=1e-9)
    # no optimal policy of a single task and no random policy does better than the minimiser
    for k in range(4):
        assert var <= mean_d(theta_star[k]) + 1e-12
    for seed in range(3):
        assert var <= mean_d(jax.random.normal(jax.random.PRNGKey(seed), phi_c.shape)) + 1e-12
    # the distance of a policy to itself is 0 and task variance of one repeated task is ~0
    one = jax.tree_util.tree_map(lambda x: x[:1].repeat(3, 0) if getattr(x, "ndim", 0) else x, small_tasks)
    v1, _ = task_variance(one, theta_star[:1].repeat(3, 0), "rkl", steps=500)
    assert float(v1) < 1e-3


def test_compute_theory_bound_is_formula_times_variance(small_tasks):
    phi = jnp.zeros(small_tasks.r.shape[1:])
    out = compute_theory(small_tasks, phi, "kl", 0.5, TheoryOptions(var_steps=300))
    coef = 2 * 1.8 * out["a_max"] / (0.04 * out["epsilon"])
    assert out["bound"] == pytest.approx(coef * out["task_variance"], rel=1e-12)
    assert 0 < out["epsilon"] < 1 and 0 < out["a_max"] <= out["a_max_global"] + 1e-12
    # the figures' form (released figure script 37168178304: constant · 9 · factor): 9 λ Var at γ = 0.8,
    # which IS the theorem's bound when λ is the theorem's prescribed λ, and far below it at λ = 0.5
    assert out["bound_figure_form"] == pytest.approx(9.0 * 0.5 * out["task_variance"], rel=1e-12)
    at = compute_theory(small_tasks, phi, "kl", out["lambda_theorem"], TheoryOptions(var_steps=300))
    assert at["bound_figure_form"] == pytest.approx(at["bound"], rel=1e-12)
    assert out["bound_figure_form"] < 1e-2 * out["bound"]
    eu = compute_theory(small_tasks, phi, "euclid", 0.04, TheoryOptions(var_steps=300))
    assert eu["bound_figure_form"] == pytest.approx(46 / 6 * 0.04 * eu["task_variance"], rel=1e-12)
    at3 = compute_theory(small_tasks, phi, "euclid", eu["lambda_theorem"], TheoryOptions(var_steps=300))
    assert at3["bound_figure_form"] == pytest.approx(at3["bound"], rel=1e-12)
    remark = compute_theory(small_tasks, phi, "kl", 0.5, TheoryOptions(epsilon="remark1", var_steps=300))
    live = ~small_tasks.terminal
    assert remark["epsilon"] == pytest.approx(0.2 * float(jnp.min(jnp.where(live, small_tasks.rho, 1.0))))


def test_theory_options_validation():
    with pytest.raises(ConfigError, match="epsilon"):
        TheoryOptions(epsilon="bogus").validate()
    with pytest.raises(ConfigError, match="theta_bound"):
        TheoryOptions(theta_bound=-1.0).validate()
    with pytest.raises(ConfigError, match="theta_bound=inf"):
        TheoryOptions(theta_bound=float("inf")).validate()
    with pytest.raises(ConfigError, match="var_steps=0"):
        TheoryOptions(var_steps=0).validate()


@pytest.mark.parametrize("sample, settings, name", [
    ({"horizon": 2.5}, {}, "horizon=2.5"),
    ({"rollouts_per_pair": 0}, {}, "rollouts_per_pair=0"),
    ({}, {"learning_rate": float("inf")}, "learning_rate=inf"),
    ({}, {"iterations": -1}, "iterations=-1"),
])
def test_meta_train_checks_its_settings_before_any_work(sample, settings, name):
    """meta_train validates SampleSettings and MetaTrainSettings itself (a Python caller gets the
    CLI's one-line error, not a traceback from inside the jitted loop)."""
    from bomrl.tabular.meta import MetaTrainSettings, SampleSettings, meta_train

    with pytest.raises(ConfigError, match=name):
        meta_train(None, None, None, 0.5, "bomrl", "kl", SampleSettings(**sample), MetaTrainSettings(**settings))
