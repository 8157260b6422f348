"""Adaptation gain (post − pre-adaptation return) per meta-iteration of several runs: a figure and a
Markdown table of window means (issue 12: does BO-MRL's gain grow in training, beside MAML-TRPO's?).

    python scripts/adaptation_gain.py results/locomotion/halfcheetah-vel-{bomrl-d1,maml-trpo}-s{0,1} \
        --out docs/img/adaptation-gain-hc-vel.png --windows 1-10 41-50 91-100 [--iterations N] [--table FILE]

Reads each run's metrics.csv (columns pre_return, post_return; its first --iterations rows if given);
the curve is a centred moving mean over --smooth iterations. Table (printed; also written to
--table): mean ± standard error of the per-iteration gain in each window.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path


def gains(run: Path) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(r["post_return"]) - float(r["pre_return"]) for r in csv.DictReader(f)]


def window_stats(xs: list[float], lo: int, hi: int) -> str:
    part = xs[lo - 1:hi]
    if len(part) < 2:
        return "–"
    m = sum(part) / len(part)
    se = math.sqrt(sum((x - m) ** 2 for x in part) / (len(part) - 1) / len(part))
    return f"{m:+.1f} ± {se:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--smooth", type=int, default=9)
    ap.add_argument("--windows", nargs="+", default=["1-10", "41-50", "91-100"])
    ap.add_argument("--iterations", type=int, default=None, help="use each run's first N iterations")
    ap.add_argument("--table", type=Path, default=None, help="also write the table to this file")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = [tuple(int(v) for v in w.split("-")) for w in args.windows]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    lines = ["| run | iterations | " + " | ".join(f"gain, its {a}-{b}" for a, b in windows) + " |",
             "| --- | --- | " + " | ".join("---" for _ in windows) + " |"]
    for run in args.runs:
        g = gains(run)[:args.iterations]
        k = args.smooth // 2
        smooth = [sum(g[max(0, i - k):i + k + 1]) / len(g[max(0, i - k):i + k + 1]) for i in range(len(g))]
        ax.plot(range(1, len(g) + 1), smooth, label=run.name, lw=1.4,
                ls="-" if "bomrl" in run.name else "--")
        lines.append(f"| {run.name} | {len(g)} | " + " | ".join(window_stats(g, a, b) for a, b in windows) + " |")
    print("\n".join(lines))
    if args.table is not None:
        args.table.write_text("\n".join(lines) + "\n")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(f"post − pre return (moving mean of {args.smooth})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)


if __name__ == "__main__":
    main()
