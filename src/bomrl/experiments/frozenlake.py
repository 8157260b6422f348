"""`bomrl frozenlake`: the paper's Section 6.1 / Appendix A reproduction (Figures 1, 3, 4).

For every case (variance × distance) it meta-trains BO-MRL (Algorithm 1, Prop. 1 hypergradient),
meta-trains MAML for one policy-gradient step, meta-tests both and a random initialisation for
0..4 adaptation steps, computes the theory (TEOG, ε, A, Var, the Theorem 3/4 bound) and writes
DIR/<variance-or-p>-<distance>/summary.json plus two figures. The configuration (import-light, for
the command line) is bomrl.experiments.frozenlake_config.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bomrl.experiments.frozenlake_config import PAPER_LAMBDA, FrozenLakeConfig
from bomrl.experiments.frozenlake_plots import plot_case
from bomrl.experiments.frozenlake_report import print_table
from bomrl.tabular.frozenlake import sample_lake_tasks
from bomrl.tabular.mdp import greedy_policy, optimal_q
from bomrl.tabular.meta import (
    MetaTrainSettings,
    SampleSettings,
    meta_test,
    meta_train,
)
from bomrl.tabular.theory import TASK_AXES, TheoryOptions, compute_theory, expected_returns, optimal_logits
from bomrl.utils import atomic_write_json, ensure_out_dir

__all__ = ["FrozenLakeConfig", "run", "run_all"]


def run(cfg: FrozenLakeConfig) -> dict:
    cfg.validate()                 # every value, before any work
    out = ensure_out_dir(cfg.out)  # an unwritable --out: one line, before any work
    return run_all(cfg, out)


def _floats(x) -> list[float]:
    return [float(v) for v in np.asarray(x)]


def _monotone_fraction(returns: np.ndarray) -> float:
    """Fraction of (task, step) pairs where one more Alg(i) did not lower the exact return."""
    diffs = np.diff(returns, axis=1)
    return float(np.mean(diffs >= -1e-12))


def run_case(cfg: FrozenLakeConfig, tasks, shared: dict, label: str, preset: str, distance: str) -> dict:
    lam = cfg.lam if cfg.lam is not None else PAPER_LAMBDA[preset][distance]
    sample = shared["sample"]
    key = jax.random.PRNGKey(cfg.seed + 1)
    k_train, k_test, k_theory = jax.random.split(key, 3)
    S, A = tasks.r.shape[1:]
    phi0 = jnp.zeros((S, A))

    t0 = time.perf_counter()
    phi, gnorm = jax.block_until_ready(meta_train(tasks, phi0, k_train, lam, "bomrl", distance, sample, shared["train"]))
    train_s = time.perf_counter() - t0

    bomrl_R, _ = meta_test(tasks, phi, k_test, lam, "alg", distance, cfg.adapt_steps, sample)
    exact = SampleSettings(mode="exact")
    bomrl_R_exact, _ = meta_test(tasks, phi, k_test, lam, "alg", distance, cfg.adapt_steps, exact)
    bomrl_R, bomrl_R_exact = np.asarray(bomrl_R), np.asarray(bomrl_R_exact)

    theory = compute_theory(tasks, phi, distance, lam, shared["theory"], theta_star=shared["theta_star"])
    J_star = shared["J_star"]
    maml_R, rand_R = shared["maml_R"], shared["rand_R"]
    teog = {
        "no_adaptation": float(np.mean(J_star - bomrl_R[:, 0])),
        "one_time_alg": float(np.mean(J_star - bomrl_R[:, 1])),
        "one_pg_step": float(np.mean(J_star - maml_R[:, 1])),
    }
    summary = {
        "case": label,
        "distance": distance,
        "hole_prob": shared["hole_prob"],
        "size": cfg.size,
        "tasks": cfg.tasks,
        "seed": cfg.seed,
        "gamma": cfg.gamma,
        "lambda": lam,
        "q_estimate": cfg.q_estimate,
        "teog": teog,
        "teog_exact_q": {
            "no_adaptation": teog["no_adaptation"],
            "one_time_alg": float(np.mean(J_star - bomrl_R_exact[:, 1])),
            "one_pg_step": float(np.mean(J_star - shared["maml_R_exact"][:, 1])),
        },
        "bound": theory["bound"],
        "bound_figure_form": theory["bound_figure_form"],
        "one_time_alg_below_bound": bool(teog["one_time_alg"] <= theory["bound"]),
        "one_pg_step_below_bound": bool(teog["one_pg_step"] <= theory["bound"]),
        "task_variance": theory["task_variance"],
        "epsilon": theory["epsilon"],
        "a_max": theory["a_max"],
        "theory": theory,
        "returns_vs_steps": {
            "bomrl": _floats(bomrl_R.mean(0)),
            "maml": _floats(maml_R.mean(0)),
            "random_init": _floats(rand_R.mean(0)),
            "optimal": float(np.mean(J_star)),
            "optimal_unbounded": shared["J_opt_unbounded"],
            "bomrl_exact_q": _floats(bomrl_R_exact.mean(0)),
        },
        "monotonic_improvement": {
            "fraction_nondecreasing_sampled_q": _monotone_fraction(bomrl_R),
            "fraction_nondecreasing_exact_q": _monotone_fraction(bomrl_R_exact),
        },
        "training": {
            "iterations": cfg.iterations,
            "final_hypergradient_norm": float(gnorm[-1]) if len(gnorm) else None,
        },
        "pg_step_size": shared["pg_step"],
    }
    return summary, {"bomrl_train_s": train_s, "maml_train_s": shared["maml_s"]}


def run_all(cfg: FrozenLakeConfig, out: Path) -> dict:
    jax.config.update("jax_enable_x64", True)
    sample = SampleSettings(mode=cfg.q_estimate, rollouts_per_pair=cfg.rollouts_per_pair)
    sample.validate()
    train = MetaTrainSettings(iterations=cfg.iterations, learning_rate=cfg.meta_lr)
    theory_opts = TheoryOptions(theta_bound=cfg.theta_bound, epsilon=cfg.epsilon, a_max=cfg.a_max)
    theory_opts.validate()

    groups: dict[tuple[float, str], list] = {}
    for label, p, preset, d in cfg.cases():
        groups.setdefault((p, preset), []).append((label, d))

    results, timings = {}, {}
    for (p, preset), cases in groups.items():
        lake = sample_lake_tasks(cfg.tasks, cfg.size, p, cfg.gamma, cfg.slip, cfg.init, cfg.seed)
        tasks = jax.tree_util.tree_map(jnp.asarray, lake.mdp)._replace(gamma=cfg.gamma)
        S, A = tasks.r.shape[1:]
        theta_star = optimal_logits(tasks, cfg.theta_bound)
        J_star = np.asarray(expected_returns(tasks, theta_star))
        Qs = jax.vmap(optimal_q, in_axes=(TASK_AXES,))(tasks)
        J_opt = float(np.mean(expected_returns(tasks, jnp.log(jnp.clip(jax.vmap(greedy_policy)(Qs), 1e-300)))))

        lam3 = cfg.lam if cfg.lam is not None else PAPER_LAMBDA[preset]["euclid"]
        pg_step = cfg.pg_step_size if cfg.pg_step_size is not None else 1.0 / (2.0 * lam3)
        key = jax.random.PRNGKey(cfg.seed + 2)
        k_train, k_test, k_rand = jax.random.split(key, 3)
        t0 = time.perf_counter()
        phi_maml, _ = jax.block_until_ready(meta_train(tasks, jnp.zeros((S, A)), k_train, pg_step, "maml", "-", sample, train))
        maml_s = time.perf_counter() - t0
        n = cfg.adapt_steps
        maml_R, _ = meta_test(tasks, phi_maml, k_test, pg_step, "pg", "-", n, sample)
        maml_R_exact, _ = meta_test(tasks, phi_maml, k_test, pg_step, "pg", "-", n, SampleSettings(mode="exact"))
        phi_rand = jax.random.normal(k_rand, (S, A))
        rand_R, _ = meta_test(tasks, phi_rand, k_test, pg_step, "pg", "-", n, sample)
        shared = {
            "sample": sample, "train": train, "theory": theory_opts, "theta_star": theta_star,
            "J_star": J_star, "J_opt_unbounded": J_opt, "maml_R": np.asarray(maml_R),
            "maml_R_exact": np.asarray(maml_R_exact), "rand_R": np.asarray(rand_R),
            "maml_s": maml_s, "pg_step": pg_step, "hole_prob": p,
        }
        for label, d in cases:
            summary, timing = run_case(cfg, tasks, shared, label, preset, d)
            timings[label] = timing
            case_dir = out / label
            case_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(case_dir / "summary.json", summary)
            plot_case(summary, case_dir)
            results[label] = summary
    atomic_write_json(out / "timings.json", timings)  # wall times vary; summary.json files do not
    print_table(results, out)
    return results
