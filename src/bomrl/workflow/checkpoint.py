"""Atomic, checksummed checkpoints of a training run.

A checkpoint `DIR/ckpt-000010.bomrl` holds the AlgoState pytree's leaves (np.savez), the iteration
and a JSON metadata blob (config, sampler counter, ...). File layout:

    b"BOMRL-CKPT 1\n" + sha256(payload).hex() + b" " + len(payload) + b"\n" + payload (npz bytes)

Writing: payload built in memory, written to a temp file in DIR, fsync, os.replace, fsync(DIR);
only the newest `keep` (default 2) checkpoints are kept. Reading verifies the header, length and
checksum; a truncated or corrupted file raises CheckpointError naming the file, and
`load_latest` then falls back to the previous good checkpoint (reporting what it skipped).

The pytree structure is not stored: the caller passes a template (e.g. `algo.init(key)` for the
same config) and leaves are checked against its shapes and dtypes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from bomrl.errors import BomrlError
from bomrl.utils import atomic_write_bytes

MAGIC = b"BOMRL-CKPT 1\n"
_NAME = re.compile(r"^ckpt-(\d{6,})\.bomrl$")


class CheckpointError(BomrlError):
    """A checkpoint file is missing, truncated, corrupted or does not match the run."""


class Checkpoint(NamedTuple):
    iteration: int      # completed meta-iterations
    leaves: list        # numpy arrays, the flattened state pytree
    meta: dict          # JSON metadata
    path: Path


def checkpoint_path(run_dir: Path, iteration: int) -> Path:
    return Path(run_dir) / f"ckpt-{iteration:06d}.bomrl"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of every checkpoint file in run_dir, newest first."""
    out = []
    for p in Path(run_dir).iterdir() if Path(run_dir).is_dir() else ():
        m = _NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out, reverse=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def encode(iteration: int, leaves: list, meta: dict) -> bytes:
    buf = io.BytesIO()
    arrays = {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(leaves)}
    meta_bytes = json.dumps({**meta, "iteration": int(iteration), "num_leaves": len(leaves)},
                            sort_keys=True).encode()
    np.savez(buf, __meta__=np.frombuffer(meta_bytes, np.uint8), **arrays)
    payload = buf.getvalue()
    header = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b" " + str(len(payload)).encode() + b"\n"
    return header + payload


def decode(data: bytes, path: Path) -> Checkpoint:
    """Parse and verify checkpoint bytes; CheckpointError names `path` and what is wrong."""
    def fail(why: str):
        raise CheckpointError(f"checkpoint {path} is unusable: {why}")

    if not data.startswith(MAGIC):
        fail("not a bomrl checkpoint (bad header)" if data else "empty file")
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        fail("truncated header")
    try:
        digest, length = data[len(MAGIC):end].decode().split(" ")
        length = int(length)
    except ValueError:
        fail("corrupt header")
    payload = data[end + 1:]
    if len(payload) != length:
        fail(f"truncated ({len(payload)} of {length} payload bytes)")
    if hashlib.sha256(payload).hexdigest() != digest:
        fail("checksum mismatch (the file is corrupted)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            leaves = [z[f"leaf_{i:05d}"] for i in range(int(meta["num_leaves"]))]
    except Exception as exc:  # checksum matched, so this is a format error
        fail(f"unreadable payload ({type(exc).__name__}: {exc})")
    return Checkpoint(int(meta["iteration"]), leaves, meta, Path(path))


def save_checkpoint(run_dir: Path, iteration: int, leaves: list, meta: dict, keep: int = 2) -> Path:
    """Write checkpoint `iteration` atomically, then delete all but the newest `keep`."""
    run_dir = Path(run_dir)
    path = _write(checkpoint_path(run_dir, iteration), iteration, leaves, meta)
    for _, old in list_checkpoints(run_dir)[keep:]:
        old.unlink(missing_ok=True)
    for stale in run_dir.glob(".ckpt-*.tmp"):  # temp files of a writer killed mid-write
        stale.unlink(missing_ok=True)
    return path


BEST_NAME = "best.bomrl"   # the model-selection checkpoint (`bomrl train --select-tasks`)


def save_best(run_dir: Path, iteration: int, leaves: list, meta: dict) -> Path:
    """Write DIR/best.bomrl atomically (same format as the periodic checkpoints; never pruned)."""
    return _write(Path(run_dir) / BEST_NAME, iteration, leaves, meta)


def _write(path: Path, iteration: int, leaves: list, meta: dict) -> Path:
    """Encode and write one checkpoint file atomically, then fsync its directory."""
    atomic_write_bytes(path, encode(iteration, [np.asarray(x) for x in leaves], meta))
    _fsync_dir(path.parent)
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc.strerror or exc})") from None
    return decode(data, Path(path))


def load_latest(run_dir: Path, warn=None) -> Checkpoint:
    """The newest checkpoint that verifies; bad newer ones are reported through warn(msg) and skipped.

    Raises CheckpointError if there is none or none verifies (listing every failure).
    """
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"no checkpoint (ckpt-*.bomrl) in {run_dir}")
    errors = []
    for _, path in found:
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            errors.append(str(exc))
            if warn is not None:
                warn(f"{exc}; trying the previous checkpoint")
            continue
        return ckpt
    raise CheckpointError("no usable checkpoint in " + str(run_dir) + ": " + "; ".join(errors))


def restore_tree(template: Any, ckpt: Checkpoint):
    """Unflatten the checkpoint's leaves with the structure of `template` (shapes/dtypes checked)."""
    tmpl_leaves, treedef = jax.tree_util.tree_flatten(template)
    if len(tmpl_leaves) != len(ckpt.leaves):
        raise CheckpointError(f"checkpoint {ckpt.path} does not match this run's config "
                              f"({len(ckpt.leaves)} arrays, expected {len(tmpl_leaves)})")
    leaves = []
    for i, (t, x) in enumerate(zip(tmpl_leaves, ckpt.leaves)):
        t = np.asarray(t)
        if t.shape != x.shape or t.dtype != x.dtype:
            raise CheckpointError(f"checkpoint {ckpt.path} does not match this run's config (array {i}: "
                                  f"{x.dtype}{list(x.shape)}, expected {t.dtype}{list(t.shape)})")
        leaves.append(jax.numpy.asarray(x))
    return jax.tree_util.tree_unflatten(treedef, leaves)
