"""nav2d (MAML's 2D point navigation): rewards and termination against hand-computed episodes,
the oracle, and the sampler layout with early termination."""

import jax
import numpy as np

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
        batch, _ = s.sample(policy, params, tasks, jax.random.PRNGKey(1))
    assert (batch.lengths[0] == 3).all()                          # (0.1, 0.1) × 3 = goal
    np.testing.assert_allclose(batch.rew[0, :, :3], np.tile([-np.hypot(.2, .2), -np.hypot(.1, .1), 0.0], (E, 1)),
                               atol=1e-12)
    assert (batch.mask[0, :, 3:] == 0).all() and (batch.rew[0, :, 3:] == 0).all()
    assert (batch.lengths[1] == H).all()
