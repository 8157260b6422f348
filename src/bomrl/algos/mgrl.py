"""Meta-gradient RL (Xu, van Hasselt & Silver 2018, "Meta-Gradient Reinforcement Learning"): an
online actor-critic on ONE task whose return's discount γ and λ are learned, as the agent learns, by
differentiating a meta-objective on a later sample through the agent's update.

Learner (A2C-style, N persistent parallel environments, n-step segments; `bomrl.envs.nstep`):
θ = (policy π_θ, value v_θ) [the workflow's MLP policy; a tanh value MLP of its own]. On a segment
τ, with η = (γ, λ) = (sigmoid(η_γ), sigmoid(η_λ)) (paper §1.1, real meta-parameters through a
sigmoid), the λ-return G^λ_η (`bomrl.core.lambda_return`, eq. (2)-(3)) is the target of

    L(θ; τ, η) = −mean[(G_η − v_θ(s)) log π_θ(a|s)] + c_v · ½ mean[(G_η − v_θ(s))²] − c_H · mean[H(π_θ(·|s))]

(advantages and targets constant in θ: v_θ(s') inside G_η is stop-gradiented), and the update is
θ' = θ + f(τ, θ, η) = one step of the inner optimizer (Adam or SGD) on ∇_θ L, after clipping the
gradient's global norm (paper eq. (1)).

Meta-gradient (paper §1.2, eq. (4)-(7)): on the NEXT segment τ' (sampled with θ'),

    J'(τ', θ', η̄) = −mean[(G_η̄(τ') − v(s')) log π_θ'(a'|s')]        (η̄ = (γ', λ'), fixed)

and dJ'/dη = ∂J'/∂θ' · dθ'/dη with the advantage held constant (the paper's policy-gradient
meta-objective). dθ'/dη = ∂f(τ, θ, η)/∂η is computed exactly by forward-mode differentiation through
the whole inner step (λ-return, loss gradient, clipping and the optimizer's step including its moment
updates; the optimizer's previous state and θ held fixed). With `trace_decay` μ > 0 it is accumulated
as the paper's trace z' = μ z + ∂f/∂η (eq. (6), dropping the ∂f/∂θ term as the paper does); μ = 0 is
the exact derivative through one update. η is updated by Adam (meta_learning_rate).

Online schedule (one rollout per update, as in the paper): update k samples τ_k with θ_k, takes the
meta-step on τ_k with the stored z_k = dθ_k/dη, then the inner step θ_{k+1} = θ_k + f(τ_k, θ_k, η_new)
and stores z_{k+1}. Every segment is used once as τ' and once as τ.

The critic in J' (the known trap; `meta_critic`). "reference" (default): a separate value MLP ψ
trained by regression on the reference return G_η̄ with its own Adam, used only in J' (bootstrap and
baseline). The inner critic v_θ estimates the return under the inner γ; plugged into J' (γ' = 0.99)
it makes the reference advantage biased toward the inner horizon, and the meta-gradient toward
short-sighted γ (instadeepai/outer-value-function-meta-rl, /work/shared/REFERENCE.md). "inner": the
paper's choice, v_θ' in J' (no extra network).

Workflow integration. One `bomrl train` iteration = `updates_per_iteration` updates of
`rollout_len` steps in `num_envs` environments; the environments are reset at the start of each
iteration with seeds from (seed, sampler call counter), so that an iteration depends only on (seed,
iteration, state) and resumes are exact; all learner state (θ, optimizer states, η, the trace, ψ) is
in the checkpointed AlgoState. The single task: `task` (a value, e.g. the target velocity of
halfcheetah-vel), or "seed": the first task the run draws at iteration 0
(family.sample_tasks(default_rng([seed, 0]))[0]); the workflow's per-iteration tasks are not used.
The workflow's sampler (--tasks × --episodes whole episodes) is used only by `adapt` (meta-test):
there is no adaptation, so every "adaptation step" is a fresh evaluation of the same policy on the
task.

Metrics (per iteration): charts/pre_return = charts/post_return = mean return of the episodes that
ended in the iteration; charts/episodes, charts/episode_length; meta/gamma, meta/lambda (after the
iteration's last update), meta/gamma_mean, meta/lambda_mean, meta/grad_gamma, meta/grad_lambda
(dJ'/dη per logit, mean over updates); losses/policy, losses/value, losses/entropy, losses/meta (J'),
losses/ref_critic; inner/grad_norm; time/*.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bomrl.algos.base import AlgoState, MetaAlgorithm, block_tree, PhaseTimer, broadcast_tasks, stack_rounds, task_means
from bomrl.core.lambda_return import lambda_return
from bomrl.core.policies import mlp_apply, mlp_init
from bomrl.errors import ConfigError, check, check_choice
from bomrl.limits import check_int, check_interval, check_nonnegative

LEARN = {"both": (1.0, 1.0), "discount": (1.0, 0.0), "lambda": (0.0, 1.0), "none": (0.0, 0.0)}


@dataclass(frozen=True)
class MgrlConfig:
    """Meta-gradient RL hyper-parameters; defaults and their sources in docs/BASELINES.md."""

    num_envs: int = 16
    """N parallel environments of the one task (A2C-style batch)"""
    rollout_len: int = 20
    """n: steps per environment per segment (one update per segment; the paper's A2C: 5, IMPALA: 20)"""
    updates_per_iteration: int = 25
    """updates (segments) per `bomrl train` iteration; the environments are reset between
    iterations, so rollout_len × updates_per_iteration must be at least the horizon"""
    value_width: int = 64
    """units of each of the value MLP's two tanh hidden layers (also the reference critic's)"""
    inner_optimizer: str = "adam"
    """the agent's optimizer: adam or sgd (the meta-gradient differentiates through its step)"""
    learning_rate: float = 1e-3
    """the agent's step size α"""
    value_coef: float = 0.5
    """c_v: weight of the value regression ½(G − v)² in the agent's loss"""
    entropy_coef: float = 0.01
    """c_H: weight of the policy entropy bonus in the agent's loss"""
    max_grad_norm: float = 0.5
    """clip the agent's gradient to this global norm (0: no clipping)"""
    initial_discount: float = 0.9
    """γ at the start (η_γ = logit(γ)); in (0, 1), or [0, 1] if not learned (e.g. the fixed-reference
    baseline learn=none initial_discount=0.99 initial_lambda=1)"""
    initial_lambda: float = 0.9
    """λ at the start (η_λ = logit(λ)); in (0, 1), or [0, 1] if not learned"""
    meta_discount: float = 0.99
    """γ' of the meta-objective J' (the fixed reference η̄; the paper: 0.99)"""
    meta_lambda: float = 1.0
    """λ' of the meta-objective J' (the paper: 1)"""
    learn: str = "both"
    """meta-parameters learned: both, discount, lambda, or none (the fixed-(γ, λ) baseline: the same
    learner without meta-steps)"""
    meta_learning_rate: float = 1e-2
    """Adam step size on the logits η (instadeepai/outer-value-function-meta-rl: 1e-3 to 3e-3 over
    longer runs; 1e-2 here so that η moves within budgets of ~10³ updates, docs/REPRODUCTION.md)"""
    trace_decay: float = 0.0
    """μ of the trace z' = μ z + ∂f/∂η accumulating dθ/dη (0: the exact derivative through one update)"""
    meta_critic: str = "reference"
    """the value function in J': reference (a separate critic trained on the reference return
    G_η̄; default) or inner (the agent's critic v_θ', trained for the inner γ: biased)"""
    critic_learning_rate: float = 1e-3
    """Adam step size of the reference critic (meta_critic=reference)"""
    normalize_advantages: bool = False
    """standardise the agent's advantages per segment (inside the differentiated update)"""
    task: str = "seed"
    """the single task: 'seed' (the first task the run draws, family.sample_tasks(default_rng([seed,
    0]))[0]) or its value(s), comma-separated (e.g. 1.5 = target velocity for halfcheetah-vel)"""

    def __post_init__(self):
        for name, hi in (("num_envs", 4096), ("rollout_len", 100_000), ("updates_per_iteration", 1_000_000),
                         ("value_width", 4096)):
            check_int(name, getattr(self, name), 1, hi)
        check_choice("inner_optimizer", self.inner_optimizer, ("adam", "sgd"))
        check_choice("learn", self.learn, tuple(LEARN))
        check_choice("meta_critic", self.meta_critic, ("reference", "inner"))
        for name in ("learning_rate", "meta_learning_rate", "critic_learning_rate"):
            check_interval(name, getattr(self, name), 0, 10, open_lo=True)
        for name in ("value_coef", "entropy_coef", "max_grad_norm"):
            check_nonnegative(name, getattr(self, name))
        for name, learned in (("initial_discount", LEARN[self.learn][0]), ("initial_lambda", LEARN[self.learn][1])):
            if learned:
                check_interval(name, getattr(self, name), 0, 1, open_lo=True, open_hi=True,
                               why=f"when learned: a sigmoid of a real meta-parameter; learn={self.learn}")
            else:
                check_interval(name, getattr(self, name), 0, 1, why=f"not learned: learn={self.learn}")
        for name in ("meta_discount", "meta_lambda", "trace_decay"):
            check_interval(name, getattr(self, name), 0, 1)
        task_values(self.task)


def task_values(task: str) -> np.ndarray | None:
    """MgrlConfig.task -> None ('seed') or the task vector [task_dim] (one-line ConfigError)."""
    if task == "seed":
        return None
    try:
        values = np.asarray([float(x) for x in str(task).split(",")], np.float64)
    except ValueError:
        values = np.asarray([np.nan])
    check(values.size >= 1 and bool(np.all(np.isfinite(values))), "task", task,
          "'seed' or finite numbers separated by commas (e.g. 1.5)")
    return values


class Seg(NamedTuple):
    """A segment as jax arrays (time first): obs, next_obs [n, N, obs_dim]; act [n, N, (act_dim)];
    rew, term, cut [n, N] (float)."""

    obs: jax.Array
    act: jax.Array
    rew: jax.Array
    next_obs: jax.Array
    term: jax.Array
    cut: jax.Array


# ---- pure functions ------------------------------------------------------------------------------

def value_init(key, obs_dim: int, width: int, dtype):
    """Parameters of a tanh MLP obs_dim -> width -> width -> 1."""
    return mlp_init(key, (obs_dim, width, width, 1), dtype)


def value_apply(vparams, obs):
    """v(s): obs [..., obs_dim] -> [...]."""
    return mlp_apply(vparams, obs)[..., 0]


def meta_params(eta):
    """η = logits [2] -> (γ, λ) = sigmoid(η) (paper §1.1)."""
    s = jax.nn.sigmoid(eta)
    return s[0], s[1]


def agent_loss(theta, eta, seg: Seg, policy, c: MgrlConfig):
    """L(θ; τ, η) of the module docstring, to minimise. theta = {"pi": policy params, "v": value
    params}; eta [2] logits; seg arrays [n, N, ...]. Differentiable in θ (advantages/targets constant)
    and in η (through G^λ_η). Returns (loss, metrics)."""
    gamma, lam = meta_params(eta)
    v = value_apply(theta["v"], seg.obs)                                      # [n, N]
    v_next = jax.lax.stop_gradient(value_apply(theta["v"], seg.next_obs))     # [n, N]
    g = lambda_return(seg.rew, gamma * (1.0 - seg.term), v_next, seg.cut, lam)
    adv = g - jax.lax.stop_gradient(v)
    if c.normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    dist = policy.apply(theta["pi"], seg.obs)
    logp = policy.log_prob(dist, seg.act)
    pg = -jnp.mean(adv * logp)
    vl = 0.5 * jnp.mean((g - v) ** 2)
    ent = jnp.mean(policy.entropy(dist))
    loss = pg + c.value_coef * vl - c.entropy_coef * ent
    return loss, {"losses/policy": pg, "losses/value": vl, "losses/entropy": ent,
                  "inner/return_target": jnp.mean(g)}


def clip_by_global_norm(grads, max_norm: float):
    """grads · min(1, max_norm / ‖grads‖) (max_norm 0: unchanged); smooth in the gradient a.e."""
    norm = jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree.leaves(grads)))
    if max_norm <= 0:
        return grads, norm
    scale = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
    return jax.tree.map(lambda x: x * scale, grads), norm


def make_inner_optimizer(c: MgrlConfig):
    import optax

    if c.inner_optimizer == "sgd":
        return optax.sgd(c.learning_rate)
    # eps_root > 0 keeps d sqrt(ν)/dη finite where a gradient entry is exactly 0
    return optax.adam(c.learning_rate, eps_root=1e-16)


def inner_update(theta, opt_state, eta, seg: Seg, policy, c: MgrlConfig, optimizer):
    """θ' = θ + f(τ, θ, η): one optimizer step on ∇_θ L(θ; τ, η) (clipped). Returns (θ', opt_state',
    metrics)."""
    import optax

    grads, m = jax.grad(agent_loss, has_aux=True)(theta, eta, seg, policy, c)
    grads, norm = clip_by_global_norm(grads, c.max_grad_norm)
    updates, opt_state = optimizer.update(grads, opt_state, theta)
    return optax.apply_updates(theta, updates), opt_state, {**m, "inner/grad_norm": norm}


def reference_advantages(seg: Seg, values, next_values, meta_discount: float, meta_lambda: float):
    """G_η̄(τ') − v(s') [n, N] with the reference (γ', λ') and a critic's values [n, N] at the
    segment's states and true next states (constants)."""
    g = lambda_return(seg.rew, meta_discount * (1.0 - seg.term), next_values, seg.cut, meta_lambda)
    return g - values, g


def meta_objective(pi_params, seg: Seg, adv, policy):
    """J'(τ', θ', η̄) to minimise: −mean(adv · log π_θ'(a'|s')), adv [n, N] a constant (paper eq. (7)).
    Returns (J', metrics)."""
    logp = policy.log_prob(policy.apply(pi_params, seg.obs), seg.act)
    j = -jnp.mean(jax.lax.stop_gradient(adv) * logp)
    return j, {"losses/meta": j}


def meta_loss_through_update(eta, theta, opt_state, seg: Seg, seg_meta: Seg, adv_meta, policy,
                             c: MgrlConfig, optimizer):
    """J'(τ', θ + f(τ, θ, η), η̄) as a function of η [2] (adv_meta held fixed): the function whose
    gradient the meta-step follows when trace_decay = 0 (tests compare it with finite differences)."""
    theta_new, _, _ = inner_update(theta, opt_state, eta, seg, policy, c, optimizer)
    return meta_objective(theta_new["pi"], seg_meta, adv_meta, policy)[0]


def contract(grad_tree, jac_tree):
    """Σ over leaves of ⟨∂J/∂θ, ∂θ/∂η_i⟩: grad leaves [...], jac leaves [..., 2] -> [2]."""
    parts = [jnp.tensordot(g.ravel(), j.reshape(-1, j.shape[-1]), axes=1)
             for g, j in zip(jax.tree.leaves(grad_tree), jax.tree.leaves(jac_tree))]
    return sum(parts)


def mgrl_update(carry: dict, seg: Seg, policy, c: MgrlConfig, inner_opt, meta_opt, critic_opt):
    """One online update (module docstring): meta-step on `seg` as τ' with the stored trace, the
    reference critic's step, the agent's step on `seg` as τ with the new η and the new trace.

    carry: {"theta": {"pi", "v"}, "inner_opt", "eta" [2], "meta_opt", "trace" (θ-shaped, leaves
    [..., 2]), "ref_v", "ref_opt"}. Returns (carry, metrics)."""
    import optax

    mask = jnp.asarray(LEARN[c.learn], carry["eta"].dtype)
    theta, eta = carry["theta"], carry["eta"]
    out = dict(carry)
    # 1. meta-gradient dJ'/dη = ∂J'/∂θ' · z (θ' = θ here, z = dθ/dη of the previous update)
    critic = carry["ref_v"] if c.meta_critic == "reference" else theta["v"]
    values = value_apply(critic, seg.obs)
    next_values = value_apply(critic, seg.next_obs)
    adv, g_ref = reference_advantages(seg, values, next_values, c.meta_discount, c.meta_lambda)
    (j, mm), gpi = jax.value_and_grad(meta_objective, has_aux=True)(theta["pi"], seg, adv, policy)
    metrics = dict(mm)
    if c.learn != "none":
        meta_grad = contract(gpi, carry["trace"]["pi"]) * mask
        upd, out["meta_opt"] = meta_opt.update(meta_grad, carry["meta_opt"])
        eta = eta + upd * mask
        out["eta"] = eta
    else:
        meta_grad = jnp.zeros_like(eta)
    metrics["meta/grad_gamma"], metrics["meta/grad_lambda"] = meta_grad[0], meta_grad[1]
    # 2. the reference critic: semi-gradient regression on G_η̄ (its own bootstrap), after its use
    if c.meta_critic == "reference" and c.learn != "none":
        def critic_loss(psi):
            return 0.5 * jnp.mean((jax.lax.stop_gradient(g_ref) - value_apply(psi, seg.obs)) ** 2)

        cl, cg = jax.value_and_grad(critic_loss)(carry["ref_v"])
        cu, out["ref_opt"] = critic_opt.update(cg, carry["ref_opt"], carry["ref_v"])
        out["ref_v"] = optax.apply_updates(carry["ref_v"], cu)
        metrics["losses/ref_critic"] = cl
    else:
        metrics["losses/ref_critic"] = jnp.zeros((), eta.dtype)
    # 3. the agent's step with the new η, and ∂θ'/∂η by forward mode (2 directions)
    def step(e):
        th, st, m = inner_update(theta, carry["inner_opt"], e, seg, policy, c, inner_opt)
        return th, (th, st, m)

    if c.learn != "none":
        jac, (theta_new, inner_state, im) = jax.jacfwd(step, has_aux=True)(eta)
        out["trace"] = jax.tree.map(lambda z, d: c.trace_decay * z + d, carry["trace"], jac)
    else:
        theta_new, inner_state, im = step(eta)[1]
    out["theta"], out["inner_opt"] = theta_new, inner_state
    gamma, lam = meta_params(eta)
    metrics.update(im)
    metrics.update({"meta/gamma": gamma, "meta/lambda": lam})
    return out, metrics


# ---- the algorithm ------------------------------------------------------------------------------

class Mgrl(MetaAlgorithm):
    """Meta-gradient RL on one task; see the module docstring."""

    name = "mgrl"
    label = "meta-gradient RL"   # display name (plots, tables)
    Config = MgrlConfig

    def __init__(self, config: MgrlConfig, policy):
        import optax

        super().__init__(config, policy)
        c = config
        self.inner_opt = make_inner_optimizer(c)
        self.meta_opt = optax.adam(c.meta_learning_rate)
        self.critic_opt = optax.adam(c.critic_learning_rate)
        self._update_jit = jax.jit(lambda carry, seg: mgrl_update(carry, seg, policy, c, self.inner_opt,
                                                                  self.meta_opt, self.critic_opt))
        self._act_jit = jax.jit(lambda p, obs, key, t: policy.sample(policy.apply(p, obs), jax.random.fold_in(key, t)))
        self._runner = None

    @property
    def adapt_rounds(self) -> int:
        return 0

    def _dtype(self):
        return jax.tree.leaves(jax.eval_shape(self.policy.init, jax.random.PRNGKey(0)))[0].dtype

    def init(self, key: jax.Array) -> AlgoState:
        c = self.config
        k_pi, k_v, k_ref = jax.random.split(key, 3)
        dtype = self._dtype()
        pi = self.policy.init(k_pi)
        v = value_init(k_v, self.policy.obs_dim, c.value_width, dtype)
        theta = {"pi": pi, "v": v}
        logit = lambda p: math.inf if p == 1 else -math.inf if p == 0 else math.log(p / (1.0 - p))  # noqa: E731
        eta = jnp.asarray([logit(c.initial_discount), logit(c.initial_lambda)], dtype)
        ref_v = value_init(k_ref, self.policy.obs_dim, c.value_width, dtype)
        extra = {"v": v, "eta": eta, "meta_opt": self.meta_opt.init(eta),
                 "trace": jax.tree.map(lambda x: jnp.zeros((*x.shape, 2), x.dtype), theta),
                 "ref_v": ref_v, "ref_opt": self.critic_opt.init(ref_v)}
        return AlgoState(pi, self.inner_opt.init(theta), jnp.zeros((), jnp.int32), extra)

    # carry <-> AlgoState (params = the policy, as every algorithm's; the rest in opt_state / extra)
    @staticmethod
    def _carry(state: AlgoState) -> dict:
        e = state.extra
        return {"theta": {"pi": state.params, "v": e["v"]}, "inner_opt": state.opt_state, "eta": e["eta"],
                "meta_opt": e["meta_opt"], "trace": e["trace"], "ref_v": e["ref_v"], "ref_opt": e["ref_opt"]}

    @staticmethod
    def _state(carry: dict, iteration) -> AlgoState:
        extra = {"v": carry["theta"]["v"], "eta": carry["eta"], "meta_opt": carry["meta_opt"],
                 "trace": carry["trace"], "ref_v": carry["ref_v"], "ref_opt": carry["ref_opt"]}
        return AlgoState(carry["theta"]["pi"], carry["inner_opt"], iteration, extra)

    def task(self, sampler) -> np.ndarray:
        """The run's single task [task_dim] (MgrlConfig.task; module docstring)."""
        values = task_values(self.config.task)
        if values is None:
            return sampler.sample_tasks(np.random.default_rng([sampler.seed, 0]))[0]
        check(values.size == sampler.family.task_dim, "task", self.config.task,
              f"{sampler.family.task_dim} comma-separated number(s) for {sampler.family.name}, or 'seed'")
        return values

    def _get_runner(self, sampler):
        c = self.config
        key = (id(sampler.family), sampler.horizon, sampler.action_scale)
        if self._runner is None or self._runner[0] != key:
            if self._runner is not None:
                self._runner[1].close()
            self._runner = (key, sampler.nstep_runner(c.num_envs))
        return self._runner[1]

    def step(self, state: AlgoState, sampler, tasks, key: jax.Array, *, call: int):
        """One iteration: reset the N environments (reset seeds of the call index `call`:
        `Sampler.reset_seeds`), `updates_per_iteration` online updates. `tasks` is not used (one
        task, `task`). Returns (new_state, metrics)."""
        c = self.config
        if c.rollout_len * c.updates_per_iteration < sampler.horizon:
            raise ConfigError(f"rollout_len × updates_per_iteration = {c.rollout_len * c.updates_per_iteration} "
                              f"is invalid: must be >= the horizon ({sampler.horizon}) so that an iteration "
                              "holds whole episodes (the environments are reset between iterations)")
        timer = PhaseTimer()
        task = self.task(sampler)
        runner = self._get_runner(sampler)
        seeds = sampler.reset_seeds(call, c.num_envs)
        dtype = self._dtype()
        t0 = time.perf_counter()
        runner.reset(task, seeds)
        timer.add("sampling", time.perf_counter() - t0)
        carry = self._carry(state)
        returns, lengths, ms = [], [], []
        for u in range(c.updates_per_iteration):
            t0 = time.perf_counter()
            seg = runner.rollout(self._act_jit, carry["theta"]["pi"], jax.random.fold_in(key, u), c.rollout_len)
            timer.add("sampling", time.perf_counter() - t0)
            t0 = time.perf_counter()
            act = jnp.asarray(seg.act, jnp.int32 if self.policy.discrete else dtype)
            arrays = Seg(jnp.asarray(seg.obs, dtype), act, jnp.asarray(seg.rew, dtype),
                         jnp.asarray(seg.next_obs, dtype), jnp.asarray(seg.terminated, dtype),
                         jnp.asarray(seg.cut, dtype))
            carry, m = block_tree(self._update_jit(carry, arrays))
            timer.add("update", time.perf_counter() - t0)
            returns.extend(seg.episode_returns.tolist())
            lengths.extend(seg.episode_lengths.tolist())
            ms.append(m)
        metrics = {k: float(np.mean([float(m[k]) for m in ms])) for k in ms[0]}
        metrics["meta/gamma_mean"], metrics["meta/lambda_mean"] = metrics.pop("meta/gamma"), metrics.pop("meta/lambda")
        metrics["meta/gamma"], metrics["meta/lambda"] = float(ms[-1]["meta/gamma"]), float(ms[-1]["meta/lambda"])
        mean_ret = float(np.mean(returns)) if returns else float("nan")
        metrics.update({
            "charts/pre_return": mean_ret,
            "charts/post_return": mean_ret,
            "charts/episodes": float(len(returns)),
            "charts/episode_length": float(np.mean(lengths)) if lengths else float("nan"),
            "charts/env_steps": float(c.num_envs * c.rollout_len * c.updates_per_iteration),
            "time/sampling_s": timer.totals.get("sampling", 0.0),
            "time/process_s": 0.0,
            "time/adapt_s": 0.0,
            "time/update_s": timer.totals.get("update", 0.0),
        })
        return self._state(carry, state.iteration + 1), metrics

    def adapt(self, state: AlgoState, sampler, tasks, key: jax.Array, steps: int = 3, *, call: int):
        """Meta-test: no adaptation. Each of the steps + 1 rounds (round j: sampler call index
        call + j) evaluates the policy on fresh whole episodes (the sampler's E per task) of the run's single task (every one of the T task
        slots gets it). Returns `returns` [steps + 1], `task_returns` [steps + 1, T], `env_steps`."""
        check(isinstance(steps, int) and steps >= 0, "steps", steps, "an integer >= 0")
        T = sampler.num_tasks
        task_rep = np.repeat(self.task(sampler)[None], T, axis=0)
        params_t = broadcast_tasks(state.params, T)
        means, per_task, env_steps, rounds = [], [], 0, []
        for j, k in enumerate(jax.random.split(key, steps + 1)):
            out = sampler.sample(self.policy, params_t, task_rep, k, call=call + j)
            batch = out[0] if isinstance(out, tuple) else out
            ret = np.asarray(batch.returns, np.float64).mean(axis=1)
            means.append(float(ret.mean()))
            per_task.append(ret)
            rounds.append(task_means(batch))
            env_steps += int(np.asarray(batch.lengths).sum())
        return {"returns": np.asarray(means), "task_returns": np.stack(per_task), "env_steps": env_steps,
                **stack_rounds(rounds)}
