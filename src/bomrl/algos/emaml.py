"""E-MAML (Stadie et al. 2018): MAML-TRPO plus an exploration term that credits the pre-update
sampling policy π_φ for the post-update return.

    f_E(φ) = f_MAML(φ) + mean_i  R̃_i · mean_{(s,a) ~ pre_i}[ log π_φ(a|s) ]

R̃_i = mean over task i's post-update steps of the standardised reward (r − μ) / (σ + 1e-8), with
μ, σ over every valid post-update step of the meta-batch (the reference's "adjusted average
rewards"; a constant). The term is the score-function gradient of the post-update return w.r.t.
the pre-update sampling distribution, which MAML's meta-gradient leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from bomrl.algos.data import Data, masked_mean
from bomrl.algos.maml_trpo import MamlTrpo, MamlTrpoConfig, maml_surrogate
from bomrl.algos.pg_adaptation import log_prob
from bomrl.limits import check_nonnegative


@dataclass(frozen=True)
class EMamlConfig(MamlTrpoConfig):
    """E-MAML = MAML-TRPO hyper-parameters plus the exploration-term weight."""

    exploration_coef: float = 1.0
    """weight of the exploration term (reference: 1.0, i.e. the plain E-MAML objective)"""

    def __post_init__(self):
        super().__post_init__()
        check_nonnegative("exploration_coef", self.exploration_coef)


def exploration_weights(post: Data, eps: float = 1e-8) -> jax.Array:
    """R̃ [T]: per-task mean of post-update rewards standardised over the whole meta-batch."""
    mu = masked_mean(post.rew, post.mask)
    sd = jnp.sqrt(masked_mean((post.rew - mu) ** 2, post.mask))
    z = (post.rew - mu) / (sd + eps)
    return jax.lax.stop_gradient(jax.vmap(masked_mean)(z, post.mask))


def exploration_term(policy, phi, pre: Data, weights: jax.Array) -> jax.Array:
    """mean_i R̃_i · mean_pre_i log π_φ(a|s)  (pre = the batch sampled with φ, [T, E, H])."""
    logp = log_prob(policy, phi, pre.obs, pre.act)                      # [T, E, H]
    mean_logp = jax.vmap(masked_mean)(logp, pre.mask)                   # [T]
    return jnp.mean(weights * mean_logp)


def emaml_objective(policy, kind, alpha, coef, phi, inner_datas, post: Data, consts):
    """f_E(φ) of the module docstring (to maximise). Returns (value, metrics)."""
    f, metrics = maml_surrogate(policy, kind, alpha, phi, inner_datas, post, consts)
    explore = exploration_term(policy, phi, inner_datas[0], exploration_weights(post))
    total = f + coef * explore
    return total, {**metrics, "losses/exploration": explore, "losses/objective": total}


class EMaml(MamlTrpo):
    """MAML-TRPO with the E-MAML exploration term in the TRPO objective."""

    name = "emaml"
    label = "E-MAML"   # display name (plots, tables)
    Config = EMamlConfig
    PRESETS: dict = {}   # MAML-TRPO's "released" preset is the paper's MAML baseline, not E-MAML

    def objective(self, phi, inner_datas, post, consts):
        c = self.config
        return emaml_objective(self.policy, c.inner_objective, c.inner_lr, c.exploration_coef, phi,
                               inner_datas, post, consts)
