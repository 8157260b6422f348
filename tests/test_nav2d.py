"""nav2d (MAML's 2D point navigation): rewards and termination against hand-computed episodes,
the oracle, and the sampler layout with early termination."""

import json

import jax
import numpy as np
import pytest

from bomrl.core.policies import gaussian_mlp
from bomrl.envs import get_family, make_sampler
from bomrl.envs.navigation import oracle_return


def test_hand_computed_episode():
    fam = get_family("nav2d")
    assert (fam.obs_dim, fam.act_dim, fam.horizon, fam.task_dim, fam.action_scale) == (2, 2, 100, 2, 0.1)
    st = fam.make_stepper(2)
    goal = np.array([[0.15, -0.05], [0.3, 0.3]])
    np.testing.assert_array_equal(st.reset(goal, np.zeros(2)), np.zeros((2, 2)))
    obs, rew, done = st.step(np.array([[0.5, -0.02], [0.1, 0.1]]), np.ones(2, bool))   # env clips to ±0.1
    np.testing.assert_allclose(obs, [[0.1, -0.02], [0.1, 0.1]])
    np.testing.assert_allclose(rew, [-np.hypot(0.05, 0.03), -np.hypot(0.2, 0.2)])
    assert not done.any()
    obs, rew, done = st.step(np.array([[0.05, -0.03], [0.1, 0.1]]), np.ones(2, bool))
    np.testing.assert_allclose(obs[0], [0.15, -0.05])
    assert done.tolist() == [True, False] and abs(rew[0]) < 1e-15


def test_oracle_return_known_value():
    # goal (0.25, 0): steps to 0.1, 0.2, 0.25 -> rewards -0.15, -0.05, 0 and done
    np.testing.assert_allclose(oracle_return(np.array([0.25, 0.0])), -0.2)


def test_sampler_masks_episodes_that_reach_the_goal():
    T, E, H = 2, 3, 30
    with make_sampler("nav2d", T, E, H, seed=0, dtype=np.float64) as s:
        policy = gaussian_mlp(2, 2, dtype=np.float64)
        params = jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(0), T))
        # task 0 drives straight at its goal: mean = clip(g - s) via a huge gain is not expressible,
        # so use a goal on the diagonal and a constant mean action of (0.1, 0.1) with no noise
        params["mlp"][-1]["w"] = params["mlp"][-1]["w"] * 0
        params["mlp"][-1]["b"] = params["mlp"][-1]["b"].at[0].set(1.0)
        params["log_std"] = params["log_std"].at[0].set(-30.0)
        tasks = np.array([[0.3, 0.3], [0.4, -0.2]])
        batch, _ = s.sample(policy, params, tasks, jax.random.PRNGKey(1), call=0)
    assert (batch.lengths[0] == 3).all()                          # (0.1, 0.1) × 3 = goal
    np.testing.assert_allclose(batch.rew[0, :, :3], np.tile([-np.hypot(.2, .2), -np.hypot(.1, .1), 0.0], (E, 1)),
                               atol=1e-12)
    assert (batch.mask[0, :, 3:] == 0).all() and (batch.rew[0, :, 3:] == 0).all()
    assert (batch.lengths[1] == H).all()


# ---- the JAX-native rollout (one jitted lax.scan) ------------------------------------------------

def _ff_params(T, seed=0, log_std=-2.0):
    policy = gaussian_mlp(2, 2, dtype=np.float64)
    params = jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(seed), T))
    params["log_std"] = params["log_std"] + log_std
    return policy, params


def test_jax_dynamics_hand_computed_episode():
    import jax.numpy as jnp

    fam = get_family("nav2d")
    env = fam.jax_env()
    goal = jnp.array([0.15, -0.05])
    pos, obs = env.reset(goal, jnp.uint32(7))
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    pos, obs, rew, done = env.step(pos, goal, jnp.array([0.5, -0.02]))      # clipped to 0.1
    np.testing.assert_allclose(obs, [0.1, -0.02])
    assert float(rew) == pytest.approx(-np.hypot(0.05, 0.03), abs=1e-15) and not bool(done)
    pos, obs, rew, done = env.step(pos, goal, jnp.array([0.05, -0.03]))
    assert bool(done) and abs(float(rew)) < 1e-15


def test_sparse_reward_hand_computed():
    import jax.numpy as jnp

    fam = get_family("nav2d-sparse")
    assert fam.sparse_radius == 0.2 and fam.horizon == 100
    env = fam.jax_env()
    goal = jnp.array([0.3, 0.0])
    pos, _ = env.reset(goal, jnp.uint32(0))
    rews = []
    for _ in range(3):
        pos, _, r, done = env.step(pos, goal, jnp.array([0.1, 0.0]))
        rews.append(float(r))
    # distances 0.2 (not inside: clipped to -0.2), 0.1, 0 (done)
    np.testing.assert_allclose(rews, [-0.2, -0.1, 0.0], atol=1e-12)
    assert bool(done)
    # the numpy stepper and the oracle use the same rule
    st = fam.make_stepper(1)
    st.reset(np.array([[0.3, 0.0]]), np.zeros(1))
    r = [float(st.step(np.array([[0.1, 0.0]]), np.ones(1, bool))[1][0]) for _ in range(2)]
    np.testing.assert_allclose(r, [-0.2, -0.1], atol=1e-12)
    # goal (0.5, 0.5): distances 0.57, 0.42, 0.28 pay -0.2 each (outside the disc), then 0.14, 0
    assert oracle_return(np.array([0.5, 0.5]), sparse_radius=0.2) == pytest.approx(-0.2 * 3 - np.hypot(.1, .1))
    assert oracle_return(np.array([0.25, 0.0]), sparse_radius=0.2) == pytest.approx(-0.15 - 0.05)


def test_scale_action_jax_equals_numpy():
    from bomrl.envs.families import scale_action
    from bomrl.envs.jax_rollout import scale_action_jax

    a = np.random.default_rng(0).normal(0, 3, size=(50, 3))
    low, high = np.array([-0.1, -1.0, -np.inf]), np.array([0.1, 2.0, np.inf])
    for s in (0.1, 1.0, 10.0):
        np.testing.assert_allclose(np.asarray(scale_action_jax(jax.numpy.asarray(a), low, high, s)),
                                   scale_action(a, low, high, s), rtol=0, atol=1e-14)


@pytest.mark.parametrize("env_name", ["nav2d", "nav2d-sparse"])
def test_scan_rollout_equals_numpy_stepper(env_name):
    """The jitted lax.scan rollout and the numpy stepper loop give the same batch (float64): same
    noise streams, clipping, early termination and masks. Not bit-identical: XLA fuses the float
    arithmetic differently (measured differences ≤ 4e-15)."""
    T, E, H = 3, 4, 60
    policy, params = _ff_params(T)
    # task 0 drives at (0.1, 0.1) per step with no noise: ends after 3 steps on goal (0.3, 0.3)
    params["mlp"][-1]["w"] = params["mlp"][-1]["w"].at[0].set(0.0)
    params["mlp"][-1]["b"] = params["mlp"][-1]["b"].at[0].set(1.0)
    params["log_std"] = params["log_std"].at[0].set(-30.0)
    tasks = np.array([[0.3, 0.3], [0.2, -0.1], [-0.45, 0.4]])
    with make_sampler(env_name, T, E, H, seed=2, dtype=np.float64) as s:
        assert s.jax_native
        b_jax, st_jax = s.sample(policy, params, tasks, jax.random.PRNGKey(5), call=0)
    with make_sampler(env_name, T, E, H, seed=2, dtype=np.float64) as s:
        s._stepper = get_family(env_name).make_stepper(T * E)        # force the numpy stepper path
        assert not s.jax_native
        b_np, _ = s.sample(policy, params, tasks, jax.random.PRNGKey(5), call=0)
    assert (b_jax.lengths[0] == 3).all() and (b_jax.lengths[1:] == H).all()
    np.testing.assert_array_equal(b_jax.mask, b_np.mask)
    np.testing.assert_array_equal(b_jax.lengths, b_np.lengths)
    for name in ("obs", "act", "rew", "returns"):
        np.testing.assert_allclose(getattr(b_jax, name), getattr(b_np, name), rtol=0, atol=1e-12, err_msg=name)
    assert st_jax.env_steps == int(b_np.lengths.sum()) and st_jax.env_seconds == 0.0


def test_scan_rollout_is_one_jitted_call_and_deterministic():
    T, E, H = 2, 3, 100
    policy, params = _ff_params(T, log_std=0.0)
    with make_sampler("nav2d", T, E, H, seed=0) as s:
        tasks = s.sample_tasks()
        s.warmup(policy, params)
        fn = s._act_fns[policy]
        calls = []
        s._act_fns[policy] = lambda *a: calls.append(1) or fn(*a)
        b1, _ = s.sample(policy, params, tasks, jax.random.PRNGKey(1), call=0)
        b2, _ = s.sample(policy, params, tasks, jax.random.PRNGKey(1), call=0)
        b3, _ = s.sample(policy, params, tasks, jax.random.PRNGKey(2), call=1)
    assert len(calls) == 3                         # one call per sample(), not one per step
    assert fn._cache_size() == 1                   # compiled once
    for x, y in zip(b1, b2):
        np.testing.assert_array_equal(x, y)        # same key and call index, same batch
    assert not np.array_equal(b1.act, b3.act)
    assert b1.obs.dtype == np.float32 and b1.returns.dtype == np.float64


def test_bench_sampler_nav2d_prints_one_json_line(capsys):
    from bomrl.cli import main

    rc = main(["bench", "sampler", "--env", "nav2d", "--tasks", "3", "--episodes", "2", "--horizon", "20",
               "--repeats", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1
    res = json.loads(out[0])
    assert res["jax_native"] is True and res["env_steps"] <= 120 and res["env_steps_per_s"] > 0
    assert res["raw_mujoco_steps_per_s"] is None and res["ratio"] is None
