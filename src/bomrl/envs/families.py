"""Task families: the public interface for adding a distribution of tasks P(Γ), and its registry.

A task family says how to build an environment, how to draw tasks from a seeded generator, how to
apply a task to an environment and how to compute the task reward. The sampler
(`bomrl.envs.sampler`) only talks to families through this interface, so a family for any
gymnasium environment takes a few dozen lines (worked example in docs/ENVIRONMENTS.md):

    class MyFamily(TaskFamily):
        name = "my-family"
        horizon = 200
        task_dim = 1                                   # a task is a float vector [task_dim]
        def make_env(self):                            # one gymnasium env (one per episode slot)
            return gymnasium.make("Hopper-v5")
        def sample_tasks(self, rng, n):                # rng: np.random.Generator -> [n, task_dim]
            return rng.uniform(0.0, 2.0, size=(n, 1))
        def reward(self, task, obs, action, next_obs, info):
            return -abs(info["x_velocity"] - task[0]) + info["reward_ctrl"]

    register_family("my-family", MyFamily)

Tasks are float64 numpy arrays [n, task_dim] so they can be stored, compared and vmapped.

A family may also provide a fast vectorized stepper (`make_stepper`); the default one loops over
`make_env()` instances in Python (`GymLoopStepper`). Steppers step N environments at once:

    stepper.reset(tasks [N, task_dim], seeds [N] int) -> obs [N, obs_dim]
    stepper.step(actions [N, act_dim], active [N] bool) -> (obs [N, obs_dim], rew [N], terminated [N])
    stepper.close()

Actions reaching a stepper are already clipped to the action bounds (`action_low/action_high`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bomrl.errors import ConfigError


class TaskFamily:
    """Base class of a task family. Subclasses set `name`, `horizon`, `task_dim` and implement
    `make_env`, `sample_tasks` and `reward`; `set_task` and `terminated` are optional hooks."""

    name: str = "unnamed"
    horizon: int = 200
    task_dim: int = 1

    # ---- the interface a new family implements -------------------------------------------------
    def make_env(self):
        """Return a new gymnasium environment (the sampler makes one per (task, episode) slot)."""
        raise NotImplementedError

    def sample_tasks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw n tasks from P(Γ) using only rng. Returns float64 [n, task_dim]."""
        raise NotImplementedError

    def set_task(self, env, task: np.ndarray) -> None:
        """Apply a task to an environment before its episode starts (default: nothing to do,
        the task only enters the reward)."""

    def reward(self, task: np.ndarray, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray,
               info: dict) -> float:
        """Task reward of one transition (obs, action) -> next_obs; info is the env's step info."""
        raise NotImplementedError

    def terminated(self, task: np.ndarray, next_obs: np.ndarray, info: dict, env_terminated: bool) -> bool:
        """Whether the episode ends after this transition (default: the env's own termination)."""
        return bool(env_terminated)

    # ---- derived helpers -----------------------------------------------------------------------
    def spaces(self) -> tuple[int, int, np.ndarray | None, np.ndarray | None, bool]:
        """(obs_dim, act_dim or number of actions, action low, action high, discrete), from a probe
        env (cached)."""
        cached = getattr(self, "_spaces_cache", None)
        if cached is None:
            import gymnasium as gym

            _quiet_mujoco()
            env = self.make_env()
            try:
                obs_dim = int(np.prod(env.observation_space.shape))
                space = env.action_space
                if isinstance(space, gym.spaces.Discrete):
                    cached = (obs_dim, int(space.n), None, None, True)
                else:
                    cached = (obs_dim, int(np.prod(space.shape)),
                              np.asarray(space.low, np.float64).ravel(),
                              np.asarray(space.high, np.float64).ravel(), False)
            finally:
                env.close()
            self._spaces_cache = cached
        return cached

    @property
    def obs_dim(self) -> int:
        return self.spaces()[0]

    @property
    def act_dim(self) -> int:
        return self.spaces()[1]

    @property
    def discrete(self) -> bool:
        return self.spaces()[4]

    @property
    def action_low(self) -> np.ndarray | None:
        return self.spaces()[2]

    @property
    def action_high(self) -> np.ndarray | None:
        return self.spaces()[3]

    def make_stepper(self, num_envs: int, num_threads: int = 1):
        """A stepper for num_envs environments of this family. Override for a faster one."""
        return GymLoopStepper(self, num_envs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, horizon={self.horizon})"


class GymLoopStepper:
    """Steps N gymnasium environments of a family one after the other in Python.

    The env's own reward is ignored: the reward is `family.reward(task, ...)`. A gymnasium
    truncation (e.g. a TimeLimit shorter than the horizon) also ends the episode.
    """

    def __init__(self, family: TaskFamily, num_envs: int):
        _quiet_mujoco()
        self.family = family
        self.envs = [family.make_env() for _ in range(num_envs)]
        self.obs_dim = family.obs_dim
        self.tasks: np.ndarray | None = None
        self.obs = np.zeros((num_envs, self.obs_dim))

    def reset(self, tasks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        self.tasks = np.asarray(tasks, np.float64)
        for i, env in enumerate(self.envs):
            self.family.set_task(env, self.tasks[i])
            obs, _ = env.reset(seed=int(seeds[i]))
            self.obs[i] = np.asarray(obs, np.float64).ravel()
        return self.obs.copy()

    def step(self, actions: np.ndarray, active: np.ndarray):
        n = len(self.envs)
        next_obs = np.zeros((n, self.obs_dim))
        rew = np.zeros(n)
        term = np.zeros(n, bool)
        discrete = self.family.discrete
        for i in np.flatnonzero(active):
            a = int(actions[i]) if discrete else actions[i]
            o, _, env_term, env_trunc, info = self.envs[i].step(a)
            o = np.asarray(o, np.float64).ravel()
            rew[i] = self.family.reward(self.tasks[i], self.obs[i], actions[i], o, info)
            term[i] = self.family.terminated(self.tasks[i], o, info, bool(env_term)) or bool(env_trunc)
            next_obs[i] = o
            self.obs[i] = o
        return next_obs, rew, term

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []


def _quiet_mujoco() -> None:
    """User families may build MuJoCo envs: send MuJoCo's log file away from the cwd first."""
    import importlib.util

    if importlib.util.find_spec("mujoco") is not None:
        from bomrl.utils import configure_mujoco_log

        configure_mujoco_log()


# ---- registry ----------------------------------------------------------------------------------
_REGISTRY: dict[str, Callable[..., TaskFamily]] = {}


def register_family(name: str, factory: Callable[..., TaskFamily], overwrite: bool = False) -> None:
    """Register a family factory (a TaskFamily subclass or any callable returning a TaskFamily)."""
    if name in _REGISTRY and not overwrite and _REGISTRY[name] is not factory:
        raise ConfigError(f"task family {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = factory


def family_names() -> list[str]:
    """Names of all registered families (the built-in locomotion ones included)."""
    _load_builtin()
    return sorted(_REGISTRY)


def get_family(name: str | TaskFamily, **kwargs: Any) -> TaskFamily:
    """The family registered as name (kwargs go to its factory), or name itself if already a
    TaskFamily. An unknown name raises a one-line ConfigError listing the allowed names."""
    if isinstance(name, TaskFamily):
        return name
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"env={name!r} is invalid: allowed values are {', '.join(sorted(_REGISTRY))}")
    family = _REGISTRY[name](**kwargs)
    if not isinstance(family, TaskFamily):
        raise ConfigError(f"the factory registered as {name!r} returned {type(family).__name__}, not a TaskFamily")
    return family


def _load_builtin() -> None:
    import bomrl.envs.locomotion  # noqa: F401  (registers the four MuJoCo families)
