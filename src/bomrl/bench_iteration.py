"""`bomrl bench iteration`: wall time of one meta-iteration (pre-update sampling, adaptation,
post-update sampling, meta-update) of any algorithm, split into sampling and update time.

Prints one JSON line. `cpu_s` is the CPU time of this process (all its threads) per iteration; on
a machine shared with other jobs, cpu_s / cores gives a rough idea of the unloaded wall time.
Timings are medians over `iterations` timed meta-iterations after `warmup`
untimed ones (the warm-up compiles everything). The line also carries the pre-/post-update mean
return of every iteration (warm-up included), so a longer run doubles as a short learning curve:

    bomrl bench iteration --env halfcheetah-vel --algo maml-trpo --tasks 40 --episodes 20 --horizon 100
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from typing import Literal, Optional

from bomrl.errors import ConfigError, check


@dataclass(frozen=True)
class BenchIterationConfig:
    """Time meta-iterations of a meta-RL algorithm on a task family."""

    env: str = "halfcheetah-vel"
    """Task family (halfcheetah-vel, halfcheetah-dir, ant-vel, ant-dir, or any registered one)."""
    algo: str = "maml-trpo"
    """Algorithm: bomrl, maml-trpo, promp or emaml."""
    tasks: int = 40
    """Tasks per meta-batch T (new tasks every iteration)."""
    episodes: int = 20
    """Episodes per task and per sampling round E."""
    horizon: int = 100
    """Steps per episode H."""
    iterations: int = 3
    """Timed meta-iterations (the median is reported)."""
    warmup: int = 1
    """Untimed meta-iterations first (JIT compilation happens here)."""
    backend: Literal["vector", "process"] = "vector"
    """Sampler backend: vector (one process, MuJoCo thread pool) or process (worker processes)."""
    workers: int = 0
    """Sampler threads/processes (0: one per CPU core)."""
    action_scale: Optional[float] = None
    """Policy action scale (default the family's: 10 for the locomotion families; 1 = plain clipping)."""
    seed: int = 0
    """Seed of the policy, the tasks, the resets and the action noise."""
    eval_steps: int = 0
    """If > 0: before the first and after the last iteration (untimed), the mean return after
    0..eval_steps adaptations (each on fresh data) on one fixed set of T held-out tasks."""
    set: tuple[str, ...] = ()
    """Algorithm config overrides NAME=VALUE, e.g. --set inner_steps_adam=20 lam=0.4."""


def _overrides(cfg_cls, items: tuple[str, ...]) -> dict:
    """Parse NAME=VALUE strings against the fields of an algorithm config dataclass."""
    fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in fields:
            raise ConfigError(f"--set {item!r} is invalid: must be NAME=VALUE with NAME one of "
                              f"{', '.join(fields)}")
        default = getattr(cfg_cls(), name)
        try:
            if isinstance(default, bool):
                check(raw.lower() in ("true", "false", "1", "0"), name, raw, "true or false")
                value = raw.lower() in ("true", "1")
            elif isinstance(default, int):
                value = int(raw)
            elif isinstance(default, float):
                value = float(raw)
            else:
                value = raw
        except ValueError:
            raise ConfigError(f"--set {item!r} is invalid: {name} must be a {type(default).__name__}") from None
        out[name] = value
    return out


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def run(config: BenchIterationConfig) -> dict:
    from bomrl.algos import get_algorithm
    from bomrl.envs import get_family, make_sampler

    algo_cls, cfg_cls = get_algorithm(config.algo)   # unknown names: one-line error listing them
    family = get_family(config.env)
    for name in ("tasks", "episodes", "horizon", "iterations"):
        value = getattr(config, name)
        check(value >= 1, f"--{name}", value, "an integer >= 1")
    check(config.warmup >= 0, "--warmup", config.warmup, "an integer >= 0")
    check(config.eval_steps >= 0, "--eval-steps", config.eval_steps, "an integer >= 0")
    check(config.workers >= 0, "--workers", config.workers, "0 (one per core) or an integer >= 1")
    algo_cfg = cfg_cls(**_overrides(cfg_cls, config.set))
    workers = config.workers or (os.cpu_count() or 1)

    import jax
    import numpy as np

    from bomrl.core.policies import gaussian_mlp

    key = jax.random.PRNGKey(config.seed)
    rows = []
    with make_sampler(family, config.tasks, config.episodes, config.horizon, backend=config.backend,
                      num_workers=workers, seed=config.seed, action_scale=config.action_scale) as sampler:
        policy = gaussian_mlp(sampler.obs_dim, sampler.act_dim, hidden=(64, 64), init_std=1.0)
        algo = algo_cls(algo_cfg, policy)
        state = algo.init(jax.random.fold_in(key, 0))
        evals = []
        eval_tasks = sampler.sample_tasks(np.random.default_rng([config.seed, 10**6]))

        def evaluate():
            out = algo.adapt(state, sampler, eval_tasks, jax.random.fold_in(key, 10**6), config.eval_steps)
            evals.append([round(float(r), 2) for r in out["returns"]])

        if config.eval_steps:
            evaluate()
        for it in range(config.warmup + config.iterations):
            tasks = sampler.sample_tasks(np.random.default_rng([config.seed, it]))
            t0, c0 = time.perf_counter(), time.process_time()
            state, m = algo.step(state, sampler, tasks, jax.random.fold_in(key, it + 1))
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
        "backend": config.backend, "workers": workers, "action_scale": sampler.family.action_scale,
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
