"""The meta-update: a TRPO step on a given ascent direction (Algorithm 2, line 7), or plain gradient
ascent / Adam (Algorithm 1, line 7).

`trpo_step` is general: BO-MRL passes the task-averaged hypergradient as `grad` and the KL of the
meta-policy on its pre-update data as `kl_fn`; the MAML family passes a surrogate through the inner
step as `objective_fn` and the KL of the adapted policies. It is a pure, jittable function.

Skipped steps: when the gradient is not finite, CG breaks down, the direction is not an ascent
direction or no line-search candidate satisfies "KL ≤ max_kl and objective improves", the old
parameters are returned unchanged, `trpo/skipped_code` says why (see SKIP_REASONS) and a warning
naming the reason is logged on the `bomrl.trpo` logger (through jax.debug.callback, so also under jit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from bomrl.core.cg import cg_solve
from bomrl.core.tree import tree_norm, tree_vdot
from bomrl.limits import MAX_COUNT, check_int, check_interval, check_nonnegative, check_positive

Params = Any
log = logging.getLogger("bomrl.trpo")

SKIP_REASONS = {
    0: "accepted",
    1: "non-finite gradient",
    2: "conjugate gradients failed (non-finite or non-positive curvature sᵀFs)",
    3: "not an ascent direction (gᵀF⁻¹g ≤ 0 or zero gradient)",
    4: "line search failed (no step kept KL ≤ max_kl and improved the objective)",
}


@dataclass(frozen=True)
class TRPOSettings:
    """The knobs of `trpo_step`, shared by the config of every algorithm whose meta-update it is
    (mixed in; pass them on as `trpo_step(..., **config.trpo_kwargs)`)."""

    max_kl: float = 0.01
    """TRPO trust region δ on the mean KL (pytorch-maml-rl, ProMP's TRPO-MAML, MAESN's rllab: 0.01)"""
    cg_iters: int = 10
    """conjugate-gradient iterations for the natural-gradient direction (references: 10)"""
    cg_damping: float = 1e-5
    """damping added to the Fisher-vector product (pytorch-maml-rl: 1e-5)"""
    ls_steps: int = 15
    """maximum backtracking line-search steps (pytorch-maml-rl: 15)"""
    ls_ratio: float = 0.8
    """line-search step shrink factor (pytorch-maml-rl, rllab: 0.8)"""

    def __post_init__(self):
        check_positive("max_kl", self.max_kl)
        check_int("cg_iters", self.cg_iters, 1, MAX_COUNT)
        check_nonnegative("cg_damping", self.cg_damping)
        check_int("ls_steps", self.ls_steps, 1, MAX_COUNT)
        check_interval("ls_ratio", self.ls_ratio, 0, 1, open_lo=True, open_hi=True)
        getattr(super(), "__post_init__", lambda: None)()

    @property
    def trpo_kwargs(self) -> dict:
        """{max_kl, cg_iters, cg_damping, ls_steps, ls_ratio} for `trpo_step`."""
        return {f.name: getattr(self, f.name) for f in fields(TRPOSettings)}


def _log_skip(code) -> None:
    code = int(np.asarray(code).reshape(-1)[0]) if np.size(code) == 1 else np.asarray(code)
    if np.ndim(code) == 0:
        if code != 0:
            log.warning("TRPO step skipped: %s", SKIP_REASONS.get(code, f"code {code}"))
    else:  # vmapped over several problems
        for c in sorted(set(np.asarray(code).reshape(-1).tolist()) - {0}):
            log.warning("TRPO step skipped on some lanes: %s", SKIP_REASONS.get(c, f"code {c}"))


def _tree_axpy(alpha, x, y):
    return jax.tree.map(lambda xi, yi: yi + (alpha * xi).astype(yi.dtype), x, y)


def _tree_finite(t):
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(t)]))


def trpo_step(objective_fn: Callable[[Params], jax.Array] | None, kl_fn: Callable[[Params], jax.Array],
              params: Params, grad: Params | None = None, *, max_kl: float, cg_iters: int,
              cg_damping: float, ls_steps: int, ls_ratio: float, log_skips: bool = True, fvp_fn: Callable[[Params], Params] | None = None) -> tuple[Params, dict]:
    """One trust-region step: Δ = β F⁻¹g with ½ΔᵀFΔ = max_kl, then backtracking Δ·ls_ratio^k.

    Args:
      objective_fn: params -> scalar to MAXIMISE, or None. If None, `grad` is required and the
        improvement check uses the linear model gᵀΔ (BO-MRL, whose meta-objective needs new data).
      kl_fn: params -> mean KL(π_old ‖ π_params) with the old distribution fixed inside; its Hessian at
        `params` is the Fisher matrix F (Fisher-vector products by jvp of grad, never formed).
      params: current parameter pytree.
      grad: ascent direction g (pytree like params); default ∇objective_fn(params).
      max_kl: trust-region radius δ. cg_iters / cg_damping: CG on F + damping·I.
      ls_steps / ls_ratio: backtracking line search; a candidate is accepted only if its measured
        KL ≤ max_kl, the objective (or linear model) improves, and both are finite.
      fvp_fn: optional v -> F v replacing the Hessian-vector product of kl_fn (e.g.
        `policy_fisher_vp`, the same matrix at lower cost); kl_fn is still what the line search measures.
    Returns:
      (new_params, metrics) with trpo/{accepted, skipped_code, kl, improvement, expected_improvement,
      ls_iterations, step_norm} and cg/{iterations, residual, rel_residual, failed}.
      On any failure new_params is params itself.
    """
    if objective_fn is None and grad is None:
        raise ValueError("trpo_step needs objective_fn or grad")
    if grad is None:
        obj0, grad = jax.value_and_grad(objective_fn)(params)
    else:
        obj0 = objective_fn(params) if objective_fn is not None else jnp.asarray(0.0)

    grad_kl = jax.grad(kl_fn)

    def fvp(v):
        if fvp_fn is not None:
            return fvp_fn(v)
        return jax.jvp(grad_kl, (params,), (v,))[1]

    # (F + dI)·direction = grad − r comes out of the CG recurrence: no extra Fisher product for sᵀFs
    direction, fs, cg_info = cg_solve(fvp, grad, max_iters=cg_iters, damping=cg_damping, return_ax=True)
    s_fs = tree_vdot(direction, fs)
    g_s = tree_vdot(grad, direction)

    grad_ok = _tree_finite(grad)
    cg_ok = _tree_finite(direction) & jnp.isfinite(s_fs) & (s_fs > 0) & (cg_info["cg/failed"] == 0)
    ascent_ok = g_s > 0
    beta = jnp.sqrt(2.0 * max_kl / jnp.where(cg_ok & (s_fs > 0), s_fs, 1.0))
    full_step = jax.tree.map(lambda d: jnp.where(cg_ok, beta * d, 0.0).astype(d.dtype), direction)
    expected = jnp.where(cg_ok, beta * g_s, 0.0)
    pre_code = jnp.where(~grad_ok, 1, jnp.where(~cg_ok, 2, jnp.where(~ascent_ok, 3, 0)))

    def evaluate(frac):
        cand = _tree_axpy(frac, full_step, params)
        kl = kl_fn(cand)
        imp = (objective_fn(cand) - obj0) if objective_fn is not None else frac * expected
        ok = jnp.isfinite(kl) & jnp.isfinite(imp) & (kl <= max_kl) & (imp > 0) & _tree_finite(cand)
        return ok, kl, imp

    def cond(state):
        k, accepted, *_ = state
        return (k < ls_steps) & ~accepted & (pre_code == 0)

    def body(state):
        k, _, _, _, _ = state
        frac = jnp.asarray(ls_ratio, expected.dtype) ** k
        ok, kl, imp = evaluate(frac)
        return k + 1, ok, frac, kl, imp

    zero = jnp.zeros((), expected.dtype)
    k, accepted, frac, kl, imp = jax.lax.while_loop(
        cond, body, (jnp.asarray(0), jnp.asarray(False), zero, zero, zero))
    code = jnp.where(pre_code != 0, pre_code, jnp.where(accepted, 0, 4))
    frac = jnp.where(accepted, frac, 0.0)
    new_params = jax.tree.map(lambda p, d: jnp.where(accepted, p + (frac * d).astype(p.dtype), p),
                              params, full_step)
    if log_skips:
        jax.debug.callback(_log_skip, code)
    metrics = {"trpo/accepted": accepted.astype(expected.dtype), "trpo/skipped_code": code,
               "trpo/kl": jnp.where(accepted, kl, 0.0), "trpo/improvement": jnp.where(accepted, imp, 0.0),
               "trpo/expected_improvement": expected * frac, "trpo/ls_iterations": k,
               "trpo/step_norm": tree_norm(full_step) * frac, **cg_info}
    return new_params, metrics


def policy_fisher_vp(policy, params: Params, obs: jax.Array, weight: jax.Array) -> Callable[[Params], Params]:
    """v ↦ F v for F = ∇²_p Σ w KL(π_params ‖ π_p)|_{p=params} / Σ w (the TRPO Fisher on states obs).

    Gauss–Newton form Jᵀ M J v (J: params -> distribution parameters at obs, M: the KL's Hessian in
    distribution space, elementwise): exact at p = params, where ∇_dist KL = 0. The network is
    linearised once, so each product is one jvp and one vjp instead of a forward-over-reverse pass.
    """
    def dist_fn(p):
        return policy.apply(p, obs)

    w = jnp.asarray(weight) / jnp.sum(weight)
    old, jvp_fn = jax.linearize(dist_fn, params)
    old = jax.lax.stop_gradient(old)
    _, vjp_fn = jax.vjp(dist_fn, params)
    grad_d = jax.grad(lambda d: jnp.sum(w * policy.kl(old, d)))

    def fvp(v):
        m_jv = jax.jvp(grad_d, (old,), (jvp_fn(v),))[1]
        return vjp_fn(m_jv)[0]

    return fvp


def skip_reason(metrics: dict) -> str:
    """Human-readable reason for a (possibly skipped) TRPO step."""
    return SKIP_REASONS.get(int(np.asarray(metrics["trpo/skipped_code"])), "unknown")
