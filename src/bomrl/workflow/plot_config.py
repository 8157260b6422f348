"""`bomrl plot` configuration (import-light: the CLI builds its parser from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import tyro


@dataclass(frozen=True)
class PlotConfig:
    """Plot meta-test (Fig. 2 style) and meta-training curves (Fig. 5 style) of runs as PNG."""

    runs: tyro.conf.Positional[Annotated[tuple[Path, ...], tyro.conf.arg(metavar="RUN")]]
    """Run directories, or directories containing run directories."""
    out: Optional[Path] = None
    """Output directory (default: PARENT/plots next to the first run)."""
    smooth: int = 1
    """Moving-average window (iterations) for the training curves."""
    reference: Optional[str] = None
    """Label of the method every other one is compared with, paired by test task (summary.md);
    default: the BO-MRL variant with the highest mean return after one adaptation."""
