"""Run one `bomrl bench ...` command and append its JSON output, with the date, the CPU and the
conditions, as one record to a results/bench/NAME.jsonl file (rendered by scripts/bench_tables.py).

    python scripts/bench_record.py results/bench/2026-12-07-suite.jsonl --label "MAML-TRPO" \
        --conditions "every other job stopped (SIGSTOP) for the duration" -- \
        bomrl bench iteration --env halfcheetah-vel --algo maml-trpo --iterations 5

The command runs as `python -m bomrl.cli ...` of this interpreter (`--python` to change it); the
record's `command` is the line as given. The record's `utc` is the command's start-end (HH:MM).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path


def cpu_name() -> str:
    """"AMD EPYC (lscpu: ...), 2 cores, 24 GiB": the model name lscpu reports, cores, memory."""
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    vendor = "AMD EPYC" if "EPYC" in model else "Intel Xeon" if "Xeon" in model else model
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{vendor} (lscpu: {model}), {os.cpu_count()} cores, {mem:.0f} GiB"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the .jsonl file to append to")
    ap.add_argument("--label", required=True, help="the row's name in the table")
    ap.add_argument("--conditions", required=True, help="what else ran (e.g. 'only the benchmark ran')")
    ap.add_argument("--python", default=sys.executable)
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        ap.error("the command is missing: give it after `--` (-- bomrl bench ...)")
    cut = argv.index("--")
    args, cmd = ap.parse_args(argv[:cut]), argv[cut + 1:]
    if len(cmd) < 3 or cmd[:2] != ["bomrl", "bench"]:
        ap.error(f"command={' '.join(cmd)!r} is invalid: must start with `bomrl bench`")
    start = dt.datetime.now(dt.timezone.utc)
    proc = subprocess.run([args.python, "-m", "bomrl.cli", *cmd[1:]], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    end = dt.datetime.now(dt.timezone.utc)
    rec = {"date": start.strftime("%Y-%m-%d"), "utc": f"{start:%H:%M}-{end:%H:%M}", "cpu": cpu_name(),
           "conditions": args.conditions, "label": args.label, "command": " ".join(cmd), "result": result}
    with open(args.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
