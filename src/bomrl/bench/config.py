"""Configurations of the benchmark commands (`bomrl bench sampler|iteration|learning|update`), one frozen
dataclass each, documented field by field (tyro builds the command line and --help from them).

Import-light (no JAX, no numpy of its own): the command line imports this module to build its
parser; the benchmarks themselves (bomrl.bench.sampler, .iteration, .learning, .update) load after
parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional


@dataclass(frozen=True)
class BenchSamplerConfig:
    """Benchmark the multi-task sampler against bare MuJoCo stepping."""

    env: str = "halfcheetah-vel"
    """Task family (halfcheetah-vel, halfcheetah-dir, ant-vel, ant-dir, or any registered one)."""
    tasks: int = 40
    """Number of tasks T (one parameter set each)."""
    episodes: int = 20
    """Episodes per task E."""
    horizon: int = 200
    """Steps per episode H."""
    backend: Literal["vector", "process", "ray"] = "vector"
    """vector: one process, MuJoCo's C thread pool; process: one worker process per core;
    ray: one Ray actor per core on a local Ray instance (docs/SCALING.md)."""
    workers: int = 0
    """Cores to use, for the sampler and for the raw baseline alike (0: all cores)."""
    repeats: int = 1
    """Timed sampler calls (after a warm-up compile); the best is reported."""
    seed: int = 0
    """Seed of the tasks, resets and policy."""
    action_scale: Optional[float] = None
    """Policy action scale (default the family's: 10 for the locomotion families; 1 = plain
    clipping): the controls the sampler sends, and with --baseline-controls sampler the baseline's."""
    baseline_controls: Literal["sampler", "uniform"] = "sampler"
    """What the bare baseline steps with: "sampler" = the env controls the sampler sent in an
    untimed call with the same policy (MuJoCo's step cost depends on the controls); "uniform" =
    uniform in the env's bounds (the benchmark's records before 2026-12-06)."""
    plugins: tuple[str, ...] = ()
    """Modules to import first (they register task families, distances or algorithms), as
    `bomrl train --plugins`."""



@dataclass(frozen=True)
class BenchIterationConfig:
    """Time meta-iterations of a meta-RL algorithm on a task family."""

    env: str = "halfcheetah-vel"
    """Task family (halfcheetah-vel, halfcheetah-dir, ant-vel, ant-dir, or any registered one)."""
    algo: str = "maml-trpo"
    """Algorithm: bomrl, maml-trpo, promp, emaml, rl2, maesn, mgrl or any registered one."""
    tasks: int = 40
    """Tasks per meta-batch T (new tasks every iteration)."""
    episodes: int = 20
    """Episodes per task and per sampling round E."""
    horizon: int = 100
    """Steps per episode H."""
    iterations: int = 3
    """Timed meta-iterations (the median is reported)."""
    warmup: int = 1
    """Untimed meta-iterations first (JIT compilation happens here)."""
    backend: Literal["vector", "process"] = "vector"
    """Sampler backend: vector (one process, MuJoCo thread pool) or process (worker processes)."""
    workers: int = 0
    """Sampler threads/processes (0: one per CPU core)."""
    action_scale: Optional[float] = None
    """Policy action scale (default the family's: 10 for the locomotion families; 1 = plain clipping)."""
    seed: int = 0
    """Seed of the policy, the tasks, the resets and the action noise."""
    eval_steps: int = 0
    """If > 0: before the first and after the last iteration (untimed), the mean return after
    0..eval_steps adaptations (each on fresh data) on one fixed set of T held-out tasks."""
    set: tuple[str, ...] = ()
    """Algorithm config overrides NAME=VALUE, e.g. --set inner_steps=20 lam=0.4."""
    plugins: tuple[str, ...] = ()
    """Modules to import first (they register task families, distances or algorithms), as
    `bomrl train --plugins`."""



@dataclass(frozen=True)
class BenchUpdateConfig:
    """Time one BO-MRL meta-update (inner solve, hypergradient, TRPO) against sampling its data."""

    tasks: int = 40
    """Tasks per meta-batch T."""
    episodes: int = 20
    """Episodes per task and per sampling round E."""
    horizon: int = 100
    """Steps per episode H."""
    env: str = "halfcheetah-vel"
    """Task family (any registered one)."""
    sample: bool = True
    """Collect the pre- and post-update data with the sampler (and time it); else synthetic data."""
    preset: Optional[str] = None
    """BO-MRL preset (e.g. paper), as `bomrl train --preset`."""
    set: tuple[str, ...] = ()
    """BO-MRL settings NAME=VALUE, as `bomrl train --set` (e.g. --set inner_steps=50)."""
    repeats: int = 3
    """Timed repetitions of each phase after the warm-up (the median is reported)."""
    workers: int = 0
    """Sampler threads (0: one per CPU core)."""
    seed: int = 0
    """Seed of the policy, the tasks and the synthetic data."""
    plugins: tuple[str, ...] = ()
    """Modules to import first (they register task families, distances or algorithms), as
    `bomrl train --plugins`."""



@dataclass(frozen=True)
class BenchLearningConfig:
    """Learning curves (pre/post-adaptation return per meta-iteration) of one algorithm, JSON lines."""

    env: str = "halfcheetah-vel"
    """Task family (any registered one, e.g. halfcheetah-vel, halfcheetah-dir, nav2d)."""
    algo: str = "maml-trpo"
    """Algorithm: bomrl, maml-trpo, promp, emaml, rl2, maesn, mgrl or any registered one."""
    iterations: int = 40
    """Meta-iterations per seed."""
    seeds: tuple[int, ...] = (0,)
    """One learning curve per seed."""
    tasks: int = 40
    """Tasks per meta-batch."""
    episodes: int = 20
    """Episodes per task and sampling round."""
    horizon: Optional[int] = None
    """Steps per episode (default the family's)."""
    action_scale: Optional[float] = None
    """Policy action scale (default the family's: 10 for locomotion, the MAML-family convention)."""
    set: tuple[str, ...] = ()
    """Algorithm setting overrides NAME=VALUE, as for `bomrl train` (each setting is also a typed
    flag: `--algo bomrl --distance rkl`)."""
    window: int = 5
    """Iterations averaged at the end of the curve for the summary line's rise."""
    backend: Literal["vector", "process"] = "vector"
    """Sampler backend."""
    workers: int = 0
    """Sampler threads/processes (0: one per CPU core)."""
    out: Optional[Path] = None
    """Also append the JSON lines to this file."""
    plugins: tuple[str, ...] = ()
    """Modules to import first (they register task families, distances or algorithms), as
    `bomrl train --plugins`."""
