"""`bomrl frozenlake`'s configuration, its validation and the paper's constants (import-light: the
command line imports this module to build its parser; the experiment, bomrl.experiments.frozenlake,
imports it and JAX after parsing). See bomrl.experiments.frozenlake for what the command does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from bomrl.errors import check
from bomrl.limits import (MAX_COUNT, MAX_ROUNDS, check_int, check_interval, check_positive, check_seed,
                          check_unit_interval)

MAX_TASKS = 10**4                 # lakes per distribution (the paper's: 20)
MAX_SIZE = 64                     # lake side N (the paper's: 4)
MAX_TASK_CELLS2 = 2 * 10**7       # tasks x N^4: the per-task (s, a) x (s, a) arrays are 16 N^4 float64
MAX_MC_EPISODES = 10**6           # Monte-Carlo episodes simulated at once (the paper's: 20 x 64 x 10)
MAX_ITERATIONS = 10**6            # meta-iterations (jax.random.split makes one key each, up front)

VARIANCE_HOLE_PROB = {"high": 0.3, "low": 0.1}
# Appendix A: λ for Alg(1) / Alg(2) / Alg(3).
PAPER_LAMBDA = {"high": {"kl": 0.5, "rkl": 0.5, "euclid": 0.04}, "low": {"kl": 0.25, "rkl": 0.25, "euclid": 0.02}}


@dataclass(frozen=True)
class FrozenLakeConfig:
    """Reproduce the Frozen Lake experiments of Section 6.1 (Figures 1, 3, 4) and check the bounds."""

    variance: Literal["high", "low", "both"] = "both"
    """Task distribution: high (hole probability 0.3) or low (0.1) variance; both runs the two."""
    distance: Literal["kl", "rkl", "euclid", "all"] = "all"
    """Within-task distance: kl = d1 (Alg(1)), rkl = d2 (Alg(2)), euclid = d3 (Alg(3)), or all."""
    size: int = 4
    """Lake side N (N×N cells). 4 is gymnasium's default FrozenLake map size."""
    hole_prob: Optional[float] = None
    """Hole probability per cell in [0, 1); overrides --variance."""
    tasks: int = 20
    """Tasks per distribution (the paper uses 20)."""
    seed: int = 0
    """Seed of task sampling, Monte-Carlo episodes and the random initialisation."""
    out: Path = Path("results/frozenlake")
    """Output directory."""
    lam: Optional[float] = None
    """λ for Alg(i); default: the paper's (0.5/0.5/0.04 high, 0.25/0.25/0.02 low variance; with
    --hole-prob, the high-variance values if p >= 0.2, else the low-variance ones)."""
    gamma: float = 0.8
    """Discount factor (the paper's 0.8)."""
    slip: float = 0.0
    """Probability that a move slips to a perpendicular direction (gymnasium's slippery lake: 2/3)."""
    init: Literal["uniform", "start"] = "uniform"
    """Initial distribution: uniform over non-terminal cells (full support, Remark 1) or the start cell."""
    q_estimate: Literal["mc", "exact"] = "mc"
    """Q for adaptation and training: mc = Monte-Carlo episodes (the paper's), exact = linear solves."""
    rollouts_per_pair: int = 10
    """mc: episodes started in each (s, a) per data collection."""
    iterations: int = 100
    """Meta-training iterations for BO-MRL and MAML (docs/FROZENLAKE.md: 300 add < 0.005 to J)."""
    meta_lr: float = 0.1
    """Meta step size (Adam) for BO-MRL and MAML."""
    adapt_steps: int = 4
    """Meta-test adaptation steps (the figures show 0..4)."""
    pg_step_size: Optional[float] = None
    """MAML / random-init inner step η in θ' = φ + η E[∇log π Q]; default 1/(2λ_3) (Appendix H)."""
    theta_bound: float = 3.0
    """Bound B on the logits of the optimal softmax policy (finite KL; p(optimal action) ≥ 0.99)."""
    epsilon: Literal["center", "meta", "remark1"] = "center"
    """ε of Assumption 2: under the Var-minimising policy (N.2-N.3), the meta-policy, or (1−γ)min ρ."""
    a_max: Literal["center", "meta", "reward-bound"] = "center"
    """A of the bound: A'_max (Appendix N.3), the meta-policy's, or r_max/(1−γ)."""

    def validate(self) -> None:
        """One-line ConfigError for the first invalid value (the command calls it before any work)."""
        check_int("--size", self.size, 2, MAX_SIZE)
        if self.hole_prob is not None:
            check_interval("--hole-prob", self.hole_prob, 0, 1, open_hi=True, why="1 would leave no path")
        check_int("--tasks", self.tasks, 1, MAX_TASKS)
        cells = self.size * self.size
        check(self.tasks * cells * cells <= MAX_TASK_CELLS2, "--size", self.size,
              f"such that --tasks x N^4 <= {MAX_TASK_CELLS2:,} (here {self.tasks:,} x {self.size}^4; the "
              "tasks' (state, action) x (state, action) Jacobians, 16 x N^4 float64 each, would exhaust memory)")
        check_seed("--seed", self.seed)
        if self.lam is not None:
            check_positive("--lam", self.lam)
        check_interval("--gamma", self.gamma, 0, 1, open_lo=True, open_hi=True,
                       why="the bounds divide by 1 - gamma")
        check_unit_interval("--slip", self.slip)
        check_int("--rollouts-per-pair", self.rollouts_per_pair, 1, MAX_COUNT)
        if self.q_estimate == "mc":
            episodes = self.tasks * cells * 4 * self.rollouts_per_pair
            check(episodes <= MAX_MC_EPISODES, "--rollouts-per-pair", self.rollouts_per_pair,
                  f"such that --tasks x 4 N^2 x --rollouts-per-pair <= {MAX_MC_EPISODES:,} Monte-Carlo episodes "
                  f"per estimate (here {episodes:,}; simulated at once, they would exhaust memory)")
        check_int("--iterations", self.iterations, 0, MAX_ITERATIONS)
        check_positive("--meta-lr", self.meta_lr)
        check_int("--adapt-steps", self.adapt_steps, 1, MAX_ROUNDS)
        if self.pg_step_size is not None:
            check_positive("--pg-step-size", self.pg_step_size)
        check_positive("--theta-bound", self.theta_bound)

    def cases(self) -> list[tuple[str, float, str, str]]:
        """[(case label, hole probability, lambda-preset variance, distance)]."""
        dists = ["kl", "rkl", "euclid"] if self.distance == "all" else [self.distance]
        if self.hole_prob is not None:
            preset = "high" if self.hole_prob >= 0.2 else "low"
            groups = [(f"p{self.hole_prob:g}", self.hole_prob, preset)]
        else:
            vs = ["high", "low"] if self.variance == "both" else [self.variance]
            groups = [(v, VARIANCE_HOLE_PROB[v], v) for v in vs]
        return [(f"{g}-{d}", p, preset, d) for g, p, preset in groups for d in dists]
