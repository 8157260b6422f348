"""The table of scripts/released_protocol.sh: per step of the decomposition (P0 = the paper's released
scripts' protocol, then groups of its elements switched back toward the standard protocol), BO-MRL's
and MAML-TRPO's meta-test return after one adaptation (mean over (seed, test task) pairs, stochastic
episodes; and the mean-action episodes of the released meta-test) and BO-MRL − MAML-TRPO with its
paired 95 % t-interval (bomrl.workflow.compare), plus the same on the scripts' task grid where it
was tested. A second table: what the second adaptation adds for each method (the paper's third
claim) and BO-MRL − MAML-TRPO after three adaptations. A third: every meta-tested run's returns
after 0..3 adaptations and its adaptations' KL.

    python scripts/released_table.py results/released/halfcheetah-dir [--out FILE]

Writes DIR/table.md (or --out) and prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bomrl.workflow.compare import paired_difference, paired_returns, step_gain

STEPS = {   # step -> (its run directories' step, or one per method; meta-test file; what it changes)
    "P0": ("P0", "meta_test-best.json", "the released scripts' protocol (model-selected policy)"),
    "P1": ("P0", "meta_test.json", "no model selection (the last iteration's policy)"),
    "P2": ("P2", "meta_test.json", "no run mechanics (action scale 10, sampled tasks, same post-update batch, "
                                   "learned std, 64-64, no observation filter)"),
    "P3": ("P3", "meta_test.json", "the standard Q (GAE(1) − linear baseline, standardised, γ 0.99, "
                                   "no continuation)"),
    "P3r": ({"bomrl": "P3r", "maml-trpo": "P3"}, "meta_test.json",
            "P3 with BO-MRL's inner Q at its raw scale (`inner_q=centred`; MAML-TRPO: P3's runs)"),
    "P4": ("P4", "meta_test.json", "the standard algorithm settings (BO-MRL's and MAML-TRPO's defaults)"),
    "S": ("S", "meta_test.json", "the standard protocol (results/locomotion: 40 sampled tasks, horizon 100, "
                                 "300 iterations; section 1)"),
}
STANDARD_VARIANT = {"bomrl": "bomrl-d1", "maml-trpo": "maml-trpo"}   # the run names of section 1
METHODS = ("bomrl", "maml-trpo")


def infos(root: Path, run_step: str, method: str, name: str, mean_action: bool = False) -> list[dict]:
    """[{"seed", "meta_test"}] of the runs RUNSTEP-METHOD-sSEED under root with meta-test file `name`
    (step "S": the standard protocol's runs ENV-METHOD[-d1]-sSEED in root/../../locomotion, ENV =
    root's name); with mean_action, the mean-action returns stand in for the stochastic ones."""
    out = []
    run_step = run_step[method] if isinstance(run_step, dict) else run_step
    runs = (root.parents[1] / "locomotion").glob(f"{root.name}-{STANDARD_VARIANT[method]}-s*") if run_step == "S" \
        else root.glob(f"{run_step}-{method}-s*")
    for run in sorted(runs):
        path = run / name
        if not path.exists():
            continue
        meta = json.loads(path.read_text())
        if mean_action:
            if "task_returns_mean_action" not in meta:
                continue
            meta = {**meta, "task_returns": meta["task_returns_mean_action"]}
        seed = json.loads((run / "config.json").read_text())["train"]["seed"]
        out.append({"seed": int(seed), "meta_test": {**meta, "run_dir": str(run)}})
    return out


def _cell(a, b) -> tuple[str, str, str, int]:
    """(mean a, mean b, a − b [lo, hi], pairs) over paired returns."""
    if len(a) == 0:
        return "–", "–", "–", 0
    d = paired_difference(a, b)
    interval = f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]" if np.isfinite(d["lo"]) else f"{d['mean']:+.1f}"
    return f"{np.mean(a):.1f}", f"{np.mean(b):.1f}", interval, len(a)


def table(root: Path) -> str:
    lines = ["| step | change from the step above | seeds | BO-MRL after 1 | MAML-TRPO after 1 | BO-MRL − MAML-TRPO "
             "after 1 [95 %] | mean-action: BO-MRL − MAML-TRPO | task grid: BO-MRL − MAML-TRPO |",
             "|---|---|---|---|---|---|---|---|"]
    for step, (run_step, name, change) in STEPS.items():
        cols = []
        for mean_action, file in ((False, name), (True, name), (False, "meta_test-grid.json" if step == "P0" else None)):
            if file is None:
                cols.append(("–", "–", "–", 0, []))
                continue
            a_info = infos(root, run_step, "bomrl", file, mean_action)
            b_info = infos(root, run_step, "maml-trpo", file, mean_action)
            a, b, seeds = paired_returns(a_info, b_info, 1) if a_info and b_info else (np.zeros(0), np.zeros(0), [])
            cols.append((*_cell(a, b), seeds))
        (ma, mb, diff, _, seeds), mode, grid = cols
        if not seeds:
            continue
        lines.append(f"| {step} | {change} | {', '.join(map(str, seeds))} | {ma} | {mb} | {diff} | {mode[2]} | {grid[2]} |")
    return "\n".join(lines + [""] + later_steps(root) + [""] + runs_table(root)) + "\n"


def _fmt(d) -> str:
    if d is None:
        return "–"
    return f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]" if np.isfinite(d["lo"]) else f"{d['mean']:+.1f}"


def later_steps(root: Path) -> list[str]:
    """The paper's third claim per step: what the second adaptation adds for each method (after 2 −
    after 1 over its (seed, task) pairs), and BO-MRL − MAML-TRPO after 3 adaptations (stochastic and
    mean-action); 95 % t-intervals; over the seeds both methods have."""
    lines = ["| step | BO-MRL: after 2 − after 1 | MAML-TRPO: after 2 − after 1 | BO-MRL − MAML-TRPO after 3 | "
             "mean-action: BO-MRL − MAML-TRPO after 3 |", "|---|---|---|---|---|"]
    for step, (run_step, name, _) in STEPS.items():
        a, b = infos(root, run_step, "bomrl", name), infos(root, run_step, "maml-trpo", name)
        common = {i["seed"] for i in a} & {i["seed"] for i in b}   # the seeds both methods have, as above
        a, b = [i for i in a if i["seed"] in common], [i for i in b if i["seed"] in common]
        if not a or not b:
            continue
        cells = [_fmt(step_gain(a, 2)), _fmt(step_gain(b, 2))]
        for mean_action in (False, True):
            xa, xb, _ = paired_returns(infos(root, run_step, "bomrl", name, mean_action),
                                       infos(root, run_step, "maml-trpo", name, mean_action), 3)
            cells.append(_fmt(paired_difference(xa, xb)) if len(xa) else "–")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def runs_table(root: Path) -> list[str]:
    """Every meta-tested run under root: returns after 0..k adaptations on the test tasks
    (stochastic, mean-action) and each adaptation's KL, for the selected and the last policy."""
    lines = ["| run | policy (iteration) | stochastic, after 0, 1, ... | mean action | adaptation KL |",
             "|---|---|---|---|---|"]
    for run in sorted(p for p in root.iterdir() if (p / "config.json").is_file()):
        for name, policy in (("meta_test-best.json", "selected"), ("meta_test.json", "last")):
            if not (run / name).is_file():
                continue
            m = json.loads((run / name).read_text())
            mode = np.mean(m["task_returns_mean_action"], axis=1) if "task_returns_mean_action" in m else []
            cells = [", ".join(f"{x:.{d}f}" for x in xs) or "–"
                     for xs, d in ((m["returns"], 1), (mode, 1), (m.get("adapt_kl", []), 2))]
            lines.append(f"| {run.name} | {policy} ({m['iteration']}) | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    text = table(args.root)
    out = args.out or args.root / "table.md"
    out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
