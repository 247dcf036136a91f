"""``upsample``: minority upsampling with synthetic images of the chosen source, and
``classic``: the same with the built-in ``classic`` generator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..._errors import InvalidParameterError
from ..._hookspecs import hookimpl
from ..._policy import MinorityUpsampling
from ..sources import Source
from .base import Experiment, ExperimentOptions
from .synthetic import SyntheticExperiment


def upsample_strategy(spec: str, counts: Mapping[str, int]) -> Any:
    """A :class:`MinorityUpsampling` strategy from ``--upsample``: an imbalanced-learn strategy
    name (``auto`` = every class but the largest, ``minority``, ...), ``rarest:K`` (the K
    smallest classes of the training set), or class names separated by commas."""
    from ..._policy import STRATEGIES

    text = spec.strip()
    if text.replace("-", " ").replace("_", " ").lower() in STRATEGIES:
        return text
    majority = max(counts.values())
    if text.lower().startswith("rarest:"):
        try:
            k = int(text.split(":", 1)[1])
        except ValueError:
            k = 0
        if k < 1:
            raise InvalidParameterError("--upsample", spec, "rarest:K with K a positive integer, e.g. rarest:2")
        chosen = sorted(counts, key=lambda c: (counts[c], c))[:k]
    else:
        chosen = [c.strip() for c in text.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in counts]
        if unknown or not chosen:
            raise InvalidParameterError(
                "--upsample", spec, "a strategy (" + ", ".join(STRATEGIES) + "), rarest:K, or class names from "
                + ", ".join(sorted(counts)))
    return {c: majority for c in chosen}


@dataclass(frozen=True)
class Upsample(SyntheticExperiment):
    upsample: str = "auto"

    kind = "upsample"
    summary = ("classes (--upsample) filled up to the largest with synthetic images of the chosen source "
               "(-g/--synthetic; the classic generator without them, as balance)")

    @classmethod
    def from_spec(cls, value: str, options: ExperimentOptions) -> list[Experiment]:
        super().from_spec(value, options)  # refuses a ':value'
        return [cls(cls.kind, upsample=options.upsample)]

    def source(self, chosen: Source | None) -> Source | None:
        """The user's source, or the built-in ``classic`` generator without -g/--synthetic (as ``balance``)."""
        return chosen if chosen is not None else Source.generator("classic")

    def policy(self, counts: Mapping[str, int]) -> MinorityUpsampling:
        return MinorityUpsampling(upsample_strategy(self.upsample, counts))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "upsample": self.upsample}


@dataclass(frozen=True)
class ClassicUpsample(Upsample):
    kind = "classic"
    summary = "like upsample, always with the built-in classic generator"

    def source(self, chosen: Source | None) -> Source | None:
        return Source.generator("classic")


@hookimpl
def register_experiments(register: Callable[[type], None]) -> None:
    """synthaug's own experiment kind(s) of this module, through the same hook as plugins'."""
    register(Upsample)
    register(ClassicUpsample)
