"""2D point navigation: MAML's cheapest task family (Finn et al. 2017, Section 5.2), stepped by a
vectorised numpy stepper (no gymnasium, no MuJoCo): a whole 40 × 20 × 100 batch costs less than the
policy calls that drive it, so every algorithm can be trained and tested on it in seconds.

    state s ∈ R², s_0 = (0, 0); goal g ~ U[−0.5, 0.5]² (the task, task_dim 2)
    env action a = clip(policy action, ±0.1)² (action_scale 0.1: the policy acts in env units, as
                   in the references, where the env itself clips the raw action)
    s ← s + a;  reward −‖s − g‖ (after the step; Euclidean distance, not squared);
    the episode ends when |s_x − g_x| < 0.01 and |s_y − g_y| < 0.01; horizon 100; obs = s.

Sources (facts, no code): cbfinn/maml_rl `maml_examples/point_env_randgoal.py`, pytorch-maml-rl
`maml_rl/envs/navigation.py`, learn2learn `gym/envs/particles/particles_2d.py`.
"""

from __future__ import annotations

import numpy as np

from bomrl.envs.families import TaskFamily, register_family
from bomrl.errors import ConfigError

GOAL_RANGE = 0.5      # goal ~ U[-0.5, 0.5]^2
MAX_ACTION = 0.1      # action box ±0.1
GOAL_TOL = 0.01       # done when |dx| < 0.01 and |dy| < 0.01


class Nav2dStepper:
    """Steps N point-navigation environments at once (numpy, float64). Interface of
    bomrl.envs.families (reset / step / close)."""

    def __init__(self, num_envs: int):
        self.num_envs = num_envs
        self.pos = np.zeros((num_envs, 2))
        self.goal = np.zeros((num_envs, 2))

    def reset(self, tasks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        # deterministic start (0, 0): the reset seed is not needed
        self.goal = np.asarray(tasks, np.float64).reshape(self.num_envs, 2).copy()
        self.pos = np.zeros((self.num_envs, 2))
        return self.pos.copy()

    def step(self, actions: np.ndarray, active: np.ndarray):
        act = np.clip(np.asarray(actions, np.float64), -MAX_ACTION, MAX_ACTION)
        act = np.where(np.asarray(active, bool)[:, None], act, 0.0)
        self.pos = self.pos + act
        diff = self.pos - self.goal
        rew = -np.sqrt(np.sum(diff**2, axis=-1))
        done = np.all(np.abs(diff) < GOAL_TOL, axis=-1)
        return self.pos.copy(), rew, done

    def close(self) -> None:
        pass


class Nav2dFamily(TaskFamily):
    """MAML's 2D navigation (module docstring)."""

    name = "nav2d"
    horizon = 100
    task_dim = 2
    action_scale = MAX_ACTION

    def __init__(self, horizon: int = 100):
        self.horizon = int(horizon)

    def make_env(self):
        raise ConfigError("nav2d has no gymnasium environment: it is stepped by its vectorised stepper "
                          "(TaskFamily.make_stepper)")

    def spaces(self):
        a = np.full(2, MAX_ACTION)
        return (2, 2, -a, a, False)

    def sample_tasks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(-GOAL_RANGE, GOAL_RANGE, size=(n, 2))

    def reward(self, task, obs, action, next_obs, info):
        return float(-np.linalg.norm(np.asarray(next_obs) - np.asarray(task)))

    def make_stepper(self, num_envs: int, num_threads: int = 1):
        return Nav2dStepper(num_envs)


def oracle_return(goal: np.ndarray, horizon: int = 100) -> float:
    """Best return of one episode with the goal known: straight at the goal at full speed
    (±0.1 per coordinate, i.e. the L∞ ball), stopping on it. goal [2] -> float."""
    pos, total = np.zeros(2), 0.0
    for _ in range(horizon):
        pos = pos + np.clip(goal - pos, -MAX_ACTION, MAX_ACTION)
        d = pos - goal
        total += -float(np.sqrt(np.sum(d**2)))
        if np.all(np.abs(d) < GOAL_TOL):
            break
    return total


register_family("nav2d", Nav2dFamily)
