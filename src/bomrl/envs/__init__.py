"""Environments: task families (the distribution of tasks P(Γ)) and the multi-task sampler.

Importing this package is light (numpy only): the command line validates family names and sampler
backends against it, and the process backend's workers (which never import JAX) unpickle families
from it. The sampler (`bomrl.envs.sampler`, which imports JAX) loads on first access of
`make_sampler` (bomrl.envs.factory), `Sampler` or `SampleStats`. See docs/ENVIRONMENTS.md.
"""

from __future__ import annotations

import importlib

from bomrl.envs.families import GymLoopStepper, TaskFamily, family_names, get_family, register_family

BACKENDS = ("vector", "process", "ray")   # the sampler's backends (bomrl.envs.factory.make_sampler)
_LAZY = {"SampleStats": "bomrl.envs.sampler", "Sampler": "bomrl.envs.sampler", "make_sampler": "bomrl.envs.factory"}

__all__ = ["BACKENDS", "GymLoopStepper", "SampleStats", "Sampler", "TaskFamily", "family_names",
           "get_family", "make_sampler", "register_family"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bomrl.envs' has no attribute {name!r}")
