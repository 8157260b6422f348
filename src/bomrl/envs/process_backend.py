"""The "process" sampler backend: a stepper over worker processes (fresh interpreters running
`bomrl.envs.worker`), each stepping a contiguous chunk of the environments; `bomrl.envs.rollout`
drives it like any stepper."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection

import numpy as np

from bomrl.envs.families import TaskFamily
from bomrl.envs.rollout import shard_slices
from bomrl.errors import BomrlError, ConfigError

class ProcessStepper:
    """Stepper interface over worker processes, each stepping a contiguous chunk of the envs."""

    START_TIMEOUT = 120.0

    def __init__(self, family: TaskFamily, num_envs: int, num_workers: int):
        try:
            family_bytes = pickle.dumps(family)
        except Exception as exc:
            raise ConfigError(
                f"backend='process' needs a picklable task family ({family!r} is not: {exc}); "
                "define it in an importable module or use backend='vector'") from None
        self.slices = shard_slices(num_envs, num_workers)
        self.procs: list[subprocess.Popen] = []
        self.conns: list[Connection] = []
        # Workers are fresh interpreters (`python -m bomrl.envs.worker FD`), not multiprocessing
        # children: nothing is forked from a process that may hold JAX's threads, and the user's
        # __main__ module is never re-imported (no `if __name__ == "__main__"` guard needed).
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        try:
            for _ in self.slices:
                parent, child = socket.socketpair()
                try:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "bomrl.envs.worker", str(child.fileno())],
                        pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL)
                finally:
                    child.close()
                self.procs.append(proc)
                self.conns.append(Connection(parent.detach()))
            for i, sl in enumerate(self.slices):
                self._send(i, ("init", (list(sys.path), family_bytes, sl.stop - sl.start)))
            for i in range(len(self.procs)):
                self._recv(i, timeout=self.START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def _send(self, i: int, msg) -> None:
        try:
            self.conns[i].send(msg)
        except (BrokenPipeError, ConnectionError, OSError):
            raise BomrlError(f"sampler worker {i} (pid {self.procs[i].pid}) is gone "
                             f"(exit code {self.procs[i].poll()})") from None

    def _recv(self, i: int, timeout: float | None = None):
        conn, proc = self.conns[i], self.procs[i]
        start = time.monotonic()
        while not conn.poll(0.2):
            if proc.poll() is not None:
                if conn.poll(0):  # it may have replied just before exiting
                    break
                raise BomrlError(f"sampler worker {i} (pid {proc.pid}) died with exit code {proc.returncode}")
            if timeout is not None and time.monotonic() - start > timeout:
                raise BomrlError(f"sampler worker {i} (pid {proc.pid}) did not answer within {timeout:.0f} s")
        try:
            status, payload = conn.recv()
        except (EOFError, OSError):  # the worker is gone: wait a moment for its exit code
            try:
                code = proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                code = None
            raise BomrlError(f"sampler worker {i} (pid {proc.pid}) died with exit code {code}") from None
        if status == "error":
            last = payload.strip().splitlines()[-1] if payload.strip() else "unknown error"
            raise BomrlError(f"sampler worker {i} failed: {last}")
        return payload

    def _call(self, cmd: str, per_worker_args):
        for i, args in enumerate(per_worker_args):
            self._send(i, (cmd, args))
        return [self._recv(i) for i in range(len(self.procs))]

    def reset(self, tasks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return np.concatenate(self._call("reset", [(tasks[s], seeds[s]) for s in self.slices]))

    def step(self, actions: np.ndarray, active: np.ndarray):
        outs = self._call("step", [(actions[s], active[s]) for s in self.slices])
        return tuple(np.concatenate(parts) for parts in zip(*outs))

    def close(self) -> None:
        """Ask every worker to exit, wait up to 5 s, then terminate/kill the stragglers."""
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except Exception:
                pass
        deadline = time.monotonic() + 5.0
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=2.0)
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []
