"""MAML-TRPO (Finn et al. 2017): k inner policy-gradient steps (step size α, each on fresh data),
outer TRPO on the post-update surrogate with the KL measured on the ADAPTED policies.

Meta-objective (to maximise), with θ_i(φ) the inner chain of `pg_adaptation` on task i's batches:

    f(φ) = mean_i mean_{(s,a) ~ post_i}[ π_{θ_i(φ)}(a|s) / π_{θ_i(φ_old)}(a|s) · A_post ]
    KL(φ) = mean_i mean_{s ~ post_i}[ KL(π_{θ_i(φ_old)}(·|s) ‖ π_{θ_i(φ)}(·|s)) ]

∇f(φ_old) is the second-order MAML meta-gradient (through the inner step's Hessian).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from bomrl.algos.base import AlgoState, MetaAlgorithm, broadcast_tasks
from bomrl.algos.data import RELEASED_Q, AdvantageSettings, Data, QSettings, masked_mean
from bomrl.algos.pg_adaptation import InnerPGSettings, adapted_params, log_prob, pg_step, sampling_log_probs
from bomrl.core.trpo import TRPOSettings, trpo_step
from bomrl.limits import check_interval


@dataclass(frozen=True)
class MamlTrpoConfig(InnerPGSettings, TRPOSettings, QSettings, AdvantageSettings):
    """MAML-TRPO hyper-parameters: the inner step (`InnerPGSettings`), the TRPO meta-step
    (`TRPOSettings`), the advantage pipeline (`AdvantageSettings`) and the field below; defaults and
    their sources in docs/BASELINES.md."""

    fvp_subsample: float = 1.0
    """fraction of each task's episodes used for the Fisher-vector products (derivatives only; the
    KL checked by the line search always uses all data). 1.0 = all, as the references"""

    def __post_init__(self):
        check_interval("fvp_subsample", self.fvp_subsample, 0, 1, open_lo=True)
        super().__post_init__()


# ---- pure functions ------------------------------------------------------------------------------

def reference_quantities(policy, kind, alpha, phi, inner_datas, post: Data):
    """Constants of the meta-update, all evaluated at φ_old = phi (vmapped over tasks).

    Returns (logps_old: tuple of [T, E, H] per inner batch, post_dist_old: dist on post obs of the
    adapted policies θ_i(φ_old), post_logp_old [T, E, H]).
    """
    theta_old, logps_old = jax.vmap(lambda ds: sampling_log_probs(policy, kind, alpha, phi, ds))(inner_datas)
    post_dist_old = jax.vmap(policy.apply)(theta_old, post.obs)
    post_logp_old = policy.log_prob(post_dist_old, post.act)
    consts = (logps_old, post_dist_old, post_logp_old)
    return jax.tree.map(jax.lax.stop_gradient, consts)


def adapted_batch(policy, kind, alpha, phi, inner_datas, logps_old):
    """θ_i(φ) for every task: pytree with leading axis T."""
    return jax.vmap(lambda ds, lps: adapted_params(policy, kind, alpha, phi, ds, lps)[0])(inner_datas, logps_old)


def maml_surrogate(policy, kind, alpha, phi, inner_datas, post: Data, consts):
    """f(φ) of the module docstring (to maximise). Returns (f, metrics)."""
    logps_old, _, post_logp_old = consts
    thetas = adapted_batch(policy, kind, alpha, phi, inner_datas, logps_old)
    logp = jax.vmap(lambda th, o, a: log_prob(policy, th, o, a))(thetas, post.obs, post.act)
    ratio = jnp.exp(logp - post_logp_old)
    per_task = jax.vmap(masked_mean)(ratio * post.adv, post.mask)
    f = jnp.mean(per_task)
    return f, {"losses/surrogate": f}


def kl_of_adapted(policy, thetas, post: Data, post_dist_old):
    """Mean KL(π_old ‖ π_θ_i) over tasks and post-update states, for adapted params θ [T, ...]."""
    dist = jax.vmap(policy.apply)(thetas, post.obs)
    return jnp.mean(jax.vmap(masked_mean)(policy.kl(post_dist_old, dist), post.mask))


def adapted_kl(policy, kind, alpha, phi, inner_datas, post: Data, consts):
    """Mean KL(π_{θ_i(φ_old)} ‖ π_{θ_i(φ)}) over tasks and post-update states (TRPO constraint)."""
    logps_old, post_dist_old, _ = consts
    thetas = adapted_batch(policy, kind, alpha, phi, inner_datas, logps_old)
    return kl_of_adapted(policy, thetas, post, post_dist_old)


def adapted_fisher_vp(policy, theta_fn, phi_old, post: Data, step_fn=None):
    """v ↦ F v with F = ∇²_φ kl_of_adapted(θ(φ))|φ_old, in Gauss-Newton form Jᵀ Jnetᵀ M Jnet J.

    At φ_old the KL and its gradient vanish, so its Hessian is exactly Jᵀ H_θ J (J = ∂θ/∂φ, the
    curvature of the inner step drops out) and H_θ is itself Jnetᵀ M Jnet (M = the KL's Hessian in
    distribution space). Both Jacobians are linearised ONCE; each product is then jvps, one
    distribution-space product and transposes, instead of a forward-over-reverse pass.

    theta_fn: φ -> adapted params of all tasks [T, ...] (unused when step_fn is given).
    step_fn: optional per-task form of a ONE-step inner update, params [T, ...] -> adapted [T, ...]
      (task t's map only sees row t). Each task's Jacobian J_t = I + α∇²Ĵ_t is then symmetric, so
      Jᵀw = Σ_t J_t w_t reuses the same linearised jvp instead of its (slower) transpose.
    """
    num_tasks = post.obs.shape[0]
    if step_fn is None:
        theta_old, theta_jvp = jax.linearize(theta_fn, phi_old)
        theta_vjp = jax.linear_transpose(theta_jvp, phi_old)
        theta_t = lambda w: theta_vjp(w)[0]  # noqa: E731
    else:
        theta_old, step_jvp = jax.linearize(step_fn, broadcast_tasks(phi_old, num_tasks))
        theta_jvp = lambda v: step_jvp(broadcast_tasks(v, num_tasks))  # noqa: E731
        theta_t = lambda w: jax.tree.map(lambda x: jnp.sum(x, axis=0), step_jvp(w))  # noqa: E731
    dist_all = lambda ths: jax.vmap(policy.apply)(ths, post.obs)  # noqa: E731
    old_dist, net_jvp = jax.linearize(dist_all, theta_old)
    old_dist = jax.lax.stop_gradient(old_dist)
    net_vjp = jax.linear_transpose(net_jvp, theta_old)
    # kl_of_adapted = mean over tasks of the masked mean over (episode, step)
    w = post.mask / jnp.maximum(jnp.sum(post.mask, axis=(1, 2), keepdims=True), 1.0) / num_tasks
    grad_d = jax.grad(lambda d: jnp.sum(w * policy.kl(old_dist, d)))

    def fvp(v):
        m_jv = jax.jvp(grad_d, (old_dist,), (net_jvp(theta_jvp(v)),))[1]
        return theta_t(net_vjp(m_jv)[0])

    return fvp


def subsample_episodes(tree, fraction: float):
    """The first ceil(fraction·E) episodes of every task: leaves [T, E, ...] -> [T, E', ...]."""
    def cut(x):
        k = max(1, int(-(-x.shape[1] * fraction // 1)))
        return x[:, :k]

    return jax.tree.map(cut, tree)


def adapt_batched(policy, kind, alpha, params_t, data: Data):
    """One inner step for every task: per-task params [T, ...] on the batch they sampled."""
    def one(p, d):
        lp = log_prob(policy, p, d.obs, d.act)
        return pg_step(policy, kind, alpha, p, d, lp)

    return jax.vmap(one)(params_t, data)


# ---- the algorithm ------------------------------------------------------------------------------

class MamlTrpo(MetaAlgorithm):
    """MAML with a TRPO meta-step; see the module docstring."""

    name = "maml-trpo"
    label = "MAML-TRPO"   # display name (plots, tables)
    Config = MamlTrpoConfig
    PRESETS = {
        # the paper's released MAML baseline (36935422779; docs/REPRODUCTION.md, "Under the released
        # scripts' protocol"): one step of 0.1 on the h surrogate of the centred Monte-Carlo Q, TRPO
        # δ 3e-3 undamped with 10 halvings, γ 0.995, 200-step continuation (train with --horizon 400)
        "released": {**RELEASED_Q, "inner_objective": "h", "inner_lr": 0.1, "max_kl": 3e-3, "cg_damping": 0.0,
                     "ls_steps": 10, "ls_ratio": 0.5},
    }

    def __init__(self, config: MamlTrpoConfig, policy):
        super().__init__(config, policy)
        c = config
        kind, alpha = c.inner_objective, c.inner_lr
        self._adapt_jit = jax.jit(lambda p, d: adapt_batched(policy, kind, alpha, p, d))
        self._update_jit = jax.jit(self._update)

    def _adapt_batched(self, params_t, data):
        return self._adapt_jit(params_t, data)

    def objective(self, phi, inner_datas, post, consts):
        """The meta-objective maximised by TRPO (E-MAML overrides this). Returns (value, metrics)."""
        c = self.config
        return maml_surrogate(self.policy, c.inner_objective, c.inner_lr, phi, inner_datas, post, consts)

    def _update(self, phi, inner_datas, post):
        c, policy = self.config, self.policy
        consts = reference_quantities(policy, c.inner_objective, c.inner_lr, phi, inner_datas, post)
        obj_fn = lambda p: self.objective(p, inner_datas, post, consts)[0]  # noqa: E731
        logps_old, post_dist_old, _ = consts
        kind, alpha, frac = c.inner_objective, c.inner_lr, c.fvp_subsample
        sub = (lambda x: subsample_episodes(x, frac)) if frac < 1 else (lambda x: x)  # noqa: E731
        # exact KL of the adapted policies for the line search; its curvature at φ_old for CG in
        # Gauss-Newton form (equal to the Hessian there; see adapted_fisher_vp)
        kl_fn = lambda p: kl_of_adapted(  # noqa: E731
            policy, adapted_batch(policy, kind, alpha, p, inner_datas, logps_old), post, post_dist_old)
        step_fn = None
        if len(inner_datas) == 1:  # symmetric per-task Jacobians (see adapted_fisher_vp)
            step_fn = lambda p_t: jax.vmap(lambda p, d, lp: pg_step(policy, kind, alpha, p, d, lp))(  # noqa: E731
                p_t, sub(inner_datas[0]), sub(logps_old[0]))
        fvp = adapted_fisher_vp(
            policy, lambda p: adapted_batch(policy, kind, alpha, p, sub(inner_datas), sub(logps_old)),
            phi, sub(post), step_fn=step_fn)
        new_phi, metrics = trpo_step(obj_fn, kl_fn, phi, fvp_fn=fvp, **c.trpo_kwargs)
        _, obj_metrics = self.objective(phi, inner_datas, post, consts)
        return new_phi, {**obj_metrics, **metrics}

    def _meta_update(self, state: AlgoState, inner_datas, post, adapted_t, rng):
        new_phi, metrics = self._update_jit(state.params, inner_datas, post)
        return state._replace(params=new_phi, iteration=state.iteration + 1), metrics
