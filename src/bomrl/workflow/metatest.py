"""`bomrl meta-test DIR`: mean return on fresh test tasks after 0..k one-time adaptations.

    bomrl meta-test runs/x --adapt-steps 3 --tasks 40 --out runs/x/meta_test.json

Loads the latest good checkpoint of the run (falling back to the previous one if the newest is
corrupt), draws `--tasks` test tasks from a seed stream the training never uses, and calls
`algo.adapt`: adaptation round j collects fresh episodes with the current (adapted) policies and
adapts once on them; nothing is re-used across rounds. Each task's return is the mean over the
run's episodes per task; `stderr` is the standard error of the mean over tasks.

Output JSON: {"env", "algo", "distance", "tasks", "returns": [r0..rk], "stderr": [...],
"task_returns": [[...] per step], "iteration", "episodes", "horizon", "env_steps", "seed"}.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import numpy as np

from bomrl.errors import check
from bomrl.limits import MAX_COUNT, MAX_ROUNDS, check_int, check_seed
from bomrl.utils import atomic_write_json
from bomrl.workflow.checkpoint import load_latest, restore_tree
from bomrl.workflow.metatest_config import MetaTestConfig
from bomrl.workflow.train import load_run, make_algo, make_policy, make_run_sampler

__all__ = ["MetaTestConfig", "TEST_SAMPLER_CALLS", "TEST_STREAM", "run"]

TEST_STREAM = 0x7E57_7A5C          # test tasks: default_rng([seed, TEST_STREAM]); training uses [seed, i]
TEST_SAMPLER_CALLS = 2**40         # reset seeds of the test rollouts: counter far beyond training's


def run(config: MetaTestConfig) -> dict:
    check_int("--adapt-steps", config.adapt_steps, 0, MAX_ROUNDS)
    check_int("--tasks", config.tasks, 1, MAX_COUNT)
    if config.seed is not None:
        check_seed("--seed", config.seed)
    cfg, algo_cfg = load_run(config.run_dir)           # one-line error if DIR is not a run
    out = Path(config.out) if config.out is not None else Path(config.run_dir) / "meta_test.json"
    check(out.parent.is_dir(), "--out", str(out), "a file in an existing directory")

    ckpt = load_latest(config.run_dir, warn=lambda msg: print(f"bomrl: warning: {msg}", file=sys.stderr))

    seed = cfg.seed if config.seed is None else config.seed
    with make_run_sampler(cfg, config.tasks, seed) as sampler:
        policy = make_policy(cfg, sampler, algo_cfg)
        algo = make_algo(cfg, algo_cfg, policy)
        key = jax.random.PRNGKey(seed)
        state = restore_tree(algo.init(jax.random.fold_in(key, 0)), ckpt)
        tasks = sampler.sample_tasks(np.random.default_rng([seed, TEST_STREAM]))
        sampler.iteration = TEST_SAMPLER_CALLS
        res = algo.adapt(state, sampler, tasks, jax.random.fold_in(key, TEST_STREAM), config.adapt_steps)
    per_task = np.asarray(res["task_returns"], np.float64)            # [k + 1, T]
    sem = (per_task.std(axis=1, ddof=1) / math.sqrt(per_task.shape[1]) if per_task.shape[1] > 1
           else np.zeros(per_task.shape[0]))
    result = {
        "env": cfg.env, "algo": cfg.algo, "distance": (cfg.distance or algo_cfg.distance) if cfg.algo == "bomrl" else None,
        "tasks": config.tasks, "returns": [float(r) for r in per_task.mean(axis=1)],
        "stderr": [float(s) for s in sem], "task_returns": per_task.tolist(),
        "adapt_steps": config.adapt_steps, "iteration": ckpt.iteration, "episodes": cfg.episodes,
        "horizon": cfg.horizon, "env_steps": int(res["env_steps"]), "seed": seed,
        "run_dir": str(config.run_dir),
    }
    atomic_write_json(out, result)
    steps = "  ".join(f"{r:.2f}±{s:.2f}" for r, s in zip(result["returns"], result["stderr"]))
    print(f"meta-test: {cfg.algo} on {cfg.env} (iteration {ckpt.iteration}, {config.tasks} tasks), "
          f"return after 0..{config.adapt_steps} adaptations: {steps} -> {out}", file=sys.stderr)
    return result
