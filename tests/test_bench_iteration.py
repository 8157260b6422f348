"""`bomrl bench iteration` end to end on cheap families: one JSON line, the policy `bomrl train` builds."""

import json

import numpy as np
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


def test_bench_iteration_returns_are_trainings_with_or_without_evaluation(capsys):
    """bench iteration runs `bomrl train`'s iterations (tasks, keys and reset seeds of iteration i):
    its returns equal bench learning's (which equal train's), and --eval-steps changes none of them."""
    from bomrl.cli import main

    common = ["--env", "CartPole-v1", "--algo", "maml-trpo", "--tasks", "2", "--episodes", "2", "--horizon", "10"]
    assert main(["bench", "learning", *common, "--iterations", "2"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()][:2]
    for extra in ([], ["--eval-steps", "1"]):
        assert main(["bench", "iteration", *common, "--iterations", "1", "--warmup", "1", *extra]) == 0
        res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert res["pre_returns"] == [round(r["pre_return"], 2) for r in rows]
        assert res["post_returns"] == [round(r["post_return"], 2) for r in rows]



def test_bench_iteration_uses_trains_reset_seeds(tmp_path, monkeypatch, capsys):
    """Every sampling call of `bench iteration` has the call index and environment reset seeds of
    `bomrl train`'s same call (both run bomrl.workflow.run.seeded_step)."""
    from bomrl.cli import main
    from bomrl.envs.sampler import Sampler

    calls = []
    original = Sampler.sample

    def recording(self, policy, params, tasks, key, *, call):
        calls.append((call, self.reset_seeds(call).tolist(), np.asarray(tasks).tolist()))
        return original(self, policy, params, tasks, key, call=call)

    monkeypatch.setattr(Sampler, "sample", recording)
    common = ["--env", "nav2d", "--algo", "maml-trpo", "--tasks", "2", "--episodes", "2", "--horizon", "5"]
    assert main(["train", *common, "--iterations", "2", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    trained, calls[:] = list(calls), []
    assert main(["bench", "iteration", *common, "--iterations", "1", "--warmup", "1"]) == 0
    capsys.readouterr()
    assert [c[0] for c in trained] == [0, 1, 1000, 1001]   # pre- and post-update call of iterations 0, 1
    assert calls == trained


def test_an_iteration_that_would_reuse_reset_seeds_is_refused():
    """seeded_step gives iteration i the call indices i · SAMPLER_CALL_STRIDE onwards: an algorithm
    whose step makes more calls than that stride is a one-line error before anything is sampled."""
    import jax

    from bomrl.errors import ConfigError
    from bomrl.workflow.run import SAMPLER_CALL_STRIDE, seeded_step

    class TooManyRounds:
        name, sampler_calls = "many-rounds", SAMPLER_CALL_STRIDE + 1

        def step(self, *a, **k):   # pragma: no cover - must not be reached
            raise AssertionError("sampled")

    with pytest.raises(ConfigError, match=f"makes {SAMPLER_CALL_STRIDE + 1} sampler calls") as err:
        seeded_step(TooManyRounds(), None, None, 0, 3, jax.random.PRNGKey(0), tasks=[[0.0]])
    assert "\n" not in str(err.value)
