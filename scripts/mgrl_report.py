"""Tables and figures of scripts/reproduce_mgrl.sh from the runs' metrics.csv files.

    python scripts/mgrl_report.py results/mgrl --img docs/img

Reads DIR/<env>-<variant>-s<seed>/metrics.csv, writes DIR/summary.json, DIR/summary.md and
IMG/mgrl-<env>.png (return vs environment steps per variant: mean over seeds, thin lines per seed;
the learned γ and λ per update-block of the meta-gradient variants). "final" = the mean episode
return over the last WINDOW iterations (default 10) of each run.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from bomrl.workflow.compare import paired_difference

ORDER = ["mgrl", "mgrl-inner", "fixed-init", "fixed-ref"]
LABEL = {"mgrl": "meta-gradient (reference critic)", "mgrl-inner": "meta-gradient (inner critic)",
         "fixed-init": "fixed (γ, λ) = (0.9, 0.9)", "fixed-ref": "fixed (γ, λ) = (0.99, 1)"}


def load(root: Path):
    runs = defaultdict(dict)   # (env, variant) -> seed -> columns
    for d in sorted(root.iterdir()):
        m = re.fullmatch(r"(.+)-(mgrl|mgrl-inner|fixed-init|fixed-ref)-s(\d+)", d.name)
        if not m or not (d / "metrics.csv").is_file():
            continue
        with open(d / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        cols = {k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rows]) for k in rows[0]}
        runs[(m.group(1), m.group(2))][int(m.group(3))] = cols
    return runs


def summarise(runs, window: int):
    out = {}
    for (env, variant), seeds in sorted(runs.items()):
        per_seed = {}
        for s, c in sorted(seeds.items()):
            per_seed[s] = {"iterations": int(c["iteration"][-1]), "env_steps": int(c["env_steps"][-1]),
                           "final_return": float(np.nanmean(c["pre_return"][-window:])),
                           "best_return": float(np.nanmax(c["pre_return"])),
                           "auc_return": float(np.nanmean(c["pre_return"])),
                           "gamma": float(c["meta/gamma"][-1]), "lambda": float(c["meta/lambda"][-1]),
                           "wall_s": float(c["wall_s"][-1])}
        entry = out.setdefault(env, {})[variant] = {"seeds": per_seed}
        for key in ("final_return", "auc_return"):
            x = [v[key] for v in per_seed.values()]
            entry[f"{key}_mean"] = float(np.mean(x))
            entry[f"{key}_sem"] = float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
    return out


def table(summary, window: int) -> str:
    lines = []
    for env, variants in summary.items():
        lines += [f"**{env}** (final = mean episode return over the last {window} iterations; whole run = "
                  "mean over all iterations, the area under the learning curve; ± = s.e. over seeds)", "",
                  "| variant | env steps | final return, per seed | final, mean | whole run, mean | final γ | final λ | wall s / run |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for v in [v for v in ORDER if v in variants]:
            d = variants[v]
            seeds = d["seeds"]
            steps = {x["env_steps"] for x in seeds.values()}
            rets = ", ".join(f"{x['final_return']:.1f}" for x in seeds.values())
            gam = ", ".join(f"{x['gamma']:.3f}" for x in seeds.values())
            lam = ", ".join(f"{x['lambda']:.3f}" for x in seeds.values())
            wall = np.mean([x["wall_s"] for x in seeds.values()])
            lines.append(f"| {LABEL[v]} | {'/'.join(map(str, sorted(steps)))} | {rets} | "
                         f"{d['final_return_mean']:.1f} ± {d['final_return_sem']:.1f} | "
                         f"{d['auc_return_mean']:.1f} ± {d['auc_return_sem']:.1f} | {gam} | {lam} | {wall:.0f} |")
        lines += ["", "Paired by seed (the same seed: the same initial networks and environment seeds), "
                  "variant − baseline, whole-run mean return: mean [95 % t-interval over seeds] (seeds)", "",
                  "| variant | − fixed (0.9, 0.9) | − fixed (0.99, 1) |", "| --- | --- | --- |"]
        for v in [v for v in ORDER if v in variants and v.startswith("mgrl")]:
            cells = []
            for base in ("fixed-init", "fixed-ref"):
                if base not in variants:
                    cells.append("–")
                    continue
                common = sorted(set(variants[v]["seeds"]) & set(variants[base]["seeds"]))
                if len(common) < 2:
                    cells.append("–")
                    continue
                d = paired_difference([variants[v]["seeds"][s]["auc_return"] for s in common],
                                      [variants[base]["seeds"][s]["auc_return"] for s in common])
                cells.append(f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}] ({d['n']})")
            lines.append(f"| {LABEL[v]} | {cells[0]} | {cells[1]} |")
        lines.append("")
    return "\n".join(lines)


def plot(runs, env: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    colors = {"mgrl": "C0", "mgrl-inner": "C3", "fixed-init": "C1", "fixed-ref": "C2"}
    for v in ORDER:
        seeds = runs.get((env, v))
        if not seeds:
            continue
        for c in seeds.values():
            ax.plot(c["env_steps"], c["pre_return"], color=colors[v], lw=0.6, alpha=0.35)
        n = min(len(c["env_steps"]) for c in seeds.values())
        x = next(iter(seeds.values()))["env_steps"][:n]
        mean = np.nanmean([c["pre_return"][:n] for c in seeds.values()], axis=0)
        ax.plot(x, mean, color=colors[v], lw=1.8, label=f"{LABEL[v]} ({len(seeds)} seeds)")
        if v.startswith("mgrl"):
            for key, name, ls in (("meta/gamma", "γ", "-"), ("meta/lambda", "λ", "--")):
                for c in seeds.values():
                    ax2.plot(c["env_steps"], c[key], color=colors[v], lw=0.6, ls=ls, alpha=0.35)
                ax2.plot(x, np.nanmean([c[key][:n] for c in seeds.values()], axis=0), color=colors[v], lw=1.8,
                         ls=ls, label=f"{name}, {LABEL[v]} (mean of {len(seeds)})")
    ax.set(xlabel="environment steps", ylabel="mean episode return", title=env)
    ax.legend(fontsize=7)
    ax2.set(xlabel="environment steps", ylabel="value after each iteration",
            title="learned γ (solid), λ (dashed); thin: per seed")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--img", type=Path, default=Path("docs/img"))
    ap.add_argument("--window", type=int, default=10)
    a = ap.parse_args()
    runs = load(a.root)
    summary = summarise(runs, a.window)
    (a.root / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    md = table(summary, a.window)
    (a.root / "summary.md").write_text(md)
    print(md)
    for env in sorted({e for e, _ in runs}):
        path = a.img / f"mgrl-{env.lower()}.png"
        plot(runs, env, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
