"""Ray backend of the multi-task sampler: rollout workers as Ray actors (docs/SCALING.md).

    make_sampler("halfcheetah-vel", 40, 20, 200, backend="ray", num_workers=8,
                 ray_address=None | "auto" | "HOST:PORT" | "ray://HOST:10001")

- The T tasks are split into min(num_workers, T) contiguous shards (sampler.shard_slices); shard w
  belongs to one actor, which owns the environments of its tasks (shard size × E) and a jitted copy
  of the policy. Each `sample` call sends every actor its tasks, the policy parameters of its tasks
  [shard, ...], its slice of the reset seeds and the key; the actor runs the whole rollout
  (sampler.rollout: policy and environment steps) and returns its [shard, E, H, ...] arrays, which
  the driver concatenates along the task axis. One round trip per actor per call, so the actors
  may sit on other machines.
- Same numbers as the local backends: the reset seeds are the global ones, and the actor draws
  each task's action noise from the same per-task key as the unsharded sampler
  (make_act_fn(policy, shard=(lo, hi, T))). The actor also adopts the driver's jax_enable_x64.
- The policy (its functions) is put into Ray's object store once per policy and cached, jitted,
  in the actors; only parameters travel per call.
- Fault tolerance is Ray's: actors are created with max_restarts=-1 and
  max_task_retries=MAX_TASK_RETRIES. When an actor's process (or node) dies, Ray starts a
  replacement (on any node with a free CPU) from the same constructor arguments and re-runs the
  pending call there; since the call's inputs fully determine its output, the re-sampled shard is
  identical and the other shards' results are kept. An actor that keeps dying, or raises, ends the
  call with a one-line BomrlError.
- Ray is imported only here, only for backend "ray"; without it the user gets a one-line error
  telling them to `pip install "bomrl[ray]"`. With ray_address=None a local Ray instance with
  num_workers CPUs is started (or the already initialised one reused); a Ray instance the
  sampler started is shut down when the last sampler using it closes. Ray logs to /tmp/ray, not
  to the console and not into the working directory.
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np

from bomrl.envs.rollout import first_float_dtype, make_act_fn, rollout, shard_slices
from bomrl.errors import BomrlError, ConfigError

START_TIMEOUT = 180.0  # seconds for all actors to be up (imports + environment construction)
MAX_TASK_RETRIES = 3   # re-runs of one shard's call after its actor died

_OWNED = {"started": False, "users": 0}  # the local Ray instance this module started, if any


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError('backend="ray" needs Ray, an optional extra: pip install "bomrl[ray]"') from None
    return ray


def _last_line(exc: BaseException) -> str:
    text = str(getattr(exc, "cause", None) or exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def connect(address: str | None, num_cpus: int):
    """Attach to Ray: `address` (a cluster), the instance already initialised in this process, or a
    new local instance with num_cpus CPUs. Returns the ray module."""
    ray = import_ray()
    if not ray.is_initialized():
        quiet = dict(logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
        try:
            with warnings.catch_warnings():
                # Ray starts its daemons with subprocess (fork + exec): JAX's fork warning does not apply
                warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
                if address is None:
                    ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
                    _OWNED["started"] = True
                else:
                    ray.init(address=address, **quiet)
        except Exception as exc:
            where = "start a local Ray instance" if address is None else f"connect to ray_address={address!r}"
            raise BomrlError(f"could not {where}: {_last_line(exc)}") from None
    _OWNED["users"] += 1
    return ray


def disconnect() -> None:
    """One sampler stops using Ray; shut down the local instance we started when none is left."""
    _OWNED["users"] = max(0, _OWNED["users"] - 1)
    if _OWNED["users"] == 0 and _OWNED["started"]:
        _OWNED["started"] = False
        import ray

        ray.shutdown()


def _key_to_wire(key):
    """A JAX PRNG key (raw uint32 array or typed key) as (numpy data, impl name or None)."""
    import jax

    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key)), str(jax.random.key_impl(key))
    return np.asarray(key), None


class RolloutWorker:
    """Ray actor (created by RayRollouts) owning the environments of tasks lo..hi-1."""

    def __init__(self, family, lo: int, hi: int, num_tasks: int, episodes: int, horizon: int,
                 dtype: str, x64: bool, action_scale: float):
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        from bomrl.utils import quiet_runtime

        quiet_runtime()
        import jax

        jax.config.update("jax_enable_x64", bool(x64))
        self.shard = (lo, hi, num_tasks)
        self.episodes, self.horizon, self.dtype = episodes, horizon, np.dtype(dtype)
        self.spaces = family.spaces()
        self.action_scale = action_scale
        self.episode_stats = dict(family.episode_stats or {})
        self.stepper = family.make_stepper((hi - lo) * episodes, 1)  # one CPU per actor
        self.act_fns: dict[int, object] = {}

    def pid(self) -> int:
        return os.getpid()

    def _act_fn(self, token: int, policy_box: list):
        fn = self.act_fns.get(token)
        if fn is None:
            import ray

            fn = self.act_fns[token] = make_act_fn(ray.get(policy_box[0]), self.shard)
        return fn

    def _key(self, wire):
        import jax

        data, impl = wire
        return data if impl is None else jax.random.wrap_key_data(data, impl=impl)

    def warmup(self, token: int, policy_box: list, params, key_wire) -> None:
        import jax

        obs = np.zeros((self.shard[1] - self.shard[0], self.episodes, self.spaces[0]), first_float_dtype(params))
        jax.block_until_ready(self._act_fn(token, policy_box)(params, obs, self._key(key_wire), np.int32(0)))

    def sample(self, token: int, policy_box: list, params, tasks, seeds, key_wire):
        """rollout() of this shard: (obs, act, rew, mask, policy_seconds, env_seconds, stats)."""
        stats: dict = {}
        out = rollout(self.stepper, self._act_fn(token, policy_box), params, tasks, seeds,
                      self._key(key_wire), self.episodes, self.horizon, self.spaces, self.dtype,
                      self.action_scale, stats, self.episode_stats)
        return (*out, stats)


class RayRollouts:
    """The Ray backend of a `Sampler` (its `remote`, built by `make_sampler(..., backend="ray")`):
    one actor per contiguous shard of the tasks; `rollout` sends each its shard and concatenates the
    results. close() kills the actors."""

    def __init__(self, family, num_tasks: int, episodes: int, horizon: int, num_workers: int | None, dtype,
                 address: str | None, action_scale: float):
        """num_workers None: one actor per CPU of this machine (local) or of the cluster (address)."""
        import jax

        self.ray = connect(address, num_workers or os.cpu_count() or 1)
        self.actors: list = []
        self._policy_refs: dict = {}
        self.num_tasks = num_tasks
        try:
            if num_workers is None:
                num_workers = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
            self.num_workers = num_workers
            self.slices = shard_slices(num_tasks, num_workers)
            actor_cls = self.ray.remote(RolloutWorker).options(
                num_cpus=1, max_restarts=-1, max_task_retries=MAX_TASK_RETRIES, scheduling_strategy="SPREAD")
            x64 = bool(jax.config.jax_enable_x64)
            try:  # passed by value (not via the object store), so a restarted actor can always rebuild
                self.ray.cloudpickle.dumps(family)
            except Exception as exc:
                raise ConfigError(f"backend='ray' needs a picklable task family ({family!r} is not: "
                                  f"{_last_line(exc)})") from None
            for sl in self.slices:
                self.actors.append(actor_cls.remote(family, sl.start, sl.stop, num_tasks, episodes, horizon,
                                                    np.dtype(dtype).str, x64, action_scale))
            self.pids = self._gather([a.pid.remote() for a in self.actors], START_TIMEOUT, "start")
        except BaseException:
            self.close()
            raise

    def _gather(self, refs: list, timeout: float | None, what: str) -> list:
        """ray.get of one ref per actor; failures become one-line BomrlErrors naming the worker."""
        ray = self.ray
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        if len(ready) < len(refs):
            free = ray.available_resources().get("CPU", 0)
            raise BomrlError(f"only {len(ready)} of {len(refs)} Ray sampler workers could {what} within "
                             f"{timeout:.0f} s (each needs 1 CPU; the cluster has {free:g} free); "
                             "use fewer num_workers or add nodes")
        out = []
        for i, ref in enumerate(refs):
            sl = self.slices[i]
            try:
                out.append(ray.get(ref))
            except ray.exceptions.RayTaskError as exc:
                raise BomrlError(f"Ray sampler worker {i} (tasks {sl.start}..{sl.stop - 1}) failed: "
                                 f"{_last_line(exc)}") from None
            except ray.exceptions.RayError as exc:
                raise BomrlError(f"Ray sampler worker {i} (tasks {sl.start}..{sl.stop - 1}) died and could "
                                 f"not be replaced ({type(exc).__name__}: {_last_line(exc)})") from None
        return out

    def call(self, method: str, per_actor_args: list) -> list:
        refs = [getattr(a, method).remote(*args) for a, args in zip(self.actors, per_actor_args)]
        return self._gather(refs, None, method)

    def worker_pids(self) -> list[int]:
        """Process id of each actor now (a replaced actor has a new one)."""
        return self.call("pid", [()] * len(self.actors))

    def _policy_box(self, policy) -> tuple[int, list]:
        """(token, [ObjectRef of the policy]): the list keeps Ray from resolving the ref per call."""
        entry = self._policy_refs.get(policy)
        if entry is None:
            try:
                ref = self.ray.put(policy)
            except Exception as exc:
                raise ConfigError(f"backend='ray' needs a picklable policy ({_last_line(exc)})") from None
            entry = self._policy_refs[policy] = (len(self._policy_refs), [ref])
        return entry

    def _shards(self, params) -> list:
        import jax

        params = jax.tree_util.tree_map(np.asarray, params)
        return [jax.tree_util.tree_map(lambda x, sl=sl: x[sl], params) for sl in self.slices]

    def warmup(self, policy, params, key) -> None:
        """Compile the policy call in every actor now."""
        token, box = self._policy_box(policy)
        self.call("warmup", [(token, box, p, _key_to_wire(key)) for p in self._shards(params)])

    def rollout(self, policy, params, tasks, seeds, key, stats: dict):
        """`bomrl.envs.rollout.rollout`'s (arrays, policy_seconds, env_seconds) over all tasks, each
        shard in its actor (seconds: the slowest shard's); the family's statistics into `stats`."""
        token, box = self._policy_box(policy)
        wire = _key_to_wire(key)
        E = len(seeds) // self.num_tasks
        args = [(token, box, p, tasks[sl], seeds[sl.start * E:sl.stop * E], wire)
                for sl, p in zip(self.slices, self._shards(params))]
        parts = self.call("sample", args)
        arrays = [np.concatenate([part[j] for part in parts]) for j in range(4)]
        stats.update({name: np.concatenate([part[6][name] for part in parts]) for name in parts[0][6]})
        return arrays, max(part[4] for part in parts), max(part[5] for part in parts)

    def close(self) -> None:
        self._policy_refs = {}
        actors, self.actors = self.actors, []
        if getattr(self, "ray", None) is None:
            return
        ray, self.ray = self.ray, None
        if ray.is_initialized():
            for a in actors:
                try:
                    ray.kill(a, no_restart=True)
                except Exception:
                    pass
        disconnect()


__all__ = ["MAX_TASK_RETRIES", "RayRollouts", "RolloutWorker", "connect", "import_ray"]
