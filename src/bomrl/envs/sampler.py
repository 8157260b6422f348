"""Multi-task sampler: the environments of all tasks stepped as one batch.

    from bomrl.envs import make_sampler
    with make_sampler("halfcheetah-vel", num_tasks=40, episodes=20, horizon=200,
                      backend="vector", num_workers=None, seed=0) as sampler:
        tasks = sampler.sample_tasks()                      # [T, task_dim], seeded by `seed`
        batch, stats = sampler.sample(policy, params, tasks, key, call=0)

- `policy` is a core.policies.Policy; `params` its parameter pytree with a leading task axis [T, ...]
  (each task acts with its own parameters). Per time step there is ONE jitted call that vmaps
  policy.apply + policy.sample over tasks for all T×E environments; it is compiled once per
  (policy, shapes) and reused for every later call.
- `batch` is core.batch.Batch with numpy arrays [T, E, H, ...]: obs, act (the sampled action in the
  policy's units; the environment receives it clipped to [−s, s] and mapped onto the env's
  bounds, s = `Sampler.action_scale`, see bomrl.envs.families.scale_action), rew,
  mask (1 while alive; rew = 0 and mask = 0 after termination, obs/act zero there), returns [T, E]
  (float64 sum of the unrounded rewards), lengths [T, E].
- `stats` is SampleStats(mean_return [T], env_steps, seconds, policy_seconds, env_seconds,
  mean_length [T]);
  `stats.metrics()` gives namespaced scalars for logging.
- Reproducible: `call` is the call's index k, an argument like `key`: the (task, episode)
  environment gets reset seed SeedSequence([seed, k]).generate_state(T*E)[t*E + e]; the action
  noise comes from `key`. Same sampler seed, call index and key give identical batches, on every
  backend; the sampler keeps no counter (bomrl.workflow.run gives each meta-iteration its range).
- Families with pure-JAX dynamics (`TaskFamily.jax_env()`, e.g. nav2d) on the "vector" backend:
  the whole rollout of all tasks (policy, action scaling, dynamics, masks) is ONE jitted
  `lax.scan` (bomrl.envs.jax_rollout), compiled once per policy; same layout, seeds and noise.
- Recurrent policies (`bomrl.core.recurrent`, RL²; `policy.recurrent` is True): the E episodes of
  a task are E / K trials of K = `policy.episodes_per_trial` consecutive episodes (episode
  e = trial · K + k); the policy state is carried across the episodes of a trial and reset between
  trials (E must be a multiple of K; not on the "ray" backend).
- Backends (the rollout itself is `bomrl.envs.rollout`'s pure functions over a stepper):
  "vector" steps all environments in this process (the MuJoCo families on MuJoCo's
  C thread pool with num_workers threads; other families in a Python loop); "process" splits
  them over num_workers worker processes (bomrl.envs.process_backend: fresh interpreters running
  bomrl.envs.worker), which also parallelises
  families that only have the Python loop; "ray" gives each of num_workers Ray actors a contiguous
  shard of the tasks, whose whole rollout (policy and environments) runs in the actor, on a local
  Ray instance or the cluster at `ray_address` (bomrl.envs.ray_sampler, docs/SCALING.md).
  num_workers defaults to the number of CPU cores.
- `sampler.close()` (or leaving the `with` block) stops the workers; it is idempotent and never
  hangs (workers are joined with a timeout, then terminated). A worker that dies or raises gives a
  one-line BomrlError instead of a hang.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import numpy as np

from bomrl.core.batch import Batch
from bomrl.envs.families import TaskFamily, check_action_scale
from bomrl.envs.jax_rollout import make_scan_rollout
from bomrl.envs.process_backend import ProcessStepper
from bomrl.envs.rollout import (SampleStats, assemble, check_finite, family_label, first_float_dtype, make_act_fn,
                                make_recurrent_act_fn, rollout, rollout_recurrent, shard_slices)
from bomrl.errors import BomrlError, ConfigError, check, check_choice


class _JaxEnvHandle:
    """Stands in for a stepper when the family's rollout runs as a jitted scan (jax_rollout)."""

    def __init__(self, env):
        self.env = env

    def close(self) -> None:
        pass


class Sampler:
    """T tasks × E episodes × H steps per call to `sample` (see the module docstring)."""

    def __init__(self, family: TaskFamily, num_tasks: int, episodes: int, horizon: int,
                 backend: str = "vector", num_workers: int | None = None, seed: int = 0,
                 dtype=np.float32, action_scale: float | None = None, remote=None):
        """remote: rollouts run elsewhere (backend "ray": `bomrl.envs.ray_sampler.RayRollouts`, built
        by `make_sampler`): an object with warmup(policy, params, key), rollout(policy, params, tasks,
        seeds, key, stats) -> (arrays, policy_seconds, env_seconds), close() and num_workers."""
        self.family = family
        # policy actions in [−s, s] are mapped onto the env's bounds (bomrl.envs.families); None: the family's s
        self.action_scale = family.action_scale if action_scale is None else check_action_scale(action_scale)
        self.num_tasks, self.episodes, self.horizon = num_tasks, episodes, horizon
        self.backend, self.seed, self.dtype = backend, int(seed), np.dtype(dtype)
        self.num_envs = num_tasks * episodes
        self.num_workers = num_workers or (os.cpu_count() or 1)
        self.obs_dim, self.act_dim, low, high, self.discrete = family.spaces()
        self.low, self.high = low, high
        self._act_fns: dict[Any, Any] = {}
        self._remote = remote is not None
        self._stepper = None
        self._stepper = remote if self._remote else self._open()
        if self._remote:
            self.num_workers = remote.num_workers

    def _open(self):
        """The stepper of all T*E environments (backends "vector" and "process")."""
        if self.backend == "vector":
            env = self.family.jax_env()
            if env is not None:
                return _JaxEnvHandle(env)
            return self.family.make_stepper(self.num_envs, self.num_workers)
        if self.backend == "process":
            return ProcessStepper(self.family, self.num_envs, self.num_workers)
        raise ConfigError(f"backend={self.backend!r} is invalid for Sampler: use make_sampler(..., backend=...)")

    # ---- context manager / cleanup ---------------------------------------------------------------
    def close(self) -> None:
        stepper, self._stepper = self._stepper, None
        if stepper is not None:
            stepper.close()

    def __enter__(self) -> "Sampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- tasks and seeds ----------------------------------------------------------------------
    def sample_tasks(self, rng: np.random.Generator | int | None = None, n: int | None = None,
                     split: str = "train") -> np.ndarray:
        """n (default num_tasks) tasks of the family; rng defaults to one seeded by the sampler seed.
        split "test": the family's held-out test split (`TaskFamily.sample_test_tasks`), or, for a
        family without one, fresh tasks of its distribution (the same as "train")."""
        check_choice("split", split, ("train", "test"))
        if rng is None or isinstance(rng, (int, np.integer)):
            rng = np.random.default_rng(self.seed if rng is None else int(rng))
        n = n or self.num_tasks
        tasks = self.family.sample_test_tasks(rng, n) if split == "test" else None
        if tasks is None:
            tasks = self.family.sample_tasks(rng, n)
        return np.asarray(tasks, np.float64)

    def reset_seeds(self, call: int, n: int | None = None) -> np.ndarray:
        """Reset seed of every (task, episode) env in the call of index `call`, [T*E] (row-major);
        `n`: that many seeds instead (an algorithm stepping its own environments, e.g. MGRL)."""
        return np.random.SeedSequence([self.seed, int(call)]).generate_state(self.num_envs if n is None else n, np.uint32)

    def nstep_runner(self, num_envs: int):
        """An n-step runner (bomrl.envs.nstep.NStepRunner) of num_envs environments of this sampler's
        family and horizon: online algorithms (meta-gradient RL) step through it, not `sample`."""
        from bomrl.envs.nstep import NStepRunner

        return NStepRunner(self.family, num_envs, self.horizon, self.action_scale)

    # ---- sampling -----------------------------------------------------------------------------
    def _check_inputs(self, policy, params, tasks) -> np.ndarray:
        if self._stepper is None:
            raise BomrlError("the sampler is closed")
        tasks = np.asarray(tasks, np.float64)
        if tasks.ndim == 1:
            tasks = tasks[:, None]
        T = self.num_tasks
        check(tasks.shape == (T, self.family.task_dim), "tasks.shape", tasks.shape,
              f"({T}, {self.family.task_dim}) for {T} tasks of {self.family.name}")
        check(policy.obs_dim == self.obs_dim, "policy.obs_dim", policy.obs_dim,
              f"{self.obs_dim}, the observation size of {self.family.name}")
        check(policy.act_dim == self.act_dim, "policy.act_dim", policy.act_dim,
              f"{self.act_dim}, the action size of {self.family.name}")
        check(policy.discrete == self.discrete, "policy.discrete", policy.discrete,
              f"{self.discrete} for {self.family.name}")
        if getattr(policy, "recurrent", False):
            K = policy.episodes_per_trial
            check(self.backend != "ray", "backend", self.backend,
                  "'vector' or 'process' for a recurrent policy (RL²)")
            check(self.episodes % K == 0, "episodes", self.episodes,
                  f"a multiple of the recurrent policy's episodes_per_trial={K} (E / K trials per task)")
        lead = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree_util.tree_leaves(params)}
        check(lead == {T}, "params leading axis", sorted(lead, key=str),
              f"{T} (one parameter set per task; stack them with a leading task axis)")
        return tasks

    @property
    def workers(self):
        """The remote backend running the rollouts (backend "ray": its actors, shards and pids)."""
        if self._stepper is None:
            raise BomrlError("the sampler is closed")
        check(self._remote, "backend", self.backend, "'ray' (the local backends have no remote workers)")
        return self._stepper

    @property
    def jax_native(self) -> bool:
        """True when rollouts run as one jitted lax.scan (a family with jax_env, vector backend)."""
        return isinstance(self._stepper, _JaxEnvHandle)

    def _act_fn(self, policy):
        fn = self._act_fns.get(policy)
        if fn is None:
            if self.jax_native:

                fn = make_scan_rollout(policy, self._stepper.env, self.num_tasks, self.episodes, self.horizon,
                                       (self.obs_dim, self.act_dim, self.low, self.high, self.discrete),
                                       self.action_scale)
            elif getattr(policy, "recurrent", False):
                fn = make_recurrent_act_fn(policy)
            else:
                fn = make_act_fn(policy)
            self._act_fns[policy] = fn
        return fn

    def _scan_rollout(self, policy, params, tasks, seeds, key):
        """The jitted lax.scan rollout: numpy arrays as `rollout` returns them."""
        t0 = time.perf_counter()
        out = jax.block_until_ready(self._act_fn(policy)(params, tasks, seeds, key))
        obs, act, rew, mask = (np.asarray(x) for x in out)
        seconds = time.perf_counter() - t0
        act = act.astype(np.int64) if self.discrete else act.astype(self.dtype)
        return (obs.astype(self.dtype), act, rew.astype(np.float64), mask.astype(np.float64), seconds, 0.0)

    def warmup(self, policy, params, key=None) -> None:
        """Compile the per-step policy call now (sample() would otherwise do it on first use)."""
        tasks = self._check_inputs(policy, params, np.zeros((self.num_tasks, self.family.task_dim)))
        key = jax.random.PRNGKey(0) if key is None else key
        if self._remote:
            self._stepper.warmup(policy, params, key)
            return
        if self.jax_native:
            self._scan_rollout(policy, params, tasks, self.reset_seeds(0), key)
            return
        if getattr(policy, "recurrent", False):
            return   # compiled on the first step of the first call
        obs = np.zeros((self.num_tasks, self.episodes, self.obs_dim), first_float_dtype(params))
        jax.block_until_ready(self._act_fn(policy)(params, obs, key, np.int32(0)))

    def sample(self, policy, params, tasks, key, *, call: int) -> tuple[Batch, SampleStats]:
        """Roll out E episodes of H steps in each of the T tasks; `call` (an integer >= 0) fixes the
        environments' reset seeds (`reset_seeds`). Shapes in the module docstring."""
        t_start = time.perf_counter()
        check(isinstance(call, (int, np.integer)) and not isinstance(call, bool) and call >= 0,
              "call", call, "an integer >= 0 (the call's index: it fixes the reset seeds)")
        tasks = self._check_inputs(policy, params, tasks)
        seeds = self.reset_seeds(call)
        spaces = (self.obs_dim, self.act_dim, self.low, self.high, self.discrete)
        stats: dict = {}
        try:
            arrays, policy_seconds, env_seconds = self._rollout(policy, params, tasks, seeds, key, spaces, stats)
        except BomrlError:
            raise
        except Exception as exc:  # noqa: BLE001 - a task family's own code failed: name it, one line
            if os.environ.get("BOMRL_TRACEBACK") or "KeyboardInterrupt" in repr(exc):
                raise
            raise BomrlError(f"sampling from task family {family_label(self.family)!r} failed: {type(exc).__name__}: "
                             f"{exc} (set BOMRL_TRACEBACK=1 for the traceback)") from exc
        check_finite(arrays[0], arrays[2], arrays[3], family_label(self.family), tasks)
        return assemble(*arrays, self.dtype, t_start, policy_seconds, env_seconds, stats)

    def _rollout(self, policy, params, tasks, seeds, key, spaces, stats: dict):
        if self._remote:
            return self._stepper.rollout(policy, params, tasks, seeds, key, stats)
        if self.jax_native:
            *arrays, policy_seconds, env_seconds = self._scan_rollout(policy, params, tasks, seeds, key)
        elif getattr(policy, "recurrent", False):
            *arrays, policy_seconds, env_seconds = rollout_recurrent(
                self._stepper, self._act_fn(policy), policy, params, tasks, seeds, key, self.episodes,
                self.horizon, spaces, self.dtype, self.action_scale, stats, self.family.episode_stats)
        else:
            *arrays, policy_seconds, env_seconds = rollout(
                self._stepper, self._act_fn(policy), params, tasks, seeds, key, self.episodes,
                self.horizon, spaces, self.dtype, self.action_scale, stats, self.family.episode_stats)
        return arrays, policy_seconds, env_seconds


# Sampler is this module's; the rest are re-exported from bomrl.envs.rollout and
# bomrl.envs.process_backend, where they moved (imports of them from here keep working)
__all__ = ["Sampler", "SampleStats", "ProcessStepper", "assemble", "check_finite", "family_label", "first_float_dtype",
           "make_act_fn", "rollout", "rollout_recurrent", "shard_slices"]
