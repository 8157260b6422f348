#!/bin/bash
# The nav2d comparison of docs/REPRODUCTION.md ("nav2d: RL² beside the gradient-based methods").
# Same budget for every method: 20 tasks x 20 episodes x 100 steps, pre- and post-update batches
# (2 x 40,000 env steps per iteration; RL²: one batch of 40 episodes = 10 trials of 4 per task,
# the same 80,000 steps), 30 meta-iterations, seeds 0 and 1; meta-test on 40 fresh tasks with
# 3 adaptations. Then the table and docs/img/nav2d_adaptation.png.
#   OUT=results/nav2d N=30 scripts/reproduce_nav2d.sh
set -e
OUT=${OUT:-results/nav2d}
N=${N:-30}
BOMRL=${BOMRL:-bomrl}
B="--env nav2d --tasks 20 --horizon 100 --iterations $N --checkpoint-every 10 --no-progress --no-tensorboard --workers 1"
for seed in 0 1; do
  for spec in "maml-trpo" "rl2" "promp" "emaml" "bomrl --distance kl" "bomrl --distance rkl" "bomrl --distance euclid"; do
    set -- $spec
    algo=$1; dist=${3:-}
    out=$OUT/nav2d-$algo${dist:+-$dist}-s$seed
    if [ "$algo" = rl2 ]; then extra="--episodes 40 --set episodes_per_trial=4"; else extra="--episodes 20"; fi
    [ -f $out/meta_test.json ] && continue
    if [ -f $out/config.json ]; then $BOMRL train --resume $out --iterations $N --no-progress
    else $BOMRL train $B $extra --algo $spec --seed $seed --out $out; fi
    $BOMRL meta-test $out --adapt-steps 3 --tasks 40
  done
done
python scripts/nav2d_table.py $OUT --out docs/img/nav2d_adaptation.png
