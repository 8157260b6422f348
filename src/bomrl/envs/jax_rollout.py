"""JAX-native rollouts: the whole T × E × H rollout of a family with pure-JAX dynamics as ONE jitted
`lax.scan` over time steps (policy inference, action sampling, action scaling, env steps, masks),
vmapped over tasks and episodes. No Python loop per step, no host round trip per step.

A family opts in by returning a `JaxEnv` from `TaskFamily.jax_env()` (nav2d does); the sampler's
"vector" backend then uses `make_scan_rollout` instead of a stepper, with the same Batch layout and
the same random streams as the stepper path: the action noise of step t of task i is
`split(fold_in(key, t), T)[i]` (feed-forward policies), so a family with both a JAX env and a numpy
stepper gives identical batches on either (tested for nav2d in float64). The env dynamics run in
the dtype of the policy parameters (float32 unless x64 is enabled).

Recurrent policies (`bomrl.core.recurrent`, RL²): the E episodes of a task form E / K trials of K
consecutive episodes (episode e = trial · K + k). The scan runs K · H steps over the trials in
parallel; at step j = k · H + t the trial's env is the (trial, k) slot, freshly reset at t = 0, and
the policy state is carried over from episode k − 1 (reset only at j = 0). The noise of step j is
`split(fold_in(key, j), T)`. The stepper path (`sampler.rollout_recurrent`) does the same with a
Python loop.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from bomrl.core.recurrent import is_recurrent
from bomrl.envs.families import map_action


class JaxEnv(NamedTuple):
    """Pure-JAX dynamics of ONE environment (the rollout vmaps them over tasks and episodes).

    reset(task [task_dim], seed uint32 scalar) -> (state pytree, obs [obs_dim])
    step(state, task, env_action [act_dim] or int) -> (state, obs [obs_dim], reward, terminated bool)

    `env_action` is already clipped and mapped onto the env bounds (`scale_action_jax`)."""

    reset: Callable[[jax.Array, jax.Array], tuple[Any, jax.Array]]
    step: Callable[[Any, jax.Array, jax.Array], tuple[Any, jax.Array, jax.Array, jax.Array]]


def scale_action_jax(act, low, high, scale: float):
    """`bomrl.envs.families.scale_action` in jnp (the same `map_action` formula; low/high static)."""
    return map_action(act, low, high, scale, jnp)


def _where(cond, a, b):
    """Elementwise select over pytrees; cond [...] broadcasts over the trailing axes of a, b."""
    def sel(x, y):
        c = cond.reshape(cond.shape + (1,) * (x.ndim - cond.ndim))
        return jnp.where(c, x, y)

    return jax.tree.map(sel, a, b)


def _dtype_of(params):
    for leaf in jax.tree_util.tree_leaves(params):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.dtype
    return jnp.float32


def make_scan_rollout(policy, env: JaxEnv, num_tasks: int, episodes: int, horizon: int, spaces: tuple,
                      action_scale: float):
    """jit(params [T, ...], tasks [T, task_dim], seeds [T·E] uint32, key) -> (obs [T, E, H, obs_dim],
    act [T, E, H(, A)], rew [T, E, H], mask [T, E, H]), obs/act/rew/mask zero after termination."""
    obs_dim, act_dim, low, high, discrete = spaces
    T, E, H = num_tasks, episodes, horizon
    to_env = (lambda a: a) if discrete else (lambda a: scale_action_jax(a, low, high, action_scale))  # noqa: E731
    vv = lambda f: jax.vmap(jax.vmap(f))  # noqa: E731  over [T, slots]

    def reset_all(params, tasks, seeds):
        dt = _dtype_of(params)
        tasks_te = jnp.broadcast_to(jnp.asarray(tasks, dt)[:, None], (T, E, tasks.shape[-1]))
        state, obs = vv(env.reset)(tasks_te, seeds.reshape(T, E))
        return tasks_te, state, obs.astype(dt)

    def env_step(state, tasks_s, act, alive, obs):
        new_state, new_obs, rew, term = vv(env.step)(state, tasks_s, to_env(act))
        state = _where(alive, new_state, state)
        obs = jnp.where(alive[..., None], new_obs.astype(obs.dtype), obs)
        return state, obs, jnp.where(alive, rew, 0.0), alive & ~term

    if not is_recurrent(policy):
        def feedforward(params, tasks, seeds, key):
            tasks_te, state, obs = reset_all(params, tasks, seeds)

            def body(carry, t):
                state, obs, alive = carry
                keys = jax.random.split(jax.random.fold_in(key, t), T)
                act = jax.vmap(lambda p, o, k: policy.sample(policy.apply(p, o), k))(params, obs, keys)
                out_obs = obs * alive[..., None]
                state, obs, rew, new_alive = env_step(state, tasks_te, act, alive, obs)
                out_act = _where(alive, act, jnp.zeros_like(act))
                return (state, obs, new_alive), (out_obs, out_act, rew, alive.astype(rew.dtype))

            alive0 = jnp.ones((T, E), bool)
            _, outs = jax.lax.scan(body, (state, obs, alive0), jnp.arange(H, dtype=jnp.int32))
            return tuple(jnp.moveaxis(x, 0, 2) for x in outs)      # [H, T, E, ...] -> [T, E, H, ...]

        return jax.jit(feedforward)

    K = policy.episodes_per_trial
    nt = E // K

    def recurrent(params, tasks, seeds, key):
        tasks_te, state0, obs0 = reset_all(params, tasks, seeds)
        split = lambda x: x.reshape(T, nt, K, *x.shape[2:])  # noqa: E731
        state0, obs0 = jax.tree.map(split, state0), split(obs0)
        tasks_s = split(tasks_te)[:, :, 0]
        dt = obs0.dtype
        h0 = policy.initial_state((T, nt))
        pa0 = jnp.zeros((T, nt), jnp.int32) if discrete else jnp.zeros((T, nt, act_dim), dt)
        pick = lambda tree, k: jax.tree.map(lambda s: jax.lax.dynamic_index_in_dim(s, k, 2, False), tree)  # noqa: E731

        def body(carry, j):
            state, obs, alive, h, pa, pr = carry
            k, t = j // H, j % H
            first = t == 0
            state = _where(jnp.broadcast_to(first, (T, nt)), pick(state0, k), state)
            obs = jnp.where(first, pick(obs0, k), obs)
            alive = alive | first
            keys = jax.random.split(jax.random.fold_in(key, j), T)

            def one_task(p, hh, o, a_prev, r_prev, live, kk):
                x = policy.features(o, a_prev, r_prev, jnp.broadcast_to(first, live.shape))
                h_new, dist = policy.step(p, hh, x)
                return jnp.where(live[..., None], h_new, hh), policy.sample(dist, kk)

            h, act = jax.vmap(one_task)(params, h, obs, pa, pr, alive, keys)
            out_obs = obs * alive[..., None]
            state, obs, rew, new_alive = env_step(state, tasks_s, act, alive, obs)
            out_act = _where(alive, act, jnp.zeros_like(act))
            pa = _where(alive, act, pa)
            pr = jnp.where(alive, rew, pr)
            return (state, obs, new_alive, h, pa, pr), (out_obs, out_act, rew, alive.astype(rew.dtype))

        carry0 = (pick(state0, 0), obs0[:, :, 0], jnp.ones((T, nt), bool), h0, pa0, jnp.zeros((T, nt), dt))
        _, outs = jax.lax.scan(body, carry0, jnp.arange(K * H, dtype=jnp.int32))

        def to_layout(x):  # [K·H, T, nt, ...] -> [T, nt·K, H, ...]
            x = x.reshape(K, H, T, nt, *x.shape[3:])
            x = jnp.moveaxis(x, (2, 3), (0, 1))                        # [T, nt, K, H, ...]
            return x.reshape(T, E, H, *x.shape[4:])

        return tuple(to_layout(x) for x in outs)

    return jax.jit(recurrent)
