"""The tables of `bomrl check hypergradient` measurements quoted in docs/BASELINES.md and
docs/REPRODUCTION.md: each row is one check (its command below), stored as JSON next to its table.

    python scripts/hypergradient_checks.py              # the tables from the stored JSON files
    python scripts/hypergradient_checks.py --measure    # first run every check whose JSON is missing
    python scripts/hypergradient_checks.py --check      # exit 1 if a stored table differs

The checks run in float64 and take 1-5 minutes each on 2 cores; the numbers do not depend on the
machine's load (its 1-minute load average is recorded in each JSON as `load_avg_1min`).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One table per entry: where it goes, the check's fixed arguments, its columns, its rows
# (label, JSON file name, extra arguments).
INITIAL = "results/checks/initial-policy-halfcheetah-vel"
SOLVER = "results/checks/armijo-vs-sgd-halfcheetah-vel"
OVERFIT = "results/checks/overfitting-halfcheetah-dir-d1"
TABLES = {
    INITIAL: dict(
        args=["--env", "halfcheetah-vel", "--tasks", "4", "--directions", "8"],
        columns="derivative",
        rows=[
            ("the defaults (10 armijo steps from 0.1, unrolled, λ 0.5)", "defaults", []),
            ("preset `paper` (50 Adam steps × 0.01, implicit eq. 8, λ 0.5)", "paper", ["--preset", "paper"]),
            ("`paper` with `hypergradient=unrolled`", "paper-unrolled",
             ["--preset", "paper", "--set", "hypergradient=unrolled"]),
            ("`paper` with `hypergradient=unrolled inner_steps=10`", "paper-unrolled-10",
             ["--preset", "paper", "--set", "hypergradient=unrolled", "inner_steps=10"]),
            ("`paper` with `hypergradient=unrolled inner_lr=0.001`", "paper-unrolled-lr0.001",
             ["--preset", "paper", "--set", "hypergradient=unrolled", "inner_lr=0.001"]),
            ("`paper` with `lam=5` (implicit)", "paper-lam5", ["--preset", "paper", "--set", "lam=5"]),
            ("preset `convex-d3` (d3, λ 5, 50 GD steps × 0.05, implicit)", "convex-d3", ["--preset", "convex-d3"]),
        ]),
    SOLVER: dict(
        args=["--tasks", "8", "--directions", "4"],
        columns="solver",
        rows=[
            (f"seed {s}, it. 100 | {solver}", f"s{s}-{solver}",
             ["--run", f"results/bomrl-sgd/halfcheetah-vel-bomrl-d1-s{s}", "--set", f"inner_solver={solver}"])
            for s in (1, 0) for solver in ("sgd", "armijo")]),
    OVERFIT: dict(
        args=["--run", "results/locomotion/halfcheetah-dir-bomrl-d1-s0", "--tasks", "8", "--directions", "4"],
        columns="generalisation",
        rows=[
            ("BO-MRL default (10 armijo steps, λ 0.5)", "defaults", []),
            ("1 armijo step (`--set inner_steps=1`)", "inner_steps1", ["--set", "inner_steps=1"]),
            ("3 armijo steps", "inner_steps3", ["--set", "inner_steps=3"]),
            ("40 armijo steps", "inner_steps40", ["--set", "inner_steps=40"]),
            ("λ = 0.1", "lam0.1", ["--set", "lam=0.1"]),
        ]),
}

HEADERS = {
    "derivative": ["settings", "cosine_min", "rel. error (median)", "inner grad ratio", "CG rel. residual",
                   "inner KL", "in-sample surrogate gain", "fresh surrogate gain ± s.e.",
                   "MAML step fresh gain ± s.e."],
    "solver": ["checkpoint", "solver", "cosine_min", "inner grad ratio", "inner KL", "mean step / inner_lr",
               "fresh surrogate gain", "fresh return gain"],
    "generalisation": ["adaptation at the checkpoint", "in-sample surrogate gain", "fresh-data surrogate gain",
                       "fresh-data return gain", "inner KL", "inner grad ratio"],
}


def _f(x: float, digits: int) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _err(x: float) -> str:
    return "< 1e-4" if x < 1e-4 else f"{x:.2f}" if x >= 0.01 else f"{x:.0e}"


def _pm(m: dict, key: str, digits: int, sign: bool = False) -> str:
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"{fmt.format(m[key])} ± {m[key + '_se']:.{digits}f}"


def row_cells(kind: str, label: str, m: dict) -> list[str]:
    if kind == "derivative":
        return [label, _f(m["cosine_min"], 2), _err(m["rel_error_median"]), _f(m["inner_grad_ratio"], 2),
                _f(m["hyper_rel_residual"], 2), _f(m["inner_kl"], 3), _f(m["insample_surrogate_gain"], 3),
                _pm(m, "fresh_surrogate_gain", 4), _pm(m, "maml_fresh_surrogate_gain", 4)]
    if kind == "solver":
        return [*label.split(" | "), _f(m["cosine_min"], 2), _f(m["inner_grad_ratio"], 2), _f(m["inner_kl"], 3),
                _f(m.get("inner_step_frac", 1.0), 2), _pm(m, "fresh_surrogate_gain", 4),
                _pm(m, "fresh_return_gain", 1, sign=True)]
    return [label, _pm(m, "insample_surrogate_gain", 3), _pm(m, "fresh_surrogate_gain", 3),
            _pm(m, "fresh_return_gain", 0, sign=True), _f(m["inner_kl"], 3), _f(m["inner_grad_ratio"], 2)]


def table(root: str) -> str:
    """The markdown table of `root` from its stored JSON files (a missing one: FileNotFoundError)."""
    spec = TABLES[root]
    kind = spec["columns"]
    lines = ["| " + " | ".join(HEADERS[kind]) + " |", "|" + "---|" * len(HEADERS[kind])]
    first = None
    for label, name, _ in spec["rows"]:
        m = json.loads((ROOT / root / f"{name}.json").read_text())
        first = first or m
        lines.append("| " + " | ".join(row_cells(kind, label, m)) + " |")
    if kind == "generalisation":   # MAML's step from the same checkpoint, on the same batches
        lines.append("| " + " | ".join([
            "MAML's step (α = 0.1), same checkpoint", _pm(first, "maml_insample_surrogate_gain", 3),
            _pm(first, "maml_fresh_surrogate_gain", 3), _pm(first, "maml_fresh_return_gain", 0, sign=True),
            "–", "–"]) + " |")
    return "\n".join(lines) + "\n"


def measure_missing(python: str) -> None:
    for root, spec in TABLES.items():
        (ROOT / root).mkdir(parents=True, exist_ok=True)
        for _label, name, extra in spec["rows"]:
            out = ROOT / root / f"{name}.json"
            if out.exists():
                continue
            cmd = [python, "-m", "bomrl.cli", "check", "hypergradient", *spec["args"], *extra, "--out", str(out)]
            print("+", " ".join(cmd[2:]), file=sys.stderr, flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", action="store_true", help="run the checks whose JSON file is missing first")
    ap.add_argument("--check", action="store_true", help="exit 1 if a stored table differs from its JSON files")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs `bomrl` (with --measure)")
    args = ap.parse_args(argv)
    if args.measure:
        measure_missing(args.python)
    stale = []
    for root in TABLES:
        text, path = table(root), ROOT / root / "table.md"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
    if stale:
        print(f"out of date (run python scripts/hypergradient_checks.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
