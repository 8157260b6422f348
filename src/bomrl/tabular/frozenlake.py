"""Frozen Lake task distributions (paper Section 6.1, Appendix A) as exact tabular MDPs.

A task is an N×N lake: start at the top-left cell, goal at the bottom-right cell, every other cell
a hole with probability p, independently. Only lakes whose goal is reachable from the start are
kept (rejection sampling). Actions follow gymnasium's FrozenLake: 0 left, 1 down, 2 right, 3 up;
moving into a wall leaves the agent in place. Reward +1 on entering the goal, -1 on entering a hole;
both end the episode (absorbing, zero reward afterwards). With `slip` > 0 the move goes in the
intended direction with probability 1 - slip and in each perpendicular direction with slip / 2
(gymnasium's is_slippery=True is slip = 2/3).
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np

from bomrl.errors import check, check_choice
from bomrl.limits import MAX_COUNT, check_int, check_interval
from bomrl.tabular.mdp import TabularMDP

ACTIONS = ((0, -1), (1, 0), (0, 1), (-1, 0))  # (d_row, d_col) for left, down, right, up
INIT_CHOICES = ("uniform", "start")


class LakeTasks(NamedTuple):
    """A task distribution: K lakes stacked along axis 0 (vmappable), plus their maps."""

    mdp: TabularMDP      # fields with a leading task axis [K, ...]; gamma is a scalar
    maps: np.ndarray     # [K, N, N] chars: S start, F frozen, H hole, G goal


def reachable(holes: np.ndarray) -> bool:
    """Is the bottom-right goal reachable from the top-left start without entering a hole?"""
    n = holes.shape[0]
    seen = np.zeros_like(holes, dtype=bool)
    queue = deque([(0, 0)])
    seen[0, 0] = True
    while queue:
        r, c = queue.popleft()
        if (r, c) == (n - 1, n - 1):
            return True
        for dr, dc in ACTIONS:
            rr, cc = r + dr, c + dc
            if 0 <= rr < n and 0 <= cc < n and not seen[rr, cc] and not holes[rr, cc]:
                seen[rr, cc] = True
                queue.append((rr, cc))
    return False


def sample_holes(rng: np.random.Generator, size: int, hole_prob: float, max_tries: int = 100_000) -> np.ndarray:
    """One N×N hole mask with a reachable goal; start and goal are never holes."""
    for _ in range(max_tries):
        holes = rng.random((size, size)) < hole_prob
        holes[0, 0] = holes[-1, -1] = False
        if reachable(holes):
            return holes
    raise RuntimeError(f"no lake with a reachable goal found in {max_tries} draws (size={size}, p={hole_prob})")


def lake_mdp(holes: np.ndarray, gamma: float, slip: float = 0.0, init: str = "uniform") -> TabularMDP:
    """The exact MDP of one lake. init="uniform": rho uniform over non-terminal cells (full support
    on decision states, Remark 1 (ii)); init="start": rho = the start cell only (gymnasium's)."""
    n = holes.shape[0]
    S, A = n * n, 4
    goal = S - 1
    terminal = holes.reshape(-1).copy()
    terminal[goal] = True
    R_enter = np.where(holes.reshape(-1), -1.0, 0.0)
    R_enter[goal] = 1.0
    P = np.zeros((S, A, S))
    for s in range(S):
        if terminal[s]:
            P[s, :, s] = 1.0
            continue
        r, c = divmod(s, n)
        for a in range(A):
            outcomes = [(a, 1.0 - slip), ((a - 1) % 4, slip / 2), ((a + 1) % 4, slip / 2)]
            for b, prob in outcomes:
                if prob == 0.0:
                    continue
                dr, dc = ACTIONS[b]
                rr, cc = min(max(r + dr, 0), n - 1), min(max(c + dc, 0), n - 1)
                P[s, a, rr * n + cc] += prob
    reward = np.einsum("sat,t->sa", P, R_enter) * (~terminal)[:, None]
    if init == "uniform":
        rho = (~terminal).astype(float)
    else:
        rho = np.zeros(S)
        rho[0] = 1.0
    rho /= rho.sum()
    return TabularMDP(P=P, r=reward, rho=rho, gamma=float(gamma), terminal=terminal)


def lake_map(holes: np.ndarray) -> np.ndarray:
    m = np.where(holes, "H", "F").astype("<U1")
    m[0, 0], m[-1, -1] = "S", "G"
    return m


def sample_lake_tasks(num_tasks: int = 20, size: int = 4, hole_prob: float = 0.3, gamma: float = 0.8,
                      slip: float = 0.0, init: str = "uniform", seed: int = 0) -> LakeTasks:
    """K i.i.d. lakes from the distribution (size, hole_prob), deterministic given the seed."""
    check(isinstance(size, int) and not isinstance(size, bool) and size >= 2, "size", size, "an integer N >= 2")
    check_interval("hole_prob", hole_prob, 0, 1, open_hi=True)
    check_int("tasks", num_tasks, 1, MAX_COUNT)
    check_interval("gamma", gamma, 0, 1, open_lo=True, open_hi=True)
    check_interval("slip", slip, 0, 1)
    check_choice("init", init, INIT_CHOICES)
    rng = np.random.default_rng(seed)
    holes = [sample_holes(rng, size, hole_prob) for _ in range(num_tasks)]
    mdps = [lake_mdp(h, gamma, slip, init) for h in holes]
    stacked = TabularMDP(
        P=np.stack([m.P for m in mdps]),
        r=np.stack([m.r for m in mdps]),
        rho=np.stack([m.rho for m in mdps]),
        gamma=float(gamma),
        terminal=np.stack([m.terminal for m in mdps]),
    )
    return LakeTasks(mdp=stacked, maps=np.stack([lake_map(h) for h in holes]))


def task(tasks: TabularMDP, k: int) -> TabularMDP:
    """The k-th MDP of a stacked task set."""
    return TabularMDP(tasks.P[k], tasks.r[k], tasks.rho[k], tasks.gamma, tasks.terminal[k])
