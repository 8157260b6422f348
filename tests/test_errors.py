"""bomrl.errors: one-line errors, and the choices of a setting defined once (its Literal annotation)."""

import dataclasses
import typing

import pytest

from bomrl.algos import algorithm_names, get_algorithm
from bomrl.errors import ConfigError, check_literals


@dataclasses.dataclass(frozen=True)
class _Config:
    mode: typing.Literal["a", "b"] = "a"
    name: str = "free"

    def __post_init__(self):
        check_literals(self)


def test_check_literals_accepts_the_annotations_values_only():
    _Config(mode="b", name="anything")
    with pytest.raises(ConfigError, match=r"^mode='c' is invalid: allowed values are a, b$"):
        _Config(mode="c")


@pytest.mark.parametrize("algo", algorithm_names())
def test_every_literal_setting_of_every_algorithm_is_checked(algo):
    """Each Literal field of each algorithm's config refuses a value outside its annotation, and
    accepts every value inside it (no second list of choices that could disagree)."""
    _, cfg_cls = get_algorithm(algo)
    hints = typing.get_type_hints(cfg_cls)
    literal = {f.name: typing.get_args(hints[f.name]) for f in dataclasses.fields(cfg_cls)
               if typing.get_origin(hints[f.name]) is typing.Literal}
    for name, choices in literal.items():
        with pytest.raises(ConfigError, match=f"^{name}='not-a-choice' is invalid"):
            cfg_cls(**{name: "not-a-choice"})
        for choice in choices:
            try:
                cfg_cls(**{name: choice})
            except ConfigError as exc:   # a rule combining settings may refuse it beside the defaults
                assert "allowed values are" not in str(exc), exc
