"""Conjugate gradients on matrix-free linear operators over parameter pytrees.

Used twice: for v = (∇²_θθ L + damping·I)⁻¹ g in the implicit hypergradient (docs/MATH.md §3, Prop. 2 / eq. 8),
and for the natural-gradient direction F⁻¹ g of the TRPO meta-step. Written here (rather than
`jax.scipy.sparse.linalg.cg`) because callers need the iteration count, the final residual and a
flag for breakdown (non-positive curvature or non-finite numbers), all of which are metrics.

Works on arbitrary pytrees (flattened internally with `ravel_pytree`), is jittable and vmappable
(under vmap the loop runs until every lane has converged; converged lanes stop changing).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

Pytree = Any


def cg_solve(matvec: Callable[[Pytree], Pytree], b: Pytree, *, max_iters: int = 10, tol: float = 1e-10,
             damping: float = 0.0, x0: Pytree | None = None, return_ax: bool = False):
    """Solve (A + damping·I) x = b for symmetric positive-definite A given only x ↦ A x.

    Args:
      matvec: pytree -> pytree with the structure of b (e.g. a Hessian- or Fisher-vector product).
      b: right-hand side pytree.
      max_iters: iteration cap (each iteration costs one matvec).
      tol: stop when ‖r‖ ≤ tol·‖b‖ (relative residual).
      damping: Tikhonov damping added to A.
      x0: initial guess (default zeros).
      return_ax: also return (A + damping·I) x, read off the recurrence as b − r at no extra matvec
        (TRPO needs xᵀ(A + dI)x for its step length).

    Returns:
      x (pytree like b), [(A + dI) x if return_ax,] metrics {cg/iterations, cg/residual (‖b − (A+dI)x‖ by recurrence),
      cg/rel_residual, cg/failed (1.0 if curvature pᵀAp ≤ 0 or a non-finite number stopped the loop)}.
    """
    flat_b, unravel = ravel_pytree(b)

    def mv(x):
        return ravel_pytree(matvec(unravel(x)))[0].astype(flat_b.dtype) + damping * x

    if x0 is None:
        x = jnp.zeros_like(flat_b)
        r = flat_b
    else:
        x = ravel_pytree(x0)[0].astype(flat_b.dtype)
        r = flat_b - mv(x)
    bb = jnp.vdot(flat_b, flat_b)
    rr = jnp.vdot(r, r)
    thresh = (tol**2) * bb

    def cond(state):
        i, _, _, _, rr, failed = state
        return (i < max_iters) & (rr > thresh) & jnp.logical_not(failed)

    def body(state):
        i, x, r, p, rr, _ = state
        ap = mv(p)
        pap = jnp.vdot(p, ap)
        bad = ~(pap > 0) | ~jnp.isfinite(pap)
        alpha = jnp.where(bad, 0.0, rr / jnp.where(bad, 1.0, pap))
        x_new = x + alpha * p
        r_new = r - alpha * ap
        rr_new = jnp.vdot(r_new, r_new)
        bad = bad | ~jnp.isfinite(rr_new)
        beta = rr_new / jnp.where(rr > 0, rr, 1.0)
        p_new = r_new + beta * p
        keep = lambda new, old: jnp.where(bad, old, new)  # noqa: E731  (on breakdown keep the last iterate)
        return (i + 1, keep(x_new, x), keep(r_new, r), keep(p_new, p), keep(rr_new, rr), bad)

    state = (jnp.asarray(0), x, r, r, rr, jnp.asarray(False))
    i, x, r, _, rr, failed = jax.lax.while_loop(cond, body, state)
    res = jnp.sqrt(rr)
    metrics = {"cg/iterations": i, "cg/residual": res,
               "cg/rel_residual": res / jnp.maximum(jnp.sqrt(bb), jnp.finfo(flat_b.dtype).tiny),
               "cg/failed": failed.astype(flat_b.dtype)}
    if return_ax:
        return unravel(x), unravel(flat_b - r), metrics
    return unravel(x), metrics
