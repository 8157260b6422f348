"""`bomrl train` configuration: flags, an optional --config FILE (JSON or TOML), validation.

Precedence, one rule for every setting (lowest first): the dataclass default < the algorithm's
per-env defaults (the paper's Appendix B) < `--preset` < the `--config` FILE (its fields, its
`algo_config` table and its `set` list) < `--set NAME=VALUE` on the command line < a command-line
flag of the command (`--tasks`, ...). An algorithm's typed flag (`--lam 5`) is the `--set` entry it
equals (`--set lam=5`); naming a setting both ways is an error. A config file may give an
algorithm's setting at its top level (`lam = 5`), in its `algo_config` table or in its `set` list.

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
    """Meta-RL algorithm: bomrl, maml-trpo, promp, emaml or any registered one. Each of its settings
    is a typed flag too (BO-MRL's distance and λ, say); `bomrl train --algo A --help` lists them."""
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
    """Algorithm hyper-parameter overrides NAME=VALUE, e.g. --set inner_steps=20 max_kl=0.01."""
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
    """Split a parsed file into (TrainConfig field values, algorithm settings): the `algo_config`
    table's entries and the algorithm's settings given at the top level (naming one both ways is an
    error). A top-level algorithm setting of null is skipped (saved runs of versions that kept BO-MRL's
    `lam` and `distance` among the train settings wrote null for "the algorithm's default")."""
    values, algo_overrides, top = {}, {}, {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name == "algo_config":
            check(isinstance(value, dict), f"algo_config (in {where})", value, "a table of NAME = VALUE")
            algo_overrides.update(value)
        elif name in _FIELDS and name not in ("config", "resume"):
            values[name] = _coerce(name, value, where)
        else:
            top[name] = (key, value)
    if "algo" in values or top:   # registered names: the file's own plugins may register the algorithm
        import_plugins(values.get("plugins", ()))
    if "algo" in values:
        check_choice(f"algo (in {where})", values["algo"], algorithm_names())
    if top:
        algo = values.get("algo", _DEFAULT.algo)
        settings = {f.name for f in dataclasses.fields(get_algorithm(algo)[1])}
        for name, (key, value) in top.items():
            if name not in settings:
                allowed = ", ".join(n for n in _FIELDS if n not in ("config", "resume"))
                raise ConfigError(f"{key!r} (in {where}) is not a train setting nor a setting of algo {algo}: "
                                  f"allowed are {allowed}, algo_config, or one of {', '.join(sorted(settings))}")
            if value is None:
                continue
            check(name not in algo_overrides, f"{key} (in {where})", value,
                  f"given once (algo_config also sets it to {algo_overrides.get(name)!r})")
            algo_overrides[name] = value
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
    out, spelled = {}, {}
    for item in items:
        name, sep, raw = str(item).partition("=")
        try:
            typed = typed_overrides(cfg_cls, {name: raw} if sep else {item: None}, raw_strings=True)
        except ConfigError as exc:
            raise ConfigError(f"--set {str(item)!r}: {exc}") from None
        for key in typed:   # a later entry wins, but a former and a current name of one setting clash
            if spelled.setdefault(key, name.strip()) != name.strip():
                current_names(cfg_cls, {spelled[key]: None, name.strip(): None})
        out.update(typed)
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


def current_names(cfg_cls, mapping: dict) -> dict:
    """mapping with each former setting name (cfg_cls.RENAMED, e.g. BO-MRL's inner_steps_adam) replaced
    by today's; naming a setting by both is a ConfigError."""
    renamed = getattr(cfg_cls, "RENAMED", {})
    out, spelled = {}, {}
    for name, value in mapping.items():
        new = renamed.get(name, name)
        if new in out:
            old = next(n for n in (spelled[new], name) if n != new)
            raise ConfigError(f"{old} and {new} name the same setting ({new}; {old} is its former name): give it once")
        out[new], spelled[new] = value, name
    return out


def typed_overrides(cfg_cls, mapping: dict, raw_strings: bool = False) -> dict:
    """Check names against cfg_cls fields (former names read as today's) and convert values to the
    default's type."""
    fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
    defaults = cfg_cls()
    out = {}
    for name, value in current_names(cfg_cls, mapping).items():
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


def preset_overrides(algo: str, preset: str | None) -> dict:
    """The typed settings of the algorithm's preset `preset` ({} for None); an unknown name is a
    one-line ConfigError listing the algorithm's presets."""
    if preset is None:
        return {}
    algo_cls, cfg_cls = get_algorithm(algo)
    presets = getattr(algo_cls, "PRESETS", {})
    check_choice(f"--preset (for --algo {algo})", preset, presets or ["(none)"])
    return typed_overrides(cfg_cls, presets[preset])


def build_algo_config(cfg: TrainConfig, extra: dict | None = None):
    """The algorithm's frozen config. Precedence, lowest first (one rule, docs/WORKFLOW.md):
    the config dataclass's defaults < the algorithm's `env_defaults(env, ...)` (the paper's
    per-env settings) < `--preset` < `extra` (a --config file's algo_config table, or a saved run's
    algo_config) < `cfg.set` (the file's `set` entries, then the command line's) < the flags
    `--lam` / `--distance` (fields of the same name)."""
    algo_cls, cfg_cls = get_algorithm(cfg.algo)
    preset = preset_overrides(cfg.algo, cfg.preset)
    user = typed_overrides(cfg_cls, dict(extra or {}))
    user.update(parse_overrides(cfg_cls, cfg.set))
    env_defaults = getattr(algo_cls, "env_defaults", None)
    base = typed_overrides(cfg_cls, env_defaults(cfg.env, {**preset, **user})) if env_defaults else {}
    try:
        return cfg_cls(**{**base, **preset, **user})
    except TypeError as exc:  # pragma: no cover - guarded by typed_overrides
        raise ConfigError(f"algorithm config: {exc}") from None


def default_out(cfg: TrainConfig, algo_config) -> Path:
    """runs/ENV-ALGO[-VARIANT]-sSEED (VARIANT: the algorithm's variant label, e.g. BO-MRL's d1)."""
    variant = get_algorithm(cfg.algo)[0].variant_label(dataclasses.asdict(algo_config))
    return Path("runs") / "-".join([cfg.env, cfg.algo, *variant.split(), f"s{cfg.seed}"])


# ---- validation ---------------------------------------------------------------------------------------
def validate(cfg: TrainConfig) -> None:
    """One-line ConfigError for the first invalid value (before any work starts)."""
    import_plugins(cfg.plugins)
    check_choice("--env", cfg.env, family_names())
    check_choice("--algo", cfg.algo, algorithm_names())
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


def saved_algo_config(saved: dict, algo: str) -> dict:
    """The algorithm settings of a saved config.json by today's names (the config class's RENAMED):
    its algo_config, plus any algorithm setting that earlier versions kept among the train settings
    (BO-MRL's lam and distance; algo_config holds the same value when both exist), plus the settings
    the algorithm added after the run was saved, as the run ran (the config class's SAVED_DEFAULTS)."""
    out = dict(saved.get("algo_config", {}))
    for name, value in saved.get("train", {}).items():
        if name not in _FIELDS and value is not None:
            out.setdefault(name, value)
    try:
        cfg_cls = get_algorithm(algo)[1]
    except ConfigError:   # an algorithm this process does not know (a plugin's run, plotted without it)
        return out
    out = current_names(cfg_cls, out)
    for name, value in getattr(cfg_cls, "SAVED_DEFAULTS", {}).items():
        out.setdefault(name, value)
    return out


def config_from_json(data: dict, where: str) -> TrainConfig:
    """The TrainConfig of a saved config.json's "train" table (algorithm settings that earlier
    versions kept there are read by `saved_algo_config`)."""
    values, _ = config_from_mapping({k: v for k, v in data.items() if k in _FIELDS and k not in ("config", "resume")},
                                    where)
    values.setdefault("action_scale", LEGACY_ACTION_SCALE)
    return TrainConfig(**values)


def _check_same_settings(base: TrainConfig, algo_extra: dict, entries: tuple[str, ...]) -> None:
    """`--resume` with algorithm settings: each must equal the resumed run's (the run continues as it
    started); a ConfigError names the first that differs and the run's value."""
    saved = build_algo_config(base, algo_extra)
    given = parse_overrides(type(saved), entries)
    asked = build_algo_config(dataclasses.replace(base, set=(*base.set, *entries)), algo_extra)
    for name, value in given.items():
        if getattr(asked, name) != getattr(saved, name) and not _same_variant(base.algo, name, value, saved):
            raise ConfigError(f"--{name.replace('_', '-')}={value!r} is invalid with --resume: the run was "
                              f"started with {getattr(saved, name)!r}")


def _same_variant(algo: str, name: str, value, saved) -> bool:
    """Two names of one variant (BO-MRL's distance kl and d1) count as equal."""
    algo_cls = get_algorithm(algo)[0]
    return name in algo_cls.VARIANT and (algo_cls.variant_label({name: value})
                                         == algo_cls.variant_label({name: getattr(saved, name)}))


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
            if name == "set":   # algorithm settings (--set, typed flags): only the values the run has
                _check_same_settings(base, algo_extra, value)
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
            build_algo_config(dataclasses.replace(cfg, set=()), algo_extra)
        except ConfigError as exc:
            raise ConfigError(f"in {cli.config}: {exc}") from None
    run_dir = Path(cfg.out) if cfg.out is not None else default_out(cfg, build_algo_config(cfg, algo_extra))
    cfg = dataclasses.replace(cfg, out=run_dir, config=None)
    return cfg, algo_extra, run_dir, False
