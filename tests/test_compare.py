"""Paired comparisons of meta-test results (bomrl.workflow.compare): the interval against scipy's
paired t-test, pairing by (seed, test task), refusal of unpaired test sets, and the verdict rules
of the paper's three claims on synthetic results with known answers."""

import math

import numpy as np
import pytest
from scipy import stats

from bomrl.errors import ConfigError
from bomrl.workflow import compare


def test_paired_difference_matches_scipy_paired_t_test():
    rng = np.random.default_rng(0)
    b = rng.normal(size=37)
    a = b + 0.3 + 0.5 * rng.normal(size=37)
    d = compare.paired_difference(a, b)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert d["n"] == 37
    assert d["mean"] == pytest.approx(np.mean(a - b), rel=1e-12)
    assert (d["lo"], d["hi"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert d["relative"] == pytest.approx(np.mean(a - b) / abs(np.mean(b)), rel=1e-12)


def test_paired_difference_of_a_constant_shift_has_no_spread():
    b = np.linspace(-5, 5, 11)
    d = compare.paired_difference(b + 2.0, b)
    assert d["mean"] == pytest.approx(2.0) and d["sem"] == pytest.approx(0.0, abs=1e-12)
    assert d["lo"] == pytest.approx(2.0) and d["hi"] == pytest.approx(2.0)
    one = compare.paired_difference([1.0], [0.5])
    assert one["mean"] == 0.5 and math.isnan(one["lo"])
    with pytest.raises(ValueError):
        compare.paired_difference([1.0, 2.0], [1.0])


def _run(seed, task_returns, mt_seed=1000, env="halfcheetah-dir"):
    tr = np.asarray(task_returns, float)
    return {"seed": seed, "meta_test": {"seed": mt_seed, "tasks": tr.shape[1], "env": env,
                                        "run_dir": f"run-s{seed}", "task_returns": tr.tolist()}}


def test_pairs_are_by_seed_and_task_and_mismatched_test_sets_are_refused():
    a = [_run(0, [[1, 2, 3]]), _run(1, [[4, 5, 6]]), _run(2, [[9, 9, 9]])]
    b = [_run(1, [[0, 0, 1]]), _run(0, [[1, 1, 1]])]
    x, y, seeds = compare.paired_returns(a, b, 0)
    assert seeds == [0, 1]                                   # seed 2 has no partner
    np.testing.assert_array_equal(x, [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(y, [1, 1, 1, 0, 0, 1])
    assert compare.paired_returns(a, b, 1)[0].size == 0      # no second row: nothing to pair
    with pytest.raises(ConfigError, match="different test tasks"):
        compare.paired_returns([_run(0, [[1, 2]], mt_seed=5)], [_run(0, [[1, 2]])], 0)


def _method(level_after, n=40, seeds=(0, 1), noise=1.0, seed=0):
    """Runs of a method whose return after k adaptations is level_after[k] (+ noise per task)."""
    rng = np.random.default_rng(seed)
    runs = []
    for s in seeds:
        base = np.asarray(level_after, float)[:, None] + noise * rng.normal(size=(1, n))  # task effect
        runs.append(_run(s, base + 0.1 * noise * rng.normal(size=(len(level_after), n))))
    return runs


def test_claims_reproduced_when_the_synthetic_results_say_so():
    groups = {"halfcheetah-dir": {
        "BO-MRL d1": _method([0, 125, 138, 139], seed=1),          # +25 % over the best baseline, +10 % step 2
        "BO-MRL d2": _method([0, 110, 112, 113], seed=2),
        "MAML-TRPO": _method([0, 100, 101, 101], seed=3),
        "ProMP": _method([0, 90, 90, 91], seed=4),
        "E-MAML": _method([0, 95, 96, 96], seed=5)}}
    v = compare.locomotion_claims(groups)
    assert v["beats"]["verdict"] == "reproduced"
    assert v["beats"]["envs"][0]["best"] == "BO-MRL d1"
    assert v["direction_gain"]["verdict"] == "reproduced"
    g = v["direction_gain"]["envs"][0]
    assert g["baseline"] == "MAML-TRPO" and g["relative"] == pytest.approx(0.25, abs=0.02)
    assert v["second_step"]["verdict"] == "reproduced"


def test_claims_not_reproduced_or_not_testable():
    groups = {"halfcheetah-dir": {
        "BO-MRL d1": _method([0, 100, 101, 101], seed=1),          # ties MAML-TRPO
        "MAML-TRPO": _method([0, 100, 101, 101], seed=3),
        "ProMP": _method([0, 90, 90, 91], seed=4),
        "E-MAML": _method([0, 95, 96, 96], seed=5)},
        "halfcheetah-vel": {"BO-MRL d1": _method([-80, -40, -39, -39], seed=6)}}   # no baselines
    v = compare.locomotion_claims(groups)
    assert v["beats"]["verdict"] == "not reproduced"
    assert [e["env"] for e in v["beats"]["envs"]] == ["halfcheetah-dir"]
    assert v["direction_gain"]["verdict"] == "not reproduced"
    assert v["second_step"]["verdict"] == "not reproduced"
    assert compare.locomotion_claims({})["beats"]["verdict"] == "not testable here"


def test_an_env_in_progress_enters_no_claim():
    done = {"BO-MRL d1": _method([0, 125, 138, 139], seed=1), "MAML-TRPO": _method([0, 100, 101, 101], seed=3),
            "ProMP": _method([0, 90, 90, 91], seed=4), "E-MAML": _method([0, 95, 96, 96], seed=5)}
    training = {**done, "E-MAML": done["E-MAML"] + [{"seed": 2, "meta_test": None}]}
    one_seed = {**done, "BO-MRL d1": done["BO-MRL d1"][:1]}
    v = compare.locomotion_claims({"halfcheetah-dir": done})
    assert v["second_step"]["verdict"] == "reproduced" and v["in_progress"] == []
    for groups, reason in ((training, "E-MAML seed 2 not meta-tested"), (one_seed, "seeds differ")):
        v = compare.locomotion_claims({"halfcheetah-dir": groups})
        assert all(v[c]["verdict"] == "not testable here" for c in ("beats", "direction_gain", "second_step"))
        assert v["in_progress"][0]["env"] == "halfcheetah-dir" and reason in " ".join(v["in_progress"][0]["why"])


def test_training_table_compares_runs_at_their_common_iteration():
    """plot's in-training table: windows of TRAIN_WINDOW iterations ending at the env's common
    iteration (the shortest run's last) and at each run's last, by hand on synthetic metrics."""
    from bomrl.workflow import plot

    def rows(n, pre=True):
        return [{"iteration": it, "post_return": float(it), **({"pre_return": -float(it)} if pre else {})}
                for it in range(1, n + 1)]

    groups = {"env-a": {"A": [{"seed": 0, "metrics": rows(12)}, {"seed": 1, "metrics": rows(7, pre=False)}],
                        "B": [{"seed": 0, "metrics": []}]}}
    lines = plot._training_table(groups, ["env-a"])
    assert plot.TRAIN_WINDOW == 5
    # common iteration 7: window 3..7, mean 5; run seed 0's last 12: window 8..12, mean 10
    assert "| env-a | A | 0 | 7 | -5.0 | 5.0 | 12 | -10.0 | 10.0 |" in lines
    assert "| env-a | A | 1 | 7 | – | 5.0 | 7 | – | 5.0 |" in lines      # no pre_return logged
    assert not any("| B |" in line for line in lines)                      # no metrics: no row
    assert plot._training_table({"env-a": {"B": [{"seed": 0, "metrics": []}]}}, ["env-a"]) == []


def test_wall_table_reports_each_runs_last_metrics_row():
    """plot's wall-time table: iterations, env steps and wall seconds from each run's last row;
    runs without metrics give no row, and no rows give no table (not a bare header)."""
    from bomrl.workflow import plot

    metrics = [{"iteration": 1, "env_steps": 8e4, "wall_s": 10.0}, {"iteration": 2, "env_steps": 1.6e5, "wall_s": 21.4}]
    groups = {"env-a": {"A": [{"seed": 1, "metrics": metrics}, {"seed": 0, "metrics": metrics[:1]}],
                        "B": [{"seed": 0, "metrics": []}]}}
    lines = plot._wall_table(groups, ["env-a"])
    assert lines[-2:] == ["| env-a | A | 0 | 1 | 8e+04 | 10 |", "| env-a | A | 1 | 2 | 1.6e+05 | 21 |"]
    assert not any("| B |" in line for line in lines)
    assert plot._wall_table({"env-a": {"B": [{"seed": 0, "metrics": []}]}}, ["env-a"]) == []


def test_an_env_without_every_baseline_is_named_not_silently_dropped():
    """ant-dir runs without E-MAML: claim 1 lists it as excluded, claims 2 and 3 use the baselines
    measured there and say which one is missing, in the JSON and in claims.md's text."""
    import runpy
    from pathlib import Path

    groups = {"ant-dir": {"BO-MRL d1": _method([0, 125, 138, 139], seed=1),
                          "MAML-TRPO": _method([0, 100, 101, 101], seed=3),
                          "ProMP": _method([0, 90, 90, 91], seed=4)}}
    v = compare.locomotion_claims(groups)
    assert v["beats"]["verdict"] == "not testable here" and v["beats"]["envs"] == []
    assert v["beats"]["excluded"] == [{"env": "ant-dir", "missing": ["E-MAML"]}]
    assert v["direction_gain"]["envs"][0]["missing"] == ["E-MAML"]
    assert v["direction_gain"]["envs"][0]["baseline"] == "MAML-TRPO"
    assert set(v["second_step"]["envs"][0]["baselines"]) == {"MAML-TRPO", "ProMP"}
    script = Path(__file__).resolve().parents[1] / "scripts" / "locomotion_claims.py"
    text = runpy.run_path(str(script))["report"](v)
    assert "ant-dir: not in this claim, which needs all three baselines (E-MAML not measured here)" in text
    assert text.count("(E-MAML not measured here)") == 3
