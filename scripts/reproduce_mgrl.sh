#!/usr/bin/env bash
# Meta-gradient RL (issue 17): learning curves of mgrl (γ, λ learned online) against the same learner
# with (γ, λ) fixed at the initial values (0.9, 0.9) and at the reference values (0.99, 1), and with
# the inner critic in the meta-objective (the known trap), on CartPole-v1 and on halfcheetah-vel with
# a fixed target velocity; same budget, five seeds. Runs go to $RUNS (checkpoints, TensorBoard: not
# committed); the small files (config.json, metrics.csv per run, summary.json/.md) to results/mgrl/
# and the figures to docs/img/mgrl-*.png (scripts/mgrl_report.py). Restartable: a finished run is
# skipped, an interrupted one resumed.
#
#   scripts/reproduce_mgrl.sh                         # everything below (40 runs of 1-4 min on 2 busy cores)
#   ENVS=CartPole-v1 SEEDS=0 scripts/reproduce_mgrl.sh
#   REPORT_ONLY=1 scripts/reproduce_mgrl.sh           # tables and figures from results/mgrl/
set -euo pipefail

SEEDS=${SEEDS:-"0 1 2 3 4"}
ENVS=${ENVS:-"CartPole-v1 halfcheetah-vel"}
VARIANTS=${VARIANTS:-"mgrl fixed-init fixed-ref mgrl-inner"}
N_CARTPOLE=${N_CARTPOLE:-40}      # iterations × 16 envs × 20 steps × 25 updates = 320k steps
N_CHEETAH=${N_CHEETAH:-150}       # iterations × 16 envs × 20 steps × 10 updates = 480k steps
TARGET_VEL=${TARGET_VEL:-1.0}     # halfcheetah-vel's fixed task
RUNS=${RUNS:-/tmp/mgrl-runs}
OUT=${OUT:-results/mgrl}
BOMRL=${BOMRL:-bomrl}
REPORT_ONLY=${REPORT_ONLY:-0}

variant_set() {
  case "$1" in
    mgrl) echo "learn=both" ;;
    mgrl-inner) echo "learn=both meta_critic=inner" ;;
    fixed-init) echo "learn=none" ;;
    fixed-ref) echo "learn=none initial_discount=0.99 initial_lambda=1.0" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

if [ "$REPORT_ONLY" != 1 ]; then
  for env in $ENVS; do
    case "$env" in
      CartPole-v1) n=$N_CARTPOLE; extra="" ;;
      halfcheetah-vel) n=$N_CHEETAH; extra="task=$TARGET_VEL updates_per_iteration=10 entropy_coef=0" ;;
      *) echo "no budget defined for env $env" >&2; exit 2 ;;
    esac
    for seed in $SEEDS; do
      for v in $VARIANTS; do
        run="$RUNS/$env-$v-s$seed"
        if [ -f "$run/config.json" ]; then
          nice -n 5 $BOMRL train --resume "$run" --iterations "$n" --no-progress
        else
          # shellcheck disable=SC2046
          nice -n 5 $BOMRL train --env "$env" --algo mgrl --tasks 1 --episodes 4 --iterations "$n" \
            --seed "$seed" --checkpoint-every 10 --no-progress --no-tensorboard --out "$run" \
            --set $(variant_set "$v") $extra
        fi
        mkdir -p "$OUT/$env-$v-s$seed"
        cp "$run/config.json" "$run/metrics.csv" "$OUT/$env-$v-s$seed/"
      done
    done
  done
fi
python scripts/mgrl_report.py "$OUT" --img docs/img
