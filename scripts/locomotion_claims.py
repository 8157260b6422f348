"""The verdict on the paper's three locomotion claims from the committed meta-test results.

    python scripts/locomotion_claims.py results/locomotion [--out results/locomotion/plots/claims.md]

Reads every run under the directory (config.json + meta_test.json), applies the rules of
`bomrl.workflow.compare.locomotion_claims` (fixed before any result; docs/REPRODUCTION.md) and
writes the verdicts with their numbers as markdown (stdout and --out) and JSON (next to it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bomrl.workflow.compare import CLAIMED_GAIN, CLAIMED_SECOND, LEVEL, NEGLIGIBLE, locomotion_claims
from bomrl.workflow.plot import collect, find_runs


def _ci(d) -> str:
    return f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}] ({d['n']} pairs, {100 * d['relative']:+.0f} %)"


def _missing(e) -> str:
    """' (E-MAML not measured here)' when an env lacks some baselines, else ''."""
    return f" ({', '.join(e['missing'])} not measured here)" if e["missing"] else ""


def report(verdicts: dict) -> str:
    pct = int(100 * LEVEL)
    lines = [f"Paired differences on the same test tasks: mean [{pct} % t-interval over (seed, task) pairs].", ""]
    v = verdicts["beats"]
    lines.append(f"1. **BO-MRL beats every baseline** — {v['verdict']}.")
    for e in v["envs"]:
        diffs = "; ".join(f"− {b}: {_ci(d)}" for b, d in e["diffs"].items())
        lines.append(f"   - {e['env']}: {e['best']} after one adaptation {diffs} → {'holds' if e['holds'] else 'fails'}")
    for e in v["excluded"]:
        lines.append(f"   - {e['env']}: not in this claim, which needs all three baselines{_missing(e)}")
    v = verdicts["direction_gain"]
    lines.append(f"2. **≈ +25 % on the direction tasks** — {v['verdict']}.")
    for e in v["envs"]:
        lines.append(f"   - {e['env']}: {e['best']} − {e['baseline']} (the best baseline) after one adaptation "
                     f"{_ci(e)} → {'holds' if e['holds'] else 'fails'} (rule: interval above 0 and "
                     f"+{50 * CLAIMED_GAIN:g} % to +{200 * CLAIMED_GAIN:g} %){_missing(e)}")
    v = verdicts["second_step"]
    lines.append(f"3. **The second adaptation adds ≈ 10 % for BO-MRL, ≈ 0 % for the baselines** — {v['verdict']}.")
    for e in v["envs"]:
        bases = "; ".join(f"{b} {_ci(g)}" for b, g in e["baselines"].items())
        lines.append(f"   - {e['env']}: {e['best']} {_ci(e['bomrl'])}; {bases} → {'holds' if e['holds'] else 'fails'} "
                     f"(rule: BO-MRL's interval above 0 and ≥ +{50 * CLAIMED_SECOND:g} %, every baseline "
                     f"< +{100 * NEGLIGIBLE:g} %){_missing(e)}")
    for e in verdicts["in_progress"]:
        lines.append(f"\nNot yet in any claim, {e['env']} (in progress): " + "; ".join(e["why"]) + ".")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    verdicts = locomotion_claims(collect(find_runs([a.root])))
    text = report(verdicts)
    print(text, end="")
    out = a.out or a.root / "plots" / "claims.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(verdicts, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
