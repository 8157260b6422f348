"""MAESN (Gupta et al. 2018, "Meta-Reinforcement Learning of Structured Exploration Strategies"; the
lecture's third family): a latent-conditioned policy π_θ(a | s, z) whose per-task latent
distribution q_i = N(μ_i, diag σ_i²) is adapted by a policy-gradient step, and meta-trained so that
one such step makes the policy good on the task.

- Policy: `bomrl.core.latent_policy.latent_gaussian_mlp` (the tanh Gaussian MLP of --hidden on the
  input (s, z), z ∈ R^latent_dim). z = μ + σ ⊙ ε is drawn once per EPISODE and held fixed within it:
  the sampler gets per-task parameters {"theta": θ, "z": [E, latent_dim]} (row e = episode e).
- Meta-parameters (the AlgoState's params, all optimised by TRPO and checkpointed):
  θ, the training tasks' variational parameters ω_i = (μ_i, log σ_i) for a FIXED set of
  `num_train_tasks` tasks (rows [N, d]; μ_i ~ N(0, I), log σ_i = 0 at initialisation, as the
  released code) and the per-dimension inner step sizes α_μ, α_σ [d] (initialised to
  `inner_lr_init`; meta-learned unless `learn_inner_lr` is false).
- The fixed training set: the first `num_train_tasks` tasks of the family drawn from
  np.random.default_rng([sampler seed, TRAIN_TASK_STREAM]) (a stream that neither `bomrl train`'s
  per-iteration tasks [seed, i] nor meta-test's use). Each meta-iteration draws its meta-batch of
  T (= --tasks) of them by index without replacement from the iteration's key; the tasks that
  `bomrl train` passes to `step` are ignored (only their number T is used).
- Inner step (the paper's eq. (4), the released code's latent-only update, `param_deg` 0), per task:

      Ĵ_lat(ω) = mean_e [ log q_ω(z_e) · Â_e ],      ω' = ω + α ∘ ∇_ω Ĵ_lat(ω)

  with z_e the episode latents that were sampled (constants: the score-function estimator of
  ∇_ω E_{z~q_ω}[R]) and Â_e the advantage at the episode's first step, standardised over the task's
  E episodes (the released code: `path["advantages"][0:1]`, `center_adv`). With `adapt_policy`
  also θ' = θ + policy_inner_lr · ∇_θ mean[log π_θ(a|s,z) · A] (eq. (5), optional; off as released).
- Outer objective (the paper's eq. (3), maximised by TRPO with the KL of the ADAPTED policies on
  the post-update data as the trust region, as MAML-TRPO):

      f(P) = mean_i mean_post [ π_{θ'}(a | s, z'(P)) / π_old(a | s, z') · A_post ] − β mean_i KL(q_{ω_i} ‖ N(0, I))

  where the post-update latents are re-parametrised with their recorded noise, z'_e = μ'_i + σ'_i ⊙ ε'_e,
  so ∇f reaches μ_i, σ_i and α through the inner step (second order), and the KL term is that of the
  PRE-update q_i (the released code's `kl_regularization`).
- Meta-test (`adapt`) on NEW tasks: q starts at the prior N(0, I); each of k rounds samples fresh
  episodes with z ~ q and takes the inner step with the learned α_μ, α_σ, scaled by
  test_lr_decay^max(0, j − 1) at round j (the released meta-test halves its step sizes after every
  update from the second on; 1.0 = constant).

Sparse rewards: train on a dense family (`--env nav2d`) and meta-test on its sparse variant
(`nav2d-sparse`); the families share their spaces, so a run's checkpoint applies to both
(scripts/reproduce_maesn.sh; docs/REPRODUCTION.md, "MAESN").

Metrics: charts/pre_return, charts/post_return, losses/surrogate, losses/kl_prior, losses/objective,
latent/* (step sizes, σ before and after the inner step, ‖Δμ‖), trpo/*, cg/*, time/*.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bomrl.algos.base import AlgoState, MetaAlgorithm, PhaseTimer, broadcast_tasks, stack_rounds, stats_metrics
from bomrl.algos.data import AdvantageSettings, Data, masked_mean
from bomrl.core.latent_policy import is_latent, kl_to_prior, latent_gaussian_mlp, latent_log_prob
from bomrl.core.trpo import TRPOSettings, trpo_step
from bomrl.errors import ConfigError, check
from bomrl.limits import check_int, check_interval, check_nonnegative, check_positive

TRAIN_TASK_STREAM = 0x3AE5_0001   # the fixed training tasks: default_rng([seed, TRAIN_TASK_STREAM])


@dataclass(frozen=True)
class MaesnConfig(TRPOSettings, AdvantageSettings):
    """MAESN hyper-parameters: the fields below, the TRPO meta-step (`TRPOSettings`: the released
    rllab `step_size` 0.01, 10 CG iterations, shrink 0.8) and the advantage pipeline
    (`AdvantageSettings`: rllab's γ 0.99, λ 1.0, `center_adv`; normalize_advantages also standardises
    the latent advantages over the task's episodes); sources in docs/BASELINES.md ("MAESN")."""

    latent_dim: int = 2
    """d, the size of the latent z (released code and its Ant policy: 2)"""
    num_train_tasks: int = 100
    """size of the fixed set of training tasks, each with its own (μ_i, log σ_i) (released: 100);
    must be >= --tasks (the meta-batch is drawn from it without replacement)"""
    inner_lr_init: float = 1.0
    """initial value of the per-dimension inner step sizes α_μ, α_σ (released sweep 0.5 / 1; its
    meta-trained Ant policy: 1)"""
    learn_inner_lr: bool = True
    """meta-learn α_μ, α_σ by the outer TRPO step (released: yes)"""
    adapt_policy: bool = False
    """also take the inner policy-gradient step on θ (the paper's optional eq. (5)); the released
    code adapts only the latents (`param_deg` 0)"""
    policy_inner_lr: float = 0.1
    """step size of the optional inner step on θ (fixed; MAML's α 0.1)"""
    kl_weight: float = 0.1
    """β, weight of KL(q_i ‖ N(0, I)) in the outer objective (released sweep 0.1 / 0.5; its Ant
    policy: 0.1)"""
    test_lr_decay: float = 0.5
    """meta-test: round j's step sizes are α · test_lr_decay^max(0, j − 1) (released meta-test:
    halved after every update from the second on, 0.5; 1.0 = constant)"""
    def __post_init__(self):
        check_int("latent_dim", self.latent_dim, 1, 1024)
        check_int("num_train_tasks", self.num_train_tasks, 1, 10**6)
        check_positive("inner_lr_init", self.inner_lr_init)
        check_positive("policy_inner_lr", self.policy_inner_lr)
        check_nonnegative("kl_weight", self.kl_weight)
        check_interval("test_lr_decay", self.test_lr_decay, 0, 1, open_lo=True)
        super().__post_init__()


class PreBatch(NamedTuple):
    """What the inner step needs of the pre-update round, per task (leading axis T):
    z [T, E, d] the sampled episode latents, adv_lat [T, E] their advantages, data the batch."""

    z: jax.Array
    adv_lat: jax.Array
    data: Data


# ---- pure functions (one task unless vmapped) ----------------------------------------------------

def latent_advantages(data: Data, standardize: bool = True, eps: float = 1e-8):
    """Per-episode advantage of one task's latent: the advantage at step 0, [E, H] -> [E],
    standardised over the E episodes (rllab's center_adv)."""
    a0 = data.adv[:, 0]
    if not standardize:
        return a0
    return (a0 - jnp.mean(a0)) / (jnp.std(a0) + eps)


def latent_objective(mu, log_sigma, z, adv_lat):
    """Ĵ_lat(ω) = mean_e[log q_ω(z_e) · Â_e]: mu, log_sigma [d], z [E, d] (constants), adv_lat [E]
    -> scalar. Its gradient is the score-function estimate of ∇_ω E_{z~q_ω}[R] (eq. (4))."""
    return jnp.mean(latent_log_prob(z, mu, log_sigma) * adv_lat)


def inner_latent_step(mu, log_sigma, step_mu, step_log_sigma, z, adv_lat):
    """ω' = ω + α ∘ ∇_ω Ĵ_lat(ω) (elementwise step sizes [d]); differentiable in all inputs.
    Returns (mu' [d], log_sigma' [d])."""
    g_mu, g_ls = jax.grad(latent_objective, argnums=(0, 1))(mu, log_sigma, z, adv_lat)
    return mu + step_mu * g_mu, log_sigma + step_log_sigma * g_ls


def policy_objective(policy, theta, z, data: Data):
    """mean over valid steps of log π_θ(a | s, z_e) · A for one task (z [E, d] constants)."""
    logp = policy.log_prob(policy.apply({"theta": theta, "z": z}, data.obs), data.act)
    return masked_mean(logp * data.adv, data.mask)


def policy_pg_step(policy, alpha, theta, z, data: Data):
    """θ' = θ + α ∇_θ mean[log π_θ(a|s,z) A] (the optional eq. (5) step), differentiable in θ."""
    g = jax.grad(policy_objective, argnums=1)(policy, theta, z, data)
    return jax.tree.map(lambda p, gi: p + alpha * gi, theta, g)


def adapt_tasks(policy, cfg: MaesnConfig, params, idx, pre: PreBatch, lr_scale=1.0):
    """The inner step for the T tasks of a meta-batch, as a function of the meta-parameters.

    params: the AlgoState params {theta, mu [N, d], log_sigma [N, d], step_mu [d], step_log_sigma [d]}
    (with `learn_inner_lr` false the step sizes are constants); idx [T] rows of the batch's tasks.
    Returns (theta' [T, ...] or None when θ is not adapted, mu' [T, d], log_sigma' [T, d])."""
    step_mu, step_ls = params["step_mu"] * lr_scale, params["step_log_sigma"] * lr_scale
    if not cfg.learn_inner_lr:
        step_mu, step_ls = jax.lax.stop_gradient(step_mu), jax.lax.stop_gradient(step_ls)
    mu, ls = params["mu"][idx], params["log_sigma"][idx]
    mu1, ls1 = jax.vmap(inner_latent_step, in_axes=(0, 0, None, None, 0, 0))(
        mu, ls, step_mu, step_ls, pre.z, pre.adv_lat)
    theta1 = None
    if cfg.adapt_policy:
        theta1 = jax.vmap(lambda z, d: policy_pg_step(policy, cfg.policy_inner_lr, params["theta"], z, d))(
            pre.z, pre.data)
    return theta1, mu1, ls1


def post_latents(mu1, log_sigma1, eps1):
    """Re-parametrised post-update latents z' = μ' + σ' ⊙ ε': mu1, log_sigma1 [T, d], eps1 [T, E, d]."""
    return mu1[:, None] + jnp.exp(log_sigma1)[:, None] * eps1


def post_dists(policy, cfg, params, idx, pre: PreBatch, eps1, obs):
    """Distributions of the adapted policies on post-update observations obs [T, E, H, obs_dim]."""
    theta1, mu1, ls1 = adapt_tasks(policy, cfg, params, idx, pre)
    z1 = post_latents(mu1, ls1, eps1)
    if theta1 is None:
        return jax.vmap(lambda z, o: policy.apply({"theta": params["theta"], "z": z}, o))(z1, obs)
    return jax.vmap(lambda th, z, o: policy.apply({"theta": th, "z": z}, o))(theta1, z1, obs)


def maesn_objective(policy, cfg, params, idx, pre: PreBatch, eps1, post: Data, post_logp_old):
    """f(P) of the module docstring (to maximise). post_logp_old [T, E, H] = log-probabilities of the
    post-update actions under the policies that sampled them. Returns (f, metrics)."""
    dist = post_dists(policy, cfg, params, idx, pre, eps1, post.obs)
    ratio = jnp.exp(policy.log_prob(dist, post.act) - post_logp_old)
    surr = jnp.mean(jax.vmap(masked_mean)(ratio * post.adv, post.mask))
    kl_prior = jnp.mean(kl_to_prior(params["mu"][idx], params["log_sigma"][idx]))
    f = surr - cfg.kl_weight * kl_prior
    return f, {"losses/surrogate": surr, "losses/kl_prior": kl_prior, "losses/objective": f}


def mean_kl(policy, old_dist, dist, mask):
    """Mean over tasks of the masked mean over (episode, step) of KL(old ‖ new): [T, E, H] -> scalar."""
    return jnp.mean(jax.vmap(masked_mean)(policy.kl(old_dist, dist), mask))


def gauss_newton_fvp(policy, dist_fn, params, mask):
    """v ↦ F v, F = ∇²_P mean_kl(old, dist_fn(P)) at P = params, in Gauss-Newton form Jᵀ M J (exact
    there: the KL and its gradient vanish at P_old, so the curvature of dist_fn drops out; as
    `maml_trpo.adapted_fisher_vp`). dist_fn is linearised once."""
    old, jvp = jax.linearize(dist_fn, params)
    old = jax.lax.stop_gradient(old)
    vjp = jax.linear_transpose(jvp, params)
    grad_d = jax.grad(lambda d: mean_kl(policy, old, d, mask))

    def fvp(v):
        return vjp(jax.jvp(grad_d, (old,), (jvp(v),))[1])[0]

    return fvp


# ---- the algorithm ------------------------------------------------------------------------------

class Maesn(MetaAlgorithm):
    """MAESN with a TRPO meta-step; see the module docstring."""

    name = "maesn"
    label = "MAESN"   # display name (plots, tables)
    Config = MaesnConfig

    @classmethod
    def make_policy(cls, train_cfg, sampler, algo_cfg=None):
        """The latent-conditioned policy of a `bomrl train` run (hook of workflow.train.make_policy)."""
        from bomrl.core.policies import policy_dtype

        c = algo_cfg if algo_cfg is not None else MaesnConfig()
        if sampler.discrete:
            raise ConfigError(f"--algo maesn is invalid for {sampler.family.name}: MAESN's policy is Gaussian "
                              "(continuous actions only)")
        return latent_gaussian_mlp(sampler.obs_dim, sampler.act_dim, c.latent_dim, hidden=tuple(train_cfg.hidden),
                                   init_std=train_cfg.init_std, dtype=policy_dtype(getattr(train_cfg, "precision", "float32")))

    def __init__(self, config: MaesnConfig, policy):
        c = config
        if not is_latent(policy):   # e.g. a Gaussian MLP: keep its sizes, hidden layers and dtype
            if policy.discrete:
                raise ConfigError("MAESN needs a continuous-action policy (its policy is Gaussian)")
            theta = jax.eval_shape(policy.init, jax.random.PRNGKey(0))
            hidden = tuple(int(layer["w"].shape[1]) for layer in theta["mlp"][:-1])
            policy = latent_gaussian_mlp(policy.obs_dim, policy.act_dim, c.latent_dim, hidden=hidden,
                                         dtype=theta["log_std"].dtype)
        elif policy.latent_dim != c.latent_dim:
            raise ConfigError(f"the latent policy (latent_dim {policy.latent_dim}) does not match the MAESN "
                              f"config (latent_dim={c.latent_dim})")
        super().__init__(config, policy)
        self._train_task_cache: dict = {}
        self._adapt_jit = jax.jit(self._adapt_fn)
        self._update_jit = jax.jit(self._update)

    @property
    def adapt_rounds(self) -> int:
        return 1

    # ---- state ------------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> AlgoState:
        c = self.config
        k_theta, k_mu = jax.random.split(key)
        theta = self.policy.init(k_theta)
        dt = theta["log_std"].dtype
        d = c.latent_dim
        params = {"theta": theta,
                  "mu": jax.random.normal(k_mu, (c.num_train_tasks, d), dt),      # μ_i ~ N(0, I)
                  "log_sigma": jnp.zeros((c.num_train_tasks, d), dt),            # σ_i = 1
                  "step_mu": jnp.full((d,), c.inner_lr_init, dt),
                  "step_log_sigma": jnp.full((d,), c.inner_lr_init, dt)}
        return AlgoState(params, (), jnp.zeros((), jnp.int32), {})

    def train_tasks(self, sampler) -> np.ndarray:
        """The fixed training tasks [num_train_tasks, task_dim] of this sampler's seed."""
        seed = int(getattr(sampler, "seed", 0))
        key = (sampler.family.name, seed)
        if key not in self._train_task_cache:
            rng = np.random.default_rng([seed, TRAIN_TASK_STREAM])
            tasks = np.asarray(sampler.family.sample_tasks(rng, self.config.num_train_tasks), np.float64)
            self._train_task_cache[key] = tasks.reshape(self.config.num_train_tasks, -1)
        return self._train_task_cache[key]

    # ---- jitted pieces ------------------------------------------------------------------------------
    def _pre_batch(self, z, data: Data) -> PreBatch:
        adv_lat = jax.vmap(lambda d: latent_advantages(d, self.config.normalize_advantages))(data)
        return PreBatch(z, adv_lat, data)

    def _adapt_fn(self, params, idx, z, data: Data, lr_scale=1.0):
        """Inner step of a meta-batch: (theta' [T, ...] (θ broadcast if not adapted), mu', log_sigma', metrics)."""
        pre = self._pre_batch(z, data)
        theta1, mu1, ls1 = adapt_tasks(self.policy, self.config, params, idx, pre, lr_scale)
        if theta1 is None:
            theta1 = broadcast_tasks(params["theta"], idx.shape[0])
        mu0, ls0 = params["mu"][idx], params["log_sigma"][idx]
        metrics = {"latent/sigma_pre": jnp.mean(jnp.exp(ls0)), "latent/sigma_post": jnp.mean(jnp.exp(ls1)),
                   "latent/mu_norm_pre": jnp.mean(jnp.linalg.norm(mu0, axis=-1)),
                   "latent/mu_step_norm": jnp.mean(jnp.linalg.norm(mu1 - mu0, axis=-1)),
                   "latent/step_mu": jnp.mean(params["step_mu"]),
                   "latent/step_log_sigma": jnp.mean(params["step_log_sigma"])}
        return theta1, mu1, ls1, metrics

    def _update(self, params, idx, z0, pre_data: Data, eps1, post: Data):
        c, policy = self.config, self.policy
        pre = self._pre_batch(z0, pre_data)
        dist_fn = lambda p: post_dists(policy, c, p, idx, pre, eps1, post.obs)  # noqa: E731
        old_dist = jax.lax.stop_gradient(dist_fn(params))
        logp_old = jax.lax.stop_gradient(policy.log_prob(old_dist, post.act))
        obj_fn = lambda p: maesn_objective(policy, c, p, idx, pre, eps1, post, logp_old)[0]  # noqa: E731
        kl_fn = lambda p: mean_kl(policy, old_dist, dist_fn(p), post.mask)  # noqa: E731
        fvp = gauss_newton_fvp(policy, dist_fn, params, post.mask)
        new_params, metrics = trpo_step(obj_fn, kl_fn, params, fvp_fn=fvp, **c.trpo_kwargs)
        _, obj_metrics = maesn_objective(policy, c, params, idx, pre, eps1, post, logp_old)
        return new_params, {**obj_metrics, **metrics}

    # ---- interface ------------------------------------------------------------------------------
    def _draw(self, key, mu, log_sigma, episodes: int):
        """Episode latents of every task: z = μ + σ ⊙ ε, ε [T, E, d] ~ N(0, I), one row per episode."""
        eps = jax.random.normal(key, (mu.shape[0], episodes, mu.shape[1]), mu.dtype)
        return post_latents(mu, log_sigma, eps), eps

    def step(self, state: AlgoState, sampler, tasks, key: jax.Array, *, call: int):
        """One meta-iteration (module docstring), sampler call indices call (pre-update) and
        call + 1 (post-update). `tasks` only gives the meta-batch size T."""
        c = self.config
        timer = PhaseTimer()
        T = len(tasks) if not hasattr(tasks, "shape") else tasks.shape[0]
        check(T <= c.num_train_tasks, "--tasks", T,
              f"<= num_train_tasks={c.num_train_tasks} (MAESN draws its meta-batch from its fixed training "
              "tasks without replacement; raise it with --set num_train_tasks=N)")
        k_idx, k_eps0, k_s0, k_eps1, k_s1 = jax.random.split(key, 5)
        idx = jax.random.choice(k_idx, c.num_train_tasks, (T,), replace=False)
        batch_tasks = self.train_tasks(sampler)[np.asarray(idx)]
        P = state.params
        E = sampler.episodes
        z0, _ = self._draw(k_eps0, P["mu"][idx], P["log_sigma"][idx], E)
        theta_t = broadcast_tasks(P["theta"], T)
        pre_stats, post_stats = {}, {}
        pre, pre_ret, n0 = self._sample(sampler, {"theta": theta_t, "z": z0}, batch_tasks, k_s0, timer,
                                        call=call, stats_out=pre_stats)
        t0 = time.perf_counter()
        theta1, mu1, ls1, inner_m = jax.block_until_ready(self._adapt_jit(P, idx, z0, pre))
        timer.add("adapt", time.perf_counter() - t0)
        z1, eps1 = self._draw(k_eps1, mu1, ls1, E)
        post, post_ret, n1 = self._sample(sampler, {"theta": theta1, "z": z1}, batch_tasks, k_s1, timer,
                                          call=call + 1, stats_out=post_stats)
        t0 = time.perf_counter()
        new_params, m = jax.block_until_ready(self._update_jit(P, idx, z0, pre, eps1, post))
        timer.add("update", time.perf_counter() - t0)
        metrics = {k: float(v) for k, v in {**inner_m, **m}.items()}
        metrics.update({
            "charts/pre_return": pre_ret,
            "charts/post_return": post_ret,
            "charts/env_steps": float(n0 + n1),
            "time/sampling_s": timer.totals.get("sampling", 0.0),
            "time/process_s": timer.totals.get("process", 0.0),
            "time/adapt_s": timer.totals.get("adapt", 0.0),
            "time/update_s": timer.totals.get("update", 0.0),
        })
        metrics.update(stats_metrics(pre_stats, post_stats))
        return AlgoState(new_params, state.opt_state, state.iteration + 1, state.extra), metrics

    def adapt(self, state: AlgoState, sampler, tasks, key: jax.Array, steps: int = 3, *, call: int):
        """Meta-test on new tasks: q starts at the prior N(0, I); `steps` inner steps with the learned
        step sizes (× test_lr_decay^max(0, j − 1)), each on FRESH episodes sampled with z ~ q (round j:
        sampler call index call + j).
        Returns `returns` [steps + 1], `task_returns` [steps + 1, T], `env_steps`."""
        check(isinstance(steps, int) and steps >= 0, "steps", steps, "an integer >= 0")
        c = self.config
        timer = PhaseTimer()
        T = len(tasks) if not hasattr(tasks, "shape") else tasks.shape[0]
        P = state.params
        dt = P["mu"].dtype
        # the test tasks as rows 0..T-1 of a prior-initialised latent table (θ, step sizes: learned)
        test = {**P, "mu": jnp.zeros((T, c.latent_dim), dt), "log_sigma": jnp.zeros((T, c.latent_dim), dt)}
        idx = jnp.arange(T)
        theta_t = broadcast_tasks(P["theta"], T)
        keys = jax.random.split(key, steps + 1)
        means, per_task, env_steps, rounds = [], [], 0, []
        for j in range(steps + 1):
            k_eps, k_s = jax.random.split(keys[j])
            z, _ = self._draw(k_eps, test["mu"], test["log_sigma"], sampler.episodes)
            rounds.append({})
            data, ret, n = self._sample(sampler, {"theta": theta_t, "z": z}, tasks, k_s, timer, call=call + j,
                                        per_task=True, stats_out=rounds[-1])
            means.append(float(np.mean(ret)))
            per_task.append(ret)
            env_steps += n
            if j < steps:
                scale = c.test_lr_decay ** max(0, j - 1)
                # adapt_tasks adapts θ from params["theta"]: carry the current θ' of each round
                theta_t, mu1, ls1, _ = self._test_round(test, theta_t, idx, z, data, scale)
                test = {**test, "mu": mu1, "log_sigma": ls1}
        return {"returns": np.asarray(means), "task_returns": np.stack(per_task), "env_steps": env_steps,
                **stack_rounds(rounds)}

    def _test_round(self, test, theta_t, idx, z, data, scale):
        """One meta-test adaptation: the latent step (and with `adapt_policy` the θ step from the
        current θ' of every task). Returns (theta_t', mu', log_sigma', metrics)."""
        if not self.config.adapt_policy:
            _, mu1, ls1, m = self._adapt_jit(test, idx, z, data, scale)
            return theta_t, mu1, ls1, m
        if not hasattr(self, "_test_jit"):
            import dataclasses

            latent_only = dataclasses.replace(self.config, adapt_policy=False)

            def fn(test, theta_t, idx, z, data, scale):
                _, mu1, ls1 = adapt_tasks(self.policy, latent_only, test, idx, self._pre_batch(z, data), scale)
                th1 = jax.vmap(lambda th, zz, d: policy_pg_step(self.policy, self.config.policy_inner_lr, th, zz, d))(
                    theta_t, z, data)
                return th1, mu1, ls1, {}

            self._test_jit = jax.jit(fn)
        return self._test_jit(test, theta_t, idx, z, data, scale)
