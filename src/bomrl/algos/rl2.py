"""RL² (Duan et al. 2016, "Fast Reinforcement Learning via Slow Reinforcement Learning"; the
lecture's "meta-learning the task embedding"): a recurrent policy whose hidden state, carried across
the K episodes of a trial on one task, is the task embedding; it is meta-trained by PPO on whole
trials and "adapts" with no gradient step.

- Policy: `bomrl.core.recurrent.gru_policy` (GRU, 64 units); input (o_t, a_{t−1}, r_{t−1}, d_t);
  state reset only between trials. Built by `RL2.make_policy` from this config.
- Data: one sampler call per meta-iteration with the meta-parameters on every task. The sampler
  runs E / K trials of K episodes per task (batch layout [T, E, H], episode e = trial · K + k).
- Advantages over the concatenated trial ([T, E/K, K·H]): reward-to-go and GAE(γ, λ) run across
  episode boundaries, skipping the masked padding after early terminations
  (`core.advantages.gae_over_gaps`), with the linear feature baseline refitted per task on the
  trials' returns (features of the raw observation and the step index within the trial, as the
  shared pipeline) and per-task advantage standardisation.
- PPO: `epochs` passes over the trials, each shuffled into minibatches of `minibatch_trials`
  whole trials (the remainder of a shuffle is left out of that epoch); Adam (optax) on the clipped
  surrogate `ppo_clip_loss` minus an optional entropy bonus.
- Meta-test (`adapt`): "adaptation step k" = the (k+1)-th episode of a trial of steps + 1 episodes
  on a new task (the hidden state has seen k episodes of that task; no gradient step).

Metrics: charts/pre_return (first episode of the trials), charts/post_return (last episode),
charts/return_episode{k} (k = 1..K), losses/policy, losses/entropy, ppo/clip_fraction,
ppo/approx_kl, ppo/grad_norm, time/*.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bomrl.algos.base import AlgoState, MetaAlgorithm, block_tree, PhaseTimer, broadcast_tasks
from bomrl.algos.data import AdvantageSettings, masked_mean
from bomrl.core.advantages import fit_linear_baseline, gae_over_gaps, normalize_advantages
from bomrl.core.recurrent import gru_policy, is_recurrent, trial_view
from bomrl.errors import ConfigError, check
from bomrl.limits import MAX_COUNT, MAX_HIDDEN, MAX_ROUNDS, check_int, check_interval, check_nonnegative, check_positive


@dataclass(frozen=True)
class RL2Config(AdvantageSettings):
    """RL² (PPO on trials) hyper-parameters: the fields below and the advantage settings
    (`AdvantageSettings`; the discount runs over the concatenated trial, garage and ProMP: 0.99);
    defaults and their sources in docs/BASELINES.md."""

    episodes_per_trial: int = 2
    """K: episodes per trial, over which the GRU state is carried (ProMP's rl2 config: 2; garage's
    rl2_ppo_halfcheetah: 4). The run's --episodes must be a multiple of K"""
    hidden_size: int = 64
    """GRU units (garage RL2PPO: GRU 64; ProMP's rl2 branch: LSTM 64)"""
    learning_rate: float = 1e-3
    """Adam step size (ProMP's rl2 config and garage's optimizer default: 1e-3)"""
    clip_eps: float = 0.2
    """PPO clip range ε (garage RL2PPO: 0.2)"""
    epochs: int = 10
    """PPO passes over the batch per meta-iteration (garage: 10; ProMP's rl2: 5)"""
    minibatch_trials: int = 32
    """whole trials per PPO minibatch (garage: batch_size 32)"""
    gae_lambda: float = 0.95
    """GAE λ (garage RL2PPO: 0.95; ProMP's rl2: 1.0)"""
    entropy_coef: float = 0.0
    """weight of the mean policy entropy subtracted from the loss (0: none; garage adds 0.02 ×
    entropy to the rewards instead, `entropy_method='max'`)"""

    def __post_init__(self):
        check_int("episodes_per_trial", self.episodes_per_trial, 1, MAX_COUNT)
        check_int("hidden_size", self.hidden_size, 1, MAX_HIDDEN)
        check_int("epochs", self.epochs, 1, MAX_ROUNDS)
        check_int("minibatch_trials", self.minibatch_trials, 1, MAX_COUNT)
        check_positive("learning_rate", self.learning_rate)
        check_interval("clip_eps", self.clip_eps, 0, 1, open_lo=True, open_hi=True)
        check_nonnegative("entropy_coef", self.entropy_coef)
        super().__post_init__()


class TrialData(NamedTuple):
    """Trials of all tasks flattened: leading axis B = T · E/K trials, then L = K · H steps.

    obs [B, L, obs_dim]; act [B, L, act_dim] (or [B, L] int); rew, mask, ret, adv [B, L]."""

    obs: jax.Array
    act: jax.Array
    rew: jax.Array
    mask: jax.Array
    ret: jax.Array
    adv: jax.Array


# ---- pure functions ------------------------------------------------------------------------------

def ppo_clip_loss(logp, logp_old, adv, mask, clip_eps: float):
    """PPO's clipped surrogate, to minimise: −mean over valid steps of min(ρ A, clip(ρ, 1 ± ε) A),
    ρ = exp(logp − logp_old). All inputs [...] of one shape. Returns (loss, metrics)."""
    ratio = jnp.exp(logp - logp_old)
    surr = jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv)
    loss = -masked_mean(surr, mask)
    metrics = {"ppo/clip_fraction": masked_mean((jnp.abs(ratio - 1.0) > clip_eps).astype(adv.dtype), mask),
               "ppo/approx_kl": masked_mean((ratio - 1.0) - (logp - logp_old), mask)}
    return loss, metrics


def trial_data(arrays, episodes_per_trial: int, discount: float, gae_lambda: float, normalize: bool) -> TrialData:
    """(obs, act, rew, mask) [T, E, H, ...] -> TrialData over concatenated trials (module docstring)."""
    obs, act, rew, mask = (trial_view(x, episodes_per_trial) for x in arrays)   # [T, nt, L, ...]
    _, ret = gae_over_gaps(rew, jnp.zeros_like(rew), mask, discount, 1.0)
    values = jax.vmap(fit_linear_baseline)(obs.astype(ret.dtype), ret, mask)
    adv, _ = gae_over_gaps(rew, values, mask, discount, gae_lambda)
    if normalize:
        adv = jax.vmap(normalize_advantages)(adv, mask)
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    return TrialData(*(flat(x) for x in (obs, act, rew, mask, ret, adv)))


def rl2_loss(policy, horizon: int, clip_eps: float, entropy_coef: float, params, data: TrialData, logp_old):
    """PPO loss of trials data [B, L] under params (the GRU re-run over each whole trial).
    Returns (loss, metrics)."""
    dists = policy.sequence(params, data.obs, data.act, data.rew, data.mask, horizon)
    logp = policy.log_prob(dists, data.act)
    loss, metrics = ppo_clip_loss(logp, logp_old, data.adv, data.mask, clip_eps)
    ent = masked_mean(policy.entropy(dists), data.mask)
    metrics = {**metrics, "losses/policy": loss, "losses/entropy": ent}
    return loss - entropy_coef * ent, metrics


# ---- the algorithm ------------------------------------------------------------------------------

class RL2(MetaAlgorithm):
    """RL² with PPO; see the module docstring."""

    name = "rl2"
    label = "RL²"   # display name (plots, tables)
    Config = RL2Config

    @classmethod
    def make_policy(cls, train_cfg, sampler, algo_cfg=None):
        """The GRU policy of a `bomrl train` run (hook called by workflow.train.make_policy)."""
        from bomrl.core.policies import policy_dtype

        c = algo_cfg if algo_cfg is not None else RL2Config()
        return gru_policy(sampler.obs_dim, sampler.act_dim, hidden=c.hidden_size,
                          episodes_per_trial=c.episodes_per_trial, discrete=sampler.discrete,
                          init_std=train_cfg.init_std, dtype=policy_dtype(getattr(train_cfg, "precision", "float32")))

    def __init__(self, config: RL2Config, policy):
        c = config
        if not is_recurrent(policy):   # e.g. an MLP policy: keep its sizes and dtype, use a GRU
            leaf = jax.tree.leaves(jax.eval_shape(policy.init, jax.random.PRNGKey(0)))[0]
            policy = gru_policy(policy.obs_dim, policy.act_dim, hidden=c.hidden_size,
                                episodes_per_trial=c.episodes_per_trial, discrete=policy.discrete,
                                dtype=leaf.dtype)
        elif (policy.hidden_size, policy.episodes_per_trial) != (c.hidden_size, c.episodes_per_trial):
            raise ConfigError(f"the recurrent policy (hidden {policy.hidden_size}, {policy.episodes_per_trial} "
                              f"episodes per trial) does not match the RL² config (hidden_size="
                              f"{c.hidden_size}, episodes_per_trial={c.episodes_per_trial})")
        super().__init__(config, policy)
        self.optimizer = optax.adam(c.learning_rate)
        self._trials_jit = jax.jit(lambda arrays: trial_data(arrays, c.episodes_per_trial, c.discount,
                                                             c.gae_lambda, c.normalize_advantages))
        self._update_jit = jax.jit(self._update, static_argnums=(4,))

    @property
    def adapt_rounds(self) -> int:
        return 0

    def _init_opt_state(self, params):
        return self.optimizer.init(params)

    # ---- PPO update -----------------------------------------------------------------------------
    def _update(self, params, opt_state, data: TrialData, key, horizon: int):
        c, policy = self.config, self.policy
        loss_fn = lambda p, d, lp: rl2_loss(policy, horizon, c.clip_eps, c.entropy_coef, p, d, lp)  # noqa: E731
        dists = policy.sequence(params, data.obs, data.act, data.rew, data.mask, horizon)
        logp_old = jax.lax.stop_gradient(policy.log_prob(dists, data.act))
        B = data.mask.shape[0]
        mb = min(c.minibatch_trials, B)
        n_mb = B // mb

        def minibatch(carry, idx):
            p, s = carry
            sub = jax.tree.map(lambda x: x[idx], data)
            (_, m), g = jax.value_and_grad(loss_fn, has_aux=True)(p, sub, logp_old[idx])
            updates, s = self.optimizer.update(g, s, p)
            return (optax.apply_updates(p, updates), s), {**m, "ppo/grad_norm": optax.tree.norm(g)}

        def epoch(carry, k):
            perm = jax.random.permutation(k, B)[: n_mb * mb].reshape(n_mb, mb)
            return jax.lax.scan(minibatch, carry, perm)

        (params, opt_state), ms = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, c.epochs))
        metrics = {k: jnp.mean(v) for k, v in ms.items()}
        metrics["ppo/approx_kl_last_epoch"] = jnp.mean(ms["ppo/approx_kl"][-1])
        metrics["ppo/minibatches"] = jnp.asarray(float(n_mb * c.epochs))
        return params, opt_state, metrics

    # ---- interface ------------------------------------------------------------------------------
    def _sample_trials(self, sampler, policy, params, tasks, key, timer: PhaseTimer, call: int):
        t0 = time.perf_counter()
        num_tasks = len(tasks) if not hasattr(tasks, "shape") else tasks.shape[0]
        batch = sampler.sample(policy, broadcast_tasks(params, num_tasks), tasks, key, call=call)
        batch = batch[0] if isinstance(batch, tuple) else batch
        timer.add("sampling", time.perf_counter() - t0)
        return batch

    def step(self, state: AlgoState, sampler, tasks, key: jax.Array, *, call: int):
        """One meta-iteration: one batch of trials (sampler call index `call`), one PPO update.
        Returns (new_state, metrics)."""
        c = self.config
        timer = PhaseTimer()
        k_sample, k_update = jax.random.split(key)
        batch = self._sample_trials(sampler, self.policy, state.params, tasks, k_sample, timer, call)
        t0 = time.perf_counter()
        dtype = jax.tree.leaves(state.params)[0].dtype
        act = jnp.asarray(batch.act, jnp.int32 if self.policy.discrete else dtype)
        arrays = (jnp.asarray(batch.obs, dtype), act, jnp.asarray(batch.rew, dtype), jnp.asarray(batch.mask, dtype))
        data = block_tree(self._trials_jit(arrays))
        timer.add("process", time.perf_counter() - t0)
        t0 = time.perf_counter()
        horizon = int(np.shape(batch.mask)[2])
        params, opt_state, m = block_tree(self._update_jit(state.params, state.opt_state, data, k_update, horizon))
        timer.add("update", time.perf_counter() - t0)
        T, E = np.shape(batch.returns)
        K = c.episodes_per_trial
        per_episode = np.asarray(batch.returns, np.float64).reshape(T, E // K, K).mean(axis=(0, 1))   # [K]
        metrics = {k: float(v) for k, v in m.items()}
        metrics.update({
            "charts/pre_return": float(per_episode[0]),
            "charts/post_return": float(per_episode[-1]),
            "charts/env_steps": float(np.asarray(batch.lengths).sum()),
            "time/sampling_s": timer.totals.get("sampling", 0.0),
            "time/process_s": timer.totals.get("process", 0.0),
            "time/adapt_s": 0.0,
            "time/update_s": timer.totals.get("update", 0.0),
        })
        for k in range(K):
            metrics[f"charts/return_episode{k + 1}"] = float(per_episode[k])
        for name, v in (batch.stats or {}).items():   # episode statistics: first / last episode of the trials
            per_ep = np.asarray(v, np.float64).reshape(T, E // K, K).mean(axis=(0, 1))
            metrics[f"charts/pre_{name}"], metrics[f"charts/post_{name}"] = float(per_ep[0]), float(per_ep[-1])
        new_state = AlgoState(params, opt_state, state.iteration + 1, state.extra)
        return new_state, metrics

    def adapt(self, state: AlgoState, sampler, tasks, key: jax.Array, steps: int = 3, *, call: int):
        """Meta-test: trials of steps + 1 episodes on each task (one sampler call, index `call`), no
        gradient step; "after k adaptations" = the (k+1)-th episode of the trials. Returns `returns` [steps + 1] (mean over
        tasks), `task_returns` [steps + 1, T] (mean over the task's E / (steps + 1) trials),
        `env_steps`."""
        check(isinstance(steps, int) and steps >= 0, "steps", steps, "an integer >= 0")
        K = steps + 1
        E = sampler.episodes
        check(E % K == 0, "adapt steps", steps,
              f"such that steps + 1 divides the episodes per task ({E}): RL²'s meta-test runs trials "
              f"of steps + 1 episodes")
        policy = self.policy._replace(episodes_per_trial=K)
        batch = self._sample_trials(sampler, policy, state.params, tasks, key, PhaseTimer(), call)
        T = np.shape(batch.returns)[0]
        per_task = np.asarray(batch.returns, np.float64).reshape(T, E // K, K).mean(axis=1).T    # [K, T]
        out = {"returns": per_task.mean(axis=1), "task_returns": per_task,
               "env_steps": int(np.asarray(batch.lengths).sum())}
        if batch.stats:
            out["task_stats"] = {name: np.asarray(v, np.float64).reshape(T, E // K, K).mean(axis=1).T
                                 for name, v in batch.stats.items()}
        return out
