"""Meta-World (PyPI `metaworld` 3.0.0, `pip install -e ".[metaworld]"`) as task families.

    bomrl train --env ml1-reach-v3 --algo maml-trpo      # ML1: one environment, its 50 variations
    bomrl train --env ml10 --algo bomrl                  # ML10: 10 training classes, 5 test classes

Built on Meta-World's public benchmark API as installed (`metaworld.ML1(name, seed)`,
`metaworld.ML10(seed)`: `train_classes`, `test_classes`, `train_tasks`, `test_tasks`,
`env.set_task(task)` before `reset`), not on its gymnasium registrations: `gym.make_vec
("Meta-World/ML1-train")` returns the TEST split in 3.x (its registration loop binds `split` late;
upstream PR #573) and needs `meta_batch_size` divisibility and a `sample_tasks` call first.

- A task is the float vector [split, class, variation] (split 0 = train, 1 = test; class = index
  into the split's classes in Meta-World's order; variation = index into that class's 50 tasks of
  the split). `sample_tasks` draws uniformly from the split's flat task list (ML1: 50 goal
  positions drawn with the benchmark seed; ML10: 10 classes × 50), `sample_test_tasks` from the
  test split (ML1: 50 other positions, drawn with seed + 1; ML10: the 5 held-out classes × 50).
  The benchmark seed (`seed=`, default 0) fixes both sets.
- Observation 39-dim (goal entries zero: the ML benchmarks are partially observable), action
  Box(−1, 1, 4) (the library's action scale 10 maps the policy's [−10, 10] onto it), episodes of at
  most 500 steps (`max_path_length`; a longer `--horizon` is refused), never terminated early.
- Reward: the env's own (reward function v2, in [0, 10]). `episode_stats = {"success": "max"}`:
  an episode succeeds if `info["success"]` is 1 at any of its steps.
- Reset seeds have no effect: a variation fixes the initial positions (Meta-World freezes them).
- MuJoCo 4: Meta-World 3.x writes 11 numbers into each weld's `eq_data` row, which MuJoCo 4 widened
  to 12 (the 12th flags a relative pose to recompute; zero = use the written one). Importing this
  module patches `SawyerMocapBase.reset_mocap_welds` to write the same 11 values and a zero; with
  MuJoCo 3 nothing is patched. On MuJoCo 4 the physics is not bit-identical to MuJoCo 3.3
  (docs/ENVIRONMENTS.md).
"""

from __future__ import annotations

import functools
import pickle

import numpy as np

from bomrl.envs.families import TaskFamily
from bomrl.errors import ConfigError

# Meta-World 3.x's 50 V3 environments (metaworld.env_dict.ALL_V3_ENVIRONMENTS; a test checks it)
ML1_ENVS = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3",
    "door-open-v3", "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3",
    "faucet-open-v3", "faucet-close-v3", "hammer-v3", "handle-press-side-v3", "handle-press-v3",
    "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3", "pick-place-wall-v3", "pick-out-of-hole-v3",
    "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3",
    "plate-slide-back-side-v3", "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3",
    "stick-pull-v3", "push-v3", "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3",
    "shelf-place-v3", "sweep-into-v3", "sweep-v3", "window-open-v3", "window-close-v3",
)
HORIZON = 500   # Meta-World's max_path_length
SPLITS = ("train", "test")


def import_metaworld():
    """`metaworld`, patched for MuJoCo 4; a one-line ConfigError if it is not installed."""
    try:
        import metaworld
        from metaworld import sawyer_xyz_env
    except ImportError as exc:
        raise ConfigError(f"the Meta-World task families need the metaworld package ({exc}); install it with "
                          "pip install -e \".[metaworld]\" (metaworld 3.0.0)") from None
    import mujoco

    base = sawyer_xyz_env.SawyerMocapBase
    if mujoco.mjNEQDATA != 11 and not getattr(base.reset_mocap_welds, "_bomrl_patched", False):
        base.reset_mocap_welds = _reset_mocap_welds
    return metaworld


def _reset_mocap_welds(self) -> None:
    """Meta-World's weld reset (anchor 0, relative position 0, relative quaternion (−1, 0, 0, 0),
    torque scale 5) on MuJoCo ≥ 4's 12-wide eq_data rows: the 12th entry 0 keeps that pose."""
    import mujoco

    if self.model.nmocap > 0 and self.model.eq_data is not None:
        for i in range(self.model.eq_data.shape[0]):
            if self.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                self.model.eq_data[i, :11] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0)
                self.model.eq_data[i, 11:] = 0.0


_reset_mocap_welds._bomrl_patched = True


@functools.lru_cache(maxsize=8)
def benchmark(kind: str, seed: int):
    """Meta-World's benchmark object (built once per process: ML10 takes seconds)."""
    mw = import_metaworld()
    if kind == "ML10":
        return mw.ML10(seed=seed)
    return mw.ML1(kind, seed=seed)


class MetaWorldSlot:
    """One episode slot: a gymnasium-style env that holds the Meta-World env of the class its
    current task belongs to (borrowed from the family's pool, so ML10 slots switch classes without
    building an env per task)."""

    max_path_length = HORIZON

    def __init__(self, family: "MetaWorldFamily"):
        self.family = family
        self.name: str | None = None
        self.env = None
        probe = family._acquire(family.class_names("train")[0])
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        family._release(family.class_names("train")[0], probe)
        self.spec = None

    @property
    def unwrapped(self):
        return self

    def select(self, name: str, task) -> None:
        if name != self.name:
            if self.env is not None:
                self.family._release(self.name, self.env)
            self.env, self.name = self.family._acquire(name), name
        self.env.set_task(task)

    def reset(self, *, seed=None, options=None):
        if self.env is None:
            raise ConfigError("a Meta-World env needs a task before reset (family.set_task)")
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        return self.env.step(np.asarray(action, np.float64))

    def close(self) -> None:
        if self.env is not None:
            self.family._release(self.name, self.env)
            self.env, self.name = None, None


class MetaWorldFamily(TaskFamily):
    """ML1 (`kind` = an environment name of ML1_ENVS) or ML10 (`kind` = "ML10"); module docstring."""

    horizon = HORIZON
    task_dim = 3
    episode_stats = {"success": "max"}

    def __init__(self, kind: str, seed: int = 0):
        if kind != "ML10" and kind not in ML1_ENVS:
            raise ConfigError(f"Meta-World environment {kind!r} is invalid: allowed values are ML10, "
                              + ", ".join(ML1_ENVS))
        self.kind, self.seed = kind, int(seed)
        self.name = "ml10" if kind == "ML10" else f"ml1-{kind}"
        self._pool: dict[str, list] = {}

    def __getstate__(self):   # worker processes build their own envs
        state = dict(self.__dict__)
        state["_pool"] = {}
        return state

    # ---- the benchmark's task sets ---------------------------------------------------------------
    def _sets(self) -> dict:
        """{split: (class names, tasks)} of the benchmark, kept in the family (and so pickled to
        worker processes, which then need not build the benchmark again)."""
        if "_sets_cache" not in self.__dict__:
            b = benchmark(self.kind, self.seed)
            self._sets_cache = {"train": (list(b.train_classes), list(b.train_tasks)),
                                "test": (list(b.test_classes), list(b.test_tasks))}
        return self._sets_cache

    def class_names(self, split: str) -> list[str]:
        return list(self._sets()[split][0])

    def _tasks(self, split: str) -> list:
        return list(self._sets()[split][1])

    def _by_class(self, split: str) -> dict[str, list]:
        cache = self.__dict__.setdefault("_by_class_cache", {})
        if split not in cache:
            groups: dict[str, list] = {}
            for task in self._tasks(split):
                groups.setdefault(task.env_name, []).append(task)
            cache[split] = groups
        return cache[split]

    def _index(self, split: str) -> list[tuple[int, int]]:
        """(class index, variation index) of every task of the split, in Meta-World's order."""
        names, seen, out = self.class_names(split), {}, []
        for task in self._tasks(split):
            c = names.index(task.env_name)
            out.append((c, seen.get(c, 0)))
            seen[c] = seen.get(c, 0) + 1
        return out

    def _draw(self, split: str, rng: np.random.Generator, n: int) -> np.ndarray:
        index = self._index(split)
        pick = rng.integers(len(index), size=n)
        s = float(SPLITS.index(split))
        return np.array([(s, *index[i]) for i in pick], np.float64).reshape(n, 3)

    def sample_tasks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._draw("train", rng, n)

    def sample_test_tasks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._draw("test", rng, n)

    def metaworld_task(self, task: np.ndarray):
        """The `metaworld.types.Task` a task vector [split, class, variation] stands for."""
        split, c, v = (int(round(x)) for x in np.asarray(task).ravel()[:3])
        if split not in (0, 1):
            raise ConfigError(f"Meta-World task {np.asarray(task).tolist()} is invalid: split must be 0 or 1")
        names = self.class_names(SPLITS[split])
        if not 0 <= c < len(names):
            raise ConfigError(f"Meta-World task {np.asarray(task).tolist()} is invalid: class must be in "
                              f"0..{len(names) - 1}")
        of_class = self._by_class(SPLITS[split])[names[c]]
        if not 0 <= v < len(of_class):
            raise ConfigError(f"Meta-World task {np.asarray(task).tolist()} is invalid: variation must be in "
                              f"0..{len(of_class) - 1}")
        return of_class[v]

    def task_parameters(self, task: np.ndarray) -> dict:
        """The class name and Meta-World's `rand_vec` (object and goal positions) of a task."""
        mt = self.metaworld_task(task)
        return {"env_name": mt.env_name, "rand_vec": pickle.loads(mt.data)["rand_vec"].tolist()}

    # ---- envs ------------------------------------------------------------------------------------
    def _acquire(self, name: str):
        free = self._pool.setdefault(name, [])
        if free:
            return free.pop()
        from bomrl.utils import configure_mujoco_log

        configure_mujoco_log()   # MuJoCo's log file away from the working directory
        import_metaworld()
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS   # the classes the benchmarks hold

        return ALL_V3_ENVIRONMENTS[name]()

    def _release(self, name: str, env) -> None:
        self._pool.setdefault(name, []).append(env)

    def make_env(self):
        return MetaWorldSlot(self)

    def set_task(self, env, task: np.ndarray) -> None:
        mt = self.metaworld_task(task)
        env.select(mt.env_name, mt)


def make_family(kind: str, seed: int = 0) -> MetaWorldFamily:
    return MetaWorldFamily(kind, seed)
