"""`bomrl train` configuration: precedence (defaults < --config FILE < flags), validation with one-line
errors before any work starts, and the resume rules. No training happens here."""

import json
from pathlib import Path

import pytest

from bomrl.cli import main, parse
from bomrl.errors import ConfigError
from bomrl.workflow.config import TrainConfig, build_algo_config, resolve_train_config


def _one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bomrl: error:") and "\n" not in err, err
    for f in fragments:
        assert f in err, err
    return err


@pytest.mark.parametrize("argv, fragments", [
    (["--tasks", "0"], ["--tasks=0", ">= 1"]),
    (["--iterations", "-3"], ["--iterations=-3"]),
    (["--env", "moon-walk"], ["moon-walk", "halfcheetah-vel"]),
    (["--algo", "maml-trpo", "--distance", "rkl"], ["--distance='rkl'", "BO-MRL only"]),
    (["--lam", "-1"], ["--lam=-1.0", "> 0"]),
    (["--set", "inner_steps_adam=many"], ["inner_steps_adam", "int"]),
    (["--set", "nonsense=1"], ["nonsense", "inner_steps_adam"]),
    (["--set", "max_kl=-1"], ["max_kl=-1.0"]),
    (["--ray-address", "10.0.0.1:6379"], ["--ray-address", "--sampler ray"]),
    (["--checkpoint-every", "0"], ["--checkpoint-every=0"]),
    (["--distance", "hellinger"], ["--distance='hellinger'", "kl, rkl, euclid"]),
    (["--plugins", "no_such_plugin_xyz"], ["no_such_plugin_xyz", "cannot be imported"]),
])
def test_invalid_values_are_one_line_errors_before_any_work(capsys, tmp_path, argv, fragments):
    out = tmp_path / "run"
    _one_line_error(capsys, ["train", *argv, "--out", str(out)], *fragments)
    assert not out.exists()   # nothing was created


def test_bad_choice_on_command_line_is_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        parse(["train", "--algo", "reptile", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "reptile" in err


def test_config_file_then_flags_precedence(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('env = "halfcheetah-dir"\ntasks = 7\nseed = 3\nset = ["inner_steps_adam=11"]\n'
                    '[algo_config]\nmax_kl = 0.002\n')
    cfg, extra, run_dir, resuming = resolve_train_config(
        TrainConfig(config=toml, tasks=5, set=("lam=0.3",), out=tmp_path / "o"))
    assert (cfg.env, cfg.tasks, cfg.seed, cfg.episodes) == ("halfcheetah-dir", 5, 3, 20)
    assert cfg.set == ("inner_steps_adam=11", "lam=0.3") and extra == {"max_kl": 0.002}
    assert run_dir == tmp_path / "o" and not resuming
    algo = build_algo_config(cfg, extra)
    assert (algo.inner_steps_adam, algo.lam, algo.max_kl, algo.distance) == (11, 0.3, 0.002, "kl")

    js = tmp_path / "c.json"
    js.write_text(json.dumps({"algo": "promp", "episodes": 4}))
    cfg, _, run_dir, _ = resolve_train_config(TrainConfig(config=js))
    assert (cfg.algo, cfg.episodes) == ("promp", 4)
    assert run_dir == Path("runs") / "halfcheetah-vel-promp-s0"


def test_paper_lambda_defaults():
    def lam(**kw):
        cfg, extra, _, _ = resolve_train_config(TrainConfig(**kw))
        return build_algo_config(cfg, extra).lam

    assert lam(env="halfcheetah-vel", distance="rkl") == 0.4
    assert lam(env="halfcheetah-vel", distance="kl") == 0.5
    assert lam(env="halfcheetah-dir", distance="rkl") == 0.5
    assert lam(env="halfcheetah-vel", distance="rkl", lam=0.7) == 0.7


@pytest.mark.parametrize("text, suffix, fragment", [
    ("tasks = 'many'\n", ".toml", "tasks='many'"),
    ("taks = 3\n", ".toml", "'taks'"),
    ("tasks = [\n", ".toml", "is not valid TOML"),
    ('{"algo": "reptile"}', ".json", "reptile"),
    ('{"tasks": true}', ".json", "an integer"),
    ("tasks: 3", ".yaml", "must end in .json or .toml"),
])
def test_bad_config_files(capsys, tmp_path, text, suffix, fragment):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    err = _one_line_error(capsys, ["train", "--config", str(path), "--out", str(tmp_path / "r")], fragment)
    assert str(path) in err


def test_resume_rules(capsys, tmp_path):
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "nope")], "--resume", "config.json")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": {"env": "halfcheetah-vel", "algo": "maml-trpo",
                                                           "tasks": 2, "seed": 1}}))
    cfg, _, run_dir, resuming = resolve_train_config(TrainConfig(resume=run, iterations=9, progress=False))
    assert resuming and run_dir == run and (cfg.algo, cfg.tasks, cfg.seed, cfg.iterations) == ("maml-trpo", 2, 1, 9)
    with pytest.raises(ConfigError, match="--tasks=5 is invalid with --resume"):
        resolve_train_config(TrainConfig(resume=run, tasks=5))
    # a run directory that already holds a run is not overwritten
    _one_line_error(capsys, ["train", "--out", str(run), "--algo", "maml-trpo"], "already holds a run",
                    "--resume")


@pytest.mark.parametrize("argv, fragment", [
    (["meta-test", "DIR", "--adapt-steps", "-1"], "--adapt-steps=-1"),
    (["meta-test", "DIR", "--tasks", "0"], "--tasks=0"),
    (["meta-test", "DIR", "--seed", "-2"], "--seed=-2"),
    (["plot", "DIR", "--smooth", "0"], "--smooth=0"),
])
def test_meta_test_and_plot_values(capsys, tmp_path, argv, fragment):
    argv = [str(tmp_path) if a == "DIR" else a for a in argv]
    _one_line_error(capsys, argv, fragment)


def test_config_with_resume_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": {"algo": "promp"}}))
    with pytest.raises(ConfigError, match="--config=.* is invalid with --resume"):
        resolve_train_config(TrainConfig(resume=run, config=tmp_path / "x.toml"))


def test_plot_labels_name_non_default_settings():
    """Ablations (--set) get their own curve: the label lists every setting that differs from its default."""
    import dataclasses

    from bomrl.workflow.plot import run_label

    def label(argv_cfg: TrainConfig) -> str:
        algo = dataclasses.asdict(build_algo_config(argv_cfg))
        return run_label(dataclasses.asdict(argv_cfg), algo)

    base = dict(env="halfcheetah-vel", algo="bomrl", distance="rkl")
    assert label(TrainConfig(**base)) == "BO-MRL d2"                       # λ = 0.4 is this env's default
    assert label(TrainConfig(**base, set=("max_kl=0.02",))) == "BO-MRL d2 (max_kl=0.02)"
    assert label(TrainConfig(**base, lam=0.5)) == "BO-MRL d2 (lam=0.5)"
    assert label(TrainConfig(env="halfcheetah-dir", algo="maml-trpo")) == "MAML-TRPO"
    assert label(TrainConfig(env="halfcheetah-dir", algo="promp", set=("inner_lr=0.05",))) == "ProMP (inner_lr=0.05)"
