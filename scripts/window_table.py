"""Training metrics of runs averaged over windows of iterations (each run's metrics.csv): the
adaptation gain post − pre, the post-adaptation return, BO-MRL's inner grad ratio and inner KL, and
the TRPO meta-step's rejected line-search steps per iteration ("–" where a run does not log one).

    python scripts/window_table.py --run sgd=results/bomrl-sgd/halfcheetah-vel-bomrl-d1-s1 \\
        --run armijo=results/locomotion/halfcheetah-vel-bomrl-d1-s1 --windows 11-20 31-40 \\
        --out results/bomrl-sgd/armijo-vs-sgd-s1.md

Writes --out and prints it.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np

# (header, metrics.csv column or "gain" for post − pre, format)
COLUMNS = (("post − pre (mean)", "gain", "{:+.1f}"), ("post-adaptation return (mean)", "post_return", "{:.1f}"),
           ("inner grad ratio", "inner/grad_ratio", "{:.2f}"), ("inner KL", "inner/kl", "{:.3f}"),
           ("TRPO rejections / it.", "trpo/rejected", "{:.1f}"))


def _value(row: dict, key: str) -> float:
    if key == "gain":
        return float(row["post_return"]) - float(row["pre_return"])
    value = row.get(key, "")
    return float(value) if value not in ("", None) else math.nan


def table(runs: list[tuple[str, Path]], windows: list[tuple[int, int]]) -> str:
    lines = ["| iterations | run | " + " | ".join(h for h, _, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    rows = {label: list(csv.DictReader(open(Path(run) / "metrics.csv"))) for label, run in runs}
    for lo, hi in windows:
        for label, _ in runs:
            window = [r for r in rows[label] if lo <= int(r["iteration"]) <= hi]
            if len(window) != hi - lo + 1:
                raise SystemExit(f"window_table: {label} has {len(window)} rows in iterations {lo}-{hi}")
            cells = []
            for _, key, fmt in COLUMNS:
                mean = float(np.mean([_value(r, key) for r in window]))
                cells.append("–" if math.isnan(mean) else fmt.format(mean))
            lines.append(f"| {lo}-{hi} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="LABEL=RUN_DIR (repeat)")
    ap.add_argument("--windows", nargs="+", required=True, help="FIRST-LAST iteration windows")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    runs = [(r.partition("=")[0], Path(r.partition("=")[2])) for r in args.run]
    windows = [tuple(int(x) for x in w.split("-")) for w in args.windows]
    text = table(runs, windows)
    args.out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
