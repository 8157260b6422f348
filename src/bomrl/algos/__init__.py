"""Meta-RL algorithms on one interface (`bomrl.algos.base.MetaAlgorithm`): BO-MRL (the paper's
Algorithm 2) and the baselines MAML-TRPO, ProMP, E-MAML, RL² (recurrent, no gradient step at
meta-test), MAESN (per-task latent exploration, adapted by a latent policy-gradient step)
and meta-gradient RL (mgrl: the return's γ and λ learned online on one task).

    Algo, Config = get_algorithm("maml-trpo")
    algo = Algo(Config(), policy)

The registry's entries are lazy ("module:Class"), so importing this package (e.g. from the CLI)
does not import JAX. A plugin registers its own with `register_algorithm(name, cls)`.
"""

from __future__ import annotations

from bomrl.errors import ConfigError
from bomrl.registry import Registry

# name -> the algorithm class (a MetaAlgorithm subclass with a class attribute `Config`, its frozen
# config dataclass, and optionally `PRESETS` and `env_defaults`); lazy "module:Class" entries
ALGORITHMS = Registry("algorithm", "algo")
ALGORITHMS.register("bomrl", "bomrl.algos.bomrl:BoMrl")
ALGORITHMS.register("maml-trpo", "bomrl.algos.maml_trpo:MamlTrpo")
ALGORITHMS.register("promp", "bomrl.algos.promp:ProMP")
ALGORITHMS.register("emaml", "bomrl.algos.emaml:EMaml")
ALGORITHMS.register("rl2", "bomrl.algos.rl2:RL2")
ALGORITHMS.register("maesn", "bomrl.algos.maesn:Maesn")
ALGORITHMS.register("mgrl", "bomrl.algos.mgrl:Mgrl")


def register_algorithm(name: str, algo_cls, overwrite: bool = False) -> None:
    """Register an algorithm class (or a lazy "module:Class" string) as `name` for --algo."""
    ALGORITHMS.register(name, algo_cls, overwrite=overwrite)


def algorithm_names() -> list[str]:
    return ALGORITHMS.names()


def get_algorithm(name: str):
    """(AlgorithmClass, ConfigClass) for a registered name; ConfigError listing the names otherwise."""
    algo_cls = ALGORITHMS.get(name)
    cfg_cls = getattr(algo_cls, "Config", None)
    if cfg_cls is None:
        raise ConfigError(f"the algorithm registered as {name!r} ({algo_cls!r}) has no Config attribute "
                          "(its frozen config dataclass)")
    return algo_cls, cfg_cls


def make_algorithm(name: str, policy, config=None):
    """Instantiate algorithm `name` for `policy` with `config` (default config if None)."""
    algo_cls, cfg_cls = get_algorithm(name)
    if config is None:
        config = cfg_cls()
    elif not isinstance(config, cfg_cls):
        raise ConfigError(f"config of type {type(config).__name__} is invalid for algo={name!r}: "
                          f"must be {cfg_cls.__name__}")
    return algo_cls(config, policy)
