"""Recurrent (GRU) policies for RL² (Duan et al. 2016): pure functions over parameter pytrees.

The policy's input at every step of a trial is x_t = (o_t, a_{t−1}, r_{t−1}, d_t): the observation,
the previous action and reward of the trial (zeros at the trial's first step) and the flag
d_t = 1 at the first step of every episode (the previous step, if any, ended an episode). The GRU
state h is carried across the episodes of one trial and reset to zeros only between trials.
Steps after an episode ended early (mask 0, padding of the [E, H] layout) leave h, a_{t−1} and
r_{t−1} unchanged, so the padding is invisible to the policy.

    policy = gru_gaussian(obs_dim, act_dim, hidden=64, episodes_per_trial=2)
    params = policy.init(key)
    h = policy.initial_state((n,))                       # [n, hidden] zeros
    h, dist = policy.step(params, h, x)                  # x [n, in_dim] from policy.features(...)
    dists = policy.sequence(params, obs, act, rew, mask) # whole trials, leading axes [..., L]

The distribution head and its functions (log_prob, sample, kl, entropy) are those of
`bomrl.core.policies` (Gaussian with a learned state-independent log-std, or categorical).

GRU cell (the PyTorch / cuDNN form, "reset gate after the matrix product"):

    r = σ(x W_xr + h W_hr + b_r),  z = σ(x W_xz + h W_hz + b_z)
    n = tanh(x W_xn + b_xn + r ⊙ (h W_hn + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from bomrl.core.policies import categorical_mlp, gaussian_mlp

Params = Any


class RecurrentPolicy(NamedTuple):
    """A recurrent policy: the fields of `core.policies.Policy` plus the recurrent functions.

    init(key) -> params;  initial_state(lead_shape) -> h zeros [*lead, hidden]
    features(obs, prev_act, prev_rew, first) -> x [..., in_dim]  (prev_act continuous [..., A] or
        int [...] for discrete policies; prev_rew, first [...])
    step(params, h [..., hidden], x [..., in_dim]) -> (h', dist)
    sequence(params, obs [..., L, obs_dim], act, rew [..., L], mask [..., L], horizon) -> dist over
        [..., L] (trials of L = episodes_per_trial · horizon steps, state reset at step 0)
    """

    init: Callable
    apply: Callable            # (params, (h, x)) -> dist: one step, for Policy-style callers
    log_prob: Callable
    sample: Callable
    kl: Callable
    entropy: Callable
    obs_dim: int
    act_dim: int
    discrete: bool
    initial_state: Callable
    features: Callable
    step: Callable
    sequence: Callable
    hidden_size: int
    episodes_per_trial: int
    recurrent: bool = True


def is_recurrent(policy) -> bool:
    return bool(getattr(policy, "recurrent", False))


# ---- the GRU cell ------------------------------------------------------------------------------

def gru_init(key, in_dim: int, hidden: int, dtype=jnp.float32) -> dict:
    """GRU parameters: Glorot-uniform input weights, orthogonal recurrent weights, zero biases.

    wx [in_dim, 3·hidden] and wh [hidden, 3·hidden] hold the gates in the order (r, z, n);
    bx, bh [3·hidden] (the two biases of the n gate differ: bh's sits inside r ⊙ (·))."""
    kx, kh = jax.random.split(key)
    lim = math.sqrt(6.0 / (in_dim + hidden))
    wx = jax.random.uniform(kx, (in_dim, 3 * hidden), dtype, -lim, lim)
    wh = jnp.concatenate([jax.nn.initializers.orthogonal()(k, (hidden, hidden), dtype)
                          for k in jax.random.split(kh, 3)], axis=1)
    zeros = jnp.zeros((3 * hidden,), dtype)
    return {"wx": wx, "wh": wh, "bx": zeros, "bh": zeros}


def gru_cell(params: dict, h: jax.Array, x: jax.Array) -> jax.Array:
    """One GRU step (module docstring). h [..., hidden], x [..., in_dim] -> h' [..., hidden]."""
    gx = x @ params["wx"] + params["bx"]
    gh = h @ params["wh"] + params["bh"]
    xr, xz, xn = jnp.split(gx, 3, axis=-1)
    hr, hz, hn = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    return (1.0 - z) * n + z * h


# ---- the policy ----------------------------------------------------------------------------------

def gru_policy(obs_dim: int, act_dim: int, hidden: int = 64, episodes_per_trial: int = 2,
               discrete: bool = False, init_std: float = 1.0, dtype=jnp.float32) -> RecurrentPolicy:
    """RL²'s policy: GRU(hidden) over x_t, then a linear head (Gaussian mean with a learned
    state-independent log-std, or categorical logits). act_dim = number of actions if discrete."""
    head = (categorical_mlp(hidden, act_dim, hidden=(), dtype=dtype) if discrete
            else gaussian_mlp(hidden, act_dim, hidden=(), init_std=init_std, dtype=dtype))
    act_in = act_dim                      # one-hot for discrete actions
    in_dim = obs_dim + act_in + 2

    def init(key):
        kg, kh = jax.random.split(key)
        return {"gru": gru_init(kg, in_dim, hidden, dtype), "head": head.init(kh)}

    def initial_state(lead_shape=()):
        return jnp.zeros((*tuple(lead_shape), hidden), dtype)

    def features(obs, prev_act, prev_rew, first):
        dt = obs.dtype
        a = jax.nn.one_hot(prev_act, act_dim, dtype=dt) if discrete else prev_act.astype(dt)
        return jnp.concatenate([obs, a, prev_rew[..., None].astype(dt), first[..., None].astype(dt)], -1)

    def step(params, h, x):
        h = gru_cell(params["gru"], h, x)
        return h, head.apply(params["head"], h)

    def apply(params, carry):
        h, x = carry
        return step(params, h, x)[1]

    def sequence(params, obs, act, rew, mask, horizon):
        """Distributions of every step of whole trials (state, previous action and reward carried
        over valid steps only). obs [..., L, obs_dim], act [..., L(, A)], rew/mask [..., L]."""
        lead = mask.shape[:-1]
        L = mask.shape[-1]
        tm = lambda z: jnp.moveaxis(z, len(lead), 0)  # noqa: E731  time axis first
        first = (jnp.arange(L) % horizon == 0)
        prev_a0 = (jnp.zeros(lead, jnp.int32) if discrete else jnp.zeros((*lead, act_dim), obs.dtype))

        def body(carry, xs):
            h, pa, pr = carry
            o, a, r, m, f = xs
            x = features(o, pa, pr, jnp.broadcast_to(f, lead))
            h_new, dist = step(params, h, x)
            keep = m > 0
            h = jnp.where(keep[..., None], h_new, h)
            pa = jnp.where(keep if discrete else keep[..., None], a, pa)
            pr = jnp.where(keep, r, pr)
            return (h, pa, pr), dist

        carry0 = (initial_state(lead), prev_a0, jnp.zeros(lead, obs.dtype))
        xs = (tm(obs), tm(act), tm(rew.astype(obs.dtype)), tm(mask), first)
        _, dists = jax.lax.scan(body, carry0, xs)
        return jax.tree.map(lambda d: jnp.moveaxis(d, 0, len(lead)), dists)

    return RecurrentPolicy(init, apply, head.log_prob, head.sample, head.kl, head.entropy, obs_dim,
                           act_dim, discrete, initial_state, features, step, sequence, hidden,
                           int(episodes_per_trial))


def trial_view(x: jax.Array, episodes_per_trial: int):
    """[T, E, H, ...] -> [T, E // K, K·H, ...]: the K consecutive episodes of each trial joined
    (episode e = trial · K + k)."""
    T, E, H = x.shape[:3]
    K = episodes_per_trial
    return x.reshape(T, E // K, K * H, *x.shape[3:])
