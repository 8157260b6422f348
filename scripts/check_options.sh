#!/usr/bin/env bash
# `bomrl check hypergradient` for BO-MRL's options of the ladder (docs/REPRODUCTION.md, "Where BO-MRL
# loses to MAML"): the meta-gradient against central finite differences of the adaptation (float64)
# for each Q scale of eq. (7), at trained checkpoints (where the code runs) — BO-MRL d1 defaults
# (halfcheetah-dir, 300 iterations) and the ladder's R3 (d3, h, 10 armijo steps) and R1 (reduced to
# MAML). trust_region changes only the meta-step, not the meta-gradient: one case shows it.
# One JSON line per case -> results/checks/options.jsonl (cosine_min must be >= 0.95).
set -euo pipefail
BOMRL=${BOMRL:-bomrl}
OUT=${OUT:-results/checks/options.jsonl}
RUNS=${RUNS:-"results/locomotion/halfcheetah-dir-bomrl-d1-s0 results/ladder/halfcheetah-dir/R3-s0 results/ladder/halfcheetah-dir/R1-s0"}
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
for run in $RUNS; do
  for q in standardised centred raw; do
    $BOMRL check hypergradient --run "$run" --set inner_q=$q --tasks 4 --directions 8 >> "$OUT"
  done
done
first=${RUNS%% *}
$BOMRL check hypergradient --run "$first" --set trust_region=post --tasks 4 --directions 8 >> "$OUT"
python - "$OUT" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for r in rows:
    print(f"{str(r['run']).split('/')[-1]:<28} {r['source'][-14:]:>14} {r['distance']:>3} {r['surrogate']:>6} inner_q={r['inner_q']:<12} "
          f"trust_region={r['trust_region']:<4} cosine_min={r['cosine_min']:.4f} inner_kl={r['inner_kl']:.3g}")
bad = [r for r in rows if r["cosine_min"] < 0.95]
print(f"{len(rows) - len(bad)} of {len(rows)} cases with cosine_min >= 0.95")
sys.exit(1 if bad else 0)
PY
