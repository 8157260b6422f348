"""`bomrl bench iteration`: wall time of one meta-iteration (pre-update sampling, adaptation,
post-update sampling, meta-update) of any algorithm, split into sampling and update time.

Prints one JSON line. `cpu_s` is the CPU time of this process (all its threads) per iteration; on
a machine shared with other jobs, cpu_s / cores gives a rough idea of the unloaded wall time.
Timings are medians over `iterations` timed meta-iterations after `warmup`
untimed ones (the warm-up compiles everything). The line also carries the pre-/post-update mean
return of every iteration (warm-up included), so a longer run doubles as a short learning curve:
iteration i is `bomrl train`'s iteration i (its tasks, keys and reset seeds; `--eval-steps` rounds
use reset seeds of their own and change none of them).

    bomrl bench iteration --env halfcheetah-vel --algo maml-trpo --tasks 40 --episodes 20 --horizon 100
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from bomrl.algos import get_algorithm
from bomrl.bench.config import BenchIterationConfig
from bomrl.envs import get_family, make_sampler
from bomrl.limits import MAX_ITERATIONS, MAX_ROUNDS, check_counts, check_int, check_positive, check_seed, check_workers
from bomrl.workflow.config import TrainConfig, build_algo_config
from bomrl.workflow.run import initial_state, make_policy, seeded_step

EVAL_SAMPLER_CALLS = 2**41   # reset seeds of the --eval-steps rounds: beyond any training call

__all__ = ["BenchIterationConfig", "measure", "run", "validate"]


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def validate(config: BenchIterationConfig):
    """Every input checked (one-line ConfigError) before any work: (family, algorithm class, its config,
    the `bomrl train` config whose policy and settings are timed)."""
    algo_cls, _ = get_algorithm(config.algo)   # unknown names: one-line error listing them
    family = get_family(config.env)
    check_counts(("--tasks", config.tasks), ("--episodes", config.episodes), ("--horizon", config.horizon))
    check_int("--iterations", config.iterations, 1, MAX_ITERATIONS)
    check_int("--warmup", config.warmup, 0, MAX_ITERATIONS - config.iterations)
    check_int("--eval-steps", config.eval_steps, 0, MAX_ROUNDS)
    check_workers("--workers", config.workers)
    check_seed("--seed", config.seed)
    if config.action_scale is not None:
        check_positive("--action-scale", config.action_scale, why="10: the MAML-family convention, 1: plain clipping")
    # the settings `bomrl train --env E --algo A --set ...` would run (one precedence rule, per-env defaults)
    train_cfg = TrainConfig(env=config.env, algo=config.algo, set=tuple(config.set))
    return family, algo_cls, build_algo_config(train_cfg), train_cfg


def run(config: BenchIterationConfig) -> dict:
    from bomrl.workflow.plugins import import_plugins

    import_plugins(config.plugins)   # --plugins: families, distances, algorithms of the user's
    return measure(config, *validate(config))


def measure(config: BenchIterationConfig, family, algo_cls, algo_cfg, train_cfg: TrainConfig) -> dict:
    """The timed meta-iterations of a validated config (prints and returns the JSON line)."""
    workers = config.workers or (os.cpu_count() or 1)
    rows = []
    with make_sampler(family, config.tasks, config.episodes, config.horizon, backend=config.backend,
                      num_workers=workers, seed=config.seed, action_scale=config.action_scale) as sampler:
        # the policy `bomrl train` builds: the algorithm's own (RL²'s GRU, MAESN's latent MLP) or the
        # default Gaussian / categorical MLP (64, 64)
        policy = make_policy(train_cfg, sampler, algo_cfg)
        algo = algo_cls(algo_cfg, policy)
        state, key = initial_state(algo, config.seed)
        evals = []
        eval_tasks = sampler.sample_tasks(np.random.default_rng([config.seed, 10**6]))

        def evaluate():   # reset seeds of its own (far beyond the iterations'): training is unchanged
            out = algo.adapt(state, sampler, eval_tasks, jax.random.fold_in(key, 10**6), config.eval_steps,
                             call=EVAL_SAMPLER_CALLS)
            evals.append([round(float(r), 2) for r in out["returns"]])

        if config.eval_steps:
            evaluate()
        for it in range(config.warmup + config.iterations):
            t0, c0 = time.perf_counter(), time.process_time()
            state, m = seeded_step(algo, state, sampler, config.seed, it, key)   # bomrl train's iteration it
            m["wall_s"] = time.perf_counter() - t0
            m["cpu_s"] = time.process_time() - c0
            rows.append(m)
        if config.eval_steps:
            evaluate()
    timed = rows[config.warmup:]
    wall = [r["wall_s"] for r in timed]
    sampling = [r["time/sampling_s"] for r in timed]
    result = {
        "algo": config.algo, "env": family.name, "tasks": config.tasks, "episodes": config.episodes,
        "horizon": config.horizon, "iterations": config.iterations, "warmup": config.warmup,
        "backend": config.backend, "workers": workers,
        "action_scale": None if sampler.discrete else sampler.action_scale,
        "seconds_per_iteration": round(_median(wall), 3),
        "sampling_s": round(_median(sampling), 3),
        "cpu_s": round(_median([r["cpu_s"] for r in timed]), 3),
        "update_s": round(_median([w - s for w, s in zip(wall, sampling)]), 3),
        "adapt_s": round(_median([r["time/adapt_s"] for r in timed]), 3),
        "meta_update_s": round(_median([r["time/update_s"] for r in timed]), 3),
        "process_s": round(_median([r["time/process_s"] for r in timed]), 3),
        "env_steps": int(timed[-1]["charts/env_steps"]),
        "first_iteration_s": round(rows[0]["wall_s"], 3),
        "pre_returns": [round(r["charts/pre_return"], 2) for r in rows],
        "post_returns": [round(r["charts/post_return"], 2) for r in rows],
        "overrides": list(config.set),
        **({"eval_returns_before": evals[0], "eval_returns_after": evals[1]} if evals else {}),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result), flush=True)
    return result
