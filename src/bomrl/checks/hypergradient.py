"""`bomrl check hypergradient`: is BO-MRL's meta-gradient the derivative of what its adaptation
returns, and does the adaptation generalise to fresh data of the same task? One JSON line.

    bomrl check hypergradient --env halfcheetah-vel [--run DIR] [--tasks 4] [--directions 8] [--seed 0]

In float64, on K tasks of the family (plugins included), from the run's latest checkpoint (with
the run's settings) or the initial policy (with the flags' settings):

1. B_τ: E episodes of π_φ per task; θ'_τ = Alg(π_φ, λ, τ) by the configured solver; fresh episodes
   of π_θ'_τ give g_τ = ∇_θ J(π_θ)|θ'_τ (exactly as in training).
2. For M random unit directions u: the configured hypergradient's uᵀ∇_φ(g_τᵀθ'_τ(φ)) against central
   finite differences of g_τᵀθ'_τ(φ ± εu) through the configured solver, at ε = `eps` and
   ε = `eps`/10 (they must agree: `fd_disagreement` is their median relative difference).
   Per task, the cosine between the M-vectors of the two (a random sketch of the two gradients);
   `cosine_min` / `cosine_mean` over tasks; `rel_error_median` over (task, direction).
3. Generalisation: `fresh_surrogate_gain` = the adapted policy's surrogate (the inner objective's
   first term) minus the meta-policy's, on a FRESH batch of π_φ of the same task;
   `fresh_return_gain` = J(π_θ') − J(π_φ) from fresh episodes; means over tasks with standard
   errors (`*_se`); `insample_surrogate_gain` on B_τ. The same for one MAML step (θ = φ + α∇Ê[log
   π·A] on B_τ, α = `maml_lr`) for scale (`maml_*`).
Plus `inner_grad_ratio` (‖∇_θL(θ')‖/‖∇_θL(φ)‖) and `hyper_rel_residual` (implicit modes).
Exit code 0 always: the numbers are the verdict.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bomrl.algos.base import broadcast_tasks
from bomrl.algos.bomrl import inner_data
from bomrl.algos.pg_adaptation import pg_step
from bomrl.checks.config import CheckHypergradientConfig
from bomrl.core.losses import policy_gradient
from bomrl.core.policies import categorical_mlp, gaussian_mlp
from bomrl.envs import make_sampler
from bomrl.core import distance_names
from bomrl.errors import check, check_choice
from bomrl.limits import MAX_COUNT, MAX_ROUNDS, check_counts, check_int, check_interval, check_positive, check_seed
from bomrl.utils import atomic_write_json, ensure_out_file
from bomrl.workflow.checkpoint import load_latest, restore_tree
from bomrl.workflow.config import (CONFIG_NAME, TrainConfig, build_algo_config, parse_overrides, preset_overrides,
                                   validate as validate_train)
from bomrl.workflow.plugins import import_plugins
from bomrl.workflow.run import load_run, make_algo

__all__ = ["CheckHypergradientConfig", "measure", "run", "validate"]


def validate(config: CheckHypergradientConfig):
    """Every input checked (one-line ConfigError) before any work: (train config, BO-MRL config) of
    the run (--run) or of the flags."""
    check_int("--tasks", config.tasks, 2, MAX_COUNT, "standard errors over tasks")
    check_counts(("--tasks", config.tasks), ("--episodes", config.episodes), ("--horizon", config.horizon))
    check_int("--directions", config.directions, 1, MAX_ROUNDS)
    check_seed("--seed", config.seed)
    check_interval("--eps", config.eps, 0, 1, open_lo=True, open_hi=True)
    check_positive("--maml-lr", config.maml_lr)
    import_plugins(config.plugins)
    if config.lam is not None:
        check_positive("--lam", config.lam)
    if config.distance is not None:
        check_choice("--distance", config.distance, distance_names())
    if config.run is not None:
        check((Path(config.run) / CONFIG_NAME).is_file(), "--run", str(config.run),
              f"a run directory of `bomrl train --algo bomrl` (with {CONFIG_NAME})")
        cfg, algo_cfg = load_run(config.run)
        check(cfg.algo == "bomrl", "--run", str(config.run), "a run of --algo bomrl")
        # measure the run's checkpoint under other settings (an A/B at one φ): the preset, then --set
        overrides = {**preset_overrides(cfg.algo, config.preset), **parse_overrides(type(algo_cfg), tuple(config.set))}
        if overrides:
            algo_cfg = dataclasses.replace(algo_cfg, **overrides)
        return cfg, algo_cfg
    flags = {"distance": config.distance, "lam": config.lam}   # this check's own flags beat --set
    cfg = TrainConfig(env=config.env, algo="bomrl", horizon=config.horizon, seed=config.seed,
                      action_scale=config.action_scale, plugins=tuple(config.plugins), progress=False,
                      preset=config.preset, set=(*config.set, *(f"{k}={v}" for k, v in flags.items() if v is not None)), tensorboard=False)
    validate_train(cfg)
    return cfg, build_algo_config(cfg)


def run(config: CheckHypergradientConfig) -> dict:
    if config.out is not None:
        ensure_out_file(config.out, "--out")
    cfg, algo_cfg = validate(config)
    out = measure(config, cfg, algo_cfg)
    if config.out is not None:
        atomic_write_json(config.out, out)
    return out


def measure(config: CheckHypergradientConfig, cfg: TrainConfig, algo_cfg) -> dict:
    """The check itself, for a validated config (prints and returns the JSON line)."""
    jax.config.update("jax_enable_x64", True)   # process-wide: set here, not at import
    K, M = config.tasks, config.directions
    with make_sampler(cfg.env, K, config.episodes, cfg.horizon, seed=config.seed, dtype=np.float64,
                      num_workers=cfg.workers or None, action_scale=cfg.action_scale) as sampler:
        if sampler.discrete:
            policy = categorical_mlp(sampler.obs_dim, sampler.act_dim, hidden=tuple(cfg.hidden), dtype=jnp.float64)
        else:
            policy = gaussian_mlp(sampler.obs_dim, sampler.act_dim, hidden=tuple(cfg.hidden),
                                  init_std=cfg.init_std, dtype=jnp.float64)
        algo = make_algo(cfg, algo_cfg, policy)
        key = jax.random.PRNGKey(config.seed)
        state = algo.init(jax.random.fold_in(key, 0))
        source = "initial policy"
        if config.run is not None:
            ckpt = load_latest(config.run, warn=lambda m: print(f"bomrl: warning: {m}", file=sys.stderr))
            def as32(x):
                return x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x

            f32 = restore_tree(jax.tree.map(as32, state), ckpt)
            state = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating)
                                 else x, f32)
            source = f"checkpoint of iteration {ckpt.iteration}"
        phi = state.params
        tasks = sampler.sample_tasks(np.random.default_rng([config.seed, 0x43484B]))
        keys = jax.random.split(jax.random.fold_in(key, 0x43484B), 4)

        def sample(params_t, k, call):
            data, ret, _ = algo._sample(sampler, params_t, tasks, k, _NullTimer(), call=call, per_task=True)
            return data, np.asarray(ret, np.float64)

        phi_t = broadcast_tasks(phi, K)
        pre, pre_ret = sample(phi_t, keys[0], 0)
        thetas, diag = algo._adapt_jit(phi_t, pre)
        post, post_ret = sample(thetas, keys[1], 1)
        fresh, _ = sample(phi_t, keys[2], 2)
        hg_mean, hmetrics = jax.jit(algo.meta_gradient)(phi, pre, post, thetas)
        # per-task hypergradients: the "task mean" of a batch of one task, vmapped over the K tasks
        one = lambda tree: jax.tree.map(lambda x: x[None], tree)  # noqa: E731
        hg_t = jax.jit(jax.vmap(lambda a, b, c: algo.meta_gradient(phi, one(a), one(b), one(c))[0]))(
            pre, post, thetas)
        hgs = [jax.tree.map(lambda x: x[i], hg_t) for i in range(K)]
        g = jax.vmap(lambda th, d: policy_gradient(policy, th, d.obs, d.act, d.adv, d.mask))(thetas, post)

        # the data's sampling log-probabilities stay those of π_φ (a constant in the algorithm's
        # derivation: the ratio's denominator is the probability the batch was drawn with)
        pre_in = algo.sampled_inner_data(phi, pre)
        solve_fixed = jax.jit(lambda ph: jax.vmap(algo.solve)(broadcast_tasks(ph, K), pre_in)[0])

        def objective(ph):   # [K]: g_τᵀ θ'_τ(φ) through the configured solver (g and the data fixed)
            th = solve_fixed(ph)
            return np.asarray(jax.vmap(lambda a, b: sum(jnp.vdot(x, y) for x, y in
                                                           zip(jax.tree.leaves(a), jax.tree.leaves(b))))(th, g))

        rng = np.random.default_rng([config.seed, 0x444952])
        leaves, treedef = jax.tree.flatten(phi)
        sizes = [x.size for x in leaves]
        analytic = np.zeros((K, M))
        fd = np.zeros((2, K, M))
        for m in range(M):
            flat = rng.standard_normal(sum(sizes))
            flat /= np.linalg.norm(flat)
            parts = np.split(flat, np.cumsum(sizes)[:-1])
            u = jax.tree.unflatten(treedef, [jnp.asarray(p.reshape(x.shape)) for p, x in zip(parts, leaves)])
            for i in range(K):
                analytic[i, m] = float(sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(hgs[i]), jax.tree.leaves(u))))
            for j, eps in enumerate((config.eps, config.eps / 10)):
                plus = objective(jax.tree.map(lambda p, d: p + eps * d, phi, u))
                minus = objective(jax.tree.map(lambda p, d: p - eps * d, phi, u))
                fd[j, :, m] = (plus - minus) / (2 * eps)
        ref = fd[1]
        cos = np.array([_cos(analytic[i], ref[i]) for i in range(K)])
        rel = np.abs(analytic - ref) / np.maximum(np.abs(ref), 1e-300)
        disagreement = np.abs(fd[0] - fd[1]) / np.maximum(np.abs(fd[1]), 1e-300)

        # generalisation: surrogate (the inner objective's first term, at λ-free value) on fresh data
        loss = algo.inner_loss

        def surrogate(th_t, data):
            return np.asarray(jax.vmap(lambda th, d: loss(th, phi, d)[1]["inner/surrogate"])(th_t, inner_data(data)))

        alpha = config.maml_lr
        maml = jax.vmap(lambda p, d: pg_step(policy, "log_likelihood", alpha, p, d, None))(phi_t, pre)
        maml_post, maml_ret = sample(maml, keys[3], 3)
        base_fresh, base_in = surrogate(phi_t, fresh), surrogate(phi_t, pre)
        out = {
            "env": cfg.env, "source": source, "run": str(config.run) if config.run is not None else None,
            "tasks": K, "directions": M, "episodes": config.episodes,
            "horizon": cfg.horizon, "seed": config.seed, "distance": algo_cfg.distance, "lam": algo_cfg.lam,
            "inner_solver": algo_cfg.inner_solver, "inner_steps": algo_cfg.inner_steps,
            "inner_lr": algo_cfg.inner_lr, "hypergradient": algo_cfg.hypergradient,
            "surrogate": algo_cfg.surrogate, "inner_q": algo_cfg.inner_q, "trust_region": algo_cfg.trust_region,
            "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "rel_error_median": float(np.median(rel)), "fd_disagreement": float(np.median(disagreement)),
            "inner_grad_ratio": float(np.mean(diag["inner/grad_ratio"])),
            "inner_kl": float(np.mean(diag["inner/kl"])),
            **({"inner_step_frac": float(np.mean(diag["inner/step_frac"]))} if "inner/step_frac" in diag else {}),
            "hyper_rel_residual": float(hmetrics.get("hyper/rel_residual", float("nan"))),
            **_mean_se("insample_surrogate_gain", surrogate(thetas, pre) - base_in),
            **_mean_se("fresh_surrogate_gain", surrogate(thetas, fresh) - base_fresh),
            **_mean_se("fresh_return_gain", post_ret - pre_ret),
            **_mean_se("maml_insample_surrogate_gain", surrogate(maml, pre) - base_in),
            **_mean_se("maml_fresh_surrogate_gain", surrogate(maml, fresh) - base_fresh),
            **_mean_se("maml_fresh_return_gain", maml_ret - pre_ret),
            "hypergradient_norm": float(np.sqrt(sum(float(jnp.vdot(x, x)) for x in jax.tree.leaves(hg_mean)))),
            "load_avg_1min": round(os.getloadavg()[0], 2),
        }
    print(json.dumps(out), flush=True)
    return out


class _NullTimer:
    def add(self, name, seconds):
        pass


def _cos(a, b) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def _mean_se(name: str, x) -> dict:
    x = np.asarray(x, np.float64)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
    return {name: float(x.mean()), f"{name}_se": se}

