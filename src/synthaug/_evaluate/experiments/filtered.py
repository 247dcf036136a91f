"""``upsample-filtered:FILTER``: minority upsampling with a filtered synthetic pool.

Run beside ``upsample`` (``-e upsample,upsample-filtered:classifier-confidence:0.3``) it measures
what a filter is worth: both experiments draw from the same per-split pool in the same order,
the filtered one skips the images the filter rejects, and the harness gives each its verdict
against the baseline. The filter is SaSPA's ``classifier-confidence`` (see
:mod:`synthaug._quality.selection`): a small classifier is trained on the split's real
*training* images only (never on validation or test images), and synthetic images whose
probability for their own class is below the threshold (or outside the ``top=F`` share of
their class) are skipped. The pool is asked for 50 % more images than upsampling needs, so
rejected images can be replaced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..._dataset import Dataset, Sample
from ..._errors import InvalidParameterError
from ..._hookspecs import hookimpl
from .base import Experiment, ExperimentOptions, TrainingSet
from .upsample import Upsample

__all__ = ["FilteredUpsample", "filter_pool"]

DEFAULT_FILTER = "classifier-confidence:0.3"
#: The pool holds this many times the images upsampling needs, so that rejected ones can be replaced.
HEADROOM = 1.5


def _spec(text: str) -> Any:
    from ..._quality.selection import parse_filter

    spec = parse_filter(text)
    if spec.name != "classifier-confidence":
        raise InvalidParameterError("--experiments", f"upsample-filtered:{text}",
                                    "upsample-filtered:classifier-confidence[:MIN | :top=F]")
    return spec


def filter_pool(train: Dataset, pool: Mapping[str, Sequence[Sample]], text: str, *, seed: int,
                device: str = "auto") -> tuple[dict[str, list[Sample]], dict[str, dict[str, int]]]:
    """The pool without the images the filter ``text`` rejects (order kept), and kept/n per class."""
    import numpy as np

    from ..._quality.confidence import own_class_probability
    from ..._quality.selection import _keep_by_score

    spec = _spec(text)
    samples = [s for label in sorted(pool) for s in pool[label]]
    if not samples:
        return {label: [] for label in pool}, {}
    options = {key: int(spec.number(key, 1, 1e7)) for key in ("steps", "size") if key in spec.options}
    real = list(train)
    probs = own_class_probability([s.path for s in real], [s.label for s in real], [s.path for s in samples],
                                  [s.label for s in samples], model=spec.options.get("model", "small-cnn"),
                                  seed=seed, device=device, **options)
    keep = _keep_by_score(np.asarray(probs, dtype=float), np.array([s.label for s in samples]), spec)
    out: dict[str, list[Sample]] = {label: [] for label in pool}
    for sample, kept in zip(samples, keep):
        if kept:
            out[sample.label].append(sample)
    rates = {label: {"n": len(pool[label]), "kept": len(out[label])} for label in sorted(pool)}
    return out, rates


@dataclass(frozen=True)
class FilteredUpsample(Upsample):
    filter: str = DEFAULT_FILTER

    kind = "upsample-filtered"
    summary = ("like upsample, skipping the synthetic images a filter rejects "
               "(upsample-filtered:classifier-confidence:0.3); run beside upsample to measure the filter")

    @classmethod
    def from_spec(cls, value: str, options: ExperimentOptions) -> list[Experiment]:
        text = value or DEFAULT_FILTER
        _spec(text)
        return [cls(f"{cls.kind}-{text.replace(':', '-')}", upsample=options.upsample, filter=text)]

    def needed_synthetic(self, train: Dataset) -> dict[str, int]:
        return {label: math.ceil(n * HEADROOM) for label, n in super().needed_synthetic(train).items()}

    def training_set(self, train: Dataset, *, pool: Mapping[str, Sequence[Sample]] | None, source: str,
                     seed: int) -> TrainingSet:
        if pool is not None:
            needed = {label for label, n in super().needed_synthetic(train).items() if n}
            kept, _ = filter_pool(train, {label: list(pool.get(label, ())) for label in needed}, self.filter,
                                  seed=seed)
            pool = {**pool, **kept}
        return super().training_set(train, pool=pool, source=f"{source} filtered by {self.filter}", seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "filter": self.filter, "headroom": HEADROOM}


@hookimpl
def register_experiments(register: Callable[[type], None]) -> None:
    """synthaug's own experiment kind of this module, through the same hook as plugins'."""
    register(FilteredUpsample)
