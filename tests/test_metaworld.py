"""Meta-World task families (bomrl.envs.metaworld) and the interface parts they use: a test split,
the env's own reward, episode statistics (success), the env's own horizon limit.

Known answers: the family steps exactly Meta-World's own env (same observations, rewards and
success for the same task and actions); its train and test tasks are exactly Meta-World's split;
success aggregation on hand-made episodes; resume is bit-identical; the Ray backend gives the
vector backend's batch."""

import json
import subprocess
import sys

import gymnasium as gym
import jax
import numpy as np
import pytest

from bomrl.core.policies import gaussian_mlp
from bomrl.envs import make_sampler
from bomrl.envs.families import FAMILIES, GymLoopStepper, TaskFamily, get_family
from bomrl.envs.rollout import EpisodeStats
from bomrl.errors import BomrlError, ConfigError


# ---- episode statistics and the test split on a hand-made family (no Meta-World needed) --------
class _CountEnv(gym.Env):
    """obs = [t]; info["success"] = 1 exactly at step `at` (set by the task), info["hits"] = 1."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def __init__(self):
        self.at, self.t = 0, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(1), {}

    def step(self, action):
        self.t += 1
        return np.array([float(self.t)]), 2.0, self.t >= 7, False, {"success": float(self.t == self.at),
                                                                     "hits": 1.0}


class _CountFamily(TaskFamily):
    name = "count"
    horizon = 10
    task_dim = 1
    episode_stats = {"success": "max", "hits": "sum"}

    def make_env(self):
        return _CountEnv()

    def sample_tasks(self, rng, n):
        return np.array([[3.0], [9.0], [5.0]])[:n]

    def sample_test_tasks(self, rng, n):
        return np.full((n, 1), 2.0)

    def set_task(self, env, task):
        env.at = int(task[0])


def test_episode_stats_on_hand_made_episodes():
    """success = max over the episode's steps (1 iff step `at` comes before the env ends at 7),
    hits = sum (the episode's length), the reward is the env's own (2 per step); inactive
    (finished) steps count for nothing."""
    with make_sampler(_CountFamily(), 3, 2, 10, seed=0) as s:
        policy = gaussian_mlp(1, 1)
        params = jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(0), 3))
        batch, _ = s.sample(policy, params, s.sample_tasks(), jax.random.PRNGKey(1), call=0)
        np.testing.assert_array_equal(batch.stats["success"], [[1, 1], [0, 0], [1, 1]])
        np.testing.assert_array_equal(batch.stats["hits"], np.full((3, 2), 7.0))
        np.testing.assert_array_equal(batch.returns, np.full((3, 2), 14.0))
        assert (s.sample_tasks(split="test") == 2.0).all() and (s.sample_tasks(split="train")[1] == 9.0).all()

    acc = EpisodeStats({"a": "max", "b": "sum", "c": "last"}, 2)
    for v, active in ((-3.0, [True, True]), (-5.0, [True, False]), (9.0, [False, False])):
        acc.add((None, None, None, np.full((2, 3), v)), np.array(active))
    got = acc.result((1, 2))
    assert got["a"].tolist() == [[-3.0, -3.0]]      # max of negatives: not max(0, ...)
    assert got["b"].tolist() == [[-8.0, -3.0]] and got["c"].tolist() == [[-5.0, -3.0]]


def test_terminate_on_success_ends_episodes_at_their_first_success():
    """Meta-World's evaluation episodes: with terminate_on_success an episode stops at the step whose
    info["success"] is 1 (tasks 3 and 5; task 9 never succeeds and ends at the env's step 7)."""
    import copy

    fam = copy.copy(_CountFamily())
    fam.terminate_on_success = True
    with make_sampler(fam, 3, 2, 10, seed=0) as s:
        policy = gaussian_mlp(1, 1)
        params = jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(0), 3))
        batch, _ = s.sample(policy, params, s.sample_tasks(), jax.random.PRNGKey(1), call=0)
    np.testing.assert_array_equal(batch.lengths, [[3, 3], [7, 7], [5, 5]])
    np.testing.assert_array_equal(batch.stats["success"], [[1, 1], [0, 0], [1, 1]])
    assert not _CountFamily.terminate_on_success


def test_stats_key_missing_and_bad_declaration_are_one_line_errors():
    class Bad(_CountFamily):
        episode_stats = {"nope": "max"}

    class Worse(_CountFamily):
        episode_stats = {"success": "median"}

    stepper = GymLoopStepper(Bad(), 1)
    stepper.reset(np.array([[3.0]]), np.array([0]))
    with pytest.raises(ConfigError, match="'nope'.*no such key"):
        stepper.step(np.zeros((1, 1)), np.array([True]))
    with pytest.raises(ConfigError, match="median.*max, sum, last"):
        GymLoopStepper(Worse(), 1)


def test_family_without_split_keeps_meta_testing_on_its_distribution():
    class NoSplit(_CountFamily):
        sample_test_tasks = TaskFamily.sample_test_tasks

    assert _CountFamily().has_test_split and not NoSplit().has_test_split
    with make_sampler(NoSplit(), 2, 1, 5) as s:
        np.testing.assert_array_equal(s.sample_tasks(1, split="test"), s.sample_tasks(1, split="train"))


def test_horizon_above_the_envs_own_limit_is_refused():
    class Limited(_CountFamily):
        def make_env(self):
            return gym.wrappers.TimeLimit(_CountEnv(), 8)

    assert Limited().horizon_limit == 8 and _CountFamily().horizon_limit is None
    with pytest.raises(ConfigError, match=r"horizon=9 is invalid: must be at most 8"):
        make_sampler(Limited(), 1, 1, 9)
    make_sampler(Limited(), 1, 1, 8).close()


# ---- Meta-World ---------------------------------------------------------------------------------
metaworld = pytest.importorskip("metaworld", reason='Meta-World families need: pip install -e ".[metaworld]"')


def test_the_ml1_list_is_metaworlds_and_every_env_is_registered():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    from bomrl.envs.metaworld import ML1_ENVS

    assert ML1_ENVS == tuple(ALL_V3_ENVIRONMENTS)
    names = FAMILIES.names()
    assert "ml10" in names and all(f"ml1-{n}" in names for n in ML1_ENVS)


def _raw_episode(cls, mt_task, actions):
    env = cls()
    env.set_task(mt_task)
    obs, _ = env.reset()
    out = [(obs, None, None)]
    for a in actions:
        o, r, _, _, info = env.step(a)
        out.append((o, r, info["success"]))
    env.close()
    return out


@pytest.mark.parametrize("name,split", [("ml1-reach-v3", "train"), ("ml1-push-v3", "test"), ("ml10", "test")])
def test_family_steps_exactly_metaworlds_own_env(name, split):
    """Same task and actions: the loop stepper's observations, rewards and success equal those of
    the Meta-World env built by hand from Meta-World's benchmark (a test class for ML10)."""
    fam = get_family(name)
    rng = np.random.default_rng(3)
    tasks = fam.sample_tasks(rng, 2) if split == "train" else fam.sample_test_tasks(rng, 2)
    actions = np.random.default_rng(4).uniform(-1, 1, (25, 2, 4))
    stepper = GymLoopStepper(fam, 2)
    obs = [stepper.reset(tasks, np.array([0, 1]))]
    steps = [stepper.step(a, np.array([True, True])) for a in actions]
    stepper.close()
    bench = (metaworld.ML10(seed=0) if name == "ml10" else metaworld.ML1(name[4:], seed=0))
    classes = bench.train_classes if split == "train" else bench.test_classes
    for i, task in enumerate(tasks):
        mt = fam.metaworld_task(task)
        assert mt in (bench.train_tasks if split == "train" else bench.test_tasks)
        raw = _raw_episode(classes[mt.env_name], mt, actions[:, i])
        np.testing.assert_array_equal(obs[0][i], raw[0][0])
        for (o, r, _, st), (ro, rr, rs) in zip(steps, raw[1:]):
            np.testing.assert_array_equal(o[i], ro)
            assert r[i] == rr and st[i, 0] == rs
    assert all(st.shape == (2, 1) for *_, st in steps)


def test_train_and_test_tasks_are_metaworlds_split():
    fam = get_family("ml1-reach-v3")
    bench = metaworld.ML1("reach-v3", seed=0)
    rng = np.random.default_rng(0)
    train = [fam.metaworld_task(t) for t in fam.sample_tasks(rng, 200)]
    test = [fam.metaworld_task(t) for t in fam.sample_test_tasks(rng, 200)]
    assert all(t in bench.train_tasks for t in train) and all(t in bench.test_tasks for t in test)
    assert len({t.data for t in train}) > 40        # the draws cover the split
    vec = lambda ts: {tuple(fam.task_parameters(t)["rand_vec"]) for t in ts}  # noqa: E731
    assert not vec(fam.sample_tasks(rng, 300)) & vec(fam.sample_test_tasks(rng, 300))

    ml10 = get_family("ml10")
    assert ml10.class_names("train") == list(metaworld.ML10(seed=0).train_classes)
    assert set(ml10.class_names("test")) == {"drawer-open-v3", "door-close-v3", "shelf-place-v3",
                                             "sweep-into-v3", "lever-pull-v3"}
    names = {ml10.metaworld_task(t).env_name for t in ml10.sample_test_tasks(rng, 60)}
    assert names == set(ml10.class_names("test")) and not names & set(ml10.class_names("train"))
    with pytest.raises(ConfigError, match=r"variation must be in 0\.\.49"):
        ml10.metaworld_task(np.array([1.0, 2.0, 50.0]))


def test_resume_with_a_metaworld_family_is_bit_identical(tmp_path):
    def train(out, n, *extra):
        cmd = [sys.executable, "-m", "bomrl.cli", "train", *extra, "--iterations", str(n), "--no-progress"]
        if not extra:
            cmd[4:4] = ["--env", "ml1-reach-v3", "--algo", "maml-trpo", "--tasks", "2", "--episodes", "2",
                        "--horizon", "15", "--checkpoint-every", "1", "--out", str(out)]
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr

    train(tmp_path / "full", 2)
    train(tmp_path / "cut", 1)
    train(tmp_path / "cut", 2, "--resume", str(tmp_path / "cut"))
    a, b = ((tmp_path / d / "metrics.csv").read_text().splitlines() for d in ("full", "cut"))
    strip = lambda rows: [",".join(c for j, c in enumerate(r.split(",")) if j not in wall) for r in rows]  # noqa: E731
    head = a[0].split(",")
    wall = {j for j, c in enumerate(head) if c == "wall_s" or c.startswith("time/") or c.startswith("sampler/")}
    assert "charts/post_success" in head and strip(a) == strip(b)


@pytest.mark.parametrize("algo", ["maml-trpo", "bomrl", "rl2"])
def test_train_and_meta_test_report_success_on_the_test_split(tmp_path, algo):
    """The acceptance path: train on ML1 reach (tiny budget), meta-test on ML1's test variations,
    return and success rate after 0..k adaptations in the output and on the console (RL²: trials
    of 2 episodes, its success logged for the first and last episode)."""
    run = tmp_path / "run"
    extra = ["--set", "episodes_per_trial=2"] if algo == "rl2" else []
    res = subprocess.run([sys.executable, "-m", "bomrl.cli", "train", "--env", "ml1-reach-v3", "--algo", algo,
                          "--iterations", "1", "--tasks", "2", "--episodes", "2", "--horizon", "20",
                          *extra, "--out", str(run), "--no-progress"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([sys.executable, "-m", "bomrl.cli", "meta-test", str(run), "--adapt-steps", "1",
                          "--tasks", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "2 test-split tasks" in res.stderr and "; success " in res.stderr
    m = json.loads((run / "meta_test.json").read_text())
    assert m["split"] == "test" and len(m["stats"]["success"]) == 2
    assert np.shape(m["task_stats"]["success"]) == (2, 2)
    assert all(0.0 <= x <= 1.0 for x in m["stats"]["success"])
    if algo != "maml-trpo":
        return
    # Meta-World's evaluation protocol: the final round is 3 episodes per task (ending at success)
    res = subprocess.run([sys.executable, "-m", "bomrl.cli", "meta-test", str(run), "--adapt-steps", "1",
                          "--tasks", "2", "--protocol", "metaworld", "--out", str(tmp_path / "mw.json")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    p = json.loads((tmp_path / "mw.json").read_text())
    assert p["protocol"] == "metaworld" and p["eval_episodes"] == 3 and m["protocol"] == "standard"
    assert p["returns"][0] == m["returns"][0]                # the same adaptation round
    assert 2 * 2 * 20 < p["env_steps"] <= 2 * 2 * 20 + 2 * 3 * 20
    res = subprocess.run([sys.executable, "-m", "bomrl.cli", "plot", str(run), "--out", str(tmp_path / "plots")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "plots" / "success.png").stat().st_size > 0
    assert "| ml1-reach-v3 |" in (tmp_path / "plots" / "success.md").read_text()
    tags = set()   # the success curves reach TensorBoard too (tags are plain strings in the event file)
    for f in (run / "tb").iterdir():
        data = f.read_bytes()
        tags |= {t for t in ("charts/pre_success", "charts/post_success") if t.encode() in data}
    assert tags == {"charts/pre_success", "charts/post_success"}


def test_ml10_tiny_budget_with_process_workers(tmp_path):
    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "bomrl.cli", "train", "--env", "ml10", "--algo", "maml-trpo",
                          "--iterations", "1", "--tasks", "3", "--episodes", "1", "--horizon", "10",
                          "--sampler", "process", "--workers", "2", "--out", str(run), "--no-progress"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([sys.executable, "-m", "bomrl.cli", "meta-test", str(run), "--adapt-steps", "1",
                          "--tasks", "3"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    m = json.loads((run / "meta_test.json").read_text())
    assert m["split"] == "test" and len(m["stats"]["success"]) == 2


def test_metaworld_frictions_are_clear_errors():
    fam = get_family("ml1-reach-v3")
    with pytest.raises(ConfigError, match="horizon=501 is invalid: must be at most 500"):
        make_sampler(fam, 1, 1, 501)
    with pytest.raises(ConfigError, match="needs a task before reset"):
        fam.make_env().reset()
    with pytest.raises(BomrlError, match="split must be 0 or 1"):
        fam.metaworld_task(np.array([2.0, 0.0, 0.0]))


def test_workers_without_effect_on_the_vector_backend_are_named(tmp_path, capsys):
    """--workers 2 with --sampler vector cannot parallelise a gymnasium loop family: one warning
    line says so and names the backend that can (no silence)."""
    from bomrl.cli import main

    common = ["--env", "CartPole-v1", "--algo", "maml-trpo", "--iterations", "1", "--tasks", "2", "--episodes", "1",
              "--horizon", "5", "--no-progress"]
    assert main(["train", *common, "--workers", "2", "--out", str(tmp_path / "a")]) == 0
    warn = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warn) == 1 and "--workers 2 has no effect" in warn[0] and "--sampler process" in warn[0]
    assert main(["train", *common, "--workers", "1", "--out", str(tmp_path / "b")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_success_differences_pair_tasks_by_hand():
    # the plot's success table adds method − MAML-TRPO on the same (seed, test task) pairs
    from bomrl.workflow.plot import _stat_differences

    def info(seed, succ):
        return {"seed": seed, "meta_test": {"seed": 1000, "tasks": 2, "env": "e", "task_returns": [[0, 0], [0, 0]],
                                            "task_stats": {"success": succ}}}

    groups = {"e": {"MAML-TRPO": [info(0, [[0, 0], [1.0, 0.0]]), info(1, [[0, 0], [0.5, 0.5]])],
                    "X": [info(0, [[0, 0], [1.0, 1.0]]), info(1, [[0, 0], [0.5, 0.0]])]}}
    lines = _stat_differences(groups, ["e"], "success")
    # pairs: (1-1, 1-0, 0.5-0.5, 0-0.5) = (0, 1, 0, -0.5): mean 0.125
    row = [ln for ln in lines if ln.startswith("| e | X | 1 |")]
    assert len(row) == 1 and row[0].split("|")[4].strip().startswith("+0.125 [") and row[0].endswith("(4) |")
    assert _stat_differences({"e": {"X": groups["e"]["X"]}}, ["e"], "success") == []   # no MAML-TRPO: nothing
