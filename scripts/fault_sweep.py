"""Bad inputs and faults, tried as a user would, each in its own `bomrl` process: every case must end
cleanly — exit 0, or exit 2 (130 for a signal) with ONE line `bomrl: error: ...` (warnings aside),
never a traceback — and lose no data (a finished run's metrics.csv and checkpoints are unchanged by
every refused command on it).

    python scripts/fault_sweep.py [--out DIR]      # prints one line per case and the count

Cases run on a tiny halfcheetah-vel run (2 tasks × 2 episodes × 10 steps) trained once at the
start. The count is quoted in docs/WORKFLOW.md ("Bad input and faults").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--env", "halfcheetah-vel", "--tasks", "2", "--episodes", "2", "--horizon", "10", "--workers", "1",
        "--no-progress", "--no-tensorboard", "--seed", "1"]


def bomrl(args, cwd, timeout=600, env=None):
    e = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
    p = subprocess.run([sys.executable, "-m", "bomrl.cli", *args], cwd=cwd, env=e, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stderr


def digest(run: Path) -> str:
    """Hash of a run's metrics.csv and checkpoints (what must never change under a refused command)."""
    h = hashlib.sha256()
    for name in sorted(p.name for p in run.iterdir() if p.name == "metrics.csv" or p.suffix == ".bomrl"):
        h.update(name.encode() + (run / name).read_bytes())
    return h.hexdigest()


def clean(rc: int, err: str, expect_rc=(0, 2)) -> tuple[bool, str]:
    lines = [ln for ln in err.splitlines() if ln.strip() and "warning" not in ln.lower()
             and not ln.startswith(("train:", "meta-test:", "plot:"))]
    if "Traceback" in err:
        return False, "traceback"
    if rc not in expect_rc:
        return False, f"exit code {rc}"
    if rc == 130:   # a signal: the checkpoint note and "interrupted", nothing else
        ok = all(ln.startswith("bomrl: checkpoint of iteration") or ln == "bomrl: interrupted" for ln in lines)
        return ok, " / ".join(lines)
    if rc != 0 and (len(lines) != 1 or not lines[0].startswith("bomrl: error: ")):
        return False, f"{len(lines)} error lines"
    return True, lines[0] if lines else "ok"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="keep the sweep's files here (default: a temp dir)")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bomrl-sweep-")) if args.out is None else args.out
    root.mkdir(parents=True, exist_ok=True)
    run = root / "run"
    if not run.exists():
        rc, err = bomrl(["train", *TINY, "--algo", "maml-trpo", "--iterations", "4", "--checkpoint-every", "2",
                         "--out", str(run)], root)
        assert rc == 0, err
    bomrl(["meta-test", str(run), "--tasks", "2", "--adapt-steps", "1"], root)
    base = digest(run)
    (root / "bad.json").write_text("{not json")
    (root / "bad.toml").write_text("tasks = -3\n")
    (root / "nan.toml").write_text("lam = nan\nalgo = \"bomrl\"\n")
    (root / "c.yaml").write_text("tasks: 3\n")
    (root / "unknown.json").write_text('{"taskz": 3}')
    (root / "algo.json").write_text('{"algo_config": {"max_kl": "big"}}')
    (root / "p_exit.py").write_text("import sys\nsys.exit(3)\n")
    (root / "p_raise.py").write_text("raise ValueError('plugin bug')\n")
    (root / "p_dep.py").write_text("import not_installed_module_xyz\n")

    def copy(name):
        dest = root / name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(run, dest)
        return dest

    cases: list[tuple[str, list]] = []
    t = ["train", *TINY, "--algo", "bomrl", "--iterations", "1"]
    for flag, values in {"--tasks": ["0", "-1", "abc", "1e9"], "--episodes": ["0", "x"], "--horizon": ["0", "-5"],
                         "--seed": ["-1", "2.5"], "--lam": ["nan", "-1", "inf", "0"],
                         "--distance": ["d4"], "--iterations": ["0"], "--hidden": ["0", "-3"],
                         "--init-std": ["0", "nan"], "--action-scale": ["-1"], "--workers": ["-2"],
                         "--checkpoint-every": ["0"], "--sampler": ["gpu"], "--preset": ["fast"]}.items():
        for v in values:
            argv = [a for a in t]
            if flag in argv:
                i = argv.index(flag)
                del argv[i:i + 2]
            cases.append((f"train {flag} {v}", argv + [flag, v, "--out", str(root / "never")]))
    cases += [
        ("train --env bogus", ["train", "--env", "bogus", "--out", str(root / "never")]),
        ("train --algo bogus", ["train", "--algo", "bogus", "--out", str(root / "never")]),
        ("train --set unknown", [*t, "--set", "nope=1", "--out", str(root / "never")]),
        ("train --set bad type", [*t, "--set", "max_kl=big", "--out", str(root / "never")]),
        ("train --set no =", [*t, "--set", "max_kl", "--out", str(root / "never")]),
        ("train --set twice", [*t, "--set", "max_kl=0.1", "max_kl=0.2", "--out", str(root / "never")]),
        ("train --tasks twice", [*t, "--tasks", "3", "--out", str(root / "never")]),
        ("train --config missing", ["train", "--config", str(root / "missing.json")]),
        ("train --config bad json", ["train", "--config", str(root / "bad.json")]),
        ("train --config bad toml value", ["train", "--config", str(root / "bad.toml")]),
        ("train --config nan lam", ["train", "--config", str(root / "nan.toml")]),
        ("train --config yaml", ["train", "--config", str(root / "c.yaml")]),
        ("train --config unknown key", ["train", "--config", str(root / "unknown.json")]),
        ("train --config bad algo_config", ["train", "--config", str(root / "algo.json"), "--out", str(root / "never")]),
        ("train --plugins missing", ["train", "--plugins", "no_such_plugin_xyz"]),
        ("train --plugins sys.exit", ["train", "--plugins", "p_exit"]),
        ("train --plugins raises", ["train", "--plugins", "p_raise"]),
        ("train --plugins missing dependency", ["train", "--plugins", "p_dep"]),
        ("train --out is a file", [*t, "--out", str(root / "bad.json")]),
        ("train --out holds a run", [*t, "--out", str(run)]),
        ("train --resume missing dir", ["train", "--resume", str(root / "nowhere")]),
        ("train --resume not a run", ["train", "--resume", str(root)]),
        ("train --resume --tasks 40", ["train", "--resume", str(run), "--tasks", "40"]),
        ("train --resume --out elsewhere", ["train", "--resume", str(run), "--out", str(root / "x")]),
        ("train --resume --config", ["train", "--resume", str(run), "--config", str(root / "bad.toml")]),
        ("train --resume --set", ["train", "--resume", str(run), "--set", "max_kl=0.5"]),
        ("train --resume done", ["train", "--resume", str(run)]),
        ("meta-test not a run", ["meta-test", str(root)]),
        ("meta-test missing dir", ["meta-test", str(root / "nowhere")]),
        ("meta-test --out dir", ["meta-test", str(run), "--tasks", "2", "--out", str(root)]),
        ("meta-test --out missing parent", ["meta-test", str(run), "--tasks", "2", "--out", str(root / "a" / "b.json")]),
        ("meta-test --tasks 0", ["meta-test", str(run), "--tasks", "0"]),
        ("meta-test --adapt-steps -1", ["meta-test", str(run), "--adapt-steps", "-1"]),
        ("meta-test --env other spaces", ["meta-test", str(run), "--env", "ant-dir"]),
        ("plot nothing", ["plot", str(root / "nowhere")]),
        ("bench sampler --env bogus", ["bench", "sampler", "--env", "bogus"]),
        ("check hypergradient --tasks 0", ["check", "hypergradient", "--tasks", "0"]),
        ("frozenlake --size 1", ["frozenlake", "--size", "1"]),
        ("unknown command", ["fly"]),
    ]
    results = []
    for name, argv in cases:
        rc, err = bomrl(argv, root)
        ok, why = clean(rc, err)
        results.append((name, ok, why))
    # damaged copies of the finished run: resume, meta-test and plot must refuse in one line
    damages = {
        "metrics.csv cut short": lambda r: (r / "metrics.csv").write_text(
            "".join((r / "metrics.csv").read_text().splitlines(keepends=True)[:2])),
        "metrics.csv deleted": lambda r: (r / "metrics.csv").unlink(),
        "metrics.csv second header": lambda r: (r / "metrics.csv").write_text(
            (r / "metrics.csv").read_text() + (r / "metrics.csv").read_text().splitlines()[0] + "\n"),
        "config.json edited (tasks)": lambda r: (r / "config.json").write_text(
            json.dumps({**json.loads((r / "config.json").read_text()),
                        "train": {**json.loads((r / "config.json").read_text())["train"], "tasks": 3}})),
        "config.json empty": lambda r: (r / "config.json").write_text(""),
        "meta_test.json truncated": lambda r: (r / "meta_test.json").write_text('{"returns": [1'),
        "newest checkpoint corrupted": lambda r: sorted(r.glob("ckpt-*.bomrl"))[-1].write_bytes(b"garbage"),
        "every checkpoint deleted": lambda r: [p.unlink() for p in r.glob("ckpt-*.bomrl")],
    }
    for what, damage in damages.items():
        for cmd in (["train", "--resume", "{r}", "--iterations", "6"], ["meta-test", "{r}", "--tasks", "2"],
                    ["plot", "{r}", "--out", str(root / "plots")]):
            r = copy("damaged")
            damage(r)
            before = {p.name: p.read_bytes() for p in r.iterdir() if p.is_file() and p.name != ".lock"}
            rc, err = bomrl([a.replace("{r}", str(r)) for a in cmd], root)
            ok, why = clean(rc, err)
            if ok and rc == 0 and cmd[0] == "train":   # continued: the rows must be 1..6 without a gap
                rows = [ln.split(",", 1)[0] for ln in (r / "metrics.csv").read_text().splitlines()[1:]]
                ok, why = (rows == [str(i) for i in range(1, 7)], f"rows {rows}")
            elif cmd[0] == "train" and rc != 0:           # refused: nothing it read may have changed
                after = {p.name: p.read_bytes() for p in r.iterdir() if p.is_file() and p.name != ".lock"}
                if {k: v for k, v in after.items() if k in before} != before:
                    ok, why = False, "refused but changed files"
            results.append((f"{cmd[0]} after {what}", ok, why))
    # a live run: a second writer and a resume are refused; SIGTERM then checkpoints
    live_dir = root / "live"
    shutil.rmtree(live_dir, ignore_errors=True)
    live = subprocess.Popen([sys.executable, "-m", "bomrl.cli", "train", *TINY, "--algo", "maml-trpo",
                             "--iterations", "100000", "--checkpoint-every", "1000", "--out", str(live_dir)],
                            cwd=root, env=dict(os.environ, JAX_PLATFORMS="cpu"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (live_dir / "metrics.csv").exists() or (live_dir / "metrics.csv").read_text().count("\n") < 3:
            if live.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the live run did not start: {live.stderr.read()}")
            time.sleep(0.1)
        for name, argv in (("second train on a live run", ["train", *TINY, "--algo", "maml-trpo", "--out",
                                                           str(live_dir)]),
                           ("resume of a live run", ["train", "--resume", str(live_dir)])):
            rc, err = bomrl(argv, root)
            ok, why = clean(rc, err)
            results.append((name, ok and rc == 2 and str(live.pid) in err, why))
        live.send_signal(signal.SIGTERM)
        rc = live.wait(timeout=120)
        err = live.stderr.read()
        ok, why = clean(rc, err, expect_rc=(130,))
        ckpts = sorted(live_dir.glob("ckpt-*.bomrl"))
        rows = (live_dir / "metrics.csv").read_text().count("\n") - 1
        results.append(("SIGTERM checkpoints the completed iterations",
                        ok and bool(ckpts) and int(ckpts[-1].stem.split("-")[1]) == rows, why))
    finally:
        live.kill()
    rc, err = bomrl(["train", "--resume", str(live_dir), "--iterations", str(rows + 1)], root)
    results.append(("resume after SIGTERM", rc == 0 and "Traceback" not in err, err.strip()[-120:]))
    results.append(("the finished run was never changed", digest(run) == base, ""))

    width = max(len(n) for n, _, _ in results)
    for name, ok, why in results:
        print(f"{'clean' if ok else 'FAIL '}  {name:<{width}}  {why[:150]}")
    n_ok = sum(ok for _, ok, _ in results)
    print(f"\n{n_ok} of {len(results)} cases clean (no traceback, one-line errors, no data lost)")
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if n_ok == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
