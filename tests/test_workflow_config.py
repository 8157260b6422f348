"""`bomrl train` configuration: precedence (dataclass default < per-env default < --preset < --config
FILE < --set < flags, each pair tested), validation with one-line errors before any work starts, and
the resume rules. No training happens here."""

import json
from pathlib import Path

import pytest

from bomrl.cli import main, parse
from bomrl.errors import BomrlError, ConfigError
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
    (["--algo", "maml-trpo", "--distance", "rkl"], ["--distance", "nor a setting of --algo maml-trpo"]),
    (["--lam", "-1"], ["lam=-1.0", "> 0"]),
    (["--set", "inner_steps=many"], ["inner_steps", "int"]),
    (["--set", "nonsense=1"], ["nonsense", "inner_steps"]),
    (["--set", "max_kl=-1"], ["max_kl=-1.0"]),
    (["--ray-address", "10.0.0.1:6379"], ["--ray-address", "--sampler ray"]),
    (["--checkpoint-every", "0"], ["--checkpoint-every=0"]),
    (["--distance", "hellinger"], ["distance='hellinger'", "d1, d2, d3, kl, rkl, euclid"]),
    (["--algo", "reptile"], ["--algo='reptile'", "bomrl, maml-trpo, promp, emaml"]),
    (["--lam", "inf"], ["lam=inf", "finite"]),
    (["--plugins", "no_such_plugin_xyz"], ["no_such_plugin_xyz", "is not found"]),
])
def test_invalid_values_are_one_line_errors_before_any_work(capsys, tmp_path, argv, fragments):
    out = tmp_path / "run"
    _one_line_error(capsys, ["train", *argv, "--out", str(out)], *fragments)
    assert not out.exists()   # nothing was created


def test_bad_choice_on_command_line_is_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        parse(["train", "--sampler", "mpi", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "mpi" in err


def test_config_file_then_flags_precedence(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('env = "halfcheetah-dir"\ntasks = 7\nseed = 3\nset = ["inner_steps=11"]\n'
                    '[algo_config]\nmax_kl = 0.002\n')
    cfg, extra, run_dir, resuming = resolve_train_config(
        TrainConfig(config=toml, tasks=5, set=("lam=0.3",), out=tmp_path / "o"))
    assert (cfg.env, cfg.tasks, cfg.seed, cfg.episodes) == ("halfcheetah-dir", 5, 3, 20)
    assert cfg.set == ("inner_steps=11", "lam=0.3") and extra == {"max_kl": 0.002}
    assert run_dir == tmp_path / "o" and not resuming
    algo = build_algo_config(cfg, extra)
    assert (algo.inner_steps, algo.lam, algo.max_kl, algo.distance) == (11, 0.3, 0.002, "d1")

    js = tmp_path / "c.json"
    js.write_text(json.dumps({"algo": "promp", "episodes": 4}))
    cfg, _, run_dir, _ = resolve_train_config(TrainConfig(config=js))
    assert (cfg.algo, cfg.episodes) == ("promp", 4)
    assert run_dir == Path("runs") / "halfcheetah-vel-promp-s0"


def test_paper_lambda_defaults():
    def lam(*argv):
        _, cfg = parse(["train", *argv])
        cfg, extra, _, _ = resolve_train_config(cfg)
        return build_algo_config(cfg, extra).lam

    assert lam("--env", "halfcheetah-vel", "--distance", "rkl") == 0.4
    assert lam("--env", "halfcheetah-vel", "--distance", "kl") == 0.5
    assert lam("--env", "halfcheetah-dir", "--distance", "rkl") == 0.5
    assert lam("--env", "halfcheetah-vel", "--distance", "rkl", "--lam", "0.7") == 0.7


def _lam_and_steps(tmp_path, file_text=None, **flags):
    if file_text is not None:
        (tmp_path / "c.toml").write_text(file_text)
        flags["config"] = tmp_path / "c.toml"
    cfg, extra, _, _ = resolve_train_config(TrainConfig(out=tmp_path / "o", **flags))
    algo = build_algo_config(cfg, extra)
    return algo.lam, algo.inner_steps


@pytest.mark.parametrize("file_text", [
    None,
    "lam = 0.11\n",                                  # the setting at the file's top level
    "[algo_config]\nlam = 0.12\n",                  # the file's algo_config table
    'set = ["lam=0.13"]\n',                          # the file's set list
])
def test_precedence_set_over_file_over_preset_over_default(tmp_path, file_text):
    """One rule: --set (and the typed flags) > --config file > preset > per-env default > dataclass default."""
    file_lam = {None: None, "lam = 0.11\n": 0.11, "[algo_config]\nlam = 0.12\n": 0.12,
                'set = ["lam=0.13"]\n': 0.13}[file_text]
    below_file = 5.0   # preset convex-d3 sets λ = 5 (and 50 steps)
    # preset > per-env default (d2 on halfcheetah-vel: 0.4) > dataclass default (0.5)
    assert _lam_and_steps(tmp_path, env="halfcheetah-dir") == (0.5, 10)
    assert _lam_and_steps(tmp_path, env="halfcheetah-vel", set=("distance=rkl",)) == (0.4, 10)
    assert _lam_and_steps(tmp_path, env="halfcheetah-vel", preset="convex-d3") == (below_file, 50)
    # file > preset
    expect = file_lam if file_lam is not None else below_file
    assert _lam_and_steps(tmp_path, file_text, preset="convex-d3") == (expect, 50)
    # --set > file (> preset); the file's other settings survive
    assert _lam_and_steps(tmp_path, file_text, preset="convex-d3", set=("lam=0.2",)) == (0.2, 50)
    assert _lam_and_steps(tmp_path, file_text, set=("lam=0.3",)) == (0.3, 10)
    # another setting through the same layers: --set beats the file's set list and the preset
    assert _lam_and_steps(tmp_path, 'set = ["inner_steps=7"]\n', preset="convex-d3")[1] == 7
    assert _lam_and_steps(tmp_path, 'set = ["inner_steps=7"]\n', preset="convex-d3",
                          set=("inner_steps=3",))[1] == 3


def test_distance_set_beats_file_and_preset(tmp_path):
    def distance(file_text=None, **flags):
        if file_text is not None:
            (tmp_path / "c.toml").write_text(file_text)
            flags["config"] = tmp_path / "c.toml"
        cfg, extra, _, _ = resolve_train_config(TrainConfig(out=tmp_path / "o", **flags))
        return build_algo_config(cfg, extra).distance

    assert distance() == "d1"
    assert distance('distance = "rkl"\n') == "rkl"
    assert distance('distance = "rkl"\n', set=("distance=euclid",)) == "euclid"
    assert distance(preset="convex-d3") == "euclid"
    assert distance(preset="convex-d3", set=("distance=kl",)) == "kl"


def test_typed_flag_is_its_set_entry_end_to_end(tmp_path):
    """Through the real parser: `--lam 0.7` is `--set lam=0.7`, above a file's value; naming λ both
    ways is an error (docs/WORKFLOW.md)."""
    from bomrl.errors import ConfigError

    (tmp_path / "c.toml").write_text("lam = 0.2\n")
    run_fn, cfg = parse(["train", "--config", str(tmp_path / "c.toml"), "--lam", "0.7", "--out", str(tmp_path / "o")])
    assert cfg.set == ("lam=0.7",)
    cfg, extra, _, _ = resolve_train_config(cfg)
    assert build_algo_config(cfg, extra).lam == 0.7
    with pytest.raises(ConfigError, match="give it once"):
        parse(["train", "--set", "lam=0.2", "--lam", "0.7"])
    (tmp_path / "d.toml").write_text("lam = 0.2\n[algo_config]\nlam = 0.3\n")   # and in one file
    with pytest.raises(ConfigError, match="given once"):
        resolve_train_config(TrainConfig(config=tmp_path / "d.toml"))


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


def test_resume_refuses_a_run_whose_checkpoints_are_lost(capsys, tmp_path):
    """A finished run without its checkpoints is not silently re-trained from scratch (which would
    truncate its metrics.csv); one killed before its first checkpoint may start over."""
    from bomrl.workflow.train import refuse_if_checkpoints_lost

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": {"env": "halfcheetah-vel", "algo": "maml-trpo",
                                                           "tasks": 2, "seed": 1, "checkpoint_every": 10}}))
    rows = "iteration,pre_return\n" + "".join(f"{i},{-i}.5\n" for i in range(1, 31))
    (run / "metrics.csv").write_text(rows)
    _one_line_error(capsys, ["train", "--resume", str(run), "--iterations", "40"],
                    "logged 30 iterations", "no checkpoint", "move it aside")
    assert (run / "metrics.csv").read_text() == rows     # nothing rewritten
    refuse_if_checkpoints_lost(run, 30)                 # 30 rows, first checkpoint due at 30: may start over
    with pytest.raises(BomrlError, match="logged 30 iterations"):
        refuse_if_checkpoints_lost(run, 29)
    (run / "metrics.csv").write_text("iteration,pre_return\n1,0.5\n")
    refuse_if_checkpoints_lost(run, 10)
    (run / "meta_test.json").write_text("{}")          # meta-tested: it was finished
    with pytest.raises(BomrlError, match="has meta_test.json"):
        refuse_if_checkpoints_lost(run, 10)


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

    base = dict(env="halfcheetah-vel", algo="bomrl")
    assert label(TrainConfig(**base, set=("distance=rkl",))) == "BO-MRL d2"   # λ = 0.4 is this env's default
    assert label(TrainConfig(**base, set=("distance=rkl", "max_kl=0.02"))) == "BO-MRL d2 (max_kl=0.02)"
    assert label(TrainConfig(**base, set=("distance=rkl", "lam=0.5"))) == "BO-MRL d2 (lam=0.5)"
    assert label(TrainConfig(env="halfcheetah-dir", algo="maml-trpo")) == "MAML-TRPO"
    assert label(TrainConfig(env="halfcheetah-dir", algo="promp", set=("inner_lr=0.05",))) == "ProMP (inner_lr=0.05)"


def _field_docs(cls) -> dict[str, str]:
    """{field: docstring} of a config dataclass (the string literal right below each field)."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


ALGOS = ["bomrl", "maml-trpo", "promp", "emaml", "maesn", "rl2", "mgrl"]


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algorithm_setting_is_a_documented_flag_of_its_help(algo, capsys):
    """`bomrl train --algo A --help` lists every setting of A's config as a flag with its doc, and
    no setting that only other algorithms have."""
    import dataclasses
    import re

    from bomrl.algos import get_algorithm
    from bomrl.workflow.config import TrainConfig

    with pytest.raises(SystemExit) as exc:
        parse(["train", "--algo", algo, "--help"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())
    _, cfg_cls = get_algorithm(algo)
    docs = _field_docs(cfg_cls)
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    for name in names:
        assert docs.get(name), f"{cfg_cls.__name__}.{name} has no docstring"
        assert f"--{name.replace('_', '-')}" in flat, name
        if name not in {f.name for f in dataclasses.fields(TrainConfig)}:
            assert " ".join(docs[name].split()[:5]) in flat, name
    others = {f.name for a in ALGOS for f in dataclasses.fields(get_algorithm(a)[1])} - names
    others -= {f.name for f in dataclasses.fields(TrainConfig)}
    for name in others:
        assert not re.search(rf"--{name.replace('_', '-')}(?![\w-])", flat), f"{name} of another algorithm listed"


def test_algorithm_flags_are_typed_and_become_set_entries(tmp_path):
    from bomrl.errors import ConfigError

    _, cfg = parse(["train", "--algo", "bomrl", "--inner-lr", "0.05", "--hypergradient", "practical",
                    "--no-normalize-advantages", "--set", "max_kl=0.02"])
    assert type(cfg) is TrainConfig
    assert cfg.set == ("max_kl=0.02", "normalize_advantages=False", "inner_lr=0.05", "hypergradient=practical")
    algo = build_algo_config(cfg)
    assert (algo.inner_lr, algo.hypergradient, algo.normalize_advantages, algo.max_kl) == (0.05, "practical", False, 0.02)
    # the same run from --set alone
    _, by_set = parse(["train", "--algo", "bomrl", "--set", "max_kl=0.02", "normalize_advantages=false",
                       "inner_lr=0.05", "hypergradient=practical"])
    assert build_algo_config(by_set) == algo
    with pytest.raises(SystemExit) as exc:     # a bad type or choice: tyro's one-line error
        parse(["train", "--algo", "bomrl", "--hypergradient", "implicit"])
    assert exc.value.code == 2
    with pytest.raises(ConfigError, match="--hypergradient is neither"):   # another algorithm's setting
        parse(["train", "--algo", "maml-trpo", "--hypergradient", "practical"])
    with pytest.raises(ConfigError, match="give it once"):
        parse(["train", "--algo", "bomrl", "--inner-lr", "0.1", "--set", "inner_lr=0.2"])
    _, bench = parse(["bench", "iteration", "--algo", "bomrl", "--inner-lr", "0.3"])
    assert bench.set == ("inner_lr=0.3",)


