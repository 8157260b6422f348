#!/usr/bin/env bash
# Stage (and with --commit, commit) the small files of every run under the given result roots, so a
# later run on another machine resumes instead of restarting (checkpoints and run directories
# are git-ignored; only what is staged here travels with the repository):
#   each RUN with a config.json: config.json, metrics.csv, every meta_test*.json, best.bomrl (if
#   any) and its LATEST ckpt-*.bomrl; older checkpoints of RUN leave the index (they stay on disk); ROOT/wall_times.tsv.
# A run with neither a checkpoint nor a meta-test yet is skipped (its config alone would not resume).
# Files over 1 MB are refused (one line on stderr), never staged. Safe while runs write: it only reads
# them. --commit commits the whole index: stage nothing else first, and never `git commit -a` beside
# running jobs (it would take their half-written files).
#
#   scripts/stage_results.sh                          # results/locomotion, stage only
#   scripts/stage_results.sh --commit results/locomotion results/locomotion-h200
set -euo pipefail

commit=0
if [ "${1:-}" = --commit ]; then commit=1; shift; fi
roots=("$@")
[ ${#roots[@]} -gt 0 ] || roots=(results/locomotion)
git rev-parse --show-toplevel > /dev/null   # inside a git work tree (paths stay relative to the caller)

max_bytes=$((1024 * 1024))
staged=()
add() {   # add FILE if it exists and is small enough
  [ -f "$1" ] || return 0
  local size
  size=$(wc -c < "$1")
  if [ "$size" -gt "$max_bytes" ]; then
    echo "stage_results: not staged: $1 is $size bytes (limit $max_bytes)" >&2
    return 0
  fi
  git add -f -- "$1"
}

for root in "${roots[@]}"; do
  if [ ! -d "$root" ]; then echo "stage_results: no such directory: $root" >&2; exit 2; fi
  for dir in "$root"/*/; do
    dir=${dir%/}
    [ -f "$dir/config.json" ] || continue
    latest=$(ls "$dir"/ckpt-*.bomrl 2>/dev/null | sort | tail -n 1 || true)
    if [ -z "$latest" ] && [ ! -f "$dir/meta_test.json" ]; then
      # started, no checkpoint yet: a committed config without one would make `--resume` fail elsewhere
      echo "stage_results: skipped $dir (no checkpoint yet)" >&2
      continue
    fi
    for tracked in $(git ls-files -- "$dir" | grep '/ckpt-[0-9]*\.bomrl$' || true); do
      [ "$tracked" = "$latest" ] || git rm -q --cached -- "$tracked"
    done
    add "$dir/config.json"; add "$dir/metrics.csv"
    for mt in "$dir"/meta_test*.json; do add "$mt"; done   # meta_test.json, meta_test-best.json, ...
    add "$dir/best.bomrl"                                   # the model-selection checkpoint (--select-tasks)
    label=$(basename "$dir")
    if [ -n "$latest" ]; then
      add "$latest"
      label="$label @$(basename "$latest" .bomrl | sed 's/^ckpt-0*//')"
    fi
    git diff --cached --quiet -- "$dir" || staged+=("$label")   # the message names changed runs only
  done
  add "$root/wall_times.tsv"
done

if git diff --cached --quiet; then echo "stage_results: nothing changed"; exit 0; fi
msg="results: $(IFS=';'; echo "${staged[*]:-wall times}" | sed 's/;/; /g')"
if [ "$commit" = 1 ]; then
  git commit -q -m "$msg"
  git log --oneline -1
else
  git diff --cached --stat | tail -n 1
  echo "staged; to commit: git commit -m \"$msg\""
fi
