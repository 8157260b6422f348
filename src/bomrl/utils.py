"""Small shared helpers: quiet runtime set-up, atomic file writes, output directories."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

from bomrl.errors import ConfigError


def quiet_runtime() -> None:
    """Keep the working directory clean and the console quiet.

    MuJoCo writes MUJOCO_LOG.TXT into the current directory on errors; we point it to a temp dir.
    JAX's "no GPU/TPU found" notice and known harmless warnings are silenced.
    """
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log_dir = Path(tempfile.gettempdir()) / "bomrl-mujoco-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MUJOCO_LOG_DIR", str(log_dir))
    warnings.filterwarnings("ignore", message=".*settotalmass.*")


def ensure_out_dir(path: str | os.PathLike, name: str = "--out") -> Path:
    """Create (if needed) and return a writable output directory, or raise a one-line ConfigError."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=p, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise ConfigError(f"{name}={str(path)!r} is not a writable directory ({exc.strerror or exc})") from None
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write data to path atomically: temp file in the same directory, fsync, rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with __import__("contextlib").suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    """JSON-dump obj atomically (sorted keys, so identical inputs give identical bytes)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=indent, sort_keys=True) + "\n").encode())
