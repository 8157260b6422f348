"""`bomrl bench iteration` end to end on cheap families: one JSON line, the policy `bomrl train` builds."""

import json

import pytest

pytestmark = pytest.mark.usefixtures("shared_compilation_cache")


@pytest.mark.parametrize("env, algo", [("CartPole-v1", "maml-trpo"),   # discrete: a categorical policy
                                       ("nav2d", "rl2")])              # the algorithm's own (GRU) policy
def test_bench_iteration_prints_one_json_line(env, algo, capsys):
    from bomrl.cli import main

    rc = main(["bench", "iteration", "--env", env, "--algo", algo, "--tasks", "2", "--episodes", "2",
               "--horizon", "10", "--iterations", "1", "--warmup", "0"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1
    res = json.loads(out[0])
    assert (res["algo"], res["env"], res["iterations"]) == (algo, env, 1)
    assert res["seconds_per_iteration"] > 0 and res["sampling_s"] > 0
    assert res["action_scale"] == (None if env == "CartPole-v1" else pytest.approx(0.1))
