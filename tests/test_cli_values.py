"""Every command-line value is checked like the others: for EVERY option of EVERY command (taken
from the config dataclasses, so a new option is swept automatically) negative, zero, huge,
wrong-type and, for paths, unwritable values either exit 2 with ONE stderr line
`bomrl: error: ...` naming the option and the value, or are valid (listed below, with the reason).

No real work starts: each command validates all of its inputs first, then calls its heavy part,
which is stubbed here to raise `Reached` (so a valid value returns at once).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import typing
from pathlib import Path

import pytest

from bomrl import cli
from bomrl.workflow.config import TrainConfig, config_to_json


class Reached(Exception):
    """Validation passed: the command called its heavy part."""


# what each command's run calls once ALL its inputs are validated (stubbed: raises Reached)
HEAVY = {
    "frozenlake": ["bomrl.experiments.frozenlake:run_all"],
    "bench sampler": ["bomrl.bench.sampler:raw_rate", "bomrl.bench.sampler:make_sampler"],
    "bench iteration": ["bomrl.bench.iteration:measure"],
    "bench update": ["bomrl.bench.update:measure"],
    "bench learning": ["bomrl.bench.learning:measure"],
    "check hypergradient": ["bomrl.checks.hypergradient:measure"],
    "train": ["bomrl.workflow.train:make_run_sampler"],
    "meta-test": ["bomrl.workflow.metatest:load_latest"],   # stubbed where it is used
    "plot": ["bomrl.workflow.plot:collect"],
}

UNWRITABLE = "/proc/forbidden/x"
INTS = ("-1", "0", str(10**12), "abc")
FLOATS = ("-1", "0", "1e300", "inf", "nan", "abc")
STRINGS = ("abc", "-1")

# values that are valid, with the reason (anything else must be a one-line error)
VALID_ANY = {   # (field, value) in any command that has the field
    ("seed", "0"): "the default seed",
    ("seeds", "0"): "seed 0",
    ("workers", "0"): "0 = one worker per CPU core (documented)",
    ("plugins", "abc"): "`abc` is a module of the standard library: importing it is harmless",
}
VALID = {       # (command, field, value)
    ("frozenlake", "hole_prob", "0"): "a lake without holes is allowed ([0, 1))",
    ("frozenlake", "slip", "0"): "no slipping: the paper's deterministic lake",
    ("frozenlake", "iterations", "0"): "no meta-training: the initial policy is evaluated",
    ("bench iteration", "warmup", "0"): "no untimed warm-up iteration",
    ("bench iteration", "eval_steps", "0"): "0 = no held-out evaluation (the default)",
    ("bench learning", "window", str(10**12)): "the summary averages min(window, iterations) iterations",
    ("train", "checkpoint_every", str(10**12)): "a checkpoint at the end only (one is always written there)",
    ("train", "select_tasks", "0"): "0 = no model selection (the default)",
    ("meta-test", "adapt_steps", "0"): "0 adaptations: the meta-policy's own return",
    ("meta-test", "seed", "0"): "seed 0",
    ("plot", "smooth", str(10**12)): "a trailing window longer than the run averages all iterations so far",
    ("plot", "reference", "abc"): "a method label is known only once the runs are read: an unknown one is a "
                                  "one-line error then (tests/test_workflow_e2e.py)",
    ("plot", "reference", "-1"): "as for abc",
}
# known gaps, marked as strict expected failures (so that fixing one is noticed); none at present
NOT_YET: set = set()   # (command, field, value) cases not validated yet (none)


def _base(hint):
    """The value type of a field (Optional / Annotated / tuple unwrapped) and whether it is a tuple."""
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union:
        return _base(args[0])
    if typing.get_origin(hint) is tuple:
        return _base(args[0])[0], True
    return hint, False


def _candidates(hint) -> tuple[str, ...]:
    base, _ = _base(hint)
    if typing.get_origin(base) is typing.Literal:
        return ("abc",)
    return {int: INTS, float: FLOATS, str: STRINGS, Path: (UNWRITABLE,), bool: ()}[base]


def _positional(hint) -> bool:
    return "Positional" in repr(hint)


def _names(field: str, hint) -> tuple[str, ...]:
    """How an error may name the option: --flag (or `field=`), or for a positional its metavar (DIR, RUN)."""
    if not _positional(hint):
        return ("--" + field.replace("_", "-"), f"{field}=")
    metavars = [m.metavar for m in getattr(hint, "__metadata__", ()) if getattr(m, "metavar", None)]
    inner = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    metavars += [m.metavar for m in getattr(inner, "__metadata__", ()) if getattr(m, "metavar", None)]
    return (*metavars, "run directory")


def _value_forms(value: str) -> tuple[str, ...]:
    forms = [value]
    with_float = value.lstrip("-").replace("e", "").replace(".", "").isdigit() or value in ("inf", "nan")
    if with_float:
        forms.append(repr(float(value)))
    return tuple(forms)


def _cases():
    for name in cli.COMMANDS:
        cls = cli.config_class(name)
        hints = typing.get_type_hints(cls, include_extras=True)
        for f in dataclasses.fields(cls):
            for value in _candidates(hints[f.name]):
                marks = []
                if (name, f.name, value) in NOT_YET:
                    marks = [pytest.mark.xfail(strict=True, reason="validated in a file another change owns")]
                yield pytest.param(name, f.name, value, id=f"{name}:{f.name}={value}", marks=marks)


def _fake_run(directory: Path) -> Path:
    """A run directory as `bomrl train` writes it (config.json only: the checkpoint is stubbed)."""
    directory.mkdir(parents=True)
    train = {k: v for k, v in config_to_json(TrainConfig(env="nav2d", algo="maml-trpo", out=directory)).items()
             if k not in ("config", "resume")}
    (directory / "config.json").write_text(json.dumps({"train": train, "algo_config": {}}))
    return directory


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)          # default outputs (runs/..., results/...) land in tmp_path

    def reached(*args, **kwargs):
        raise Reached

    targets = [t.partition(":")[::2] for ts in HEAVY.values() for t in ts]
    # import every module first, THEN stub: a module imported while a stub is in place would bind
    # the stub by `from ... import` for good (and break later tests in this process)
    modules = {m: importlib.import_module(m) for m, _ in targets}
    for module, attr in targets:
        monkeypatch.setattr(modules[module], attr, reached)
    return tmp_path


def _argv(name: str, field: str, value: str, tmp: Path) -> list[str]:
    cls = cli.config_class(name)
    hints = typing.get_type_hints(cls, include_extras=True)
    swept = [value] if _positional(hints[field]) else ["--" + field.replace("_", "-"), value]
    base = []
    for f in dataclasses.fields(cls):       # positionals other than the swept one: a valid run
        if f.name != field and _positional(hints[f.name]):
            base.append(str(_fake_run(tmp / "run")))
    if name == "train" and field != "out":
        base += ["--out", str(tmp / "train-out")]
    return [*name.split(), *base, *swept]


def test_the_sweep_covers_every_command():
    commands = {c[0] for c in (p.values for p in _cases())}
    assert commands == set(cli.COMMANDS) == set(HEAVY)


@pytest.mark.parametrize("name, field, value", list(_cases()))
def test_value(name, field, value, stubbed, capsys):
    argv = _argv(name, field, value, stubbed)
    valid = VALID.get((name, field, value)) or VALID_ANY.get((field, value))
    try:
        rc = cli.main(argv)
    except Reached:
        rc = "reached"
    except SystemExit as exc:        # a tyro parse error (parse() exits 2 after printing one line)
        rc = exc.code
    err = capsys.readouterr().err
    if valid:
        assert rc == "reached", f"{argv} is valid ({valid}) but gave {rc}: {err}"
        return
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, f"{argv} was accepted (rc {rc}): {err}"
    assert len(lines) == 1 and lines[0].startswith("bomrl: error:"), err
    hints = typing.get_type_hints(cli.config_class(name), include_extras=True)
    assert any(n in lines[0] for n in _names(field, hints[field])), f"the option is not named: {lines[0]}"
    assert any(v in lines[0] for v in _value_forms(value)), f"the value is not named: {lines[0]}"


def test_valid_lists_name_real_cases():
    """Every VALID / NOT_YET entry is a case of the sweep (no stale entries)."""
    cases = {tuple(p.values) for p in _cases()}
    assert set(VALID) <= cases and NOT_YET <= cases
    assert all(any((f, v) == key for _, f, v in cases) for key in VALID_ANY)
