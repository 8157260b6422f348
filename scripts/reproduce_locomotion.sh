#!/usr/bin/env bash
# Locomotion reproduction (paper Section 6.2, Figs. 2 and 5) at the scale of the public MAML-family
# configurations (pytorch-maml-rl and ProMP: 40 tasks x 20 episodes x horizon 100 per sampling round).
# Every method gets the same budget and the same seeds and meta-test tasks. Restartable: a run that
# exists is resumed up to N iterations (a finished one is skipped), so N can be raised in stages
# (e.g. N=100 first, then N=300) and unfinished runs continue on any machine from the
# checkpoint committed under results/.
#
#   scripts/reproduce_locomotion.sh                      # defaults below (see docs/REPRODUCTION.md)
#   N=100 SEEDS=0 ENVS=halfcheetah-vel METHODS="bomrl:d1 maml-trpo" scripts/reproduce_locomotion.sh
#   HORIZON=200 SEEDS=0 ENVS=halfcheetah-dir METHODS="bomrl:d3 maml-trpo" OUT=results/locomotion-h200 \
#       scripts/reproduce_locomotion.sh                  # the horizon check of issue 13 (d3: best BO-MRL on -dir)
#   PLOT_ONLY=1 scripts/reproduce_locomotion.sh          # tables and figures from the committed files
#
# BO-MRL variants: bomrl:d1 | bomrl:d2 | bomrl:d3 (the distance of eq. (1)); d1 and d2 use the
# defaults' lambda = 0.5; d3 uses lambda = 5, the value at which its first-order solution is exactly
# MAML's inner step with the MAML family's step size 0.1 (alpha = 1/(2 lambda), Appendix H), a rule
# fixed before any test-set result. Env-specific budget: ant-dir uses 40 episodes per sampling round
# (the paper's 40 rollouts per adaptation step for Ant) unless EPISODES_ANT is set.
set -euo pipefail

N=${N:-300}                       # meta-iterations per run
TASKS=${TASKS:-40}                # tasks per meta-batch
EPISODES=${EPISODES:-20}          # episodes per task and sampling round
EPISODES_ANT=${EPISODES_ANT:-40}  # the same for ant-dir (paper: 40 rollouts per step for Ant direction)
HORIZON=${HORIZON:-100}
SEEDS=${SEEDS:-"0 1"}
ENVS=${ENVS:-"halfcheetah-vel halfcheetah-dir ant-dir"}
TEST_TASKS=${TEST_TASKS:-40}
TEST_SEED=1000                    # seed of the meta-test tasks (the same test tasks for every run)
ADAPT_STEPS=${ADAPT_STEPS:-3}
SAMPLER=${SAMPLER:-vector}
OUT=${OUT:-results/locomotion}
BOMRL=${BOMRL:-bomrl}             # e.g. BOMRL="python -m bomrl.cli"
PY=${PY:-python}                  # the interpreter of the report script
ANT_DEFAULT=${METHODS:-"bomrl:d1 maml-trpo promp"}      # issue 13's minimum on Ant, unless METHODS is given
METHODS=${METHODS:-"bomrl:d1 bomrl:d2 bomrl:d3 maml-trpo promp emaml"}
ANT_METHODS=${ANT_METHODS:-$ANT_DEFAULT}                 # the methods run on ant-*
PLOT_ONLY=${PLOT_ONLY:-0}

mkdir -p "$OUT"
if [ "$PLOT_ONLY" = 1 ]; then ENVS=""; fi
log="$OUT/wall_times.tsv"
[ -f "$log" ] || printf "run\tphase\tseconds\n" > "$log"
for env in $ENVS; do
  methods=$METHODS; episodes=$EPISODES
  case "$env" in ant-*) methods=$ANT_METHODS ;; esac
  case "$env" in ant-dir) episodes=$EPISODES_ANT ;; esac
  for seed in $SEEDS; do
    for m in $methods; do
      algo=${m%%:*}
      if [ "$algo" = bomrl ]; then
        dist=${m#*:}; name="$env-bomrl-$dist-s$seed"; extra=(--distance "$dist")
        if [ "$dist" = d3 ]; then extra+=(--lam 5); fi
      else name="$env-$algo-s$seed"; extra=(); fi
      dir="$OUT/$name"
      # a run already meta-tested at N iterations with these settings is finished: skip it (its
      # committed metrics and meta-test stand even if its final checkpoint is not kept)
      if [ -f "$dir/meta_test.json" ] && $PY -c 'import json, sys
m = json.load(open(sys.argv[1]))
done = m["iteration"] >= int(sys.argv[2]) and m["adapt_steps"] == int(sys.argv[3])
sys.exit(0 if done and len(m["task_returns"][0]) == int(sys.argv[4]) and m["seed"] == int(sys.argv[5]) else 1)' \
          "$dir/meta_test.json" "$N" "$ADAPT_STEPS" "$TEST_TASKS" "$TEST_SEED"; then
        echo "$name: trained to $N iterations and meta-tested; skipped"; continue
      fi
      start=$(date +%s)
      if [ -f "$dir/config.json" ]; then
        $BOMRL train --resume "$dir" --iterations "$N" --no-progress
      else
        $BOMRL train --env "$env" --algo "$algo" "${extra[@]}" --iterations "$N" --tasks "$TASKS" \
          --episodes "$episodes" --horizon "$HORIZON" --seed "$seed" --sampler "$SAMPLER" \
          --checkpoint-every 10 --out "$dir" --no-progress
      fi
      printf "%s\ttrain\t%s\n" "$name" $(( $(date +%s) - start )) >> "$log"
      start=$(date +%s)
      $BOMRL meta-test "$dir" --adapt-steps "$ADAPT_STEPS" --tasks "$TEST_TASKS" --seed "$TEST_SEED"
      printf "%s\tmeta-test\t%s\n" "$name" $(( $(date +%s) - start )) >> "$log"
    done
  done
done
# Fig. 2 / Fig. 5 figures, the tables (Fig. 2 numbers, paired differences against the best BO-MRL
# variant with 95 % intervals, wall times) and the verdict on the paper's three claims
$BOMRL plot "$OUT" --out "$OUT/plots" --smooth 5
$PY scripts/locomotion_claims.py "$OUT" --out "$OUT/plots/claims.md"
# the committed result sets show their figures in docs/REPRODUCTION.md: results/locomotion ->
# docs/img/locomotion-fig{2,5}.png, results/locomotion-h200 -> docs/img/locomotion-h200-fig{2,5}.png
case "$OUT" in
  results/locomotion | results/locomotion-*) img=docs/img/$(basename "$OUT") ;;
  *) img="" ;;
esac
if [ -n "$img" ]; then
  # Fig. 2 exists once a run is meta-tested
  if [ -f "$OUT/plots/fig2_adaptation.png" ]; then cp "$OUT/plots/fig2_adaptation.png" "$img-fig2.png"; fi
  cp "$OUT/plots/fig5_training.png" "$img-fig5.png"
fi
cat "$OUT/plots/summary.md"
