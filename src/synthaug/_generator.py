"""The generator contract: what a plugin implements.

A generator is a class with a unique kebab-case :attr:`Generator.name`, a nested pydantic
:class:`Generator.Options` model (every field described, unknown keys an error) and two
operations over :class:`Concept` objects (a concept is a class, or a visual sub-group of one):

- :meth:`Generator.fit` receives every concept it must serve at once, with its training
  images, and writes artifacts under ``work_dir``. It must be resumable: called again on
  the same ``work_dir`` it reuses what is already fitted.
- :meth:`Generator.generate` yields one image per seed for one concept. The same seed gives
  the same image whatever the batch size or the order of calls.

:class:`PerConceptGenerator` turns the common "one adapter per concept" case into a loop
with per-concept resume: implement :meth:`~PerConceptGenerator.fit_concept` and
:meth:`~PerConceptGenerator.generate`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from ._artifacts import ARTIFACT_FILE, read_artifact, write_artifact
from ._errors import InvalidOptionsError
from ._progress import NULL_PROGRESS, Progress

__all__ = [
    "FIT_SCOPES",
    "Concept",
    "FitScope",
    "concept_slug",
    "GeneratedImage",
    "Generator",
    "GeneratorOptions",
    "PerConceptGenerator",
    "derive_seed",
    "fit_neutral_options",
    "has_features",
    "slugify",
]

#: Name of the JSON file describing a fitted artifact (per concept, or per fit).
_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
#: Key of an option field's ``json_schema_extra`` marking an option that does not change the fitted
#: model (``Field(..., json_schema_extra={"fit_neutral": True})``; see :func:`synthaug._options.fit_neutral_field`).
FIT_NEUTRAL = "fit_neutral"


def fit_neutral_options(options_cls: type[BaseModel]) -> frozenset[str]:
    """Names of the fields of ``options_cls`` marked :data:`FIT_NEUTRAL` (generation or speed only):
    changing them never forces a refit."""
    return frozenset(name for name, info in options_cls.model_fields.items()
                     if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get(FIT_NEUTRAL))


#: How a multi-process run shares :meth:`Generator.fit` among processes:
#: ``"concept"``: each concept is trained independently (ranks fit different concepts);
#: ``"all"``: one model serves every concept (fitted once, by the main process);
#: ``"data"``: every rank takes part in fitting every concept (data-parallel training).
FitScope = Literal["concept", "all", "data"]
#: The valid :data:`FitScope` values.
FIT_SCOPES: tuple[str, ...] = get_args(FitScope)


def slugify(text: str) -> str:
    """A file-name-safe form of ``text`` (letters, digits, ``-``, ``_``, ``.``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug or "x"


def concept_slug(name: str) -> str:
    """The artifact-folder and image-id stem of concept ``name``: unique per exact name.

    A name made only of ``A-Z a-z 0-9 . _ -`` (not starting with ``.``/``-``) is its own
    slug, so existing outputs of plain names keep their paths. Any other name (spaces,
    ``~`` of a sub-group, non-Latin script) gets its slugified form plus the first 8 hex
    digits of the SHA-256 of the exact name: ``"a b"`` -> ``a-b-<hash>``, never ``a-b``.
    """
    slug = slugify(name)
    if slug == name:
        return slug
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def derive_seed(run_seed: int, label: str, concept: str, index: int) -> int:
    """Seed of image ``index`` of ``concept``: a pure function of its inputs (< 2**53).

    Independent of batch size, process count and order, so shards reproduce one run.
    """
    key = json.dumps([int(run_seed), label, concept, int(index)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 11


@dataclass(frozen=True)
class Concept:
    """What a generator learns and reproduces: a class, or a visual sub-group of a class.

    ``name`` is unique within a run (``"melanoma"`` or ``"melanoma~1"`` for a sub-group),
    ``label`` is the class the generated images belong to, ``images`` the training images.
    ``text`` is the human phrase for prompts (the label with ``_`` as spaces by default).

    Two optional fields serve generation guided by real images (they take no part in
    equality or hashing): ``root``, the data root the image paths are recorded relative to
    (``init_image`` in the manifest), and ``other_images``, the *training* images of the other
    classes as ``((label, (path, ...)), ...)`` (``init_from=other-classes``, Diff-Mix). The
    augmenter fills both from the training split only; a val/test image is never among them.
    ``attributes`` (with ``metadata=``) holds each training image's metadata row
    (``{column: value}``, aligned with ``images``) for attribute prompts.
    ``fingerprint`` identifies the training set by content (:mod:`synthaug._fingerprint`:
    relative path, size and SHA-256 of every image, plus the generator's name, version and
    training options); the augmenter sets it, and an artifact fitted on another is not reused.
    """

    name: str
    label: str
    images: tuple[Path, ...] = ()
    text: str = ""
    root: Path | None = field(default=None, compare=False)
    other_images: tuple[tuple[str, tuple[Path, ...]], ...] = field(default=(), compare=False, repr=False)
    attributes: tuple[Mapping[str, str], ...] = field(default=(), compare=False, repr=False)
    fingerprint: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(Path(p) for p in self.images))
        object.__setattr__(self, "root", None if self.root is None else Path(self.root))
        object.__setattr__(self, "other_images", tuple(
            (str(label), tuple(Path(p) for p in paths)) for label, paths in self.other_images))
        if not self.text:
            object.__setattr__(self, "text", self.label.replace("_", " "))

    @property
    def slug(self) -> str:
        """File-name-safe concept name, unique per exact name (artifact folders, image ids).

        See :func:`concept_slug`.
        """
        return concept_slug(self.name)


@dataclass
class GeneratedImage:
    """An image and what the manifest should record about it (prompt, retries, …)."""

    image: Any  # PIL.Image.Image
    seed: int
    metadata: dict[str, Any] = field(default_factory=dict)


class GeneratorOptions(BaseModel):
    """Base of every generator's ``Options``: unknown keys are an error, fields are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


def _did_you_mean(key: str, valid: Any) -> str:
    """``" (did you mean 'x'?)"`` for the closest valid option name, or ``""``."""
    import difflib

    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _format_validation_error(generator: str, options_cls: type[BaseModel], exc: ValidationError) -> str:
    valid = ", ".join(sorted(options_cls.model_fields)) or "none"
    parts = []
    for err in exc.errors():
        key = ".".join(str(x) for x in err["loc"]) or "options"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown option {key!r}" + _did_you_mean(key, options_cls.model_fields))
        else:
            parts.append(f"option {key}={err.get('input')!r}: {err['msg']}")
    return f"generator {generator!r}: " + "; ".join(parts) + f" (valid options: {valid})"


class Generator:
    """Base class of all generators. Subclasses set ``name``, ``Options``, and implement
    :meth:`fit` and :meth:`generate`.

    The constructor validates options (a mapping, an ``Options`` instance, or keywords) and
    raises :class:`~synthaug._errors.InvalidOptionsError` listing the valid keys.
    Expensive state (a base model) should be loaded lazily, once per instance.
    """

    #: Unique kebab-case name, used on the command line (``--generator NAME``).
    name: ClassVar[str] = ""
    #: Version of the generator's algorithm/artifact format, recorded in the manifest.
    version: ClassVar[str] = "0"
    #: One-line description shown by ``synthaug generators``.
    description: ClassVar[str] = ""
    #: How a multi-process run shares :meth:`fit` (see :data:`FitScope`): ``"concept"`` when
    #: each concept is trained independently (ranks fit different concepts); ``"all"`` when one
    #: model serves every concept (fitted once, by the main process); ``"data"`` when every rank
    #: takes part in fitting every concept (data-parallel training: :meth:`fit` runs on all
    #: ranks). A class default; an instance whose scope depends on its options sets
    #: ``self.fit_scope`` in ``__init__``.
    fit_scope: FitScope = "all"
    #: True when :meth:`fit` trains ONE model shared by all concepts (e.g. a class-conditional
    #: DDPM) that should learn from every class of the training split, including classes that
    #: need no synthetic images: the augmenter then passes a concept for every class to
    #: :meth:`fit` (and still calls :meth:`generate` only for the classes that need images).
    fits_all_classes: ClassVar[bool] = False
    #: True when :meth:`fit` learns from the training images (a model that may memorise them):
    #: fitted on an unsplit folder, the augmenter then notes that those images must never be
    #: tested on later. False for a generator that only transforms images (``classic``).
    learns_from_images: ClassVar[bool] = True
    #: True for a CPU generator whose :meth:`generate` may run in worker processes
    #: (``--workers``): the instance is rebuilt there from its class and options, must need
    #: no fitted state beyond ``work_dir``, and the same seed must give the same image.
    parallel_generation: ClassVar[bool] = False
    class Options(GeneratorOptions):
        """This generator takes no options."""

    def __init__(self, options: GeneratorOptions | Mapping[str, Any] | None = None, /, **overrides: Any) -> None:
        self.options = self.parse_options(options, **overrides)
        #: The folder :meth:`fit` wrote this generator's artifacts to (the work-dir contract):
        #: ``fit`` sets it; the augmenter and the generation pool set it on an instance that
        #: generates without fitting (a worker process, a rerun that reuses the artifacts), so
        #: :meth:`generate` reads its fitted state from ``self.work_dir`` and nowhere else.
        self.work_dir: Path | None = None
        self.check_options()

    def check_options(self) -> None:
        """Public hook: check what the options model cannot (values that depend on each other).

        Called once by the constructor after the options are parsed; raise
        :class:`~synthaug.InvalidOptionsError` naming the option, its value and what is allowed.
        A subclass that overrides it calls ``super().check_options()`` first.
        """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name and not _NAME_RE.match(cls.name):
            raise TypeError(f"generator name {cls.name!r} of {cls.__qualname__} must be kebab-case, e.g. 'my-gen'")
        scope = cls.__dict__.get("fit_scope", cls.fit_scope)
        if isinstance(scope, str) and scope not in FIT_SCOPES:
            raise TypeError(f"fit_scope {scope!r} of {cls.__qualname__} must be one of {', '.join(FIT_SCOPES)}")

    @classmethod
    def parse_options(cls, options: GeneratorOptions | Mapping[str, Any] | None = None, **overrides: Any) -> Any:
        """Validate options into an instance of ``cls.Options``."""
        if isinstance(options, cls.Options) and not overrides:
            return options
        data = dict(options.model_dump(exclude_unset=True) if isinstance(options, BaseModel) else options or {})
        data.update(overrides)
        try:
            return cls.Options(**data)
        except ValidationError as exc:
            raise InvalidOptionsError(_format_validation_error(cls.name, cls.Options, exc)) from None

    @classmethod
    def options_schema(cls) -> dict[str, Any]:
        """JSON schema of :attr:`Options` (descriptions and defaults included)."""
        return cls.Options.model_json_schema()

    def describe(self) -> dict[str, Any]:
        """Name, version and full options of this instance (JSON-able)."""
        return {"name": self.name, "version": self.version, "options": self.options.model_dump(mode="json")}

    def fit_options(self) -> dict[str, Any]:
        """Options that affect training: all but the fields marked fit-neutral (:func:`fit_neutral_field`)."""
        skip = fit_neutral_options(type(self.options))
        return {k: v for k, v in self.options.model_dump(mode="json").items() if k not in skip}

    def artifact_header(self) -> dict[str, Any]:
        """The fields every ``artifact.json`` starts with: generator, versions, options."""
        from ._version import __version__

        return {
            "generator": self.name,
            "generator_version": self.version,
            "synthaug_version": __version__,
            "options": self.options.model_dump(mode="json"),
            "fit_options": self.fit_options(),
        }

    # -- the contract -------------------------------------------------------------
    def fit(self, concepts: Sequence[Concept], work_dir: Path, *, progress: Progress = NULL_PROGRESS) -> None:
        """Train on every concept's images; write artifacts in ``work_dir``; resume if present."""
        raise NotImplementedError

    def generate(self, concept: Concept, seeds: Sequence[int]) -> Iterable[Any]:
        """Yield one image (PIL, or :class:`GeneratedImage`) per seed, in order."""
        raise NotImplementedError

    def features(self, paths: Sequence[Path]) -> Any:
        """Optional: one feature row per image of ``paths`` (array-like ``(len(paths), d)``).

        A generator with a feature space of its own (e.g. pooled VAE latents) overrides this;
        sub-group discovery and quality reports then use it when asked for ``"generator"``
        features. The base raises :class:`NotImplementedError`; test with
        :func:`has_features`.
        """
        raise NotImplementedError(f"generator {self.name!r} has no features(paths)")

    def record(self, concept: Concept) -> dict[str, Any]:
        """Extra manifest fields shared by every image of ``concept`` (base model, adapter hash)."""
        return {}

    def close(self) -> None:
        """Release models and memory. The instance may not be used afterwards."""


class PerConceptGenerator(Generator):
    """A generator that fits one artifact per concept, in ``work_dir/<concept slug>/``.

    :meth:`fit` loops over concepts and skips any whose ``artifact.json`` exists with the
    same options; a concept interrupted part-way is fitted again (or resumed from the
    implementation's own checkpoints inside its folder). Implement :meth:`fit_concept`.
    """

    fit_scope: FitScope = "concept"

    def concept_dir(self, concept: Concept) -> Path:
        if self.work_dir is None:
            raise RuntimeError(f"{self.name}: call fit() (or set work_dir) before generate()")
        return self.work_dir / concept.slug

    def is_fitted(self, concept: Concept) -> bool:
        """True when ``concept`` has a complete artifact made with the same training options from
        the same training set (its :attr:`Concept.fingerprint`, when set)."""
        info = read_artifact(self.concept_dir(concept))
        if info is None:
            return False
        if concept.fingerprint and info.get("training_set") != concept.fingerprint:
            return False  # fitted on other images (or by a version that did not record them)
        return info.get("generator") == self.name and info.get("fit_options") == self.fit_options()

    def fit(self, concepts: Sequence[Concept], work_dir: Path, *, progress: Progress = NULL_PROGRESS) -> None:
        self.work_dir = Path(work_dir)
        for concept in concepts:
            if self.is_fitted(concept):
                progress.log(f"{self.name}: reusing fitted artifact for {concept.name}")
                continue
            folder = self.concept_dir(concept)
            folder.mkdir(parents=True, exist_ok=True)
            extra = self.fit_concept(concept, folder, progress=progress) or {}
            self._write_artifact(concept, folder, extra)

    def _write_artifact(self, concept: Concept, folder: Path, extra: Mapping[str, Any]) -> None:
        info = {
            **self.artifact_header(),
            "concept": {"name": concept.name, "label": concept.label, "text": concept.text,
                        "n_images": len(concept.images)},
            "training_set": concept.fingerprint,
            **dict(extra),
        }
        write_artifact(folder, info)

    def artifact(self, concept: Concept) -> dict[str, Any]:
        """The artifact JSON of a fitted concept."""
        return json.loads((self.concept_dir(concept) / ARTIFACT_FILE).read_text())

    def fit_concept(self, concept: Concept, folder: Path, *, progress: Progress = NULL_PROGRESS) -> Mapping[str, Any] | None:
        """Train one concept into ``folder``; return extra JSON fields for its artifact file."""
        raise NotImplementedError


def has_features(generator: Any) -> bool:
    """True when ``generator`` overrides :meth:`Generator.features` (its own feature space).

    An object that is not a :class:`Generator` counts when it has a callable ``features``.
    """
    if isinstance(generator, Generator):
        return type(generator).features is not Generator.features
    return callable(getattr(generator, "features", None))


def iter_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]
