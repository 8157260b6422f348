"""`bomrl bench update` times BO-MRL's own jitted phases (no second copy of the update): input errors
are one-line ConfigErrors raised before any JAX work, and a tiny run's phases compose to exactly
what training's `BoMrl._update` computes (the benchmark itself is run by hand and recorded in
docs/BENCHMARKS.md, not timed in tests)."""

import jax
import numpy as np
import pytest

from bomrl.bench.config import BenchUpdateConfig
from bomrl.bench.update import run
from bomrl.errors import ConfigError


@pytest.mark.parametrize("kwargs, fragment", [
    ({"tasks": 0}, "--tasks=0"), ({"episodes": -1}, "--episodes=-1"), ({"repeats": 0}, "--repeats=0"),
    ({"env": "nope"}, "--env='nope'"), ({"set": ("lam=-1",)}, "lam=-1"), ({"preset": "x"}, "--preset"),
    ({"set": ("bogus=1",)}, "'bogus'"), ({"workers": -2}, "--workers=-2"),
])
def test_bad_values_are_one_line_errors(kwargs, fragment):
    with pytest.raises(ConfigError, match=None) as err:
        run(BenchUpdateConfig(sample=False, **kwargs))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_phases_are_the_algorithms_own(monkeypatch, capsys):
    """The benchmark calls BoMrl.meta_gradient and BoMrl.meta_step; their composition is _update."""
    from bomrl.algos.bomrl import BoMrl

    calls = []
    for name in ("meta_gradient", "meta_step", "_adapt_vjp"):
        orig = getattr(BoMrl, name)

        def spy(self, *a, _orig=orig, _name=name):
            calls.append(_name)
            return _orig(self, *a)
        monkeypatch.setattr(BoMrl, name, spy)
    out = run(BenchUpdateConfig(env="nav2d", tasks=2, episodes=2, horizon=5, repeats=1, sample=True, workers=1))
    assert {"meta_gradient", "meta_step", "_adapt_vjp"} <= set(calls)
    assert out["update_s"] > 0 and out["sampling_s"] > 0 and out["inner_steps"] == 10
    assert capsys.readouterr().out.count("\n") == 1


def test_update_is_meta_gradient_then_meta_step():
    from bomrl.algos.base import broadcast_tasks
    from bomrl.algos.bomrl import BoMrl, BoMrlConfig
    from bomrl.algos.data import process_batch
    from bomrl.core.policies import gaussian_mlp

    policy = gaussian_mlp(3, 2, hidden=(8,), dtype=jax.numpy.float64)
    algo = BoMrl(BoMrlConfig(inner_steps=3), policy)
    phi = algo.init(jax.random.PRNGKey(0)).params
    rng = np.random.default_rng(0)

    def batch(params_t):
        obs = rng.normal(size=(2, 2, 5, 3))
        act = np.asarray(jax.vmap(lambda p, o, k: policy.sample(policy.apply(p, o), k))(
            params_t, obs, jax.random.split(jax.random.PRNGKey(1), 2)))
        return process_batch((obs, act, rng.normal(size=(2, 2, 5)), np.ones((2, 2, 5))), discount=0.99,
                             gae_lambda=1.0, normalize=True)

    pre = batch(broadcast_tasks(phi, 2))
    thetas = algo._adapt_batched(broadcast_tasks(phi, 2), pre)
    post = batch(thetas)
    new_a, _ = algo._update(phi, pre, post, thetas)
    grad, _ = algo.meta_gradient(phi, pre, post, thetas)
    new_b, _ = algo.meta_step(phi, pre, post, thetas, grad)
    for a, b in zip(jax.tree.leaves(new_a), jax.tree.leaves(new_b)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
