"""Meta-training (Algorithm 1) and meta-testing on tabular task distributions.

- BO-MRL: ascend E_τ[J_τ(Alg(pi_phi, λ, τ))] with the Prop. 1 hypergradient (including the ∇_phi Q
  term of Appendix C unless include_dq=False), in "exact" mode (exact Q, ν, ∇Q) or "mc" mode
  (Monte-Carlo estimates from fresh episodes, see estimate.py).
- MAML: ascend E_τ[J_τ(phi + η E[∇ log pi_phi Q])], meta-gradient through the inner step with the
  inner data held fixed (no ∇_phi Q term, as MAML).
- Meta-test: k = 0..K adaptation steps; every step collects data with the current policy (fresh
  episodes in mc mode) and applies one Alg(i) (BO-MRL) or one PG step (MAML, random init).

All loops are `lax.scan` over iterations of a function `vmap`ped over tasks, jitted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import optax

from bomrl.errors import check_choice
from bomrl.limits import MAX_COUNT, MAX_ITERATIONS, check_int, check_positive
from bomrl.tabular import hypergrad, inner
from bomrl.tabular.estimate import mc_estimate
from bomrl.tabular.mdp import TabularMDP, evaluate, grad_q_tabular, softmax_policy, visitation
from bomrl.tabular.theory import TASK_AXES, expected_returns

MODES = ("exact", "mc")


@dataclass(frozen=True)
class SampleSettings:
    mode: str = "mc"
    """How Q (and ν, ∇Q) are obtained: exact (linear solves) | mc (Monte-Carlo episodes, as the paper)."""
    rollouts_per_pair: int = 10
    """mc: episodes started in each (s, a) to estimate Q̂(s, a) and ∇Q̂(s, a)."""
    visitation_episodes: int = 200
    """mc: episodes from rho to estimate the visitation ν̂."""
    horizon: int = 40
    """mc: episode length (γ^40 ≈ 1e-4 at γ = 0.8, so truncation is negligible)."""

    def validate(self) -> None:
        check_choice("q_estimate", self.mode, MODES)
        for name in ("rollouts_per_pair", "visitation_episodes", "horizon"):
            check_int(name, getattr(self, name), 1, MAX_COUNT)


def _data(mdp: TabularMDP, phi, key, s: SampleSettings):
    """(Q, ∂Q/∂phi, ν) of pi_phi: exact, or estimated from fresh episodes."""
    if s.mode == "exact":
        pi = softmax_policy(phi)
        _, Q = evaluate(mdp, pi)
        return Q, grad_q_tabular(mdp, pi), visitation(mdp, pi)
    est = mc_estimate(mdp, phi, key, s.rollouts_per_pair, s.visitation_episodes, s.horizon)
    return est.Q, est.dQ, est.nu


def _outer_G(mdp, theta, key, s: SampleSettings):
    """G = ∂J/∂pi at the adapted policy: ν Q / (1-γ), exact or from fresh episodes of pi'."""
    if s.mode == "exact":
        return hypergrad.outer_gradient(mdp, theta)
    est = mc_estimate(mdp, theta, key, s.rollouts_per_pair, s.visitation_episodes, s.horizon)
    return est.nu[:, None] * est.Q / (1.0 - mdp.gamma)


def bomrl_task_gradient(mdp, phi, key, lam, distance, s: SampleSettings, include_dq=True):
    """Prop. 1 hypergradient of one task, exact or estimated  [S, A]."""
    k1, k2 = jax.random.split(key)
    Q, dQ, _ = _data(mdp, phi, k1, s)
    theta = inner.adapt(phi, Q, lam, distance, differentiable=False)
    G = _outer_G(mdp, theta, k2, s)
    return hypergrad.hypergradient_from_estimates(phi, theta, Q, dQ, G, lam, distance, include_dq)


def maml_task_gradient(mdp, phi, key, step, s: SampleSettings):
    """MAML's meta-gradient of one task: vjp of the inner PG step with the outer policy gradient."""
    k1, k2 = jax.random.split(key)
    Q, _, nu = _data(mdp, phi, k1, s)
    theta, vjp = jax.vjp(lambda ph: inner.pg_step(ph, nu, Q, step), phi)
    G = _outer_G(mdp, theta, k2, s)
    return vjp(hypergrad.softmax_jvp(softmax_policy(theta), G))[0]  # ∇_θ J = J_softmax(θ) G


@dataclass(frozen=True)
class MetaTrainSettings:
    iterations: int = 100
    """Meta-iterations of Algorithm 1 (every iteration uses all tasks of the distribution)."""
    learning_rate: float = 0.1
    """Meta step size (Adam)."""
    include_dq: bool = True
    """Keep the ∇_phi Q term of Appendix C in BO-MRL's hypergradient (Prop. 1/2 exact)."""

    def validate(self) -> None:
        check_int("iterations", self.iterations, 0, MAX_ITERATIONS)
        check_positive("learning_rate", self.learning_rate)


def _task_gradient(mdp, phi, key, param, algo: str, distance: str, sample: SampleSettings, include_dq: bool):
    if algo == "bomrl":
        return bomrl_task_gradient(mdp, phi, key, param, distance, sample, include_dq)
    return maml_task_gradient(mdp, phi, key, param, sample)


@partial(jax.jit, static_argnames=("algo", "distance", "sample", "settings"))
def _meta_train(tasks, phi0, key, param, algo, distance, sample, settings):
    opt = optax.adam(settings.learning_rate)
    K = tasks.P.shape[0]

    def step(carry, k):
        phi, state = carry
        keys = jax.random.split(k, K)
        grads = jax.vmap(_task_gradient, in_axes=(TASK_AXES, None, 0, None, None, None, None, None))(
            tasks, phi, keys, param, algo, distance, sample, settings.include_dq)
        g = jnp.mean(grads, 0)
        upd, state = opt.update(-g, state)  # optax minimises: ascend by descending on −g
        return (optax.apply_updates(phi, upd), state), jnp.linalg.norm(g)

    (phi, _), gnorm = jax.lax.scan(step, (phi0, opt.init(phi0)), jax.random.split(key, settings.iterations))
    return phi, gnorm


def meta_train(tasks: TabularMDP, phi0, key, param: float, algo: str, distance: str,
               sample: SampleSettings, settings: MetaTrainSettings):
    """Algorithm 1: Adam ascent on the task-averaged meta-gradient over all tasks.

    algo "bomrl": param = λ, Prop. 1 hypergradient of Alg(distance) (with ∇Q unless
    settings.include_dq is False); algo "maml": param = inner step η. Returns (phi, |g| history).
    """
    sample.validate()
    settings.validate()
    return _meta_train(tasks, phi0, key, param, algo, distance, sample, settings)


def _adapt(phi, Q, nu, param, kind: str, distance: str):
    if kind == "alg":
        return inner.adapt(phi, Q, param, distance, differentiable=False)
    return inner.pg_step(phi, nu, Q, param)


@partial(jax.jit, static_argnames=("kind", "distance", "steps", "sample"))
def _meta_test(tasks, phi0, key, param, kind, distance, steps, sample):
    K = tasks.P.shape[0]

    def per_task(mdp, key):
        def step(phi, k):
            Q, _, nu = _data(mdp, phi, k, sample)
            new = _adapt(phi, Q, nu, param, kind, distance)
            return new, new

        _, thetas = jax.lax.scan(step, phi0, jax.random.split(key, steps))
        return jnp.concatenate([phi0[None], thetas], 0)

    logits = jax.vmap(per_task, in_axes=(TASK_AXES, 0))(tasks, jax.random.split(key, K))
    returns = jax.vmap(lambda lg: expected_returns(tasks, lg), in_axes=1, out_axes=1)(logits)
    return returns, logits


def meta_test(tasks: TabularMDP, phi0, key, param: float, kind: str, distance: str, steps: int,
              sample: SampleSettings):
    """Exact returns after 0..steps adaptations, per task  [K, steps+1] (and the logits).

    kind "alg": one Alg(distance) with λ = param per step (BO-MRL); kind "pg": one policy-gradient
    step of size param (MAML, random init). Q, ν are exact or estimated from fresh episodes of the
    CURRENT policy at every step (each step is one data collection + one adaptation).
    """
    return _meta_test(tasks, phi0, key, param, kind, distance, steps, sample)
