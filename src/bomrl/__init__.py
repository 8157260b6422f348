"""bomrl: optimization-based meta-reinforcement learning (BO-MRL, Xu & Zhu, NeurIPS 2024) in JAX.

The packages form layers; a module imports only from its own package and from layers below it
(tests/test_package_layers.py checks every import statement, and that no module imports another's
private names or sits on an import cycle):

    ground      errors, limits, registry, utils    one-line errors, bounds, name registries, file helpers
    core        the math: losses, distances, the inner solver, the hypergradient, TRPO, policies
    tabular     exact tabular MDPs (Frozen Lake, the theory's quantities)       (peer of core)
    algos       the meta-algorithms (BO-MRL, MAML-TRPO, ProMP, E-MAML, RL², MAESN, MGRL)
    envs        task families, the sampler and its backends                     (peer of algos)
    workflow    a run: its config, the seeded meta-iteration (workflow/run.py), train, meta-test, plot
    bench, checks, experiments                     commands built on a run
    cli         the `bomrl` command line
"""

__version__ = "0.1.0"
