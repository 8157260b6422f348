"""Advantage estimation shared by BO-MRL and the MAML family: discounted returns, GAE and the linear
feature baseline of the MAML-family reference code (docs/SOURCES.md, "Shared defaults").

All functions take Batch-layout arrays: rewards/masks [..., H] (e.g. [T, E, H]) and observations
[..., H, obs_dim]; the time axis is always the one just before the feature axis. Masks are 1.0 while
the episode is alive; nothing is bootstrapped past the last valid step or past the horizon H.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bomrl.errors import check
from bomrl.limits import check_unit_interval

Array = jax.Array


def _reverse_scan_time(fn, init, *xs):
    """lax.scan backwards over the last axis of every x (moved to the front and back again)."""
    moved = [jnp.moveaxis(x, -1, 0) for x in xs]
    _, out = jax.lax.scan(fn, init, moved, reverse=True)
    return jnp.moveaxis(out, 0, -1)


def discounted_returns(rew: Array, mask: Array, gamma: float) -> Array:
    """Reward-to-go G_t = Σ_{k≥0} γ^k r_{t+k} within the episode. rew, mask: [..., H] -> [..., H].

    Entries after termination (mask 0) are 0; no bootstrap past the horizon.
    """
    rew = jnp.asarray(rew)
    mask = jnp.asarray(mask, rew.dtype)

    def step(g_next, x):
        r, m = x
        g = m * (r + gamma * g_next)
        return g, g

    return _reverse_scan_time(step, jnp.zeros(rew.shape[:-1], rew.dtype), rew * mask, mask)


def continuation_rewards(rew: Array, mask: Array, gamma: float, continuation: int) -> Array:
    """Fold a continuation rollout into the rewards of the steps before it. rew, mask [..., H] ->
    [..., H − C] with C = continuation: r_{H−C−1} += γ G_tail, G_tail = Σ_j γ^j r_{H−C+j} (0 if the
    episode ended before). The discounted return of the result at t < H − C is then the
    Monte-Carlo Q of the whole episode (the released scripts' Q: a 200-step episode extended by up
    to 200 more steps), and GAE's last δ bootstraps with the observed tail."""
    h = rew.shape[-1] - continuation
    tail = discounted_returns(rew[..., h:], mask[..., h:], gamma)[..., 0]
    head = jnp.asarray(rew[..., :h])
    return head.at[..., h - 1].add(gamma * tail * jnp.asarray(mask[..., h - 1], head.dtype))


def gae(rew: Array, values: Array, mask: Array, gamma: float, lam: float) -> Array:
    """Generalised advantage estimation. rew, values, mask: [..., H] -> advantages [..., H].

    δ_t = r_t + γ m_{t+1} V_{t+1} − V_t, A_t = m_t (δ_t + γ λ m_{t+1} A_{t+1}); V after the last step is 0.
    With lam = 1 and values = 0 this is `discounted_returns`.
    """
    rew = jnp.asarray(rew)
    mask = jnp.asarray(mask, rew.dtype)
    values = jnp.asarray(values, rew.dtype) * mask
    next_values = jnp.concatenate([values[..., 1:], jnp.zeros_like(values[..., :1])], axis=-1)
    deltas = (rew + gamma * next_values - values) * mask

    def step(a_next, x):
        d, m = x
        a = m * (d + gamma * lam * a_next)
        return a, a

    return _reverse_scan_time(step, jnp.zeros(rew.shape[:-1], rew.dtype), deltas, mask)


def baseline_features(obs: Array) -> Array:
    """Features [o, o², t/100, (t/100)², (t/100)³, 1] with o = clip(obs, ±10). obs [..., H, D] -> [..., H, 2D+4]."""
    o = jnp.clip(obs, -10.0, 10.0)
    h = obs.shape[-2]
    t = jnp.arange(h, dtype=obs.dtype)[:, None] / 100.0
    t = jnp.broadcast_to(t, (*obs.shape[:-1], 1))
    return jnp.concatenate([o, o**2, t, t**2, t**3, jnp.ones_like(t)], axis=-1)


def fit_linear_baseline(obs: Array, returns: Array, mask: Array, reg: float = 1e-5,
                        max_retries: int = 5) -> Array:
    """Ridge-regress one task's returns on `baseline_features` and return fitted values.

    obs [E, H, D], returns [E, H], mask [E, H] -> values [E, H] (0 where mask is 0).
    Solves (XᵀX + reg·I) w = Xᵀy over the valid steps; if the solution is not finite, reg is
    multiplied by 10 and the solve repeated (up to max_retries times). Vmap over tasks to refit per task.
    """
    x = baseline_features(obs)
    m = jnp.asarray(mask, x.dtype)
    xm = (x * m[..., None]).reshape(-1, x.shape[-1])
    y = (returns * m).reshape(-1)
    xtx = xm.T @ xm
    xty = xm.T @ y
    eye = jnp.eye(x.shape[-1], dtype=x.dtype)

    def solve(r):
        return jnp.linalg.solve(xtx + r * eye, xty)

    def cond(state):
        k, _, w = state
        return (k < max_retries) & ~jnp.all(jnp.isfinite(w))

    def body(state):
        k, r, _ = state
        r = r * 10.0
        return k + 1, r, solve(r)

    reg0 = jnp.asarray(reg, x.dtype)
    _, _, w = jax.lax.while_loop(cond, body, (jnp.asarray(0), reg0, solve(reg0)))
    w = jnp.where(jnp.isfinite(w), w, 0.0)
    return (x @ w) * m


def normalize_advantages(adv: Array, mask: Array, eps: float = 1e-8) -> Array:
    """Standardise over every valid entry of one task. adv, mask: [E, H] (vmap over tasks)."""
    m = jnp.asarray(mask, adv.dtype)
    n = jnp.maximum(m.sum(), 1.0)
    mean = (adv * m).sum() / n
    var = (((adv - mean) * m) ** 2).sum() / n
    return (adv - mean) / (jnp.sqrt(var) + eps) * m


def estimate_advantages(obs: Array, rew: Array, mask: Array, *, gamma: float = 0.99, gae_lambda: float = 1.0,
                        baseline: str = "linear", normalize: bool = True) -> dict[str, Array]:
    """The MAML-family advantage pipeline on a [T, E, H] batch, refitting the baseline per task.

    Args:
      obs [T, E, H, D], rew [T, E, H], mask [T, E, H].
      baseline: "linear" (feature baseline fitted to this batch's discounted returns) or "none".
      normalize: standardise advantages per task.
    Returns {"returns": [T,E,H] reward-to-go, "values": [T,E,H] baseline, "advantages": [T,E,H]}.
    """
    check_unit_interval("gamma", gamma)
    check_unit_interval("gae_lambda", gae_lambda)
    check(baseline in ("linear", "none"), "baseline", baseline, "'linear' or 'none'")
    check(jnp.ndim(rew) == 3 and jnp.ndim(obs) == 4, "rew.shape", jnp.shape(rew), "[T, E, H] with obs [T, E, H, D]")
    rets = discounted_returns(rew, mask, gamma)
    if baseline == "linear":
        values = jax.vmap(fit_linear_baseline)(jnp.asarray(obs, rets.dtype), rets, mask)
    else:
        values = jnp.zeros_like(rets)
    adv = gae(rew, values, mask, gamma, gae_lambda)
    if normalize:
        adv = jax.vmap(normalize_advantages)(adv, mask)
    return {"returns": rets, "values": values, "advantages": adv}


def gae_over_gaps(rew: Array, values: Array, mask: Array, gamma: float, lam: float) -> tuple[Array, Array]:
    """GAE and reward-to-go over sequences with gaps: steps with mask 0 are skipped, as if removed.

    For RL²'s concatenated trials, where an episode that ended early leaves masked padding before
    the next episode of the same trial: the return and advantage of a step include the rewards of
    every LATER valid step of the sequence. rew, values, mask [..., L] -> (advantages, returns)
    [..., L], 0 where mask is 0; nothing is bootstrapped past the sequence's last valid step.

        valid t (next valid step t'):  G_t = r_t + γ G_t',  δ_t = r_t + γ V_t' − V_t,  A_t = δ_t + γλ A_t'
    """
    rew = jnp.asarray(rew)
    mask = jnp.asarray(mask, rew.dtype)
    values = jnp.asarray(values, rew.dtype)

    def step(carry, x):
        a_next, v_next, g_next = carry
        r, v, m = x
        valid = m > 0
        a = r + gamma * v_next - v + gamma * lam * a_next
        g = r + gamma * g_next
        carry = (jnp.where(valid, a, a_next), jnp.where(valid, v, v_next), jnp.where(valid, g, g_next))
        return carry, (jnp.where(valid, a, 0.0), jnp.where(valid, g, 0.0))

    moved = [jnp.moveaxis(x, -1, 0) for x in (rew, values, mask)]
    zeros = jnp.zeros(rew.shape[:-1], rew.dtype)
    _, (adv, ret) = jax.lax.scan(step, (zeros, zeros, zeros), moved, reverse=True)
    return jnp.moveaxis(adv, 0, -1), jnp.moveaxis(ret, 0, -1)
