#!/bin/bash
# MAESN beside MAML-TRPO and BO-MRL on nav2d, dense reward for meta-training and SPARSE reward
# (nav2d-sparse) for meta-test, as MAESN does (docs/REPRODUCTION.md, "MAESN").
#
# Budget, the same as scripts/reproduce_nav2d.sh (whose MAML-TRPO and BO-MRL runs in $NAV are
# re-used, not retrained): 20 tasks x 20 episodes x 100 steps per sampling round, a pre- and a
# post-update round per iteration (80,000 env steps), N = 30 iterations, seeds 0 and 1.
# MAESN: the released settings (100 training tasks, latent dim 2, ...; docs/BASELINES.md, "MAESN")
# and a variant with 20 training tasks (= the meta-batch: every latent is updated every iteration).
# Meta-test: 40 fresh goals per seed (the same goals for every method of a seed), K = 5 adaptations,
# each on 20 fresh episodes; on nav2d-sparse for every run, and on nav2d for the MAESN runs.
#   OUT=results/maesn NAV=results/nav2d N=30 K=5 scripts/reproduce_maesn.sh
# The halfcheetah-dir runs of the issue (40 x 20 x 100) are not part of this script:
#   bomrl train --env halfcheetah-dir --algo maesn --tasks 40 --episodes 20 --horizon 100 --seed S ...
set -e
OUT=${OUT:-results/maesn}
NAV=${NAV:-results/nav2d}
N=${N:-30}
K=${K:-5}
BOMRL=${BOMRL:-bomrl}
PY=${PY:-python}
B="--env nav2d --tasks 20 --episodes 20 --horizon 100 --iterations $N --checkpoint-every 10 --no-progress --no-tensorboard --workers 1"
mkdir -p $OUT/sparse
for seed in 0 1; do
  for variant in "" "-n20"; do
    out=$OUT/nav2d-maesn$variant-s$seed
    extra=""; [ "$variant" = "-n20" ] && extra="--set num_train_tasks=20"
    if [ ! -f $out/meta_test.json ]; then
      if [ -f $out/config.json ]; then $BOMRL train --resume $out --iterations $N --no-progress
      else $BOMRL train $B --algo maesn $extra --seed $seed --out $out; fi
      $BOMRL meta-test $out --adapt-steps $K --tasks 40
    fi
    ls $out/ckpt-*.bomrl | sort | head -n -1 | xargs -r rm     # keep the latest checkpoint only
  done
done

# Meta-test on the sparse reward: `bomrl meta-test --env nav2d-sparse` tests each dense-trained run on
# the sparse family (same spaces, same goal distribution, hence the same test goals per seed).
for run in $OUT/nav2d-maesn-s0 $OUT/nav2d-maesn-s1 $OUT/nav2d-maesn-n20-s0 $OUT/nav2d-maesn-n20-s1 \
           $NAV/nav2d-maml-trpo-s0 $NAV/nav2d-maml-trpo-s1 $NAV/nav2d-bomrl-kl-s0 $NAV/nav2d-bomrl-kl-s1 \
           $NAV/nav2d-bomrl-rkl-s0 $NAV/nav2d-bomrl-rkl-s1 $NAV/nav2d-bomrl-euclid-s0 $NAV/nav2d-bomrl-euclid-s1; do
  dst=$OUT/sparse/$(basename $run).json
  [ -f $dst ] && continue
  $BOMRL meta-test $run --env nav2d-sparse --adapt-steps $K --tasks 40 --out $dst
done

# The table (stdout, also $OUT/table.md, quoted by docs/REPRODUCTION.md, and $OUT/summary.json) and
# docs/img/maesn-nav2d-sparse.png
$PY - "$OUT" <<'EOF'
import json
import math
import sys
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
methods = [("nav2d-maesn", "MAESN (100 training tasks)"), ("nav2d-maesn-n20", "MAESN (20 training tasks)"),
           ("nav2d-maml-trpo", "MAML-TRPO"), ("nav2d-bomrl-kl", "BO-MRL d1"), ("nav2d-bomrl-rkl", "BO-MRL d2"),
           ("nav2d-bomrl-euclid", "BO-MRL d3")]
rows = {}
for key, label in methods:
    per_seed = [np.asarray(json.loads((out / "sparse" / f"{key}-s{s}.json").read_text())["task_returns"])
                for s in (0, 1)]                                     # each [K + 1, 40]
    allr = np.concatenate(per_seed, axis=1)
    rows[key] = {"label": label, "mean": allr.mean(1).tolist(),
                 "sem": (allr.std(1, ddof=1) / math.sqrt(allr.shape[1])).tolist(),
                 "per_seed": [p.mean(1).tolist() for p in per_seed]}
K = len(rows["nav2d-maesn"]["mean"]) - 1
# BO-MRL's best variant on nav2d-sparse: highest mean return over adaptations 1..K (both seeds)
best = max(("nav2d-bomrl-kl", "nav2d-bomrl-rkl", "nav2d-bomrl-euclid"), key=lambda k: np.mean(rows[k]["mean"][1:]))
lines = ["| method | " + " | ".join(f"after {j}" for j in range(K + 1)) + " | after 1, per seed |",
         "| --- " * (K + 3) + "|"]
for key, _ in methods:
    r = rows[key]
    cells = " | ".join(f"{m:.1f} ± {s:.1f}" for m, s in zip(r["mean"], r["sem"]))
    lines.append(f"| {r['label']}{' (best)' if key == best else ''} | {cells} | "
                 f"{r['per_seed'][0][1]:.1f} / {r['per_seed'][1][1]:.1f} |")
print("\n".join(lines))
(out / "table.md").write_text("\n".join(lines) + "\n")
# MAESN's claim: faster learning from sparse rewards at meta-test = a higher return than both
# baselines after each of the adaptations 1..K, in both seeds
verdict = {}
for key in ("nav2d-maesn", "nav2d-maesn-n20"):
    ok = all(rows[key]["per_seed"][s][j] > max(rows["nav2d-maml-trpo"]["per_seed"][s][j], rows[best]["per_seed"][s][j])
             for s in (0, 1) for j in range(1, K + 1))
    verdict[key] = ok
    print(f"{rows[key]['label']}: higher than MAML-TRPO and {rows[best]['label']} after every adaptation 1..{K} "
          f"in both seeds: {'yes' if ok else 'no'}")
(out / "summary.json").write_text(json.dumps({"rows": rows, "best_bomrl": best, "claim_reproduced": verdict},
                                             indent=1) + "\n")
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit(0)
fig, ax = plt.subplots(figsize=(6, 3.6))
for key, _ in methods:
    if key.startswith("nav2d-bomrl") and key != best:
        continue
    r = rows[key]
    m, s = np.asarray(r["mean"]), np.asarray(r["sem"])
    ax.errorbar(np.arange(K + 1), m, yerr=s, marker="o", capsize=3,
                label=r["label"] + (" (best BO-MRL)" if key == best else ""))
ax.set_xlabel("meta-test adaptations (20 fresh episodes each)")
ax.set_ylabel("return on nav2d-sparse")
ax.set_title("trained on dense nav2d, tested on sparse (2 seeds x 40 goals)")
ax.legend(fontsize=8)
fig.tight_layout()
Path("docs/img").mkdir(parents=True, exist_ok=True)
fig.savefig("docs/img/maesn-nav2d-sparse.png", dpi=90)
print("wrote docs/img/maesn-nav2d-sparse.png")
EOF
