"""The training path of every algorithm as `bomrl train` runs it (in a subprocess: conftest's x64
is not inherited), and a behaviour lock that holds on every CPU: two meta-iterations per algorithm on
a tiny halfcheetah-vel budget.

- float64 (`--precision float64`): every metric must equal tests/data/train_float64.json to
  relative 1e-5. XLA's CPU code differs with the instruction set (SSE4.2, AVX2, AVX-512, AMX), and
  these tiny ill-conditioned runs amplify last-digit differences by ~1e6-1e7 in two iterations
  (float32: up to 50 % in CG residuals and line-search counts between AVX2 and AVX-512 code); in
  float64 the same amplification leaves them at most 6.5e-8 (SSE4.2, AVX2 and native AMX code on
  one Intel Xeon; docs/WORKFLOW.md, "Precision"). A change of any number of any algorithm fails here.
- float32 (the default, what users train with): the same metric names, every value finite, the
  counts (iterations, environment steps, episodes) exact, and the returns within relative 2e-2 of
  tests/data/train_float32.json (measured across instruction sets and CPU vendors: ≤ 3.5e-3);
  the ill-conditioned diagnostics are not compared in float32.

Regenerate (`python tests/test_train_float32.py --write [NAME ...]`) only for an intended change of
the numbers, and say why in the commit.
"""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA32 = Path(__file__).parent / "data" / "train_float32.json"
DATA64 = Path(__file__).parent / "data" / "train_float64.json"
RTOL64 = 1e-5          # float64: every metric (measured across instruction sets: ≤ 6.5e-8)
RTOL32_RETURNS = 2e-2  # float32: returns only
COUNTS = ("iteration", "env_steps", "charts/env_steps", "charts/episodes", "charts/episode_length")


TINY = ["--env", "halfcheetah-vel", "--tasks", "2", "--episodes", "2", "--horizon", "10", "--workers", "1",
        "--iterations", "2", "--seed", "5", "--no-progress", "--no-tensorboard"]
RUNS = {
    "bomrl-d1": ["--algo", "bomrl", "--distance", "kl"],
    "bomrl-d2": ["--algo", "bomrl", "--distance", "rkl"],
    "bomrl-d3": ["--algo", "bomrl", "--distance", "euclid", "--lam", "5"],
    "bomrl-paper": ["--algo", "bomrl", "--preset", "paper"],
    "maml-trpo": ["--algo", "maml-trpo"],
    "promp": ["--algo", "promp"],
    "emaml": ["--algo", "emaml"],
    "rl2": ["--algo", "rl2"],
    "maesn": ["--algo", "maesn"],
    "mgrl": ["--algo", "mgrl", "--set", "num_envs=2", "rollout_len=5", "updates_per_iteration=4"],
}


def _metrics(path: Path) -> list[dict]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [{k: float(v) for k, v in r.items() if v != "" and k != "wall_s" and not k.startswith("time/")}
            for r in rows]


def run_all(out: Path, names=None, x64: bool = False, max_isa: str | None = None) -> dict:
    """Train the entries of RUNS (all, or `names`) in ONE subprocess (float32, or float64 with `x64`;
    XLA's CPU code limited to `max_isa`, e.g. "AVX2", if given); {name: metrics rows}."""
    names = list(RUNS) if names is None else names
    script = ("import sys, json\nfrom bomrl.cli import main\n"
              "runs = json.loads(sys.argv[1])\n"
              "for name, argv in runs.items():\n"
              "    rc = main(argv)\n"
              "    assert rc in (0, None), (name, rc)\n"
              "import jax.numpy as jnp\nassert jnp.zeros(()).dtype == sys.argv[2]\n")
    precision = ["--precision", "float64"] if x64 else []
    argvs = {name: ["train", *TINY, *RUNS[name], *precision, "--out", str(out / name)] for name in names}
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("JAX_ENABLE_X64", None)
    if max_isa:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_cpu_max_isa={max_isa}").strip()
    dtype = "float64" if x64 else "float32"
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(argvs), dtype], cwd=out, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: _metrics(out / name / "metrics.csv") for name in names}


@pytest.fixture(scope="module")
def measured64(tmp_path_factory):
    return run_all(tmp_path_factory.mktemp("f64"), x64=True)


@pytest.fixture(scope="module")
def measured32(tmp_path_factory):
    return run_all(tmp_path_factory.mktemp("f32"))


def _check_shape(rows, recorded, name):
    assert len(rows) == 2, name
    for row in rows:
        assert all(math.isfinite(v) for v in row.values()), (name, row)
    assert [sorted(r) for r in rows] == [sorted(r) for r in recorded], f"{name}: metric names changed"


@pytest.mark.parametrize("name", list(RUNS))
def test_float64_training_matches_recorded_metrics(measured64, name):
    rows, recorded = measured64[name], json.loads(DATA64.read_text())[name]
    _check_shape(rows, recorded, name)
    for got, want in zip(rows, recorded):
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=RTOL64, abs=1e-9), (name, key)


def is_return(key: str) -> bool:
    return key in ("pre_return", "post_return") or key.startswith("charts/return")


@pytest.mark.parametrize("name", list(RUNS))
def test_float32_training_is_finite_and_returns_match(measured32, name):
    rows, recorded = measured32[name], json.loads(DATA32.read_text())[name]
    _check_shape(rows, recorded, name)
    for got, want in zip(rows, recorded):
        for key, value in want.items():
            if key in COUNTS:
                assert got[key] == value, (name, key)
            elif is_return(key):
                assert got[key] == pytest.approx(value, rel=RTOL32_RETURNS), (name, key)


if __name__ == "__main__" and sys.argv[1:2] == ["--write"]:
    # --write: record every entry in both precisions; --write NAME ...: record (or add) only those
    import tempfile

    names = sys.argv[2:] or None
    for path, x64 in ((DATA64, True), (DATA32, False)):
        recorded = json.loads(path.read_text()) if names and path.exists() else {}
        with tempfile.TemporaryDirectory() as tmp:
            recorded.update(run_all(Path(tmp), names, x64=x64))
        path.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
