"""`bomrl meta-test` configuration (import-light: the CLI builds its parser from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro


@dataclass(frozen=True)
class MetaTestConfig:
    """Meta-test a trained run: return after 0..k one-time adaptations on fresh tasks (JSON)."""

    run_dir: tyro.conf.Positional[Annotated[Path, tyro.conf.arg(metavar="DIR")]]
    """Run directory written by `bomrl train`."""
    adapt_steps: int = 3
    """Adaptation rounds k (the output has k + 1 returns)."""
    tasks: int = 40
    """Number of fresh test tasks."""
    seed: Optional[int] = None
    """Seed of the test tasks, resets and action noise (default: the run's seed)."""
    env: Optional[str] = None
    """Test on another registered task family with the run's observation and action spaces (e.g.
    a run trained on nav2d, tested on nav2d-sparse); default: the family the run was trained on."""
    out: Optional[Path] = None
    """Output JSON file (default DIR/meta_test.json, or DIR/meta_test-ENV.json with --env)."""
    protocol: Literal["standard", "metaworld", "released"] = "standard"
    """standard: every round (0..k adaptations) samples the run's episodes per task. metaworld:
    Meta-World's evaluation protocol: adaptation rounds as standard, the final round (after k
    adaptations) is --eval-episodes episodes per task that end at their first success. released:
    the paper's released meta-test scripts: every round also runs as many mean-action episodes,
    and the output adds their return and the per-task maximum of the two (the stochastic return
    is the standard protocol's, unchanged)."""
    eval_episodes: int = 3
    """Episodes per task of the final round with --protocol metaworld (Meta-World's default: 3)."""
    task_grid: bool = False
    """Test on the family's fixed grid instead of --tasks drawn tasks (locomotion: the paper's
    released meta-test scripts' tasks, velocities 0.1 ... 1.9 or 2.9 by 0.1, directions ±1)."""
    checkpoint: Literal["latest", "best"] = "latest"
    """Which policy to test: the newest good checkpoint (latest), or the model-selection checkpoint
    DIR/best.bomrl of a run trained with --select-tasks (best)."""
    plugins: tuple[str, ...] = ()
    """Modules to import first (they register task families, distances or algorithms), as
    `bomrl train --plugins` (the run's own plugins are imported anyway)."""
