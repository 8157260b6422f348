"""Multi-task sampler: the environments of all tasks stepped as one batch.

    from bomrl.envs import make_sampler
    with make_sampler("halfcheetah-vel", num_tasks=40, episodes=20, horizon=200,
                      backend="vector", num_workers=None, seed=0) as sampler:
        tasks = sampler.sample_tasks()                      # [T, task_dim], seeded by `seed`
        batch, stats = sampler.sample(policy, params, tasks, key)

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
- Reproducible: the (task, episode) environment of call number k gets reset seed
  SeedSequence([seed, k]).generate_state(T*E)[t*E + e]; the action noise comes from `key`. Same
  sampler seed, same call order and same key give identical batches, on either backend.
- Families with pure-JAX dynamics (`TaskFamily.jax_env()`, e.g. nav2d) on the "vector" backend:
  the whole rollout of all tasks (policy, action scaling, dynamics, masks) is ONE jitted
  `lax.scan` (bomrl.envs.jax_rollout), compiled once per policy; same layout, seeds and noise.
- Recurrent policies (`bomrl.core.recurrent`, RL²; `policy.recurrent` is True): the E episodes of
  a task are E / K trials of K = `policy.episodes_per_trial` consecutive episodes (episode
  e = trial · K + k); the policy state is carried across the episodes of a trial and reset between
  trials (E must be a multiple of K; not on the "ray" backend).
- Backends: "vector" steps all environments in this process (the MuJoCo families on MuJoCo's
  C thread pool with num_workers threads; other families in a Python loop); "process" splits
  them over num_workers worker processes (fresh interpreters running bomrl.envs.worker), which also parallelises
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
import pickle
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bomrl.core.batch import Batch
from bomrl.envs.families import TaskFamily, check_action_scale, scale_action
from bomrl.envs.jax_rollout import make_scan_rollout
from bomrl.errors import BomrlError, ConfigError, check, check_choice



class SampleStats(NamedTuple):
    mean_return: np.ndarray   # [T] mean undiscounted return per task
    env_steps: int            # valid (unmasked) environment steps
    seconds: float            # wall time of the whole call
    policy_seconds: float     # inside the jitted policy call (incl. host<->device copies)
    env_seconds: float        # stepping and resetting the environments
    mean_length: np.ndarray   # [T] mean episode length per task

    def metrics(self) -> dict[str, float]:
        return {
            "charts/mean_return": float(np.mean(self.mean_return)),
            "charts/mean_length": float(np.mean(self.mean_length)),
            "sampler/env_steps": float(self.env_steps),
            "sampler/seconds": self.seconds,
            "sampler/steps_per_s": self.env_steps / max(self.seconds, 1e-12),
            "sampler/policy_seconds": self.policy_seconds,
            "sampler/env_seconds": self.env_seconds,
        }


def shard_slices(n: int, parts: int) -> list[slice]:
    """Split range(n) into min(parts, n) contiguous, near-equal, non-empty slices."""
    parts = max(1, min(parts, n))
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


class ProcessStepper:
    """Stepper interface over worker processes, each stepping a contiguous chunk of the envs."""

    START_TIMEOUT = 120.0

    def __init__(self, family: TaskFamily, num_envs: int, num_workers: int):
        try:
            family_bytes = pickle.dumps(family)
        except Exception as exc:
            raise ConfigError(
                f"backend='process' needs a picklable task family ({family!r} is not: {exc}); "
                "define it in an importable module or use backend='vector'") from None
        self.slices = shard_slices(num_envs, num_workers)
        self.procs: list[subprocess.Popen] = []
        self.conns: list[Connection] = []
        # Workers are fresh interpreters (`python -m bomrl.envs.worker FD`), not multiprocessing
        # children: nothing is forked from a process that may hold JAX's threads, and the user's
        # __main__ module is never re-imported (no `if __name__ == "__main__"` guard needed).
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        try:
            for _ in self.slices:
                parent, child = socket.socketpair()
                try:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "bomrl.envs.worker", str(child.fileno())],
                        pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL)
                finally:
                    child.close()
                self.procs.append(proc)
                self.conns.append(Connection(parent.detach()))
            for i, sl in enumerate(self.slices):
                self._send(i, ("init", (list(sys.path), family_bytes, sl.stop - sl.start)))
            for i in range(len(self.procs)):
                self._recv(i, timeout=self.START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def _send(self, i: int, msg) -> None:
        try:
            self.conns[i].send(msg)
        except (BrokenPipeError, ConnectionError, OSError):
            raise BomrlError(f"sampler worker {i} (pid {self.procs[i].pid}) is gone "
                             f"(exit code {self.procs[i].poll()})") from None

    def _recv(self, i: int, timeout: float | None = None):
        conn, proc = self.conns[i], self.procs[i]
        start = time.monotonic()
        while not conn.poll(0.2):
            if proc.poll() is not None:
                if conn.poll(0):  # it may have replied just before exiting
                    break
                raise BomrlError(f"sampler worker {i} (pid {proc.pid}) died with exit code {proc.returncode}")
            if timeout is not None and time.monotonic() - start > timeout:
                raise BomrlError(f"sampler worker {i} (pid {proc.pid}) did not answer within {timeout:.0f} s")
        try:
            status, payload = conn.recv()
        except (EOFError, OSError):  # the worker is gone: wait a moment for its exit code
            try:
                code = proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                code = None
            raise BomrlError(f"sampler worker {i} (pid {proc.pid}) died with exit code {code}") from None
        if status == "error":
            last = payload.strip().splitlines()[-1] if payload.strip() else "unknown error"
            raise BomrlError(f"sampler worker {i} failed: {last}")
        return payload

    def _call(self, cmd: str, per_worker_args):
        for i, args in enumerate(per_worker_args):
            self._send(i, (cmd, args))
        return [self._recv(i) for i in range(len(self.procs))]

    def reset(self, tasks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return np.concatenate(self._call("reset", [(tasks[s], seeds[s]) for s in self.slices]))

    def step(self, actions: np.ndarray, active: np.ndarray):
        outs = self._call("step", [(actions[s], active[s]) for s in self.slices])
        return tuple(np.concatenate(parts) for parts in zip(*outs))

    def close(self) -> None:
        """Ask every worker to exit, wait up to 5 s, then terminate/kill the stragglers."""
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except Exception:
                pass
        deadline = time.monotonic() + 5.0
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=2.0)
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []


def first_float_dtype(params) -> np.dtype:
    """The dtype observations are cast to before the policy call: that of the parameters."""
    for leaf in jax.tree_util.tree_leaves(params):
        dt = np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype))
        if np.issubdtype(dt, np.floating):
            return dt
    return np.dtype(np.float32)


def make_act_fn(policy, shard: tuple[int, int, int] | None = None):
    """jit(params [T, ...], obs [T, E, obs_dim], key, t) -> actions [T, E, ...].

    shard = (lo, hi, T_total): the T = hi - lo tasks are tasks lo..hi-1 of a batch of T_total and
    use that batch's per-task keys, so a sharded rollout draws exactly the unsharded noise."""
    def act(params, obs, key, t):
        if shard is None:
            keys = jax.random.split(jax.random.fold_in(key, t), obs.shape[0])
        else:
            keys = jax.random.split(jax.random.fold_in(key, t), shard[2])[shard[0]:shard[1]]

        def one_task(p, o, k):
            return policy.sample(policy.apply(p, o), k)

        return jax.vmap(one_task)(params, obs, keys)

    return jax.jit(act)


def _make_recurrent_act_fn(policy):
    """jit(params [T, ...], h [T, n, hidden], obs [T, n, obs_dim], prev_act, prev_rew [T, n],
    first (bool scalar), alive [T, n], key, j) -> (h', actions [T, n, ...]); h' = h where not alive.
    The noise of step j of the trial is split(fold_in(key, j), T) (as in bomrl.envs.jax_rollout)."""
    def act(params, h, obs, prev_act, prev_rew, first, alive, key, j):
        keys = jax.random.split(jax.random.fold_in(key, j), obs.shape[0])

        def one_task(p, hh, o, pa, pr, live, k):
            x = policy.features(o, pa, pr, jnp.broadcast_to(first, live.shape))
            h_new, dist = policy.step(p, hh, x)
            return jnp.where(live[..., None], h_new, hh), policy.sample(dist, k)

        return jax.vmap(one_task)(params, h, obs, prev_act, prev_rew, alive, keys)

    return jax.jit(act)


def rollout_recurrent(stepper, act_fn, policy, params, tasks: np.ndarray, seeds: np.ndarray, key,
                      episodes: int, horizon: int, spaces: tuple, dtype,
                      action_scale: float = 10.0, stats_out: dict | None = None,
                      episode_stats: dict | None = None) -> tuple[np.ndarray, ...]:
    """`rollout` for a recurrent policy (trials of K = policy.episodes_per_trial episodes; module
    docstring). All n·E envs are reset first; episode slot k of every trial is stepped during the
    k-th block of H steps, the others are inactive. Same outputs as `rollout`."""

    obs_dim, act_dim, low, high, discrete = spaces
    T, E, H, K = tasks.shape[0], episodes, horizon, policy.episodes_per_trial
    nt, N = E // K, tasks.shape[0] * episodes
    obs_dtype = first_float_dtype(params)
    act_shape = () if discrete else (act_dim,)
    obs_buf = np.zeros((T, nt, K, H, obs_dim), dtype)
    act_buf = np.zeros((T, nt, K, H, *act_shape), np.int64 if discrete else dtype)
    rew_buf = np.zeros((T, nt, K, H), np.float64)
    mask = np.zeros((T, nt, K, H), np.float64)
    acc = EpisodeStats(episode_stats or {}, N)   # env i = (task, trial, slot k) row-major = (task, episode)
    t_env = time.perf_counter()
    obs0 = stepper.reset(np.repeat(tasks, E, axis=0), seeds).reshape(T, nt, K, obs_dim)
    env_seconds, policy_seconds = time.perf_counter() - t_env, 0.0
    h = policy.initial_state((T, nt)).astype(obs_dtype)
    prev_act = np.zeros((T, nt), np.int32) if discrete else np.zeros((T, nt, act_dim), obs_dtype)
    prev_rew = np.zeros((T, nt), obs_dtype)
    for k in range(K):
        obs, alive = obs0[:, :, k].copy(), np.ones((T, nt), bool)
        for t in range(H):
            obs_buf[:, :, k, t] = obs * alive[..., None]
            t0 = time.perf_counter()
            h, act = act_fn(params, h, jnp.asarray(obs, obs_dtype), jnp.asarray(prev_act), jnp.asarray(prev_rew),
                            np.bool_(t == 0), jnp.asarray(alive), key, np.int32(k * H + t))
            act = np.asarray(act)
            t1 = time.perf_counter()
            full = np.zeros((T, nt, K, *act_shape), act.dtype)
            full[:, :, k] = act
            active = np.zeros((T, nt, K), bool)
            active[:, :, k] = alive
            full = full.reshape(N, *act_shape)
            env_act = full if discrete else scale_action(full, low, high, action_scale)
            out = stepper.step(env_act, active.reshape(N))
            next_obs, rew, term = out[:3]
            acc.add(out, active.reshape(N))
            policy_seconds += t1 - t0
            env_seconds += time.perf_counter() - t1
            next_obs = np.asarray(next_obs).reshape(T, nt, K, obs_dim)[:, :, k]
            rew = np.asarray(rew, np.float64).reshape(T, nt, K)[:, :, k]
            term = np.asarray(term, bool).reshape(T, nt, K)[:, :, k]
            sel = alive if discrete else alive[..., None]
            act_buf[:, :, k, t] = np.where(sel, act, 0)
            rew_buf[:, :, k, t] = np.where(alive, rew, 0.0)
            mask[:, :, k, t] = alive
            prev_act = np.where(sel, act, prev_act).astype(prev_act.dtype)
            prev_rew = np.where(alive, rew, prev_rew).astype(obs_dtype)
            obs = np.where(alive[..., None], next_obs, obs)
            alive = alive & ~term
            if not alive.any():
                break
    shape = lambda x: x.reshape(T, E, H, *x.shape[4:])  # noqa: E731
    if stats_out is not None:
        stats_out.update(acc.result((T, E)))
    return shape(obs_buf), shape(act_buf), shape(rew_buf), shape(mask), policy_seconds, env_seconds


class EpisodeStats:
    """Aggregates a stepper's per-step info statistics ([N, K], the optional fourth output of
    `step`) into per-episode values [N, K]: "max", "sum" or "last" over the episode's valid steps."""

    def __init__(self, stats: dict, num_envs: int):
        self.names, self.how = tuple(stats), tuple(stats.values())
        self.values = np.zeros((num_envs, len(self.names)))
        self.seen = np.zeros(num_envs, bool)

    def add(self, out: tuple, active: np.ndarray) -> None:
        if not self.names:
            return
        if len(out) < 4:
            raise BomrlError(f"the stepper returned no episode statistics ({', '.join(self.names)}) although the "
                             "family declares them (a custom make_stepper must return them as a 4th output)")
        step = np.asarray(out[3], np.float64).reshape(len(self.values), len(self.names))
        for j, how in enumerate(self.how):
            cur, new = self.values[:, j], step[:, j]
            if how == "max":
                upd = np.where(self.seen, np.maximum(cur, new), new)
            elif how == "sum":
                upd = cur + new
            else:
                upd = new
            self.values[:, j] = np.where(active, upd, cur)
        self.seen |= active

    def result(self, shape: tuple) -> dict:
        """{name: [*shape]} (shape = (T, E))."""
        return {n: self.values[:, j].reshape(shape).copy() for j, n in enumerate(self.names)}


def rollout(stepper, act_fn, params, tasks: np.ndarray, seeds: np.ndarray, key, episodes: int,
            horizon: int, spaces: tuple, dtype, action_scale: float = 10.0,
            stats_out: dict | None = None, episode_stats: dict | None = None) -> tuple[np.ndarray, ...]:
    """E episodes of H steps in each of n tasks on `stepper` (n*E envs, env i = task i // E).

    params: pytree with leading axis [n]; tasks [n, task_dim]; seeds [n*E]; spaces as returned by
    TaskFamily.spaces(); action_scale: the family's (policy actions in [−s, s] are mapped onto the
    env bounds, `families.scale_action`). Returns obs [n, E, H, obs_dim], act [n, E, H, (act_dim)], rew [n, E, H]
    (float64), mask [n, E, H] (float64), policy_seconds, env_seconds. With `episode_stats` (the
    family's), `stats_out` receives {name: [n, E]} per-episode statistics (`EpisodeStats`).
    """
    obs_dim, act_dim, low, high, discrete = spaces
    T, E, H = tasks.shape[0], episodes, horizon
    N = T * E
    obs_dtype = first_float_dtype(params)
    act_shape = () if discrete else (act_dim,)
    obs_buf = np.zeros((T, E, H, obs_dim), dtype)
    act_buf = np.zeros((T, E, H, *act_shape), np.int64 if discrete else dtype)
    rew_buf = np.zeros((T, E, H), np.float64)
    mask = np.zeros((T, E, H), np.float64)
    alive = np.ones(N, bool)

    env_tasks = np.repeat(tasks, E, axis=0)  # env i = (task i // E, episode i % E)
    acc = EpisodeStats(episode_stats or {}, N)
    t_env = time.perf_counter()
    obs = stepper.reset(env_tasks, seeds)
    env_seconds = time.perf_counter() - t_env
    policy_seconds = 0.0

    for t in range(H):
        obs_buf[:, :, t] = obs.reshape(T, E, -1) * alive.reshape(T, E, 1)
        t0 = time.perf_counter()
        act = np.asarray(act_fn(params, np.asarray(obs, obs_dtype).reshape(T, E, -1), key, np.int32(t)))
        t1 = time.perf_counter()
        act = act.reshape(N, *act_shape)
        env_act = act if discrete else scale_action(act, low, high, action_scale)
        out = stepper.step(env_act, alive)
        obs, rew, term = out[:3]
        acc.add(out, alive)
        policy_seconds += t1 - t0
        env_seconds += time.perf_counter() - t1
        a_view = act_buf[:, :, t].reshape(N, *act_shape)
        a_view[alive] = act[alive]
        mask[:, :, t] = alive.reshape(T, E)
        rew_buf[:, :, t] = np.where(alive, rew, 0.0).reshape(T, E)
        alive = alive & ~np.asarray(term, bool)
        if not alive.any():
            break
    if stats_out is not None:
        stats_out.update(acc.result((T, E)))
    return obs_buf, act_buf, rew_buf, mask, policy_seconds, env_seconds


def family_label(family) -> str:
    """The name a user knows a family by: the one it was registered (and asked for) under."""
    return getattr(family, "registered_name", None) or family.name


class NonFiniteError(BomrlError):
    """A task family returned a NaN or infinite observation or reward."""


def check_finite(obs, rew, mask, family_name: str, tasks) -> None:
    """Raise NonFiniteError naming the family, task, episode and step of the first NaN/inf
    observation or reward among the valid steps. obs [T, E, H, D], rew and mask [T, E, H]."""
    valid = np.asarray(mask) > 0
    bad_rew = valid & ~np.isfinite(rew)
    bad_obs = valid & ~np.isfinite(obs).all(axis=-1) if np.issubdtype(np.asarray(obs).dtype, np.floating) \
        else np.zeros_like(valid)
    if not (bad_rew.any() or bad_obs.any()):
        return
    bad = bad_rew | bad_obs
    t, e, h = (int(i) for i in np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 2])])   # earliest step
    what = "observation" if bad_obs[t, e, h] else "reward"
    value = rew[t, e, h] if what == "reward" else obs[t, e, h][~np.isfinite(obs[t, e, h])][0]
    raise NonFiniteError(f"task family {family_name!r} returned a non-finite {what} ({value}) at step {h} of "
                         f"episode {e} of task {t} (task parameters {np.asarray(tasks)[t].tolist()}): "
                         "fix the environment or its reward (sampling stopped)")


def assemble(obs, act, rew, mask, dtype, t_start: float, policy_seconds: float,
             env_seconds: float, stats: dict | None = None) -> tuple[Batch, SampleStats]:
    """Batch and SampleStats from rollout arrays [T, E, H, ...] (rew and mask float64); stats:
    the family's per-episode statistics {name: [T, E]} (none: None)."""
    returns = rew.sum(-1)
    lengths = mask.sum(-1).astype(np.int64)
    batch = Batch(obs=obs, act=act, rew=rew.astype(dtype), mask=mask.astype(dtype),
                  returns=returns, lengths=lengths, stats=stats or None)
    stats = SampleStats(mean_return=returns.mean(1), env_steps=int(lengths.sum()),
                        seconds=time.perf_counter() - t_start, policy_seconds=policy_seconds,
                        env_seconds=env_seconds, mean_length=lengths.mean(1))
    return batch, stats


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
        self.iteration = 0
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

    def reset_seeds(self, iteration: int) -> np.ndarray:
        """Reset seed of every (task, episode) env in call number `iteration`, [T*E] (row-major)."""
        return np.random.SeedSequence([self.seed, int(iteration)]).generate_state(self.num_envs, np.uint32)

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
                fn = _make_recurrent_act_fn(policy)
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

    def sample(self, policy, params, tasks, key) -> tuple[Batch, SampleStats]:
        """Roll out E episodes of H steps in each of the T tasks. Shapes in the module docstring."""
        t_start = time.perf_counter()
        tasks = self._check_inputs(policy, params, tasks)
        seeds = self.reset_seeds(self.iteration)
        self.iteration += 1
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


__all__ = ["first_float_dtype", "make_act_fn", "ProcessStepper", "SampleStats", "Sampler", "assemble", "rollout",
           "rollout_recurrent", "shard_slices"]
