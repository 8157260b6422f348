"""`bomrl bench update`: input errors are one-line ConfigErrors raised before any JAX work (the
benchmark itself is run by hand and recorded in docs/BENCHMARKS.md, not timed in tests)."""

import pytest

from bomrl.bench_update import BenchUpdateConfig, run
from bomrl.errors import ConfigError


def test_bad_sizes_are_one_line_errors():
    with pytest.raises(ConfigError, match="--samples=150 is invalid: must be a multiple of --horizon"):
        run(BenchUpdateConfig(samples=150, horizon=100, sample=False))
    with pytest.raises(ConfigError, match="--tasks=0"):
        run(BenchUpdateConfig(tasks=0, sample=False))
