"""ProMP (Rothfuss et al. 2019): the inner step uses the low-variance-curvature (likelihood-ratio)
surrogate; the outer objective is PPO's clipped likelihood ratio of the ADAPTED policies on the
post-update data, minus a KL penalty that keeps the pre-update policy near the one that sampled;
several Adam steps per batch.

    J(φ) = mean_i mean_post_i[ min(r·A, clip(r, 1−ε, 1+ε)·A) ]  −  η · mean_j mean_i KL̄_ij(φ)
    r = π_{θ_i(φ)}(a|s) / π_{θ_i(φ_old)}(a|s),
    KL̄_ij(φ) = mean_{s ~ batch j of task i} KL(π_{θ^j_i(φ_old)}(·|s) ‖ π_{θ^j_i(φ)}(·|s)),

θ^j_i(φ) the parameters that sampled inner batch j (θ^0 = φ). η is fixed by default; optionally it
is adapted towards a target inner KL (×2 / ÷2 outside [target/1.5, 1.5·target]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import optax

from bomrl.algos.base import AlgoState, MetaAlgorithm
from bomrl.algos.data import AdvantageSettings, Data, masked_mean
from bomrl.algos.maml_trpo import adapt_batched
from bomrl.algos.pg_adaptation import InnerPGSettings, adapted_params, log_prob, sampling_log_probs
from bomrl.limits import MAX_COUNT, check_interval, check_int, check_nonnegative, check_positive


@dataclass(frozen=True)
class ProMPConfig(InnerPGSettings, AdvantageSettings):
    """ProMP hyper-parameters: the inner step (`InnerPGSettings`, with ProMP's own inner surrogate),
    the advantage pipeline (`AdvantageSettings`) and the outer PPO-style update below; defaults and
    their sources in docs/BASELINES.md."""

    inner_objective: Literal["log_likelihood", "likelihood_ratio"] = "likelihood_ratio"
    """inner surrogate; ProMP's LVC estimator is the likelihood ratio π/π_old·A"""
    learning_rate: float = 1e-3
    """outer Adam learning rate (reference: 1e-3)"""
    outer_steps: int = 5
    """Adam steps on each meta-batch (reference `num_promp_steps`: 5)"""
    clip_eps: float = 0.3
    """PPO clip range ε of the outer likelihood ratio (reference: 0.3)"""
    inner_kl_coef: float = 5e-4
    """initial inner-KL penalty coefficient η (reference: 5e-4)"""
    adaptive_inner_kl: bool = False
    """adapt η towards `target_inner_kl` after each meta-iteration (reference default: fixed η)"""
    target_inner_kl: float = 0.01
    """target inner KL for the adaptive η (reference: 0.01; unused while η is fixed)"""

    def __post_init__(self):
        check_positive("learning_rate", self.learning_rate)
        check_int("outer_steps", self.outer_steps, 1, MAX_COUNT)
        check_interval("clip_eps", self.clip_eps, 0, 1, open_lo=True, open_hi=True)
        check_nonnegative("inner_kl_coef", self.inner_kl_coef)
        check_positive("target_inner_kl", self.target_inner_kl)
        super().__post_init__()


def promp_reference(policy, kind, alpha, phi, inner_datas, post: Data):
    """Constants at φ_old: (logps_old per inner batch, inner dists old per batch, post logp old)."""
    def one(ds):
        theta, lps = sampling_log_probs(policy, kind, alpha, phi, ds)
        _, chain = adapted_params(policy, kind, alpha, phi, ds, lps)
        dists = tuple(policy.apply(p, d.obs) for p, d in zip(chain, ds))
        return theta, lps, dists

    theta_old, logps_old, dists_old = jax.vmap(one)(inner_datas)
    post_logp_old = jax.vmap(lambda th, o, a: log_prob(policy, th, o, a))(theta_old, post.obs, post.act)
    return jax.tree.map(jax.lax.stop_gradient, (logps_old, dists_old, post_logp_old))


def promp_objective(policy, kind, alpha, clip_eps, kl_coef, phi, inner_datas, post: Data, consts):
    """J(φ) of the module docstring (to maximise). Returns (J, metrics)."""
    logps_old, dists_old, post_logp_old = consts

    def one(ds, lps, dold):
        theta, chain = adapted_params(policy, kind, alpha, phi, ds, lps)
        kls = [masked_mean(policy.kl(do, policy.apply(p, d.obs)), d.mask)
               for p, d, do in zip(chain, ds, dold)]
        return theta, jnp.mean(jnp.stack(kls))

    thetas, inner_kl = jax.vmap(one)(inner_datas, logps_old, dists_old)   # [T, ...], [T]
    logp = jax.vmap(lambda th, o, a: log_prob(policy, th, o, a))(thetas, post.obs, post.act)
    ratio = jnp.exp(logp - post_logp_old)
    clipped = jnp.minimum(ratio * post.adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * post.adv)
    clip_obj = jnp.mean(jax.vmap(masked_mean)(clipped, post.mask))
    kl = jnp.mean(inner_kl)
    total = clip_obj - kl_coef * kl
    return total, {"losses/clip_objective": clip_obj, "inner/kl": kl, "losses/objective": total}


def adapt_kl_coef(coef, kl, target):
    """η ← η/2 if KL < target/1.5, η·2 if KL > 1.5·target, else unchanged."""
    coef = jnp.where(kl < target / 1.5, coef / 2, coef)
    return jnp.where(kl > target * 1.5, coef * 2, coef)


class ProMP(MetaAlgorithm):
    """ProMP; see the module docstring."""

    name = "promp"
    label = "ProMP"   # display name (plots, tables)
    Config = ProMPConfig

    def __init__(self, config: ProMPConfig, policy):
        super().__init__(config, policy)
        c = config
        self.optimizer = optax.adam(c.learning_rate)
        self._adapt_jit = jax.jit(lambda p, d: adapt_batched(policy, c.inner_objective, c.inner_lr, p, d))
        self._update_jit = jax.jit(self._update)

    def _init_opt_state(self, params):
        return self.optimizer.init(params)

    def _init_extra(self):
        dtype = jax.tree.leaves(self.policy.init(jax.random.key(0)))[0].dtype
        return {"inner_kl_coef": jnp.asarray(self.config.inner_kl_coef, dtype)}

    def _adapt_batched(self, params_t, data):
        return self._adapt_jit(params_t, data)

    def _update(self, phi, opt_state, kl_coef, inner_datas, post):
        c, policy = self.config, self.policy
        kind, alpha = c.inner_objective, c.inner_lr
        consts = promp_reference(policy, kind, alpha, phi, inner_datas, post)

        def loss(p):
            j, m = promp_objective(policy, kind, alpha, c.clip_eps, kl_coef, p, inner_datas, post, consts)
            return -j, m

        def body(carry, _):
            p, s = carry
            (_, m), g = jax.value_and_grad(loss, has_aux=True)(p)
            updates, s = self.optimizer.update(g, s, p)
            return (optax.apply_updates(p, updates), s), m

        (new_phi, opt_state), ms = jax.lax.scan(body, (phi, opt_state), None, length=c.outer_steps)
        _, m_after = loss(new_phi)
        new_coef = adapt_kl_coef(kl_coef, m_after["inner/kl"], c.target_inner_kl) if c.adaptive_inner_kl else kl_coef
        metrics = {k: v[0] for k, v in ms.items()}
        metrics.update({f"{k}_after": v for k, v in m_after.items()})
        metrics["inner/kl_coef"] = new_coef
        return new_phi, opt_state, new_coef, metrics

    def _meta_update(self, state: AlgoState, inner_datas, post, adapted_t, rng):
        new_phi, opt_state, coef, metrics = self._update_jit(
            state.params, state.opt_state, state.extra["inner_kl_coef"], inner_datas, post)
        extra = {**state.extra, "inner_kl_coef": coef}
        return AlgoState(new_phi, opt_state, state.iteration + 1, extra), metrics
