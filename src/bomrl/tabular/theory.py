"""The paper's optimality guarantees, computed (docs/MATH.md §4; Theorems 3-4, Lemmas 1-2, Appendix N).

Quantities, all exact on tabular tasks:
- TEOG = E_τ[J_τ(pi*_τ) − J_τ(policy)], pi*_τ the optimal softmax policy of a bounded parameter set.
- Var_i(P(Γ)) = min_phi E_τ[D²_{τ,i}(pi_phi, pi*_τ)],  D²_τ(pi, pi') = E_{s~ν^pi_τ}[d²(pi(·|s), pi'(·|s))].
- ε (Assumption 2) and A_max (Assumption 1 / A'_max of Appendix N.3).
- Theorem 3 (i = 1, 2):  TEOG ≤ 2(1+γ) A / ((1−γ)² ε) · Var_i,      prescribed λ = 2A / ((1−γ)ε)
  Theorem 4 (i = 3):     TEOG ≤ ((6+4γ)L1² + 2L2) A / ((1−γ)² ε) · Var_3, λ = (6L1²+2L2) A / ((1−γ)ε)
  with L1 = 1, L2 = L3 = 0 for the tabular softmax, and the O(h(1/√T)) term dropped (Appendix A).
- The proof (Appendix N.2) gives, for any λ meeting the minorisation condition of Lemma 1/2
  (λ ≥ 2γA/((1−γ)ε), resp. 4γA L1²/((1−γ)ε)), the λ-dependent bound
  (2γA/((1−γ)²ε) + λ/(1−γ)) · Var  (resp. 4γA L1²/((1−γ)²ε) + λ/(1−γ)); reported as well.
- The form the paper's Frozen Lake figures draw (`bound_figure_form`; the released figure script
  37168178304 types it as constant · 9 · factor): the theorem's bound with its prescribed λ solved
  for A/ε and replaced by the λ in use, (1+γ)/(1−γ) · λ · Var_i for i = 1, 2 (= 9 λ Var at γ = 0.8)
  and ((6+4γ)L1² + 2L2) / ((1−γ)(6L1² + 2L2)) · λ · Var_3. It equals the theorem's bound only at
  the prescribed λ; at a smaller λ it is not a bound the theorems prove.

The three choices the paper leaves implicit are explicit options (defaults in `TheoryOptions`):
- the bounded parameter set: logits in [−B, B] (default B = 3: the optimal action then has
  probability ≥ 0.99 with 4 actions while every KL stays finite);
- ε: "center" (default) = min over tasks and decision states of ν under the Var-minimising policy
  pi_phi' — the only policy at which the proof of Theorems 3-4 applies Lemma 1 (Appendix N.2-N.3),
  "meta" = the same under the trained meta-policy, "remark1" = (1−γ) min_s rho(s), valid for every
  policy (Remark 1 (ii)) but loose;
- A: "center" (default) = A'_max of Appendix N.3, the max |advantage| of pi_phi' (the paper's own
  choice for its experiments), "meta" = of the trained meta-policy, "reward-bound" = r_max/(1−γ)
  (valid for every policy, Assumption 1's remark).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import optax

from bomrl.errors import check_choice
from bomrl.limits import MAX_ITERATIONS, check_int, check_positive
from bomrl.tabular import inner
from bomrl.tabular.mdp import (
    TabularMDP,
    advantage,
    bounded_optimal_logits,
    expected_return,
    softmax_policy,
    visitation,
)

TASK_AXES = TabularMDP(P=0, r=0, rho=0, gamma=None, terminal=0)
EPSILON_CHOICES = ("center", "meta", "remark1")
AMAX_CHOICES = ("center", "meta", "reward-bound")


@dataclass(frozen=True)
class TheoryOptions:
    theta_bound: float = 3.0
    """B of the bounded parameter set [−B, B]^{S×A} in which the optimal softmax policy is taken."""
    epsilon: str = "center"
    """How ε is obtained: center | meta | remark1 (see module docstring)."""
    a_max: str = "center"
    """How A_max is obtained: center (A'_max, Appendix N.3) | meta | reward-bound."""
    var_steps: int = 3000
    """Adam steps for the minimisation defining Var_i(P(Γ))."""

    def validate(self) -> None:
        check_positive("theta_bound", self.theta_bound)
        check_int("var_steps", self.var_steps, 1, MAX_ITERATIONS)
        check_choice("epsilon", self.epsilon, EPSILON_CHOICES)
        check_choice("a_max", self.a_max, AMAX_CHOICES)


def task_distance(mdp: TabularMDP, phi: jax.Array, theta: jax.Array, distance: str) -> jax.Array:
    """D²_τ(pi_phi, pi_theta) = E_{s~ν^{pi_phi}}[d²] over decision states (terminal ones weigh 0)."""
    nu = visitation(mdp, softmax_policy(phi))
    return jnp.sum(nu * inner.divergence(phi, theta, distance) * (~mdp.terminal))


def optimal_logits(tasks: TabularMDP, bound: float) -> jax.Array:
    """θ*_τ for every task  [K, S, A]."""
    return _optimal_logits(tasks, bound)


@partial(jax.jit, static_argnames=("bound",))
def _optimal_logits(tasks, bound):
    return jax.vmap(bounded_optimal_logits, in_axes=(TASK_AXES, None))(tasks, bound)


def task_variance(tasks: TabularMDP, theta_star: jax.Array, distance: str, steps: int = 3000):
    """Var_i = min_phi E_τ[D²_{τ,i}(pi_phi, pi*_τ)] by Adam from the centre of the optimal policies.

    Returns (Var, phi'). The objective is smooth but not convex in phi (ν depends on phi); the
    fixed start (log of the mean optimal policy; mean logits for d3) and a cosine-decayed step
    make the result reproducible. The best iterate is returned.
    """
    return _task_variance(tasks, theta_star, distance, steps)


@partial(jax.jit, static_argnames=("distance", "steps"))
def _task_variance(tasks, theta_star, distance, steps):
    mean_pi = jnp.mean(softmax_policy(theta_star), 0)
    phi0 = jnp.mean(theta_star, 0) if distance == "euclid" else jnp.log(mean_pi)

    def objective(phi):
        d = jax.vmap(task_distance, in_axes=(TASK_AXES, None, 0, None))(tasks, phi, theta_star, distance)
        return jnp.mean(d)

    opt = optax.adam(optax.cosine_decay_schedule(0.05, steps))

    def step(carry, _):
        phi, state, best_val, best_phi = carry
        val, g = jax.value_and_grad(objective)(phi)
        better = val < best_val
        best_val = jnp.where(better, val, best_val)
        best_phi = jnp.where(better, phi, best_phi)
        upd, state = opt.update(g, state)
        return (optax.apply_updates(phi, upd), state, best_val, best_phi), None

    init = (phi0, opt.init(phi0), jnp.asarray(jnp.inf, phi0.dtype), phi0)
    (phi, _, best_val, best_phi), _ = jax.lax.scan(step, init, None, length=steps)
    final = objective(phi)
    return jnp.minimum(final, best_val), jnp.where(final <= best_val, phi, best_phi)


def min_visitation(tasks: TabularMDP, phi: jax.Array) -> jax.Array:
    """min over tasks and decision states of ν^{pi_phi}_τ(s)."""
    nu = jax.vmap(visitation, in_axes=(TASK_AXES, None))(tasks, softmax_policy(phi))
    return jnp.min(jnp.where(tasks.terminal, jnp.inf, nu))


def max_abs_advantage(tasks: TabularMDP, phi: jax.Array) -> jax.Array:
    """max over tasks, decision states and actions of |A^{pi_phi}_τ(s, a)|."""
    A = jax.vmap(advantage, in_axes=(TASK_AXES, None))(tasks, softmax_policy(phi))
    return jnp.max(jnp.where(tasks.terminal[..., None], 0.0, jnp.abs(A)))


def theorem_constants(distance: str, gamma: float, a: float, eps: float, lam: float,
                      L1: float = 1.0, L2: float = 0.0) -> dict:
    """Bound coefficient, prescribed λ and the conditions on λ, for Theorem 3 (kl, rkl) or 4 (euclid)."""
    g = gamma
    if distance in ("kl", "rkl"):
        coef = 2 * (1 + g) * a / ((1 - g) ** 2 * eps)
        lam_theorem = 2 * a / ((1 - g) * eps)
        lam_mm = 2 * g * a / ((1 - g) * eps)            # Lemma 1 (minorisation)
        lam_conv = 2 * a                                # Theorem 1
        mm_coef = 2 * g * a / ((1 - g) ** 2 * eps)
        theorem = "Theorem 3"
    else:
        coef = ((6 + 4 * g) * L1**2 + 2 * L2) * a / ((1 - g) ** 2 * eps)
        lam_theorem = (6 * L1**2 + 2 * L2) * a / ((1 - g) * eps)
        lam_mm = 4 * g * a * L1**2 / ((1 - g) * eps)    # Lemma 2
        lam_conv = (6 * L1**2 + 2 * L2) * a             # Theorem 2 (strict)
        mm_coef = 4 * g * a * L1**2 / ((1 - g) ** 2 * eps)
        theorem = "Theorem 4"
    return {
        "theorem": theorem,
        "bound_coefficient": coef,
        "lambda_theorem": lam_theorem,
        "lambda_minorization": lam_mm,
        "lambda_convergence": lam_conv,
        "lambda_used_meets_theorem": bool(lam >= lam_theorem),
        "lambda_used_meets_minorization": bool(lam >= lam_mm),
        "lambda_used_meets_convergence": bool(lam > lam_conv if distance == "euclid" else lam >= lam_conv),
        "bound_at_used_lambda_coefficient": mm_coef + lam / (1 - g),
        "figure_form_coefficient": figure_form_coefficient(distance, g, L1, L2),
    }


def figure_form_coefficient(distance: str, gamma: float, L1: float = 1.0, L2: float = 0.0) -> float:
    """c with bound_figure_form = c · λ · Var: the theorem's bound coefficient over its prescribed λ,
    (1+γ)/(1−γ) for Theorem 3 (kl, rkl), ((6+4γ)L1² + 2L2)/((1−γ)(6L1² + 2L2)) for Theorem 4."""
    g = gamma
    if distance in ("kl", "rkl"):
        return (1 + g) / (1 - g)
    return ((6 + 4 * g) * L1**2 + 2 * L2) / ((1 - g) * (6 * L1**2 + 2 * L2))


def compute_theory(tasks: TabularMDP, phi_meta: jax.Array, distance: str, lam: float,
                   options: TheoryOptions = TheoryOptions(), theta_star: jax.Array | None = None) -> dict:
    """Everything §4 asks for, as plain floats: ε, A, Var, the bound, λ's and their conditions."""
    options.validate()
    gamma = float(tasks.gamma)
    if theta_star is None:
        theta_star = optimal_logits(tasks, options.theta_bound)
    var, phi_center = task_variance(tasks, theta_star, distance, options.var_steps)
    eps = {
        "center": lambda: min_visitation(tasks, phi_center),
        "meta": lambda: min_visitation(tasks, phi_meta),
        "remark1": lambda: (1 - gamma) * jnp.min(jnp.where(tasks.terminal, jnp.inf, tasks.rho)),
    }[options.epsilon]()
    r_max = float(jnp.max(jnp.abs(tasks.r)))
    a = {
        "center": lambda: max_abs_advantage(tasks, phi_center),
        "meta": lambda: max_abs_advantage(tasks, phi_meta),
        "reward-bound": lambda: r_max / (1 - gamma),
    }[options.a_max]()
    eps, a, var = float(eps), float(a), float(var)
    consts = theorem_constants(distance, gamma, a, eps, lam) if eps > 0 else None
    bound = consts["bound_coefficient"] * var if consts else float("inf")
    out = {
        "epsilon": eps,
        "epsilon_mode": options.epsilon,
        "a_max": a,
        "a_max_mode": options.a_max,
        "a_max_global": r_max / (1 - gamma),
        "a_prime_max": float(max_abs_advantage(tasks, phi_center)),
        "task_variance": var,
        "theta_bound": options.theta_bound,
        "bound": bound,
        "lambda": lam,
    }
    if consts:
        out.update({k: v for k, v in consts.items()
                    if k not in ("bound_at_used_lambda_coefficient", "figure_form_coefficient")})
        out["bound_at_used_lambda"] = consts["bound_at_used_lambda_coefficient"] * var
    out["bound_figure_form"] = figure_form_coefficient(distance, gamma) * lam * var
    return out


def expected_returns(tasks: TabularMDP, logits: jax.Array) -> jax.Array:
    """J_τ(softmax(logits_τ)) for every task; logits [K, S, A] or shared [S, A]."""
    axes = 0 if logits.ndim == 3 else None
    return jax.vmap(lambda m, th: expected_return(m, softmax_policy(th)), in_axes=(TASK_AXES, axes))(tasks, logits)
