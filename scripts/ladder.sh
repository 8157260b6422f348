#!/usr/bin/env bash
# "Where BO-MRL loses to MAML, and why": a ladder of configurations from MAML-TRPO to BO-MRL's
# defaults, one element changed per rung, trained at the references' scale (40 tasks x 20 episodes x
# horizon 100), meta-tested on the same 40 test tasks (seed 1000) as results/locomotion, and compared
# in pairs with scripts/ladder_table.py. Restartable like scripts/reproduce_locomotion.sh: an
# existing run resumes up to N iterations, a finished one (meta-tested at N) is skipped.
#
#   scripts/ladder.sh                                   # every rung, seeds 0 and 1, halfcheetah-dir
#   RUNGS="R0 R1" SEEDS=0 scripts/ladder.sh             # some rungs
#   PLOT_ONLY=1 scripts/ladder.sh                       # the table from the committed files
#
# The rungs (each differs from the one above it by the element named; docs/REPRODUCTION.md):
#   R0  MAML-TRPO as in results/locomotion (log-likelihood inner objective)
#   X1  MAML-TRPO, likelihood-ratio inner objective (the meta-gradient estimator BO-MRL's equals)
#   R2  BO-MRL reduced to MAML: d3, lambda 5, linear surrogate, one sgd step at 0.1, unrolled
#       derivative, and MAML's trust region (KL of the adapted policies on the post-update data);
#       adapts like R0 and X1 and steps like X1 (identical to X1 in exact arithmetic: a test)
#   R1  R2 with BO-MRL's trust region (KL of the meta-policy on the pre-update states, Algorithm 2)
#   R3  R1 with the h surrogate of eq. (7) and 10 armijo steps (the default inner solver)
#   R5  BO-MRL's defaults (d1, lambda 0.5; R3's solver)
set -euo pipefail

N=${N:-100}
ENV=${ENV:-halfcheetah-dir}
TASKS=${TASKS:-40}
EPISODES=${EPISODES:-20}
HORIZON=${HORIZON:-100}
SEEDS=${SEEDS:-"0 1"}
RUNGS=${RUNGS:-"R0 X1 R1 R3 R5 R2"}
TEST_TASKS=${TEST_TASKS:-40}
TEST_SEED=1000
ADAPT_STEPS=${ADAPT_STEPS:-3}
OUT=${OUT:-results/ladder/$ENV}
BOMRL=${BOMRL:-bomrl}
PY=${PY:-python}
PLOT_ONLY=${PLOT_ONLY:-0}
R0_DIRS=${R0_DIRS:-}   # run directories of rung R0 elsewhere (the table pairs against them)

rung_args() {   # the train flags of a rung
  local mamlred=(--distance euclid --lam 5 --set surrogate=linear inner_solver=sgd inner_steps=1 inner_lr=0.1
                 hypergradient=unrolled)
  case "$1" in
    R0) echo "--algo maml-trpo" ;;
    X1) echo "--algo maml-trpo --set inner_objective=likelihood_ratio" ;;
    R2) echo "--algo bomrl ${mamlred[*]} trust_region=post" ;;
    R1) echo "--algo bomrl ${mamlred[*]}" ;;
    R3) echo "--algo bomrl --distance euclid --lam 5 --set surrogate=h inner_solver=armijo inner_steps=10 inner_lr=0.1 hypergradient=unrolled" ;;
    R5) echo "--algo bomrl --distance d1" ;;
    *) echo "ladder: unknown rung $1 (R0 X1 R2 R1 R3 R5)" >&2; exit 2 ;;
  esac
}

mkdir -p "$OUT"
log="$OUT/wall_times.tsv"
[ -f "$log" ] || printf "run\tphase\tseconds\n" > "$log"
if [ "$PLOT_ONLY" != 1 ]; then
  for seed in $SEEDS; do
    for rung in $RUNGS; do
      dir="$OUT/$rung-s$seed"
      if [ -f "$dir/meta_test.json" ] && $PY -c 'import json, sys
m = json.load(open(sys.argv[1]))
sys.exit(0 if m["iteration"] >= int(sys.argv[2]) and m["adapt_steps"] == int(sys.argv[3]) else 1)' \
          "$dir/meta_test.json" "$N" "$ADAPT_STEPS"; then
        echo "$rung-s$seed: trained to $N iterations and meta-tested; skipped"; continue
      fi
      start=$(date +%s)
      if [ -f "$dir/config.json" ]; then
        $BOMRL train --resume "$dir" --iterations "$N" --no-progress
      else
        # shellcheck disable=SC2046
        $BOMRL train --env "$ENV" $(rung_args "$rung") --iterations "$N" --tasks "$TASKS" \
          --episodes "$EPISODES" --horizon "$HORIZON" --seed "$seed" --checkpoint-every 10 \
          --out "$dir" --no-progress
      fi
      printf "%s\ttrain\t%s\n" "$rung-s$seed" $(( $(date +%s) - start )) >> "$log"
      start=$(date +%s)
      $BOMRL meta-test "$dir" --adapt-steps "$ADAPT_STEPS" --tasks "$TEST_TASKS" --seed "$TEST_SEED"
      printf "%s\tmeta-test\t%s\n" "$rung-s$seed" $(( $(date +%s) - start )) >> "$log"
    done
  done
fi
# shellcheck disable=SC2086
$PY scripts/ladder_table.py "$OUT" ${R0_DIRS:+--r0 $R0_DIRS}
