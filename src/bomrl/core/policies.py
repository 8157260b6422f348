"""Policies as pure functions over parameter pytrees.

A `Policy` bundles pure functions; parameters are plain pytrees (dicts of arrays), so they can be
vmapped over tasks (leading axis = task) and differentiated.

    params = policy.init(key)
    dist = policy.apply(params, obs)          # distribution parameters, batched like obs[..., :]
    logp = policy.log_prob(dist, act)         # shape obs.shape[:-1]
    act  = policy.sample(dist, key)
    kl   = policy.kl(dist_p, dist_q)          # KL(p || q), per state

Gaussian: dist = (mean [..., A], log_std [..., A]).  Categorical: dist = logits [..., A].
The tabular softmax is the categorical policy with f_θ(s, a) = θ[s, a] on one-hot states.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from bomrl.errors import check_choice

Params = Any


class Policy(NamedTuple):
    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], Any]
    log_prob: Callable[[Any, jax.Array], jax.Array]
    sample: Callable[[Any, jax.Array], jax.Array]
    kl: Callable[[Any, Any], jax.Array]
    entropy: Callable[[Any], jax.Array]
    obs_dim: int
    act_dim: int
    discrete: bool
    update_stats: Callable | None = None   # (params, obs [..., D], mask [...]) -> params: running filters


OBS_CLIP = 5.0     # the observation filter's clip (the paper's released scripts' ZFilter)


def obs_filter_init(obs_dim: int, dtype) -> dict:
    """Running statistics of the observation filter: count n, mean, m2 = Σ (x − mean)² per dimension."""
    return {"n": jnp.zeros((), dtype), "mean": jnp.zeros((obs_dim,), dtype), "m2": jnp.zeros((obs_dim,), dtype)}


def obs_filter_apply(stats: dict, obs: jax.Array) -> jax.Array:
    """clip((obs − mean) / (std + 1e-8), ±5) with std² = m2 / (n − 1) (1 while n < 2: the identity
    filter before any data). The statistics are constants for differentiation."""
    stats = jax.lax.stop_gradient(stats)
    var = jnp.where(stats["n"] > 1, stats["m2"] / jnp.maximum(stats["n"] - 1, 1), 1.0)
    return jnp.clip((obs - stats["mean"]) / (jnp.sqrt(var) + 1e-8), -OBS_CLIP, OBS_CLIP)


def obs_filter_update(stats: dict, obs: jax.Array, mask: jax.Array) -> dict:
    """Merge the valid rows of obs [..., D] (mask [...] = 1) into the statistics (Chan et al.'s
    parallel form of Welford's update: exact for any split of the data into batches)."""
    w = jnp.asarray(mask, obs.dtype).reshape(-1)
    x = obs.reshape(-1, obs.shape[-1])
    nb = jnp.sum(w)
    mb = jnp.sum(x * w[:, None], axis=0) / jnp.maximum(nb, 1.0)
    m2b = jnp.sum(w[:, None] * (x - mb) ** 2, axis=0)
    n = stats["n"] + nb
    delta = mb - stats["mean"]
    mean = stats["mean"] + delta * nb / jnp.maximum(n, 1.0)
    m2 = stats["m2"] + m2b + delta**2 * stats["n"] * nb / jnp.maximum(n, 1.0)
    return {"n": n, "mean": mean, "m2": m2}


def policy_dtype(precision: str = "float32"):
    """The parameter dtype of a run's `precision` ("float32" or "float64"); float64 turns on
    jax_enable_x64 (process-wide, before the policy is built)."""
    check_choice("precision", precision, ("float32", "float64"))
    if precision == "float64":
        jax.config.update("jax_enable_x64", True)
        return jnp.float64
    return jnp.float32


def mlp_init(key, sizes, dtype):
    """The layers [{"w": [n_in, n_out], "b": [n_out]}] of an MLP with layer sizes `sizes`:
    Glorot-uniform weights, zero biases (the MAML-family reference initialisation)."""
    params = []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (n_in, n_out) in zip(keys, zip(sizes[:-1], sizes[1:])):
        lim = math.sqrt(6.0 / (n_in + n_out))
        w = jax.random.uniform(k, (n_in, n_out), dtype, -lim, lim)
        params.append({"w": w, "b": jnp.zeros((n_out,), dtype)})
    return params


def mlp_apply(layers, x):
    """The MLP's output [..., n_out] for inputs x [..., n_in] (tanh between layers, linear last)."""
    # One 2-D matrix product per layer: XLA:CPU runs [E, H, d] @ [d, k] (and, under vmap over tasks,
    # the batched [T, E, H, d] form and its gradients) 2-4x slower than the same product on [E·H, d].
    lead = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    for layer in layers[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    x = x @ layers[-1]["w"] + layers[-1]["b"]
    return x.reshape(*lead, x.shape[-1])


def gaussian_mlp(obs_dim: int, act_dim: int, hidden=(64, 64), init_std: float = 1.0,
                 dtype=jnp.float32, learn_std: bool = True, obs_filter: bool = False) -> Policy:
    """Diagonal Gaussian policy: mean from a tanh MLP, state-independent learned log-std (with
    learn_std=False a constant log(init_std), not a parameter). obs_filter: the MLP sees
    `obs_filter_apply(params["obs_filter"], obs)`, running statistics kept in the parameters
    (zero gradient) and advanced by `update_stats` between sampling rounds."""
    fixed_log_std = math.log(init_std)

    def init(key):
        params = {"mlp": mlp_init(key, (obs_dim, *hidden, act_dim), dtype)}
        if learn_std:
            params["log_std"] = jnp.full((act_dim,), fixed_log_std, dtype)
        if obs_filter:
            params["obs_filter"] = obs_filter_init(obs_dim, dtype)
        return params

    def apply(params, obs):
        if obs_filter:
            obs = obs_filter_apply(params["obs_filter"], obs)
        mean = mlp_apply(params["mlp"], obs)
        log_std = params["log_std"] if learn_std else jnp.full((act_dim,), fixed_log_std, mean.dtype)
        return mean, jnp.broadcast_to(log_std, mean.shape)

    def log_prob(dist, act):
        mean, log_std = dist
        z = (act - mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)

    def sample(dist, key):
        mean, log_std = dist
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    def kl(p, q):
        (mp, lp), (mq, lq) = p, q
        vp, vq = jnp.exp(2 * lp), jnp.exp(2 * lq)
        return jnp.sum(lq - lp + (vp + (mp - mq) ** 2) / (2 * vq) - 0.5, axis=-1)

    def entropy(dist):
        _, log_std = dist
        return jnp.sum(log_std + 0.5 * math.log(2 * math.pi * math.e), axis=-1)

    def update_stats(params, obs, mask):
        return {**params, "obs_filter": obs_filter_update(params["obs_filter"], obs, mask)}

    return Policy(init, apply, log_prob, sample, kl, entropy, obs_dim, act_dim, False,
                  update_stats if obs_filter else None)


def mean_action(policy: Policy) -> Policy:
    """The same policy acting with its mode instead of a sample: the Gaussian's mean, the
    categorical's most probable action (the released scripts' "mean-action" test episodes)."""
    if getattr(policy, "recurrent", False) or not isinstance(policy, Policy):
        raise TypeError("mean_action takes a feed-forward Policy")
    if policy.discrete:
        return policy._replace(sample=_argmax_action)
    return policy._replace(sample=_gaussian_mean)


def _gaussian_mean(dist, key):
    return dist[0]


def _argmax_action(logits, key):
    return jnp.argmax(logits, axis=-1)


def _categorical(init, logits_fn, obs_dim, act_dim) -> Policy:
    def log_prob(logits, act):
        logp = jax.nn.log_softmax(logits, axis=-1)
        return jnp.take_along_axis(logp, act[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def sample(logits, key):
        return jax.random.categorical(key, logits, axis=-1)

    def kl(p, q):
        lp, lq = jax.nn.log_softmax(p, -1), jax.nn.log_softmax(q, -1)
        return jnp.sum(jnp.exp(lp) * (lp - lq), axis=-1)

    def entropy(logits):
        lp = jax.nn.log_softmax(logits, -1)
        return -jnp.sum(jnp.exp(lp) * lp, axis=-1)

    return Policy(init, logits_fn, log_prob, sample, kl, entropy, obs_dim, act_dim, True)


def categorical_mlp(obs_dim: int, n_actions: int, hidden=(64, 64), dtype=jnp.float32) -> Policy:
    """Softmax policy π(a|s) ∝ exp(f_θ(s, a)) with f a tanh MLP."""
    return _categorical(lambda key: {"mlp": mlp_init(key, (obs_dim, *hidden, n_actions), dtype)},
                        lambda params, obs: mlp_apply(params["mlp"], obs), obs_dim, n_actions)


def tabular_softmax(n_states: int, n_actions: int, dtype=jnp.float64) -> Policy:
    """f_θ(s, a) = θ[s, a]; observations are one-hot state vectors [..., S] (or integer states)."""

    def init(key):
        return {"theta": jnp.zeros((n_states, n_actions), dtype)}

    def apply(params, obs):
        if jnp.issubdtype(obs.dtype, jnp.integer):
            return params["theta"][obs]
        return obs @ params["theta"]

    return _categorical(init, apply, n_states, n_actions)
