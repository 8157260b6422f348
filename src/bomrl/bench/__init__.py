"""Benchmarks (`bomrl bench ...`): each times the library's own code paths (the sampler, the
algorithms' jitted phases), never a second copy of them. Results go to docs/BENCHMARKS.md with
date, machine, load average and command; no timing is asserted in tests.

    config.py      the commands' configurations (import-light: the command line builds its parser from them)
    iteration.py   `bomrl bench iteration`: wall/CPU time of whole meta-iterations, any algorithm
    update.py      `bomrl bench update`: BO-MRL's meta-update phase by phase (its own jitted methods)
    learning.py    `bomrl bench learning`: learning curves, the numbers `bomrl train` logs
    sampler.py     `bomrl bench sampler`: the multi-task sampler against bare MuJoCo stepping
"""
