"""End to end at a tiny budget: train (SIGKILL + resume == uninterrupted), a corrupt checkpoint on
resume and on meta-test, meta-test JSON, plot PNGs. HalfCheetah-vel, 2 tasks × 2 episodes × 10 steps."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bomrl.cli import COMMANDS, main
from bomrl.workflow.checkpoint import checkpoint_path, list_checkpoints, load_checkpoint

TINY = ["--env", "halfcheetah-vel", "--tasks", "2", "--episodes", "2", "--horizon", "10", "--workers", "1",
        "--no-progress"]


def _rows(path):
    """metrics.csv rows without the wall-clock columns."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k != "wall_s" and not k.startswith("time/")} for r in rows]


def _env(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               # one shared compilation cache: the resumed process reuses the first ones' executables
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    env.pop("JAX_ENABLE_X64", None)
    return env


def _train_cmd(out, iterations, every):
    return [sys.executable, "-m", "bomrl.cli", "train", *TINY, "--algo", "maml-trpo", "--seed", "3",
            "--iterations", str(iterations), "--checkpoint-every", str(every), "--out", str(out)]


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    n, every = 40, 3
    env = _env(tmp_path)
    full = subprocess.Popen(_train_cmd(tmp_path / "full", n, every), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = subprocess.Popen(_train_cmd(tmp_path / "killed", n, every), cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not list_checkpoints(tmp_path / "killed") if (tmp_path / "killed").exists() else True:
        assert killed.poll() is None, killed.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    killed.stderr.close()
    done = max(i for i, _ in list_checkpoints(tmp_path / "killed"))
    assert done < n, "the run finished before it was killed"
    _, err = full.communicate(timeout=600)
    assert full.returncode == 0, err.decode()

    resume = subprocess.run([sys.executable, "-m", "bomrl.cli", "train", "--resume", str(tmp_path / "killed"),
                             "--no-progress"], cwd=tmp_path, env=env, capture_output=True, timeout=600)
    assert resume.returncode == 0, resume.stderr.decode()
    a, b = _rows(tmp_path / "full" / "metrics.csv"), _rows(tmp_path / "killed" / "metrics.csv")
    assert len(a) == len(b) == n
    assert [r["iteration"] for r in b] == [str(i) for i in range(1, n + 1)]
    assert a == b   # every metric of every iteration, bit for bit (repr of the floats)
    # the final meta-parameters are identical too
    ca = load_checkpoint(checkpoint_path(tmp_path / "full", n))
    cb = load_checkpoint(checkpoint_path(tmp_path / "killed", n))
    assert all(np.array_equal(x, y) for x, y in zip(ca.leaves, cb.leaves))
    assert ca.meta["env_steps"] == cb.meta["env_steps"] == n * 2 * 2 * 2 * 10
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_train_corrupt_resume_meta_test_plot(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--algo", "bomrl", "--distance", "rkl", "--set", "inner_steps=5",
                 "--iterations", "3", "--checkpoint-every", "1", "--out", str(run)]) == 0
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.csv", "tb", "ckpt-000002.bomrl",
                                               "ckpt-000003.bomrl"}
    assert os.listdir(run / "tb")
    saved = json.loads((run / "config.json").read_text())
    assert saved["algo_config"]["distance"] == "rkl" and saved["algo_config"]["lam"] == 0.4
    assert saved["algo_config"]["inner_steps"] == 5 and saved["train"]["horizon"] == 10
    first = _rows(run / "metrics.csv")
    assert list(first[0])[:4] == ["iteration", "pre_return", "post_return", "env_steps"]
    assert [float(r["env_steps"]) for r in first] == [80.0, 160.0, 240.0]

    # truncate the newest checkpoint: resume says so in one line, uses iteration 2, redoes iteration 3
    ckpt3 = checkpoint_path(run, 3)
    ckpt3.write_bytes(ckpt3.read_bytes()[:500])
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"bomrl: warning: checkpoint {ckpt3} is unusable: truncated" in err
    assert _rows(run / "metrics.csv") == first

    # meta-test: fresh tasks, 0..2 adaptations
    out = tmp_path / "mt.json"
    assert main(["meta-test", str(run), "--adapt-steps", "2", "--tasks", "3", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert (res["env"], res["algo"], res["tasks"], res["iteration"]) == ("halfcheetah-vel", "bomrl", 3, 3)
    assert len(res["returns"]) == len(res["stderr"]) == 3
    per_task = np.asarray(res["task_returns"])
    assert per_task.shape == (3, 3)
    np.testing.assert_allclose(res["returns"], per_task.mean(1))
    np.testing.assert_allclose(res["stderr"], per_task.std(1, ddof=1) / np.sqrt(3))
    assert res["env_steps"] == 3 * 3 * 2 * 10
    # --env: halfcheetah-dir has halfcheetah-vel's spaces (allowed); nav2d's differ: one-line error
    assert main(["meta-test", str(run), "--adapt-steps", "0", "--tasks", "2", "--env", "halfcheetah-dir"]) == 0
    assert json.loads((run / "meta_test-halfcheetah-dir.json").read_text())["env"] == "halfcheetah-dir"
    capsys.readouterr()
    assert main(["meta-test", str(run), "--env", "nav2d"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--env='nav2d'" in err and "17-dim observations" in err
    (run / "meta_test-halfcheetah-dir.json").unlink()

    # plot both figure styles
    (run / "meta_test.json").write_text(out.read_text())
    plots = tmp_path / "plots"
    assert main(["plot", str(run), "--out", str(plots)]) == 0
    for name in ("fig2_adaptation.png", "fig5_training.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (plots / "summary.md").read_text()
    assert "| halfcheetah-vel | BO-MRL d2 (inner_steps=5) | 1 | 3 | 3 |" in summary
    assert "Left out" not in summary
    # a meta-test of an earlier iteration than the training is stale: named, and kept out of the table
    mt = json.loads(out.read_text())
    (run / "meta_test.json").write_text(json.dumps({**mt, "iteration": 2}))
    assert main(["plot", str(run), "--out", str(plots)]) == 0
    summary = (plots / "summary.md").read_text()
    assert "- run: meta-tested at iteration 2, trained to 3" in summary
    assert "| halfcheetah-vel | BO-MRL d2 (inner_steps=5) | 1 |" not in summary
    # a run with no meta-test at all is named as still training, and kept out of the table too
    (run / "meta_test.json").unlink()
    assert main(["plot", str(run), "--out", str(plots)]) == 0
    summary = (plots / "summary.md").read_text()
    assert "- run: no meta-test yet, trained to 3" in summary and "Left out" not in summary
    assert "| halfcheetah-vel | BO-MRL d2 (inner_steps=5) | 1 |" not in summary
    (run / "meta_test.json").write_text(out.read_text())
    capsys.readouterr()
    assert main(["plot", str(run), "--out", str(plots), "--reference", "Nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--reference='Nope'" in err and "BO-MRL d2" in err

    # a user distance from a --plugins module that re-implements d2 reproduces the rkl run exactly
    (tmp_path / "wf_plugin_rkl.py").write_text(
        "from bomrl.core.distances import state_distance\n"
        "from bomrl.core import register_distance\n"
        "register_distance('my-rkl', lambda policy: state_distance(lambda p, t: policy.kl(t, p), 'my-rkl'),"
        " overwrite=True)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mine = tmp_path / "mine"
    assert main(["train", *TINY, "--algo", "bomrl", "--plugins", "wf_plugin_rkl", "--distance", "my-rkl",
                 "--lam", "0.4", "--set", "inner_steps=5", "--iterations", "3", "--out", str(mine)]) == 0
    assert _rows(mine / "metrics.csv") == first
    # config.json records the real name; the run resumes and meta-tests with the user distance
    saved = json.loads((mine / "config.json").read_text())
    assert saved["algo_config"]["distance"] == "my-rkl" and "distance" not in saved["train"]
    for r in (run, mine):
        assert main(["train", "--resume", str(r), "--iterations", "4", "--no-progress"]) == 0
    assert _rows(mine / "metrics.csv") == _rows(run / "metrics.csv")
    outs = [tmp_path / "mt-run.json", tmp_path / "mt-mine.json"]
    for r, o in zip((run, mine), outs):
        assert main(["meta-test", str(r), "--adapt-steps", "1", "--tasks", "2", "--out", str(o)]) == 0
    a, b = (json.loads(o.read_text()) for o in outs)
    assert a["task_returns"] == b["task_returns"] and b["distance"] == "my-rkl"
    assert main(["plot", str(mine), "--out", str(plots)]) == 0


def test_user_errors_of_meta_test_and_plot(tmp_path, capsys):
    assert main(["meta-test", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "RUN=" in err


HEAVY_MODULES = ("jax", "mujoco", "gymnasium", "matplotlib", "optax", "tensorboardX")


@pytest.mark.parametrize("cmd", [None, *COMMANDS])
def test_help_is_import_light(cmd):
    """`bomrl --help` and `bomrl CMD --help` of every command import only the light config modules:
    no JAX, MuJoCo, gymnasium, matplotlib (numpy does load: bomrl.envs' registry imports it)."""
    argv = ["--help"] if cmd is None else [*cmd.split(), "--help"]
    out = subprocess.run([sys.executable, "-c", "import sys; from bomrl.cli import main\n"
                          f"try: main({argv!r})\nexcept SystemExit: pass\n"
                          f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
