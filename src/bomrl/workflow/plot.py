"""`bomrl plot RUN... [--out DIR]`: the paper's figure styles from run directories.

- DIR/fig2_adaptation.png (Fig. 2 style): meta-test return vs number of adaptation steps, one panel
  per env, one line per method (from RUN/meta_test.json).
- DIR/fig5_training.png (Fig. 5 style): post-adaptation return vs meta-iteration, one panel per
  env (from RUN/metrics.csv).
- DIR/summary.md: the Fig. 2 numbers as a markdown table; per env, the paired difference of every
  method against a reference (`--reference`, default the best BO-MRL variant) on the same test
  tasks with its 95 % t-interval over (seed, task) pairs (`bomrl.workflow.compare`); the training
  wall time and env steps of every run. DIR/comparison.json: the same numbers.

RUN is a run directory (with config.json) or a directory whose sub-directories are runs. Runs of
the same env and method with different seeds are averaged; the band / error bar is the standard
error over seeds (over test tasks when there is a single seed).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bomrl.algos import ALGORITHMS
from bomrl.errors import BomrlError, ConfigError, check
from bomrl.utils import ensure_out_dir
from bomrl.workflow import compare
from bomrl.workflow.config import TrainConfig, build_algo_config, saved_algo_config
from bomrl.workflow.logging import read_metrics
from bomrl.workflow.plot_config import PlotConfig

__all__ = ["PlotConfig", "collect", "find_runs", "run", "run_label"]


def algorithm_label(name: str) -> str:
    """The algorithm class's display `label` (e.g. "MAML-TRPO"); the registered name if it has none
    or is not registered in this process (a plugin's run plotted without the plugin)."""
    try:
        return getattr(ALGORITHMS.get(name), "label", None) or name
    except ConfigError:
        return name


def find_runs(paths) -> list[Path]:
    """Expand RUN arguments into run directories (those holding config.json)."""
    runs = []
    for p in map(Path, paths):
        if (p / "config.json").is_file():
            runs.append(p)
        elif p.is_dir() and any((c / "config.json").is_file() for c in p.iterdir()):
            runs.extend(sorted(c for c in p.iterdir() if (c / "config.json").is_file()))
        else:
            raise ConfigError(f"RUN={str(p)!r} is invalid: must be a run directory (with config.json) "
                              "or a directory of run directories")
    return runs


def _variant(train_cfg: dict, algo_cfg: dict) -> tuple[type | None, dict]:
    """(the algorithm class, or None if this process does not know it; its VARIANT settings' values)."""
    try:
        algo_cls = ALGORITHMS.get(train_cfg["algo"])
    except ConfigError:
        return None, {}
    return algo_cls, {n: algo_cfg[n] for n in algo_cls.VARIANT if n in algo_cfg}


def _non_default(train_cfg: dict, algo_cfg: dict, algo_cls, variant: dict) -> list[str]:
    """NAME=VALUE for every algorithm setting that differs from its default (ablations get their own
    label); algo_cls, variant: `_variant(train_cfg, algo_cfg)`.

    The defaults are what `bomrl train` would build for this env, algorithm, variant and preset
    (`build_algo_config`, so e.g. the paper's per-env λ counts as default; a run's preset is named
    as "preset NAME" first, and only the settings beyond it follow)."""
    preset = train_cfg.get("preset")
    if algo_cls is None:
        return []
    try:
        defaults = dataclasses.asdict(build_algo_config(
            TrainConfig(env=train_cfg["env"], algo=train_cfg["algo"], preset=preset), variant))
    except ConfigError:  # a preset this install does not know: no defaults to compare with
        return []
    for name in variant:   # already in the label
        defaults.pop(name)
    return ([f"preset {preset}"] if preset else []) + [
        f"{k}={algo_cfg[k]}" for k in sorted(algo_cfg)
        if k in defaults and algo_cfg[k] != defaults[k]
        and not (isinstance(defaults[k], tuple) and list(defaults[k]) == algo_cfg[k])]


def run_label(train_cfg: dict, algo_cfg: dict) -> str:
    """The algorithm's label, its variant (BO-MRL: d1), and the settings that differ from the defaults."""
    algo_cls, variant = _variant(train_cfg, algo_cfg)
    label = algorithm_label(train_cfg["algo"])
    if algo_cls is not None and algo_cls.VARIANT:
        label = f"{label} {algo_cls.variant_label(algo_cfg)}"
    changed = _non_default(train_cfg, algo_cfg, algo_cls, variant)
    return f"{label} ({', '.join(changed)})" if changed else label


def _decorate(ax, title: str, xlabel: str, ylabel: str) -> None:
    """Title, axis labels, grid and (if anything was drawn) a legend."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) > 4 or max((len(x) for x in labels), default=0) > 40:
        # many runs (e.g. ablations) or long labels: legend below the panel, clear of the curves
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    elif handles:
        ax.legend(fontsize=8)


def _smooth(y, w: int):
    if w <= 1 or len(y) < 2:
        return np.asarray(y)
    c = np.cumsum(np.insert(np.asarray(y, float), 0, 0.0))
    out = np.empty(len(y))
    for i in range(len(y)):   # trailing window, shorter at the start
        lo = max(0, i + 1 - w)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def _load_json(path: Path, keys: tuple) -> dict:
    """A JSON object with `keys`, or a one-line BomrlError naming the file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BomrlError(f"{path} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                         "re-create it (bomrl meta-test) or move the run aside") from None
    if not isinstance(data, dict) or not set(keys) <= set(data):
        raise BomrlError(f"{path} is incomplete (needs {', '.join(keys)}); re-create it or move the run aside")
    return data


def collect(runs: list[Path]):
    """{env: {label: [run info]}} with the metrics rows and meta-test results of every run.

    A meta-test of an earlier iteration than the run's last metrics row (a run resumed to more
    iterations and not yet meta-tested again) is stale: it is kept as info["stale_meta_test"] and
    left out of the tables and figures (info["meta_test"] is None), so one row never mixes
    meta-iterations of a run's past and present."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    for r in runs:
        saved = _load_json(r / "config.json", ("train",))
        if not isinstance(saved["train"], dict) or not {"env", "seed"} <= set(saved["train"]):
            raise BomrlError(f"{r / 'config.json'} is not a run's config (its 'train' table lacks env or seed)")
        train_cfg, algo_cfg = saved["train"], saved_algo_config(saved, saved["train"].get("algo", ""))
        mt_path = r / "meta_test.json"
        metrics = read_metrics(r / "metrics.csv")
        mt = _load_json(mt_path, ("task_returns", "returns", "stderr", "iteration")) if mt_path.is_file() else None
        stale = None
        if mt is not None and metrics and int(mt.get("iteration", 0)) < int(metrics[-1]["iteration"]):
            stale, mt = mt, None
        info = {"dir": r, "seed": train_cfg["seed"], "metrics": metrics, "meta_test": mt,
                "stale_meta_test": stale}
        groups[train_cfg["env"]][run_label(train_cfg, algo_cfg)].append(info)
    return groups


def _mean_sem(rows):
    """Mean and standard error over the first axis (0 error for one row)."""
    a = np.asarray(rows, float)
    sem = a.std(axis=0, ddof=1) / math.sqrt(a.shape[0]) if a.shape[0] > 1 else np.zeros(a.shape[1:])
    return a.mean(axis=0), sem


def _paired_tables(groups, envs, labels, reference):
    """Markdown lines and JSON of each env's paired differences against the reference method
    (`labels`: every method label of the runs)."""
    lines, out = [], {}
    if reference is not None and reference not in labels:
        raise ConfigError(f"--reference={reference!r} is invalid: allowed values are the method labels "
                          f"{', '.join(labels)}")
    for env in envs:
        ref = reference if reference in groups[env] else compare.best_label(groups[env])
        if ref is None:
            continue
        rows = compare.comparison_table(groups[env], ref)
        if not rows:
            continue
        out[env] = {"reference": ref, "rows": rows}
        lines += ["", f"**{env}**: method − {ref} on the same test tasks, after k adaptations: mean "
                  f"[95 % t-interval over the (seed, task) pairs] (pairs)", "",
                  "| method | k | difference | relative to the reference |", "| --- | --- | --- | --- |"]
        for r in rows:
            lines.append(f"| {r['label']} | {r['step']} | {r['mean']:+.1f} [{r['lo']:+.1f}, {r['hi']:+.1f}] "
                         f"({r['n']}) | {100 * r['relative']:+.0f} % |")
    return lines, out


def _runs_table(groups, envs) -> list[str]:
    """Markdown lines: every meta-tested run's return after 0..k adaptations, mean ± s.e. over its
    test tasks, with its meta-tested iteration and training wall time (last metrics row)."""
    rows = []
    k = max((len(i["meta_test"]["returns"]) for env in envs for infos in groups[env].values() for i in infos
             if i["meta_test"] is not None), default=0)
    for env in envs:
        for label, i in _runs_with_metrics(groups[env]):
            mt = i["meta_test"]
            if mt is None:
                continue
            cells = " | ".join([f"{m:.1f} ± {s:.1f}" for m, s in zip(mt["returns"], mt["stderr"])]
                               + ["–"] * (k - len(mt["returns"])))
            rows.append(f"| {env} | {label} | {i['seed']} | {int(mt['iteration'])} | {cells} | "
                        f"{i['metrics'][-1].get('wall_s', math.nan):,.0f} |")
    if not rows:
        return []
    return [f"| env | method | seed | iteration | {' | '.join(f'after {j}' for j in range(k))} | training wall s |",
            "|" + " --- |" * (k + 5), *rows]


def _pooled_table(labels_infos, reference: str) -> list[str]:
    """Markdown lines for one env: each method's return after k adaptations, mean ± s.e. over its
    pooled (seed, test task) returns, and its paired difference from `reference` on the same pairs,
    mean [95 % t-interval], after k ≥ 1."""
    steps = min(len(i["meta_test"]["returns"]) for infos in labels_infos.values() for i in infos
                if i["meta_test"] is not None)
    head = ["method", "seeds", *[f"after {k}" for k in range(steps)],
            *[f"− {reference} after {k}" for k in range(1, steps)]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for label, infos in sorted(labels_infos.items()):
        tested = [i for i in infos if i["meta_test"] is not None]
        if not tested:
            continue
        cells = []
        for k in range(steps):
            x = np.concatenate([np.asarray(i["meta_test"]["task_returns"][k], float) for i in tested])
            sem = x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else 0.0
            cells.append(f"{x.mean():.1f} ± {sem:.1f}")
        for k in range(1, steps):
            if label == reference:
                cells.append("—")
                continue
            a, b, _ = compare.paired_returns(tested, labels_infos[reference], k)
            d = compare.paired_difference(a, b) if a.size else None
            cells.append("–" if d is None else f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]")
        seeds = ", ".join(str(i["seed"]) for i in sorted(tested, key=lambda i: i["seed"]))
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + " |")
    return lines


def _write_tables(groups, envs, reference, out: Path) -> dict:
    """One file per table under out/tables/ (for docs to quote): runs.md (every meta-tested run),
    training.md (every run's learning curve in numbers) and pooled-ENV.md (each env's methods over their pooled pairs, against `reference` or the best
    BO-MRL variant after one adaptation)."""
    tables = out / "tables"
    written = {}
    runs = _runs_table(groups, envs)
    if runs:
        tables.mkdir(exist_ok=True)
        (tables / "runs.md").write_text("\n".join(runs) + "\n")
        written["runs"] = str(tables / "runs.md")
    learning = _learning_table(groups, envs)
    if learning:
        tables.mkdir(exist_ok=True)
        (tables / "training.md").write_text("\n".join(learning) + "\n")
        written["training"] = str(tables / "training.md")
    for env in envs:
        ref = reference if reference in groups[env] else compare.best_label(groups[env])
        if ref is None or not any(i["meta_test"] for infos in groups[env].values() for i in infos):
            continue
        tables.mkdir(exist_ok=True)
        path = tables / f"pooled-{env}.md"
        path.write_text(f"**{env}** (reference: {ref})\n\n" + "\n".join(_pooled_table(groups[env], ref)) + "\n")
        written[f"pooled-{env}"] = str(path)
    return written


TRAIN_WINDOW = 5   # iterations averaged in the in-training table


def _window_mean(metrics: list[dict], end: int, key: str) -> float:
    """Mean of `key` over the metrics rows with iteration in (end - TRAIN_WINDOW, end] (nan if none)."""
    vals = [r.get(key, math.nan) for r in metrics if end - TRAIN_WINDOW < r["iteration"] <= end]
    return float(np.mean(vals)) if vals else math.nan


def _training_table(groups, envs):
    """Markdown lines: every run's meta-batch returns during training (its own sampled batches, not the
    meta-test), averaged over TRAIN_WINDOW iterations ending at the env's common iteration (the last
    one every run of the env reached, so runs still training compare at one budget) and at the run's
    last iteration."""

    def cell(x):
        return "–" if math.isnan(x) else f"{x:.1f}"

    rows = []
    for env in envs:
        runs = _runs_with_metrics(groups[env])
        if not runs:
            continue
        common = min(i["metrics"][-1]["iteration"] for _, i in runs)
        for label, i in runs:
            last = i["metrics"][-1]["iteration"]
            cells = [cell(_window_mean(i["metrics"], it, k)) for it in (common, last)
                     for k in ("pre_return", "post_return")]
            rows.append(f"| {env} | {label} | {i['seed']} | {common} | {cells[0]} | {cells[1]} | {last} | "
                        f"{cells[2]} | {cells[3]} |")
    if not rows:
        return []
    return ["", f"Meta-batch returns during training (each run's own batches, not the meta-test): mean over "
            f"the {TRAIN_WINDOW} iterations ending at the env's common iteration (reached by all its runs) "
            "and at the run's last.", "",
            "| env | method | seed | common iteration | pre | post | last iteration | pre | post |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", *rows]


GAIN_WINDOW = 10   # iterations averaged for the adaptation gain of the learning table


def _learning_table(groups, envs) -> list[str]:
    """Markdown lines: every run's post-adaptation meta-batch return at iteration 1 and over its last
    TRAIN_WINDOW iterations, the rise between them, and the adaptation gain (post − pre) over its last
    GAIN_WINDOW iterations (its own sampled batches, not the meta-test)."""
    rows = []
    for env in envs:
        for label, i in _runs_with_metrics(groups[env]):
            m, last = i["metrics"], i["metrics"][-1]["iteration"]
            first, end = m[0].get("post_return", math.nan), _window_mean(m, last, "post_return")
            tail = [r for r in m if r["iteration"] > last - GAIN_WINDOW]
            gain = float(np.mean([r.get("post_return", math.nan) - r.get("pre_return", math.nan) for r in tail]))
            rows.append(f"| {env} | {label} | {i['seed']} | {int(last)} | {first:.1f} → {end:.1f} | {end - first:+.1f} "
                        f"| {gain:+.1f} |")
    if not rows:
        return []
    return [f"| env | method | seed | iterations | post-adaptation return: iteration 1 → mean of the last "
            f"{TRAIN_WINDOW} | rise | adaptation gain (post − pre), mean of the last {GAIN_WINDOW} |",
            "| --- | --- | --- | --- | --- | --- | --- |", *rows]


def _runs_with_metrics(labels_infos) -> list:
    """(label, run info) of an env's runs that logged metrics rows, by label then seed."""
    return [(label, i) for label, infos in sorted(labels_infos.items())
            for i in sorted(infos, key=lambda i: i["seed"]) if i["metrics"]]


def _wall_table(groups, envs):
    """Markdown lines: training wall time, iterations and env steps of every run (last metrics row)."""
    rows = []
    for env in envs:
        for label, i in _runs_with_metrics(groups[env]):
            last = i["metrics"][-1]
            rows.append(f"| {env} | {label} | {i['seed']} | {int(last['iteration'])} | "
                        f"{last.get('env_steps', math.nan):.3g} | {last.get('wall_s', math.nan):.0f} |")
    if not rows:
        return []
    return ["", "| env | method | seed | iterations | env steps | training wall s |", "| --- | --- | --- | --- | --- | --- |", *rows]


def _stat_figures(groups, envs, colors, out: Path, smooth: int) -> dict:
    """Per episode statistic of the families (Meta-World's success): NAME.png with the meta-test
    value after 0..k adaptations (top, mean ± s.e. over seeds) and the training curve of
    charts/post_NAME (bottom); NAME.md the meta-test table (± s.e. over seeds, or over test tasks
    for a single seed). {} when no run has statistics."""
    names = sorted({k for env in envs for infos in groups[env].values() for i in infos
                    for k in ((i["meta_test"] or {}).get("stats") or {})}
                   | {c[len("charts/post_"):] for env in envs for infos in groups[env].values() for i in infos
                      for c in (i["metrics"][-1] if i["metrics"] else {}) if c.startswith("charts/post_")
                      and c != "charts/post_return"})
    written = {}
    for name in names:
        fig = Figure(figsize=(4.5 * len(envs), 6.6))
        axes = fig.subplots(2, len(envs), squeeze=False)
        table = [f"| env | method | seeds | meta-tested at iteration | {name} after 0, 1, ... adaptations (± s.e.) |",
                 "| --- | --- | --- | --- | --- |"]
        for j, env in enumerate(envs):
            for label, infos in sorted(groups[env].items()):
                mts = [i["meta_test"] for i in infos if i["meta_test"] and name in (i["meta_test"].get("stats") or {})]
                if mts:
                    k = min(len(m["stats"][name]) for m in mts)
                    mean, sem = _mean_sem([m["stats"][name][:k] for m in mts])
                    if len(mts) == 1 and name in (mts[0].get("task_stats") or {}):   # one seed: s.e. over tasks
                        per = np.asarray(mts[0]["task_stats"][name], np.float64)[:k]
                        sem = per.std(axis=1, ddof=1) / np.sqrt(per.shape[1]) if per.shape[1] > 1 else 0 * per[:, 0]
                    axes[0][j].errorbar(np.arange(k), mean, yerr=sem, marker="o", capsize=3, label=label,
                                        color=colors[label])
                    axes[0][j].set_xticks(np.arange(k))
                    its = ", ".join(str(i) for i in sorted({int(m["iteration"]) for m in mts}))
                    cells = ", ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(mean, sem))
                    table.append(f"| {env} | {label} | {len(mts)} | {its} | {cells} |")
                curves = [i["metrics"] for i in infos if i["metrics"] and f"charts/post_{name}" in i["metrics"][-1]]
                if curves:
                    n = min(len(c) for c in curves)
                    x = np.asarray([row["iteration"] for row in curves[0][:n]])
                    mean, sem = _mean_sem([_smooth([row[f"charts/post_{name}"] for row in c[:n]], smooth)
                                           for c in curves])
                    axes[1][j].plot(x, mean, label=label, color=colors[label])
                    if len(curves) > 1:
                        axes[1][j].fill_between(x, mean - sem, mean + sem, color=colors[label], alpha=0.2)
            _decorate(axes[0][j], env, "adaptation steps", f"{name} (meta-test)")
            _decorate(axes[1][j], env, "meta-iteration", f"post-adaptation {name} (training)")
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
        (out / f"{name}.md").write_text("\n".join(table + _stat_differences(groups, envs, name)) + "\n")
        written[name] = str(out / f"{name}.png")
    return written


def _stat_differences(groups, envs, name: str) -> list[str]:
    """Markdown lines: per env, each method's statistic minus MAML-TRPO's on the same (seed, test
    task) pairs after 1..k adaptations, with the paired 95 % t-interval (bomrl.workflow.compare);
    [] where MAML-TRPO or a pairing is missing."""
    ref = algorithm_label("maml-trpo")

    def as_returns(infos):   # the statistic's per-task values in the place of the returns
        out = []
        for i in infos:
            m = i["meta_test"]
            if m and name in (m.get("task_stats") or {}):
                out.append({**i, "meta_test": {**m, "task_returns": m["task_stats"][name]}})
        return out

    lines = []
    for env in envs:
        base = as_returns(groups[env].get(ref, []))
        if not base:
            continue
        rows = []
        for label, infos in sorted(groups[env].items()):
            other = as_returns(infos)
            if label == ref or not other:
                continue
            k = min(len(i["meta_test"]["task_returns"]) for i in other + base)
            for step in range(1, k):
                try:
                    a, b, _ = compare.paired_returns(other, base, step)
                except ConfigError:
                    break
                if len(a):
                    d = compare.paired_difference(a, b)
                    ci = f" [{d['lo']:+.3f}, {d['hi']:+.3f}]" if np.isfinite(d["lo"]) else ""
                    rows.append(f"| {env} | {label} | {step} | {d['mean']:+.3f}{ci} ({len(a)}) |")
        if rows:
            lines += ["", f"**{env}**: method − {ref} {name} on the same test tasks, after k adaptations: mean "
                      "[95 % t-interval over the (seed, task) pairs] (pairs)", "",
                      f"| env | method | k | {name} − {ref} |", "| --- | --- | --- | --- |", *rows]
    return lines


def run(config: PlotConfig) -> dict:
    check(len(config.runs) >= 1, "RUN", config.runs, "at least one run directory")
    check(config.smooth >= 1, "--smooth", config.smooth, "an integer >= 1")
    runs = find_runs(config.runs)
    first = Path(config.runs[0])
    out = Path(config.out) if config.out is not None else (
        (first.parent if (first / "config.json").is_file() else first) / "plots")
    out = ensure_out_dir(out)
    groups = collect(runs)

    envs = sorted(groups)
    labels = sorted({label for env in envs for label in groups[env]})
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}   # same colour in every panel
    written = {}

    # Fig. 2 style: return vs adaptation steps
    fig = Figure(figsize=(4.5 * len(envs), 3.6))   # no pyplot: no global figure state, no GUI backend
    axes = fig.subplots(1, len(envs), squeeze=False)
    table = ["| env | method | seeds | tasks | meta-tested at iteration | return after 0, 1, ... adaptations (± s.e.) |",
             "| --- | --- | --- | --- | --- | --- |"]
    any_mt = False
    for ax, env in zip(axes[0], envs):
        for label, infos in sorted(groups[env].items()):
            mts = [i["meta_test"] for i in infos if i["meta_test"] is not None]
            if not mts:
                continue
            any_mt = True
            k = min(len(m["returns"]) for m in mts)
            mean, sem = _mean_sem([m["returns"][:k] for m in mts])
            if len(mts) == 1:
                sem = np.asarray(mts[0]["stderr"][:k])
            dodge = 0.04 * (labels.index(label) - (len(labels) - 1) / 2)   # keep error bars apart
            ax.errorbar(np.arange(k) + dodge, mean, yerr=sem, marker="o", capsize=3, label=label,
                        color=colors[label])
            ax.set_xticks(np.arange(k))
            cells = ", ".join(f"{m:.1f} ± {s:.1f}" for m, s in zip(mean, sem))
            its = ", ".join(str(i) for i in sorted({int(m["iteration"]) for m in mts}))
            table.append(f"| {env} | {label} | {len(mts)} | {mts[0]['tasks']} | {its} | {cells} |")
        if not ax.has_data():   # an env still training: say so instead of an empty 0..1 frame
            ax.text(0.5, 0.5, "no meta-test yet", transform=ax.transAxes, ha="center", va="center")
            ax.set_xticks([]), ax.set_yticks([])
        _decorate(ax, env, "adaptation steps", "average return")
    if any_mt:
        fig.tight_layout()
        fig.savefig(out / "fig2_adaptation.png", dpi=120, bbox_inches="tight")
        written["fig2"] = str(out / "fig2_adaptation.png")
        paired, paired_json = _paired_tables(groups, envs, labels, config.reference)
        (out / "comparison.json").write_text(json.dumps(paired_json, indent=1) + "\n")
        written.update(_write_tables(groups, envs, config.reference, out))
    else:
        paired, table = [], []
    stale, untested = [], []   # runs in no table: meta-test older than the training, or none yet
    for i in (i for env in envs for infos in groups[env].values() for i in infos if i["meta_test"] is None):
        trained = f"trained to {int(i['metrics'][-1]['iteration'])}" if i["metrics"] else "no metrics"
        if i["stale_meta_test"] is not None:
            stale.append(f"- {i['dir'].name}: meta-tested at iteration {int(i['stale_meta_test']['iteration'])}, {trained}")
        elif i["metrics"]:
            untested.append(f"- {i['dir'].name}: no meta-test yet, {trained}")
    left_out = []
    if stale:
        left_out += ["", "Left out (meta-test older than the run's training; meta-test it again):", *stale]
    if untested:
        left_out += ["", "Still training (no meta-test, so in no table):", *untested]
    if any_mt or left_out:
        (out / "summary.md").write_text("\n".join(table + left_out + paired + _training_table(groups, envs)
                                                   + _wall_table(groups, envs)) + "\n")
        written["summary"] = str(out / "summary.md")

    # Fig. 5 style: meta-training curves
    fig = Figure(figsize=(4.5 * len(envs), 3.6))   # no pyplot: no global figure state, no GUI backend
    axes = fig.subplots(1, len(envs), squeeze=False)
    any_curve = False
    for ax, env in zip(axes[0], envs):
        for label, infos in sorted(groups[env].items()):
            curves = [i["metrics"] for i in infos if i["metrics"]]
            if not curves:
                continue
            any_curve = True
            n = min(len(c) for c in curves)
            x = np.asarray([row["iteration"] for row in curves[0][:n]])
            mean, sem = _mean_sem([_smooth([row["post_return"] for row in c[:n]], config.smooth) for c in curves])
            ax.plot(x, mean, label=label, color=colors[label])
            if len(curves) > 1:
                ax.fill_between(x, mean - sem, mean + sem, color=colors[label], alpha=0.2)
        _decorate(ax, env, "meta-iteration", "post-adaptation return")
    if any_curve:
        fig.tight_layout()
        fig.savefig(out / "fig5_training.png", dpi=120, bbox_inches="tight")
        written["fig5"] = str(out / "fig5_training.png")

    written.update(_stat_figures(groups, envs, colors, out, config.smooth))
    if not written:
        raise ConfigError("nothing to plot: the runs have no metrics.csv rows and no meta_test.json")
    print(f"plot: {len(runs)} runs -> " + ", ".join(written.values()), file=sys.stderr)
    return written
