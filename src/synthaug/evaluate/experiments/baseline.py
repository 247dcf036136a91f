"""``baseline``: the real training images only (always run, first)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...dataset import Dataset, Sample
from .base import Experiment, TrainingSet, register_experiment


@register_experiment
@dataclass(frozen=True)
class Baseline(Experiment):
    kind = "baseline"
    summary = "the real training images only (always run)"

    def training_set(self, train: Dataset, *, pool: Mapping[str, Sequence[Sample]] | None, source: str,
                     seed: int) -> TrainingSet:
        return TrainingSet(list(train))
