"""Named conformance checks of the generator contract (:mod:`synthaug._generator`).

Each check is a function ``check_<what>(subject)`` over a :class:`GeneratorUnderTest` and
raises ``AssertionError`` naming the generator when the contract is broken. The subject
fits the generator once, lazily, and every check that needs images shares that fit.

- :func:`check_generator` runs every check, collects every failure (it does not stop at the
  first) and raises one ``AssertionError`` listing them; ``skip`` and ``expected_failures``
  opt out of named checks.
- :func:`make_image_folder` / :func:`make_concepts`: the small random datasets they fit on.
- :func:`parametrize_with_checks` turns generators into one pytest test per check, in the
  style of imbalanced-learn's ``parametrize_with_checks``; an expected failure becomes
  ``xfail``.

Use them through :mod:`synthaug.testing`.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._errors import InvalidOptionsError
from ._generator import FIT_SCOPES, Concept, GeneratedImage, Generator, GeneratorOptions

__all__ = [
    "CHECKS",
    "GeneratorUnderTest",
    "check_batch_invariance",
    "check_describe_json",
    "check_every_concept_generates",
    "check_fit_scope",
    "check_generator",
    "check_name",
    "check_one_image_per_seed",
    "check_options_model",
    "check_order_invariance",
    "check_refit_reuses_artifacts",
    "check_seeds_differ",
    "check_unknown_option_rejected",
    "make_concepts",
    "make_image_folder",
    "parametrize_with_checks",
]


def _as_image(item: Any) -> Any:
    return item.image if isinstance(item, GeneratedImage) else item


def _pixels(item: Any) -> bytes:
    image = _as_image(item)
    return image.convert("RGB").tobytes() + repr(image.size).encode()


class GeneratorUnderTest:
    """A generator class, the options that make it quick, and its shared fit.

    ``concepts`` default to :func:`synthaug.testing.make_concepts` in a temporary folder;
    ``work_dir`` defaults to a temporary folder too. :meth:`fitted` fits one instance on
    first use and generates ``seeds`` for the first concept once (:attr:`batch`).
    """

    def __init__(
        self,
        generator_cls: type[Generator],
        options: Mapping[str, Any] | None = None,
        *,
        concepts: Sequence[Concept] | None = None,
        work_dir: str | Path | None = None,
        seeds: Sequence[int] = (11, 22, 33),
    ) -> None:
        self.cls = generator_cls
        self.options = dict(options or {})
        self.seeds = list(seeds)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._concepts = list(concepts) if concepts is not None else None
        self._work_dir = Path(work_dir) if work_dir is not None else None
        self._generator: Generator | None = None
        self._batch: list[Any] | None = None

    @property
    def name(self) -> str:
        return self.cls.name or self.cls.__qualname__

    def __repr__(self) -> str:
        return f"{self.cls.__qualname__}({self.options!r})" if self.options else self.cls.__qualname__

    def _tmp_path(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="synthaug-check-")
        return Path(self._tmp.name)

    @property
    def concepts(self) -> list[Concept]:
        if self._concepts is None:
            self._concepts = make_concepts(self._tmp_path() / "data")
        return self._concepts

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            self._work_dir = self._tmp_path() / "work"
        self._work_dir.mkdir(parents=True, exist_ok=True)
        return self._work_dir

    def fitted(self) -> Generator:
        """The instance fitted on :attr:`concepts` in :attr:`work_dir` (fitted once)."""
        if self._generator is None:
            generator = self.cls(self.options)
            generator.fit(self.concepts, self.work_dir)
            self._generator = generator
        return self._generator

    @property
    def batch(self) -> list[Any]:
        """The images of :attr:`seeds` for the first concept, generated in one call."""
        if self._batch is None:
            self._batch = list(self.fitted().generate(self.concepts[0], self.seeds))
        return self._batch

    def close(self) -> None:
        """Close the fitted instance and delete the temporary folders."""
        if self._generator is not None:
            self._generator.close()
            self._generator = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def make_image_folder(root: str | Path, counts: Mapping[str, int], *, size: int = 32, seed: int = 0) -> Path:
    """Write ``root/<class>/<i>.png`` with ``counts[class]`` images of a class-specific colour pattern."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for k, (label, n) in enumerate(sorted(counts.items())):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        base = np.array([(70 * (k + 1)) % 256, (150 + 40 * k) % 256, (40 * k + 90) % 256], dtype=float)
        for i in range(n):
            noise = rng.normal(0, 25, (size, size, 3))
            yy, xx = np.mgrid[0:size, 0:size]
            blob = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / (3 + k % 3)) ** 2)[..., None] * 60.0
            pixels = np.clip(base + noise - blob, 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{label}_{i:03d}.png")
    return root


def make_concepts(root: str | Path, *, n_concepts: int = 2, n_images: int = 4, size: int = 32) -> list[Concept]:
    """Concepts ``class0``, ``class1`` … each with ``n_images`` images written under ``root``."""
    counts = {f"class{i}": n_images for i in range(n_concepts)}
    make_image_folder(root, counts, size=size)
    return [
        Concept(label, label, tuple(sorted((Path(root) / label).glob("*.png"))))
        for label in sorted(counts)
    ]


# -- the checks: class-level ----------------------------------------------------------------
def check_name(subject: GeneratorUnderTest) -> None:
    """The generator has a kebab-case ``name``."""
    name = subject.cls.name
    assert isinstance(name, str) and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), f"name {name!r} is not kebab-case"


def check_fit_scope(subject: GeneratorUnderTest) -> None:
    """``fit_scope`` (class default and instance value) is one of the :data:`~synthaug._generator.FitScope` values."""
    scope = subject.cls(subject.options).fit_scope
    assert scope in FIT_SCOPES, f"{subject.name}: fit_scope {scope!r} is not one of {FIT_SCOPES}"
    assert isinstance(subject.cls.fits_all_classes, bool), f"{subject.name}: fits_all_classes must be a bool"


def check_options_model(subject: GeneratorUnderTest) -> None:
    """``Options`` subclasses :class:`~synthaug.GeneratorOptions` and describes every field."""
    assert issubclass(subject.cls.Options, GeneratorOptions), "Options must subclass synthaug.GeneratorOptions"
    undocumented = [k for k, f in subject.cls.Options.model_fields.items() if not f.description]
    assert not undocumented, f"{subject.name}: options without a description: {undocumented}"


def check_unknown_option_rejected(subject: GeneratorUnderTest) -> None:
    """An unknown option key raises :class:`~synthaug.InvalidOptionsError` naming the key."""
    try:
        subject.cls({**subject.options, "definitely_not_an_option": 1})
    except InvalidOptionsError as exc:
        assert "definitely_not_an_option" in str(exc), f"{subject.name}: unknown-option error does not name the key: {exc}"
    else:
        raise AssertionError(f"{subject.name}: an unknown option key was accepted")


def check_describe_json(subject: GeneratorUnderTest) -> None:
    """:meth:`~synthaug.Generator.describe` is JSON-serialisable."""
    json.dumps(subject.cls(subject.options).describe())


# -- the checks: fit and generate -----------------------------------------------------------
def check_one_image_per_seed(subject: GeneratorUnderTest) -> None:
    """``generate`` yields one non-empty RGB/RGBA/L PIL image per seed."""
    batch = subject.batch
    assert len(batch) == len(subject.seeds), f"{subject.name}: {len(batch)} images for {len(subject.seeds)} seeds"
    for item in batch:
        image = _as_image(item)
        assert hasattr(image, "save") and image.mode in ("RGB", "RGBA", "L"), f"{subject.name}: not a PIL image: {item!r}"
        assert image.width > 0 and image.height > 0, f"{subject.name}: an empty image"


def check_batch_invariance(subject: GeneratorUnderTest) -> None:
    """A seed gives the same image alone as in a batch."""
    seed = subject.seeds[min(1, len(subject.seeds) - 1)]
    alone = list(subject.fitted().generate(subject.concepts[0], [seed]))
    index = subject.seeds.index(seed)
    assert _pixels(alone[0]) == _pixels(subject.batch[index]), f"{subject.name}: seed {seed} differs alone vs in a batch"


def check_order_invariance(subject: GeneratorUnderTest) -> None:
    """The images do not depend on the order of the seeds."""
    reordered = list(subject.fitted().generate(subject.concepts[0], list(reversed(subject.seeds))))
    assert [_pixels(x) for x in reordered] == [_pixels(x) for x in reversed(subject.batch)], (
        f"{subject.name}: images depend on the order of seeds"
    )


def check_seeds_differ(subject: GeneratorUnderTest) -> None:
    """Different seeds give different images."""
    if len(subject.seeds) > 1:
        assert _pixels(subject.batch[0]) != _pixels(subject.batch[1]), f"{subject.name}: different seeds gave identical images"


def check_every_concept_generates(subject: GeneratorUnderTest) -> None:
    """Every fitted concept can be generated."""
    for concept in subject.concepts[1:]:
        images = list(subject.fitted().generate(concept, subject.seeds[:1]))
        assert len(images) == 1, f"{subject.name}: {len(images)} images for one seed of {concept.name!r}"


def check_refit_reuses_artifacts(subject: GeneratorUnderTest) -> None:
    """A fresh instance fitted on the same ``work_dir`` reuses the artifacts: same images."""
    first = list(subject.fitted().generate(subject.concepts[0], subject.seeds[:1]))[0]
    fresh = subject.cls(subject.options)
    try:
        fresh.fit(subject.concepts, subject.work_dir)
        again = list(fresh.generate(subject.concepts[0], subject.seeds[:1]))
    finally:
        fresh.close()
    assert _pixels(again[0]) == _pixels(first), f"{subject.name}: a fresh instance reusing work_dir gives other images"


Check = Callable[[GeneratorUnderTest], None]

#: Every check by name, in the order :func:`check_generator` runs them.
CHECKS: dict[str, Check] = {
    check.__name__: check
    for check in (
        check_name,
        check_fit_scope,
        check_options_model,
        check_unknown_option_rejected,
        check_describe_json,
        check_one_image_per_seed,
        check_batch_invariance,
        check_order_invariance,
        check_seeds_differ,
        check_every_concept_generates,
        check_refit_reuses_artifacts,
    )
}


def _unknown_checks(names: Iterable[str]) -> None:
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown conformance check(s) {unknown}; valid: {', '.join(CHECKS)}")


def check_generator(
    generator_cls: type[Generator],
    options: Mapping[str, Any] | None = None,
    *,
    concepts: Sequence[Concept] | None = None,
    work_dir: str | Path | None = None,
    seeds: Sequence[int] = (11, 22, 33),
    skip: Iterable[str] = (),
    expected_failures: Mapping[str, str] | None = None,
) -> None:
    """Run every check of :data:`CHECKS` on ``generator_cls``; raise one AssertionError listing all failures.

    ``options`` should make fitting quick (a tiny base model, a few steps). ``skip`` names
    checks not to run. ``expected_failures`` maps a check name to the reason it is known to
    fail (e.g. ``{"check_batch_invariance": "batch_size>1 is not bit-exact"}``): its failure
    is not reported. A check that raises something other than AssertionError counts as failed.
    """
    expected = dict(expected_failures or {})
    skipped = set(skip)
    _unknown_checks([*skipped, *expected])
    subject = GeneratorUnderTest(generator_cls, options, concepts=concepts, work_dir=work_dir, seeds=seeds)
    failures: list[str] = []
    try:
        for name, check in CHECKS.items():
            if name in skipped:
                continue
            try:
                check(subject)
            except Exception as exc:  # noqa: BLE001 - every failure is reported, not only the first
                if name not in expected:
                    detail = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
                    failures.append(f"{name}: {detail}")
    finally:
        subject.close()
    if failures:
        raise AssertionError(
            f"{len(failures)} conformance check(s) failed for {subject.name}:\n" + "\n".join(f"- {f}" for f in failures)
        )


def parametrize_with_checks(
    generators: Sequence[type[Generator] | tuple[type[Generator], Mapping[str, Any]]],
    *,
    expected_failures: Mapping[str, str] | Callable[[type[Generator]], Mapping[str, str]] | None = None,
) -> Any:
    """A ``pytest.mark.parametrize("generator, check", ...)`` with one test per generator and check.

    ``generators`` are classes or ``(class, options)`` pairs. The test body calls
    ``check(generator)``; the fit is shared by the checks of one generator and kept for the
    session (its temporary folders go when the subject is garbage-collected). A check named in
    ``expected_failures`` (name -> reason, or a function of the generator class returning
    that mapping, for a per-generator answer) is marked ``xfail`` with that reason::

        @parametrize_with_checks([(MyGenerator, {"steps": 2})])
        def test_contract(generator, check):
            check(generator)
    """
    import pytest

    params = []
    for spec in generators:
        cls, options = spec if isinstance(spec, tuple) else (spec, {})
        expected = dict((expected_failures(cls) if callable(expected_failures) else expected_failures) or {})
        _unknown_checks(expected)
        subject = GeneratorUnderTest(cls, options)
        for name, check in CHECKS.items():
            marks = [pytest.mark.xfail(reason=expected[name], strict=True)] if name in expected else []
            params.append(pytest.param(subject, check, marks=marks, id=f"{subject.name}-{name}"))
    return pytest.mark.parametrize("generator, check", params)
