"""Run logging: DIR/metrics.csv (one row per meta-iteration), TensorBoard, a rich progress bar.

metrics.csv columns: `iteration` (1-based count of completed meta-iterations), `pre_return`,
`post_return` (mean episode return before / after adaptation), `env_steps` (cumulative),
`wall_s` (cumulative training wall time, resumes included), then every other metric of the
algorithm by its namespaced key (`losses/`, `inner/`, `trpo/`, `cg/`, `time/`, ...), sorted.
Wall-clock columns are `wall_s` and `time/*`; all other columns are deterministic in the seed.

Each row is appended and flushed as soon as the iteration ends. On resume from a checkpoint at
iteration k, rows after k (written by the interrupted run after its last checkpoint) and a torn
last line are dropped first, so the file ends up as if the run had never stopped; if rows 1..k are
not all there (a file cut short, deleted or edited), the resume is refused (MetricsGapError).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bomrl.errors import BomrlError
from bomrl.utils import atomic_write_bytes

HEAD = ("iteration", "pre_return", "post_return", "env_steps", "wall_s")
CSV_NAME = "metrics.csv"


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics.csv as dicts of floats (iteration as int); complete rows only."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):  # torn last line of a killed writer
        text = text[: text.rfind("\n") + 1]
    rows = []
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is not None and "iteration" not in reader.fieldnames:
        raise BomrlError(f"{path} is not a metrics file (its first line has no 'iteration' column)")
    for raw in reader:
        if None in raw or any(v is None for v in raw.values()):
            continue
        try:
            row = {k: (float(v) if v != "" else math.nan) for k, v in raw.items()}
            row["iteration"] = int(row["iteration"])
        except ValueError:
            raise BomrlError(f"{path}, line {reader.line_num}: not a row of numbers (a second header or an "
                             "edited line?); fix or remove that line") from None
        rows.append(row)
    return rows


class MetricsGapError(BomrlError):
    """metrics.csv does not hold one row per iteration up to the checkpoint being resumed."""


def check_rows(path: Path, iterations: list[int], start_iteration: int) -> None:
    """Refuse (MetricsGapError, one line) unless `iterations` are exactly 1..start_iteration."""
    if iterations == list(range(1, start_iteration + 1)):
        return
    have = set(iterations)
    missing = [i for i in range(1, start_iteration + 1) if i not in have]
    what = (f"rows for iterations {_ranges(missing)} are missing" if missing
            else f"its rows are out of order or repeated ({len(iterations)} rows)")
    raise MetricsGapError(f"{path} does not match the checkpoint at iteration {start_iteration}: {what}; restore "
                          "the file (e.g. from version control) to continue, or train the run again")


def _ranges(xs: list[int]) -> str:
    out, start = [], None
    for i, x in enumerate(xs):
        if start is None:
            start = x
        if i + 1 == len(xs) or xs[i + 1] != x + 1:
            out.append(f"{start}" if start == x else f"{start}-{x}")
            start = None
    return ", ".join(out)


def check_metrics_file(path: Path, start_iteration: int) -> None:
    """What a resume from a checkpoint at `start_iteration` needs of metrics.csv (read only): the
    file exists and its complete rows include iterations 1..start_iteration, each once, in order
    (later rows are dropped by the resume). MetricsGapError otherwise."""
    path = Path(path)
    if start_iteration <= 0:
        return
    if not path.exists():
        raise MetricsGapError(f"{path} is missing but the checkpoint is at iteration {start_iteration}: "
                              "its rows would be lost; restore the file (e.g. from version control) to continue")
    rows = rows_up_to(path.read_text().splitlines(keepends=True)[1:], start_iteration)
    check_rows(path, [int(ln.split(",", 1)[0]) for ln in rows], start_iteration)


def rows_up_to(lines: list[str], iteration: int) -> list[str]:
    """The complete data lines of metrics.csv (header excluded) whose iteration is <= `iteration`;
    reading stops at a torn last line."""
    kept = []
    for line in lines:
        if not line.endswith("\n"):
            break
        it = line.split(",", 1)[0]
        if it.isdigit() and int(it) <= iteration:
            kept.append(line)
    return kept


class MetricsLogger:
    """Appends iteration rows to DIR/metrics.csv and (optionally) TensorBoard DIR/tb."""

    def __init__(self, run_dir: Path, start_iteration: int = 0, tensorboard: bool = True):
        self.path = Path(run_dir) / CSV_NAME
        self.columns: list[str] | None = None
        if start_iteration > 0 and not self.path.exists():
            raise MetricsGapError(f"{self.path} is missing but the checkpoint is at iteration {start_iteration}: "
                                  "its rows would be lost; restore the file (e.g. from version control) to continue")
        if self.path.exists():
            # keep rows up to the checkpoint, rewrite atomically (drops a torn last line as well)
            text = self.path.read_text()
            lines = text.splitlines(keepends=True)
            if lines:
                self.columns = next(csv.reader([lines[0]]))
                keep = [lines[0], *rows_up_to(lines[1:], start_iteration)]
                check_rows(self.path, [int(ln.split(",", 1)[0]) for ln in keep[1:]], start_iteration)
                atomic_write_bytes(self.path, "".join(keep).encode())
            elif start_iteration > 0:
                check_rows(self.path, [], start_iteration)
        self._file = open(self.path, "a", newline="")
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter   # lazy: heavy (protobuf), and only with --tensorboard

            kwargs = {"purge_step": start_iteration + 1} if start_iteration > 0 else {}
            self._tb = SummaryWriter(logdir=str(Path(run_dir) / "tb"), flush_secs=30, **kwargs)

    def log(self, row: dict) -> None:
        """row: {column: float}; the first row fixes the columns (HEAD first, then sorted keys)."""
        if self.columns is None:
            self.columns = list(HEAD) + sorted(k for k in row if k not in HEAD)
            self._file.write(",".join(self.columns) + "\n")
        values = []
        for c in self.columns:
            v = row.get(c, "")
            values.append(str(int(v)) if c == "iteration" else (repr(float(v)) if v != "" else ""))
        try:
            self._file.write(",".join(values) + "\n")
            self._file.flush()
        except OSError as exc:   # name the file (full disk, ...)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        if self._tb is not None:
            step = int(row["iteration"])
            for k, v in row.items():
                if k != "iteration":
                    name = k if "/" in k else f"charts/{k}"
                    self._tb.add_scalar(name, float(v), step)

    def flush(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class ProgressBar:
    """rich progress bar: iterations done / total, elapsed, ETA, live post-adaptation return."""

    def __init__(self, total: int, start: int, enabled: bool = True, description: str = "train"):
        self._progress = None
        if not enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"), transient=False)
        self._task = self._progress.add_task(description, total=total, completed=start, status="")
        self._progress.start()

    def update(self, completed: int, pre: float, post: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed,
                                  status=f"pre {pre:9.2f}  post {post:9.2f}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
