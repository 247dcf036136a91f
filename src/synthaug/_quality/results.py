"""What a quality assessment found: one :class:`SyntheticImage` per image and the whole
:class:`QualityReport` (computed by :mod:`.assessment`, written by :mod:`.render`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["REASONS", "QualityReport", "SyntheticImage", "json_number"]

#: Every reason an image can be flagged for.
REASONS = ("unreadable", "blank", "copy", "outlier")


@dataclass
class SyntheticImage:
    """One synthetic image's findings (``record`` is its manifest record, if any)."""

    path: Path
    label: str
    record: Mapping[str, Any] | None = None
    readable: bool = True
    blank: bool = False
    nearest: Path | None = None
    similarity: float = float("nan")
    outlier_score: float = float("nan")
    flags: list[str] = field(default_factory=list)

    def to_dict(self, root: Path | None = None) -> dict[str, Any]:
        file = self.record.get("file") if self.record else None
        if file is None:
            file = os.path.relpath(self.path, root) if root else str(self.path)
        return {
            "file": file,
            "class": self.label,
            "concept": (self.record or {}).get("concept", self.label),
            "nearest_training_image": str(self.nearest) if self.nearest else None,
            "similarity": json_number(self.similarity),
            "outlier_score": json_number(self.outlier_score),
            "flags": list(self.flags),
        }


def json_number(value: float, digits: int = 4) -> float | None:
    """A JSON-safe rounded float (``None`` for NaN/inf)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


@dataclass
class QualityReport:
    """Everything :func:`quality_report` found; :meth:`to_dict` is what ``report.json`` holds."""

    settings: dict[str, Any]
    overall: dict[str, Any]
    classes: dict[str, dict[str, Any]]
    images: list[SyntheticImage]
    synthetic_root: Path
    figures: list[str] = field(default_factory=list)
    #: keep rates of the filters applied (``filter_synthetic(by=...)``): filter -> class -> counts
    filters: dict[str, Any] = field(default_factory=dict)
    #: (real side, synthetic side, training Dataset, feature space) as scanned: features for the filters; not in report.json
    sides: Any = field(default=None, repr=False, compare=False)

    def flagged(self, reasons: Sequence[str] | None = None) -> list[SyntheticImage]:
        """Synthetic images with at least one of ``reasons`` among their flags (any flag when ``None``)."""
        if reasons is None:
            return [im for im in self.images if im.flags]
        wanted = set(reasons)
        return [im for im in self.images if wanted & set(im.flags)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "overall": self.overall,
            "classes": self.classes,
            "flagged": [im.to_dict(self.synthetic_root) for im in self.flagged()],
            "figures": self.figures,
            **({"filters": self.filters} if self.filters else {}),
        }
