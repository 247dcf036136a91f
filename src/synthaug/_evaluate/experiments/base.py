"""The experiment contract, its registry, and the training set an experiment builds.

An experiment kind is one small class: a frozen dataclass subclassing :class:`Experiment`,
decorated with :func:`register_experiment`. It says which synthetic source it needs (if any)
and builds its :class:`TrainingSet` from a split's training images. Nothing else in the
harness knows the kinds by name: parsing ``--experiments``, the runner and the report all go
through this registry, so a new kind is one new file (see docs/evaluation.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from ..._dataset import Dataset, Sample
from ..._errors import InvalidParameterError
from ..sources import Source

__all__ = ["BUILTIN_EXPERIMENTS", "Experiment", "ExperimentOptions", "TrainingSet", "EXPERIMENTS", "register_experiment",
           "experiment_class", "registered_experiments", "sweep_values"]

E = TypeVar("E", bound="type[Experiment]")

#: kind (and alias) -> experiment class; filled through the ``register_experiments`` hook
#: (:func:`registered_experiments`), whose ``register`` is :func:`register_experiment`.
EXPERIMENTS: dict[str, type[Experiment]] = {}
#: synthaug's own experiment modules: plugins of the ``register_experiments`` hook like any other.
BUILTIN_EXPERIMENTS = tuple(f"synthaug._evaluate.experiments.{name}" for name in (
    "baseline", "upsample", "proportion", "oversample", "class_weights", "filtered", "strength", "real_fraction"))
_COLLECTED_FROM: list[object] = []  # the plugin manager EXPERIMENTS was collected from


@dataclass
class TrainingSet:
    """What one experiment trains on in one split."""

    real: list[Sample]
    synthetic: list[Sample] = field(default_factory=list)
    class_weights: dict[str, float] | None = None

    def counts(self, classes: Sequence[str]) -> dict[str, dict[str, int]]:
        out = {c: {"real": 0, "synthetic": 0} for c in classes}
        for s in self.real:
            out[s.label]["real"] += 1
        for s in self.synthetic:
            out[s.label]["synthetic"] += 1
        return out

    @property
    def synthetic_share(self) -> float:
        total = len(self.real) + len(self.synthetic)
        return len(self.synthetic) / total if total else 0.0


@dataclass(frozen=True)
class ExperimentOptions:
    """Options of ``--experiments`` that some kinds read (``--shares``, ``--proportion-mode``, ``--upsample``,
    ``--fractions``)."""

    shares: Sequence[float] = ()
    proportion_mode: str = "replace"
    upsample: str = "auto"
    strengths: Sequence[float] = ()
    fractions: Sequence[float] = ()


@dataclass(frozen=True)
class Experiment(ABC):
    """One experiment of the harness. Subclasses set :attr:`kind` and implement :meth:`training_set`."""

    name: str
    #: The name in ``--experiments`` and report.json's ``kind``.
    kind: ClassVar[str] = ""
    #: Other spellings accepted by ``--experiments``.
    aliases: ClassVar[tuple[str, ...]] = ()
    #: One line for ``--help`` and the docs.
    summary: ClassVar[str] = ""

    @classmethod
    def from_spec(cls, value: str, options: ExperimentOptions) -> list[Experiment]:
        """The experiments ``kind[:value]`` in ``--experiments`` stands for (default: one, no value)."""
        if value:
            raise InvalidParameterError("--experiments", f"{cls.kind}:{value}", f"{cls.kind!r} takes no ':value'")
        return [cls(cls.kind)]

    @property
    def uses_synthetic(self) -> bool:
        return False

    def source(self, chosen: Source | None) -> Source | None:
        """The synthetic source this experiment draws from, given the user's (None: real only)."""
        return None

    def needed_synthetic(self, train: Dataset) -> dict[str, int]:
        """Per class, how many synthetic images :meth:`training_set` will take on ``train``."""
        return {}

    @abstractmethod
    def training_set(
        self, train: Dataset, *, pool: Mapping[str, Sequence[Sample]] | None, source: str, seed: int
    ) -> TrainingSet:
        """The training set on ``train``; ``pool``: synthetic images per class from :meth:`source`."""

    def to_dict(self) -> dict[str, Any]:
        """The experiment's settings as recorded in report.json."""
        return {"name": self.name, "kind": self.kind}


def sweep_values(value: str, given: Sequence[float], option: str, *, missing: str, allowed: str,
                 inside: Callable[[float], bool] | None = None) -> list[float]:
    """The numbers a sweep kind expands to: the ``value`` of ``kind:value``, else every number of
    ``given`` (``--shares``, ``--fractions``, ``--strengths``). An :class:`InvalidParameterError`
    naming ``option``: ``missing`` when there is none, ``allowed`` for a value that is not a number
    or not ``inside`` the kind's range."""
    chosen = [value] if value else list(given)
    if not chosen:
        raise InvalidParameterError(option, None, missing)
    numbers = []
    for v in chosen:
        try:
            number = float(v)
        except (TypeError, ValueError):
            raise InvalidParameterError(option, v, allowed) from None
        if inside is not None and not inside(number):
            raise InvalidParameterError(option, v, allowed)
        numbers.append(number)
    return numbers


def registered_experiments() -> dict[str, type[Experiment]]:
    """Every experiment kind and alias, collected once per plugin manager through the hook."""
    from ..._plugins import get_plugin_manager, register_experiments

    pm = get_plugin_manager()
    if not _COLLECTED_FROM or _COLLECTED_FROM[0] is not pm:
        EXPERIMENTS.clear()
        _COLLECTED_FROM[:] = [pm]
        register_experiments(register_experiment, BUILTIN_EXPERIMENTS)
    return EXPERIMENTS


def register_experiment(cls: E) -> E:
    """The ``register`` of the ``register_experiments`` hook: make ``cls`` (an
    :class:`Experiment` subclass) available to ``--experiments`` under its kind and aliases."""
    if not (isinstance(cls, type) and issubclass(cls, Experiment)):
        raise TypeError(f"register_experiments registered {cls!r}, which is not a synthaug.Experiment subclass")
    if not cls.kind:
        raise TypeError(f"{cls.__name__} needs a 'kind'")
    for name in (cls.kind, *cls.aliases):
        EXPERIMENTS[name] = cls
    return cls


def experiment_class(name: str) -> type[Experiment]:
    """The registered class of a kind or alias (an InvalidParameterError naming the kinds if none)."""
    key = name.strip().lower().replace("_", "-")
    experiments = registered_experiments()
    if key not in experiments:
        kinds = sorted({c.kind for c in experiments.values()})
        raise InvalidParameterError("--experiments", name, "names from " + ", ".join(kinds))
    return experiments[key]
