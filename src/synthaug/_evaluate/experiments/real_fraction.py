"""``real-fraction-F``: the baseline on a class-stratified fraction F of the real training images.

``-e real-fraction --fractions 0.25,0.5,0.75`` gives one experiment per fraction; with the
baseline (fraction 1) they form the learning curve of real data, from which the report reads
how many real images each other experiment is "worth" (:mod:`synthaug._evaluate.worth`).
Each class keeps ``max(1, round(F * n_class))`` of its images, drawn with the split's seed, so
the class proportions of the training set are unchanged and every class is still present.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..._dataset import Dataset, Sample
from ..._hookspecs import hookimpl
from .base import Experiment, ExperimentOptions, TrainingSet, sweep_values
from .oversample import samples_by_class

__all__ = ["RealFraction", "stratified_fraction"]

_ALLOWED = "fractions in (0, 1), e.g. --fractions 0.25,0.5,0.75"


def stratified_fraction(train: Dataset, fraction: float, seed: int) -> list[Sample]:
    """``max(1, round(fraction * n_c))`` images of each class ``c``, drawn with ``seed``, in dataset order."""
    rng = random.Random(seed)
    keep: set[int] = set()
    for _label, members in sorted(samples_by_class(train).items()):
        chosen = rng.sample(range(len(members)), max(1, round(fraction * len(members))))
        keep.update(id(members[i]) for i in chosen)
    return [s for s in train if id(s) in keep]


@dataclass(frozen=True)
class RealFraction(Experiment):
    fraction: float = 0.5

    kind = "real-fraction"
    summary = "the baseline on a class-stratified fraction of the real training images, one per --fractions value"

    @classmethod
    def from_spec(cls, value: str, options: ExperimentOptions) -> list[Experiment]:
        """``real-fraction`` expands to one experiment per ``--fractions`` value; ``real-fraction:0.5`` gives one."""
        fractions = sweep_values(value, options.fractions, "--fractions", missing=_ALLOWED, allowed=_ALLOWED,
                                 inside=lambda f: 0 < f < 1)
        return [cls(f"real-fraction-{f * 100:g}", fraction=f) for f in fractions]

    def training_set(self, train: Dataset, *, pool: Mapping[str, Sequence[Sample]] | None, source: str,
                     seed: int) -> TrainingSet:
        return TrainingSet(stratified_fraction(train, self.fraction, seed))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "fraction": self.fraction}


@hookimpl
def register_experiments(register: Callable[[type], None]) -> None:
    """synthaug's own experiment kind(s) of this module, through the same hook as plugins'."""
    register(RealFraction)
