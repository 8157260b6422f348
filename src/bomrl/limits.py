"""The bounds every command checks its numbers against, in one place (import-light: no numpy).

Upper bounds exist where a larger value would exhaust the memory of a workstation (24 GiB, the
machine the defaults are measured on) or is meaningless (a seed JAX would silently truncate to 32
bits, a million worker threads); each error says which and why. They are far above anything the
paper or the docs use (its largest meta-batch, Ant direction's: 40 tasks x 40 episodes x 200 steps =
320,000 steps).
"""

from __future__ import annotations

import math

from bomrl.errors import check

MAX_SEED = 2**31 - 1            # jax.random.PRNGKey keeps 32 bits; (seed + small offsets) stays below 2^32
MAX_WORKERS = 1024              # sampler threads / processes / Ray actors
MAX_COUNT = 10**6               # tasks, episodes, horizon, directions, ... taken one at a time
MAX_STEPS_PER_ROUND = 10**7     # tasks x episodes x horizon of one sampling round (observations alone: GBs)
MAX_ITERATIONS = 10**7          # meta-iterations (keys are fold_in(key, i + 1) with 32-bit i)
MAX_ROUNDS = 10**4              # timing repeats, adaptation rounds at evaluation
MAX_HIDDEN = 10**4             # units per hidden layer
MAX_REAL = 1e6                  # positive scales (λ, std, step sizes, action scale): beyond, float32 squares overflow


def check_int(name: str, value, lo: int, hi: int, why: str = "") -> None:
    """value is an int (not a bool) in [lo, hi]; the message gives the range and, if given, why."""
    ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    check(ok, name, value, f"an integer in [{lo}, {hi:_}]".replace("_", ",") + (f" ({why})" if why else ""))


def check_positive(name: str, value, hi: float = MAX_REAL, why: str = "") -> None:
    """value is a finite real number > 0 and <= hi."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 < value <= hi
    check(ok, name, value, f"a finite number > 0 and <= {hi:g}" + (f" ({why})" if why else ""))


def check_nonnegative(name: str, value, hi: float = MAX_REAL) -> None:
    """value is a real number in [0, hi] (a weight or coefficient that may be switched off)."""
    check_interval(name, value, 0, hi)


def check_interval(name: str, value, lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False,
                   why: str = "") -> None:
    """value is a real number in the interval lo..hi, each end closed unless open_* (a clip range ε in
    (0, 1), a line-search ratio, a sub-sampling fraction in (0, 1]). nan and bools are rejected."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and (lo < value if open_lo else lo <= value) and (value < hi if open_hi else value <= hi))
    interval = f"{'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
    check(ok, name, value, f"a number in {interval}" + (f" ({why})" if why else ""))


def check_unit_interval(name: str, value) -> None:
    """value is a real number in [0, 1] (a discount, a GAE λ, a probability)."""
    check_interval(name, value, 0, 1)


def check_seed(name: str, value) -> None:
    check_int(name, value, 0, MAX_SEED, "JAX keys keep 32 bits: larger seeds would repeat smaller ones")


def check_workers(name: str, value) -> None:
    check_int(name, value, 0, MAX_WORKERS, "0: one per CPU core")


def check_counts(tasks: tuple[str, int], episodes: tuple[str, int], horizon: tuple[str, int] | None) -> None:
    """Each of tasks, episodes (and horizon) in [1, MAX_COUNT] and their product <= MAX_STEPS_PER_ROUND.

    Arguments are (flag, value) pairs; horizon None: not known here (the family's default is checked
    with it by the caller)."""
    pairs = [p for p in (tasks, episodes, horizon) if p is not None]
    for name, value in pairs:
        check_int(name, value, 1, MAX_COUNT)
    steps = math.prod(v for _, v in pairs)
    if steps > MAX_STEPS_PER_ROUND:
        name, value = max(pairs, key=lambda p: p[1])
        flags = " x ".join(n for n, _ in pairs)
        check(False, name, value, f"such that {flags} <= {MAX_STEPS_PER_ROUND:,} environment steps per "
              f"sampling round (here {steps:,}; the arrays of one round would exhaust memory)")
