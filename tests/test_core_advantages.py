"""Advantage estimation against straightforward numpy loops; the linear baseline on exact data."""

import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.core import advantages as adv
from bomrl.errors import ConfigError


def _random_batch(seed=0, T=2, E=3, H=7, D=2):
    rng = np.random.default_rng(seed)
    rew = rng.normal(size=(T, E, H))
    lengths = rng.integers(2, H + 1, size=(T, E))
    mask = (np.arange(H)[None, None, :] < lengths[..., None]).astype(float)
    rew = rew * mask
    obs = rng.normal(size=(T, E, H, D))
    values = rng.normal(size=(T, E, H))
    return obs, rew, mask, values


def _loop_gae(rew, values, mask, gamma, lam):
    out = np.zeros_like(rew)
    for idx in np.ndindex(rew.shape[:-1]):
        r, v, m = rew[idx], values[idx] * mask[idx], mask[idx]
        a_next = 0.0
        for t in reversed(range(len(r))):
            v_next = v[t + 1] * m[t + 1] if t + 1 < len(r) else 0.0
            m_next = m[t + 1] if t + 1 < len(r) else 0.0
            delta = r[t] + gamma * v_next - v[t]
            a_next = m[t] * (delta + gamma * lam * m_next * a_next)
            out[idx + (t,)] = a_next
    return out


def test_discounted_returns_match_loop():
    _, rew, mask, _ = _random_batch()
    g = np.asarray(adv.discounted_returns(rew, mask, 0.9))
    ref = np.zeros_like(rew)
    for idx in np.ndindex(rew.shape[:-1]):
        acc = 0.0
        for t in reversed(range(rew.shape[-1])):
            acc = mask[idx + (t,)] * (rew[idx + (t,)] + 0.9 * acc)
            ref[idx + (t,)] = acc
    np.testing.assert_allclose(g, ref, atol=1e-12)
    assert np.all(g[mask == 0] == 0)


@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_gae_matches_loop(lam):
    _, rew, mask, values = _random_batch(1)
    got = np.asarray(adv.gae(rew, values, mask, 0.97, lam))
    np.testing.assert_allclose(got, _loop_gae(rew, values, mask, 0.97, lam), atol=1e-12)


def test_gae_lambda_one_zero_values_is_returns():
    _, rew, mask, _ = _random_batch(2)
    np.testing.assert_allclose(adv.gae(rew, np.zeros_like(rew), mask, 0.99, 1.0),
                               adv.discounted_returns(rew, mask, 0.99), atol=1e-12)


def test_linear_baseline_recovers_linear_returns_per_task():
    obs, _, mask, _ = _random_batch(3, T=2, E=4, H=20, D=2)
    feats = np.asarray(adv.baseline_features(jnp.asarray(obs)))
    assert feats.shape == (2, 4, 20, 2 * 2 + 4)
    rng = np.random.default_rng(4)
    w = rng.normal(size=(2, feats.shape[-1]))  # a different linear model per task
    target = np.einsum("tehf,tf->teh", feats, w) * mask
    # garbage on invalid steps must not influence the fit
    noisy = np.where(mask > 0, target, 1e6)
    import jax
    values = np.asarray(jax.vmap(adv.fit_linear_baseline)(jnp.asarray(obs), jnp.asarray(noisy), jnp.asarray(mask)))
    # the exact ridge solution (reg 1e-5) over valid rows, task by task
    for t in range(2):
        x = feats[t][mask[t] > 0]
        y = target[t][mask[t] > 0]
        w_ref = np.linalg.solve(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y)
        np.testing.assert_allclose(values[t][mask[t] > 0], x @ w_ref, atol=1e-9)
    np.testing.assert_allclose(values, target, atol=1e-2)  # ridge shrinkage is small
    assert np.all(values[mask == 0] == 0)


def test_normalized_advantages_and_pipeline():
    obs, rew, mask, _ = _random_batch(5, T=3, E=4, H=10)
    out = adv.estimate_advantages(obs, rew, mask, gamma=0.99, gae_lambda=1.0)
    a = np.asarray(out["advantages"])
    for t in range(3):
        v = a[t][mask[t] > 0]
        assert abs(v.mean()) < 1e-8 and abs(v.std() - 1) < 1e-6
    assert np.all(a[mask == 0] == 0)
    # lambda=1 GAE with the fitted baseline = returns - baseline before normalisation
    raw = adv.estimate_advantages(obs, rew, mask, gamma=0.99, gae_lambda=1.0, normalize=False)
    np.testing.assert_allclose(raw["advantages"], (raw["returns"] - raw["values"]) * mask, atol=1e-10)


@pytest.mark.parametrize("name,value", [("gamma", 1.5), ("gamma", float("nan")), ("gamma", True),
                                        ("gae_lambda", -0.1), ("gae_lambda", "0.9")])
def test_bad_discounts_raise_config_error(name, value):
    obs, rew, mask, _ = _random_batch()
    with pytest.raises(ConfigError, match=rf"{name}=.*a number in \[0, 1\]"):
        adv.estimate_advantages(obs, rew, mask, **{name: value})


def test_bad_arguments_raise_config_error():
    obs, rew, mask, _ = _random_batch()
    with pytest.raises(ConfigError, match="baseline"):
        adv.estimate_advantages(obs, rew, mask, baseline="mlp")
