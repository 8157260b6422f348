"""`bomrl bench update`: wall time and memory of one BO-MRL meta-update (Algorithm 2) phase by
phase, timed on the algorithm's OWN jitted methods (`bomrl.algos.bomrl.BoMrl`, configured exactly as
`bomrl train` would configure it: defaults < --preset < --set), against the time to collect its data.

Phases (each jitted by the algorithm, timed after a warm-up call, block_until_ready):
  advantages_pre / _post   `BoMrl._process`: returns, linear baseline, GAE, standardisation
  inner                    `BoMrl._adapt_vjp`: Alg(π_φ, λ, τ) of eq. (7), vmapped over tasks, with
                           its vjp (`jax.vjp` of `bomrl.core.adaptation.adapt`, as training runs it)
  hypergrad                `BoMrl.meta_gradient`: outer policy gradients at θ'_τ and the
                           adaptation's pullbacks applied to them (as configured: unrolled or
                           implicit eq. (8)), task mean
  meta_step                `BoMrl.meta_step`: the TRPO meta-step (KL on the pre-update data; with
                           line_search=surrogate each candidate re-solves the adaptation)
The sum of hypergrad and meta_step is what `BoMrl._update` (one jit) runs in training.
Data: with --sample (default) the pre- and post-update episodes are collected by the multi-task
sampler (`bomrl.envs`) and timed in the same run; --no-sample uses synthetic data of the same shapes.
Prints one JSON line; peak memory is the process's ru_maxrss; CPU time (this process, all threads)
is reported beside wall time, being less disturbed by other jobs on a shared machine.
"""

from __future__ import annotations

import json
import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from bomrl.algos.base import broadcast_tasks
from bomrl.algos.bomrl import BoMrl
from bomrl.bench.config import BenchUpdateConfig
from bomrl.errors import check
from bomrl.limits import MAX_ROUNDS, check_int
from bomrl.workflow.config import TrainConfig, build_algo_config, validate as validate_train
from bomrl.workflow.run import make_policy, make_run_sampler

__all__ = ["BenchUpdateConfig", "measure", "run", "validate"]


def _median(xs):
    return sorted(xs)[len(xs) // 2]


def validate(config: BenchUpdateConfig):
    """Every input checked (one-line ConfigError) before any work: (train config, BO-MRL config), as
    `bomrl train --algo bomrl` would resolve them."""
    for name in ("tasks", "episodes", "horizon", "repeats"):
        value = getattr(config, name)
        check(isinstance(value, int) and value >= 1, f"--{name}", value, "an integer >= 1")
    check_int("--repeats", config.repeats, 1, MAX_ROUNDS)
    check(config.seed >= 0, "--seed", config.seed, "an integer >= 0")
    check(config.workers >= 0, "--workers", config.workers, "0 (all cores) or an integer >= 1")
    train_cfg = TrainConfig(env=config.env, algo="bomrl", tasks=config.tasks, episodes=config.episodes,
                            horizon=config.horizon, seed=config.seed, preset=config.preset, set=config.set,
                            workers=config.workers)
    validate_train(train_cfg)          # the upper bounds of tasks, episodes, horizon, seed, workers
    return train_cfg, build_algo_config(train_cfg)


def run(config: BenchUpdateConfig) -> dict:
    from bomrl.workflow.plugins import import_plugins

    import_plugins(config.plugins)   # --plugins: families, distances, algorithms of the user's
    train_cfg, algo_cfg = validate(config)
    return measure(config, train_cfg, algo_cfg)


def measure(config: BenchUpdateConfig, train_cfg: TrainConfig, algo_cfg) -> dict:
    """The timed phases of a validated config (prints and returns the JSON line)."""
    T, E, H = config.tasks, config.episodes, config.horizon
    key = jax.random.PRNGKey(config.seed)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    sampler = make_run_sampler(train_cfg, T, config.seed)
    try:
        policy = make_policy(train_cfg, sampler)
        algo = BoMrl(algo_cfg, policy)
        phi = algo.init(key).params
        dtype = jax.tree.leaves(phi)[0].dtype
        tasks = sampler.sample_tasks(np.random.default_rng(config.seed))

        def collect(name, params_t, k, call):
            if not config.sample:
                k1, k2, k3 = jax.random.split(k, 3)
                obs = jax.random.normal(k1, (T, E, H, sampler.obs_dim), dtype)
                act = jax.vmap(lambda p, o, kk: policy.sample(policy.apply(p, o), kk))(
                    params_t, obs, jax.random.split(k2, T))
                return obs, act, jax.random.normal(k3, (T, E, H), dtype), jnp.ones((T, E, H), dtype)
            t0, c0 = time.perf_counter(), time.process_time()
            batch, _ = sampler.sample(policy, params_t, tasks, k, call=call)
            timings[f"sampling_{name}_s"] = time.perf_counter() - t0
            cpu[f"sampling_{name}"] = time.process_time() - c0
            act = jnp.asarray(batch.act, jnp.int32 if policy.discrete else dtype)
            return (jnp.asarray(batch.obs, dtype), act, jnp.asarray(batch.rew, dtype),
                    jnp.asarray(batch.mask, dtype))

        def timed(name, fn, *args):
            out = jax.block_until_ready(fn(*args))          # warm-up (compile)
            ts, cs = [], []
            for _ in range(config.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                out = jax.block_until_ready(fn(*args))
                ts.append(time.perf_counter() - t0)
                cs.append(time.process_time() - c0)
            timings[f"{name}_s"] = _median(ts)
            cpu[name] = _median(cs)
            return out

        phi_t = broadcast_tasks(phi, T)
        if config.sample:
            sampler.warmup(policy, phi_t)
        pre = timed("advantages_pre", algo._jit_process, collect("pre", phi_t, jax.random.fold_in(key, 1), 0))
        thetas, diag, pullbacks = timed("inner", algo._adapt_vjp_jit, phi_t, pre)
        post = timed("advantages_post", algo._jit_process, collect("post", thetas, jax.random.fold_in(key, 2), 1))
        grad, hyper = timed("hypergrad", jax.jit(algo.meta_gradient), phi, pre, post, thetas, pullbacks)
        _, trpo = timed("meta_step", jax.jit(algo.meta_step), phi, pre, post, thetas, grad)
    finally:
        sampler.close()

    phases = ("advantages_pre", "inner", "advantages_post", "hypergrad", "meta_step")
    update_s = sum(timings[f"{k}_s"] for k in phases)
    update_cpu = sum(cpu[k] for k in phases)
    sampling_s = timings["sampling_pre_s"] + timings["sampling_post_s"] if config.sample else None
    sampling_cpu = cpu["sampling_pre"] + cpu["sampling_post"] if config.sample else None
    scalar = lambda x: float(np.mean(np.asarray(x)))  # noqa: E731
    result = {
        "env": config.env, "tasks": T, "episodes": E, "horizon": H, "obs_dim": sampler.obs_dim,
        "act_dim": sampler.act_dim, "data": config.env if config.sample else "synthetic",
        "preset": config.preset, "set": list(config.set),
        "inner_solver": algo_cfg.inner_solver, "inner_steps": algo_cfg.inner_steps,
        "hypergradient": algo_cfg.hypergradient, "line_search": algo_cfg.line_search,
        **{k: round(v, 4) for k, v in timings.items()},
        "update_s": round(update_s, 4),
        "sampling_s": round(sampling_s, 4) if sampling_s is not None else "not measured (--no-sample)",
        "update_over_sampling": round(update_s / sampling_s, 4) if sampling_s else None,
        "update_cpu_s": round(update_cpu, 3),
        "sampling_cpu_s": round(sampling_cpu, 3) if sampling_cpu is not None else None,
        "update_over_sampling_cpu": round(update_cpu / sampling_cpu, 4) if sampling_cpu else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "inner_grad_ratio": round(scalar(diag["inner/grad_ratio"]), 5),
        "inner_kl": round(scalar(diag["inner/kl"]), 6),
        **({"hyper_rel_residual": round(scalar(hyper["hyper/rel_residual"]), 6)}
           if "hyper/rel_residual" in hyper else {}),
        "trpo_kl": round(scalar(trpo["trpo/kl"]), 6), "trpo_accepted": bool(scalar(trpo["trpo/accepted"])),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result), flush=True)
    return result
