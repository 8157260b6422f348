"""`bomrl frozenlake` end to end at tiny scale, determinism, and one-line errors on bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bomrl.cli import main

TINY = ["frozenlake", "--variance", "high", "--size", "3", "--tasks", "3", "--iterations", "3",
        "--rollouts-per-pair", "2", "--adapt-steps", "2"]


def _run(tmp_path, name, extra=()):
    out = tmp_path / name
    assert main([*TINY, *extra, "--out", str(out)]) == 0
    return out


def test_tiny_run_writes_summary_and_figures(tmp_path):
    out = _run(tmp_path, "a", ["--distance", "rkl"])
    case = out / "high-rkl"
    s = json.loads((case / "summary.json").read_text())
    for key in ("no_adaptation", "one_time_alg", "one_pg_step"):
        assert isinstance(s["teog"][key], float)
    for key in ("bound", "task_variance", "epsilon", "a_max", "lambda", "gamma"):
        assert isinstance(s[key], float)
    rv = s["returns_vs_steps"]
    assert len(rv["bomrl"]) == len(rv["maml"]) == len(rv["random_init"]) == 3
    assert isinstance(rv["optimal"], float) and s["lambda"] == 0.5
    assert (case / "returns.png").stat().st_size > 1000 and (case / "gap.png").stat().st_size > 1000
    assert (out / "table.md").exists()


def test_same_seed_identical_summary(tmp_path):
    a = _run(tmp_path, "a", ["--distance", "euclid", "--hole-prob", "0.2"])
    b = _run(tmp_path, "b", ["--distance", "euclid", "--hole-prob", "0.2"])
    fa, fb = a / "p0.2-euclid" / "summary.json", b / "p0.2-euclid" / "summary.json"
    assert fa.read_bytes() == fb.read_bytes()


def _cli(*args, cwd=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "bomrl.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args,needle", [
    (["--lam", "-1"], "-1"),
    (["--hole-prob", "1.5"], "1.5"),
    (["--hole-prob", "-0.1"], "-0.1"),
    (["--size", "1"], "--size=1"),
    (["--distance", "manhattan"], "manhattan"),
    (["--variance", "medium"], "medium"),
    (["--seed", "-5"], "--seed=-5"),
])
def test_bad_input_one_line_error(args, needle):
    res = _cli("frozenlake", *args)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("bomrl: error:") and needle in lines[0]
    assert "Traceback" not in res.stderr


def test_unwritable_out_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = _cli("frozenlake", "--out", str(blocker / "sub"))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(blocker / "sub") in lines[0] and "Traceback" not in res.stderr


def test_no_stray_files_in_cwd(tmp_path):
    res = _cli("frozenlake", "--help", cwd=tmp_path)
    assert res.returncode == 0 and "--hole-prob" in res.stdout
    assert list(Path(tmp_path).iterdir()) == []
