"""The interface every meta-RL algorithm implements, and the one meta-iteration loop they share.

    algo = get_algorithm("maml-trpo")(config, policy)
    state = algo.init(key)                                     # plain pytree (checkpointable)
    state, metrics = algo.step(state, sampler, tasks, key, call=i * 1000)   # one meta-iteration
    out = algo.adapt(state, sampler, tasks, key, steps=3, call=10**9)       # meta-test: out["returns"] [steps + 1]

`call` is the index of the first sampler call; the calls of one step or adapt take call, call + 1,
... (`sampler_calls` of them per step). Like the key, it makes the numbers a function of the
arguments: the index fixes the environments' reset seeds (bomrl.envs.sampler).

One meta-iteration = pre-update sampling with φ (plus k-1 more adaptation rounds, each on FRESH
data sampled with the current adapted policies), adaptation, post-update sampling with the adapted
policies, meta-update. Every algorithm draws exactly the same environment steps per iteration for
the same (tasks, episodes, horizon, inner steps), so comparisons use the same data budget.

Env stepping lives in the sampler; everything else is pure jitted JAX over the task axis.
Metrics are a flat dict of floats with namespaced keys (`charts/`, `losses/`, `inner/`, `trpo/`,
`cg/`, `time/`).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bomrl.algos.data import Data, masked_mean, process_batch
from bomrl.core.policies import Policy, mean_action as _mean_action
from bomrl.errors import check


MEAN_ACTION_CALLS = 2**30   # offset of the mean-action rounds' call indices (reset seeds) from the stochastic rounds'


class AlgoState(NamedTuple):
    """Everything an algorithm carries between meta-iterations (a plain pytree of arrays).

    params:    meta-parameters φ (the policy pytree)
    opt_state: outer optimizer state (optax state for ProMP; () for TRPO-based methods)
    iteration: number of completed meta-iterations (int32 scalar)
    extra:     algorithm-specific scalars, e.g. ProMP's inner-KL coefficient (dict of arrays)
    """

    params: Any
    opt_state: Any
    iteration: jax.Array
    extra: dict


def broadcast_tasks(params, num_tasks: int):
    """Copy a parameter pytree along a new leading task axis: leaves [...] -> [T, ...]."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_tasks, *x.shape)), params)


def block_tree(tree):
    """Wait for every array of a pytree (so that a phase's wall time includes its computation)."""
    return jax.tree.map(lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree)


def task_means(batch) -> dict:
    """The batch's episode statistics as per-task means over episodes {name: [T]} ({}: none)."""
    return {k: np.asarray(v, np.float64).mean(axis=1) for k, v in (getattr(batch, "stats", None) or {}).items()}


def stats_metrics(pre: dict, post: dict) -> dict:
    """charts/pre_NAME and charts/post_NAME (means over tasks) of per-task statistics {name: [T]}."""
    return {**{f"charts/pre_{k}": float(np.mean(v)) for k, v in pre.items()},
            **{f"charts/post_{k}": float(np.mean(v)) for k, v in post.items()}}


def stack_rounds(rounds: list) -> dict:
    """Per-round per-task statistics [{name: [T]}] -> {"task_stats": {name: [rounds, T]}} ({} if none)."""
    if not rounds or not rounds[0]:
        return {}
    return {"task_stats": {k: np.stack([r[k] for r in rounds]) for k in rounds[0]}}


class PhaseTimer:
    """Accumulates wall time per named phase (sampling vs everything else)."""

    def __init__(self):
        self.totals: dict[str, float] = {}

    def add(self, name: str, seconds: float):
        self.totals[name] = self.totals.get(name, 0.0) + seconds


class MetaAlgorithm:
    """Base class: the shared meta-iteration loop. Subclasses implement the pure math:

    - `_adapt_batched(params_T, data) -> params_T`   one adaptation on data sampled with params_T
    - `_meta_update(state, inner_datas, post, adapted_t, rng) -> (state, metrics)`

    and may override `_adapt_with_metrics(params_t, data) -> (params_T, metrics)` to report
    diagnostics of the adaptation (averaged over tasks in the iteration's metrics).

    `inner_datas` is a tuple of k `Data` (one per adaptation round, each sampled with the policy
    of that round), `post` the `Data` sampled with the final adapted policies `adapted_t` [T, ...].
    """

    name = "base"
    label: str | None = None   # display name in plots and tables (default: the registered name)
    # settings that name a variant of the algorithm: shown after `label` in plots and tables, in
    # default run directory names and meta-test outputs (BO-MRL: its distance)
    VARIANT: tuple[str, ...] = ()

    @classmethod
    def variant_label(cls, settings) -> str:
        """The variant's short name from a mapping of settings (a saved algo_config or asdict of a
        config); "" when the algorithm has no VARIANT settings."""
        return " ".join(str(settings[n]) for n in cls.VARIANT if settings.get(n) is not None)

    def __init__(self, config, policy: Policy):
        self.config = config
        self.policy = policy
        self._jit_process = jax.jit(self._process)

    # ---- interface ---------------------------------------------------------------------------
    def init(self, key: jax.Array) -> AlgoState:
        params = self.policy.init(key)
        return AlgoState(params, self._init_opt_state(params), jnp.zeros((), jnp.int32),
                         self._init_extra())

    def step(self, state: AlgoState, sampler, tasks, key: jax.Array, *, call: int, post_sampler=None):
        """One meta-iteration. Returns (new_state, metrics). It makes `sampler_calls` sampler calls
        with the indices call, call + 1, ... (they fix the reset seeds: `Sampler.sample`).
        `post_sampler` (same tasks, other episode count) draws the post-update batch, with the
        index after the adaptation rounds'."""
        timer = PhaseTimer()
        num_tasks = len(tasks) if not hasattr(tasks, "shape") else tasks.shape[0]
        keys = jax.random.split(key, self.adapt_rounds + 2)
        params_t = broadcast_tasks(state.params, num_tasks)
        inner_datas, returns, env_steps, inner_metrics = [], [], 0, {}
        pre_stats, post_stats = {}, {}
        for j in range(self.adapt_rounds):
            data, ret, n = self._sample(sampler, params_t, tasks, keys[j], timer, call=call + j,
                                        stats_out=pre_stats if j == 0 else None)
            inner_datas.append(data)
            returns.append(ret)
            env_steps += n
            t0 = time.perf_counter()
            params_t, inner_metrics = block_tree(self._adapt_with_metrics(params_t, data))
            timer.add("adapt", time.perf_counter() - t0)
        post, post_ret, n = self._sample(sampler if post_sampler is None else post_sampler, params_t, tasks,
                                         keys[-2], timer, call=call + self.adapt_rounds, stats_out=post_stats)
        env_steps += n
        t0 = time.perf_counter()
        state, metrics = self._meta_update(state, tuple(inner_datas), post, params_t, keys[-1])
        if self.policy.update_stats is not None:   # running observation filter: this iteration's data
            state = state._replace(params=self._update_stats(state.params, (*inner_datas, post)))
        metrics = {k: float(jnp.mean(v)) for k, v in {**inner_metrics, **metrics}.items()}
        timer.add("update", time.perf_counter() - t0)
        metrics.update({
            "charts/pre_return": returns[0],
            "charts/post_return": post_ret,
            "charts/env_steps": float(env_steps),
            "time/sampling_s": timer.totals.get("sampling", 0.0),
            "time/process_s": timer.totals.get("process", 0.0),
            "time/adapt_s": timer.totals.get("adapt", 0.0),
            "time/update_s": timer.totals.get("update", 0.0),
        })
        for j, r in enumerate(returns[1:], start=1):
            metrics[f"charts/return_step{j}"] = r
        metrics.update(stats_metrics(pre_stats, post_stats))
        return state, metrics

    def adapt(self, state: AlgoState, sampler, tasks, key: jax.Array, steps: int = 3, *, call: int,
              eval_sampler=None, eval_call: int | None = None, mean_action: bool = False):
        """Meta-test: `steps` successive adaptations, each on FRESH data sampled with the current
        (adapted) policies; nothing is re-used across steps. Round j (0..steps) samples with the call
        index call + j. With `eval_sampler`, the final round (after `steps` adaptations) is sampled
        from it instead, with the index `eval_call` (e.g. fewer episodes that end at their first
        success: Meta-World's evaluation protocol).

        Returns a dict: `returns` [steps + 1] mean episode return after 0..steps adaptations,
        `task_returns` [steps + 1, T] per task, `env_steps` total steps drawn, `adapt_kl` [steps]
        the size of each adaptation: mean over tasks and the states it adapted on of
        KL(π_before(·|s) ‖ π_after(·|s)); for a family with episode statistics, `task_stats`
        {name: [steps + 1, T]} (e.g. the success rate of each task's episodes).

        With `mean_action`, every round also samples as many episodes acting with the policy's mode
        (`bomrl.core.policies.mean_action`; reset seeds of their own, so the stochastic rounds are
        those of a run without it): `task_returns_mean_action` [steps + 1, T].
        """
        check(isinstance(steps, int) and steps >= 0, "steps", steps, "an integer >= 0")
        if eval_sampler is not None:
            check(eval_call is not None, "eval_call", eval_call, "an integer >= 0 with eval_sampler")
        timer = PhaseTimer()
        num_tasks = len(tasks) if not hasattr(tasks, "shape") else tasks.shape[0]
        params_t = broadcast_tasks(state.params, num_tasks)
        keys = jax.random.split(key, steps + 1)
        means, per_task, env_steps, kls, rounds, modes = [], [], 0, [], [], []
        for j in range(steps + 1):
            rounds.append({})
            final_eval = eval_sampler is not None and j == steps
            source, c = (eval_sampler, eval_call) if final_eval else (sampler, call + j)
            data, ret, n = self._sample(source, params_t, tasks, keys[j], timer, call=c, per_task=True,
                                        stats_out=rounds[-1])
            means.append(float(np.mean(ret)))
            per_task.append(ret)
            env_steps += n
            if mean_action:   # the index after c, offset by MEAN_ACTION_CALLS
                _, ret_mode, n = self._sample(source, params_t, tasks, keys[j], timer, per_task=True,
                                              call=c + 1 + MEAN_ACTION_CALLS, policy=_mean_action(self.policy))
                modes.append(ret_mode)
                env_steps += n
            if j < steps:
                before, params_t = params_t, self._adapt_batched(params_t, data)
                kls.append(float(self._adaptation_kl(before, params_t, data)))
        out = {"returns": np.asarray(means), "task_returns": np.stack(per_task),
               "env_steps": env_steps, "adapt_kl": np.asarray(kls), **stack_rounds(rounds)}
        if mean_action:
            out["task_returns_mean_action"] = np.stack(modes)
        return out

    def _update_stats(self, params, datas):
        """The policy's running statistics advanced by every valid observation of `datas` (Data
        tuples [T, E, H, ...]), in order; the rest of params unchanged."""
        if not hasattr(self, "_stats_jit"):
            self._stats_jit = jax.jit(self.policy.update_stats)
        for d in datas:
            params = self._stats_jit(params, d.obs, d.mask)
        return params

    def _adaptation_kl(self, before_t, after_t, data: Data):
        """Mean over tasks of the masked mean KL(π_before(·|s) ‖ π_after(·|s)) on data's states."""
        if not hasattr(self, "_kl_jit"):
            policy = self.policy

            def kl(b, a, obs, mask):
                per = policy.kl(jax.vmap(policy.apply)(b, obs), jax.vmap(policy.apply)(a, obs))
                return jnp.mean(jax.vmap(masked_mean)(per, mask))

            self._kl_jit = jax.jit(kl)
        return self._kl_jit(before_t, after_t, data.obs, data.mask)

    # ---- hooks ------------------------------------------------------------------------------
    @property
    def adapt_rounds(self) -> int:
        """Sampling rounds of one training adaptation, each on data sampled with the policy of the
        round before: the config's `adapt_rounds` if it declares one (the MAML family's
        `InnerPGSettings`: its inner_steps, one policy-gradient step per round), else 1."""
        return getattr(self.config, "adapt_rounds", 1)

    @property
    def sampler_calls(self) -> int:
        """Sampler calls of one `step`: its adaptation rounds and the post-update round."""
        return self.adapt_rounds + 1

    def _init_opt_state(self, params):
        return ()

    def _init_extra(self) -> dict:
        return {}

    def _adapt_batched(self, params_t, data: Data):  # pragma: no cover - abstract
        raise NotImplementedError

    def _adapt_with_metrics(self, params_t, data: Data):
        return self._adapt_batched(params_t, data), {}

    def _meta_update(self, state, inner_datas, post, adapted_t, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- shared helpers --------------------------------------------------------------------
    def _process(self, batch_arrays) -> Data:
        c = self.config
        return process_batch(batch_arrays, discount=c.discount, gae_lambda=c.gae_lambda,
                             normalize=c.normalize_advantages,
                             estimator=getattr(c, "advantage_estimator", "gae"),
                             continuation=getattr(c, "continuation", 0))

    def _sample(self, sampler, params_t, tasks, key, timer: PhaseTimer, *, call: int, per_task: bool = False,
                stats_out: dict | None = None, policy=None):
        """Sample with per-task params and the call index `call`, turn the batch into `Data` (jax
        arrays + advantages).
        `stats_out` receives the family's episode statistics as per-task means {name: [T]};
        `policy` replaces the algorithm's policy for acting (e.g. its mean-action form)."""
        t0 = time.perf_counter()
        out = sampler.sample(self.policy if policy is None else policy, params_t, tasks, key, call=call)
        batch = out[0] if isinstance(out, tuple) else out
        if stats_out is not None:
            stats_out.update(task_means(batch))
        timer.add("sampling", time.perf_counter() - t0)
        t0 = time.perf_counter()
        dtype = jax.tree.leaves(params_t)[0].dtype
        act = jnp.asarray(batch.act, jnp.int32 if self.policy.discrete else dtype)
        arrays = (jnp.asarray(batch.obs, dtype), act,
                  jnp.asarray(batch.rew, dtype), jnp.asarray(batch.mask, dtype))
        data = block_tree(self._jit_process(arrays))
        timer.add("process", time.perf_counter() - t0)
        cont = getattr(self.config, "continuation", 0)
        if cont:   # the reported return is the data's: the continuation steps only extend Q
            h = np.shape(batch.rew)[-1] - cont
            episode_ret = (np.asarray(batch.rew, np.float64)[..., :h] * np.asarray(batch.mask)[..., :h]).sum(-1)
        else:
            episode_ret = np.asarray(batch.returns, np.float64)
        task_ret = episode_ret.mean(axis=1)   # [T]
        ret = task_ret if per_task else float(task_ret.mean())
        return data, ret, int(np.asarray(batch.lengths).sum())
