#!/usr/bin/env bash
# Locomotion reproduction (paper Section 6.2, Figs. 2 and 5) at a scale that fits a 2-core machine.
# Every method gets the same budget (tasks x episodes x horizon per sampling round, N iterations)
# and the same seeds. Restartable: a run that exists is resumed (a finished one is skipped).
#
#   scripts/reproduce_locomotion.sh                      # defaults below (see docs/REPRODUCTION.md)
#   N=500 TASKS=40 EPISODES=20 HORIZON=200 SEEDS="0 1 2" ENVS="halfcheetah-vel halfcheetah-dir ant-vel ant-dir" \
#       OUT=results/locomotion-full scripts/reproduce_locomotion.sh      # the paper's scale
set -euo pipefail

N=${N:-300}                       # meta-iterations per run
TASKS=${TASKS:-20}                # tasks per meta-batch
EPISODES=${EPISODES:-10}          # episodes per task and sampling round
HORIZON=${HORIZON:-100}
SEEDS=${SEEDS:-0}
ENVS=${ENVS:-"halfcheetah-vel halfcheetah-dir"}
TEST_TASKS=${TEST_TASKS:-40}
ADAPT_STEPS=${ADAPT_STEPS:-3}
SAMPLER=${SAMPLER:-vector}
OUT=${OUT:-results/locomotion}
BOMRL=${BOMRL:-bomrl}             # e.g. BOMRL="python -m bomrl.cli"
METHODS=${METHODS:-"bomrl:kl bomrl:rkl maml-trpo promp emaml"}

mkdir -p "$OUT"
log="$OUT/wall_times.tsv"
[ -f "$log" ] || printf "run\tphase\tseconds\n" > "$log"
for env in $ENVS; do
  for seed in $SEEDS; do
    for m in $METHODS; do
      algo=${m%%:*}
      if [ "$algo" = bomrl ]; then dist=${m#*:}; name="$env-bomrl-$dist-s$seed"; extra=(--distance "$dist");
      else name="$env-$algo-s$seed"; extra=(); fi
      dir="$OUT/$name"
      start=$(date +%s)
      if [ -f "$dir/config.json" ]; then
        $BOMRL train --resume "$dir" --iterations "$N" --no-progress
      else
        $BOMRL train --env "$env" --algo "$algo" "${extra[@]}" --iterations "$N" --tasks "$TASKS" \
          --episodes "$EPISODES" --horizon "$HORIZON" --seed "$seed" --sampler "$SAMPLER" \
          --checkpoint-every 10 --out "$dir" --no-progress
      fi
      printf "%s\ttrain\t%s\n" "$name" $(( $(date +%s) - start )) >> "$log"
      start=$(date +%s)
      $BOMRL meta-test "$dir" --adapt-steps "$ADAPT_STEPS" --tasks "$TEST_TASKS" --seed 1000
      printf "%s\tmeta-test\t%s\n" "$name" $(( $(date +%s) - start )) >> "$log"
    done
  done
done
$BOMRL plot "$OUT" --out "$OUT/plots" --smooth 5
cat "$OUT/plots/summary.md"
