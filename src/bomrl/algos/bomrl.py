"""BO-MRL for locomotion: the paper's practical Algorithm 2 (Appendix D) on the shared sampler.

Per meta-iteration, for a batch of N tasks:
  1. sample B_τ with the meta-policy π_φ (one batch per task), estimate Q by the advantage pipeline;
  2. one-time adaptation: θ'_τ = argmin_θ −Ê_{B_τ}[h(π_θ/π_φ) Q] + λ D²_τ(π_φ, π_θ)   (eq. 7),
     solved with Adam from θ = φ, no new data (`bomrl.core.inner_solver`);
  3. sample fresh data with every π_θ'_τ and take the policy gradient g_τ = ∇_θ J_τ(π_θ)|θ';
  4. hypergradient ∇_φ J_τ = −∇²_φθ L · v with (∇²_θθ L + damping) v = g_τ by CG (eq. 8,
     "practical"; or "score": Prop. 2 with the Appendix C estimate of ∇_φ Q from B_τ);
  5. TRPO meta-step along the task mean of the hypergradients, with the KL of the meta-policy
     measured on the pre-update states B_τ and max KL δ (Algorithm 2, line 7; or, with
     trust_region="post", MAML-TRPO's KL of the adapted policies on the post-update data).

The meta-objective depends on φ only through new data, so TRPO's line search uses the linear model
gᵀΔ (an explicit surrogate does not exist); only the KL constraint can reject a step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from bomrl.algos.base import AlgoState, MetaAlgorithm, broadcast_tasks
from bomrl.algos.data import RELEASED_Q, AdvantageSettings, Data, QSettings, masked_mean
from bomrl.algos.maml_trpo import adapted_fisher_vp, kl_of_adapted
from bomrl.core import DISTANCES, distance_names
from bomrl.core.adaptation import adapt, zero_stats
from bomrl.core.hypergradient import cg_linear_solve, score_q
from bomrl.core.inner_solver import solve_inner
from bomrl.core.losses import InnerData, make_inner_loss, policy_gradient
from bomrl.core.trpo import TRPOSettings, trpo_step
from bomrl.core.tree import tree_norm
from bomrl.errors import check, check_literals
from bomrl.limits import MAX_COUNT, check_int, check_nonnegative, check_positive


@dataclass(frozen=True)
class BoMrlConfig(TRPOSettings, QSettings, AdvantageSettings):
    """BO-MRL (Algorithm 2) hyper-parameters: the fields below, the TRPO meta-step (`TRPOSettings`;
    the paper's App. B radius is max_kl = 1e-3, the default is the MAML family's 0.01) and the
    advantage pipeline (`AdvantageSettings`; gae_lambda 1.0 = Monte-Carlo Q minus the linear
    baseline, the paper's Monte-Carlo Q; the normalised advantages are the Q of eq. (7) and of the
    outer policy gradient). Sources in docs/BASELINES.md."""

    lam: float = 0.5
    """regularisation weight λ of eq. (7) (paper App. B: 0.5; 0.4 for Alg(2) on HalfCheetah velocity)"""
    distance: str = "d1"
    """policy distance of eq. (1): d1 = KL(π_φ‖π_θ), d2 = KL(π_θ‖π_φ), d3 = ‖θ−φ‖² (aliases kl, rkl,
    euclid), or a name registered with bomrl.core.register_distance"""
    surrogate: Literal["h", "ratio", "linear"] = "h"
    """inner surrogate: h = eq. (7) (paper's locomotion choice), ratio = eq. (2), linear = eq. (9)"""
    inner_solver: Literal["adam", "sgd", "armijo", "newton"] = "armijo"
    """optimiser of the within-task solve: adam (paper App. B), sgd (plain gradient descent), armijo
    (default: gradient descent, each step halved until the inner loss decreases enough; it cannot
    diverge when the loss's curvature outgrows 2/inner_lr, which fixed-step sgd did on seed 1,
    docs/BASELINES.md) or newton (Newton-CG with backtracking)"""
    inner_steps: int = 10
    """steps of the within-task solve, any solver (paper App. B: 50 Adam steps; default 10 gradient
    steps, measured to generalise better to fresh data, docs/BASELINES.md "BO-MRL's adaptation";
    named inner_steps_adam before 2026-12, a name still read)"""
    inner_lr: float = 0.1
    """step size of the within-task solve (adam/sgd; armijo: the first step tried; not stated in the
    paper; measured choice: 0.1, the MAML family's inner step size; the paper preset uses Adam at 0.01)"""
    inner_backtrack: int = 6
    """armijo: maximum halvings of inner_lr per step (6: down to inner_lr/64; a step finding no
    decrease is skipped)"""
    inner_stop_distance: float = 0.0
    """adam/sgd: take no further step once the λ-free distance D² of eq. (7) exceeds this (checked
    before each step, the crossing step kept; the paper's released scripts: 3.0 for d1, d2 and d3,
    with 50 Adam steps at 1e-3). 0 = every step is taken"""
    hypergradient: Literal["practical", "score", "unrolled"] = "unrolled"
    """implicit eq. (8) without ∇_φQ ("practical"), implicit Prop. 2 with the Appendix C ∇_φQ estimate
    ("score"), or "unrolled": reverse mode through the solver's steps (the exact derivative of
    what the adaptation returns; adam/sgd solvers)"""
    hyper_cg_iters: int = 10
    """CG iterations for (∇²_θθ L + damping) v = g (our choice, as TRPO's 10)"""
    hyper_damping: float = 1e-2
    """damping added to ∇²_θθ L in the hypergradient solve (our choice; keeps CG well posed)"""
    trust_region: Literal["pre", "post"] = "pre"
    """what the meta-step's KL bound max_kl measures: "pre" = KL(π_φ‖π_p) on the pre-update states
    (the paper's Algorithm 2, line 7); "post" = the adapted policies' KL(π_θ'(φ)‖π_θ'(p)) on the
    post-update data, θ'(p) re-solved on the stored batches (MAML-TRPO's constraint)"""
    inner_q: Literal["standardised", "centred", "raw"] = "standardised"
    """the Q of eq. (7): the GAE advantage (Monte-Carlo Q minus the linear baseline) as the outer step
    uses it (standardised per task unless normalize_advantages is off; the MAML family's
    convention), only centred per task (scale ≈ the returns', as in the paper's released scripts),
    or raw. The same λ regularises differently under each: compare by the adaptation KL, inner/kl"""
    line_search: Literal["surrogate", "linear"] = "surrogate"
    """TRPO acceptance: "surrogate" = a candidate φ must keep KL ≤ δ AND raise the adapted policies'
    surrogate on the post-update data, re-solving the adaptation on the stored B_τ (as the MAML
    family does); "linear" = KL only, improvement by the linear model gᵀΔ (the paper's Algorithm 2)"""

    # former names of settings, still read from --set, config files and saved runs
    RENAMED = {"inner_steps_adam": "inner_steps"}
    # settings added after runs were saved: a saved algo_config without one ran with this value
    SAVED_DEFAULTS = {"inner_solver": "adam", "line_search": "linear"}

    @property
    def solver_kwargs(self) -> dict:
        """The within-task solve's settings, as `solve_inner` and `adapt` take them."""
        return {"steps": self.inner_steps, "solver": self.inner_solver, "learning_rate": self.inner_lr,
                "backtrack": self.inner_backtrack, "stop_distance": self.inner_stop_distance or None}

    def __post_init__(self):
        check_literals(self)   # the choices of every Literal field, before the checks that combine them
        check_positive("lam", self.lam)
        check(self.distance in DISTANCES, "distance", self.distance, "one of " + ", ".join(distance_names()))
        check_int("inner_steps", self.inner_steps, 1, MAX_COUNT)
        check_positive("inner_lr", self.inner_lr)
        check_int("inner_backtrack", self.inner_backtrack, 0, 60)
        check_nonnegative("inner_stop_distance", self.inner_stop_distance)
        check(self.inner_stop_distance == 0 or self.inner_solver in ("adam", "sgd"), "inner_stop_distance",
              self.inner_stop_distance, "0 unless inner_solver is adam or sgd")
        check(not (self.hypergradient == "unrolled" and self.inner_solver == "newton"), "hypergradient",
              self.hypergradient, "practical or score with inner_solver=newton (unrolled needs adam, sgd or armijo)")
        check_int("hyper_cg_iters", self.hyper_cg_iters, 1, MAX_COUNT)
        check_nonnegative("hyper_damping", self.hyper_damping)
        check(not (self.trust_region == "post" and self.inner_solver == "newton"), "trust_region",
              self.trust_region, "pre with inner_solver=newton (post differentiates through adam, sgd or armijo)")
        super().__post_init__()


def env_defaults(env: str, settings: dict) -> dict:
    """The paper's per-environment settings (Appendix B), applied below presets and user values:
    λ = 0.4 for Alg(2) (distance d2) on HalfCheetah velocity, 0.5 (the field default) elsewhere.
    `settings` are the preset's and the user's values (they decide the distance)."""
    distance = settings.get("distance", BoMrlConfig.distance)
    if env == "halfcheetah-vel" and distance in DISTANCES and DISTANCES.canonical(distance) == "d2":
        return {"lam": 0.4}
    return {}


# Named presets (`bomrl train --preset NAME`). Precedence, lowest first: field default <
# env_defaults < preset < --config file < --set and the typed flags (--lam, --distance).
PRESETS = {
    # the paper's Appendix B: 50 Adam steps (step size ours: 0.01), implicit eq. (8) hypergradient by CG
    "paper": {"inner_solver": "adam", "inner_steps": 50, "inner_lr": 0.01, "hypergradient": "practical",
              "max_kl": 1e-3, "line_search": "linear"},
    # the paper's solver (50 Adam steps) with the exact derivative and the surrogate line search
    "paper-unrolled": {"inner_solver": "adam", "inner_steps": 50, "inner_lr": 0.01,
                       "hypergradient": "unrolled", "line_search": "surrogate", "max_kl": 1e-3},
    # a strongly convex inner problem solved to optimality, where the implicit derivative is exact:
    # d3 with λ = 5 (first-order solution = MAML's step with α = 1/(2λ) = 0.1), 50 gradient steps
    "convex-d3": {"distance": "euclid", "lam": 5.0, "inner_solver": "sgd", "inner_lr": 0.05,
                  "inner_steps": 50, "hypergradient": "practical", "line_search": "linear"},
    # the best BO-MRL under the standard protocol (docs/REPRODUCTION.md, "Where BO-MRL loses to
    # MAML, and why"): the within-task algorithm is MAML's one policy-gradient step (d3, λ 5, linear
    # surrogate, one step of 0.1: θ' equals MAML's), differentiated exactly, with the paper's
    # meta-step (TRPO bounding KL(π_φ_old ‖ π_φ) on the pre-update states)
    "one-step": {"distance": "euclid", "lam": 5.0, "surrogate": "linear", "inner_solver": "sgd",
                 "inner_steps": 1, "inner_lr": 0.1, "hypergradient": "unrolled"},
    # the paper's released Ant-dir trainer (36902121699, solver 58686367566; docs/REPRODUCTION.md,
    # "Under the released scripts' protocol"): λ 5 on L/λ + D (the same minimiser as L + λD), 50
    # Adam steps at 1e-3 stopped at a distance of 3, implicit hypergradient by 10 undamped CG
    # iterations, TRPO δ 3e-2 undamped with 10 halvings, γ 0.995, Monte-Carlo Q centred per task and
    # extended by a 200-step continuation (train with --horizon 400 for 200-step episodes). Pick
    # the distance with --distance; the run settings (tasks, episodes, hidden) are flags
    "released": {**RELEASED_Q, "lam": 5.0, "surrogate": "h", "inner_solver": "adam", "inner_steps": 50,
                 "inner_lr": 1e-3, "inner_stop_distance": 3.0, "hypergradient": "practical",
                 "hyper_cg_iters": 10, "hyper_damping": 0.0, "max_kl": 0.03, "cg_damping": 0.0,
                 "ls_steps": 10, "ls_ratio": 0.5, "line_search": "linear", "trust_region": "pre"},
}


def inner_data(data: Data, q: str = "standardised"):
    """The meta-policy's batch [T, ...] as `InnerData` (weights = mask; Q := the advantage estimate,
    scaled as `BoMrlConfig.inner_q` says: "standardised" = data.adv, "centred" = data.adv_raw minus
    its per-task mean over valid steps, "raw" = data.adv_raw)."""
    if q == "standardised":
        qv = data.adv
    else:
        check(data.adv_raw is not None, "inner_q", q, "standardised (this batch has no raw advantages)")
        qv = data.adv_raw
        if q == "centred":
            n = jnp.maximum(jnp.sum(data.mask, axis=(1, 2), keepdims=True), 1.0)
            qv = (qv - jnp.sum(qv * data.mask, axis=(1, 2), keepdims=True) / n) * data.mask
    return InnerData(data.obs, data.act, data.mask, qv, qv)


def _tree_mean0(tree):
    return jax.tree.map(lambda x: jnp.mean(x, axis=0), tree)


PREMISE_TOL = 0.1   # inner/grad_ratio and hyper/rel_residual above this: the implicit derivative is off
log = logging.getLogger("bomrl.hypergradient")


class BoMrl(MetaAlgorithm):
    """BO-MRL Algorithm 2; see the module docstring."""

    name = "bomrl"
    label = "BO-MRL"   # display name (plots, tables)
    Config = BoMrlConfig
    PRESETS = PRESETS
    env_defaults = staticmethod(env_defaults)
    VARIANT = ("distance",)
    _warned = False

    @classmethod
    def variant_label(cls, settings) -> str:
        """d1/d2/d3 for the built-in distances under any of their names (kl -> d1), else the name."""
        name = settings.get("distance", BoMrlConfig.distance)
        return DISTANCES.canonical(name) if name in DISTANCES else str(name)

    def __init__(self, config: BoMrlConfig, policy):
        super().__init__(config, policy)
        c = config
        self.inner_loss = make_inner_loss(policy, c.distance, c.lam, c.surrogate)
        self.linear_solve = cg_linear_solve(c.hyper_cg_iters, damping=c.hyper_damping)
        self._adapt_jit = jax.jit(self._adapt)
        self._adapt_vjp_jit = jax.jit(self._adapt_vjp)
        self._update_jit = jax.jit(self._update)
        self._pending = None   # (θ'_T, pullbacks) of the last training adaptation, for the next meta-step

    @property
    def adapt_rounds(self) -> int:
        return 1   # one-time adaptation: one batch, solved to optimality

    @property
    def implicit(self) -> bool:
        """Whether the hypergradient is the implicit derivative (practical, score) or the unrolled one."""
        return self.config.hypergradient != "unrolled"

    def inner_data(self, data: Data) -> InnerData:
        """`inner_data` with this configuration's Q scale."""
        return inner_data(data, self.config.inner_q)

    # ---- step 2: within-task solve (vmapped over tasks; φ may differ per task at meta-test) ------
    def solve(self, phi, data):
        """Alg(π_φ, λ, τ) for one task, forward only: (θ', diagnostics); data is `InnerData` (with
        data.logp the sampling log-probabilities are those, else log π_φ under stop_gradient)."""
        return solve_inner(self.inner_loss, phi, data, **self.config.solver_kwargs)

    def adaptation(self, phi, data: InnerData, linear_stats=None, solution=None):
        """θ'_τ(φ) for one task as a differentiable function (`bomrl.core.adaptation.adapt`):
        (θ', diagnostics). Its derivative is the configured hypergradient: the solver's steps
        differentiated ("unrolled"), or the implicit derivative with Q constant ("practical", eq. 8)
        or with Appendix C's ∇_φ Q ("score"). linear_stats / solution: as `adapt` (implicit only)."""
        c = self.config
        if c.hypergradient == "score":
            data = data._replace(q=score_q(self.policy, c.discount)(phi, data))
        return adapt(self.inner_loss, phi, data, derivative="implicit" if self.implicit else "unrolled",
                     linear_solve=self.linear_solve, linear_stats=linear_stats,
                     solution=solution if self.implicit else None, **c.solver_kwargs)

    def pullbacks(self, phi_t, data: InnerData, thetas=None):
        """(θ'_T, diagnostics [T], pullbacks): `jax.vjp` of the adaptation of each task at its φ
        (phi_t [T, ...]); pullbacks(g_T) -> (hypergradients [T, ...], linear-solve stats [T]).
        With thetas (implicit only), the solutions already computed are used, not solved again."""
        stats = zero_stats(jax.tree.leaves(phi_t)[0].dtype)

        def one(ph, d, th):
            theta, pullback, diag = jax.vjp(lambda p, s: self.adaptation(p, d, s, th), ph, stats, has_aux=True)
            return theta, diag, pullback

        return jax.vmap(one)(phi_t, data, thetas)

    def _adapt(self, params_t, data: Data):
        return jax.vmap(self.solve)(params_t, self.inner_data(data))

    def _adapt_vjp(self, params_t, data: Data):
        return self.pullbacks(params_t, self.inner_data(data))

    def _adapt_batched(self, params_t, data):
        return self._adapt_jit(params_t, data)[0]

    def _adapt_with_metrics(self, params_t, data):
        """The training adaptation: θ'_T and its pullbacks (kept for the meta-step: the forward
        solve runs once per iteration), with the diagnostics averaged over tasks."""
        theta, diag, pullbacks = self._adapt_vjp_jit(params_t, data)
        self._pending = (jax.tree.leaves(theta), pullbacks)
        self._last_grad_ratio = diag["inner/grad_ratio"]
        keep = ("inner/loss", "inner/loss_initial", "inner/grad_norm", "inner/grad_ratio", "inner/kl",
                "inner/distance", "inner/surrogate", "inner/step_frac", "inner/steps_taken")
        return theta, {k: v for k, v in diag.items() if k in keep}

    # ---- steps 3-5 ------------------------------------------------------------------------------
    def meta_gradient(self, phi, pre: Data, post: Data, thetas, pullbacks=None):
        """Task mean of the hypergradients ∇_φ J_τ(π_θ'_τ) (pytree like φ) and metrics: the
        adaptation's vjp (`pullbacks`) applied to g_τ = ∇_θ J_τ(π_θ)|θ'_τ on the post-update data.

        pre / post: [T, ...] batches of π_φ and of the adapted π_θ'_τ; thetas: θ'_τ [T, ...];
        pullbacks: those of the adaptation that produced thetas (`pullbacks`); None: computed here
        (implicit: at thetas; unrolled: the solve runs again).
        """
        policy = self.policy
        g = jax.vmap(lambda th, d: policy_gradient(policy, th, d.obs, d.act, d.adv, d.mask))(thetas, post)
        if pullbacks is None:
            phi_t = broadcast_tasks(phi, jax.tree.leaves(thetas)[0].shape[0])
            _, _, pullbacks = self.pullbacks(phi_t, self.inner_data(pre), thetas if self.implicit else None)
        hg, stats = jax.vmap(lambda pb, gg: pb(gg))(pullbacks, g)
        metrics = {"hyper/norm": jnp.mean(jax.vmap(tree_norm)(hg))}
        if self.implicit:
            metrics.update({"hyper/" + k[3:]: jnp.mean(v) for k, v in stats.items()})
        return _tree_mean0(hg), metrics

    def pre_kl(self, phi, pre: Data):
        """kl_fn(p) = mean over tasks and pre-update states of KL(π_φ(·|s) ‖ π_p(·|s))."""
        policy = self.policy
        dist_old = jax.lax.stop_gradient(jax.vmap(policy.apply, (None, 0))(phi, pre.obs))

        def kl_fn(p):
            dist = jax.vmap(policy.apply, (None, 0))(p, pre.obs)
            return jnp.mean(jax.vmap(masked_mean)(policy.kl(dist_old, dist), pre.mask))

        return kl_fn

    def post_kl(self, phi, pre: Data, post: Data, thetas):
        """(kl_fn, fvp) of the "post" trust region: kl_fn(p) = mean over tasks and post-update states
        of KL(π_θ'(φ)(·|s) ‖ π_θ'(p)(·|s)), θ'(p) re-solved on the stored B_τ with the batch's sampling
        probabilities held at π_φ's (as `post_surrogate`); fvp its Hessian at φ in Gauss-Newton form
        (MAML-TRPO's `adapted_fisher_vp`, exact there)."""
        c, policy = self.config, self.policy
        pre_in = self.sampled_inner_data(phi, pre)
        # differentiable in p: the same steps as the adaptation, differentiated through
        theta_fn = lambda p: jax.vmap(lambda d: adapt(  # noqa: E731
            self.inner_loss, p, d, derivative="unrolled", **c.solver_kwargs)[0])(pre_in)
        dist_old = jax.lax.stop_gradient(jax.vmap(policy.apply)(thetas, post.obs))

        def kl_fn(p):
            return kl_of_adapted(policy, theta_fn(p), post, dist_old)

        return kl_fn, adapted_fisher_vp(policy, theta_fn, phi, post)

    def meta_step(self, phi, pre: Data, post: Data, thetas, grad):
        """Step 5: the TRPO meta-step along `grad` (the task-mean hypergradient): (new φ, trpo/ metrics)."""
        c = self.config
        objective = self.post_surrogate(phi, pre, post, thetas) if c.line_search == "surrogate" else None
        if c.trust_region == "post":
            kl_fn, fvp = self.post_kl(phi, pre, post, thetas)
        else:
            kl_fn, fvp = self.pre_kl(phi, pre), None
        new_phi, tm = trpo_step(objective, kl_fn, phi, grad=grad, fvp_fn=fvp, **c.trpo_kwargs)
        tm["trpo/rejected"] = tm["trpo/ls_iterations"] - tm["trpo/accepted"].astype(tm["trpo/ls_iterations"].dtype)
        return new_phi, tm

    def _update(self, phi, pre, post, thetas, pullbacks=None):
        grad, metrics = self.meta_gradient(phi, pre, post, thetas, pullbacks)
        new_phi, tm = self.meta_step(phi, pre, post, thetas, grad)
        return new_phi, {**metrics, **tm}

    def sampled_inner_data(self, phi, pre: Data):
        """`inner_data(pre)` with the sampling log-probabilities fixed at π_φ's (constants), so that
        re-solving at another p keeps the ratio's denominator the probability the batch was drawn with."""
        policy = self.policy
        pre_in = self.inner_data(pre)
        logp = jax.vmap(lambda d: policy.log_prob(policy.apply(phi, d.obs), d.act))(pre_in)
        return pre_in._replace(logp=jax.lax.stop_gradient(logp))

    def post_surrogate(self, phi, pre: Data, post: Data, thetas):
        """objective(p) = mean over tasks of Ê_post[π_θ'(p)(a|s) / π_θ'(φ)(a|s) · A]: the adapted
        policies' surrogate on the post-update data, θ'(p) re-solved on the stored B_τ with the
        batch's sampling probabilities held at π_φ's. Its gradient at p = φ is the unrolled
        hypergradient's task mean."""
        policy = self.policy
        pre_in = self.sampled_inner_data(phi, pre)
        logp_old = jax.lax.stop_gradient(jax.vmap(lambda th, d: policy.log_prob(policy.apply(th, d.obs), d.act))(
            thetas, post))

        def objective(p):
            th = jax.vmap(lambda d: self.solve(p, d)[0])(pre_in)
            logp = jax.vmap(lambda t, d: policy.log_prob(policy.apply(t, d.obs), d.act))(th, post)
            return jnp.mean(jax.vmap(masked_mean)(jnp.exp(logp - logp_old) * post.adv, post.mask))

        return objective

    def _meta_update(self, state: AlgoState, inner_datas, post, adapted_t, rng):
        pending, self._pending = self._pending, None   # the pullbacks of exactly these θ'_T, else none
        leaves = jax.tree.leaves(adapted_t)
        same = pending is not None and len(pending[0]) == len(leaves) and all(
            a is b for a, b in zip(pending[0], leaves))
        new_phi, metrics = self._update_jit(state.params, inner_datas[0], post, adapted_t,
                                            pending[1] if same else None)
        if self.config.hypergradient != "unrolled" and not self._warned:
            ratio = float(jnp.mean(getattr(self, "_last_grad_ratio", 0.0)))
            resid = float(metrics.get("hyper/rel_residual", 0.0))
            if ratio > PREMISE_TOL or resid > PREMISE_TOL:
                self._warned = True
                log.warning("the implicit-function premise fails (inner/grad_ratio %.2f, hyper/rel_residual "
                            "%.2f, both should be <= %.2f): the hypergradient is not the derivative of the "
                            "adaptation; solve the inner problem further or use hypergradient=unrolled "
                            "(warned once per run)", ratio, resid, PREMISE_TOL)
        return state._replace(params=new_phi, iteration=state.iteration + 1), metrics
