"""The named conformance checks of synthaug.testing and the declared generator contract."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import synthaug
from synthaug.testing import CHECKS, check_generator, parametrize_with_checks


def _solid(value: int) -> Any:
    from PIL import Image

    return Image.new("RGB", (4, 4), (value % 256, (value // 256) % 256, 7))


class Solid(synthaug.Generator):
    """Honours the contract: the colour is a pure function of the seed; fit writes a marker."""

    name = "solid"
    description = "one colour per seed"

    def fit(self, concepts: Sequence[synthaug.Concept], work_dir: Path, *, progress: Any = None) -> None:
        (Path(work_dir) / "fitted").write_text(",".join(c.name for c in concepts))

    def generate(self, concept: synthaug.Concept, seeds: Sequence[int]) -> Iterator[Any]:
        for seed in seeds:
            yield _solid(seed)


class BatchDependent(Solid):
    """The image depends on the batch size only: breaks batch invariance, not order invariance."""

    name = "batch-dependent"

    def generate(self, concept: synthaug.Concept, seeds: Sequence[int]) -> Iterator[Any]:
        for seed in seeds:
            yield _solid(seed + len(seeds))


class Broken(Solid):
    """Breaks three checks: batch size, seed order, and an undescribed option."""

    name = "broken"

    class Options(synthaug.GeneratorOptions):
        strength: float = 1.0  # no description

    def generate(self, concept: synthaug.Concept, seeds: Sequence[int]) -> Iterator[Any]:
        for i, seed in enumerate(seeds):
            yield _solid(seed + 1000 * i + len(seeds))


@parametrize_with_checks([Solid])
def test_parametrized_checks(generator: Any, check: Any) -> None:
    check(generator)


@parametrize_with_checks([(BatchDependent, {})],
                         expected_failures={"check_batch_invariance": "batch_size>1 is not bit-exact"})
def test_parametrized_checks_with_expected_failure(generator: Any, check: Any) -> None:
    check(generator)


def test_parametrize_names_one_test_per_check() -> None:
    mark = parametrize_with_checks([Solid])
    ids = [p.id for p in mark.args[1]]
    assert ids == [f"solid-{name}" for name in CHECKS]
    assert len(CHECKS) == 11 and "check_batch_invariance" in CHECKS


def test_parametrize_expected_failures_per_generator() -> None:
    def known(cls: type) -> dict[str, str]:
        return {"check_batch_invariance": "not bit-exact"} if cls is BatchDependent else {}

    mark = parametrize_with_checks([Solid, BatchDependent], expected_failures=known)
    xfails = [p.id for p in mark.args[1] if p.marks]
    assert xfails == ["batch-dependent-check_batch_invariance"]
    with pytest.raises(ValueError, match="check_nope"):
        parametrize_with_checks([Solid], expected_failures={"check_nope": "x"})


def test_conforming_generator_passes() -> None:
    check_generator(Solid)


def test_every_failure_is_reported_not_only_the_first() -> None:
    with pytest.raises(AssertionError) as info:
        check_generator(Broken)
    message = str(info.value)
    assert message.startswith("3 conformance check(s) failed for broken")
    for name in ("check_options_model", "check_batch_invariance", "check_order_invariance"):
        assert f"- {name}:" in message
    assert "strength" in message


def test_expected_failures_and_skip_opt_out_by_name() -> None:
    with pytest.raises(AssertionError, match="differs alone vs in a batch"):
        check_generator(BatchDependent)
    check_generator(BatchDependent, expected_failures={"check_batch_invariance": "batch_size>1 is not bit-exact"})
    check_generator(BatchDependent, skip=["check_batch_invariance"])
    with pytest.raises(ValueError, match="check_no_such_thing"):
        check_generator(Solid, skip=["check_no_such_thing"])


def test_fit_scope_is_validated_at_class_definition() -> None:
    with pytest.raises(TypeError, match="fit_scope 'everything'"):
        type("Wide", (Solid,), {"name": "wide", "fit_scope": "everything"})
    assert synthaug.PerConceptGenerator.fit_scope == "concept" and Solid.fit_scope == "all"


def test_features_is_declared_and_detected_by_override() -> None:
    class WithFeatures(Solid):
        name = "with-features"

        def features(self, paths: Sequence[Path]) -> list[list[float]]:
            return [[float(len(str(p)))] for p in paths]

    assert not synthaug.has_features(Solid())
    assert synthaug.has_features(WithFeatures())
    with pytest.raises(NotImplementedError, match="solid"):
        Solid().features([])


def test_diffusion_generator_sets_its_fit_scope_from_parallel() -> None:
    """The scope of a diffusion generator follows ``parallel=`` per instance (no property override)."""
    pytest.importorskip("diffusers")
    from synthaug.diffusion import DiffusionGeneratorBase
    from synthaug_lora_sd15 import LoraSD15Generator

    assert LoraSD15Generator.fit_scope == "concept"
    assert LoraSD15Generator(base_model="unused").fit_scope == "concept"
    assert LoraSD15Generator(base_model="unused", parallel="data").fit_scope == "data"
    assert "fit_scope" not in vars(DiffusionGeneratorBase)  # the PerConceptGenerator default, set per instance
