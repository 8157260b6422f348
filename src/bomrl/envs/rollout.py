"""Rollouts of many task environments as one batch: pure functions over a stepper.

A stepper has `reset(tasks [N, task_dim], seeds [N]) -> obs [N, obs_dim]` and `step(actions [N, ...],
active [N]) -> (obs, rew [N], terminated [N][, infos])`: a family's vector env in this process, the
process backend's workers (`bomrl.envs.process_backend`), or the envs of one Ray actor
(`bomrl.envs.ray_sampler`). `rollout` / `rollout_recurrent` step it for E episodes of H steps with
one jitted policy call per step (`make_act_fn`), the action map (`bomrl.envs.families.scale_action`,
scale s) and the call's reset seeds given explicitly; `assemble` turns the arrays into a `Batch` and
`SampleStats`. The `Sampler` (`bomrl.envs.sampler`) and every backend import these; none imports the
Sampler.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bomrl.core.batch import Batch
from bomrl.envs.families import scale_action
from bomrl.errors import BomrlError

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


def make_recurrent_act_fn(policy):
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
