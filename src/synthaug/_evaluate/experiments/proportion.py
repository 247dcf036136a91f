"""``proportion-S``: ``Proportion(S/100, mode)``, S % of each class's training set synthetic."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..._hookspecs import hookimpl
from ..._policy import Proportion
from .base import Experiment, ExperimentOptions, sweep_values
from .synthetic import SyntheticExperiment


@dataclass(frozen=True)
class ProportionSweep(SyntheticExperiment):
    share: float = 0.5
    proportion_mode: str = "replace"

    kind = "proportion"
    summary = "S % of each class's training set synthetic, one experiment per --shares value"

    @classmethod
    def from_spec(cls, value: str, options: ExperimentOptions) -> list[Experiment]:
        """``proportion`` expands to one experiment per ``--shares`` value; ``proportion:0.6`` gives one."""
        shares = sweep_values(value, options.shares, "--shares",
                              missing="one or more shares for the proportion experiment, e.g. --shares 0.3,0.6",
                              allowed="a number in (0, 1]")
        for share in shares:
            Proportion(share, mode=options.proportion_mode)  # validates
        return [cls(f"proportion-{s * 100:g}", share=s, proportion_mode=options.proportion_mode) for s in shares]

    def policy(self, counts: Mapping[str, int]) -> Proportion:
        return Proportion(self.share, mode=self.proportion_mode)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "share": self.share, "mode": self.proportion_mode}


@hookimpl
def register_experiments(register: Callable[[type], None]) -> None:
    """synthaug's own experiment kind(s) of this module, through the same hook as plugins'."""
    register(ProportionSweep)
