"""The compact table `bomrl frozenlake` prints, and its Markdown twin for docs/."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

COLUMNS = ["case", "λ", "Var", "ε", "A", "bound", "figures' form", "gap: none", "gap: Alg", "gap: PG",
           "Alg ≤ bound", "BO-MRL k=0..4", "MAML k=0..4", "random k=0..4", "J*"]


def rows(results: dict) -> list[list[str]]:
    out = []
    for label, s in results.items():
        rv, t = s["returns_vs_steps"], s["teog"]
        fmt = lambda xs: " ".join(f"{x:.3f}" for x in xs)  # noqa: E731
        out.append([
            label, f"{s['lambda']:g}", f"{s['task_variance']:.4f}", f"{s['epsilon']:.4f}", f"{s['a_max']:.3f}",
            f"{s['bound']:.3f}", _figure_form(s), f"{t['no_adaptation']:.3f}", f"{t['one_time_alg']:.3f}", f"{t['one_pg_step']:.3f}",
            "yes" if s["one_time_alg_below_bound"] else "NO", fmt(rv["bomrl"]), fmt(rv["maml"]),
            fmt(rv["random_init"]), f"{rv['optimal']:.3f}",
        ])
    return out


def _figure_form(s: dict) -> str:
    """The figures' "c·λ·Var" (`theory.figure_form_coefficient`); "–" in a summary from before it."""
    return f"{s['bound_figure_form']:.3f}" if "bound_figure_form" in s else "–"


def markdown(results: dict) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(results)]
    return "\n".join(lines) + "\n"


def print_table(results: dict, out: Path) -> None:
    table = Table(title=f"Frozen Lake (results in {out})", show_lines=False)
    for c in COLUMNS:
        table.add_column(c, overflow="fold")
    for r in rows(results):
        table.add_row(*r)
    Console(width=200).print(table)
    (out / "table.md").write_text(markdown(results))
