"""The code base passes `ruff check` with the project's rule set (pyproject.toml [tool.ruff.lint]):
an unused import, an undefined name or an unused loop variable fails the suite."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "src", "scripts", "tests"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
