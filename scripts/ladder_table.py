"""The table of scripts/ladder.sh: per rung, the meta-test returns after 0..k adaptations (mean
over (seed, test task) pairs), the paired difference against MAML-TRPO (R0) and against the rung
above after one adaptation (95 % t-intervals over the pooled pairs, bomrl.workflow.compare), and the
size of the adaptation (KL(π_φ ‖ π_θ') on the adapted-on states, at meta-test after the first
adaptation; and BO-MRL's in-training inner/kl over the last 10 iterations).

    python scripts/ladder_table.py results/ladder/halfcheetah-dir [--out FILE]
    python scripts/ladder_table.py results/best/halfcheetah-dir --r0 results/locomotion/halfcheetah-dir-maml-trpo-s0 \
        results/locomotion/halfcheetah-dir-maml-trpo-s1     # R0 from other run directories

Writes DIR/table.md (or --out) and prints it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from bomrl.workflow.compare import paired_difference, paired_returns
from bomrl.workflow.logging import read_metrics

RUNGS = {   # rung -> what it changes relative to the rung above (scripts/ladder.sh)
    "R0": "MAML-TRPO (log-likelihood inner objective)",
    "X1": "MAML-TRPO, likelihood-ratio inner objective",
    "R2": "BO-MRL reduced to MAML (d3, λ 5, linear, 1 sgd step), MAML's trust region",
    "R1": "BO-MRL reduced to MAML with BO-MRL's trust region (KL of π_φ on pre-update states)",
    "R3": "R1 with the h surrogate and 10 armijo steps",
    "R5": "BO-MRL defaults (d1, λ 0.5)",
}


def run_info(run: Path) -> dict:
    """A run directory as bomrl.workflow.compare expects it (seed from config.json)."""
    mt = run / "meta_test.json"
    meta = json.loads(mt.read_text()) if mt.exists() else None
    seed = json.loads((run / "config.json").read_text())["train"]["seed"]
    return {"seed": int(seed), "meta_test": meta, "rows": read_metrics(run / "metrics.csv")}


def load(root: Path, r0: list[Path] | None = None) -> dict:
    """{rung: [run info dicts]} of the runs under root (named RUNG-sSEED); with `r0`, rung R0 is
    those run directories instead."""
    out: dict = {}
    for run in sorted(root.glob("*-s*")):
        rung, _, seed = run.name.rpartition("-s")
        if rung not in RUNGS or not seed.isdigit() or (r0 and rung == "R0"):
            continue
        out.setdefault(rung, []).append(run_info(run))
    if r0:
        out["R0"] = [run_info(run) for run in r0]
    return out


def fmt_diff(d) -> str:
    if d is None or d["n"] == 0:
        return "–"
    ci = "" if math.isnan(d["lo"]) else f" [{d['lo']:+.1f}, {d['hi']:+.1f}]"
    return f"{d['mean']:+.1f}{ci}"


def diff(a, b, step: int):
    xa, xb, _ = paired_returns(a, b, step)
    return paired_difference(xa, xb) if len(xa) else None


def table(root: Path, r0: list[Path] | None = None) -> str:
    runs = load(root, r0)
    order = [r for r in RUNGS if r in runs]
    if not order:
        return f"no ladder runs under {root}\n"
    steps = max((len(i["meta_test"]["task_returns"]) for r in order for i in runs[r] if i["meta_test"]),
                default=1) - 1
    head = ["rung", "change", "seeds (iterations)", *[f"after {k}" for k in range(steps + 1)],
            "− R0 after 1", "− rung above after 1", "adaptation KL (test)", "inner/kl (train, last 10)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    prev = None
    for rung in order:
        infos = runs[rung]
        tested = [i for i in infos if i["meta_test"]]
        seeds = ", ".join(f"{i['seed']} ({i['meta_test']['iteration'] if i['meta_test'] else len(i['rows'])})"
                          for i in infos)
        means = []
        for k in range(steps + 1):
            vals = [np.asarray(i["meta_test"]["task_returns"][k]) for i in tested
                    if len(i["meta_test"]["task_returns"]) > k]
            means.append(f"{np.concatenate(vals).mean():.1f}" if vals else "–")
        kl = [i["meta_test"]["adapt_kl"][0] for i in tested if i["meta_test"].get("adapt_kl")]
        train_kl = [np.mean([r["inner/kl"] for r in i["rows"][-10:]]) for i in infos
                    if i["rows"] and "inner/kl" in i["rows"][-1]]
        vs_r0 = diff(tested, [i for i in runs.get("R0", []) if i["meta_test"]], 1) if rung != "R0" else None
        vs_prev = diff(tested, [i for i in runs[prev] if i["meta_test"]], 1) if prev else None
        lines.append("| " + " | ".join([
            rung, RUNGS[rung], seeds, *means, fmt_diff(vs_r0), fmt_diff(vs_prev),
            f"{np.mean(kl):.3g}" if kl else "–", f"{np.mean(train_kl):.3g}" if train_kl else "–"]) + " |")
        prev = rung
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--r0", type=Path, nargs="+", default=None,
                    help="run directories of rung R0 (MAML-TRPO) if not under root")
    args = ap.parse_args(argv)
    text = table(args.root, args.r0)
    out = args.out or args.root / "table.md"
    out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
