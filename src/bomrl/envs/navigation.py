"""2D point navigation: MAML's cheapest task family (Finn et al. 2017, Section 5.2), with pure-JAX
dynamics (`jax_env`): the sampler's "vector" backend runs the whole rollout of all tasks, policy
included, as one jitted `lax.scan` (bomrl.envs.jax_rollout). The vectorised numpy stepper
(`Nav2dStepper`) is kept as the reference implementation and for the "process" and "ray" backends;
both give identical batches in float64 (tests/test_nav2d.py).

    state s ∈ R², s_0 = (0, 0); goal g ~ U[−0.5, 0.5]² (the task, task_dim 2)
    env action a = clip(policy action, ±0.1)² (action_scale 0.1: the policy acts in env units, as
                   in the references, where the env itself clips the raw action)
    s ← s + a;  reward −‖s − g‖ (after the step; Euclidean distance, not squared);
    the episode ends when |s_x − g_x| < 0.01 and |s_y − g_y| < 0.01; horizon 100; obs = s.

Sources (facts, no code): cbfinn/maml_rl `maml_examples/point_env_randgoal.py`, pytorch-maml-rl
`maml_rl/envs/navigation.py`, learn2learn `gym/envs/particles/particles_2d.py`.

nav2d-sparse: the same dynamics and termination, reward max(−‖s − g‖, −ρ) with ρ = SPARSE_RADIUS =
0.2: the reward is the constant −ρ outside the disc of radius ρ around the goal, so only inside it
does the reward carry any information (MAESN's sparse-reward idea, Gupta et al. 2018: reward only
near the goal; the clipped form keeps the dense reward inside the disc). Why 0.2: the disc covers
π·0.2² ≈ 12.6 % of the goal square, so the start (0, 0) is outside it for 87 % of the goals
(an agent has to explore to find any signal), while a policy that sweeps the square within one
100-step episode (at most 10 units of travel) can find it.
"""

from __future__ import annotations

import functools

import numpy as np

from bomrl.envs.families import TaskFamily
from bomrl.errors import ConfigError

GOAL_RANGE = 0.5      # goal ~ U[-0.5, 0.5]^2
MAX_ACTION = 0.1      # action box ±0.1
GOAL_TOL = 0.01       # done when |dx| < 0.01 and |dy| < 0.01
SPARSE_RADIUS = 0.2   # nav2d-sparse: reward max(-d, -0.2)


class Nav2dStepper:
    """Steps N point-navigation environments at once (numpy, float64). Interface of
    bomrl.envs.families (reset / step / close)."""

    def __init__(self, num_envs: int, sparse_radius: float | None = None):
        self.num_envs = num_envs
        self.sparse_radius = sparse_radius
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
        if self.sparse_radius is not None:
            rew = np.maximum(rew, -self.sparse_radius)
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

    sparse_radius: float | None = None
    """None: dense reward −‖s − g‖; a radius ρ: reward max(−‖s − g‖, −ρ) (nav2d-sparse)"""

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
        r = float(-np.linalg.norm(np.asarray(next_obs) - np.asarray(task)))
        return r if self.sparse_radius is None else max(r, -self.sparse_radius)

    def make_stepper(self, num_envs: int, num_threads: int = 1):
        return Nav2dStepper(num_envs, self.sparse_radius)

    def jax_env(self):
        from bomrl.envs.jax_rollout import JaxEnv

        return JaxEnv(_jax_reset, functools.partial(_jax_step, sparse_radius=self.sparse_radius))


class Nav2dSparseFamily(Nav2dFamily):
    """nav2d with the sparse reward max(−‖s − g‖, −ρ), ρ = 0.2 (module docstring)."""

    name = "nav2d-sparse"
    sparse_radius = SPARSE_RADIUS


def _jax_reset(task, seed):
    """Start at (0, 0) (deterministic: the reset seed is not needed). state = obs = position [2]."""
    import jax.numpy as jnp

    pos = jnp.zeros((2,), task.dtype)
    return pos, pos


def _jax_step(pos, task, env_action, sparse_radius=None):
    """s ← s + clip(a, ±0.1); reward −‖s − g‖ (or max(·, −ρ)); done when |s − g| < 0.01 per axis."""
    import jax.numpy as jnp

    pos = pos + jnp.clip(env_action, -MAX_ACTION, MAX_ACTION).astype(pos.dtype)
    diff = pos - task
    rew = -jnp.sqrt(jnp.sum(diff**2, axis=-1))
    if sparse_radius is not None:
        rew = jnp.maximum(rew, -sparse_radius)
    return pos, pos, rew, jnp.all(jnp.abs(diff) < GOAL_TOL, axis=-1)


def oracle_return(goal: np.ndarray, horizon: int = 100, sparse_radius: float | None = None) -> float:
    """Best return of one episode with the goal known: straight at the goal at full speed
    (±0.1 per coordinate, i.e. the L∞ ball), stopping on it. goal [2] -> float.
    sparse_radius: the nav2d-sparse reward max(−d, −ρ)."""
    pos, total = np.zeros(2), 0.0
    for _ in range(horizon):
        pos = pos + np.clip(goal - pos, -MAX_ACTION, MAX_ACTION)
        d = pos - goal
        r = -float(np.sqrt(np.sum(d**2)))
        total += r if sparse_radius is None else max(r, -sparse_radius)
        if np.all(np.abs(d) < GOAL_TOL):
            break
    return total

