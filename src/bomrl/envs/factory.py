"""`make_sampler`: the one place that picks a sampler backend ("vector" and "process":
bomrl.envs.sampler.Sampler, stepping locally; "ray": the same Sampler with its rollouts in Ray actors,
bomrl.envs.ray_sampler.RayRollouts, imported only when asked for)."""

from __future__ import annotations

import numpy as np

from bomrl.envs import BACKENDS
from bomrl.envs.families import TaskFamily, check_action_scale, get_family
from bomrl.envs.rollout import family_label
from bomrl.envs.sampler import Sampler
from bomrl.errors import check, check_choice


def make_sampler(family: str | TaskFamily, num_tasks: int, episodes: int, horizon: int | None = None,
                 backend: str = "vector", num_workers: int | None = None, seed: int = 0,
                 dtype=np.float32, ray_address: str | None = None,
                 action_scale: float | None = None) -> Sampler:
    """Build a Sampler; bad arguments raise a one-line ConfigError naming what is allowed.

    action_scale: None keeps the family's own (`TaskFamily.action_scale`, 10 by default); a number
    overrides it for this sampler (`Sampler.action_scale`; the family object is not modified).

    ray_address (backend "ray" only): None starts (or reuses) a local Ray instance with num_workers
    CPUs; "auto" or "HOST:PORT" / "ray://HOST:PORT" attaches to a running cluster."""
    fam = get_family(family)
    for name, value in (("num_tasks", num_tasks), ("episodes", episodes)):
        check(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
              name, value, "an integer >= 1")
    horizon = fam.horizon if horizon is None else horizon
    check(isinstance(horizon, (int, np.integer)) and not isinstance(horizon, bool) and horizon >= 1,
          "horizon", horizon, "an integer >= 1")
    if type(fam).make_stepper is TaskFamily.make_stepper and fam.jax_env() is None:
        limit = fam.horizon_limit   # the loop stepper steps the family's gymnasium env itself
        check(limit is None or horizon <= limit, "horizon", horizon,
              f"at most {limit}: the environment of {family_label(fam)!r} ends every episode after {limit} steps")
    check_choice("backend", backend, BACKENDS)
    check(num_workers is None or (isinstance(num_workers, (int, np.integer)) and num_workers >= 1),
          "num_workers", num_workers, "None (one per CPU core) or an integer >= 1")
    check(np.dtype(dtype) in (np.float32, np.float64), "dtype", dtype, "float32 or float64")
    check(isinstance(seed, (int, np.integer)) and seed >= 0, "seed", seed, "an integer >= 0")
    check(ray_address is None or (backend == "ray" and isinstance(ray_address, str) and ray_address.strip()),
          "ray_address", ray_address, "None, or with backend='ray' a cluster address ('auto', 'HOST:PORT')")
    if backend == "ray":
        from bomrl.envs.ray_sampler import RayRollouts  # imports Ray (an optional extra) lazily

        scale = fam.action_scale if action_scale is None else check_action_scale(action_scale)
        remote = RayRollouts(fam, int(num_tasks), int(episodes), int(horizon), num_workers, dtype, ray_address, scale)
        return Sampler(fam, int(num_tasks), int(episodes), int(horizon), backend, num_workers, int(seed), dtype,
                       action_scale=scale, remote=remote)
    return Sampler(fam, int(num_tasks), int(episodes), int(horizon), backend, num_workers, int(seed), dtype,
                   action_scale=action_scale)


__all__ = ["make_sampler"]
