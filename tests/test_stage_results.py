"""scripts/stage_results.sh in a throw-away git repository: what a session commits so that the next
one resumes (latest checkpoint only, small files only, unfinished runs without a checkpoint skipped)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "stage_results.sh"
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


# a committer identity for the throw-away repositories (CI machines may have none configured)
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=GIT_ENV, check=True).stdout


def _stage(repo, *args):
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=repo, capture_output=True, text=True, env=GIT_ENV)


def _run_dir(root, name, ckpts=(), meta_test=False):
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "metrics.csv").write_text("iteration\n1\n")
    (d / "tb").mkdir()
    (d / "tb" / "events").write_text("x")
    for it in ckpts:
        (d / f"ckpt-{it:06d}.bomrl").write_bytes(b"c" * 100)
    if meta_test:
        (d / "meta_test.json").write_text("{}")
    return d


def test_stages_latest_checkpoint_only_and_commits(tmp_path):
    repo = tmp_path / "repo"
    root = repo / "results" / "loco"
    root.mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / ".gitignore").write_text("results/**/tb/\nresults/**/ckpt-*.bomrl\n")
    a = _run_dir(root, "env-a-s0", ckpts=(10,))
    (a / "best.bomrl").write_bytes(b"b" * 100)            # model selection's kept policy and its meta-test
    (a / "meta_test-best.json").write_text("{}")
    _run_dir(root, "env-b-s0", meta_test=True)            # finished, final checkpoint not kept
    _run_dir(root, "env-c-s0")                            # just started: nothing to resume from
    (root / "wall_times.tsv").write_text("run\tphase\tseconds\n")
    (root / "notes").mkdir()                              # not a run: no config.json
    out = _stage(repo, "--commit", "results/loco")
    assert out.returncode == 0, out.stderr
    assert "skipped results/loco/env-c-s0" in out.stderr
    files = set(_git(repo, "ls-files").split())
    assert files == {   # only what the script staged (.gitignore itself was never added)
        "results/loco/env-a-s0/config.json", "results/loco/env-a-s0/metrics.csv",
        "results/loco/env-a-s0/ckpt-000010.bomrl", "results/loco/env-a-s0/best.bomrl",
        "results/loco/env-a-s0/meta_test-best.json", "results/loco/env-b-s0/config.json",
        "results/loco/env-b-s0/metrics.csv", "results/loco/env-b-s0/meta_test.json",
        "results/loco/wall_times.tsv"}
    assert _git(repo, "log", "-1", "--format=%s").strip() == "results: env-a-s0 @10; env-b-s0"

    # the run goes on: the newer checkpoint replaces the older one in git, both stay on disk
    (a / "ckpt-000020.bomrl").write_bytes(b"d" * 100)
    (a / "metrics.csv").write_text("iteration\n1\n2\n")
    assert _stage(repo, "--commit", "results/loco").returncode == 0
    files = set(_git(repo, "ls-files").split())
    assert "results/loco/env-a-s0/ckpt-000020.bomrl" in files
    assert "results/loco/env-a-s0/ckpt-000010.bomrl" not in files
    assert (a / "ckpt-000010.bomrl").exists()
    assert _git(repo, "show", "HEAD:results/loco/env-a-s0/metrics.csv") == "iteration\n1\n2\n"

    # nothing new: nothing committed
    out = _stage(repo, "--commit", "results/loco")
    assert out.returncode == 0 and "nothing changed" in out.stdout


def test_refuses_big_files_and_missing_roots(tmp_path):
    repo = tmp_path / "repo"
    root = repo / "results"
    root.mkdir(parents=True)
    _git(repo, "init", "-q")
    d = _run_dir(root, "big-s0", ckpts=(5,))
    (d / "ckpt-000006.bomrl").write_bytes(b"x" * (1024 * 1024 + 1))
    out = _stage(repo, "results")
    assert out.returncode == 0
    assert "not staged: results/big-s0/ckpt-000006.bomrl is 1048577 bytes" in out.stderr
    staged = set(_git(repo, "diff", "--cached", "--name-only").split())
    assert staged == {"results/big-s0/config.json", "results/big-s0/metrics.csv"}
    out = _stage(repo, "results/nope")
    assert out.returncode == 2 and out.stderr.strip() == "stage_results: no such directory: results/nope"
