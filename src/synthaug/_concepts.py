"""Concept strategies: how the classes a plan fills become concepts, beside ``policy=``.

A :class:`ConceptStrategy` turns "class -> number of synthetic images needed" into concepts
(what a generator fits and generates) and their quotas:

- :class:`ByClass` (default): one concept per class;
- :class:`Subgroups`: one concept per visual sub-group of a class
  (:meth:`Subgroups.auto`, :meth:`Subgroups.k`, :meth:`Subgroups.from_csv`; see
  :mod:`synthaug._subgroups`), the class's quota shared in proportion to group sizes.

>>> SyntheticAugmenter("lora-sd15", concepts=Subgroups.auto(max_subgroups=3))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._errors import InvalidParameterError
from ._generator import Concept
from ._progress import NULL_PROGRESS, Progress
from ._subgroups import SubgroupAssignment, SubgroupSetting, parse_subgroups

__all__ = ["ByClass", "ConceptStrategy", "Subgroups", "concepts_from", "training_contexts", "validate_concepts",
           "with_training_context"]

ClassPaths = Mapping[str, Sequence[Path]]


class ConceptStrategy:
    """Base of the concept strategies. Subclasses implement :meth:`concepts`.

    :meth:`describe` is what ``plan.json`` records when :attr:`active` (a changed description
    is a different run).
    """

    @property
    def active(self) -> bool:
        """True when concepts may differ from classes (recorded in the run description)."""
        return False

    def describe(self) -> dict[str, Any]:
        """JSON-able form of the strategy, recorded in ``plan.json`` when :attr:`active`."""
        return {}

    def concepts(self, by_class: ClassPaths, needed: Mapping[str, int], *, generator: Any = None, seed: int = 0,
                 progress: Progress = NULL_PROGRESS) -> tuple[list[Concept], dict[str, int]]:
        """Concepts for the classes in ``needed`` (class -> images needed) and their quotas.

        ``by_class`` holds each class's training images. Quotas of a class sum to its need;
        concepts with a quota of 0 are left out.
        """
        raise NotImplementedError

    def write_files(self, folder: str | os.PathLike[str]) -> None:
        """Write what a user should look at (contact sheets) into ``folder``; default nothing."""


class ByClass(ConceptStrategy):
    """One concept per class that needs images (the default)."""

    def __repr__(self) -> str:
        return "ByClass()"

    def concepts(self, by_class: ClassPaths, needed: Mapping[str, int], *, generator: Any = None, seed: int = 0,
                 progress: Progress = NULL_PROGRESS) -> tuple[list[Concept], dict[str, int]]:
        return [Concept(label, label, tuple(by_class.get(label, ()))) for label in needed], dict(needed)


def _feature_name(features: Any) -> str:
    return features if isinstance(features, str) else getattr(features, "name", type(features).__name__)


class Subgroups(ConceptStrategy):
    """One concept per visual sub-group of each class (``"<class>~<group>"``).

    ``setting`` is ``"auto"``, a number of groups ``K``, ``"FILE.csv:COLUMN"`` or a
    :class:`~synthaug._subgroups.SubgroupSetting`; ``features`` the k-means feature space:
    ``"colour-texture"`` (download-free), ``"generator"`` (the generator's
    :meth:`~synthaug.Generator.features`) or an object with ``name`` and ``extract(paths)``.
    The sub-groups are found once per training set and kept in :attr:`found_`.
    """

    def __init__(self, setting: SubgroupSetting | str | int = "auto", *, features: Any = "colour-texture",
                 max_subgroups: int = 4, min_group_size: int = 8, min_silhouette: float = 0.2) -> None:
        self.setting = parse_subgroups(setting, max_subgroups=max_subgroups, min_group_size=min_group_size,
                                       min_silhouette=min_silhouette, features=_feature_name(features))
        self.features = features
        self.found_: SubgroupAssignment | None = None
        self._key: tuple | None = None

    def __repr__(self) -> str:
        return f"Subgroups({self.setting.describe()!r})"

    @property
    def active(self) -> bool:
        return self.setting.active

    def describe(self) -> dict[str, Any]:
        return self.setting.describe()

    @classmethod
    def auto(cls, *, max_subgroups: int = 4, min_group_size: int = 8, min_silhouette: float = 0.2,
             features: Any = "colour-texture") -> Subgroups:
        """k-means, ``k`` in ``[1, max_subgroups]`` chosen by silhouette (see :mod:`synthaug._subgroups`)."""
        return cls("auto", features=features, max_subgroups=max_subgroups, min_group_size=min_group_size,
                   min_silhouette=min_silhouette)

    @classmethod
    def k(cls, k: int, *, features: Any = "colour-texture") -> Subgroups:
        """k-means with exactly ``k`` groups per class (fewer when a class has fewer images)."""
        return cls(k, features=features)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], column: str) -> Subgroups:
        """Groups given by ``column`` of the CSV ``path``, matched to images by file stem."""
        return cls(f"{os.fspath(path)}:{column}")

    def concepts(self, by_class: ClassPaths, needed: Mapping[str, int], *, generator: Any = None, seed: int = 0,
                 progress: Progress = NULL_PROGRESS) -> tuple[list[Concept], dict[str, int]]:
        from ._subgroups import find_subgroups, split_quota

        wanted = {label: list(by_class.get(label, [])) for label in needed}
        key = tuple((label, tuple(paths)) for label, paths in wanted.items())
        if self.found_ is None or self._key != key:  # found once per training set
            space = self._feature_space(generator, progress)
            self.found_ = find_subgroups(wanted, self.setting, feature_space=space, seed=seed)
            self._key = key
        concepts, quotas = [], {}
        for label, total in needed.items():
            groups = self.found_.concepts_of(label)
            if not any(groups.values()):  # a class with no training image: one (empty) concept
                concepts.append(Concept(label, label, ()))
                quotas[label] = total
                continue
            shares = split_quota(total, {name: len(paths) for name, paths in groups.items()})
            for name, paths in groups.items():
                if shares[name] > 0:
                    concepts.append(Concept(name, label, tuple(paths)))
                    quotas[name] = shares[name]
        return concepts, quotas

    def _feature_space(self, generator: Any, progress: Progress) -> Any:
        """The feature space of the k-means (``None`` for CSV groups)."""
        if self.setting.mode not in ("auto", "k"):
            return None
        from ._extractors import resolve_feature_space

        space, note = resolve_feature_space(self.features, generator=generator)
        if space.name != self.setting.features:
            progress.log(f"sub-groups: using {note}")
        return space

    def write_files(self, folder: str | os.PathLike[str]) -> None:
        """Contact sheets and ``subgroups.json`` of the sub-groups found."""
        if self.found_ is not None:
            from ._subgroups import write_subgroup_files

            write_subgroup_files(self.found_, folder)


def concepts_from(subgroups: str | int | SubgroupSetting | None = "none", *, max_subgroups: int = 4,
                  min_group_size: int = 8, min_silhouette: float = 0.2,
                  features: Any = "colour-texture") -> ConceptStrategy:
    """The strategy of a ``--subgroups`` value (``"none"``, ``"auto"``, ``K``, ``"FILE.csv:COLUMN"``)."""
    setting = parse_subgroups(subgroups, max_subgroups=max_subgroups, min_group_size=min_group_size,
                              min_silhouette=min_silhouette, features=_feature_name(features))
    return Subgroups(setting, features=features) if setting.active else ByClass()


def with_training_context(concept: Concept, by_class: ClassPaths, root: str | os.PathLike[str] | None,
                          metadata: Mapping[str, Mapping[str, str]] | None = None) -> Concept:
    """``concept`` with its data ``root``, the training images of every other class
    (``other_images``, for ``init_from=other-classes``) and, with ``metadata`` (image stem -> row),
    each image's row (``attributes``); ``by_class`` must be the training split."""
    from dataclasses import replace

    from ._metadata import image_attributes

    others = tuple((label, tuple(sorted(Path(p) for p in paths))) for label, paths in sorted(by_class.items())
                   if label != concept.label and paths)
    attributes = image_attributes(metadata, concept.images) if metadata is not None else ()
    return replace(concept, root=None if root is None else Path(root), other_images=others, attributes=attributes)


def training_contexts(concepts: Sequence[Concept], by_class: ClassPaths, root: str | os.PathLike[str] | None,
                      metadata: str | os.PathLike[str] | None = None) -> list[Concept]:
    """:func:`with_training_context` of every concept, with the ``metadata`` CSV (if any) read once."""
    from ._metadata import read_metadata

    rows = read_metadata(metadata) if metadata is not None else None
    return [with_training_context(c, by_class, root, rows) for c in concepts]


def validate_concepts(concepts: ConceptStrategy | None) -> ConceptStrategy:
    """The augmenter's ``concepts`` parameter: a :class:`ConceptStrategy`, default :class:`ByClass`."""
    if concepts is None:
        return ByClass()
    if not isinstance(concepts, ConceptStrategy):
        raise InvalidParameterError("concepts", concepts, "a ConceptStrategy: ByClass() or Subgroups.auto(...)")
    return concepts
