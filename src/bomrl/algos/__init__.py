"""Meta-RL algorithms on one interface (`bomrl.algos.base.MetaAlgorithm`): BO-MRL (the paper's
Algorithm 2) and the baselines MAML-TRPO, ProMP and E-MAML.

    Algo, Config = get_algorithm("maml-trpo")
    algo = Algo(Config(), policy)

Imports are lazy so that importing this package (e.g. from the CLI) does not import JAX.
"""

from __future__ import annotations

import importlib

from bomrl.errors import check_choice

# name -> (module, algorithm class, config class)
ALGORITHMS: dict[str, tuple[str, str, str]] = {
    "bomrl": ("bomrl.algos.bomrl", "BoMrl", "BoMrlConfig"),
    "maml-trpo": ("bomrl.algos.maml_trpo", "MamlTrpo", "MamlTrpoConfig"),
    "promp": ("bomrl.algos.promp", "ProMP", "ProMPConfig"),
    "emaml": ("bomrl.algos.emaml", "EMaml", "EMamlConfig"),
}


def get_algorithm(name: str):
    """(AlgorithmClass, ConfigClass) for a registered name; ConfigError listing the names otherwise."""
    check_choice("algo", name, ALGORITHMS)
    module, algo_cls, cfg_cls = ALGORITHMS[name]
    mod = importlib.import_module(module)
    return getattr(mod, algo_cls), getattr(mod, cfg_cls)


def make_algorithm(name: str, policy, config=None):
    """Instantiate algorithm `name` for `policy` with `config` (default config if None)."""
    algo_cls, cfg_cls = get_algorithm(name)
    if config is None:
        config = cfg_cls()
    elif not isinstance(config, cfg_cls):
        from bomrl.errors import ConfigError

        raise ConfigError(f"config of type {type(config).__name__} is invalid for algo={name!r}: "
                          f"must be {cfg_cls.__name__}")
    return algo_cls(config, policy)
