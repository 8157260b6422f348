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

Optional parts of the interface:
- `sample_test_tasks(rng, n)`: a held-out test split (Meta-World's test variations);
  `bomrl meta-test` draws from it. A family without one is tested on fresh tasks of P(Γ).
- `reward` defaults to the env's own reward (`info["env_reward"]`, which the loop stepper adds to
  every step's info): for families whose task changes the env itself (`set_task`).
- `episode_stats = {"success": "max"}`: per-episode statistics read from the env's step info
  (`info[name]` each valid step, aggregated by "max", "sum" or "last"); the sampler returns them
  as `batch.stats[name]` [T, E], training logs `charts/pre_NAME`/`charts/post_NAME` and
  `bomrl meta-test` reports them after each adaptation.
- `horizon_limit`: the env's own episode limit (default: probed from the env, gymnasium's
  `TimeLimit` or Meta-World's `max_path_length`); a longer `--horizon` is refused.

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

    episode_stats: dict = {}
    """{name: "max" | "sum" | "last"}: per-episode statistics of the env's step `info[name]`
    (module docstring); empty: none"""
    terminate_on_success: bool = False
    """end an episode at the first step whose `info["success"]` is 1 (Meta-World's evaluation
    protocol; `bomrl meta-test --protocol metaworld` sets it for its evaluation episodes only)"""

    # ---- the interface a new family implements -------------------------------------------------
    def make_env(self):
        """Return a new gymnasium environment (the sampler makes one per (task, episode) slot)."""
        raise NotImplementedError

    def sample_tasks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw n tasks from P(Γ) using only rng. Returns float64 [n, task_dim]."""
        raise NotImplementedError

    def sample_test_tasks(self, rng: np.random.Generator, n: int) -> np.ndarray | None:
        """Draw n tasks of the held-out test split, or None (default): the family has no split and
        is meta-tested on fresh tasks of `sample_tasks`."""
        return None

    def fixed_tasks(self, n: int) -> np.ndarray | None:
        """The family's fixed training list of n tasks for `bomrl train --fixed-tasks`, or None
        (default: the tasks drawn for the first iteration are kept)."""
        return None

    def test_grid(self) -> np.ndarray | None:
        """A fixed grid of test tasks (`bomrl meta-test --task-grid`), or None (default: none)."""
        return None

    @property
    def has_test_split(self) -> bool:
        """Whether the family defines a held-out test split (`sample_test_tasks` overridden)."""
        return type(self).sample_test_tasks is not TaskFamily.sample_test_tasks

    def set_task(self, env, task: np.ndarray) -> None:
        """Apply a task to an environment before its episode starts (default: nothing to do,
        the task only enters the reward)."""

    def reward(self, task: np.ndarray, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray,
               info: dict) -> float:
        """Task reward of one transition (obs, action) -> next_obs; info is the env's step info.
        Default: the env's own reward (`info["env_reward"]`, added by the loop stepper)."""
        if "env_reward" not in info:
            raise NotImplementedError(f"{type(self).__name__}.reward: this stepper passes no env reward; "
                                      "implement reward()")
        return float(info["env_reward"])

    def terminated(self, task: np.ndarray, next_obs: np.ndarray, info: dict, env_terminated: bool) -> bool:
        """Whether the episode ends after this transition (default: the env's own termination, or
        a success when `terminate_on_success` is set)."""
        return bool(env_terminated) or (self.terminate_on_success and bool(info.get("success", 0.0) >= 1.0))

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
                if "_horizon_limit" not in self.__dict__:
                    self._horizon_limit = env_horizon_limit(env)
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
    def horizon_limit(self) -> int | None:
        """The env's own episode limit in steps (None: none known); probed once from an env."""
        if "_horizon_limit" not in self.__dict__:
            self._spaces_cache = None
            self.spaces()
        return self.__dict__.get("_horizon_limit")

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

    def jax_env(self):
        """Pure-JAX dynamics (`bomrl.envs.jax_rollout.JaxEnv`) or None (default). With them the
        "vector" backend runs the whole rollout as one jitted `lax.scan` (no stepper)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, horizon={self.horizon})"


def env_horizon_limit(env) -> int | None:
    """The episode limit an env enforces itself: gymnasium's TimeLimit (`spec.max_episode_steps`)
    or Meta-World's `max_path_length`; None if it has none."""
    import gymnasium as gym

    limits = []
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "max_episode_steps", None):
        limits.append(int(spec.max_episode_steps))
    layer = env
    while isinstance(layer, gym.Wrapper):   # a TimeLimit applied by hand (no spec)
        if isinstance(layer, gym.wrappers.TimeLimit):
            limits.append(int(layer._max_episode_steps))
        layer = layer.env
    path = getattr(getattr(env, "unwrapped", env), "max_path_length", None)
    if isinstance(path, (int, np.integer)) and path > 0:
        limits.append(int(path))
    return min(limits) if limits else None


AGGREGATIONS = ("max", "sum", "last")


def check_episode_stats(family) -> dict:
    """The family's `episode_stats` as {name: aggregation}; one-line ConfigError if malformed."""
    stats = getattr(family, "episode_stats", None) or {}
    ok = isinstance(stats, dict) and all(isinstance(k, str) and v in AGGREGATIONS for k, v in stats.items())
    if not ok:
        raise ConfigError(f"{type(family).__name__}.episode_stats={stats!r} is invalid: a dict "
                          f"{{info key: one of {', '.join(AGGREGATIONS)}}}")
    return dict(stats)


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

    The reward is `family.reward(task, ...)`; the env's own reward reaches it as
    `info["env_reward"]`. A gymnasium truncation also ends the episode. With `family.episode_stats`,
    `step` returns a fourth array [N, K]: `info[name]` of each stat this step (0 where inactive).
    """

    def __init__(self, family: TaskFamily, num_envs: int):
        _quiet_mujoco()
        self.family = family
        self.envs = [family.make_env() for _ in range(num_envs)]
        self.obs_dim = family.obs_dim
        self.tasks: np.ndarray | None = None
        self.obs = np.zeros((num_envs, self.obs_dim))
        self.stat_names = tuple(check_episode_stats(family))

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
        stats = np.zeros((n, len(self.stat_names))) if self.stat_names else None
        for i in np.flatnonzero(active):
            a = int(actions[i]) if discrete else actions[i]
            o, env_rew, env_term, env_trunc, info = self.envs[i].step(a)
            o = np.asarray(o, np.float64).ravel()
            info = dict(info, env_reward=env_rew)
            rew[i] = self.family.reward(self.tasks[i], self.obs[i], actions[i], o, info)
            term[i] = self.family.terminated(self.tasks[i], o, info, bool(env_term)) or bool(env_trunc)
            next_obs[i] = o
            self.obs[i] = o
            for j, name in enumerate(self.stat_names):
                if name not in info:
                    raise ConfigError(f"task family {self.family.name!r} declares episode statistic {name!r} "
                                      f"but its env's step info has no such key (keys: {sorted(info)})")
                stats[i, j] = float(info[name])
        return (next_obs, rew, term) if stats is None else (next_obs, rew, term, stats)

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
# reward variants of the paper's released scripts (bomrl.envs.locomotion's docstring)
FAMILIES.register("ant-dir-released", "bomrl.envs.locomotion:ant_dir_released")
FAMILIES.register("ant-vel-released", "bomrl.envs.locomotion:ant_vel_released")
FAMILIES.register("halfcheetah-vel-noctrl", "bomrl.envs.locomotion:halfcheetah_vel_noctrl")
FAMILIES.register("nav2d", "bomrl.envs.navigation:Nav2dFamily")
FAMILIES.register("nav2d-sparse", "bomrl.envs.navigation:Nav2dSparseFamily")
FAMILIES.register("CartPole-v1", "bomrl.envs.classic:CartPoleFamily")


class _MetaWorldFactory:
    """Lazy factory of a Meta-World family (bomrl.envs.metaworld, imported on first use)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, seed: int = 0) -> TaskFamily:
        # resolved by name on first use, like the "module:attribute" entries above (bomrl.envs.metaworld
        # builds on this module, never the other way round)
        import importlib

        return importlib.import_module("bomrl.envs.metaworld").make_family(self.kind, seed)


FAMILIES.register("ml10", _MetaWorldFactory("ML10"))
for _env in ("assembly basketball bin-picking box-close button-press-topdown button-press-topdown-wall "
             "button-press button-press-wall coffee-button coffee-pull coffee-push dial-turn disassemble "
             "door-close door-lock door-open door-unlock hand-insert drawer-close drawer-open faucet-open "
             "faucet-close hammer handle-press-side handle-press handle-pull-side handle-pull lever-pull "
             "pick-place-wall pick-out-of-hole pick-place plate-slide plate-slide-side plate-slide-back "
             "plate-slide-back-side peg-insert-side peg-unplug-side soccer stick-push stick-pull push "
             "push-wall push-back reach reach-wall shelf-place sweep-into sweep window-open "
             "window-close").split():   # Meta-World's ML1 environments (bomrl.envs.metaworld.ML1_ENVS)
    FAMILIES.register(f"ml1-{_env}-v3", _MetaWorldFactory(f"{_env}-v3"))


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
