"""Configurations of the `bomrl check ...` commands (import-light: the command line imports this
module to build its parser; the checks themselves, e.g. bomrl.checks.hypergradient, load after)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class CheckHypergradientConfig:
    """Check BO-MRL's hypergradient against finite differences and its adaptation on fresh data."""

    env: str = "halfcheetah-vel"
    """Task family (any registered one; ignored with --run, which uses the run's)."""
    run: Optional[Path] = None
    """Run directory of `bomrl train --algo bomrl`: its latest checkpoint and settings."""
    tasks: int = 4
    """Number of tasks K."""
    directions: int = 8
    """Random unit directions M."""
    episodes: int = 10
    """Episodes per task in each batch."""
    horizon: int = 100
    """Steps per episode (ignored with --run)."""
    seed: int = 0
    """Seed of the tasks, the episodes, the directions (and the initial policy without --run)."""
    eps: float = 1e-4
    """Finite-difference step (the second is eps/10)."""
    maml_lr: float = 0.1
    """Step size of the MAML step reported for scale."""
    distance: Optional[str] = None
    """Without --run: BO-MRL distance (kl, rkl, euclid)."""
    lam: Optional[float] = None
    """Without --run: λ."""
    action_scale: Optional[float] = None
    """Without --run: the policy's action scale (default the family's)."""
    preset: Optional[str] = None
    """A BO-MRL preset (`bomrl train --algo bomrl --preset`, e.g. paper, convex-d3); with --run its
    settings replace the run's at its checkpoint; --set entries apply after it."""
    set: tuple[str, ...] = ()
    """BO-MRL setting overrides NAME=VALUE (e.g. hypergradient=unrolled); with --run they replace the
    run's settings at its checkpoint (an A/B of settings at one meta-policy)."""
    plugins: tuple[str, ...] = ()
    """Python modules to import first (they may register task families and distances)."""
    out: Optional[Path] = None
    """Also write the JSON object to this file (atomically, replacing it)."""
