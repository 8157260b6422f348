"""CartPole-v1 as a (single-task) family: a discrete gymnasium task for the categorical policy.

gymnasium's CartPole-v1 dynamics and reward (+1 per step while the pole is up); the episode
terminates when the pole falls or the cart leaves the track. The env is built WITHOUT gymnasium's
TimeLimit wrapper: the time limit is the family's horizon (500 = CartPole-v1's max_episode_steps),
applied by the sampler (every episode is H steps at most) and by `bomrl.envs.nstep` (which
bootstraps at the time limit instead of treating it as a termination, as a TimeLimit wrapper
would when the loop stepper folds truncation into termination).

There is one task: `sample_tasks` returns zeros [n, 1] and the task does not enter the reward.
"""

from __future__ import annotations

import numpy as np

from bomrl.envs.families import TaskFamily


class CartPoleFamily(TaskFamily):
    name = "CartPole-v1"
    horizon = 500
    task_dim = 1

    def make_env(self):
        from gymnasium.envs.classic_control.cartpole import CartPoleEnv

        return CartPoleEnv()

    def sample_tasks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.zeros((n, 1))

    def reward(self, task, obs, action, next_obs, info) -> float:
        return 1.0
