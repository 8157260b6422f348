"""scripts/reproduce_locomotion.sh end to end at tiny scale (nav2d): trains, meta-tests, writes the
tables; resumes an unfinished run to a larger N; skips a finished run even without its checkpoint."""

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_locomotion.sh"


def _script(out: Path, n: int):
    env = dict(os.environ, JAX_PLATFORMS="cpu", N=str(n), TASKS="2", EPISODES="2", HORIZON="5",
               SEEDS="0", ENVS="nav2d", METHODS="maml-trpo", TEST_TASKS="2", ADAPT_STEPS="1",
               SAMPLER="vector", OUT=str(out), BOMRL=f"{sys.executable} -m bomrl.cli", PY=sys.executable)
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600)


def _iterations(run: Path):
    with open(run / "metrics.csv") as f:
        return [int(r["iteration"]) for r in csv.DictReader(f)]


def test_runs_resumes_and_skips_finished(tmp_path):
    out = tmp_path / "loc"
    run = out / "nav2d-maml-trpo-s0"
    first = _script(out, 2)
    assert first.returncode == 0, first.stderr[-2000:]
    assert _iterations(run) == [1, 2] and (run / "meta_test.json").exists()
    assert (out / "plots" / "summary.md").exists() and (out / "plots" / "claims.md").exists()

    second = _script(out, 3)  # raised N: resumed from the iteration-2 checkpoint, not restarted
    assert second.returncode == 0, second.stderr[-2000:]
    assert _iterations(run) == [1, 2, 3]

    for ckpt in run.glob("ckpt-*.bomrl"):  # a finished run whose final checkpoint was not kept
        ckpt.unlink()
    metrics = (run / "metrics.csv").read_bytes()
    third = _script(out, 3)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "nav2d-maml-trpo-s0: trained to 3 iterations and meta-tested; skipped" in third.stdout
    assert (run / "metrics.csv").read_bytes() == metrics
