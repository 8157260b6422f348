"""The adaptation θ'(φ) = Alg(π_φ, λ, τ) as ONE differentiable function (docs/MATH.md §3).

    theta, diagnostics = adapt(loss_fn, phi, data, derivative="unrolled", steps=10, solver="armijo", ...)

It minimises the inner loss L(θ, φ; data) over θ from θ = φ (`bomrl.core.inner_solver`) and returns
θ' with the solve's diagnostics (constants). Its derivative in φ (and in data.q) is a parameter:

    "unrolled"  plain reverse mode through the solver's K steps (`first_order_steps`, each step
                rematerialised, so memory is O(K·|θ|)): the exact derivative of what the solver
                returns, whether or not it reached the optimum. First-order solvers only.
    "implicit"  a custom_vjp around any solver: the implicit function theorem at θ'
                (`bomrl.core.hypergradient.root_vjp`, eqs. 8 and 10, Prop. 2): solve ∇²_θθ L v = g
                with `linear_solve`, return −∂_φ(vᵀ∇_θ L) and −∂_Q(vᵀ∇_θ L). It is the derivative of
                the adaptation only where ∇_θ L(θ', φ) = 0 (watch inner/grad_ratio).

BO-MRL's hypergradient is then `jax.vjp(adapt, φ)` applied to the outer gradient g = ∇_θ J(π_θ)|θ'
in every mode; how Q depends on φ composes by the chain rule (constant data: eq. 8, "practical";
`bomrl.core.hypergradient.score_q`: Appendix C; an exact q_fn(φ): Prop. 2). The pullback of
`jax.vjp` is a pytree: it can be kept from the adaptation to the meta-step (across jit calls and
sampling), so the forward solve runs once.

`linear_stats`: the implicit derivative's linear-solve metrics (`LINEAR_STATS`) come back as the
cotangent of this optional input — pass `zero_stats(dtype)` and differentiate in it too; leave it
None otherwise. States, actions and weights of the data are samples: no derivative flows to them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bomrl.core.hypergradient import LINEAR_STATS, LinearSolve, cg_linear_solve, root_vjp, zero_cotangent
from bomrl.core.inner_solver import (FIRST_ORDER, LossFn, check_stop, first_order_steps, loss_at,
                                     solution_diagnostics, solve_inner)
from bomrl.errors import check, check_choice

DERIVATIVES = ("unrolled", "implicit")


def zero_stats(dtype=jnp.float32) -> dict:
    """The `linear_stats` input of `adapt`: zeros named `LINEAR_STATS`."""
    return {k: jnp.zeros((), dtype) for k in LINEAR_STATS}


def adapt(loss_fn: LossFn, phi, data, *, derivative: str = "unrolled", steps: int = 50, solver: str = "adam",
          learning_rate: float = 1e-2, backtrack: int = 10, stop_distance: float | None = None,
          linear_solve: LinearSolve | None = None, linear_stats: dict | None = None, solution=None,
          **newton) -> tuple[Any, dict]:
    """θ'(φ) ≈ argmin_θ loss_fn(θ, φ, data)[0] from θ = φ, differentiable in φ and data.q.

    Args:
      loss_fn: (theta, phi, data) -> (loss, metrics), e.g. `make_inner_loss(...)`; data an
        `InnerData` (its q may be a function of φ).
      derivative: "unrolled" (adam, sgd, armijo) or "implicit" (any solver).
      steps, solver, learning_rate, backtrack, stop_distance, **newton: the solve (`solve_inner`).
      linear_solve: implicit: how ∇²_θθ L v = g is solved (default CG, 50 iterations, no damping).
      linear_stats: implicit: `zero_stats(...)` to receive the linear solve's metrics as its cotangent.
      solution: implicit: a θ' already computed by this solve (the forward solve is skipped).
    Returns (θ' like phi, diagnostics: `solve_inner`'s, constants).
    """
    check_choice("derivative", derivative, DERIVATIVES)
    solve = {"steps": steps, "solver": solver, "learning_rate": learning_rate, "backtrack": backtrack,
             "stop_distance": stop_distance, **newton}
    if derivative == "unrolled":
        check(solver in FIRST_ORDER, "solver", solver, f"one of {', '.join(FIRST_ORDER)} for unrolled derivatives")
        check(solution is None, "solution", "given", "None with derivative=unrolled (the steps are differentiated)")
        check_stop(solver, stop_distance)
        with_aux = loss_at(loss_fn, phi, data)
        theta, per_step = first_order_steps(with_aux, phi, steps=steps, solver=solver, learning_rate=learning_rate,
                                            backtrack=backtrack, stop_distance=stop_distance, remat=True)
        return theta, solution_diagnostics(with_aux, theta, phi, per_step, solver=solver,
                                           learning_rate=learning_rate, stop_distance=stop_distance)
    linear_solve = cg_linear_solve() if linear_solve is None else linear_solve
    return _implicit(loss_fn, solve, linear_solve)(phi, data.q, data._replace(q=None), solution, linear_stats)


def _implicit(loss_fn: LossFn, solve: dict, linear_solve: LinearSolve):
    """(phi, q, rest, solution, stats) -> (θ', diagnostics) with the implicit-function derivative."""

    def forward(phi, q, rest, solution):
        data = rest._replace(q=q)
        if solution is None:
            return solve_inner(loss_fn, phi, data, **solve)
        return solution, solution_diagnostics(loss_at(loss_fn, phi, data), solution, phi, None,
                                              solver=solve["solver"], learning_rate=solve["learning_rate"],
                                              stop_distance=solve["stop_distance"])

    @jax.custom_vjp
    def run(phi, q, rest, solution, stats):
        return forward(phi, q, rest, solution)

    def fwd(phi, q, rest, solution, stats):
        theta, diagnostics = forward(phi, q, rest, solution)
        return (theta, diagnostics), (theta, phi, q, rest, solution, stats)

    def bwd(res, cts):
        theta, phi, q, rest, solution, stats = res
        outer_grad = cts[0]   # the diagnostics are constants: their cotangent is ignored

        def loss(th, x):
            return loss_fn(th, x[0], rest._replace(q=x[1]))[0]

        (phi_ct, q_ct), _, metrics = root_vjp(loss, theta, (phi, q), outer_grad, linear_solve=linear_solve)
        stats_ct = None if stats is None else {k: jnp.asarray(metrics[k], v.dtype) for k, v in stats.items()}
        return phi_ct, q_ct, zero_cotangent(rest), zero_cotangent(solution), stats_ct

    run.defvjp(fwd, bwd)
    return run
