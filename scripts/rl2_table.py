"""The tables of docs/REPRODUCTION.md "RL² on halfcheetah-vel": training-batch returns of the RL² run
beside the MAML-TRPO run at the same batch size, at the same env steps, and the meta-test of both at
16.0 M training steps on the same 40 test tasks.

    python scripts/rl2_table.py    # writes results/rl2/training.md and results/rl2/meta_test.md, prints them

Inputs: results/rl2/halfcheetah-vel-rl2-s0/{metrics.csv, meta_test.json};
results/locomotion/halfcheetah-vel-maml-trpo-s0/metrics.csv (the MAML-TRPO run, continued to 300
iterations there); results/bomrl-sgd/maml-trpo-iteration100-s0/meta_test.json (that run's
meta-test at iteration 100, `bomrl meta-test DIR --adapt-steps 3 --tasks 40 --seed 1000`, as
committed in 5bb7820 before the run continued).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RL2 = ROOT / "results/rl2/halfcheetah-vel-rl2-s0"
MAML = ROOT / "results/locomotion/halfcheetah-vel-maml-trpo-s0"
MAML_MT = ROOT / "results/bomrl-sgd/maml-trpo-iteration100-s0/meta_test.json"
ROWS = (("RL²", RL2, (1, 31, 61, 120, 160, 200)), ("MAML-TRPO", MAML, (31, 61, 100)))


def _rows(path: Path) -> dict:
    from bomrl.workflow.logging import read_metrics

    return {int(r["iteration"]): r for r in read_metrics(path / "metrics.csv")}


def _steps(n: float) -> str:
    return f"{n:,.0f}" if n < 1e6 else f"{n / 1e6:.2f} M"


def tables() -> dict[str, str]:
    """{file name: markdown table}: training.md (training-batch returns), meta_test.md."""
    lines = ["| run | iteration | env steps | pre | post |", "| --- | --- | --- | --- | --- |"]
    for label, run, its in ROWS:
        rows = _rows(run)
        for it in its:
            r = rows[it]
            lines.append(f"| {label} | {it} | {_steps(r['env_steps'])} | {r['pre_return']:.1f} | {r['post_return']:.1f} |")
    test = ["| method | 0 | 1 | 2 | 3 |", "| --- | --- | --- | --- | --- |"]
    for label, path in (("RL²", RL2 / "meta_test.json"), ("MAML-TRPO", MAML_MT)):
        m = json.loads(path.read_text())
        cells = " | ".join(f"{r:.1f} ± {s:.1f}" for r, s in zip(m["returns"], m["stderr"]))
        test.append(f"| {label} (iteration {m['iteration']}) | {cells} |")
    return {"training.md": "\n".join(lines) + "\n", "meta_test.md": "\n".join(test) + "\n"}


def main() -> int:
    for name, text in tables().items():
        (ROOT / "results/rl2" / name).write_text(text)
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
