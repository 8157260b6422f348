"""`bomrl train` configuration: flags, an optional --config FILE (JSON or TOML), validation.

Precedence, one rule for every setting (lowest first): the dataclass default < the algorithm's
per-env defaults (the paper's Appendix B) < `--preset` < the `--config` FILE (its fields, its
`algo_config` table and its `set` list) < `--set NAME=VALUE` on the command line < a command-line
flag (`--lam`, `--distance`, `--tasks`, ...). A flag counts as given when its value differs from the
built-in default (tyro cannot tell "given equal to the default" from "not given"), so to override a
file value with the built-in default, edit the file.

Everything is checked by `resolve_train_config` before any work starts; a bad value raises a
one-line ConfigError naming the value and what is allowed. Import-light (no JAX at import time;
building the algorithm config imports the algorithm module).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from bomrl.algos import algorithm_names, get_algorithm
from bomrl.core import DISTANCES, distance_names
from bomrl.envs import BACKENDS
from bomrl.envs.families import family_names, get_family
from bomrl.errors import ConfigError, check, check_choice
from bomrl.limits import (MAX_COUNT, MAX_HIDDEN, MAX_ITERATIONS, check_counts, check_int, check_positive, check_seed,
                          check_workers)
from bomrl.workflow.plugins import import_plugins

MAX_WEIGHTS = 10**7           # weights between hidden layers (x 4 bytes x the copies TRPO / CG keep)
CONFIG_NAME = "config.json"
# Fields that may differ from the saved run config on `--resume` (they do not change the numbers).
RESUME_MUTABLE = ("iterations", "checkpoint_every", "sampler", "ray_address", "workers", "progress",
                  "tensorboard")


@dataclass(frozen=True)
class TrainConfig:
    """Meta-train an algorithm on a task family; resumable, logged to DIR (see docs/WORKFLOW.md)."""

    env: str = "halfcheetah-vel"
    """Task family: halfcheetah-vel, halfcheetah-dir, ant-vel, ant-dir or any registered one."""
    algo: str = "bomrl"
    """Meta-RL algorithm: bomrl, maml-trpo, promp, emaml or any registered one (`bomrl train --algo A
    --help` lists its settings for --set)."""
    distance: Optional[str] = None
    """BO-MRL only: d1 = KL(π_φ‖π_θ) (default), d2 = KL(π_θ‖π_φ), d3 = ‖θ−φ‖² (aliases kl, rkl,
    euclid), or a name registered with bomrl.core.register_distance (by a --plugins module)."""
    lam: Optional[float] = None
    """BO-MRL only: λ of eq. (7); default 0.5 (the paper's 0.4 for d2 on halfcheetah-vel)."""
    iterations: int = 500
    """Total meta-iterations (on --resume: the new total, may be raised to train longer)."""
    tasks: int = 40
    """Tasks per meta-batch (fresh tasks every iteration)."""
    episodes: int = 20
    """Episodes per task and per sampling round."""
    post_episodes: Optional[int] = None
    """Episodes per task of the post-update batch (default: --episodes; the paper's released
    scripts: 5 × --episodes). Gradient-based algorithms only; meta-test rounds keep --episodes."""
    horizon: Optional[int] = None
    """Steps per episode; default the family's (200 for the locomotion families)."""
    action_scale: Optional[float] = None
    """Action scale s: the policy acts in [-s, s], mapped linearly onto the env's bounds; default
    the family's (10 for the locomotion families: the MAML-family convention, pytorch-maml-rl
    normalization_scale / ProMP NormalizedEnv); 1 = plain clipping to [-1, 1] (runs saved before
    this setting existed used 1)."""
    seed: int = 0
    """Seed of the policy initialisation, tasks, resets and action noise."""
    out: Optional[Path] = None
    """Run directory; default runs/ENV-ALGO[-DISTANCE]-sSEED."""
    config: Optional[Path] = None
    """JSON or TOML file with any of these fields (plus an `algo_config` table of algorithm
    hyper-parameters); command-line flags win over it."""
    resume: Optional[Path] = None
    """Continue the run in this directory from its latest good checkpoint."""
    checkpoint_every: int = 10
    """Checkpoint every this many iterations (and always at the end)."""
    sampler: Literal["vector", "process", "ray"] = "vector"
    """Sampler backend (results are identical on every backend)."""
    ray_address: Optional[str] = None
    """--sampler ray: address of a Ray cluster (default: start a local Ray instance)."""
    workers: int = 0
    """Sampler threads/processes (0: one per CPU core)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the tanh Gaussian MLP policy."""
    precision: Literal["float32", "float64"] = "float32"
    """Arithmetic of the learning core: float32 (fast) or float64 (numbers that agree across CPU
    kinds to many digits, for exact comparisons; ≈ 2× slower). Fixed for the run's life."""
    init_std: float = 1.0
    """Initial standard deviation of the Gaussian policy."""
    select_tasks: int = 0
    """Model selection (the paper's released scripts: 2, the directions ±1): after each iteration,
    adapt once on this many fixed selection tasks (the family's fixed list, else a draw of their
    own) with --episodes episodes per round, and keep the policy whose post-adaptation return is
    the best so far in DIR/best.bomrl (`bomrl meta-test --checkpoint best`). 0 = off."""
    fixed_tasks: bool = False
    """Train on the same --tasks tasks every iteration: the family's fixed list if it has one
    (direction families: −1, +1, −1, +1, ..., the paper's released scripts), else the tasks drawn
    for the first iteration. Meta-testing still draws fresh tasks."""
    obs_filter: bool = False
    """Normalise observations by running statistics, clip((obs − mean)/std, ±5), kept in the policy's
    parameters (zero gradient), advanced after each iteration by all its valid observations, frozen
    within an iteration and at meta-test (the paper's released scripts: updated at every step,
    meta-test included). Gaussian MLP policies."""
    fixed_std: bool = False
    """Keep the Gaussian policy's standard deviation at --init-std instead of learning it (the
    paper's released policy: log-std a constant 0)."""
    preset: Optional[str] = None
    """Named algorithm preset applied before --config's algo_config and --set (BO-MRL: "paper" =
    the paper's Appendix B solver and implicit eq. (8) hypergradient; see docs/BASELINES.md)."""
    set: tuple[str, ...] = ()
    """Algorithm hyper-parameter overrides NAME=VALUE, e.g. --set inner_steps_adam=20 max_kl=0.01."""
    progress: bool = True
    """Show a progress bar (ETA, live post-adaptation return)."""
    tensorboard: bool = True
    """Also write TensorBoard event files to DIR/tb."""
    plugins: tuple[str, ...] = ()
    """Python modules to import first (they may register task families and distances)."""


_DEFAULT = TrainConfig()
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


# ---- config files -------------------------------------------------------------------------------
def read_config_file(path: Path) -> dict:
    """Parse a JSON or TOML file into a dict (one-line ConfigError on any problem)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--config={str(path)!r} cannot be read ({exc.strerror or exc})") from None
    if path.suffix.lower() not in (".toml", ".json"):
        raise ConfigError(f"--config={str(path)!r} is invalid: must end in .json or .toml")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib   # lazy: Python >= 3.11 only, and only TOML files need it

            data = tomllib.loads(raw.decode())
        else:
            data = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"--config={str(path)!r} is not valid {path.suffix[1:].upper()}: {msg}") from None
    check(isinstance(data, dict), "--config", str(path), "a JSON object or TOML document of NAME = VALUE")
    return data


def _coerce(name: str, value: Any, where: str) -> Any:
    """Check/convert a config-file value to the type of TrainConfig field `name`."""
    hint = _HINTS[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    if value is None:
        check(optional, f"{name} (in {where})", value, "a value (it is not optional)")
        return None
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    origin = typing.get_origin(base)

    def bad(allowed: str):
        raise ConfigError(f"{name}={value!r} (in {where}) is invalid: must be {allowed}")

    if origin is Literal:
        if value not in typing.get_args(base):
            bad("one of " + ", ".join(typing.get_args(base)))
        return value
    if base is bool:
        return value if isinstance(value, bool) else bad("true or false")
    if base is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else bad("an integer")
    if base is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else bad("a number")
    if base is str:
        return value if isinstance(value, str) else bad("a string")
    if base is Path:
        return Path(value) if isinstance(value, str) else bad("a path string")
    if origin is tuple:
        elem = typing.get_args(base)[0]
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, elem) and not isinstance(v, bool) for v in value):
            bad(f"a list of {elem.__name__}")
        return tuple(value)
    raise AssertionError(f"unhandled field type {hint}")  # pragma: no cover


def config_from_mapping(data: dict, where: str) -> tuple[dict, dict]:
    """Split a parsed file into (TrainConfig field values, algo_config overrides)."""
    values, algo_overrides = {}, {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name == "algo_config":
            check(isinstance(value, dict), f"algo_config (in {where})", value, "a table of NAME = VALUE")
            algo_overrides.update(value)
            continue
        if name not in _FIELDS or name in ("config", "resume"):
            allowed = ", ".join(n for n in _FIELDS if n not in ("config", "resume"))
            raise ConfigError(f"{key!r} (in {where}) is not a train setting: allowed are {allowed}, algo_config")
        values[name] = _coerce(name, value, where)
    if "algo" in values:   # registered names: the file's own plugins may register the algorithm
        import_plugins(values.get("plugins", ()))
        check_choice(f"algo (in {where})", values["algo"], algorithm_names())
    return values, algo_overrides


def _given(cli: TrainConfig) -> dict:
    """The settings given on the command line: the flags it named (recorded by bomrl.cli.parse), or,
    for a config built in Python, those whose value differs from the built-in default."""
    named = getattr(cli, "_given_flags", None)
    if named is not None:
        return {n: getattr(cli, n) for n in _FIELDS if n in named}
    return {n: getattr(cli, n) for n in _FIELDS if getattr(cli, n) != getattr(_DEFAULT, n)}


# ---- algorithm configs ----------------------------------------------------------------------------
def parse_overrides(cfg_cls, items: tuple[str, ...]) -> dict:
    """NAME=VALUE strings -> {name: typed value} against the fields of an algorithm config class."""
    out = {}
    for item in items:
        name, sep, raw = str(item).partition("=")
        try:
            out.update(typed_overrides(cfg_cls, {name: raw} if sep else {item: None}, raw_strings=True))
        except ConfigError as exc:
            raise ConfigError(f"--set {str(item)!r}: {exc}") from None
    return out


def refuse_repeated_names(items, where: str) -> None:
    """One source (the command line's --set, or a file's `set`) may name a setting only once."""
    first: dict = {}
    for item in items:
        name, sep, _ = str(item).partition("=")
        if sep and name.strip() in first:
            raise ConfigError(f"{where} names {name.strip()!r} twice ({first[name.strip()]!r} and {str(item)!r}): "
                              "give each setting once")
        first.setdefault(name.strip(), str(item))


def typed_overrides(cfg_cls, mapping: dict, raw_strings: bool = False) -> dict:
    """Check names against cfg_cls fields and convert values to the default's type."""
    fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
    defaults = cfg_cls()
    out = {}
    for name, value in mapping.items():
        if name not in fields or (raw_strings and value is None):
            raise ConfigError(f"algorithm setting {name!r} is invalid: must be NAME=VALUE with NAME one of "
                              f"{', '.join(fields)}")
        default = getattr(defaults, name)
        try:
            if isinstance(default, bool):
                if isinstance(value, str):
                    check(value.lower() in ("true", "false", "1", "0"), name, value, "true or false")
                    value = value.lower() in ("true", "1")
                check(isinstance(value, bool), name, value, "true or false")
            elif isinstance(default, int):
                check(not isinstance(value, (bool, float)), name, value, "an integer")
                value = int(value)
            elif isinstance(default, float):
                check(not isinstance(value, bool), name, value, "a number")
                value = float(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            kind = {int: "an integer", float: "a number", str: "a string"}.get(type(default), type(default).__name__)
            raise ConfigError(f"{name}={value!r} is invalid: must be {kind}") from None
        out[name] = value
    return out


def build_algo_config(cfg: TrainConfig, extra: dict | None = None):
    """The algorithm's frozen config. Precedence, lowest first (one rule, docs/WORKFLOW.md):
    the config dataclass's defaults < the algorithm's `env_defaults(env, ...)` (the paper's
    per-env settings) < `--preset` < `extra` (a --config file's algo_config table, or a saved run's
    algo_config) < `cfg.set` (the file's `set` entries, then the command line's) < the flags
    `--lam` / `--distance` (fields of the same name)."""
    algo_cls, cfg_cls = get_algorithm(cfg.algo)
    presets = getattr(algo_cls, "PRESETS", {})
    preset = {}
    if cfg.preset is not None:
        check_choice(f"--preset (for --algo {cfg.algo})", cfg.preset, presets or ["(none)"])
        preset = typed_overrides(cfg_cls, presets[cfg.preset])
    user = typed_overrides(cfg_cls, dict(extra or {}))
    user.update(parse_overrides(cfg_cls, cfg.set))
    for flag in ("distance", "lam"):
        if getattr(cfg, flag) is not None:
            user.update(typed_overrides(cfg_cls, {flag: getattr(cfg, flag)}))
    env_defaults = getattr(algo_cls, "env_defaults", None)
    base = typed_overrides(cfg_cls, env_defaults(cfg.env, {**preset, **user})) if env_defaults else {}
    try:
        return cfg_cls(**{**base, **preset, **user})
    except TypeError as exc:  # pragma: no cover - guarded by typed_overrides
        raise ConfigError(f"algorithm config: {exc}") from None


def default_out(cfg: TrainConfig) -> Path:
    dist = f"-{cfg.distance or 'd1'}" if cfg.algo == "bomrl" else ""
    return Path("runs") / f"{cfg.env}-{cfg.algo}{dist}-s{cfg.seed}"


# ---- validation ---------------------------------------------------------------------------------------
def validate(cfg: TrainConfig) -> None:
    """One-line ConfigError for the first invalid value (before any work starts)."""
    import_plugins(cfg.plugins)
    check_choice("--env", cfg.env, family_names())
    check_choice("--algo", cfg.algo, algorithm_names())
    if cfg.distance is not None:
        check_choice("--distance", cfg.distance, distance_names())
        check(cfg.algo == "bomrl", "--distance", cfg.distance, f"unset for --algo {cfg.algo} (BO-MRL only)")
    if cfg.lam is not None:
        check(cfg.algo == "bomrl", "--lam", cfg.lam, f"unset for --algo {cfg.algo} (BO-MRL only)")
        check_positive("--lam", cfg.lam)
    for name in ("iterations", "checkpoint_every"):
        value = getattr(cfg, name)
        check(isinstance(value, int) and value >= 1, "--" + name.replace("_", "-"), value, "an integer >= 1")
    check_int("--iterations", cfg.iterations, 1, MAX_ITERATIONS)
    if cfg.horizon is not None:
        check(cfg.horizon >= 1, "--horizon", cfg.horizon, "an integer >= 1")
    for name in ("tasks", "episodes"):
        value = getattr(cfg, name)
        check(isinstance(value, int) and value >= 1, "--" + name, value, "an integer >= 1")
    horizon = cfg.horizon if cfg.horizon is not None else get_family(cfg.env).horizon
    check_counts(("--tasks", cfg.tasks), ("--episodes", cfg.episodes), ("--horizon", horizon))
    check_int("--select-tasks", cfg.select_tasks, 0, MAX_COUNT)
    if cfg.post_episodes is not None:
        check_counts(("--tasks", cfg.tasks), ("--post-episodes", cfg.post_episodes), ("--horizon", horizon))
    if cfg.action_scale is not None:
        check_positive("--action-scale", cfg.action_scale,
                       why="10: the MAML-family convention, 1: plain clipping")
    check_seed("--seed", cfg.seed)
    check_workers("--workers", cfg.workers)
    check(len(cfg.hidden) >= 1 and all(h >= 1 for h in cfg.hidden), "--hidden", cfg.hidden,
          "one or more layer sizes >= 1")
    weights = sum(a * b for a, b in zip(cfg.hidden, cfg.hidden[1:]))
    check(len(cfg.hidden) <= 100 and max(cfg.hidden) <= MAX_HIDDEN and weights <= MAX_WEIGHTS, "--hidden",
          cfg.hidden, f"at most 100 layers of at most {MAX_HIDDEN:,} units and {MAX_WEIGHTS:,} hidden-to-hidden "
          "weights (more would exhaust memory)")
    check_positive("--init-std", cfg.init_std)
    check_choice("--sampler", cfg.sampler, BACKENDS)
    if cfg.sampler == "ray":
        check("ray" in BACKENDS, "--sampler", cfg.sampler,
              f"one of {', '.join(BACKENDS)} (the ray backend is not available in this install)")
    else:
        check(cfg.ray_address is None, "--ray-address", cfg.ray_address, "unset unless --sampler ray")


def config_to_json(cfg: TrainConfig) -> dict:
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(cfg).items()}


LEGACY_ACTION_SCALE = 1.0   # runs saved before `action_scale` existed clipped env actions to [-1, 1]
# algorithm settings added after runs were saved: a saved algo_config without them ran with these
LEGACY_ALGO_SETTINGS = {"bomrl": {"inner_solver": "adam", "line_search": "linear"}}


def saved_algo_config(saved: dict, algo: str) -> dict:
    """The algo_config of a saved config.json, with settings it predates filled in as they ran."""
    out = dict(saved.get("algo_config", {}))
    for name, value in LEGACY_ALGO_SETTINGS.get(algo, {}).items():
        out.setdefault(name, value)
    return out


def config_from_json(data: dict, where: str) -> TrainConfig:
    values, _ = config_from_mapping({k: v for k, v in data.items() if k not in ("config", "resume")}, where)
    values.setdefault("action_scale", LEGACY_ACTION_SCALE)
    return TrainConfig(**values)


def resolve_train_config(cli: TrainConfig) -> tuple[TrainConfig, dict, Path, bool]:
    """Merge defaults < --config FILE < flags (or the saved config on --resume), validate.

    Returns (config, algo_config overrides from files, run directory, resuming?).
    """
    given = _given(cli)
    if cli.resume is not None:
        run_dir = Path(cli.resume)
        saved_path = run_dir / CONFIG_NAME
        check(saved_path.is_file(), "--resume", str(run_dir), f"a run directory containing {CONFIG_NAME}")
        try:
            saved = json.loads(saved_path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{saved_path} cannot be read ({exc})") from None
        base = config_from_json(saved.get("train", {}), str(saved_path))
        algo_extra = saved_algo_config(saved, base.algo)
        changes = {}
        for name, value in given.items():
            if name == "config":
                raise ConfigError(f"--config={str(value)!r} is invalid with --resume: the run's saved "
                                  f"{CONFIG_NAME} is used")
            if name == "resume":
                continue
            if name == "out":
                if Path(value).resolve() != run_dir.resolve():
                    raise ConfigError(f"--out={str(value)!r} is invalid with --resume: the run continues in "
                                      f"{str(run_dir)!r} (copy the directory first to continue it elsewhere)")
                continue
            if name in ("lam", "distance"):   # stored in the run's algo_config
                cfg_cls = get_algorithm(base.algo)[1]
                if value is None or name not in {f.name for f in dataclasses.fields(cfg_cls)}:
                    raise ConfigError(f"--{name}={value!r} is invalid with --resume of a {base.algo} run")
                saved_value = build_algo_config(base, algo_extra).__getattribute__(name)
                same = (DISTANCES.canonical(value) == DISTANCES.canonical(saved_value) if name == "distance"
                        else float(value) == float(saved_value))
                if not same:
                    raise ConfigError(f"--{name}={value!r} is invalid with --resume: the run was started with "
                                      f"{saved_value!r}")
                continue
            if name not in RESUME_MUTABLE and value != getattr(base, name):
                raise ConfigError(f"--{name.replace('_', '-')}={value!r} is invalid with --resume: the run "
                                  f"was started with {getattr(base, name)!r}; only "
                                  f"{', '.join('--' + n.replace('_', '-') for n in RESUME_MUTABLE)} may change")
            changes[name] = value
        cfg = dataclasses.replace(base, **changes, out=run_dir, resume=None, config=None)
        validate(cfg)
        return cfg, algo_extra, run_dir, True

    values, algo_extra = {}, {}
    if cli.config is not None:
        values, algo_extra = config_from_mapping(read_config_file(cli.config), str(cli.config))
    file_set = tuple(values.get("set", ()))
    refuse_repeated_names(file_set, f"set (in {cli.config})")
    refuse_repeated_names(cli.set, "--set")
    cli_set_names = {str(item).partition("=")[0].strip() for item in cli.set}
    for flag in ("lam", "distance"):   # the command line's --set beats the file's flag-style field
        if flag in cli_set_names and flag not in given:
            values.pop(flag, None)
    values.update({k: v for k, v in given.items() if k != "config"})
    values["set"] = file_set + tuple(cli.set)
    cfg = dataclasses.replace(_DEFAULT, **values)
    try:
        validate(cfg)
    except ConfigError as exc:   # a value from the file: name the file and key, not a flag
        flag = str(exc).partition("=")[0]
        name = flag[2:].replace("-", "_") if flag.startswith("--") else None
        if cli.config is not None and name in values and name not in given:
            value, sep, rest = str(exc)[len(flag) + 1:].partition(" is invalid")
            raise ConfigError(f"{name} = {value} (in {cli.config}){sep}{rest}") from None
        raise
    if algo_extra:   # the file's algo_config table: an error in it names the file
        try:
            build_algo_config(dataclasses.replace(cfg, set=(), lam=None, distance=None), algo_extra)
        except ConfigError as exc:
            raise ConfigError(f"algo_config (in {cli.config}): {exc}") from None
    run_dir = Path(cfg.out) if cfg.out is not None else default_out(cfg)
    cfg = dataclasses.replace(cfg, out=run_dir, config=None)
    return cfg, algo_extra, run_dir, False
