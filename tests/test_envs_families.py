"""Task-family interface and registry: seeded task sampling, errors, the docs' worked example,
random-policy return ranges."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest

from bomrl.core.policies import gaussian_mlp
from bomrl.envs import TaskFamily, family_names, get_family, make_sampler
from bomrl.envs import families as families_mod
from bomrl.errors import ConfigError

LOCOMOTION = ["halfcheetah-vel", "halfcheetah-dir", "ant-vel", "ant-dir"]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "ENVIRONMENTS.md"


def test_registry_lists_the_four_families():
    assert set(LOCOMOTION) <= set(family_names())
    for name in LOCOMOTION:
        fam = get_family(name)
        assert fam.name == name and fam.horizon == 200 and fam.task_dim == 1


def test_unknown_family_is_one_line_listing_allowed():
    with pytest.raises(ConfigError) as err:
        get_family("hopper-jump")
    msg = str(err.value)
    assert "\n" not in msg and "hopper-jump" in msg
    for name in LOCOMOTION:
        assert name in msg


@pytest.mark.parametrize("name", LOCOMOTION)
def test_task_sampling_deterministic_and_distinct(name):
    fam = get_family(name)
    a = fam.sample_tasks(np.random.default_rng(5), 200)
    b = fam.sample_tasks(np.random.default_rng(5), 200)
    c = fam.sample_tasks(np.random.default_rng(6), 200)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (200, 1) and a.dtype == np.float64
    assert not np.array_equal(a, c)
    if name.endswith("-dir"):
        assert set(np.unique(a)) == {-1.0, 1.0}
        assert 60 < (a > 0).sum() < 140            # ½ each (binomial(200, ½): ±5.6 sd)
    else:
        hi = 2.0 if name.startswith("halfcheetah") else 3.0
        assert a.min() >= 0.0 and a.max() <= hi and len(np.unique(a)) == 200
        assert abs(a.mean() - hi / 2) < 0.25 * hi / 2


# Random-policy mean return (4 tasks x 2 episodes x 200 steps), ranges documented in
# docs/ENVIRONMENTS.md ("Returns of a random policy").
RANDOM_RANGES = {"halfcheetah-vel": (-400, -60), "halfcheetah-dir": (-15, 10),
                 "ant-vel": (-350, 100), "ant-dir": (150, 230)}


@pytest.mark.parametrize("name", LOCOMOTION)
def test_random_policy_return_in_documented_range(name):
    lo, hi = RANDOM_RANGES[name]
    with make_sampler(name, 4, 2, 200, seed=0) as sampler:
        policy = gaussian_mlp(sampler.obs_dim, sampler.act_dim)
        params = jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(0), 4))
        batch, stats = sampler.sample(policy, params, sampler.sample_tasks(), jax.random.PRNGKey(100), call=0)
    mean = float(stats.mean_return.mean())
    assert lo <= mean <= hi, mean
    # at the default action scale 10 (noise std 0.1 in env units) random Ants stay healthy
    assert (batch.lengths == 200).all()


def test_documented_ranges_match_the_test():
    text = DOCS.read_text()
    for name, (lo, hi) in RANDOM_RANGES.items():
        nums = re.findall(rf"`{name}`\s+\[([−+\d]+), ([−+\d]+)\]", text)
        assert len(nums) == 1, name
        assert [int(x.replace("−", "-")) for x in nums[0]] == [lo, hi], name


def _docs_example() -> str:
    text = DOCS.read_text()
    section = text[text.index("### Adding a family"):]
    return re.search(r"```python\n(.*?)\n```", section, flags=re.S).group(1)


def test_docs_worked_example_runs(capsys):
    ns: dict = {}
    try:
        exec(compile(_docs_example(), str(DOCS), "exec"), ns)
        fam = get_family("hopper-vel")
        assert isinstance(fam, TaskFamily) and fam.obs_dim == 11 and fam.act_dim == 3
        batch, stats, tasks = ns["batch"], ns["stats"], ns["tasks"]
        assert batch.obs.shape == (2, 3, 50, 11) and batch.act.shape == (2, 3, 50, 3)
        assert tasks.shape == (2, 1) and 0 <= tasks.min() and tasks.max() <= 1
        # masks: 1 then 0, rewards zero after the end, lengths = mask sums
        m = batch.mask
        assert (np.diff(m, axis=-1) <= 0).all() and (batch.rew[m == 0] == 0).all()
        np.testing.assert_array_equal(batch.lengths, m.sum(-1))
        np.testing.assert_allclose(stats.mean_return, batch.returns.mean(1))
        # the first reward of episode (0, 0) recomputed by hand from a gymnasium replay
        import gymnasium as gym

        seeds = ns["sampler"].reset_seeds(0)
        env = gym.make("Hopper-v5")
        env.reset(seed=int(seeds[0]))
        a = np.clip(np.asarray(batch.act[0, 0, 0], np.float64) / fam.action_scale, -1, 1)  # env action
        _, _, _, _, info = env.step(a)
        by_hand = -abs(info["x_velocity"] - tasks[0, 0]) + 1.0 - 1e-3 * np.sum(np.square(a))
        assert abs(batch.rew[0, 0, 0] - by_hand) < 1e-4
        # an exec-defined family cannot go to worker processes: one-line error
        with pytest.raises(ConfigError, match="picklable"):
            make_sampler(fam, 1, 1, 5, backend="process")
    finally:
        families_mod.FAMILIES.unregister("hopper-vel")
