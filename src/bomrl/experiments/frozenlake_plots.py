"""Figures in the style of the paper's Fig. 1, 3 and 4 (PNG, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"kl": "(1)", "rkl": "(2)", "euclid": "(3)"}


def plot_case(summary: dict, out_dir: Path) -> None:
    """returns.png: return vs adaptation steps; gap.png: optimality gaps with the bound as a line."""
    rv = summary["returns_vs_steps"]
    alg = LABELS[summary["distance"]]
    title = f"{summary['case']}: p={summary['hole_prob']:g}, Alg{alg}, λ={summary['lambda']:g}"
    steps = list(range(len(rv["bomrl"])))

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(steps, rv["bomrl"], "o-", label="BO-MRL")
    ax.plot(steps, rv["random_init"], "s-", label="Random initialization")
    ax.plot(steps, rv["maml"], "^-", label="MAML")
    ax.axhline(rv["optimal"], color="k", ls="--", label="Optimal task-specific policies")
    ax.set_xlabel("Number of policy adaptation steps")
    ax.set_ylabel("Expected accumulated reward")
    ax.set_xticks(steps)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "returns.png", dpi=110)
    plt.close(fig)

    gaps = summary["teog"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    names = ["No\nadaptation", f"One-time\n{alg}", "One step of\npolicy gradient"]
    vals = [gaps["no_adaptation"], gaps["one_time_alg"], gaps["one_pg_step"]]
    ax.bar(names, vals, color=["#999999", "#1f77b4", "#ff7f0e"])
    bound = summary["bound"]
    if bound != float("inf"):
        ax.axhline(bound, color="r", ls="--", label=f"Upper bound for one-time {alg}: {bound:.3g}")
        ax.legend(fontsize=7)
        top = max(max(vals), bound)
        if bound > 20 * max(max(vals), 1e-9):  # keep the bars readable; the bound is in the legend
            ax.set_ylim(0, 1.3 * max(vals))
        else:
            ax.set_ylim(0, 1.15 * top)
    ax.set_ylabel("Expected optimality gap")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "gap.png", dpi=110)
    plt.close(fig)
