"""The nav2d comparison table and figure of docs/REPRODUCTION.md from the runs of
scripts/reproduce_nav2d.sh (RUNS/nav2d-METHOD-sSEED/meta_test.json).

    .venv/bin/python scripts/nav2d_table.py [RUNS] [--out docs/img/nav2d_adaptation.png]

Writes RUNS/table.md (the table docs/REPRODUCTION.md quotes), RUNS/summary.json and the figure.

Per method: meta-test return after 0..3 adaptations, mean over both seeds' test tasks (40 per seed,
drawn from each seed's test stream) ± standard error over those (seed, task) returns, and the
per-seed means after one adaptation. Two reference rows on the same test tasks:
- random-init: the untrained policy of each seed's MAML-TRPO run (its iteration-0 parameters)
  adapted by MAML's policy-gradient step (same sampler seeds, counters and keys as `bomrl meta-test`);
- oracle: `navigation.oracle_return(goal)` (straight at the goal at full speed), per task.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

METHODS = [("rl2", "RL²"), ("maml-trpo", "MAML-TRPO"), ("promp", "ProMP"), ("emaml", "E-MAML"),
           ("bomrl-kl", "BO-MRL d1"), ("bomrl-rkl", "BO-MRL d2"), ("bomrl-euclid", "BO-MRL d3")]
SEEDS = (0, 1)


def random_init(run_dir: Path, steps: int = 3) -> np.ndarray:
    """[steps + 1, tasks] returns of the untrained policy adapted as in `bomrl meta-test`."""
    import jax

    from bomrl.workflow.metatest import TEST_SAMPLER_CALLS, TEST_STREAM
    from bomrl.workflow.run import load_run, make_algo, make_policy, make_run_sampler

    cfg, algo_cfg = load_run(run_dir)
    mt = json.loads((run_dir / "meta_test.json").read_text())
    seed = mt["seed"]
    with make_run_sampler(cfg, mt["tasks"], seed) as sampler:
        policy = make_policy(cfg, sampler, algo_cfg)
        algo = make_algo(cfg, algo_cfg, policy)
        key = jax.random.PRNGKey(seed)
        state = algo.init(jax.random.fold_in(key, 0))
        tasks = sampler.sample_tasks(np.random.default_rng([seed, TEST_STREAM]))
        res = algo.adapt(state, sampler, tasks, jax.random.fold_in(key, TEST_STREAM), steps, call=TEST_SAMPLER_CALLS)
    return np.asarray(res["task_returns"]), tasks, cfg.horizon


def main(argv: list[str]) -> int:
    runs = Path(argv[0]) if argv and not argv[0].startswith("--") else Path("results/nav2d")
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else Path("docs/img/nav2d_adaptation.png")
    from bomrl.envs.navigation import oracle_return

    rows = {}
    for key, label in METHODS:
        per_seed = []
        for seed in SEEDS:
            path = runs / f"nav2d-{key}-s{seed}" / "meta_test.json"
            if path.is_file():
                per_seed.append(np.asarray(json.loads(path.read_text())["task_returns"]))   # [k + 1, tasks]
        if per_seed:
            rows[label] = per_seed
    ref_rand, ref_oracle = [], []
    for seed in SEEDS:
        run = runs / f"nav2d-maml-trpo-s{seed}"
        if (run / "meta_test.json").is_file():
            tr, tasks, horizon = random_init(run)
            ref_rand.append(tr)
            orc = np.array([oracle_return(g, horizon) for g in tasks])
            ref_oracle.append(np.tile(orc, (tr.shape[0], 1)))
    table = {"random-init": ref_rand, **rows, "oracle": ref_oracle}
    lines = ["| method | seeds | after 0 | after 1 | after 2 | after 3 | after 1, per seed |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    summary = {}
    for label, per_seed in table.items():
        if not per_seed:
            continue
        pooled = np.concatenate(per_seed, axis=1)                       # [k + 1, seeds · tasks]
        mean = pooled.mean(1)
        sem = pooled.std(1, ddof=1) / math.sqrt(pooled.shape[1])
        summary[label] = {"mean": mean.tolist(), "sem": sem.tolist(),
                          "after1_per_seed": [float(p[1].mean()) for p in per_seed]}
        cells = " | ".join(f"{m:.1f} ± {s:.1f}" for m, s in zip(mean, sem))
        seeds = " / ".join(f"{p[1].mean():.1f}" for p in per_seed)
        lines.append(f"| {label} | {len(per_seed)} | {cells} | {seeds} |")
    print("\n".join(lines))
    if "random-init" in summary:
        base = summary["random-init"]["mean"][1]
        beat = {k: v["mean"][1] > base for k, v in summary.items() if k not in ("random-init", "oracle")}
        print("beats random-init after one adaptation:", json.dumps(beat))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, (label, s) in enumerate(summary.items()):
        x = np.arange(len(s["mean"])) + 0.03 * (i - len(summary) / 2)
        style = {"random-init": {"ls": ":", "color": "0.45"}, "oracle": {"ls": "--", "color": "k"}}.get(label, {})
        ax.errorbar(x, s["mean"], yerr=s["sem"], marker="o", ms=4, capsize=2, label=label, **style)
    ax.set_xticks(range(4))
    ax.set_xlabel("adaptation steps (RL²: episode k + 1 of a trial)")
    ax.set_ylabel("meta-test return (40 tasks × 2 seeds)")
    ax.set_title("nav2d, 20 tasks × 20 episodes × 100 steps, 30 iterations")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    (runs / "summary.json").write_text(json.dumps(summary, indent=1))
    (runs / "table.md").write_text("\n".join(lines) + "\n")   # quoted by docs/REPRODUCTION.md
    print(f"-> {out}, {runs / 'summary.json'}, {runs / 'table.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
