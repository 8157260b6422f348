"""A run's pieces and its seeded meta-iteration, shared by `bomrl train`, `meta-test`, the benchmarks
and the checks (the only copy of the loop body, so every command draws the same numbers).

Determinism: everything random in meta-iteration i (0-based) is a function of (seed, i) only: the
tasks come from np.random.default_rng([seed, i]) (or the run's fixed tasks), the algorithm's key is
fold_in(PRNGKey(seed), i + 1) (fold_in(·, 0) initialises the policy), and the iteration's sampler calls
have the indices i · SAMPLER_CALL_STRIDE, + 1, ... (`call` of `algo.step`; the index fixes the
environment reset seeds, bomrl.envs.sampler).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np

from bomrl.algos import get_algorithm
from bomrl.envs import make_sampler
from bomrl.envs.families import GymLoopStepper
from bomrl.errors import ConfigError
from bomrl.workflow.config import CONFIG_NAME, TrainConfig, build_algo_config, config_from_json, saved_algo_config
from bomrl.workflow.plugins import import_plugins

__all__ = ["SAMPLER_CALL_STRIDE", "fixed_tasks", "initial_state", "load_run", "make_algo", "make_policy",
           "make_run_sampler", "seeded_step", "training_tasks"]

SAMPLER_CALL_STRIDE = 1000   # sampler call indices reserved per meta-iteration (one makes algo.sampler_calls)


def make_policy(cfg: TrainConfig, sampler, algo_cfg=None):
    """The run's policy: the algorithm's own (classmethod `make_policy(cfg, sampler, algo_cfg)`,
    e.g. RL²'s GRU policy) if it has one, else the Gaussian / categorical MLP of --hidden."""
    from bomrl.algos.base import MetaAlgorithm
    from bomrl.core.policies import gaussian_mlp, policy_dtype

    dtype = policy_dtype(cfg.precision)
    algo_cls, _ = get_algorithm(cfg.algo)
    fixed, filtered = getattr(cfg, "fixed_std", False), getattr(cfg, "obs_filter", False)
    for flag, on, what in (("--fixed-std", fixed, "fixes the Gaussian MLP policy's std"),
                           ("--obs-filter", filtered, "normalises the Gaussian MLP policy's observations")):
        own_loop = flag == "--obs-filter" and algo_cls.step is not MetaAlgorithm.step   # would never update it
        if on and (hasattr(algo_cls, "make_policy") or sampler.discrete or own_loop):
            raise ConfigError(f"{flag} is invalid for --algo {cfg.algo} on {cfg.env}: it {what} (continuous "
                              "actions; bomrl, maml-trpo, promp, emaml)")
    if hasattr(algo_cls, "make_policy"):
        return algo_cls.make_policy(cfg, sampler, algo_cfg)

    if sampler.discrete:
        from bomrl.core.policies import categorical_mlp

        return categorical_mlp(sampler.obs_dim, sampler.act_dim, hidden=tuple(cfg.hidden), dtype=dtype)
    return gaussian_mlp(sampler.obs_dim, sampler.act_dim, hidden=tuple(cfg.hidden), init_std=cfg.init_std,
                        dtype=dtype, learn_std=not fixed, obs_filter=filtered)


def make_run_sampler(cfg: TrainConfig, num_tasks: int, seed: int, family=None, episodes: int | None = None):
    """The run's sampler (`family`: a family object instead of cfg.env's; `episodes`: instead of
    the run's)."""
    extra = {"ray_address": cfg.ray_address} if cfg.sampler == "ray" else {}
    sampler = make_sampler(cfg.env if family is None else family, num_tasks, episodes or cfg.episodes, cfg.horizon,
                           backend=cfg.sampler, num_workers=cfg.workers or None, seed=seed,
                           action_scale=cfg.action_scale, **extra)
    if cfg.sampler == "vector" and cfg.workers > 1 and isinstance(getattr(sampler, "_stepper", None), GymLoopStepper):
        print(f"bomrl: warning: --workers {cfg.workers} has no effect with --sampler vector for {cfg.env!r} (its "
              f"gymnasium envs are stepped one after another in this process); --sampler process steps them in "
              f"{cfg.workers} worker processes", file=sys.stderr)
    return sampler


def load_run(run_dir: Path):
    """(TrainConfig, algorithm config) saved in a run directory; one-line ConfigError if unusable."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"run directory {str(run_dir)!r} is invalid: it has no {CONFIG_NAME} "
                          "(start one with `bomrl train --out DIR`)")
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc})") from None
    cfg = config_from_json(saved.get("train", {}), str(path))
    import_plugins(cfg.plugins)
    return cfg, build_algo_config(cfg, saved_algo_config(saved, cfg.algo))


def make_algo(cfg: TrainConfig, algo_cfg, policy):
    """The algorithm object for a resolved train config and algorithm config."""
    algo_cls, _ = get_algorithm(cfg.algo)
    return algo_cls(algo_cfg, policy)


def training_tasks(sampler, seed: int, iteration: int) -> np.ndarray:
    """The tasks of a training iteration: drawn from default_rng([seed, iteration])."""
    return sampler.sample_tasks(np.random.default_rng([seed, iteration]))


def fixed_tasks(sampler, rng: np.random.Generator) -> np.ndarray:
    """The sampler's num_tasks tasks kept for a whole run: the family's fixed list
    (`TaskFamily.fixed_tasks`), else one draw from rng (--fixed-tasks: iteration 0's stream)."""
    listed = sampler.family.fixed_tasks(sampler.num_tasks)
    return sampler.sample_tasks(rng) if listed is None else np.asarray(listed, np.float64)


def initial_state(algo, seed: int):
    """(state, key): the algorithm's initial state from fold_in(PRNGKey(seed), 0) and the run's key."""
    key = jax.random.PRNGKey(seed)
    return algo.init(jax.random.fold_in(key, 0)), key


def seeded_step(algo, state, sampler, seed: int, iteration: int, key, tasks=None, **step_kwargs):
    """Meta-iteration `iteration` (0-based) of a run: (new_state, metrics) of `algo.step` with the
    tasks of training_tasks(sampler, seed, iteration) (or `tasks`, e.g. the run's fixed ones), the key
    fold_in(key, iteration + 1) and the sampler call indices from iteration · SAMPLER_CALL_STRIDE
    (module docstring). step_kwargs go to `algo.step` (e.g. post_sampler)."""
    if algo.sampler_calls > SAMPLER_CALL_STRIDE:   # would break reset-seed uniqueness
        raise ConfigError(f"{algo.name}'s iteration makes {algo.sampler_calls} sampler calls: at most "
                          f"{SAMPLER_CALL_STRIDE} are allowed (fewer adaptation rounds)")
    if tasks is None:
        tasks = training_tasks(sampler, seed, iteration)
    return algo.step(state, sampler, tasks, jax.random.fold_in(key, iteration + 1),
                     call=iteration * SAMPLER_CALL_STRIDE, **step_kwargs)
