"""The float32 training path of every algorithm (the path `bomrl train` runs; conftest's x64 is
off in the subprocess) and a behaviour lock: two meta-iterations per algorithm on a tiny
halfcheetah-vel budget must reproduce the metrics recorded in tests/data/train_float32.json.

The recorded metrics were produced by this file's writer (`python tests/test_train_float32.py
--write`) before the configuration refactor of issue 14; a refactor that changes any number of any
algorithm fails here. Regenerate only for an intended change of the numbers, and say why in the
commit. Tolerance: relative 1e-4.

float32 results depend on the CPU: XLA's CPU code differs with the instruction set (AVX-512 or not,
FMA, ...), and on these tiny batches two iterations amplify last-digit differences to ~1-40 % in
ill-conditioned diagnostics (CG residuals, inner gradient ratios; measured 2026-12-02 between the
machine of the recording and an AMD EPYC with AVX-512; on 2026-12-03 an Intel Xeon with the same
AVX-512 flags gave the AMD recording's numbers except BO-MRL d3's, within 3 %). So a CPU kind may
have its own recording in tests/data/train_float32_by_cpu.json, keyed by `cpu_signature()`,
written on such a machine with `--write-cpu` from the SAME code as the default recording; a CPU
without one is held to the default recording (tests/data/train_float32.json).
"""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "train_float32.json"
DATA_BY_CPU = Path(__file__).parent / "data" / "train_float32_by_cpu.json"
ISA_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile")


def cpu_signature() -> str:
    """Vendor and the instruction-set flags that change XLA's CPU code, e.g.
    'AuthenticAMD:avx,avx2,avx512bw,...' (from /proc/cpuinfo; 'unknown' elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    fields = {}
    for ln in info.splitlines():            # the first processor's fields
        key, _, value = ln.partition(":")
        fields.setdefault(key.strip(), value.strip())
    vendor, flags = fields.get("vendor_id", "?"), fields.get("flags", "").split()
    return vendor + ":" + ",".join(sorted(f for f in ISA_FLAGS if f in flags))


def recording() -> dict:
    """This CPU kind's recording if there is one, else the default recording."""
    if DATA_BY_CPU.exists():
        by_cpu, signature = json.loads(DATA_BY_CPU.read_text()), cpu_signature()
        if signature in by_cpu:
            return by_cpu[signature]
    return json.loads(DATA.read_text())
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


def run_all(out: Path, names=None) -> dict:
    """Train the entries of RUNS (all, or `names`) in ONE float32 subprocess; {name: metrics rows}."""
    names = list(RUNS) if names is None else names
    script = ("import sys, json\nfrom bomrl.cli import main\n"
              "runs = json.loads(sys.argv[1])\n"
              "for name, argv in runs.items():\n"
              "    rc = main(argv)\n"
              "    assert rc in (0, None), (name, rc)\n"
              "import jax.numpy as jnp\nassert jnp.zeros(()).dtype == jnp.float32\n")
    argvs = {name: ["train", *TINY, *RUNS[name], "--out", str(out / name)] for name in names}
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("JAX_ENABLE_X64", None)
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(argvs)], cwd=out, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: _metrics(out / name / "metrics.csv") for name in names}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return run_all(tmp_path_factory.mktemp("f32"))


@pytest.mark.parametrize("name", list(RUNS))
def test_float32_training_matches_recorded_metrics(measured, name):
    rows = measured[name]
    assert len(rows) == 2
    for row in rows:
        assert all(math.isfinite(v) for v in row.values()), row
    recorded = recording()[name]
    assert [sorted(r) for r in rows] == [sorted(r) for r in recorded], "metric names changed"
    for got, want in zip(rows, recorded):
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (name, key)


if __name__ == "__main__" and sys.argv[1:2] == ["--write-cpu"]:
    # --write-cpu: record every entry for THIS CPU kind (only from code whose default recording holds
    # on the recording's machine: the numbers must come from the same code)
    import tempfile

    by_cpu = json.loads(DATA_BY_CPU.read_text()) if DATA_BY_CPU.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        by_cpu[cpu_signature()] = run_all(Path(tmp))
    DATA_BY_CPU.write_text(json.dumps(by_cpu, indent=1, sort_keys=True) + "\n")
    print(f"wrote {DATA_BY_CPU} [{cpu_signature()}]")

if __name__ == "__main__" and sys.argv[1:2] == ["--write"]:
    # --write: record every entry; --write NAME ...: record (or add) only those, keep the others
    import tempfile

    names = sys.argv[2:] or None
    recorded = json.loads(DATA.read_text()) if names and DATA.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        recorded.update(run_all(Path(tmp), names))
    DATA.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    print(f"wrote {DATA}")
