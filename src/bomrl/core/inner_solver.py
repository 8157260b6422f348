"""The within-task solver Alg(π_φ, λ, τ): minimise the inner loss L(θ, φ) over θ from θ = φ,
with NO new data (eq. 2, eq. 7 or eq. 9; see `bomrl.core.losses`).

    solver="adam"    optax Adam inside lax.scan (the paper's practical choice, 50 steps)
    solver="sgd"     plain gradient descent θ ← θ − lr ∇_θ L inside lax.scan
    solver="armijo"  gradient descent whose step starts at lr and is halved (at most `backtrack`
                     times) until the loss decreases sufficiently (Armijo, c = 1e-4); a step
                     that finds no decrease is not taken. Monotone: it cannot diverge when the
                     loss's curvature outgrows 2/lr (d1's grows ∝ λ/σ² as the policy's σ shrinks)
    solver="newton"  Newton–CG with backtracking and a step-length cap (Hessian-vector products, never the
                     Hessian): for exact solves in tests and small problems

`stop_distance` (adam, sgd): before each step, stop for good once the loss's λ-free distance
(metric inner/distance) exceeds it; the step that crossed the threshold is kept (the paper's
released solver: 50 Adam steps stopped at a mean distance of 3, docs/REPRODUCTION.md).

`solve_inner` handles one task, forward only (φ and the data are constants for it); its derivative
in φ is `bomrl.core.adaptation.adapt`'s business. `solve_inner_tasks` vmaps it over a leading task
axis of the data (φ shared). Diagnostics are at the returned θ: inner/loss, inner/grad_norm,
inner/kl, plus the loss's own metrics and inner/loss_initial (at θ = φ).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from bomrl.core.cg import cg_solve
from bomrl.core.tree import tree_norm, tree_vdot
from bomrl.errors import check, check_choice

LossFn = Callable[[Any, Any, Any], tuple[jax.Array, dict]]
SOLVERS = ("adam", "sgd", "armijo", "newton")
FIRST_ORDER = ("adam", "sgd", "armijo")   # the solvers of `first_order_steps` (unrolled derivatives too)
ARMIJO_C = 1e-4


def armijo_step(value: Callable, th, learning_rate: float, backtrack: int):
    """One gradient step θ − t ∇f(θ) with t = lr · 2^-j for the smallest j ≤ backtrack such that
    f(θ − t∇f) ≤ f(θ) − c t ‖∇f‖² (t = 0 if none). Returns (θ_new, t).

    t is chosen by a lax.while_loop on stop-gradient copies, so it is a constant for autodiff:
    reverse mode through this step is the exact derivative of θ − t∇f(θ) wherever the choice of j
    is locally constant (almost everywhere), and the loop itself is never differentiated."""
    f0, g = jax.value_and_grad(value)(th)
    th_c, g_c, f0_c = jax.lax.stop_gradient((th, g, f0))
    gg = tree_vdot(g_c, g_c)
    lr = jnp.asarray(learning_rate, f0_c.dtype)

    def trial(t):
        return value(jax.tree.map(lambda x, y: x - t * y, th_c, g_c))

    def accepted(t):
        f = trial(t)
        return jnp.isfinite(f) & (f <= f0_c - ARMIJO_C * t * gg)

    def cond(c):
        j, t, ok = c
        return ~ok & (j < backtrack)

    def body(c):
        j, t, _ = c
        t = 0.5 * t
        return j + 1, t, accepted(t)

    _, t, ok = jax.lax.while_loop(cond, body, (jnp.asarray(0), lr, accepted(lr)))
    t = jnp.where(ok, t, jnp.zeros_like(t))
    return jax.tree.map(lambda x, y: x - t * y, th, g), t


def solve_inner(loss_fn: LossFn, phi, data, *, steps: int = 50, solver: str = "adam",
                learning_rate: float = 1e-2, newton_cg_iters: int = 50, newton_damping: float = 0.0,
                newton_max_step: float = 1.0, backtrack: int = 10,
                theta0=None, stop_distance: float | None = None) -> tuple[Any, dict]:
    """θ' ≈ argmin_θ loss_fn(θ, φ, data)[0], starting from θ0 (default φ).

    Args:
      loss_fn: (theta, phi, data) -> (loss, metrics), e.g. `make_inner_loss(...)`.
      steps: optimiser iterations (Adam steps, or Newton steps).
      learning_rate: Adam / gradient step size (armijo: the first step size tried).
      backtrack: armijo's maximum number of halvings per step.
      newton_cg_iters / newton_damping: CG cap and damping of each Newton system.
      newton_max_step: longest Newton/gradient step (parameter-space norm) per iteration.
      stop_distance: adam/sgd only: no further step once inner/distance exceeds it (checked
        before each step); None = always take every step. Adds inner/steps_taken.
    Returns (theta', diagnostics).
    """
    check_choice("solver", solver, SOLVERS)
    check(int(steps) >= 0, "steps", steps, ">= 0")
    check_stop(solver, stop_distance)
    phi, data = jax.lax.stop_gradient((phi, data))   # forward only: `bomrl.core.adaptation` differentiates
    theta = phi if theta0 is None else theta0
    with_aux = loss_at(loss_fn, phi, data)
    value = lambda th: with_aux(th)[0]  # noqa: E731
    value_and_grad = jax.value_and_grad(value)

    if solver in FIRST_ORDER:
        theta, per_step = first_order_steps(with_aux, theta, steps=steps, solver=solver, learning_rate=learning_rate,
                                            backtrack=backtrack, stop_distance=stop_distance)
    else:
        fracs = 2.0 ** jnp.arange(10, -31, -1)

        def step(th, _):
            f0, g = value_and_grad(th)
            hvp = lambda v: jax.jvp(jax.grad(value), (th,), (v,))[1]  # noqa: E731
            d, _ = cg_solve(hvp, g, max_iters=newton_cg_iters, tol=1e-12, damping=newton_damping)
            gd = tree_vdot(g, d)
            # Newton direction if it is a descent direction (CG stops at negative curvature), else the gradient
            newton_ok = gd > 0
            d = jax.tree.map(lambda a, b: jnp.where(newton_ok, a, b), d, g)
            gd = jnp.where(newton_ok, gd, tree_vdot(g, g))
            d_norm = tree_norm(d)

            def trial(t):
                return value(jax.tree.map(lambda x, y: x - t * y, th, d))

            # backtracking (Armijo) over t = 2^10 .. 2^-30, largest admissible t first: t <= 1 for the
            # Newton step, and every step at most newton_max_step long (stay in φ's basin)
            t_all = fracs.astype(f0.dtype)
            vals = jax.vmap(trial)(t_all)
            allowed = (t_all * d_norm <= newton_max_step) & ((t_all <= 1.0) | ~newton_ok)
            ok = allowed & jnp.isfinite(vals) & (vals <= f0 - 1e-4 * t_all * gd)
            t = jnp.where(jnp.any(ok), t_all[jnp.argmax(ok)], 0.0)
            return jax.tree.map(lambda x, y: x - t * y, th, d), None

        theta, per_step = jax.lax.scan(step, theta, None, length=steps)
    start = phi if theta0 is None else theta0
    return theta, solution_diagnostics(with_aux, theta, start, per_step, solver=solver, learning_rate=learning_rate,
                                       stop_distance=stop_distance)


def loss_at(loss_fn: LossFn, phi, data):
    """θ ↦ loss_fn(θ, φ, data) -> (loss, metrics), with the φ-only terms computed once when the loss
    offers it (`make_inner_loss(...).at_phi`); differentiable in φ and data either way."""
    at_phi = getattr(loss_fn, "at_phi", None)
    return at_phi(phi, data) if at_phi is not None else (lambda th: loss_fn(th, phi, data))


def solution_diagnostics(with_aux, theta, start, per_step, *, solver: str, learning_rate: float,
                         stop_distance: float | None) -> dict:
    """The solve's diagnostics at θ (constants: stop_gradient): the loss's metrics, inner/loss,
    inner/loss_initial (at the start), inner/grad_norm, inner/grad_ratio (‖∇L(θ)‖ / ‖∇L(start)‖),
    and armijo's inner/step_frac (mean step size / lr) or, with a stop distance, inner/steps_taken."""
    theta, start, per_step = jax.lax.stop_gradient((theta, start, per_step))   # per_step None: not reported
    value = lambda th: with_aux(th)[0]  # noqa: E731
    (loss, metrics), grad = jax.value_and_grad(with_aux, has_aux=True)(theta)
    loss_init, grad_init = jax.value_and_grad(value)(start)
    gnorm = tree_norm(grad)
    diagnostics = {**metrics, "inner/loss": loss, "inner/loss_initial": loss_init, "inner/grad_norm": gnorm,
                   "inner/grad_ratio": gnorm / jnp.maximum(tree_norm(grad_init), jnp.finfo(gnorm.dtype).tiny)}
    if solver == "armijo" and per_step is not None:   # mean step size over the K steps, as a fraction of lr
        diagnostics["inner/step_frac"] = jnp.mean(per_step) / learning_rate
    if stop_distance is not None and per_step is not None:
        diagnostics["inner/steps_taken"] = jnp.sum(per_step)
    return jax.lax.stop_gradient(diagnostics)


def check_stop(solver: str, stop_distance) -> None:
    """stop_distance: None, or a positive number with solver adam or sgd."""
    if stop_distance is None:
        return
    check(float(stop_distance) > 0, "stop_distance", stop_distance, "a number > 0 (or None: no stop)")
    check(solver in ("adam", "sgd"), "solver", solver, "adam or sgd with a stop distance")


def first_order_steps(with_aux, theta, *, steps: int, solver: str, learning_rate: float, backtrack: int = 10,
                      stop_distance: float | None = None, remat: bool = False):
    """The one step loop of the first-order solvers: `steps` adam / sgd / armijo steps on
    with_aux(θ) -> (loss, metrics) from θ, inside lax.scan. With stop_distance (adam, sgd), a step is
    taken only while no earlier check found metrics["inner/distance"] > stop_distance (checked at
    θ_k before step k); that choice, like armijo's step size, is a constant for autodiff, so reverse
    mode through the loop differentiates the steps taken. remat: rematerialise each step
    (jax.checkpoint) so that reverse mode keeps O(steps · |θ|) memory.
    Returns (θ_K, per-step values [steps]: armijo's step sizes, else 1 for each step taken)."""
    value = lambda th: with_aux(th)[0]  # noqa: E731
    if solver == "armijo":
        def step(th, _):
            return armijo_step(value, th, learning_rate, backtrack)

        init = theta
    else:
        opt = optax.adam(learning_rate) if solver == "adam" else optax.sgd(learning_rate)
        init = (theta, opt.init(theta), jnp.asarray(False))

        def step(carry, _):
            th, st, stopped = carry
            if stop_distance is None:
                g = jax.grad(value)(th)
            else:
                (_, m), g = jax.value_and_grad(with_aux, has_aux=True)(th)
                stopped = stopped | jax.lax.stop_gradient(m["inner/distance"] > stop_distance)
            upd, st_new = opt.update(g, st, th)
            th_new = optax.apply_updates(th, upd)
            if stop_distance is not None:
                keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(stopped, b, a), new, old)  # noqa: E731
                th_new, st_new = keep(th_new, th), keep(st_new, st)
            return (th_new, st_new, stopped), ~stopped

    step = jax.checkpoint(step) if remat else step
    carry, per_step = jax.lax.scan(step, init, None, length=steps)
    return (carry if solver == "armijo" else carry[0]), per_step


def solve_inner_tasks(loss_fn: LossFn, phi, data, **kwargs) -> tuple[Any, dict]:
    """vmap of `solve_inner` over the leading task axis of `data` (φ shared).
    Returns θ' with a leading task axis and per-task diagnostics [T]."""
    return jax.vmap(lambda d: solve_inner(loss_fn, phi, d, **kwargs))(data)
