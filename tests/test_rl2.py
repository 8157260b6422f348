"""RL²: the GRU cell against a hand-written step, the hidden state reset exactly at trial boundaries
(and carried across episode boundaries) in both rollout paths, the trial advantages and PPO's
clipped loss against hand-computed values, the meta-test protocol, config errors, and train /
resume / meta-test through the command line (same seed, same numbers)."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.algos import get_algorithm
from bomrl.algos.rl2 import RL2Config, ppo_clip_loss, trial_data
from bomrl.core.advantages import gae_over_gaps
from bomrl.core.recurrent import gru_cell, gru_init, gru_policy, trial_view
from bomrl.envs import make_sampler
from bomrl.envs.families import TaskFamily
from bomrl.envs.jax_rollout import JaxEnv
from bomrl.errors import ConfigError


pytestmark = pytest.mark.usefixtures("shared_compilation_cache")


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_gru_cell_equals_hand_written_step():
    p = gru_init(jax.random.PRNGKey(0), 5, 4, jnp.float64)
    p = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.PRNGKey(1), x.shape, x.dtype), p)  # non-zero biases
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=(3, 5)), rng.normal(size=(3, 4))
    wx, wh, bx, bh = (np.asarray(p[k]) for k in ("wx", "wh", "bx", "bh"))
    H = 4
    Wxr, Wxz, Wxn = wx[:, :H], wx[:, H:2 * H], wx[:, 2 * H:]
    Whr, Whz, Whn = wh[:, :H], wh[:, H:2 * H], wh[:, 2 * H:]
    r = _sig(x @ Wxr + bx[:H] + h @ Whr + bh[:H])
    z = _sig(x @ Wxz + bx[H:2 * H] + h @ Whz + bh[H:2 * H])
    n = np.tanh(x @ Wxn + bx[2 * H:] + r * (h @ Whn + bh[2 * H:]))
    expected = (1 - z) * n + z * h
    np.testing.assert_allclose(np.asarray(gru_cell(p, jnp.asarray(h), jnp.asarray(x))), expected, rtol=1e-13, atol=1e-14)
    # one hand-computed scalar case: zero weights -> r = z = 1/2, n = tanh(0) = 0, h' = h/2
    zero = jax.tree.map(jnp.zeros_like, p)
    np.testing.assert_allclose(np.asarray(gru_cell(zero, jnp.ones((1, 4)), jnp.ones((1, 5)))), 0.5)


# ---- a family whose episodes end at a task-given step (padding inside trials) ---------------------

class CountdownFamily(TaskFamily):
    """obs = (x, 1), x ← x + 0.1·clip(a, ±1), reward −|x − 0.5|, episode ends after task[0] steps."""

    name, horizon, task_dim, action_scale = "countdown", 6, 1, 1.0

    def spaces(self):
        return (2, 1, np.array([-1.0]), np.array([1.0]), False)

    def sample_tasks(self, rng, n):
        return rng.integers(2, 7, size=(n, 1)).astype(float)

    def jax_env(self):
        def reset(task, seed):
            state = (jnp.zeros((), task.dtype), jnp.zeros((), jnp.int32))
            return state, jnp.stack([state[0], jnp.ones((), task.dtype)])

        def step(state, task, a):
            x, t = state
            x, t = x + 0.1 * jnp.clip(a[0], -1, 1), t + 1
            return (x, t), jnp.stack([x, jnp.ones_like(x)]), -jnp.abs(x - 0.5), t >= task[0]

        return JaxEnv(reset, step)

    def make_stepper(self, num_envs, num_threads=1):
        return _CountdownStepper(num_envs)


class _CountdownStepper:
    def __init__(self, n):
        self.x, self.t = np.zeros(n), np.zeros(n, int)

    def reset(self, tasks, seeds):
        self.tasks = np.asarray(tasks)[:, 0]
        self.x[:], self.t[:] = 0.0, 0
        return np.stack([self.x, np.ones_like(self.x)], -1)

    def step(self, actions, active):
        self.x = np.where(active, self.x + 0.1 * np.clip(actions[:, 0], -1, 1), self.x)
        self.t = self.t + active
        return np.stack([self.x, np.ones_like(self.x)], -1), -np.abs(self.x - 0.5), self.t >= self.tasks

    def close(self):
        pass


def _recurrent_setup(T=2, K=2, trials=2, log_std=-30.0):
    policy = gru_policy(2, 1, hidden=8, episodes_per_trial=K, dtype=jnp.float64)
    params = jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(3), T))
    params["head"]["mlp"][-1]["w"] = params["head"]["mlp"][-1]["w"] * 5.0     # visible dependence on h
    params["head"]["log_std"] = params["head"]["log_std"] + log_std
    return policy, params, np.array([[3.0], [6.0]])[:T]


@pytest.mark.parametrize("path", ["scan", "stepper"])
def test_hidden_state_carried_across_episodes_and_reset_at_trials(path):
    """With a near-deterministic policy the sampled action IS the mean, so the batch exposes the
    hidden state: (1) the first step of every trial acts from h = 0 with input (o_0, 0, 0, 1);
    (2) the first step of a trial's 2nd episode does not (h carried, previous a and r of the last
    valid step); (3) the loss-side `policy.sequence` over the concatenated trial reproduces every
    action, padding after early terminations included."""
    T, K, H = 2, 2, 6
    policy, params, tasks = _recurrent_setup(T, K)
    fam = CountdownFamily()
    with make_sampler(fam, T, 4, H, seed=0, dtype=np.float64) as s:
        if path == "stepper":
            s._stepper = fam.make_stepper(T * 4)
        assert s.jax_native == (path == "scan")
        batch, _ = s.sample(policy, params, tasks, jax.random.PRNGKey(0), call=0)
    assert batch.lengths.tolist() == [[3] * 4, [6] * 4]                # task 0's episodes end early
    np.testing.assert_array_equal(batch.mask[0, :, 3:], 0.0)
    o0 = jnp.array([0.0, 1.0])
    for t in range(T):
        p = jax.tree.map(lambda x: x[t], params)
        x0 = policy.features(o0, jnp.zeros(1), jnp.zeros(()), jnp.ones((), bool))
        fresh = float(policy.step(p, policy.initial_state(), x0)[1][0][0])
        for e in range(4):
            if e % K == 0:   # trial start: state reset
                assert batch.act[t, e, 0, 0] == pytest.approx(fresh, abs=1e-9)
            else:            # 2nd episode of a trial: same observation, carried state
                assert abs(batch.act[t, e, 0, 0] - fresh) > 1e-4
        # by hand: episode 2's first input is (o_0, a_last, r_last, 1) with h after episode 1
        h = policy.initial_state()
        pa, pr = jnp.zeros(1), jnp.zeros(())
        L = int(batch.lengths[t, 0])
        for k in range(L):
            x = policy.features(jnp.asarray(batch.obs[t, 0, k]), pa, pr, jnp.asarray(k == 0))
            h, dist = policy.step(p, h, x)
            assert batch.act[t, 0, k, 0] == pytest.approx(float(dist[0][0]), abs=1e-9)
            pa, pr = jnp.asarray(batch.act[t, 0, k]), jnp.asarray(batch.rew[t, 0, k])
        x = policy.features(o0, pa, pr, jnp.ones((), bool))
        assert batch.act[t, 1, 0, 0] == pytest.approx(float(policy.step(p, h, x)[1][0][0]), abs=1e-9)
    # the loss recomputes the same means over whole trials
    view = lambda z: trial_view(jnp.asarray(z), K)  # noqa: E731
    means = jax.vmap(lambda p, o, a, r, m: policy.sequence(p, o, a, r, m, H)[0])(
        params, view(batch.obs), view(batch.act), view(batch.rew), view(batch.mask))
    m = view(batch.mask)[..., None] > 0
    np.testing.assert_allclose(np.where(m, means, 0.0), np.where(m, view(batch.act), 0.0), atol=1e-9)


def test_scan_and_stepper_recurrent_rollouts_agree():
    T, K, H = 2, 2, 6
    policy, params, tasks = _recurrent_setup(T, K, log_std=-1.0)
    fam = CountdownFamily()
    out = []
    for path in ("scan", "stepper"):
        with make_sampler(fam, T, 4, H, seed=0, dtype=np.float64) as s:
            if path == "stepper":
                s._stepper = fam.make_stepper(T * 4)
            out.append(s.sample(policy, params, tasks, jax.random.PRNGKey(4), call=0)[0])
    np.testing.assert_array_equal(out[0].mask, out[1].mask)
    for name in ("obs", "act", "rew"):
        np.testing.assert_allclose(getattr(out[0], name), getattr(out[1], name), atol=1e-12, err_msg=name)


def test_sampler_rejects_bad_trial_layout():
    policy, params, tasks = _recurrent_setup(2, K=3)
    with make_sampler(CountdownFamily(), 2, 4, 6, seed=0, dtype=np.float64) as s:
        with pytest.raises(ConfigError, match="episodes=4 is invalid: must be a multiple of .*episodes_per_trial=3"):
            s.sample(policy, params, tasks, jax.random.PRNGKey(0), call=0)


# ---- trial advantages and the PPO loss: hand-computed --------------------------------------------

def test_gae_over_gaps_hand_computed():
    rew = jnp.array([1.0, 2.0, 7.0, 3.0])
    mask = jnp.array([1.0, 1.0, 0.0, 1.0])          # step 2 is padding (an episode ended early)
    values = jnp.array([0.5, 0.5, 9.0, 1.0])
    adv, ret = gae_over_gaps(rew, values, mask, 0.5, 0.5)
    # step 3: δ = 3 - 1 = 2 = A, G = 3; step 1 (next valid = 3): δ = 2 + .5·1 - .5 = 2, A = 2 + .25·2,
    # G = 2 + .5·3; step 0: δ = 1 + .5·.5 - .5 = .75, A = .75 + .25·2.5, G = 1 + .5·3.5
    np.testing.assert_allclose(adv, [1.375, 2.5, 0.0, 2.0])
    np.testing.assert_allclose(ret, [2.75, 3.5, 0.0, 3.0])


def test_trial_data_returns_span_the_trial():
    # one task, one trial of K = 2 episodes of H = 3 steps; episode 1 ends after 2 steps
    rew = jnp.array([[[1.0, 1.0, 0.0], [2.0, 2.0, 2.0]]])
    mask = jnp.array([[[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]])
    obs = jnp.zeros((1, 2, 3, 1))
    d = trial_data((obs, jnp.zeros((1, 2, 3, 1)), rew, mask), 2, 1.0, 1.0, normalize=False)
    assert d.ret.shape == (1, 6)
    np.testing.assert_allclose(d.ret[0], [8.0, 7.0, 0.0, 6.0, 4.0, 2.0])   # γ = 1: sums over the trial


def test_ppo_clipped_loss_hand_computed():
    ratio = jnp.array([1.5, 0.5, 1.1, 0.7])
    adv = jnp.array([1.0, 1.0, -1.0, -1.0])
    mask = jnp.array([1.0, 1.0, 1.0, 0.0])
    logp = jnp.log(ratio)
    loss, m = ppo_clip_loss(logp, jnp.zeros(4), adv, mask, 0.2)
    # min(1.5, 1.2) = 1.2, min(0.5, 0.8) = 0.5, min(-1.1, -1.1) = -1.1; the 4th step is masked
    assert float(loss) == pytest.approx(-(1.2 + 0.5 - 1.1) / 3)
    assert float(m["ppo/clip_fraction"]) == pytest.approx(2 / 3)
    kl = ((0.5 - np.log(1.5)) + (-0.5 - np.log(0.5)) + (0.1 - np.log(1.1))) / 3
    assert float(m["ppo/approx_kl"]) == pytest.approx(kl)
    # gradient w.r.t. logp: 0 where the clipped term is active (r = 1.5, A > 0), −r·A/3 elsewhere
    g = jax.grad(lambda lp: ppo_clip_loss(lp, jnp.zeros(4), adv, mask, 0.2)[0])(logp)
    np.testing.assert_allclose(g, [0.0, -0.5 / 3, 1.1 / 3, 0.0], atol=1e-12)


# ---- the algorithm -----------------------------------------------------------------------------

def _algo(**kw):
    algo_cls, cfg_cls = get_algorithm("rl2")
    kw = {"hidden_size": 16, **kw}
    return algo_cls(cfg_cls(**kw), gru_policy(2, 2, hidden=16, episodes_per_trial=kw.get("episodes_per_trial", 2),
                                               dtype=jnp.float64))


def test_step_is_deterministic_and_adapt_reads_trial_episodes():
    algo = _algo(epochs=2, minibatch_trials=4)
    with make_sampler("nav2d", 3, 4, 20, seed=0, dtype=np.float64) as s:
        tasks = s.sample_tasks()
        state = algo.init(jax.random.PRNGKey(0))
        s1, m1 = algo.step(state, s, tasks, jax.random.PRNGKey(1), call=0)
        s2, m2 = algo.step(state, s, tasks, jax.random.PRNGKey(1), call=0)
        for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
            np.testing.assert_array_equal(a, b)
        assert {k: v for k, v in m1.items() if not k.startswith("time/")} == \
               {k: v for k, v in m2.items() if not k.startswith("time/")}
        assert m1["charts/env_steps"] == 3 * 4 * 20 and m1["ppo/minibatches"] == 2 * 1   # 6 trials, 4 per minibatch
        assert m1["charts/pre_return"] == m1["charts/return_episode1"]
        assert m1["charts/post_return"] == m1["charts/return_episode2"]
        assert int(s1.iteration) == 1 and len(jax.tree.leaves(s1.opt_state)) > 0
        out = algo.adapt(s1, s, tasks, jax.random.PRNGKey(2), steps=3, call=1)      # trials of 4 episodes
        assert out["returns"].shape == (4,) and out["task_returns"].shape == (4, 3)
        assert out["env_steps"] == 3 * 4 * 20
        with pytest.raises(ConfigError, match="adapt steps=2 is invalid: must be such that steps \\+ 1 divides"):
            algo.adapt(s1, s, tasks, jax.random.PRNGKey(2), steps=2, call=1)


@pytest.mark.parametrize("kw, fragment", [({"episodes_per_trial": 0}, "episodes_per_trial=0"),
                                          ({"clip_eps": 1.5}, "clip_eps=1.5"),
                                          ({"minibatch_trials": 2.5}, "minibatch_trials=2.5"),
                                          ({"learning_rate": -1.0}, "learning_rate=-1.0"),
                                          ({"entropy_coef": -0.1}, r"entropy_coef=-0.1.*\[0, 1e\+06\]"),
                                          ({"entropy_coef": float("nan")}, "entropy_coef=nan")])
def test_config_errors_are_one_line(kw, fragment):
    with pytest.raises(ConfigError, match=fragment) as exc:
        RL2Config(**kw)
    assert "\n" not in str(exc.value)


def test_learns_nav2d_within_seconds():
    """10 tasks × 8 episodes (4 trials of 2) × 50 steps, 8 PPO iterations (float64, seconds)."""
    algo = _algo(epochs=5, minibatch_trials=8)
    with make_sampler("nav2d", 10, 8, 50, seed=0, dtype=np.float64) as s:
        state = algo.init(jax.random.PRNGKey(0))
        curve = []
        for it in range(8):
            state, m = algo.step(state, s, s.sample_tasks(np.random.default_rng([0, it])), jax.random.PRNGKey(it + 1),
                                 call=it)
            curve.append(m["charts/post_return"])
    # measured (2026-12-02): -44.5 at iteration 1, -30.5, -28.4, -29.3 at iterations 6-8 (rise 15.1)
    assert np.mean(curve[-3:]) - curve[0] >= 8.0, curve


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in ("wall_s",) and not k.startswith("time/")}
                for r in csv.DictReader(f)]


def test_train_resume_bit_identical_and_meta_test(tmp_path, capsys):
    from bomrl.cli import main
    from bomrl.workflow.checkpoint import load_latest

    tiny = ["--env", "nav2d", "--algo", "rl2", "--tasks", "3", "--episodes", "4", "--horizon", "15",
            "--workers", "1", "--seed", "3", "--no-progress", "--no-tensorboard", "--checkpoint-every", "2",
            "--set", "hidden_size=8", "epochs=2"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", *tiny, "--iterations", "4", "--out", str(full)]) == 0
    assert main(["train", *tiny, "--iterations", "2", "--out", str(part)]) == 0
    assert main(["train", "--resume", str(part), "--iterations", "4", "--no-progress"]) == 0
    a, b = _rows(full / "metrics.csv"), _rows(part / "metrics.csv")
    assert len(a) == len(b) == 4 and a == b                 # every metric of every iteration, bit for bit
    ca, cb = load_latest(full), load_latest(part)
    assert all(np.array_equal(x, y) for x, y in zip(ca.leaves, cb.leaves))
    saved = json.loads((full / "config.json").read_text())
    assert saved["train"]["algo"] == "rl2" and saved["algo_config"]["hidden_size"] == 8
    assert "charts/return_episode2" in a[0] and "ppo/clip_fraction" in a[0]
    out = tmp_path / "mt.json"
    assert main(["meta-test", str(full), "--adapt-steps", "1", "--tasks", "2", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["algo"] == "rl2" and len(res["returns"]) == 2 and res["env_steps"] == 2 * 4 * 15
    capsys.readouterr()
    assert main(["meta-test", str(full), "--adapt-steps", "2", "--tasks", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "steps + 1 divides the episodes per task (4)" in err
