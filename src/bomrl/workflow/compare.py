"""Paired comparisons of meta-test results, and the verdict on the paper's locomotion claims.

Every `bomrl meta-test` of a run writes `task_returns` [adaptations + 1, T]: the return of each of
the T test tasks after 0, 1, ... adaptations. Two runs of one env with the same training seed and
the same meta-test seed and task count were tested on the SAME tasks, so their returns pair task
by task; pairs from several seeds are pooled. The interval of a paired difference is Student's t
over the pooled (seed, task) pairs (tasks within a seed are treated as independent draws; with
two seeds the between-seed variation enters only through the pooled spread — said wherever the
numbers are shown).

Inputs here are the plain dicts of `bomrl.workflow.plot.collect`: per run {"seed": training seed,
"meta_test": the meta_test.json content or None, ...}.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

from bomrl.errors import ConfigError

LEVEL = 0.95


def paired_difference(a, b, level: float = LEVEL) -> dict:
    """a, b [n]: two methods' returns on the same n pairs. The mean of a − b, its standard error
    and the two-sided t-interval at `level` (n − 1 degrees of freedom); the relative difference
    mean(a − b) / |mean(b)|. One pair: no interval (lo = hi = nan)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_difference needs two equal-length non-empty vectors, got {a.shape} and {b.shape}")
    d = a - b
    n = d.size
    mean = float(d.mean())
    if n > 1:
        sem = float(d.std(ddof=1) / math.sqrt(n))
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sem
    else:
        sem = half = math.nan
    base = float(b.mean())
    rel = mean / abs(base) if base != 0 else math.nan
    return {"mean": mean, "sem": sem, "lo": mean - half, "hi": mean + half, "n": n, "level": level,
            "relative": rel, "mean_a": float(a.mean()), "mean_b": base}


def _by_seed(infos) -> dict:
    """{training seed: meta_test dict} of the runs that have a meta-test."""
    return {i["seed"]: i["meta_test"] for i in infos if i.get("meta_test") is not None}


def paired_returns(infos_a, infos_b, step: int):
    """The returns after `step` adaptations of two methods on their common (seed, test task)
    pairs: (a [n], b [n], seeds). Seeds whose meta-tests used different task sets (meta-test seed
    or task count differ) are refused: their numbers do not pair."""
    ma, mb = _by_seed(infos_a), _by_seed(infos_b)
    seeds = sorted(set(ma) & set(mb))
    xs, ys = [], []
    for s in seeds:
        ta, tb = ma[s], mb[s]
        if (ta.get("seed"), ta.get("tasks"), ta.get("env")) != (tb.get("seed"), tb.get("tasks"), tb.get("env")):
            raise ConfigError(f"seed {s}: the meta-tests of {ta.get('run_dir')} and {tb.get('run_dir')} used "
                              "different test tasks (meta-test seed, task count or env differ); re-run "
                              "`bomrl meta-test` with the same --seed and --tasks")
        ra, rb = np.asarray(ta["task_returns"], np.float64), np.asarray(tb["task_returns"], np.float64)
        if step >= min(len(ra), len(rb)):
            return np.zeros(0), np.zeros(0), []
        xs.append(ra[step])
        ys.append(rb[step])
    if not xs:
        return np.zeros(0), np.zeros(0), []
    return np.concatenate(xs), np.concatenate(ys), seeds


def _task_returns(infos, step: int) -> list:
    """Each seed's meta-test `task_returns` [adaptations + 1, T] that reaches `step` adaptations."""
    rows = [np.asarray(m["task_returns"], np.float64) for m in _by_seed(infos).values()]
    return [r for r in rows if len(r) > step]


def step_gain(infos, step: int, level: float = LEVEL):
    """What adaptation `step` adds for one method: paired difference of the returns after `step`
    and after `step − 1` adaptations over its (seed, task) pairs; None if not measured."""
    rows = _task_returns(infos, step)
    if not rows:
        return None
    after = np.concatenate([r[step] for r in rows])
    before = np.concatenate([r[step - 1] for r in rows])
    return paired_difference(after, before, level)


def mean_after(infos, step: int) -> float:
    """Mean return after `step` adaptations over all (seed, task) pairs of a method (nan if none)."""
    rows = _task_returns(infos, step)
    return float(np.concatenate([r[step] for r in rows]).mean()) if rows else math.nan


def best_label(labels_infos: dict, prefix: str = "BO-MRL", step: int = 1):
    """The label starting with `prefix` whose mean return after `step` adaptations is highest
    (None if there is none with a meta-test)."""
    scored = [(mean_after(infos, step), label) for label, infos in labels_infos.items() if label.startswith(prefix)]
    scored = [(m, label) for m, label in scored if not math.isnan(m)]
    return max(scored)[1] if scored else None


def comparison_table(labels_infos: dict, reference: str, level: float = LEVEL) -> list[dict]:
    """Paired difference of every other method minus `reference` after each adaptation count both
    measured: rows {"label", "step", **paired_difference}."""
    rows = []
    ref = labels_infos[reference]
    for label, infos in sorted(labels_infos.items()):
        if label == reference:
            continue
        for step in itertools.count():
            a, b, seeds = paired_returns(infos, ref, step)
            if a.size == 0:
                break
            rows.append({"label": label, "step": step, "seeds": seeds, **paired_difference(a, b, level)})
    return rows


# ---- the paper's three locomotion claims (Section 6.2; docs/REPRODUCTION.md) ------------------------

BASELINES = ("MAML-TRPO", "ProMP", "E-MAML")
DIRECTION_ENVS = ("halfcheetah-dir", "ant-dir")
CLAIMED_GAIN = 0.25         # "about 25 %" on the direction tasks
CLAIMED_SECOND = 0.10       # the second adaptation step adds "about 10 %" for BO-MRL ...
NEGLIGIBLE = 0.05           # ... "where the baselines add about 0 %": below 5 % counts as about 0


def locomotion_claims(groups: dict, level: float = LEVEL) -> dict:
    """The verdict on each claim, from {env: {label: [run info]}} (`plot.collect`).

    Rules, fixed before any result (docs/REPRODUCTION.md "Verdict rules"):
    1. beats: in every env with BO-MRL and all three baselines measured, the best BO-MRL variant
       (highest mean after one adaptation) minus each baseline after ONE adaptation has a
       `level` interval above 0. Reproduced if so in every such env; not reproduced if an
       interval lies below 0 or includes 0 anywhere.
    2. +25 %: on each direction env measured, the relative gain of the best BO-MRL over the best
       baseline after one adaptation is between half and twice the claim (12.5 %-50 %) with the
       difference's interval above 0.
    3. second step: BO-MRL's best variant gains from its second adaptation (interval above 0, and
       at least half the claim, 5 %), while every baseline's second step adds less than 5 %
       (relative to its return after one).
    An env still in progress (`in_progress`) enters no claim: it is listed under
    "in_progress" with why, so a report made half-way never reads as a verdict. An env with only
    some baselines enters claims 2 and 3 over those measured (each entry names the `missing`) and
    is listed under claim 1's "excluded".
    A claim with no env where it can be measured is "not testable here"."""
    out = {"beats": [], "direction_gain": [], "second_step": []}
    waiting, excluded = [], []
    for env, labels_infos in sorted(groups.items()):
        why = in_progress(labels_infos)
        if why:
            waiting.append({"env": env, "why": why})
            continue
        best = best_label(labels_infos)
        bases = [b for b in BASELINES if b in labels_infos and not math.isnan(mean_after(labels_infos[b], 1))]
        if best is None or not bases:
            continue
        ref = labels_infos[best]
        diffs = {}
        for b in bases:
            x, y, seeds = paired_returns(ref, labels_infos[b], 1)
            if x.size:
                diffs[b] = {**paired_difference(x, y, level), "seeds": seeds}
        missing = [b for b in BASELINES if b not in diffs]     # not measured (or no pair with BO-MRL)
        if not missing:
            ok = all(d["lo"] > 0 for d in diffs.values())
            out["beats"].append({"env": env, "best": best, "diffs": diffs, "holds": ok})
        else:
            excluded.append({"env": env, "missing": missing})
        if env in DIRECTION_ENVS and diffs:
            top = max(diffs, key=lambda b: diffs[b]["mean_b"])       # the best baseline
            d = diffs[top]
            ok = d["lo"] > 0 and CLAIMED_GAIN / 2 <= d["relative"] <= 2 * CLAIMED_GAIN
            out["direction_gain"].append({"env": env, "best": best, "baseline": top, **d, "holds": ok,
                                          "missing": missing})
        g_best = step_gain(ref, 2, level)
        g_bases = {b: step_gain(labels_infos[b], 2, level) for b in bases}
        if g_best is not None and all(g is not None for g in g_bases.values()):
            ok_best = g_best["lo"] > 0 and g_best["relative"] >= CLAIMED_SECOND / 2
            ok_bases = all(g["relative"] < NEGLIGIBLE for g in g_bases.values())
            out["second_step"].append({"env": env, "best": best, "bomrl": g_best, "baselines": g_bases,
                                       "holds": ok_best and ok_bases, "missing": missing})

    def verdict(items):
        if not items:
            return "not testable here"
        return "reproduced" if all(i["holds"] for i in items) else "not reproduced"

    result = {name: {"verdict": verdict(items), "envs": items} for name, items in out.items()}
    result["beats"]["excluded"] = excluded
    return {**result, "in_progress": waiting}


def in_progress(labels_infos: dict) -> list[str]:
    """Why an env's results are not yet final ([] if they are): a run without a current meta-test
    (training, or meta-tested before its last iterations), or methods measured on different seed
    sets (a verdict would compare one seed against two)."""
    why = []
    seed_sets = {}
    for label, infos in sorted(labels_infos.items()):
        for i in sorted(infos, key=lambda i: i["seed"]):
            if i.get("meta_test") is None:
                why.append(f"{label} seed {i['seed']} not meta-tested at its last iteration")
        seed_sets[label] = tuple(sorted(_by_seed(infos)))
    if len(set(seed_sets.values())) > 1:
        why.append("seeds differ: " + ", ".join(f"{label} {list(s)}" for label, s in seed_sets.items()))
    return why
