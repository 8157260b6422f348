"""Multi-task sampler (vector backend): layout, masks against gymnasium replays, determinism,
no recompilation, input errors, a clean working directory, the bench command."""

import json
import os

import jax
import numpy as np
import pytest

from bomrl.core.policies import gaussian_mlp
from bomrl.envs import make_sampler
from bomrl.errors import ConfigError


def _policy_params(sampler, T, seed=0, dtype=None):
    kw = {} if dtype is None else {"dtype": dtype}
    policy = gaussian_mlp(sampler.obs_dim, sampler.act_dim, **kw)
    return policy, jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(seed), T))


def test_layout_and_per_task_params():
    T, E, H = 3, 2, 7
    with make_sampler("halfcheetah-vel", T, E, H, seed=1) as s:
        policy, params = _policy_params(s, T)
        # task 1 acts with a huge constant mean action: its env receives 1.0 (clipped)
        params["mlp"][-1]["b"] = params["mlp"][-1]["b"].at[1].set(50.0)
        params["log_std"] = params["log_std"].at[1].set(-20.0)
        tasks = s.sample_tasks()
        batch, stats = s.sample(policy, params, tasks, jax.random.PRNGKey(0), call=0)
    assert batch.obs.shape == (T, E, H, 17) and batch.act.shape == (T, E, H, 6)
    assert batch.rew.shape == batch.mask.shape == (T, E, H) and batch.returns.shape == (T, E)
    assert (batch.mask == 1).all() and (batch.lengths == H).all() and stats.env_steps == T * E * H
    assert (batch.act[1] > 40).all()                       # stored unclipped
    # reward of task 1: -|v - v*| - 0.05 * ||clip(a)||^2 with clip(a) = 1: ctrl cost 0.3 exactly
    assert np.all(batch.rew[1] <= -0.3 + 1e-6)
    np.testing.assert_allclose(stats.mean_return, batch.returns.mean(1))
    np.testing.assert_allclose(batch.returns, batch.rew.astype(np.float64).sum(-1), rtol=1e-5)


def test_ant_masks_match_gymnasium_replay():
    """Episodes that end early end exactly where gymnasium's Ant-v5 terminates on replay."""
    import gymnasium as gym

    T, E, H = 2, 3, 60
    # action scale 1 (plain clipping): std-1 actions make the Ant hop, so episodes end early
    with make_sampler("ant-dir", T, E, H, seed=0, dtype=np.float64, action_scale=1.0) as s:
        policy, params = _policy_params(s, T)
        tasks = s.sample_tasks()
        batch, _ = s.sample(policy, params, tasks, jax.random.PRNGKey(3), call=0)
        seeds = s.reset_seeds(0)
    m = batch.mask
    assert (np.diff(m, axis=-1) <= 0).all()                 # alive, then dead for good
    np.testing.assert_array_equal(batch.lengths, m.sum(-1))
    assert (batch.rew[m == 0] == 0).all() and (batch.obs[m == 0] == 0).all()
    assert batch.lengths.min() < H                           # this seed has early terminations
    env = gym.make("Ant-v5")
    for t in range(T):
        for e in range(E):
            obs, _ = env.reset(seed=int(seeds[t * E + e]))
            length = int(batch.lengths[t, e])
            for k in range(length):
                np.testing.assert_array_equal(batch.obs[t, e, k], obs)
                obs, r, term, _, info = env.step(np.clip(batch.act[t, e, k], -1, 1))
                assert term == (k == length - 1 and length < H)
                assert batch.rew[t, e, k] == pytest.approx(r - info["x_velocity"] * (1 - tasks[t, 0]), abs=1e-9)


def test_same_seed_and_call_index_same_batch_other_index_other_resets():
    T, E, H = 2, 2, 10
    outs = []
    for calls in ((0, 1), (1, 0)):   # the batch is a function of the index, not of the call order
        with make_sampler("ant-vel", T, E, H, seed=4) as s:
            policy, params = _policy_params(s, T)
            tasks = s.sample_tasks()
            outs.append({c: s.sample(policy, params, tasks, jax.random.PRNGKey(1), call=c)[0] for c in calls})
    for c in (0, 1):
        for x, y in zip(outs[0][c], outs[1][c]):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(outs[0][0].obs[:, :, 0], outs[0][1].obs[:, :, 0])  # the index sets the resets


def test_policy_compiled_once():
    from bomrl.envs import sampler as sampler_mod

    calls = []
    orig = sampler_mod.make_act_fn

    def counting(policy):
        fn = orig(policy)
        calls.append(fn)
        return fn

    sampler_mod.make_act_fn = counting
    try:
        with make_sampler("halfcheetah-dir", 2, 2, 5, seed=0) as s:
            policy, params = _policy_params(s, 2)
            tasks = s.sample_tasks()
            s.warmup(policy, params)
            for i in range(3):
                params = jax.tree_util.tree_map(lambda p: p * 1.01, params)
                s.sample(policy, params, tasks, jax.random.PRNGKey(i), call=i)
    finally:
        sampler_mod.make_act_fn = orig
    assert len(calls) == 1 and calls[0]._cache_size() == 1


@pytest.mark.parametrize("kwargs, word", [
    ({"num_tasks": 0}, "num_tasks"), ({"episodes": -2}, "episodes"), ({"horizon": 0}, "horizon"),
    ({"backend": "threads"}, "backend"), ({"num_workers": 0}, "num_workers"),
    ({"family": "cheetah-fast"}, "halfcheetah-vel"),
])
def test_bad_arguments_one_line(kwargs, word):
    args = {"family": "halfcheetah-vel", "num_tasks": 2, "episodes": 2, "horizon": 5} | kwargs
    with pytest.raises(ConfigError) as err:
        make_sampler(**args)
    assert "\n" not in str(err.value) and word in str(err.value)


def test_bad_sample_inputs_one_line():
    with make_sampler("halfcheetah-vel", 2, 1, 3) as s:
        policy, params = _policy_params(s, 2)
        with pytest.raises(ConfigError, match="tasks.shape"):
            s.sample(policy, params, np.zeros((3, 1)), jax.random.PRNGKey(0), call=0)
        _, params3 = _policy_params(s, 3)
        with pytest.raises(ConfigError, match="leading axis"):
            s.sample(policy, params3, s.sample_tasks(), jax.random.PRNGKey(0), call=0)
        wrong = gaussian_mlp(5, 6)
        with pytest.raises(ConfigError, match="obs_dim"):
            s.sample(wrong, params, s.sample_tasks(), jax.random.PRNGKey(0), call=0)
        for call in (-1, 1.5, True, None):
            with pytest.raises(ConfigError, match="call=") as err:
                s.sample(policy, params, s.sample_tasks(), jax.random.PRNGKey(0), call=call)
            assert "\n" not in str(err.value) and "integer >= 0" in str(err.value)


def test_nothing_written_to_cwd(tmp_path, monkeypatch, capfd):
    import mujoco

    from bomrl.envs.locomotion import _asset
    from bomrl.utils import mujoco_log_path

    monkeypatch.chdir(tmp_path)
    with make_sampler("halfcheetah-vel", 1, 1, 3) as s:
        policy, params = _policy_params(s, 1)
        s.sample(policy, params, s.sample_tasks(), jax.random.PRNGKey(0), call=0)
    log = mujoco_log_path()
    before = log.read_text() if log.exists() else ""
    mujoco.MjModel.from_xml_path(str(_asset("half_cheetah.xml")))  # a model that makes MuJoCo log
    capfd.readouterr()
    assert os.listdir(tmp_path) == []
    assert log.exists() and len(log.read_text()) > len(before)


def test_bench_sampler_prints_one_json_line(monkeypatch, capsys):
    from bomrl import cli

    monkeypatch.setattr(cli, "COMMANDS", {"bench sampler": ("bomrl.bench.sampler:BenchSamplerConfig",
                                                          "bomrl.bench.sampler:run")})
    rc = cli.main(["bench", "sampler", "--env", "halfcheetah-vel", "--tasks", "2", "--episodes", "2",
                   "--horizon", "20", "--workers", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1
    res = json.loads(out[0])
    assert res["env_steps"] == 80 and res["env_steps_per_s"] > 0 and res["raw_mujoco_steps_per_s"] > 0
    assert res["ratio"] == pytest.approx(res["env_steps_per_s"] / res["raw_mujoco_steps_per_s"], rel=1e-2,
                                  abs=6e-4)   # ratio has 3 decimals
    assert res["baseline"] == "mujoco" and res["baseline_controls"] == "sampler"
    # the baseline steps the sampler's controls: a N(0, 1) policy at action scale 10 sends ≈ N(0, 0.01)
    assert res["action_scale"] == 10.0 and 0.05 < res["control_rms"] < 0.2
    rc = cli.main(["bench", "sampler", "--env", "walker-vel"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "halfcheetah-vel" in err[0] and "walker-vel" in err[0]


def test_bench_sampler_times_a_gymnasium_family_against_bare_env_step(tmp_path, monkeypatch, capsys):
    """A family stepped in a Python loop (here a --plugins one) is timed against a bare env.step
    loop of its own env in worker processes (which import the plugin from the user's directory)."""
    from bomrl import cli

    (tmp_path / "my_cartpole.py").write_text(
        "from bomrl.envs import register_family\n"
        "from bomrl.envs.classic import CartPoleFamily\n"
        "class MyCartPole(CartPoleFamily):\n    name = 'my-cartpole'\n"
        "register_family('my-cartpole', MyCartPole, overwrite=True)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = cli.main(["bench", "sampler", "--env", "my-cartpole", "--plugins", "my_cartpole", "--tasks", "2",
                   "--episodes", "2", "--horizon", "30", "--workers", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1
    res = json.loads(out[0])
    assert res["baseline"] == "env.step" and res["raw_env_steps_per_s"] > 0 and "raw_mujoco_steps_per_s" not in res
    assert res["ratio"] == pytest.approx(res["env_steps_per_s"] / res["raw_env_steps_per_s"], rel=1e-2,
                                  abs=6e-4)   # ratio has 3 decimals
    assert sorted(os.listdir(tmp_path)) in (["my_cartpole.py"], ["__pycache__", "my_cartpole.py"])


def test_discrete_gymnasium_family():
    """A discrete-action family (CartPole-v1, categorical policy) through the generic loop stepper."""
    import gymnasium as gym

    from bomrl.core.policies import categorical_mlp
    from bomrl.envs import TaskFamily

    class CartPoleLength(TaskFamily):
        name, horizon, task_dim = "cartpole-test", 30, 1

        def make_env(self):
            return gym.make("CartPole-v1")

        def sample_tasks(self, rng, n):
            return rng.uniform(0.5, 1.5, size=(n, 1))

        def set_task(self, env, task):
            env.unwrapped.length = float(task[0]) * 0.5  # pole half-length

        def reward(self, task, obs, action, next_obs, info):
            return 1.0 - 0.1 * abs(next_obs[0])

    with make_sampler(CartPoleLength(), 2, 3, 30, seed=2, dtype=np.float64) as s:
        policy = categorical_mlp(s.obs_dim, s.act_dim)
        params = jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(0), 2))
        tasks = s.sample_tasks()
        batch, stats = s.sample(policy, params, tasks, jax.random.PRNGKey(1), call=0)
        lengths = [env.unwrapped.length for env in s._stepper.envs]
    assert batch.act.shape == (2, 3, 30) and batch.act.dtype == np.int64
    assert set(np.unique(batch.act[batch.mask == 1])) <= {0, 1}
    np.testing.assert_allclose(lengths, np.repeat(tasks[:, 0] * 0.5, 3))
    m = batch.mask
    assert (np.diff(m, axis=-1) <= 0).all() and batch.lengths.min() < 30   # random poles fall
    nxt = m[..., 1:] == 1                   # steps whose next observation is stored
    np.testing.assert_allclose(batch.rew[..., :-1][nxt], 1.0 - 0.1 * np.abs(batch.obs[..., 1:, 0][nxt]),
                               rtol=0, atol=1e-6)  # CartPole observations are float32


def test_bench_sampler_controls_are_the_env_actions_of_valid_steps():
    from types import SimpleNamespace

    from bomrl.bench.sampler import sampler_controls
    from bomrl.envs import get_family

    family = get_family("halfcheetah-vel")   # bounds [-1, 1]
    act = np.zeros((1, 2, 3, 6))
    act[0, 0, :, 0] = [5.0, -20.0, 1.0]      # policy units; scale 10: 0.5, -1 (clipped), 0.1
    act[0, 1, :, 0] = 7.0                    # an invalid episode: not a control the env received
    mask = np.array([[[1, 1, 1], [0, 0, 0]]], float)
    sampler = SimpleNamespace(discrete=False, family=family, action_scale=10.0)
    got = sampler_controls(sampler, SimpleNamespace(act=act, mask=mask), seed=0)
    assert got.shape == (3, 6)
    np.testing.assert_allclose(sorted(got[:, 0]), [-1.0, 0.1, 0.5], atol=1e-12)
    np.testing.assert_array_equal(got[:, 1:], 0.0)
