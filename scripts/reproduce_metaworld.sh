#!/usr/bin/env bash
# Meta-World ML1 (docs/REPRODUCTION.md, "Meta-World ML1"): MAML-TRPO, BO-MRL and RL² on ML1
# environments at a budget a 2-core machine affords, success rate against iterations, meta-tested
# on ML1's TEST variations (the family's held-out split) after one adaptation, as Meta-World's
# protocol does. Needs `pip install -e ".[metaworld]"`.
#
# Budget, the same for every method: 10 tasks x 10 episodes x 500 steps (Meta-World's horizon), a
# pre- and a post-update batch per iteration (100,000 env steps); RL² draws the same steps as ONE
# batch of 20 episodes per task = 10 trials of 2 episodes ("after 1 adaptation" = the second
# episode of a trial). N iterations (default 30), seeds 0 and 1. Meta-test: 10 test variations,
# 10 episodes each, 1 adaptation. Restartable: a run resumes up to N; a run meta-tested at N is
# skipped. Then `bomrl plot` writes OUT/plots (success.png, success.md, fig5_training.png, ...).
#
#   scripts/reproduce_metaworld.sh
#   ENVS=ml1-reach-v3 SEEDS=0 METHODS="maml-trpo bomrl" scripts/reproduce_metaworld.sh   # BO-MRL defaults
#   PLOT_ONLY=1 scripts/reproduce_metaworld.sh
#
# METHODS: algorithm names; "bomrl:PRESET" uses a BO-MRL preset. Default BO-MRL: the one-step
# preset, the best BO-MRL under the standard protocol (docs/REPRODUCTION.md).
set -euo pipefail

ENVS=${ENVS:-"ml1-reach-v3 ml1-push-v3"}
METHODS=${METHODS:-"maml-trpo bomrl:one-step rl2"}
SEEDS=${SEEDS:-"0 1"}
N=${N:-30}
TASKS=${TASKS:-10}
EPISODES=${EPISODES:-10}
HORIZON=${HORIZON:-500}
TEST_TASKS=${TEST_TASKS:-10}
TEST_SEED=1000
OUT=${OUT:-results/metaworld}
BOMRL=${BOMRL:-bomrl}
PY=${PY:-python}
PLOT_ONLY=${PLOT_ONLY:-0}

mkdir -p "$OUT"
log="$OUT/wall_times.tsv"
[ -f "$log" ] || printf "run\tphase\tseconds\n" > "$log"
if [ "$PLOT_ONLY" != 1 ]; then
  for seed in $SEEDS; do
    for env in $ENVS; do
      for spec in $METHODS; do
        algo=${spec%%:*}; preset=${spec#*:}; [ "$preset" = "$spec" ] && preset=""
        name="$env-$algo${preset:+-$preset}-s$seed"; dir="$OUT/$name"
        if [ -f "$dir/meta_test.json" ] && $PY -c 'import json, sys
m = json.load(open(sys.argv[1]))
sys.exit(0 if m["iteration"] >= int(sys.argv[2]) else 1)' "$dir/meta_test.json" "$N"; then
          echo "$name: trained to $N iterations and meta-tested; skipped"; continue
        fi
        case "$algo" in
          rl2) extra=(--episodes $((2 * EPISODES)) --set episodes_per_trial=2) ;;
          *) extra=(--episodes "$EPISODES") ;;
        esac
        [ -n "$preset" ] && extra+=(--preset "$preset")
        start=$(date +%s)
        if [ -f "$dir/config.json" ]; then
          $BOMRL train --resume "$dir" --iterations "$N" --no-progress
        else
          $BOMRL train --env "$env" --algo "$algo" "${extra[@]}" --tasks "$TASKS" --horizon "$HORIZON" \
            --iterations "$N" --seed "$seed" --checkpoint-every 5 --out "$dir" --no-progress
        fi
        printf "%s\ttrain\t%s\n" "$name" $(( $(date +%s) - start )) >> "$log"
        start=$(date +%s)
        $BOMRL meta-test "$dir" --adapt-steps 1 --tasks "$TEST_TASKS" --seed "$TEST_SEED"
        printf "%s\tmeta-test\t%s\n" "$name" $(( $(date +%s) - start )) >> "$log"
      done
    done
  done
fi
runs=$(find "$OUT" -mindepth 2 -maxdepth 2 -name config.json -printf '%h\n' | sort)
# shellcheck disable=SC2086
[ -n "$runs" ] && $BOMRL plot $runs --out "$OUT/plots"
