#!/usr/bin/env bash
# The benchmark suite of docs/BENCHMARKS.md: every `bomrl bench` command of the current tables, each
# recorded (scripts/bench_record.py) as one line of OUT, then rendered (scripts/bench_tables.py).
# Run it with nothing else on the machine: stop other jobs first (kill -STOP PID, kill -CONT PID
# after) and say so in CONDITIONS.
#
#   scripts/bench_suite.sh                                   # results/bench/DATE-suite.jsonl
#   OUT=results/bench/x.jsonl CONDITIONS="..." scripts/bench_suite.sh
#   ONLY=iteration scripts/bench_suite.sh                    # one group: iteration, update, sampler, metaworld
set -euo pipefail

OUT=${OUT:-results/bench/$(date -u +%F)-suite.jsonl}
CONDITIONS=${CONDITIONS:-"only the benchmark ran"}
ONLY=${ONLY:-"iteration update sampler metaworld"}
PY=${PY:-python}
LOC=(--env halfcheetah-vel --tasks 40 --episodes 20 --horizon 100)

rec() {   # rec LABEL bomrl bench ...
  local label=$1; shift
  echo "+ $*" >&2
  $PY scripts/bench_record.py "$OUT" --label "$label" --conditions "$CONDITIONS" --python "$PY" -- "$@" > /dev/null
}

for group in $ONLY; do
  case "$group" in
    iteration)
      rec "MAML-TRPO" bomrl bench iteration "${LOC[@]}" --iterations 5 --algo maml-trpo
      rec "BO-MRL d1 (defaults)" bomrl bench iteration "${LOC[@]}" --iterations 5 --algo bomrl
      rec "ProMP" bomrl bench iteration "${LOC[@]}" --iterations 5 --algo promp
      rec "E-MAML" bomrl bench iteration "${LOC[@]}" --iterations 5 --algo emaml
      rec "MAML-TRPO, 1 worker" bomrl bench iteration "${LOC[@]}" --iterations 3 --algo maml-trpo --workers 1 ;;
    update)
      rec "BO-MRL d1 (defaults)" bomrl bench update --repeats 3 ;;
    sampler)
      rec "halfcheetah-vel, scale 10, baseline with the sampler's controls" bomrl bench sampler --env halfcheetah-vel
      rec "halfcheetah-vel, scale 10, 1 worker" bomrl bench sampler --env halfcheetah-vel --workers 1
      rec "halfcheetah-vel, scale 10, process backend" bomrl bench sampler --env halfcheetah-vel --backend process
      rec "halfcheetah-vel, scale 10, Ray backend" bomrl bench sampler --env halfcheetah-vel --backend ray
      rec "ant-vel, scale 10" bomrl bench sampler --env ant-vel
      rec "nav2d (one jitted lax.scan per call)" bomrl bench sampler --env nav2d --horizon 100 ;;
    metaworld)   # docs/ENVIRONMENTS.md, "Meta-World": its own Python dominates the step
      MW=(--env ml1-reach-v3 --tasks 10 --horizon 500)
      rec "ml1-reach-v3, vector, 1 worker, E 1" bomrl bench sampler "${MW[@]}" --episodes 1 --backend vector --workers 1
      rec "ml1-reach-v3, vector, 1 worker, E 4" bomrl bench sampler "${MW[@]}" --episodes 4 --backend vector --workers 1
      rec "ml1-reach-v3, process, 2 workers, E 1" bomrl bench sampler "${MW[@]}" --episodes 1 --backend process --workers 2
      rec "ml1-reach-v3, process, 2 workers, E 4" bomrl bench sampler "${MW[@]}" --episodes 4 --backend process --workers 2
      rec "ml1-reach-v3, ray, 2 workers, E 1" bomrl bench sampler "${MW[@]}" --episodes 1 --backend ray --workers 2 ;;
    *) echo "bench_suite: unknown group $group (iteration, update, sampler, metaworld)" >&2; exit 2 ;;
  esac
done
$PY scripts/bench_tables.py
