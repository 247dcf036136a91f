"""Every generator's option defaults, field by field, against the snapshot taken before the
option groups were restructured (``tests/data/generator_defaults.json``). A changed default is
a user-visible change: update the snapshot deliberately, with a CHANGELOG entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthaug import list_generators

SNAPSHOT = json.loads((Path(__file__).parent / "data" / "generator_defaults.json").read_text())


def _defaults(cls: type) -> dict[str, object]:
    return {name: json.loads(json.dumps(field.get_default(call_default_factory=True), default=list))
            for name, field in cls.Options.model_fields.items()}


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_defaults_are_unchanged(name: str) -> None:
    generators = list_generators()
    if name not in generators:
        pytest.skip(f"the {name} plugin is not installed")
    assert _defaults(generators[name]) == SNAPSHOT[name]
