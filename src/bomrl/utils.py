"""Small shared helpers: quiet runtime set-up, atomic file writes, output directories."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

from bomrl.errors import ConfigError


def mujoco_log_path() -> Path:
    """Where MuJoCo's log file goes: $BOMRL_MUJOCO_LOG_DIR or <tmp>/bomrl-mujoco-logs, never the cwd."""
    log_dir = Path(os.environ.get("BOMRL_MUJOCO_LOG_DIR") or Path(tempfile.gettempdir()) / "bomrl-mujoco-logs")
    return log_dir / "MUJOCO_LOG.TXT"


def configure_mujoco_log() -> None:
    """Point MuJoCo's log file away from the working directory (once per process).

    MuJoCo (4.x) writes warnings and errors to the file named by its log configuration,
    mjLogConfig.logfile, which defaults to the relative path "MUJOCO_LOG.TXT", i.e. the current
    directory; no environment variable changes that. We set it through mujoco.MjLogConfig. Console
    messages stay on (they are rare and real); the deprecation warning gymnasium's
    half_cheetah.xml triggers is avoided at its source in bomrl.envs.locomotion.load_model.
    """
    global _MUJOCO_LOG_SET
    if _MUJOCO_LOG_SET:
        return
    import mujoco   # lazy: heavy, and only needed once a MuJoCo model is about to be compiled

    path = mujoco_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(mujoco, "MjLogConfig"):
        cfg = mujoco.MjLogConfig.get()
        cfg.logfile = str(path)
        cfg.set()
    else:  # older MuJoCo: route warnings ourselves (console + our log file)
        def _warn(msg: str) -> None:
            print(f"MuJoCo WARNING: {msg}", file=sys.stderr)
            with open(path, "a") as f:
                f.write(f"WARNING: {msg}\n")

        mujoco.set_mju_user_warning(_warn)
    _MUJOCO_LOG_SET = True


_MUJOCO_LOG_SET = False


def quiet_runtime() -> None:
    """Keep the working directory clean and the console quiet.

    MuJoCo's MUJOCO_LOG.TXT is redirected to a temp dir (configure_mujoco_log; done here if MuJoCo
    is already imported, and by bomrl.envs before it compiles any model, so that importing bomrl
    stays fast). JAX's "no GPU/TPU found" notice and known harmless warnings are silenced.
    """
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "mujoco" in sys.modules:
        configure_mujoco_log()


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


def ensure_out_file(path: str | os.PathLike, name: str = "--out") -> Path:
    """Check that `path` can be written (appended to): its directory exists and is writable and it is
    not a directory; a one-line ConfigError otherwise. Nothing is created."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{name}={str(path)!r} is invalid: must be a file, not a directory")
    if not p.parent.is_dir():
        raise ConfigError(f"{name}={str(path)!r} is invalid: must be a file in an existing directory")
    try:
        if p.exists():
            with open(p, "a"):
                pass
        else:
            tempfile.NamedTemporaryFile(dir=p.parent, prefix=".write-test-", delete=True).close()
    except OSError as exc:
        raise ConfigError(f"{name}={str(path)!r} is not writable ({exc.strerror or exc})") from None
    return p


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write data to path atomically: temp file in the same directory, fsync, rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())   # mkstemp's 0600 -> what open() would give
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:   # name the file (full disk, ...)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def atomic_write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    """JSON-dump obj atomically (sorted keys, so identical inputs give identical bytes)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=indent, sort_keys=True) + "\n").encode())
