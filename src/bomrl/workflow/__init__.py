"""A researcher's workflow on top of the algorithms: `bomrl train` (with resume), `bomrl meta-test`
and `bomrl plot`. See docs/WORKFLOW.md.

    config.py      TrainConfig: flags + --config FILE (JSON/TOML), validated up front
    checkpoint.py  atomic, checksummed checkpoints of the AlgoState pytree (last 2 kept)
    logging.py     metrics.csv + TensorBoard + rich progress bar
    train.py       the meta-training loop (deterministic in (seed, iteration), resumable)
    metatest.py    return after 0..k one-time adaptations on fresh test tasks -> JSON
    plot.py        Fig. 2 (return vs adaptation step) and Fig. 5 (meta-training curves)

Import-light: JAX is imported only inside the `run` functions.
"""
