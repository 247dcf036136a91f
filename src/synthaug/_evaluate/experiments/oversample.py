"""``oversample``: real images of the smaller classes repeated at random up to the largest class."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..._dataset import Dataset, Sample
from ..._hookspecs import hookimpl
from .base import Experiment, TrainingSet


def samples_by_class(train: Dataset) -> dict[str, list[Sample]]:
    """The training samples of each class, in dataset order."""
    out: dict[str, list[Sample]] = {}
    for s in train:
        out.setdefault(s.label, []).append(s)
    return out


@dataclass(frozen=True)
class Oversample(Experiment):
    kind = "oversample"
    summary = "RandomOverSampler: real images of smaller classes repeated up to the largest (no new images)"

    def training_set(self, train: Dataset, *, pool: Mapping[str, Sequence[Sample]] | None, source: str,
                     seed: int) -> TrainingSet:
        rng = random.Random(seed)
        members_of = samples_by_class(train)
        majority = max(len(v) for v in members_of.values())
        extra = []
        for label in sorted(members_of):
            members = members_of[label]
            extra.extend(rng.choice(members) for _ in range(majority - len(members)))
        return TrainingSet(list(train) + extra)


@hookimpl
def register_experiments(register: Callable[[type], None]) -> None:
    """synthaug's own experiment kind(s) of this module, through the same hook as plugins'."""
    register(Oversample)
