"""The MAML family's within-task algorithm: k policy-gradient steps θ ← θ + α ∇_θ Ĵ(θ), each on its
own batch (docs/MATH.md §2: the first-order + d3 special case of BO-MRL's eq. (2), Appendix H).

Two inner objectives (both have the policy gradient as first derivative at the sampling policy; they
differ in the second derivative, which the meta-gradient sees):

- "log_likelihood":   Ĵ(θ) = mean[ log π_θ(a|s) · A ]                (Finn et al. 2017; pytorch-maml-rl)
- "likelihood_ratio": Ĵ(θ) = mean[ π_θ(a|s)/π_old(a|s) · A ]         (ProMP's low-variance-curvature
  estimator; π_old = the policy that sampled the batch, a constant)
- "h":                Ĵ(θ) = mean[ h(π_θ(a|s)/π_old(a|s)) · A ], h(x) = 2σ(2x − 2) (BO-MRL's eq. (7)
  surrogate, which the paper's released MAML baseline steps on, 36935422779; h(1) = h'(1) = 1)

All functions take ONE task's data (leading axes [E, H]) and are vmapped over tasks by callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import jax
import jax.numpy as jnp

from bomrl.algos.data import Data, masked_mean
from bomrl.core.losses import h_transform
from bomrl.core.policies import Policy
from bomrl.limits import MAX_COUNT, check_int, check_positive

@dataclass(frozen=True)
class InnerPGSettings:
    """The within-task algorithm's knobs, shared by the MAML family's configs (mixed in)."""

    inner_lr: float = 0.1
    """inner policy-gradient step size α (pytorch-maml-rl `fast-lr`, ProMP `inner_lr`: 0.1)"""
    inner_steps: int = 1
    """inner gradient steps during meta-training, each on freshly sampled data (references: 1)"""
    inner_objective: Literal["log_likelihood", "likelihood_ratio", "h"] = "log_likelihood"
    """inner surrogate: mean[log π·A] (original MAML, pytorch-maml-rl), mean[π/π_old·A] (ProMP's LVC) or
    mean[h(π/π_old)·A] (the paper's released MAML baseline)"""

    def __post_init__(self):
        check_positive("inner_lr", self.inner_lr)
        check_int("inner_steps", self.inner_steps, 1, MAX_COUNT)
        getattr(super(), "__post_init__", lambda: None)()

    @property
    def adapt_rounds(self) -> int:
        """Sampling rounds of one training adaptation (`MetaAlgorithm.adapt_rounds`): one
        policy-gradient step per round, each on data of the policy the round before produced."""
        return self.inner_steps


def log_prob(policy: Policy, params, obs, act):
    """log π_params(act | obs), shape obs.shape[:-1]."""
    return policy.log_prob(policy.apply(params, obs), act)


def inner_objective(policy: Policy, kind: str, params, data: Data, logp_old) -> jax.Array:
    """Ĵ(θ) for one task (see module docstring). logp_old [E, H] = log π_old(a|s) (constant)."""
    logp = log_prob(policy, params, data.obs, data.act)
    if kind == "log_likelihood":
        terms = logp * data.adv
    elif kind == "likelihood_ratio":
        terms = jnp.exp(logp - jax.lax.stop_gradient(logp_old)) * data.adv
    elif kind == "h":
        terms = h_transform(jnp.exp(logp - jax.lax.stop_gradient(logp_old))) * data.adv
    else:  # pragma: no cover - validated in configs
        raise ValueError(kind)
    return masked_mean(terms, data.mask)


def pg_step(policy: Policy, kind: str, alpha: float, params, data: Data, logp_old):
    """One inner step θ + α ∇_θ Ĵ(θ), differentiable w.r.t. params (second-order MAML)."""
    g = jax.grad(inner_objective, argnums=2)(policy, kind, params, data, logp_old)
    return jax.tree.map(lambda p, gi: p + alpha * gi, params, g)


def sampling_log_probs(policy: Policy, kind: str, alpha: float, phi, inner_datas: Sequence[Data]):
    """Replay the adaptation chain at the sampling parameters φ_old (one task).

    Returns (θ_k, [log π_{θ_j}(a|s) on batch j for j < k]): the adapted params the sampler used
    and the constant log-probabilities of each batch under the policy that sampled it.
    """
    theta, logps = phi, []
    for d in inner_datas:
        lp = jax.lax.stop_gradient(log_prob(policy, theta, d.obs, d.act))
        logps.append(lp)
        theta = pg_step(policy, kind, alpha, theta, d, lp)
    return theta, tuple(logps)


def adapted_params(policy: Policy, kind: str, alpha: float, phi, inner_datas: Sequence[Data],
                   logps_old: Sequence[jax.Array]):
    """θ_k(φ): the chain of k inner steps as a differentiable function of φ (one task).

    Also returns the per-step list of intermediate params [θ_0 = φ, ..., θ_{k-1}].
    """
    theta, chain = phi, []
    for d, lp in zip(inner_datas, logps_old):
        chain.append(theta)
        theta = pg_step(policy, kind, alpha, theta, d, lp)
    return theta, chain
