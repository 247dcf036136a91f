"""``class-weights``: the real images, the loss weighted by ``n / (k * n_class)`` ("balanced")."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..._dataset import Dataset, Sample
from ..._hookspecs import hookimpl
from .base import Experiment, TrainingSet


def balanced_class_weights(train: Dataset) -> dict[str, float]:
    """``n / (k * n_class)`` per class (scikit-learn's "balanced"); empty classes get 0."""
    counts = dict(train.counts())
    present = {c: n for c, n in counts.items() if n}
    total = sum(present.values())
    return {c: (total / (len(present) * n) if n else 0.0) for c, n in counts.items()}


@dataclass(frozen=True)
class ClassWeights(Experiment):
    kind = "class-weights"
    aliases = ("class-weight", "classweights", "weights")
    summary = "the real images, loss weighted by n / (k * n_class)"

    def training_set(self, train: Dataset, *, pool: Mapping[str, Sequence[Sample]] | None, source: str,
                     seed: int) -> TrainingSet:
        return TrainingSet(list(train), class_weights=balanced_class_weights(train))


@hookimpl
def register_experiments(register: Callable[[type], None]) -> None:
    """synthaug's own experiment kind(s) of this module, through the same hook as plugins'."""
    register(ClassWeights)
