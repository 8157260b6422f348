"""The one data layout every sampler produces and every loss consumes.

Axes: T = tasks, E = episodes per task, H = horizon (time steps). Arrays are numpy from samplers
and become jax arrays inside jitted losses.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    obs: np.ndarray       # [T, E, H, obs_dim] observation at each step
    act: np.ndarray       # [T, E, H, act_dim] (continuous) or [T, E, H] int (discrete) action taken
    rew: np.ndarray       # [T, E, H] task reward; 0 after termination
    mask: np.ndarray      # [T, E, H] 1.0 while the episode is alive at step t, 0.0 after it ended
    returns: np.ndarray   # [T, E] undiscounted episode return (sum of rew)
    lengths: np.ndarray   # [T, E] number of valid steps per episode
    stats: dict | None = None   # {name: [T, E]} the family's episode statistics (e.g. success), if any

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[0]

    @property
    def env_steps(self) -> int:
        return int(self.lengths.sum())
