"""`bomrl meta-test DIR`: mean return on fresh test tasks after 0..k one-time adaptations.

    bomrl meta-test runs/x --adapt-steps 3 --tasks 40 --out runs/x/meta_test.json

Loads the latest good checkpoint of the run (falling back to the previous one if the newest is
corrupt), draws `--tasks` test tasks from a seed stream the training never uses, and calls
`algo.adapt`: adaptation round j collects fresh episodes with the current (adapted) policies and
adapts once on them; nothing is re-used across rounds. Each task's return is the mean over the
run's episodes per task; `stderr` is the standard error of the mean over tasks.

A family with a held-out test split (`TaskFamily.sample_test_tasks`: Meta-World's test variations)
is tested on it (`"split": "test"` in the output); any other family on fresh tasks of its training
distribution (`"split": "train"`). A family with episode statistics (Meta-World's success) gets
them per adaptation too: `"stats": {name: [s0..sk]}` (means over tasks) and `"task_stats"`.

`--env NAME` tests on another registered family with the same observation and action spaces (a run
trained on nav2d's dense reward, tested on nav2d-sparse, as MAESN is evaluated); the test tasks come
from that family's own task distribution with the same seed stream.

Output JSON: {"env", "trained_env", "algo", the algorithm's variant settings (BO-MRL: "distance"), "tasks", "returns": [r0..rk], "stderr": [...],
"task_returns": [[...] per step], "iteration", "episodes", "horizon", "env_steps", "seed"}.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from pathlib import Path

import jax
import numpy as np

from bomrl.algos import get_algorithm
from bomrl.envs.families import family_names, get_family
from bomrl.errors import ConfigError, check_choice
from bomrl.limits import MAX_COUNT, MAX_ROUNDS, check_int, check_seed
from bomrl.utils import atomic_write_json, ensure_out_file
from bomrl.workflow.checkpoint import BEST_NAME, load_checkpoint, load_latest, restore_tree
from bomrl.workflow.metatest_config import MetaTestConfig
from bomrl.workflow.run import load_run, make_algo, make_policy, make_run_sampler

__all__ = ["MetaTestConfig", "TEST_SAMPLER_CALLS", "TEST_STREAM", "run"]

TEST_STREAM = 0x7E57_7A5C          # test tasks: default_rng([seed, TEST_STREAM]); training uses [seed, i]
TEST_SAMPLER_CALLS = 2**40         # reset seeds of the test rollouts: counter far beyond training's


def run(config: MetaTestConfig) -> dict:
    from bomrl.workflow.plugins import import_plugins

    import_plugins(config.plugins)   # --plugins: families, distances, algorithms of the user's
    check_int("--adapt-steps", config.adapt_steps, 0, MAX_ROUNDS)
    check_int("--tasks", config.tasks, 1, MAX_COUNT)
    if config.seed is not None:
        check_seed("--seed", config.seed)
    check_int("--eval-episodes", config.eval_episodes, 1, MAX_COUNT)
    cfg, algo_cfg = load_run(config.run_dir)           # one-line error if DIR is not a run
    trained_env = cfg.env
    if config.env is not None and config.env != cfg.env:
        cfg = dataclasses.replace(cfg, env=_test_family(config.env, cfg.env))
    default_name = "meta_test.json" if cfg.env == trained_env else f"meta_test-{cfg.env}.json"
    out = Path(config.out) if config.out is not None else Path(config.run_dir) / default_name
    ensure_out_file(out, "--out" if config.out is not None else "meta-test output")

    check_choice("--checkpoint", config.checkpoint, ("latest", "best"))
    if config.checkpoint == "best":
        best = Path(config.run_dir) / BEST_NAME
        if not best.exists():
            raise ConfigError(f"--checkpoint=best is invalid for {config.run_dir}: it has no {BEST_NAME} (train "
                              "with --select-tasks N to keep one); use --checkpoint latest")
        ckpt = load_checkpoint(best)
    else:
        ckpt = load_latest(config.run_dir, warn=lambda msg: print(f"bomrl: warning: {msg}", file=sys.stderr))

    seed = cfg.seed if config.seed is None else config.seed
    grid = None
    if config.task_grid:
        grid = get_family(cfg.env).test_grid()
        if grid is None:
            raise ConfigError(f"--task-grid is invalid for {cfg.env!r}: the family has no fixed test grid "
                              "(TaskFamily.test_grid); draw --tasks tasks instead")
        grid = np.asarray(grid, np.float64)
        config = dataclasses.replace(config, tasks=len(grid))
    with make_run_sampler(cfg, config.tasks, seed) as sampler:
        policy = make_policy(cfg, sampler, algo_cfg)
        algo = make_algo(cfg, algo_cfg, policy)
        key = jax.random.PRNGKey(seed)
        state = restore_tree(algo.init(jax.random.fold_in(key, 0)), ckpt)
        split = "test" if sampler.family.has_test_split else "train"
        tasks = sampler.sample_tasks(np.random.default_rng([seed, TEST_STREAM]), split=split) if grid is None else grid
        test_key = jax.random.fold_in(key, TEST_STREAM)
        if config.protocol == "metaworld":
            with _eval_sampler(cfg, algo, sampler, config, seed) as evaluator:
                res = algo.adapt(state, sampler, tasks, test_key, config.adapt_steps, call=TEST_SAMPLER_CALLS,
                                 eval_sampler=evaluator, eval_call=TEST_SAMPLER_CALLS + 2**20)   # its own reset seeds
        elif config.protocol == "released":
            _check_gradient_based(algo, cfg, "released")
            res = algo.adapt(state, sampler, tasks, test_key, config.adapt_steps, call=TEST_SAMPLER_CALLS,
                             mean_action=True)
        else:
            res = algo.adapt(state, sampler, tasks, test_key, config.adapt_steps, call=TEST_SAMPLER_CALLS)
    per_task = np.asarray(res["task_returns"], np.float64)            # [k + 1, T]
    sem = _stderr(per_task)
    result = {
        "env": cfg.env, "trained_env": trained_env, "algo": cfg.algo,
        **{name: getattr(algo_cfg, name) for name in get_algorithm(cfg.algo)[0].VARIANT},   # BO-MRL: distance
        "tasks": config.tasks, "returns": [float(r) for r in per_task.mean(axis=1)],
        "stderr": [float(s) for s in sem], "task_returns": per_task.tolist(),
        "adapt_steps": config.adapt_steps, "iteration": ckpt.iteration, "episodes": cfg.episodes,
        "horizon": cfg.horizon, "env_steps": int(res["env_steps"]), "seed": seed,
        "run_dir": str(config.run_dir),
        **({"adapt_kl": [float(k) for k in res["adapt_kl"]]} if "adapt_kl" in res else {}),
        "split": "grid" if grid is not None else split, "protocol": config.protocol, "checkpoint": config.checkpoint,
        **({"eval_episodes": config.eval_episodes} if config.protocol == "metaworld" else {}),
    }
    if "task_returns_mean_action" in res:
        result.update(released_aggregates(per_task, res["task_returns_mean_action"]))
    task_stats = {k: np.asarray(v, np.float64) for k, v in (res.get("task_stats") or {}).items()}
    if task_stats:
        result["stats"] = {k: [float(x) for x in v.mean(axis=1)] for k, v in task_stats.items()}
        result["task_stats"] = {k: v.tolist() for k, v in task_stats.items()}
    atomic_write_json(out, result)
    steps = "  ".join(f"{r:.2f}±{s:.2f}" for r, s in zip(result["returns"], result["stderr"]))
    extra = "".join(f"; {k} " + "  ".join(f"{x:.3f}" for x in v) for k, v in result.get("stats", {}).items())
    for key_, label in (("returns_mean_action", "mean-action"), ("returns_best", "per-task max")):
        if key_ in result:
            extra += f"; {label} " + "  ".join(f"{x:.2f}" for x in result[key_])
    print(f"meta-test: {cfg.algo} on {cfg.env} (iteration {ckpt.iteration}, {config.tasks} {'test-split ' if split == 'test' else ''}tasks), "
          f"return after 0..{config.adapt_steps} adaptations: {steps}{extra} -> {out}", file=sys.stderr)
    return result


def _eval_sampler(cfg, algo, sampler, config: MetaTestConfig, seed: int):
    """The final round's sampler of Meta-World's evaluation protocol: --eval-episodes episodes per
    task of a copy of the family whose episodes end at their first success."""
    family = sampler.family
    if "success" not in (family.episode_stats or {}):
        raise ConfigError(f"--protocol=metaworld is invalid for {cfg.env!r}: the family reports no success "
                          "(episode_stats); use --protocol standard")
    _check_gradient_based(algo, cfg, "metaworld")
    family = copy.copy(family)
    family.terminate_on_success = True
    return make_run_sampler(cfg, config.tasks, seed, family=family, episodes=config.eval_episodes)


def _check_gradient_based(algo, cfg, protocol: str) -> None:
    from bomrl.algos.base import MetaAlgorithm

    if type(algo).adapt is not MetaAlgorithm.adapt:
        raise ConfigError(f"--protocol={protocol} is invalid for --algo {cfg.algo}: it needs gradient-based "
                          "adaptation (bomrl, maml-trpo, promp, emaml)")


def _stderr(per_task: np.ndarray) -> np.ndarray:
    """Standard error over tasks (axis 1) of [rounds, T]; 0 with one task."""
    if per_task.shape[1] < 2:
        return np.zeros(per_task.shape[0])
    return per_task.std(axis=1, ddof=1) / math.sqrt(per_task.shape[1])


def released_aggregates(stochastic, mean_action) -> dict:
    """The released meta-test scripts' three numbers per round (36952404750, 36942303703), from
    per-task returns [rounds, T] of the stochastic and the mean-action episodes: the means over
    tasks of the mean-action return (`returns_mean_action`), of the stochastic return (the
    standard `returns`) and of the per-task maximum of the two (`returns_best`), with standard
    errors over tasks. The maximum picks, per task and after the fact, the better of two
    evaluations: an optimistic number, reported beside the others, never instead of them."""
    sto, mode = np.asarray(stochastic, np.float64), np.asarray(mean_action, np.float64)
    best = np.maximum(sto, mode)
    return {"returns_mean_action": [float(x) for x in mode.mean(axis=1)],
            "stderr_mean_action": [float(x) for x in _stderr(mode)],
            "task_returns_mean_action": mode.tolist(),
            "returns_best": [float(x) for x in best.mean(axis=1)],
            "stderr_best": [float(x) for x in _stderr(best)]}


def _test_family(name: str, trained: str) -> str:
    """name, if it is a registered family whose spaces equal the trained family's; else ConfigError."""
    check_choice("--env", name, family_names())
    got, want = get_family(name).spaces(), get_family(trained).spaces()
    same = got[0] == want[0] and got[1] == want[1] and got[4] == want[4] and all(
        (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
        for a, b in zip(got[2:4], want[2:4]))
    if not same:
        def show(sp):
            kind = f"{sp[1]} discrete actions" if sp[4] else f"{sp[1]}-dim actions in [{sp[2].min():g}, {sp[3].max():g}]"
            return f"{sp[0]}-dim observations, {kind}"
        raise ConfigError(f"--env={name!r} is not allowed for this run: its spaces ({show(got)}) differ from "
                          f"those of {trained!r} the run was trained on ({show(want)}); a family with the same "
                          "spaces is allowed")
    return name
