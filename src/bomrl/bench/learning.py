"""`bomrl bench learning`: learning speed of an algorithm, as JSON lines.

    bomrl bench learning --env halfcheetah-vel --algo maml-trpo --iterations 40 --seeds 0 1

For every seed, one JSON line per meta-iteration with the meta-batch's mean return before
(`pre_return`) and after (`post_return`) adaptation, then one summary line per seed
(`"summary": true`) with the rise of the post-adaptation return: the mean of the last
`--window` iterations minus the first iteration's. It is a benchmark, not a test: its numbers are
recorded in docs/REPRODUCTION.md with the command that produced them.

The settings, the algorithm defaults and the random streams are exactly those of `bomrl train`
(tasks of iteration i from default_rng([seed, i]), key fold_in(PRNGKey(seed), i + 1), sampler call
counter i · 1000), so a learning curve printed here is the one `bomrl train` logs for the same
flags (tested); nothing is checkpointed.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from bomrl.bench.config import BenchLearningConfig
from bomrl.errors import check
from bomrl.limits import check_seed
from bomrl.utils import ensure_out_file
from bomrl.workflow.config import TrainConfig, build_algo_config, validate as validate_train
from bomrl.workflow.run import initial_state, make_algo, make_policy, make_run_sampler, seeded_step

__all__ = ["BenchLearningConfig", "measure", "run", "validate"]

_CURVE_KEYS = ("inner/kl", "trpo/accepted", "trpo/kl", "hyper/rel_residual", "inner/grad_ratio")


def validate(config: BenchLearningConfig) -> list[tuple[TrainConfig, object]]:
    """Every input checked (one-line ConfigError) before any work: [(train config, algorithm config)]
    per seed, exactly as `bomrl train` would resolve them."""
    check(len(config.seeds) >= 1 and all(s >= 0 for s in config.seeds), "--seeds", config.seeds,
          "one or more integers >= 0")
    for seed in config.seeds:
        check_seed("--seeds", seed)
    check(config.window >= 1, "--window", config.window, "an integer >= 1")
    runs = []
    for seed in config.seeds:
        cfg = TrainConfig(env=config.env, algo=config.algo, iterations=config.iterations, tasks=config.tasks,
                          episodes=config.episodes, horizon=config.horizon, seed=seed,
                          action_scale=config.action_scale,
                          set=tuple(config.set), sampler=config.backend, workers=config.workers,
                          progress=False, tensorboard=False)
        validate_train(cfg)
        runs.append((cfg, build_algo_config(cfg)))
    if config.out is not None:
        ensure_out_file(config.out, "--out")
    return runs


def run(config: BenchLearningConfig) -> list[dict]:
    from bomrl.workflow.plugins import import_plugins

    import_plugins(config.plugins)   # --plugins: families, distances, algorithms of the user's
    return measure(config, validate(config))


def measure(config: BenchLearningConfig, runs) -> list[dict]:
    """The learning curves of validated configs (`validate`'s list); prints and returns the lines."""
    lines: list[dict] = []
    sink = open(config.out, "a") if config.out is not None else None
    try:
        for cfg, algo_cfg in runs:
            for line in _curve(cfg, algo_cfg, config.window):
                lines.append(line)
                text = json.dumps(line)
                print(text, flush=True)
                if sink is not None:
                    sink.write(text + "\n")
                    sink.flush()
    finally:
        if sink is not None:
            sink.close()
    return lines


def _curve(cfg, algo_cfg, window: int):
    posts = []
    t_start = time.perf_counter()
    with make_run_sampler(cfg, cfg.tasks, cfg.seed) as sampler:
        policy = make_policy(cfg, sampler, algo_cfg)
        algo = make_algo(cfg, algo_cfg, policy)
        state, key = initial_state(algo, cfg.seed)
        base = {"algo": cfg.algo, "env": cfg.env, "seed": cfg.seed, "tasks": cfg.tasks,
                "episodes": cfg.episodes, "horizon": sampler.horizon,
                "action_scale": sampler.action_scale}
        env_steps = 0.0
        for it in range(cfg.iterations):
            t0 = time.perf_counter()
            state, m = seeded_step(algo, state, sampler, cfg.seed, it, key)
            env_steps += m["charts/env_steps"]
            pre, post = m["charts/pre_return"], m["charts/post_return"]
            posts.append(post)
            yield {**base, "iteration": it + 1, "pre_return": round(pre, 4), "post_return": round(post, 4),
                   "gain": round(post - pre, 4), "env_steps": env_steps,
                   "wall_s": round(time.perf_counter() - t0, 3),
                   **{k: round(float(m[k]), 6) for k in _CURVE_KEYS if k in m}}
    w = min(window, len(posts))
    yield {**base, "summary": True, "iterations": cfg.iterations, "first_post_return": round(posts[0], 4),
           f"last{w}_post_return": round(float(np.mean(posts[-w:])), 4),
           "rise": round(float(np.mean(posts[-w:]) - posts[0]), 4),
           "wall_s": round(time.perf_counter() - t_start, 2),
           "load_avg_1min": round(os.getloadavg()[0], 2)}
