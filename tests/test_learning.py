"""Learning tests: every algorithm (RL² included) must clearly improve on nav2d (the JAX-native
lax.scan rollout) within a few meta-iterations (seconds of CPU), and `bomrl bench learning` prints exactly the curve `bomrl train` logs."""

import csv
import json

import pytest

from bomrl.bench.config import BenchLearningConfig
from bomrl.bench.learning import run
from bomrl.cli import main

BUDGET = dict(env="nav2d", tasks=10, episodes=10, horizon=50, iterations=8, seeds=(0,), workers=1)

# measured (float32 CLI, seeds 0 and 1): post − first pre after 8 iterations 12.6..16.4 for the MAML
# family, 8.2..11.9 for BO-MRL; an untrained policy scores −33 and the oracle about −4.
# RL² (5 trials of 2 episodes per task; post = the trials' 2nd episode, pre = their 1st; float64,
# 2026-12-02, the JAX-native nav2d): 27.6 and 27.7 for seeds 0 and 1 (first pre −53.8 / −57.6).
THRESHOLD = {"maml-trpo": 8.0, "promp": 8.0, "emaml": 8.0, "bomrl": 5.0, "rl2": 15.0}


@pytest.mark.parametrize("algo", sorted(THRESHOLD))
def test_learns_nav2d(algo, capsys):
    lines = run(BenchLearningConfig(algo=algo, **BUDGET))
    capsys.readouterr()
    curve = [ln for ln in lines if not ln.get("summary")]
    assert len(curve) == BUDGET["iterations"]
    start = curve[0]["pre_return"]
    end = sum(ln["post_return"] for ln in curve[-3:]) / 3
    assert end - start >= THRESHOLD[algo], (algo, start, end)


def test_bench_learning_curve_equals_train_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--env", "nav2d", "--algo", "maml-trpo", "--tasks", "3", "--episodes", "2",
                 "--horizon", "20", "--iterations", "2", "--workers", "1", "--seed", "5", "--out", str(out),
                 "--no-progress", "--no-tensorboard"]) == 0
    capsys.readouterr()
    assert main(["bench", "learning", "--env", "nav2d", "--algo", "maml-trpo", "--tasks", "3", "--episodes", "2",
                 "--horizon", "20", "--iterations", "2", "--workers", "1", "--seeds", "5"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for ln, row in zip(lines[:2], rows):
        assert ln["pre_return"] == round(float(row["pre_return"]), 4)
        assert ln["post_return"] == round(float(row["post_return"]), 4)
    posts = [float(r["post_return"]) for r in rows]
    assert lines[-1]["summary"] and lines[-1]["rise"] == pytest.approx(sum(posts) / 2 - posts[0], abs=1e-3)


@pytest.mark.parametrize("argv, fragment", [
    (["--seeds", "-1"], "--seeds"), (["--window", "0"], "--window"), (["--iterations", "0"], "--iterations"),
    (["--action-scale", "-3"], "--action-scale"), (["--env", "nope"], "--env"),
    (["--out", "/nonexistent-dir/x.jsonl"], "--out")])
def test_bench_learning_bad_values(argv, fragment, capsys):
    assert main(["bench", "learning", "--env", "nav2d", *argv]) == 2 if "--env" not in argv else \
        main(["bench", "learning", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and fragment in err
