"""The run table of docs/BASELINES.md "100 iterations, two seeds, beside MAML-TRPO": per run, the
training batches' pre / post-adaptation return over iterations 1-5 and 96-100, and the meta-test
after 0..3 adaptations (40 tasks of seed 1000, mean ± s.e. over tasks) at iteration 100.

    python scripts/bomrl_sgd_table.py     # writes results/bomrl-sgd/runs.md and prints it

Inputs: results/bomrl-sgd/halfcheetah-vel-bomrl-d1-s{0,1}/ (metrics.csv, meta_test.json); the
MAML-TRPO runs' first 100 rows of results/locomotion/halfcheetah-vel-maml-trpo-s{0,1}/metrics.csv
(they continue to 300 iterations there) and their iteration-100 meta-tests
results/bomrl-sgd/maml-trpo-iteration100-s{0,1}/meta_test.json (as committed in 5bb7820).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = [(f"BO-MRL d1, seed {s}", ROOT / f"results/bomrl-sgd/halfcheetah-vel-bomrl-d1-s{s}",
         ROOT / f"results/bomrl-sgd/halfcheetah-vel-bomrl-d1-s{s}/meta_test.json") for s in (0, 1)] + \
       [(f"MAML-TRPO, seed {s}", ROOT / f"results/locomotion/halfcheetah-vel-maml-trpo-s{s}",
         ROOT / f"results/bomrl-sgd/maml-trpo-iteration100-s{s}/meta_test.json") for s in (0, 1)]


def table() -> str:
    from bomrl.workflow.logging import read_metrics

    lines = ["| run | pre / post return, its 1-5 | its 96-100 | meta-test after 0 / 1 / 2 / 3 adaptations "
             "(40 tasks, ± s.e.) |", "| --- | --- | --- | --- |"]
    for label, run, mt_path in RUNS:
        rows = {int(r["iteration"]): r for r in read_metrics(run / "metrics.csv")}

        def window(lo, hi, rows=rows):
            pre = np.mean([rows[i]["pre_return"] for i in range(lo, hi + 1)])
            post = np.mean([rows[i]["post_return"] for i in range(lo, hi + 1)])
            return f"{pre:.1f} / {post:.1f}"

        mt = json.loads(mt_path.read_text())
        assert mt["iteration"] == 100, (mt_path, mt["iteration"])
        test = " / ".join(f"{r:.1f} ± {s:.1f}" for r, s in zip(mt["returns"], mt["stderr"]))
        lines.append(f"| {label} | {window(1, 5)} | {window(96, 100)} | {test} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    text = table()
    (ROOT / "results/bomrl-sgd/runs.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
