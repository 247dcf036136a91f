"""The shared part of experiments that train on synthetic images: a synthaug policy decides
how many real and synthetic images of each class to use; synthetic images are taken from a
per-split pool in manifest order (concept, index), so a smaller share uses a prefix of the
images a larger one uses."""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..._dataset import Dataset, Sample
from ..._errors import DatasetError, InvalidParameterError
from ..._policy import Plan
from ..sources import Source
from .base import Experiment, TrainingSet
from .oversample import samples_by_class


def take_synthetic(pool: Mapping[str, Sequence[Sample]], label: str, n: int, source: str) -> list[Sample]:
    """The first ``n`` synthetic images of ``label`` in ``pool`` (a clear error if there are fewer)."""
    available = list(pool.get(label, ()))
    if len(available) < n:
        raise DatasetError(
            f"synthetic source {source} has {len(available)} image(s) of class {label!r} but the experiment "
            f"needs {n}; generate more (e.g. a larger --target) or use --generator to generate per split"
        )
    return available[:n]


@dataclass(frozen=True)
class SyntheticExperiment(Experiment):
    """An experiment whose training set a synthaug policy plans from the training class counts."""

    @property
    def uses_synthetic(self) -> bool:
        return True

    @abstractmethod
    def policy(self, counts: Mapping[str, int]) -> Any:
        """The synthaug policy for a training set's class counts."""

    def source(self, chosen: Source | None) -> Source | None:
        if chosen is None:
            raise InvalidParameterError(
                "--generator/--synthetic", None,
                f"a generator name or synthetic folder(s): experiment {self.name!r} needs synthetic images",
            )
        return chosen

    def plan(self, train: Dataset) -> Plan:
        counts = train.counts()
        return self.policy(counts).plan(counts)

    def needed_synthetic(self, train: Dataset) -> dict[str, int]:
        return {label: cp.synthetic for label, cp in self.plan(train).classes.items()}

    def training_set(self, train: Dataset, *, pool: Mapping[str, Sequence[Sample]] | None, source: str,
                     seed: int) -> TrainingSet:
        if pool is None:
            raise InvalidParameterError("synthetic source", None, f"a generator or synthetic folders for {self.name!r}")
        plan = self.plan(train)
        real: list[Sample] = list(train)
        if any(cp.real_used != cp.real for cp in plan.classes.values()):
            rng = random.Random(seed)
            real = []
            for label, members in sorted(samples_by_class(train).items()):
                chosen = sorted(members, key=lambda s: str(s.path))
                rng.shuffle(chosen)
                real.extend(chosen[: plan.classes[label].real_used])
        synthetic: list[Sample] = []
        for label, cp in plan.classes.items():
            if cp.synthetic:
                synthetic.extend(take_synthetic(pool, label, cp.synthetic, source))
        return TrainingSet(real, synthetic)
