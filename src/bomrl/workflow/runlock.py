"""One writer per run directory: an OS-level lock held for the life of the process that writes it.

`bomrl train` (new or --resume) takes DIR/.lock with `fcntl.flock` before it reads or writes
anything in DIR. The kernel releases the lock when the process ends in any way (exit, exception,
kill -9), so a stale lock cannot block a later run: the file may remain, the lock does not. The file
holds the holder's PID, so a refused second writer can name it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from bomrl.errors import ConfigError

LOCK_NAME = ".lock"


class RunLock:
    """Exclusive, non-blocking lock on `run_dir/.lock`; `acquire()` raises ConfigError (one line,
    naming the holder's PID) if another process holds it. Use as a context manager or call
    `release()`; the lock also ends with the process."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ConfigError(f"cannot lock run directory {str(self.path.parent)!r}: "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"process {holder}" if holder else "another process"
                raise ConfigError(f"run directory {str(self.path.parent)!r} is in use by {who} (a `bomrl "
                                  "train` writing it): wait for it to finish or stop it first") from None
            raise ConfigError(f"cannot lock run directory {str(self.path.parent)!r}: "
                              f"{exc.strerror or exc}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
