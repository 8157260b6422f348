#!/usr/bin/env bash
# "Under the released scripts' protocol" (docs/REPRODUCTION.md): BO-MRL and MAML-TRPO trained under
# the protocol of the paper's released scripts (P0), then with its elements switched back toward the
# standard protocol in named groups (P2-P4), 2 seeds; each run meta-tested on 40 test tasks (seed
# 1000) with the released meta-test's three aggregates, and on the scripts' task grid; the table
# (scripts/released_table.py) reports BO-MRL − MAML-TRPO after one adaptation per step, with paired
# 95 % intervals. Restartable: an existing run resumes up to N iterations; a run meta-tested at N
# is skipped.
#
#   scripts/released_protocol.sh                                  # halfcheetah-dir, every step, seeds 0 1
#   STEPS=P0 SEEDS=0 scripts/released_protocol.sh                 # one step, one seed
#   ENV=nav2d HORIZON=100 CONT=50 TASKS=20 N=30 scripts/released_protocol.sh   # a cheap first pass
#   PLOT_ONLY=1 scripts/released_protocol.sh                      # the table from the committed files
#
# The steps (each switches the named group of P0's elements back to the standard protocol's value;
# P1 is no training: P0's runs meta-tested at their last iteration instead of the selected policy):
#   P0  released: --preset released (BO-MRL: --distance DIST), raw actions clipped to the env's
#       bounds (action scale 1; locomotion families), 4 tasks (the fixed list), 20 episodes and 100 after adaptation,
#       200-step episodes + 200-step continuation, 128-128 policy with a fixed std, observation
#       filter, model selection on 2 tasks
#   P1  P0 without model selection (meta-test --checkpoint latest)
#   P2  P1 without the run mechanics: action scale 10, sampled tasks, the same episodes after
#       adaptation, learned std, 64-64 policy, no observation filter
#   P3  P2 with the standard Q: GAE(1) with the linear baseline, standardised, γ 0.99, no continuation
#   P3r P3 with BO-MRL's inner Q at its raw scale (inner_q=centred: GAE(1) centred per task, not
#       divided by its std), the scale the released λ and solver were set for; BO-MRL only, paired
#       with P3's MAML-TRPO runs (STEPS="P3r" runs it; not among the default STEPS)
#   P4  P3 with the standard algorithm settings (BO-MRL's defaults at DIST; MAML-TRPO's defaults)
# The remaining step to the standard protocol (40 tasks, horizon 100) is results/locomotion's runs.
set -euo pipefail

N=${N:-500}
ENV=${ENV:-halfcheetah-dir}
DIST=${DIST:-d1}
TASKS=${TASKS:-4}
EPISODES=${EPISODES:-20}
HORIZON=${HORIZON:-200}        # the data steps of an episode
CONT=${CONT:-200}              # continuation steps after them
SEEDS=${SEEDS:-"0 1"}
STEPS=${STEPS:-"P0 P2 P3 P4"}
METHODS=${METHODS:-"bomrl maml-trpo"}
TEST_TASKS=${TEST_TASKS:-40}
TEST_SEED=1000
ADAPT_STEPS=${ADAPT_STEPS:-3}
OUT=${OUT:-results/released/$ENV}
BOMRL=${BOMRL:-bomrl}
PY=${PY:-python}
PLOT_ONLY=${PLOT_ONLY:-0}

step_args() {   # the train flags of (step, method)
  local step=$1 method=$2 preset dist="" q=() mech=()
  [ "$method" = bomrl ] && dist="--distance $DIST"
  preset="--preset released"
  mech=(--fixed-tasks --post-episodes $((5 * EPISODES)) --hidden 128 128 --fixed-std --obs-filter --select-tasks 2)
  case "$ENV" in halfcheetah-*|ant-*) mech+=(--action-scale 1) ;; esac   # the scripts' raw gym actions
  q=(--horizon $((HORIZON + CONT)) --set continuation="$CONT")
  case "$step" in
    P0) ;;
    P2) mech=() ;;
    P3) mech=(); q=(--horizon "$HORIZON" --set continuation=0 advantage_estimator=gae normalize_advantages=true discount=0.99) ;;
    P3r) mech=(); q=(--horizon "$HORIZON" --set continuation=0 advantage_estimator=gae normalize_advantages=true discount=0.99
                      inner_q=centred) ;;
    P4) mech=(); q=(--horizon "$HORIZON"); preset="" ;;
    *) echo "released_protocol: unknown step $step (P0 P2 P3 P3r P4)" >&2; exit 2 ;;
  esac
  echo "--algo $method $dist $preset ${mech[*]} ${q[*]}"
}

done_at() {   # exit 0 if meta-test file $1 exists at iteration >= N
  [ -f "$1" ] && $PY -c 'import json, sys
m = json.load(open(sys.argv[1]))
sys.exit(0 if m["iteration"] >= int(sys.argv[2]) else 1)' "$1" "$N"
}

mkdir -p "$OUT"
log="$OUT/wall_times.tsv"
[ -f "$log" ] || printf "run\tphase\tseconds\n" > "$log"
if [ "$PLOT_ONLY" != 1 ]; then
  for seed in $SEEDS; do
    for step in $STEPS; do
      for method in $METHODS; do
        [ "$step" = P3r ] && [ "$method" != bomrl ] && continue   # P3r's partner is P3's MAML-TRPO run
        name="$step-$method-s$seed"; dir="$OUT/$name"
        if done_at "$dir/meta_test.json"; then echo "$name: trained to $N iterations and meta-tested; skipped"; continue; fi
        start=$(date +%s)
        if [ -f "$dir/config.json" ]; then
          $BOMRL train --resume "$dir" --iterations "$N" --no-progress
        else
          # shellcheck disable=SC2046
          $BOMRL train --env "$ENV" $(step_args "$step" "$method") --tasks "$TASKS" --episodes "$EPISODES" \
            --iterations "$N" --seed "$seed" --checkpoint-every 10 --out "$dir" --no-progress
        fi
        printf "%s\ttrain\t%s\n" "$name" $(( $(date +%s) - start )) >> "$log"
        start=$(date +%s)
        mt=(--protocol released --adapt-steps "$ADAPT_STEPS")
        if [ "$step" = P0 ]; then
          $BOMRL meta-test "$dir" "${mt[@]}" --checkpoint best --tasks "$TEST_TASKS" --seed "$TEST_SEED" \
            --out "$dir/meta_test-best.json"
          case "$ENV" in halfcheetah-*|ant-*)   # the scripts' task grids (locomotion families)
            $BOMRL meta-test "$dir" "${mt[@]}" --checkpoint best --task-grid --out "$dir/meta_test-grid.json" ;;
          esac
        fi
        $BOMRL meta-test "$dir" "${mt[@]}" --tasks "$TEST_TASKS" --seed "$TEST_SEED"
        printf "%s\tmeta-test\t%s\n" "$name" $(( $(date +%s) - start )) >> "$log"
      done
    done
  done
fi
$PY scripts/released_table.py "$OUT"
