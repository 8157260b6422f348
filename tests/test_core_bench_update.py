"""`bomrl bench update`: input errors are one line; a tiny synthetic run produces a complete record."""

import pytest

from bomrl.bench_update import BenchUpdateConfig, run
from bomrl.errors import ConfigError


def test_bad_sizes_are_one_line_errors():
    with pytest.raises(ConfigError, match="--samples=150 is invalid: must be a multiple of --horizon"):
        run(BenchUpdateConfig(samples=150, horizon=100, sample=False))
    with pytest.raises(ConfigError, match="--tasks=0"):
        run(BenchUpdateConfig(tasks=0, sample=False))


def test_tiny_synthetic_update(capsys):
    out = run(BenchUpdateConfig(tasks=2, samples=20, horizon=10, sample=False, inner_steps=3, cg_iters=2,
                                repeats=1))
    for key in ("inner_s", "hypergrad_s", "trpo_s", "update_s", "peak_rss_mib"):
        assert out[key] > 0
    assert out["sampling_s"].startswith("not measured")
    assert out["trpo_kl"] <= 1e-3 and out["trpo_skipped_code"] in (0, 4)
    assert capsys.readouterr().out.count("\n") == 1  # exactly one JSON line
