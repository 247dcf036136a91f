"""Every generator's option defaults, field by field, against the snapshot taken before the
option groups were restructured (``tests/data/generator_defaults.json``). A changed default is
a user-visible change: update the snapshot deliberately, with a CHANGELOG entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthaug import get_registry, list_generators

SNAPSHOT = json.loads((Path(__file__).parent / "data" / "generator_defaults.json").read_text())


def _defaults(cls: type) -> dict[str, object]:
    return {name: json.loads(json.dumps(field.get_default(call_default_factory=True), default=list))
            for name, field in cls.Options.model_fields.items()}


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_defaults_are_unchanged(name: str) -> None:
    generators = list_generators()
    if name not in generators:
        broken = [p.error for p in get_registry().plugins if p.error]
        assert not broken, broken  # a plugin that fails to import is a failure, not a skip
        pytest.skip(f"the {name} plugin is not installed")
    assert _defaults(generators[name]) == SNAPSHOT[name]


def _own_fields(cls: type) -> set[str]:
    return {name for name in cls.__dict__.get("__annotations__", {}) if name in cls.model_fields}


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_option_groups_are_one_level_and_disjoint(name: str) -> None:
    """Between ``GeneratorOptions`` and a generator's ``Options``, a class either declares fields
    (a group: a direct subclass of ``GeneratorOptions``) or none (a composition of groups), and no
    field is declared by two groups, so the order of the mix-ins never decides a default; only the
    generator's own ``Options`` body changes defaults."""
    from synthaug import GeneratorOptions

    generators = list_generators()
    if name not in generators:
        pytest.skip(f"the {name} plugin is not installed")
    options = generators[name].Options
    between = [k for k in options.__mro__[1:] if isinstance(k, type) and issubclass(k, GeneratorOptions)
               and k is not GeneratorOptions]
    groups = [k for k in between if _own_fields(k)]
    assert all(k.__bases__ == (GeneratorOptions,) for k in groups), [k.__name__ for k in groups]
    declared: dict[str, str] = {}
    for group in groups:
        for field in _own_fields(group):
            assert field not in declared, f"{field!r} is declared by {declared[field]} and {group.__name__}"
            declared[field] = group.__name__


def test_override_default_keeps_the_field_but_its_default() -> None:
    from synthaug import GeneratorOptions, SamplingOptions, TrainingOptions, override_default

    class Tuned(SamplingOptions, TrainingOptions):
        max_train_steps: int = override_default(TrainingOptions, "max_train_steps", 7)

    assert Tuned().max_train_steps == 7 and SamplingOptions.model_fields.keys() <= Tuned.model_fields.keys()
    field = Tuned.model_fields["max_train_steps"]
    assert field.description == TrainingOptions.model_fields["max_train_steps"].description
    with pytest.raises(ValueError):
        Tuned(max_train_steps=0)  # ge=1 kept
    with pytest.raises(TypeError, match="no option 'steps'"):
        override_default(TrainingOptions, "steps", 1)
    assert issubclass(Tuned, GeneratorOptions)
