"""``baseline``: the real training images only (always run, first)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..._dataset import Dataset, Sample
from ..._hookspecs import hookimpl
from .base import Experiment, TrainingSet


@dataclass(frozen=True)
class Baseline(Experiment):
    kind = "baseline"
    summary = "the real training images only (always run)"

    def training_set(self, train: Dataset, *, pool: Mapping[str, Sequence[Sample]] | None, source: str,
                     seed: int) -> TrainingSet:
        return TrainingSet(list(train))


@hookimpl
def register_experiments(register: Callable[[type], None]) -> None:
    """synthaug's own experiment kind(s) of this module, through the same hook as plugins'."""
    register(Baseline)
