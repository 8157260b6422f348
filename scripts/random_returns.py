"""Returns of a random policy on the locomotion families (docs/ENVIRONMENTS.md, "Returns of a random
policy"): a freshly initialised policy per task at the default action scale, horizon 200, the mean
undiscounted return over tasks and episodes, for several seeds at two batch sizes.

    python scripts/random_returns.py                  # measure, write results/envs/random-returns.{json,md}
    python scripts/random_returns.py --table-only     # the table from the stored JSON
    python scripts/random_returns.py --check          # exit 1 if the stored table differs from the JSON

Seed s: the tasks of `make_sampler(family, T, E, 200, seed=s).sample_tasks()`, policy parameters
from `split(PRNGKey(s), T)`, actions from `PRNGKey(100 + s)` (tests/test_envs_families.py runs seed
0 at 4 × 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "envs"
FAMILIES = ("halfcheetah-vel", "halfcheetah-dir", "ant-vel", "ant-dir")
SIZES = {"40x5": (40, 5, range(5)), "4x2": (4, 2, range(20))}
HORIZON = 200


def measure() -> dict:
    import jax

    from bomrl.core.policies import gaussian_mlp
    from bomrl.envs import make_sampler

    out = {}
    for family in FAMILIES:
        out[family] = {}
        for size, (tasks, episodes, seeds) in SIZES.items():
            means = []
            for s in seeds:
                with make_sampler(family, tasks, episodes, HORIZON, seed=s) as sampler:
                    policy = gaussian_mlp(sampler.obs_dim, sampler.act_dim)
                    params = jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(s), tasks))
                    _, stats = sampler.sample(policy, params, sampler.sample_tasks(), jax.random.PRNGKey(100 + s))
                means.append(round(float(stats.mean_return.mean()), 3))
            out[family][size] = means
            print(family, size, means, file=sys.stderr, flush=True)
    return out


def _fmt(x: float) -> str:
    """−212, +189, −0.8, +0.3 (one decimal below 10 in absolute value)."""
    return (f"{x:+.1f}" if abs(x) < 10 else f"{x:+.0f}").replace("-", "−")


def table(data: dict) -> str:
    lines = ["| family | 40×5: mean (min, max over seeds 0-4) | 4×2: min, max over seeds 0-19 |", "|---|---|---|"]
    for family in FAMILIES:
        big, small = data[family]["40x5"], data[family]["4x2"]
        mean = sum(big) / len(big)
        lines.append(f"| `{family}` | {_fmt(mean)} ({_fmt(min(big))}, {_fmt(max(big))}) | "
                     f"{_fmt(min(small))}, {_fmt(max(small))} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table-only", action="store_true", help="the table from the stored JSON (no measuring)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the stored table differs from the stored JSON")
    args = ap.parse_args(argv)
    if args.check:
        text = table(json.loads((OUT / "random-returns.json").read_text()))
        if (OUT / "random-returns.md").read_text() != text:
            print("out of date (run python scripts/random_returns.py --table-only)", file=sys.stderr)
            return 1
        return 0
    if not args.table_only:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "random-returns.json").write_text(json.dumps(measure(), indent=1) + "\n")
    (OUT / "random-returns.md").write_text(table(json.loads((OUT / "random-returns.json").read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
