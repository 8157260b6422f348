"""The shared meta-iteration loop on a tiny jax "point" task family (no MuJoCo): metrics, data
budget, determinism, meta-test adaptation, registry errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.algos import ALGORITHMS, get_algorithm, make_algorithm
from bomrl.core.batch import Batch
from bomrl.core.policies import gaussian_mlp
from bomrl.errors import ConfigError

E, H = 3, 4


class PointSampler:
    """x_{t+1} = x_t + 0.2·clip(a, −1, 1), reward −|x_{t+1} − goal|; obs = (x, 1); goal = task[0]."""

    def __init__(self, episodes=E, horizon=H):
        self.episodes, self.horizon = episodes, horizon
        self.calls = []   # the call indices, in order

    def sample(self, policy, params_t, tasks, key, *, call):
        self.calls.append(call)
        obs, act, rew = _rollout(policy, self.episodes, self.horizon, params_t, jnp.asarray(tasks)[:, 0], key)
        sw = lambda z: np.asarray(jnp.moveaxis(z, 0, 2))                     # noqa: E731  [H, T, E] -> [T, E, H]
        rew = sw(rew)
        mask = np.ones_like(rew)
        batch = Batch(sw(obs), sw(act), rew, mask, rew.sum(-1), np.full(rew.shape[:2], self.horizon))
        return batch, {}


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _rollout(policy, episodes, horizon, params_t, goals, key):
    t = goals.shape[0]

    def step(x, k):
        o = jnp.stack([x, jnp.ones_like(x)], -1)                           # [T, E, 2]
        a = jax.vmap(lambda p, oo, kk: policy.sample(policy.apply(p, oo), kk))(params_t, o, jax.random.split(k, t))
        x2 = x + 0.2 * jnp.clip(a[..., 0], -1, 1)
        return x2, (o, a, -jnp.abs(x2 - goals[:, None]))

    return jax.lax.scan(step, jnp.zeros((t, episodes)), jax.random.split(key, horizon))[1]


TASKS = np.array([[0.5], [-0.5]])
# BO-MRL: implicit hypergradient here. On this 1-D point problem every TRPO backtrack along the
# unrolled hypergradient exceeds the KL radius (measured; halfcheetah-vel and nav2d accept 100 % of
# steps): an open question recorded in the BO-MRL issue, not an interface property.
SMALL = {"bomrl": {"inner_steps": 5, "hypergradient": "practical"}, "maml-trpo": {}, "promp": {}, "emaml": {}}


POLICY = gaussian_mlp(2, 1, hidden=(8,), dtype=jnp.float64)


def make(name, **kw):
    algo_cls, cfg_cls = get_algorithm(name)
    policy = POLICY
    return algo_cls(cfg_cls(**{**SMALL[name], **kw}), policy)


# RL² is not here: its recurrent policy needs the trial-aware sampler (this PointSampler is
# feed-forward only) and it has no post-update batch; its interface test is tests/test_rl2.py.
_NAMES = ALGORITHMS.names() if hasattr(ALGORITHMS, "names") else list(ALGORITHMS)


# mgrl is not here either: it learns online on one task from its own persistent environments (the
# sampler serves only its meta-test); its interface test is tests/test_mgrl.py. maesn neither: its
# policy is latent-conditioned (per-episode z) and its training tasks are a fixed set; tests/test_maesn.py.
@pytest.mark.parametrize("name", sorted(n for n in _NAMES if n not in ("rl2", "mgrl", "maesn")))
def test_step_and_adapt(name):
    algo = make(name)
    state = algo.init(jax.random.key(0))
    sampler = PointSampler()
    s1, m1 = algo.step(state, sampler, TASKS, jax.random.key(1), call=10)
    assert sampler.calls == [10, 11] and algo.sampler_calls == 2   # pre, post: the indices from `call`
    for key in ("charts/pre_return", "charts/post_return", "charts/env_steps", "time/sampling_s", "time/update_s"):
        assert key in m1 and np.isfinite(m1[key])
    assert m1["charts/env_steps"] == 2 * len(TASKS) * E * H      # pre + post batch
    assert int(s1.iteration) == 1
    changed = any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(state.params)))
    assert changed
    # determinism: the same seed twice gives identical numbers
    s2, m2 = algo.step(state, PointSampler(), TASKS, jax.random.key(1), call=10)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert {k: v for k, v in m1.items() if not k.startswith("time/")} == \
           {k: v for k, v in m2.items() if not k.startswith("time/")}
    # meta-test: k adaptations, each on a fresh batch
    sampler = PointSampler()
    out = algo.adapt(s1, sampler, TASKS, jax.random.key(2), steps=2, call=20)
    assert out["returns"].shape == (3,) and out["task_returns"].shape == (3, len(TASKS))
    assert out["env_steps"] == 3 * len(TASKS) * E * H and sampler.calls == [20, 21, 22]
    assert np.all(np.isfinite(out["returns"]))


def test_multi_step_training_draws_fresh_batches():
    algo = make("promp", inner_steps=2)
    sampler = PointSampler()
    _, m = algo.step(algo.init(jax.random.key(0)), sampler, TASKS, jax.random.key(1), call=0)
    assert sampler.calls == [0, 1, 2] and algo.sampler_calls == 3 and m["charts/env_steps"] == 3 * len(TASKS) * E * H
    assert "charts/return_step1" in m


@pytest.mark.parametrize("name, settings, rounds", [
    ("maml-trpo", {"inner_steps": 3}, 3), ("promp", {"inner_steps": 2}, 2), ("emaml", {"inner_steps": 2}, 2),
    ("bomrl", {"inner_steps": 7}, 1)])   # BO-MRL's inner_steps are solver steps on its one batch
def test_sampling_rounds_per_adaptation_follow_the_setting_that_names_them(name, settings, rounds):
    assert make(name, **settings).adapt_rounds == rounds


def test_unknown_algorithm_lists_names():
    with pytest.raises(ConfigError, match="algo='maml'.*bomrl, maml-trpo, promp, emaml"):
        get_algorithm("maml")
    with pytest.raises(ConfigError, match="must be an integer >= 0"):
        make("maml-trpo").adapt(None, PointSampler(), TASKS, jax.random.key(0), steps=-1, call=0)
    with pytest.raises(ConfigError):
        make_algorithm("promp", gaussian_mlp(2, 1), config=get_algorithm("emaml")[1]())


# the settings shared by several algorithms are defined once (bomrl.algos.data.AdvantageSettings,
# bomrl.core.trpo.TRPOSettings, bomrl.algos.pg_adaptation.InnerPGSettings) and checked for each
SHARED_BAD = {"discount": 1.5, "gae_lambda": -0.1, "max_kl": 0.0, "cg_iters": 0, "cg_damping": -1.0,
              "ls_steps": 2.5, "ls_ratio": 1.0, "inner_lr": -0.1, "inner_steps": 0,
              "inner_objective": "score"}


@pytest.mark.parametrize("name", ["bomrl", "maml-trpo", "promp", "emaml", "maesn", "rl2"])
def test_shared_settings_are_checked_in_every_config(name):
    import dataclasses

    _, cfg_cls = get_algorithm(name)
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    shared = [k for k in SHARED_BAD if k in fields]
    assert {"discount", "gae_lambda", "normalize_advantages"} <= fields
    for key in shared:
        with pytest.raises(ConfigError, match=f"{key}={SHARED_BAD[key]!r}"):
            cfg_cls(**{key: SHARED_BAD[key]})


@pytest.mark.parametrize("name", ["bomrl", "maml-trpo", "promp", "emaml", "maesn", "rl2", "mgrl"])
def test_every_numeric_setting_rejects_non_finite_and_mistyped_values(name):
    """Each float field of each algorithm config rejects nan, ±inf and bools; each int field rejects
    2.5, bools and 10^12, all with a one-line ConfigError naming the field (no TypeError, no silent
    acceptance: inf step sizes and damping were accepted before)."""
    import dataclasses
    import typing

    _, cfg_cls = get_algorithm(name)
    hints = typing.get_type_hints(cfg_cls)
    bad = {float: [float("nan"), float("inf"), -float("inf"), True], int: [2.5, True, 10**12]}
    checked = 0
    for f in dataclasses.fields(cfg_cls):
        for value in bad.get(hints[f.name], []):
            with pytest.raises(ConfigError, match=f"^{f.name}="):
                cfg_cls(**{f.name: value})
            checked += 1
    assert checked >= 12   # every config has several numeric settings


@pytest.mark.parametrize("name", ["bomrl", "maml-trpo", "emaml", "maesn"])
def test_trpo_settings_are_the_keywords_of_trpo_step(name):
    """`config.trpo_kwargs` is exactly trpo_step's required keyword-only parameters."""
    import inspect

    from bomrl.core.trpo import trpo_step

    _, cfg_cls = get_algorithm(name)
    required = {p.name for p in inspect.signature(trpo_step).parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
    cfg = cfg_cls(max_kl=0.02, ls_steps=7)
    assert set(cfg.trpo_kwargs) == required
    assert cfg.trpo_kwargs["max_kl"] == 0.02 and cfg.trpo_kwargs["ls_steps"] == 7


def test_promp_keeps_its_own_inner_surrogate():
    """A config re-declaring a shared field keeps its own default (ProMP: the LVC likelihood ratio)."""
    assert get_algorithm("promp")[1]().inner_objective == "likelihood_ratio"
    assert get_algorithm("maml-trpo")[1]().inner_objective == "log_likelihood"
    assert get_algorithm("rl2")[1]().gae_lambda == 0.95
