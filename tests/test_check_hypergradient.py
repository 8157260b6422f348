"""`bomrl check hypergradient` at the PRODUCTION defaults (not at an exact optimum): the
meta-gradient BO-MRL trains with must equal central finite differences of what its adaptation
returns; the adaptation's fresh-data gains are reported with standard errors."""

import json

import pytest

from bomrl.checks.config import CheckHypergradientConfig
from bomrl.checks.hypergradient import run
from bomrl.cli import main

SMALL = dict(env="nav2d", tasks=2, directions=3, episodes=5, horizon=30)


PAPER = ("inner_solver=adam", "inner_steps=50", "inner_lr=0.01", "hypergradient=practical")


@pytest.mark.parametrize("settings", [
    (),                                                                 # the defaults (unrolled, 10 GD steps)
    PAPER[:3] + ("hypergradient=unrolled",),                            # preset "paper-unrolled"
    ("distance=euclid", "lam=5", "inner_solver=sgd", "inner_lr=0.05", "inner_steps=50",
     "hypergradient=practical"),                                        # preset "convex-d3" (implicit)
])
def test_hypergradient_is_the_derivative_of_the_adaptation(settings, capsys):
    out = run(CheckHypergradientConfig(**SMALL, set=settings))
    capsys.readouterr()
    assert out["fd_disagreement"] < 0.05                 # the two ε agree: FD is trustworthy here
    # (the paper's implicit mode measures cosine_min 0.2, rel_error_median 0.7 on this problem)
    assert out["cosine_min"] >= 0.995 and out["rel_error_median"] < 0.05, out
    for k in ("fresh_surrogate_gain", "fresh_surrogate_gain_se", "fresh_return_gain", "maml_fresh_surrogate_gain",
              "inner_grad_ratio", "insample_surrogate_gain"):
        assert isinstance(out[k], float)


def test_paper_settings_are_measured_not_trusted(capsys):
    # the paper's implicit eq. (8) after 50 Adam steps (preset "paper"): the check reports the residuals
    out = run(CheckHypergradientConfig(**SMALL, set=PAPER))
    capsys.readouterr()
    assert out["hypergradient"] == "practical" and 0 <= out["hyper_rel_residual"]
    assert -1.0 <= out["cosine_min"] <= 1.0


@pytest.mark.parametrize("argv, fragment", [
    (["--tasks", "1"], "--tasks"), (["--directions", "0"], "--directions"), (["--eps", "2"], "--eps"),
    (["--seed", "-1"], "--seed"), (["--set", "nope=1"], "nope"), (["--lam", "-1"], "--lam"),
    (["--preset", "nope"], "--preset")])
def test_bad_values_are_one_line(argv, fragment, capsys):
    assert main(["check", "hypergradient", "--env", "nav2d", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and fragment in err


def test_run_must_be_bomrl(tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert main(["train", "--env", "nav2d", "--algo", "maml-trpo", "--tasks", "2", "--episodes", "1", "--horizon", "5",
                 "--iterations", "1", "--workers", "1", "--no-progress", "--no-tensorboard", "--out", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["check", "hypergradient", "--run", str(run_dir)]) == 2
    assert "--run" in capsys.readouterr().err


def test_check_from_a_run_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "b"
    assert main(["train", "--env", "nav2d", "--algo", "bomrl", "--tasks", "2", "--episodes", "2", "--horizon", "10",
                 "--iterations", "1", "--workers", "1", "--no-progress", "--no-tensorboard", "--out", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["check", "hypergradient", "--run", str(run_dir), "--tasks", "2", "--directions", "2",
                 "--episodes", "3"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["source"] == "checkpoint of iteration 1" and out["cosine_min"] >= 0.995
    # a preset replaces the run's settings at its checkpoint, --set applies after it
    assert main(["check", "hypergradient", "--run", str(run_dir), "--tasks", "2", "--directions", "2",
                 "--episodes", "3", "--preset", "convex-d3", "--set", "lam=2"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["distance"], out["lam"], out["inner_solver"], out["inner_steps"]) == ("euclid", 2.0, "sgd", 50)


def test_a_preset_is_its_settings_and_out_holds_the_printed_object(tmp_path, capsys):
    """--preset convex-d3 measures exactly what its settings given one by one measure; --out writes
    the object the check prints."""
    out_file = tmp_path / "check.json"
    assert main(["check", "hypergradient", "--env", "nav2d", "--tasks", "2", "--directions", "2", "--episodes", "3",
                 "--horizon", "10", "--preset", "convex-d3", "--out", str(out_file)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    stored = json.loads(out_file.read_text())
    printed.pop("load_avg_1min"), stored.pop("load_avg_1min")
    assert stored == printed and stored["distance"] == "euclid" and stored["inner_steps"] == 50
    explicit = run(CheckHypergradientConfig(env="nav2d", tasks=2, directions=2, episodes=3, horizon=10, set=(
        "distance=euclid", "lam=5", "inner_solver=sgd", "inner_lr=0.05", "inner_steps=50", "hypergradient=practical",
        "line_search=linear")))
    capsys.readouterr()
    assert explicit["fresh_surrogate_gain"] == stored["fresh_surrogate_gain"]
    assert explicit["cosine_min"] == stored["cosine_min"]
