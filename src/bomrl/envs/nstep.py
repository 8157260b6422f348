"""n-step rollouts from N persistent parallel environments of ONE task (online actor-critic).

    runner = NStepRunner(family, num_envs=16, horizon=500)
    runner.reset(task [task_dim], seeds [N])            # start N episodes
    seg = runner.rollout(act_fn, params, key, n=20)     # next n steps of every env
    runner.close()

Unlike `bomrl.envs.sampler` (T tasks × E whole episodes, every environment reset per call), the
environments here persist across calls: an environment whose episode ends (termination, or the
time limit `horizon`) is reset at once with the next seed of its own stream and keeps going.

Each environment is its own `family.make_stepper(1)` (the family's reward, termination and action
convention hold; the stepper interface resets all its environments at once, so one stepper per
environment is what allows resetting one). Policy actions are mapped onto the env's bounds with
`families.scale_action` (the sampler's action-scale convention); `seg.act` keeps the policy's units.

Sampling only: the math (λ-return, losses) is in bomrl.core.lambda_return and bomrl.algos.mgrl.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bomrl.envs.families import TaskFamily, scale_action


class Segment(NamedTuple):
    """n steps of N environments (time first).

    obs [n, N, obs_dim]; act [n, N, act_dim] (continuous) or [n, N] int; rew [n, N];
    next_obs [n, N, obs_dim] (the true next state, before an automatic reset); terminated [n, N]
    (the episode ended in a terminal state: no bootstrapping); cut [n, N] (the episode ended at this
    step, terminated or truncated by the time limit); episode_returns, episode_lengths: the
    undiscounted returns and lengths of the episodes that ended in this segment (1-D, float64)."""

    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    cut: np.ndarray
    episode_returns: np.ndarray
    episode_lengths: np.ndarray


class NStepRunner:
    """N persistent environments of one task of `family`; see the module docstring."""

    def __init__(self, family: TaskFamily, num_envs: int, horizon: int, action_scale: float | None = None):
        self.family = family
        self.action_scale = family.action_scale if action_scale is None else float(action_scale)
        self.num_envs, self.horizon = int(num_envs), int(horizon)
        self.obs_dim, self.act_dim, self.low, self.high, self.discrete = family.spaces()
        self.steppers = [family.make_stepper(1, 1) for _ in range(self.num_envs)]
        self.obs = np.zeros((self.num_envs, self.obs_dim))
        self.task = np.zeros((1, family.task_dim))
        self.ep_len = np.zeros(self.num_envs, np.int64)
        self.ep_ret = np.zeros(self.num_envs)
        self._seed_streams: list[np.random.Generator] = []

    def reset(self, task: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Start every environment on `task` [task_dim]; env i's episode reset seeds come from the
        stream default_rng(seeds[i]) (first reset included). Returns obs [N, obs_dim]."""
        self.task = np.asarray(task, np.float64).reshape(1, self.family.task_dim)
        self._seed_streams = [np.random.default_rng(int(s)) for s in seeds]
        for i in range(self.num_envs):
            self._reset_one(i)
        return self.obs.copy()

    def _reset_one(self, i: int) -> None:
        seed = self._seed_streams[i].integers(0, 2**31 - 1, size=1)
        self.obs[i] = np.asarray(self.steppers[i].reset(self.task, seed), np.float64).reshape(-1)
        self.ep_len[i] = 0
        self.ep_ret[i] = 0.0

    def rollout(self, act_fn, params, key, n: int) -> Segment:
        """The next n steps of every environment. act_fn(params, obs [N, obs_dim], key, t) ->
        policy actions [N, ...] (t = step index in this segment, for the noise)."""
        N = self.num_envs
        act_shape = () if self.discrete else (self.act_dim,)
        obs_buf = np.zeros((n, N, self.obs_dim))
        next_buf = np.zeros((n, N, self.obs_dim))
        act_buf = np.zeros((n, N, *act_shape), np.int64 if self.discrete else np.float64)
        rew = np.zeros((n, N))
        term = np.zeros((n, N))
        cut = np.zeros((n, N))
        ep_returns, ep_lengths = [], []
        active = np.ones(1, bool)
        for t in range(n):
            obs_buf[t] = self.obs
            act = np.asarray(act_fn(params, self.obs, key, np.int32(t)))
            act_buf[t] = act
            env_act = act if self.discrete else scale_action(act, self.low, self.high, self.action_scale)
            for i, stepper in enumerate(self.steppers):
                o, r, d = stepper.step(env_act[i:i + 1], active)
                next_buf[t, i] = np.asarray(o, np.float64).reshape(-1)
                rew[t, i] = float(np.asarray(r).reshape(-1)[0])
                term[t, i] = float(bool(np.asarray(d).reshape(-1)[0]))
            self.ep_len += 1
            self.ep_ret += rew[t]
            cut[t] = np.maximum(term[t], (self.ep_len >= self.horizon).astype(np.float64))
            self.obs = next_buf[t].copy()
            for i in np.flatnonzero(cut[t]):
                ep_returns.append(self.ep_ret[i])
                ep_lengths.append(self.ep_len[i])
                self._reset_one(int(i))
        return Segment(obs_buf, act_buf, rew, next_buf, term, cut,
                       np.asarray(ep_returns, np.float64), np.asarray(ep_lengths, np.float64))

    def close(self) -> None:
        for s in self.steppers:
            s.close()
        self.steppers = []
