"""Training-time model selection, as the paper's released scripts do it (36902121699, 36935422779):
after each meta-iteration, adapt once on a few fixed selection tasks and keep the policy whose
post-adaptation return is the best so far (`bomrl train --select-tasks N`; the scripts: 2, the
directions ±1). The kept policy is DIR/best.bomrl, meta-tested with `bomrl meta-test DIR
--checkpoint best`; the periodic checkpoints stay the latest iteration's, so a run resumes as ever.

Selection episodes have their own tasks (the family's `fixed_tasks`, else a draw from their own
seed stream) and reset seeds; they never enter training and are counted apart
(`select/env_steps`). Metrics per iteration: select/return, select/best.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import numpy as np

from bomrl.workflow.checkpoint import BEST_NAME, CheckpointError, load_checkpoint, save_best

SELECT_STREAM = 0x5E1EC7           # selection tasks: default_rng([seed, SELECT_STREAM]); PRNG: fold_in(seed, it)
SELECT_CALLS = 2**41               # reset seeds of the selection rollouts: beyond training's and meta-test's


class ModelSelection:
    """The selection tasks and sampler of one run, and the best post-adaptation return so far."""

    def __init__(self, cfg, run_dir: Path, stride: int):
        from bomrl.workflow.run import fixed_tasks, make_run_sampler

        self.run_dir, self.stride = Path(run_dir), stride
        self.key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), SELECT_STREAM)
        self.sampler = make_run_sampler(cfg, cfg.select_tasks, cfg.seed)
        self.tasks = fixed_tasks(self.sampler, np.random.default_rng([cfg.seed, SELECT_STREAM]))
        self.best = -math.inf
        path = self.run_dir / BEST_NAME
        if path.exists():   # a resumed run continues its selection
            try:
                self.best = float(load_checkpoint(path).meta["select_return"])
            except (CheckpointError, KeyError):
                self.best = -math.inf

    def evaluate(self, algo, state, iteration: int) -> dict:
        """One adaptation on the selection tasks: {select/return, select/best, select/env_steps}."""
        res = algo.adapt(state, self.sampler, self.tasks, jax.random.fold_in(self.key, iteration), steps=1,
                         call=SELECT_CALLS + iteration * self.stride)
        ret = float(np.asarray(res["returns"])[1])
        return {"select/return": ret, "select/best": max(self.best, ret),
                "select/env_steps": float(res["env_steps"])}

    def keep_if_best(self, metrics: dict, iteration: int, state, meta: dict) -> bool:
        """Save `state` as DIR/best.bomrl if its select/return beats every earlier one."""
        ret = metrics["select/return"]
        if not ret > self.best:
            return False
        self.best = ret
        save_best(self.run_dir, iteration, jax.tree_util.tree_leaves(state), {**meta, "select_return": ret})
        return True

    def close(self) -> None:
        self.sampler.close()
