"""A run directory cannot lose data: one writer per directory (real processes), SIGTERM saves like
Ctrl-C, resume checks metrics.csv and the settings against the checkpoint, a task family's NaN or
exception stops training in one line with nothing lost or left behind, files follow the umask."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bomrl.cli import main
from bomrl.envs import register_family
from bomrl.envs.locomotion import HalfCheetahFamily
from bomrl.workflow.checkpoint import list_checkpoints
from bomrl.workflow.logging import read_metrics

pytestmark = pytest.mark.usefixtures("shared_compilation_cache")

TINY = ["--tasks", "2", "--episodes", "2", "--horizon", "10", "--workers", "1", "--no-progress",
        "--no-tensorboard", "--seed", "3"]


def tiny(env="halfcheetah-vel", algo="maml-trpo"):
    return [*TINY, "--env", env, "--algo", algo]


def _env(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    env.pop("JAX_ENABLE_X64", None)
    return env


def _start(tmp_path, out, iterations=100000):
    cmd = [sys.executable, "-m", "bomrl.cli", "train", *tiny(), "--iterations", str(iterations),
           "--checkpoint-every", "1000", "--out", str(out)]
    return subprocess.Popen(cmd, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_rows(proc, out, n, timeout=600):
    deadline = time.monotonic() + timeout
    while len(read_metrics(out / "metrics.csv")) < n:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_second_writer_and_live_resume_are_refused_and_sigterm_saves(tmp_path, capsys):
    out = tmp_path / "run"
    live = _start(tmp_path, out)
    try:
        _wait_rows(live, out, 2)
        before = (out / "metrics.csv").read_bytes()
        # a second `train` on the same directory, and --resume of the live run: one line, the PID
        assert main(["train", *tiny(), "--iterations", "3", "--out", str(out)]) == 2
        assert main(["train", "--resume", str(out), "--iterations", "5"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and all(f"in use by process {live.pid}" in line for line in err), err
        assert (out / "metrics.csv").read_bytes()[:len(before)] == before   # untouched, still growing
        # SIGTERM (timeout, job schedulers) keeps the completed iterations, as Ctrl-C does
        live.send_signal(signal.SIGTERM)
        assert live.wait(timeout=120) == 130
    finally:
        live.kill()
        live.stderr.close()
    (done, _), = list_checkpoints(out)
    rows = read_metrics(out / "metrics.csv")
    assert done >= 2 and [r["iteration"] for r in rows] == list(range(1, done + 1))


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    proc = _start(tmp_path, out, iterations=2)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    proc.stderr.close()
    proc = _start(tmp_path, out.parent / "other", iterations=100000)
    _wait_rows(proc, out.parent / "other", 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert (out.parent / "other" / ".lock").exists()   # the file stays; the lock died with the process
    assert main(["train", "--resume", str(out), "--iterations", "3"]) == 0


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fin") / "run"
    assert main(["train", *tiny(), "--iterations", "4", "--checkpoint-every", "2", "--out", str(out)]) == 0
    return out


def _copy(run, dest):
    import shutil

    shutil.copytree(run, dest)
    return dest


def test_resume_refuses_a_metrics_gap_and_a_missing_file(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path / "cut")
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(lines[:3]))          # header + iterations 1, 2
    cut = (run / "metrics.csv").read_bytes()
    assert main(["train", "--resume", str(run), "--iterations", "6"]) == 2
    err = capsys.readouterr().err
    assert "rows for iterations 3-4 are missing" in err and err.count("\n") == 1
    assert (run / "metrics.csv").read_bytes() == cut and max(i for i, _ in list_checkpoints(run)) == 4
    (run / "metrics.csv").unlink()
    assert main(["train", "--resume", str(run), "--iterations", "6"]) == 2
    assert "metrics.csv is missing" in capsys.readouterr().err
    assert not (run / "metrics.csv").exists()


def test_resume_refuses_an_edited_setting(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path / "edited")
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["tasks"] = 3
    (run / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "--resume", str(run), "--iterations", "6"]) == 2
    err = capsys.readouterr().err
    assert "tasks=2" in err and "now says 3" in err and err.count("\n") == 1
    cfg["train"]["tasks"] = 2
    cfg["algo_config"]["max_kl"] = 0.02
    (run / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "--resume", str(run), "--iterations", "6"]) == 2
    assert "algo_config.max_kl=0.01" in capsys.readouterr().err
    assert len(read_metrics(run / "metrics.csv")) == 4


class _BadStepper:
    """Wraps a stepper: from step call `at` on, env 0's reward (or observation) is NaN, or it raises."""

    def __init__(self, inner, at, how):
        self.inner, self.at, self.how, self.n = inner, at, how, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def reset(self, tasks, seeds):
        return self.inner.reset(tasks, seeds)

    def step(self, actions, active):
        self.n += 1
        obs, rew, term = self.inner.step(actions, active)
        if self.n >= self.at:
            if self.how == "raise":
                raise RuntimeError("the simulator broke")
            if self.how == "reward":
                rew = np.array(rew, float)
                rew[0] = np.nan
            else:
                obs = np.array(obs, float)
                obs[0, 1] = np.inf
        return obs, rew, term

    def close(self):
        self.inner.close()


class BadCheetah(HalfCheetahFamily):
    def __init__(self, at=25, how="reward"):
        super().__init__("vel", 200)
        self.at, self.how = at, how

    def make_stepper(self, num_envs, num_threads=1):
        return _BadStepper(super().make_stepper(num_envs, num_threads), self.at, self.how)

    def __reduce__(self):
        return (BadCheetah, (self.at, self.how))


register_family("test-nan-reward", lambda: BadCheetah(25, "reward"), overwrite=True)
register_family("test-inf-obs", lambda: BadCheetah(25, "obs"), overwrite=True)
register_family("test-raises-at-start", lambda: BadCheetah(1, "raise"), overwrite=True)


# step call 25 returns the reward of step 4 and the observation of step 5 of iteration 2's first round
@pytest.mark.parametrize("env,what", [("test-nan-reward", "non-finite reward (nan) at step 4 of"),
                                      ("test-inf-obs", "non-finite observation (inf) at step 5 of")])
def test_non_finite_values_stop_training_in_one_line_and_keep_the_completed_iterations(tmp_path, capfd, env,
                                                                                        what):
    out = tmp_path / "run"
    # 10 step calls per sampling round, 2 rounds per iteration: call 25 is in iteration 2
    argv = ["train", *tiny(env), "--iterations", "5", "--checkpoint-every", "100", "--out", str(out)]
    assert main(argv) == 2
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and what in lines[0] and f"task family {env!r}" in lines[0], err
    assert "of episode 0 of task 0" in lines[0]
    (done, _), = list_checkpoints(out)          # iteration 1 completed: saved, resumable
    assert done == 1 and [r["iteration"] for r in read_metrics(out / "metrics.csv")] == [1]


def test_a_family_that_raises_at_start_leaves_nothing_that_blocks_a_retry(tmp_path, capfd):
    out = tmp_path / "run"
    argv = ["train", *tiny("test-raises-at-start"), "--iterations", "2", "--out", str(out)]
    assert main(argv) == 2
    err = capfd.readouterr().err.strip()
    assert err.count("\n") == 0 and "RuntimeError: the simulator broke" in err, err
    assert not (out / "config.json").exists() and not (out / "metrics.csv").exists()
    assert main(argv) == 2                      # the same command is tried again, not "already holds a run"
    assert "the simulator broke" in capfd.readouterr().err


def test_written_files_follow_the_umask(finished_run):
    for name in ("config.json", "metrics.csv"):
        mode = (finished_run / name).stat().st_mode & 0o777
        assert mode == 0o666 & ~_umask(), (name, oct(mode))
    for _, path in list_checkpoints(finished_run):
        assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    m = os.umask(0o022)
    os.umask(m)
    return m


def _one_error_line(capsys_or_fd) -> str:
    err = capsys_or_fd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bomrl: error: "), err
    return lines[0]


def test_flags_on_resume_are_checked_not_ignored(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path / "r")
    # a flag equal to the built-in default is still a flag: refused when it differs from the run's
    assert main(["train", "--resume", str(run), "--tasks", "40", "--iterations", "5"]) == 2
    assert "--tasks=40 is invalid with --resume: the run was started with 2" in _one_error_line(capsys)
    assert main(["train", "--resume", str(run), "--out", str(tmp_path / "elsewhere"), "--iterations", "5"]) == 2
    assert "is invalid with --resume: the run continues in" in _one_error_line(capsys)
    assert not (tmp_path / "elsewhere").exists()
    # a value equal to the run's is accepted (tasks, seed, out)
    assert main(["train", "--resume", str(run), "--tasks", "2", "--seed", "3", "--out", str(run),
                 "--iterations", "5"]) == 0
    assert [r["iteration"] for r in read_metrics(run / "metrics.csv")] == [1, 2, 3, 4, 5]


def test_algorithm_settings_on_resume_compare_with_what_the_run_uses(tmp_path, capsys):
    out = tmp_path / "b"
    base = ["train", *tiny(algo="bomrl"), "--iterations", "1"]
    assert main([*base, "--set", "inner_steps=1", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--lam", "0.5", "--iterations", "2"]) == 0   # the default it uses
    assert main(["train", "--resume", str(out), "--distance", "kl", "--set", "inner_steps=1",
                 "--iterations", "3"]) == 0                                         # d1 by another name
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--lam", "0.7", "--iterations", "4"]) == 2
    assert "--lam=0.7 is invalid with --resume: the run was started with 0.5" in _one_error_line(capsys)
    assert main(["train", "--resume", str(out), "--set", "max_kl=0.5", "--iterations", "4"]) == 2
    assert "--max-kl=0.5 is invalid with --resume: the run was started with 0.01" in _one_error_line(capsys)
    assert [r["iteration"] for r in read_metrics(out / "metrics.csv")] == [1, 2, 3]


def test_runs_saved_with_lam_and_distance_among_the_train_settings_resume(tmp_path, capsys):
    """Versions before 2026-12 kept BO-MRL's lam and distance among the train settings (null when
    not given) as well as in algo_config: such runs resume and meta-test as they ran."""
    out = tmp_path / "old"
    assert main(["train", *tiny(algo="bomrl"), "--iterations", "1", "--set", "inner_steps=1", "--lam", "0.7",
                 "--distance", "rkl", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert "lam" not in saved["train"] and saved["algo_config"]["lam"] == 0.7
    saved["train"].update(lam=0.7, distance="rkl")
    (out / "config.json").write_text(json.dumps(saved))
    assert main(["train", "--resume", str(out), "--lam", "0.7", "--iterations", "2"]) == 0
    assert main(["meta-test", str(out), "--tasks", "2", "--adapt-steps", "1", "--out", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["distance"] == "rkl"
    other = tmp_path / "maml"
    assert main(["train", *tiny(), "--iterations", "1", "--out", str(other)]) == 0
    saved = json.loads((other / "config.json").read_text())
    saved["train"].update(lam=None, distance=None)
    (other / "config.json").write_text(json.dumps(saved))
    assert main(["train", "--resume", str(other), "--iterations", "2"]) == 0
    capsys.readouterr()


def test_a_renamed_setting_is_read_by_its_former_name(tmp_path, capsys):
    """BO-MRL's inner_steps was inner_steps_adam: --set, config files and saved runs (config.json and
    the settings each checkpoint records) still use the old name; naming both is an error."""
    from bomrl.workflow.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint

    out = tmp_path / "r"
    assert main(["train", *tiny(algo="bomrl"), "--iterations", "1", "--set", "inner_steps_adam=2",
                 "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["algo_config"]["inner_steps"] == 2 and "inner_steps_adam" not in saved["algo_config"]
    saved["algo_config"]["inner_steps_adam"] = saved["algo_config"].pop("inner_steps")   # as saved before
    (out / "config.json").write_text(json.dumps(saved))
    (_, path), = list_checkpoints(out)
    ckpt = load_checkpoint(path)
    settings = dict(ckpt.meta["settings"])
    settings["algo_config.inner_steps_adam"] = settings.pop("algo_config.inner_steps")
    save_checkpoint(out, ckpt.iteration, ckpt.leaves, {**ckpt.meta, "settings": {**settings,
                                                                                  "algo_config.inner_steps_adam": 3}})
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--iterations", "2"]) == 2   # the checkpoint ran 3, config says 2
    assert "inner_steps=3 but the run's config now says 2" in _one_error_line(capsys)
    save_checkpoint(out, ckpt.iteration, ckpt.leaves, {**ckpt.meta, "settings": settings})
    assert main(["train", "--resume", str(out), "--set", "inner_steps_adam=2", "--iterations", "2"]) == 0
    assert json.loads((out / "config.json").read_text())["algo_config"]["inner_steps"] == 2
    capsys.readouterr()   # the resumed run's summary line
    assert main(["train", *tiny(algo="bomrl"), "--set", "inner_steps_adam=2", "inner_steps=3",
                 "--out", str(tmp_path / "both")]) == 2
    assert "inner_steps_adam and inner_steps name the same setting" in _one_error_line(capsys)


def test_every_committed_run_loads_with_the_settings_it_ran_with():
    """Each config.json under results/ (written by the versions that produced the docs' tables)
    loads; an algorithm setting its train table holds equals the one the run is rebuilt with."""
    from bomrl.workflow.run import load_run

    paths = sorted((Path(__file__).parents[1] / "results").rglob("config.json"))
    assert len(paths) >= 100
    for path in paths:
        saved = json.loads(path.read_text())
        cfg, algo_cfg = load_run(path.parent)
        assert cfg.env == saved["train"]["env"] and cfg.algo == saved["train"]["algo"], path
        for name, value in saved["train"].items():
            if hasattr(algo_cfg, name) and value is not None and not hasattr(cfg, name):
                assert getattr(algo_cfg, name) == value, (path, name)


@pytest.mark.parametrize("argv,expect", [
    (["--iterations", "3", "--iterations", "4"], "--iterations is given twice (--iterations 3 and --iterations 4)"),
    (["--progress"], "is given twice (--no-progress and --progress)"),
    (["--set", "max_kl=0.02", "max_kl=0.03"], "--set names 'max_kl' twice"),
])
def test_repeated_options_are_refused(argv, expect, tmp_path, capsys):
    assert main(["train", *tiny(), *argv, "--out", str(tmp_path / "x")]) == 2
    assert expect in _one_error_line(capsys)
    assert not (tmp_path / "x").exists()


def test_repeated_set_flags_merge(tmp_path):
    out = tmp_path / "m"
    assert main(["train", *tiny(), "--iterations", "1", "--set", "max_kl=0.02", "--set", "ls_steps=7",
                 "--out", str(out)]) == 0
    algo = json.loads((out / "config.json").read_text())["algo_config"]
    assert algo["max_kl"] == 0.02 and algo["ls_steps"] == 7


def test_messages_name_the_source(tmp_path, capsys, monkeypatch):
    toml = tmp_path / "c.toml"
    toml.write_text('lam = nan\nalgo = "bomrl"\n')
    assert main(["train", "--config", str(toml)]) == 2
    assert f"in {toml}: lam=nan is invalid" in _one_error_line(capsys)
    yaml = tmp_path / "c.yaml"
    yaml.write_text("x: 1\n")
    assert main(["train", "--config", str(yaml)]) == 2
    line = _one_error_line(capsys)
    assert "must end in .json or .toml" in line and "YAML" not in line
    algo = tmp_path / "a.json"
    algo.write_text('{"algo_config": {"max_kl": "big"}}')
    assert main(["train", "--config", str(algo)]) == 2
    assert f"in {algo}: max_kl='big' is invalid: must be a number" in _one_error_line(capsys)
    assert main(["train", *tiny(), "--set", "ls_steps=1.5"]) == 2
    assert "must be an integer" in _one_error_line(capsys)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plugin_exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "plugin_raises.py").write_text("raise ValueError('bad plugin')\n")
    assert main(["train", "--plugins", "plugin_exits"]) == 2
    assert "called sys.exit(3) on import" in _one_error_line(capsys)
    assert main(["train", "--plugins", "plugin_raises"]) == 2
    assert "raised on import (ValueError: bad plugin)" in _one_error_line(capsys)


def test_output_locations_are_checked_before_work(finished_run, tmp_path, capsys):
    assert main(["meta-test", str(finished_run), "--tasks", "2", "--out", str(tmp_path)]) == 2
    assert "must be a file, not a directory" in _one_error_line(capsys)
    assert main(["meta-test", str(finished_run), "--tasks", "2", "--out", str(tmp_path / "no" / "x.json")]) == 2
    _one_error_line(capsys)


@pytest.mark.parametrize("damage,expect", [
    (lambda r: (r / "metrics.csv").write_text((r / "metrics.csv").read_text() + "5,abc"
                                              + (r / "metrics.csv").read_text().splitlines()[-1][3:] + "\n"),
     "line 6"),
    (lambda r: (r / "metrics.csv").write_text((r / "metrics.csv").read_text()
                                              + (r / "metrics.csv").read_text().splitlines()[0] + "\n"), "line 6"),
    (lambda r: (r / "meta_test.json").write_text('{"returns": [1, 2'), "meta_test.json cannot be read"),
    (lambda r: (r / "config.json").write_text(""), "config.json cannot be read"),
])
def test_plot_reports_malformed_files_in_one_line(finished_run, tmp_path, capsys, damage, expect):
    run = _copy(finished_run, tmp_path / "runs" / "r")
    damage(run)
    assert main(["plot", str(run), "--out", str(tmp_path / "plots")]) == 2
    assert expect in _one_error_line(capsys)


@pytest.fixture
def small_mount(tmp_path):
    """A 96 KiB tmpfs (root only: skipped where mounting is not allowed)."""
    where = tmp_path / "mnt"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(where)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs a tmpfs mount (root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_full_disk_and_read_only_directory_are_one_line_errors(small_mount, finished_run, capsys):
    out = small_mount / "run"
    # checkpoints of the 64-64 policy are ≈ 40 KiB (two kept): the disk fills within a few
    rc = main(["train", *tiny(), "--iterations", "30", "--checkpoint-every", "1", "--out", str(out)])
    line = _one_error_line(capsys)
    assert rc == 1 and "No space left on device" in line and str(out) in line, line
    good = sorted(list_checkpoints(out))
    assert good, "no checkpoint survived"
    from bomrl.workflow.checkpoint import load_latest

    assert load_latest(out).iteration == good[-1][0]      # the newest complete checkpoint verifies
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    assert main(["train", "--resume", str(out), "--iterations", "31"]) == 2
    assert "Read-only file system" in _one_error_line(capsys)
    assert main(["meta-test", str(out), "--tasks", "2"]) == 2
    assert "is not writable" in _one_error_line(capsys)
