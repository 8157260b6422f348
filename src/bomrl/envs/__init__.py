"""Environments: task families (the distribution of tasks P(Γ)) and the multi-task sampler.

Importing this package is light (numpy only); MuJoCo, gymnasium and JAX load on first use.
See docs/ENVIRONMENTS.md.
"""

from bomrl.envs.families import GymLoopStepper, TaskFamily, family_names, get_family, register_family
from bomrl.envs.sampler import BACKENDS, SampleStats, Sampler, make_sampler

__all__ = ["BACKENDS", "GymLoopStepper", "SampleStats", "Sampler", "TaskFamily", "family_names",
           "get_family", "make_sampler", "register_family"]
