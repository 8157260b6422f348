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

A family may also provide pure-JAX dynamics (`jax_env`, see `bomrl.envs.jax_rollout`): the
"vector" backend then runs the whole rollout of all tasks as one jitted `lax.scan`.

Action scale (`action_scale`, default 10): a continuous policy acts in [−s, s]^A; the sampler clips
its action there and maps it linearly onto the env's bounds [low, high]
(`env = low + (a + s)(high − low)/(2s)`, so env = a/10 for bounds ±1 at s = 10) before the stepper
sees it. This is the MAML family's convention (pytorch-maml-rl `normalization_scale: 10`, ProMP's
`NormalizedEnv(normalization_scale=10)`): with the usual initial std 1.0 the exploration noise is
std 0.1 in env units. Log-probabilities, KLs and entropies stay in the policy's units; rewards and
control costs are computed on the env action. s = 1 with bounds [−1, 1] is plain clipping. Families
with unbounded actions get the policy's action unchanged. Actions reaching a stepper are env actions
(within `action_low/action_high`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bomrl.errors import ConfigError
from bomrl.registry import Registry


class TaskFamily:
    """Base class of a task family. Subclasses set `name`, `horizon`, `task_dim` and implement
    `make_env`, `sample_tasks` and `reward`; `set_task` and `terminated` are optional hooks."""

    name: str = "unnamed"
    horizon: int = 200
    task_dim: int = 1
    action_scale: float = 10.0
    """policy actions live in [−action_scale, action_scale] and are mapped onto the env's bounds
    (module docstring); a family class may set its own default, `make_sampler(action_scale=)` and
    `bomrl train --action-scale` override it per run"""

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

    def to_env_action(self, act: np.ndarray) -> np.ndarray:
        """Policy actions [N, A] -> env actions [N, A] (float64): clip to [−s, s], map onto
        [low, high]; unbounded spaces pass through. Discrete actions are returned unchanged."""
        if self.discrete:
            return act
        return scale_action(act, self.action_low, self.action_high, self.action_scale)

    def make_stepper(self, num_envs: int, num_threads: int = 1):
        """A stepper for num_envs environments of this family. Override for a faster one."""
        return GymLoopStepper(self, num_envs)

    def jax_env(self):
        """Pure-JAX dynamics (`bomrl.envs.jax_rollout.JaxEnv`) or None (default). With them the
        "vector" backend runs the whole rollout as one jitted `lax.scan` (no stepper)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, horizon={self.horizon})"


def scale_action(act: np.ndarray, low: np.ndarray | None, high: np.ndarray | None,
                 scale: float) -> np.ndarray:
    """Policy action in [−scale, scale] -> env action in [low, high] (linear; clipped both sides).

    act [..., A]; low/high [A] or None. Dimensions with an infinite bound are passed through."""
    return map_action(np.asarray(act, np.float64), low, high, scale, np)


def map_action(act, low, high, scale: float, xp):
    """The formula of `scale_action` for an array module xp (numpy, or jax.numpy inside a jitted
    rollout); low/high are static numpy bounds or None, the result has act's dtype."""
    if low is None or high is None:
        return act
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    finite = np.isfinite(low) & np.isfinite(high)
    if not finite.any():
        return act
    s = float(scale)
    lo = xp.asarray(np.where(finite, low, -1.0), act.dtype)
    hi = xp.asarray(np.where(finite, high, 1.0), act.dtype)
    mapped = lo + (xp.clip(act, -s, s) + s) * (hi - lo) / (2.0 * s)
    return xp.where(xp.asarray(finite), xp.clip(mapped, lo, hi), act)


def check_action_scale(value) -> float:
    """The action scale as a float > 0 (one-line ConfigError otherwise)."""
    from bomrl.errors import check

    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    check(ok and np.isfinite(value) and value > 0, "action_scale", value,
          "a finite number > 0 (10: the MAML family's convention, 1: plain clipping to the env bounds)")
    return float(value)


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
# name -> factory(**kwargs) -> TaskFamily (a TaskFamily subclass or any callable); the built-in
# families are lazy "module:attribute" entries, so validating a name imports no MuJoCo.
FAMILIES = Registry("task family", "env")
FAMILIES.register("halfcheetah-vel", "bomrl.envs.locomotion:halfcheetah_vel")
FAMILIES.register("halfcheetah-dir", "bomrl.envs.locomotion:halfcheetah_dir")
FAMILIES.register("ant-vel", "bomrl.envs.locomotion:ant_vel")
FAMILIES.register("ant-dir", "bomrl.envs.locomotion:ant_dir")
FAMILIES.register("nav2d", "bomrl.envs.navigation:Nav2dFamily")
FAMILIES.register("nav2d-sparse", "bomrl.envs.navigation:Nav2dSparseFamily")
FAMILIES.register("CartPole-v1", "bomrl.envs.classic:CartPoleFamily")


def register_family(name: str, factory: Callable[..., TaskFamily], overwrite: bool = False) -> None:
    """Register a family factory (a TaskFamily subclass or any callable returning a TaskFamily)."""
    FAMILIES.register(name, factory, overwrite=overwrite)


def family_names() -> list[str]:
    """Names of all registered families (the built-in ones first)."""
    return FAMILIES.names()


def get_family(name: str | TaskFamily, **kwargs: Any) -> TaskFamily:
    """The family registered as name (kwargs go to its factory), or name itself if already a
    TaskFamily. An unknown name raises a one-line ConfigError listing the allowed names."""
    if isinstance(name, TaskFamily):
        return name
    family = FAMILIES.get(name)(**kwargs)
    if not isinstance(family, TaskFamily):
        raise ConfigError(f"the factory registered as {name!r} returned {type(family).__name__}, not a TaskFamily")
    family.registered_name = name   # what the user asked for (--env), for messages
    return family
