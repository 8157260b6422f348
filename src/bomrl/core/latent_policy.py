"""MAESN's latent-conditioned Gaussian policy π_θ(a | s, z) (Gupta et al. 2018), pure functions.

z ∈ R^d is drawn ONCE per episode from the task's variational distribution q_ω = N(μ, diag σ²)
(reparametrised z = μ + σ ⊙ ε, ε ~ N(0, I)) and held fixed for the whole episode, which makes the
exploration noise time-correlated. The network is `core.policies.gaussian_mlp` on the input
(s, z) (tanh MLP mean, state-independent learned log-std), so θ is an ordinary Gaussian-MLP pytree.

    policy = latent_gaussian_mlp(obs_dim, act_dim, latent_dim=2)
    theta = policy.init(key)                              # network parameters θ
    dist = policy.apply_latent(theta, obs, z)             # obs [..., obs_dim], z broadcastable [..., d]
    dist = policy.apply({"theta": theta, "z": z_E}, obs)  # the sampler's form, z_E [E, d]

The sampler (`bomrl.envs.sampler`) calls `policy.apply(params_t, obs)` per task with the per-task
parameters params_t = {"theta": θ, "z": [E, d]} (the E episode latents of that sampling round)
and obs [E, obs_dim] (one step of the task's E episodes); the losses call it with obs
[E, H, obs_dim]. Row e of z conditions episode e at every step, so z stays fixed within an
episode, and the rows are independent draws (`sample_latents`).

Latent distribution helpers (all per task, d = latent_dim):

    latent_log_prob(z [..., d], mu [d], log_sigma [d]) -> [...]        log N(z; μ, diag σ²)
    kl_to_prior(mu [..., d], log_sigma [..., d]) -> [...]              KL(N(μ, σ²) ‖ N(0, I))
    sample_latents(key, mu [d], log_sigma [d], n) -> (z [n, d], eps [n, d])
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from bomrl.core.policies import gaussian_mlp

Params = Any


class LatentPolicy(NamedTuple):
    """The fields of `core.policies.Policy` (apply in the sampler's form, module docstring) plus:

    latent_dim: d;  apply_latent(theta, obs [..., obs_dim], z [..., d]) -> (mean, log_std) [..., A]
    """

    init: Callable
    apply: Callable
    log_prob: Callable
    sample: Callable
    kl: Callable
    entropy: Callable
    obs_dim: int
    act_dim: int
    discrete: bool
    latent_dim: int
    apply_latent: Callable


def is_latent(policy) -> bool:
    return isinstance(policy, LatentPolicy)


def latent_gaussian_mlp(obs_dim: int, act_dim: int, latent_dim: int = 2, hidden=(64, 64),
                        init_std: float = 1.0, dtype=jnp.float32) -> LatentPolicy:
    """π_θ(a | s, z): `gaussian_mlp` over the concatenated input (s, z), z ∈ R^latent_dim."""
    base = gaussian_mlp(obs_dim + latent_dim, act_dim, hidden=hidden, init_std=init_std, dtype=dtype)

    def apply_latent(theta, obs, z):
        z = jnp.broadcast_to(z, (*obs.shape[:-1], latent_dim)).astype(obs.dtype)
        return base.apply(theta, jnp.concatenate([obs, z], axis=-1))

    def apply(params, obs):
        # params["z"]: [E, d], one latent per episode; obs [E, obs_dim] or [E, H, obs_dim]
        z = params["z"]
        z = z.reshape(z.shape[0], *([1] * (obs.ndim - 2)), latent_dim)
        return apply_latent(params["theta"], obs, z)

    return LatentPolicy(base.init, apply, base.log_prob, base.sample, base.kl, base.entropy,
                        obs_dim, act_dim, False, latent_dim, apply_latent)


def latent_log_prob(z, mu, log_sigma):
    """log N(z; μ, diag σ²) summed over the last axis: z [..., d], mu / log_sigma [d] -> [...]."""
    u = (z - mu) * jnp.exp(-log_sigma)
    return jnp.sum(-0.5 * u**2 - log_sigma - 0.5 * math.log(2 * math.pi), axis=-1)


def kl_to_prior(mu, log_sigma):
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_d (σ² + μ² − 1 − 2 log σ): [..., d] -> [...]."""
    return 0.5 * jnp.sum(jnp.exp(2 * log_sigma) + mu**2 - 1.0 - 2 * log_sigma, axis=-1)


def sample_latents(key, mu, log_sigma, n: int):
    """n independent latents z = μ + σ ⊙ ε, ε ~ N(0, I): (z [n, d], eps [n, d])."""
    eps = jax.random.normal(key, (n, mu.shape[-1]), mu.dtype)
    return mu + jnp.exp(log_sigma) * eps, eps
