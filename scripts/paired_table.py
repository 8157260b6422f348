"""Method A − method B on the same test tasks, per training seed and over both, after k adaptations:
mean [95 % t-interval over the (test task) pairs of each seed, or the pooled (seed, task) pairs]
(bomrl.workflow.compare), from the runs' meta_test.json.

    python scripts/paired_table.py --a results/locomotion/halfcheetah-dir-bomrl-d3-s0 ...-s1 \\
        --b results/locomotion/halfcheetah-dir-maesn-s0 ...-s1 --steps 1 2 3 \\
        --out results/locomotion/tables/halfcheetah-dir-d3-minus-maesn.md

Each run's training seed comes from its config.json; runs of A and B pair by seed. Writes --out and
prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bomrl.workflow.compare import paired_difference, paired_returns


def infos(runs: list[Path]) -> list[dict]:
    """[{"seed", "meta_test"}] of run directories (their meta_test.json)."""
    out = []
    for run in runs:
        seed = json.loads((run / "config.json").read_text())["train"]["seed"]
        meta = json.loads((run / "meta_test.json").read_text())
        out.append({"seed": int(seed), "meta_test": {**meta, "run_dir": str(run)}})
    return out


def _fmt(a: np.ndarray, b: np.ndarray) -> str:
    d = paired_difference(a, b)
    return f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]"


def table(runs_a: list[Path], runs_b: list[Path], steps: list[int]) -> str:
    a, b = infos(runs_a), infos(runs_b)
    seeds = sorted({i["seed"] for i in a} & {i["seed"] for i in b})
    lines = ["| seed | " + " | ".join(f"after {k}" for k in steps) + " |", "|---" * (len(steps) + 1) + "|"]
    for s in seeds:
        cells = []
        for k in steps:
            x, y, _ = paired_returns([i for i in a if i["seed"] == s], [i for i in b if i["seed"] == s], k)
            cells.append(_fmt(x, y))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    if len(seeds) > 1:
        cells, n = [], 0
        for k in steps:
            x, y, _ = paired_returns(a, b, k)
            cells.append(_fmt(x, y))
            n = len(x)
        lines.append(f"| all ({n} pairs) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, nargs="+", required=True, help="run directories of method A")
    ap.add_argument("--b", type=Path, nargs="+", required=True, help="run directories of method B")
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    text = table(args.a, args.b, args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
