"""Worker process of the multi-process sampler backend (imports numpy and MuJoCo, never JAX).

Started as `python -m bomrl.envs.worker FD`, FD one end of a socketpair wrapped in a
multiprocessing Connection. Protocol, one reply per request:
    ("init",  (sys.path, pickled family, n))         -> ("ok", None)   (must come first)
    ("reset", (tasks [n, task_dim], seeds [n]))       -> ("ok", obs [n, obs_dim])
    ("step",  (actions [n, act_dim], active [n]))     -> ("ok", (obs, rew [n], terminated [n]))
    ("close", None)                                   -> worker exits
On an exception the worker replies ("error", traceback text) and exits; when the parent goes away
(EOF on the connection) it exits too, so no orphan is left behind.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from multiprocessing.connection import Connection


def worker_main(conn: Connection) -> None:
    stepper = None
    try:
        from bomrl.utils import quiet_runtime

        quiet_runtime()
        cmd, (path, family_bytes, num_envs) = conn.recv()
        if cmd != "init":
            raise ValueError(f"expected 'init', got {cmd!r}")
        sys.path[:] = list(dict.fromkeys(list(path) + sys.path))  # the parent's importable modules
        family = pickle.loads(family_bytes)
        stepper = family.make_stepper(num_envs, 1)
        conn.send(("ok", None))
        while True:
            try:
                cmd, payload = conn.recv()
            except (EOFError, OSError):
                break
            if cmd == "close":
                break
            if cmd == "reset":
                conn.send(("ok", stepper.reset(*payload)))
            elif cmd == "step":
                conn.send(("ok", stepper.step(*payload)))
            else:
                raise ValueError(f"unknown command {cmd!r}")
    except (KeyboardInterrupt, EOFError):
        pass
    except BaseException:  # report, then exit: the parent turns it into a one-line error
        try:
            conn.send(("error", traceback.format_exc()))
        except Exception:
            pass
    finally:
        if stepper is not None:
            try:
                stepper.close()
            except Exception:
                pass
        conn.close()


if __name__ == "__main__":
    worker_main(Connection(int(sys.argv[1])))
