"""``strength-S``: ``upsample`` with the generator's img2img ``strength`` set to S, one experiment
per ``--strengths`` value (DA-Fusion's strength ablation; see docs/recipes.md).

Each strength is its own synthetic source (``generator:NAME@strength=S``), generated per split
from that split's training images; the fitted adapters are shared by the strengths of a split
(``strength`` is fit-neutral), so a sweep trains each adapter once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..._errors import InvalidParameterError
from ..._hookspecs import hookimpl
from ..sources import Source
from .base import Experiment, ExperimentOptions, sweep_values
from .upsample import Upsample


@dataclass(frozen=True)
class StrengthSweep(Upsample):
    strength: float = 1.0

    kind = "strength"
    summary = "like upsample, with the generator's img2img strength S, one experiment per --strengths value"

    @classmethod
    def from_spec(cls, value: str, options: ExperimentOptions) -> list[Experiment]:
        """``strength`` expands to one experiment per ``--strengths`` value; ``strength:0.5`` gives one."""
        strengths = sweep_values(value, options.strengths, "--strengths",
                                 missing="one or more img2img strengths, e.g. --strengths 0.25,0.5",
                                 allowed="strengths in (0, 1], e.g. 0.25,0.5,0.75,1.0", inside=lambda s: 0 < s <= 1)
        return [cls(f"strength-{s:g}", upsample=options.upsample, strength=s) for s in strengths]

    def source(self, chosen: Source | None) -> Source | None:
        base = super().source(chosen)
        if base is None or base.kind != "generator":
            raise InvalidParameterError("--strengths", self.strength,
                                        "a sweep together with --generator (a Stable Diffusion generator that has a "
                                        "strength option), not --synthetic folders")
        return Source.generator(base.name, {**base.options, "strength": self.strength},
                                variant=f"strength={self.strength:g}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "strength": self.strength}


@hookimpl
def register_experiments(register: Callable[[type], None]) -> None:
    """synthaug's own experiment kind(s) of this module, through the same hook as plugins'."""
    register(StrengthSweep)
