"""A researcher's workflow on top of the algorithms: `bomrl train` (with resume), `bomrl meta-test`
and `bomrl plot`. See docs/WORKFLOW.md.

    config.py      TrainConfig: flags + --config FILE (JSON/TOML), validated up front
    checkpoint.py  atomic, checksummed checkpoints of the AlgoState pytree (last 2 kept)
    logging.py     metrics.csv + TensorBoard + rich progress bar
    train.py       the meta-training loop (deterministic in (seed, iteration), resumable)
    metatest.py    return after 0..k one-time adaptations on fresh test tasks -> JSON
    plot.py        Fig. 2 (return vs adaptation step) and Fig. 5 (meta-training curves)

config.py is import-light (the command line imports it to build its parser); train.py,
checkpoint.py and logging.py import JAX / numpy at their top (loaded once `bomrl train` is chosen).
"""
