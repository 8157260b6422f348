"""`bomrl train`: meta-train an algorithm on a task family, resumable and logged.

    bomrl train --env halfcheetah-vel --algo bomrl --distance kl --iterations 100 --out runs/x
    bomrl train --resume runs/x                # after a crash, kill or to extend --iterations

Determinism: everything random in meta-iteration i (0-based) is a function of (seed, i) only
(bomrl.workflow.run.seeded_step: the tasks from np.random.default_rng([seed, i]), the key
fold_in(PRNGKey(seed), i + 1), the sampler call indices from i · SAMPLER_CALL_STRIDE). A run
resumed from the checkpoint at iteration k therefore produces exactly the metrics of an
uninterrupted run (wall-clock columns aside).

Run directory: config.json (full config, algorithm hyper-parameters included), metrics.csv,
tb/ (TensorBoard), ckpt-NNNNNN.bomrl (the last two checkpoints), .lock (held by the one process
writing the directory; a second `train` on it is refused, bomrl.workflow.runlock). SIGTERM is
handled like Ctrl-C: the completed iterations are checkpointed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np

from bomrl.errors import BomrlError, ConfigError, check
from bomrl.utils import atomic_write_json, ensure_out_dir
from bomrl.workflow.checkpoint import (CheckpointError, list_checkpoints, load_latest, restore_tree,
                                      save_checkpoint)
from bomrl.workflow.config import CONFIG_NAME, TrainConfig, build_algo_config, config_to_json, resolve_train_config
from bomrl.workflow.logging import CSV_NAME, MetricsLogger, ProgressBar, check_metrics_file, read_metrics
from bomrl.workflow.run import (SAMPLER_CALL_STRIDE, fixed_tasks, initial_state, load_run, make_algo, make_policy,
                                make_run_sampler, seeded_step, training_tasks)
from bomrl.workflow.runlock import RunLock

# load_run ... training_tasks live in bomrl.workflow.run (re-exported here for existing imports)
__all__ = ["TrainConfig", "run", "train", "load_run", "make_policy", "make_run_sampler", "make_algo",
           "SAMPLER_CALL_STRIDE", "fixed_tasks", "training_tasks"]

# the run settings that change its numbers (the others: iterations, output, logging, sampler backend
# and workers, whose results are identical by test)
NUMBER_SETTINGS = ("env", "algo", "seed", "tasks", "episodes", "horizon", "action_scale", "hidden", "init_std",
                   "precision", "fixed_std", "fixed_tasks", "post_episodes", "select_tasks",
                   "obs_filter")


def number_settings(cfg: TrainConfig, algo_cfg) -> dict:
    """{setting: value} of everything that changes a run's numbers (JSON types), recorded in each
    checkpoint and compared on resume: NUMBER_SETTINGS and every algorithm setting (algo_config.*)."""
    out = {name: getattr(cfg, name) for name in NUMBER_SETTINGS}
    out.update({f"algo_config.{k}": v for k, v in dataclasses.asdict(algo_cfg).items()})
    return json.loads(json.dumps(out))


def check_settings(ckpt, settings: dict, renamed: dict | None = None) -> None:
    """Refuse (one line, naming the setting and both values) to continue a checkpoint under other
    settings. Checkpoints written before settings were recorded are not checked; `renamed` maps
    former algorithm setting names to today's (the algorithm config's RENAMED)."""
    saved = ckpt.meta.get("settings")
    if saved is None:
        return
    prefix = "algo_config."
    saved = {prefix + renamed[k[len(prefix):]] if k.startswith(prefix) and k[len(prefix):] in (renamed or {})
             else k: v for k, v in saved.items()}
    for name in sorted(set(saved) | set(settings)):
        if name in saved and name in settings and saved[name] != settings[name]:
            raise BomrlError(f"checkpoint {ckpt.path} was trained with {name}={saved[name]!r} but the run's "
                             f"config now says {settings[name]!r}: a resumed run keeps its settings (edit "
                             "config.json back, or start a new run with --out)")


def refuse_if_checkpoints_lost(run_dir: Path, checkpoint_every: int) -> None:
    """A run with no checkpoint is started over only if it was killed before its first one. If its
    metrics.csv logged more than `checkpoint_every` iterations (or it was meta-tested), its
    checkpoints existed and are gone: starting over would silently replace its logged results, so
    raise CheckpointError instead."""
    logged = max((row["iteration"] for row in read_metrics(Path(run_dir) / CSV_NAME)), default=0)
    meta_tested = sorted(p.name for p in Path(run_dir).glob("meta_test*.json"))
    if logged > checkpoint_every or meta_tested:
        what = f"logged {logged} iterations" + (f" and has {meta_tested[0]}" if meta_tested else "")
        raise CheckpointError(f"{run_dir} {what} but holds no checkpoint (ckpt-*.bomrl deleted or never "
                              "kept): it cannot be continued; move it aside and train it again with --out")


def run(config: TrainConfig) -> dict:
    return train(config)


def train(config: TrainConfig) -> dict:
    """Run (or resume) meta-training; returns a summary dict. See the module docstring."""
    cfg, algo_extra, run_dir, resuming = resolve_train_config(config)
    algo_cfg = build_algo_config(cfg, algo_extra)           # algorithm values validated here
    if not resuming:
        run_dir = ensure_out_dir(run_dir)
    # one writer per run directory, from before the first read to the process's end
    with RunLock(run_dir), terminate_as_interrupt():
        return _train(cfg, algo_cfg, run_dir, resuming)


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM (sent by `timeout`, job schedulers, `kill`) handled like Ctrl-C: the completed
    iterations are checkpointed before the process ends (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(cfg: TrainConfig, algo_cfg, run_dir: Path, resuming: bool) -> dict:
    if not resuming:
        if (run_dir / CONFIG_NAME).exists() or list_checkpoints(run_dir):
            raise ConfigError(f"--out={str(run_dir)!r} already holds a run: continue it with "
                              f"--resume {run_dir} or choose another --out")
    ckpt = None
    if resuming and not list_checkpoints(run_dir):
        refuse_if_checkpoints_lost(run_dir, cfg.checkpoint_every)   # else killed before its first: start over
    elif resuming:
        ckpt = load_latest(run_dir, warn=lambda msg: print(f"bomrl: warning: {msg}", file=sys.stderr))
        if ckpt.iteration >= cfg.iterations:
            print(f"train: {run_dir} already has {ckpt.iteration} of {cfg.iterations} iterations "
                  "(pass a larger --iterations to continue)", file=sys.stderr)
            return {"run_dir": str(run_dir), "iterations": ckpt.iteration, "resumed_from": ckpt.iteration}

    sampler = make_run_sampler(cfg, cfg.tasks, cfg.seed)
    post_sampler = selection = None
    logger = bar = None
    done = saved = 0
    try:
        cfg = dataclasses.replace(cfg, horizon=sampler.horizon, action_scale=sampler.action_scale)
        cont = getattr(algo_cfg, "continuation", 0)
        check(cont < cfg.horizon, "continuation", cont,
              f"< --horizon {cfg.horizon} (the sampled episode is data plus continuation: e.g. --horizon 400 "
              "with continuation=200)")
        settings = number_settings(cfg, algo_cfg)
        if ckpt is not None:   # everything a resume checks, before it writes anything
            for name in ("env", "algo", "seed"):
                if ckpt.meta.get(name) != getattr(cfg, name):
                    raise BomrlError(f"checkpoint {ckpt.path} is from another run "
                                     f"({name}={ckpt.meta.get(name)!r}, config says {getattr(cfg, name)!r})")
            check_settings(ckpt, settings, getattr(type(algo_cfg), "RENAMED", {}))
            check_metrics_file(run_dir / CSV_NAME, ckpt.iteration)
        atomic_write_json(run_dir / CONFIG_NAME, {"train": config_to_json(cfg),
                                                  "algo_config": dataclasses.asdict(algo_cfg)})
        policy = make_policy(cfg, sampler, algo_cfg)
        algo = make_algo(cfg, algo_cfg, policy)
        post_sampler = make_post_sampler(cfg, algo)
        if getattr(cfg, "select_tasks", 0):
            from bomrl.workflow.selection import ModelSelection

            selection = ModelSelection(cfg, run_dir, SAMPLER_CALL_STRIDE)
        state, key = initial_state(algo, cfg.seed)
        start, wall, env_steps = 0, 0.0, 0.0
        if ckpt is not None:
            state = restore_tree(state, ckpt)
            start, wall, env_steps = ckpt.iteration, float(ckpt.meta["wall_s"]), float(ckpt.meta["env_steps"])
        logger = MetricsLogger(run_dir, start, tensorboard=cfg.tensorboard)
        bar = ProgressBar(cfg.iterations, start, enabled=cfg.progress, description=f"{cfg.algo} {cfg.env}")
        row, done, saved = {}, start, start

        def checkpoint():
            nonlocal saved
            logger.flush()   # rows up to the checkpoint are on disk before it exists
            save_checkpoint(run_dir, done, jax.tree_util.tree_leaves(state),
                            {"env": cfg.env, "algo": cfg.algo, "seed": cfg.seed, "wall_s": wall,
                             "env_steps": env_steps, "settings": settings})
            saved = done

        fixed = fixed_tasks(sampler, np.random.default_rng([cfg.seed, 0])) if cfg.fixed_tasks else None
        for it in range(start, cfg.iterations):
            t0 = time.perf_counter()
            extra = {} if post_sampler is None else {"post_sampler": post_sampler}
            new_state, m = seeded_step(algo, state, sampler, cfg.seed, it, key, tasks=fixed, **extra)
            new_wall = wall + time.perf_counter() - t0
            new_steps = env_steps + m.pop("charts/env_steps")
            if selection is not None:
                m.update(selection.evaluate(algo, new_state, it + 1))
            row = {"iteration": it + 1, "env_steps": new_steps, "wall_s": new_wall,
                   **{RENAME.get(k, k): v for k, v in m.items()}}
            logger.log(row)
            if selection is not None:
                selection.keep_if_best(m, it + 1, new_state, {"env": cfg.env, "algo": cfg.algo, "seed": cfg.seed,
                                                              "settings": settings})
            # commit in one statement, so a Ctrl-C checkpoint never mixes two iterations
            state, done, wall, env_steps = new_state, it + 1, new_wall, new_steps
            bar.update(done, row["pre_return"], row["post_return"])
            if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
                checkpoint()
    except Exception as exc:  # noqa: BLE001
        if not _is_interrupt(exc):
            if done > saved and logger is not None:   # keep the completed iterations (e.g. a NaN stop)
                checkpoint()
            elif done == 0 and not resuming:          # a failed start leaves nothing that blocks a retry
                _remove_failed_start(run_dir, logger)
                logger = None
            raise
        # Ctrl-C inside a jitted host callback (jax.debug.callback) arrives wrapped by the runtime
        _save_on_interrupt(done > saved and logger is not None, checkpoint, done, run_dir)
        raise KeyboardInterrupt from None
    except KeyboardInterrupt:
        _save_on_interrupt(done > saved and logger is not None, checkpoint, done, run_dir)
        raise
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()
        sampler.close()
        for extra_sampler in (post_sampler, selection):
            if extra_sampler is not None:
                extra_sampler.close()
    summary = {"run_dir": str(run_dir), "iterations": cfg.iterations,
               "resumed_from": ckpt.iteration if ckpt is not None else None,
               "pre_return": row.get("pre_return"), "post_return": row.get("post_return"),
               "wall_s": round(wall, 2)}
    print(f"train: {cfg.algo} on {cfg.env}: {cfg.iterations} iterations, post-adaptation return "
          f"{row.get('post_return', float('nan')):.2f}, {wall:.1f} s of training -> {run_dir}", file=sys.stderr)
    return summary


def make_post_sampler(cfg: TrainConfig, algo):
    """--post-episodes: a second sampler (same family, tasks, horizon and seed) for the post-update
    batch of gradient-based algorithms; None without the flag or when it equals --episodes."""
    from bomrl.algos.base import MetaAlgorithm

    n = getattr(cfg, "post_episodes", None)
    if n is None or n == cfg.episodes:
        return None
    if type(algo).step is not MetaAlgorithm.step:
        raise ConfigError(f"--post-episodes is invalid for --algo {cfg.algo}: it has no separate post-update "
                          "batch (bomrl, maml-trpo, promp, emaml have)")
    return make_run_sampler(cfg, cfg.tasks, cfg.seed, episodes=n)


def _remove_failed_start(run_dir: Path, logger) -> None:
    """Undo a new run that failed before its first iteration: its config.json, metrics.csv and tb/
    (so the same command can be retried). The lock file stays; it blocks nothing once released."""
    import shutil

    if logger is not None:
        logger.close()
    for name in (CONFIG_NAME, CSV_NAME):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "tb", ignore_errors=True)


def _is_interrupt(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt) or "KeyboardInterrupt" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _save_on_interrupt(needed: bool, checkpoint, done: int, run_dir) -> None:
    """Ctrl-C: keep the completed iterations in a checkpoint."""
    if needed:
        checkpoint()
        print(f"bomrl: checkpoint of iteration {done} saved; continue with --resume {run_dir}", file=sys.stderr)


RENAME = {"charts/pre_return": "pre_return", "charts/post_return": "post_return"}
