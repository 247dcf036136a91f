"""Remove flagged synthetic images from a synthaug output folder (moved, never deleted).

:func:`filter_synthetic` moves the images the quality report flags (by default near-copies,
blank and unreadable images; outliers on request) to the sidecar folder ``OUT.synthaug/rejected/<class>/`` and out
of ``manifest.jsonl`` through :meth:`synthaug._store.Store.reject`, which also retires their
indices. Running the same ``balance`` command on ``OUT`` again then tops the folder up to the
planned counts with new seeds. (The sidecar, not ``OUT/_rejected/``, keeps ``OUT`` readable by
``ImageFolder``-style readers, which would take ``_rejected`` for a class.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .._errors import DatasetError, InvalidParameterError
from .assessment import DEFAULT_FILTER, quality_report
from .results import REASONS, QualityReport

__all__ = ["filter_synthetic"]


def _reasons(reasons: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(r.strip().lower() for r in reasons if r.strip()))
    unknown = [r for r in chosen if r not in REASONS]
    if unknown or not chosen:
        raise InvalidParameterError("reasons", list(reasons), "one or more of " + ", ".join(REASONS))
    return chosen


def _default_reasons(by: Sequence[Any], report: QualityReport) -> tuple[str, ...]:
    """The flags filtered on when none are given: ``nearest-real`` in a learned space replaces ``copy``."""
    learned = report.settings.get("feature_space") != "colour-texture"
    if learned and any(spec.name == "nearest-real" for spec in by):
        return tuple(r for r in DEFAULT_FILTER if r != "copy")
    return DEFAULT_FILTER


def filter_synthetic(
    synthetic: str | os.PathLike[str],
    real: Any = None,
    *,
    report: QualityReport | None = None,
    reasons: Sequence[str] | None = None,
    by: Sequence[str] = (),
    device: str = "auto",
    **report_options: Any,
) -> dict[str, Any]:
    """Reject the flagged images of the synthaug output folder ``synthetic``.

    Give the real training data ``real`` (a report is computed with ``report_options``) or a
    ready ``report`` of that folder. ``reasons`` (the report's flags) defaults to unreadable,
    blank and copy; add ``"outlier"`` to also remove images far from the class's real images.
    ``by`` adds filters (``"classifier-confidence:0.3"``, ``"nearest-real:far=0.9,near=0.05"``,
    ``"prompt-similarity:top=0.8"``, ``"outlier"``; see :mod:`.selection`), whose keep rates per
    class go to ``report.filters`` (a ``report`` whose ``filters`` are already set is not filtered
    again: its flags are used as they are); with ``nearest-real`` in a learned feature space the default
    reasons leave out the pixel-space ``copy`` rule. Returns ``{"rejected": n, "by_reason": {...},
    "by_class": {...}, "keep_rates": {...}, "report": QualityReport}``.
    """
    from .._store import Store
    from .selection import apply_filters, parse_filter

    specs = [parse_filter(text) for text in by]
    if reasons is not None:
        _reasons(reasons)
    store = Store(synthetic)
    if not store.manifest_path.is_file():
        raise DatasetError(
            f"{str(synthetic)!r} has no manifest.jsonl: filtering works on synthaug output folders only "
            "(it moves images out of the manifest so that a re-run can top the plan up)"
        )
    if report is None:
        if real is None:
            raise InvalidParameterError("real", None, "the real training data (or a ready report)")
        report = quality_report(real, synthetic, device=device, **report_options)
    chosen = _reasons(_default_reasons(specs, report) if reasons is None else reasons)
    if specs and not report.filters:  # a report whose filters already ran (report.filters set) keeps their flags
        apply_filters(report, specs, device=device, seed=int(report.settings.get("seed", 0)))
    rates = report.filters
    chosen = tuple(dict.fromkeys([*chosen, *(spec.name for spec in specs)]))
    flagged = [im for im in report.flagged(chosen) if im.record is not None]
    why = {im.record["file"]: "+".join(f for f in im.flags if f in chosen) for im in flagged}
    n = store.reject([im.record for im in flagged], why)
    by_reason: dict[str, int] = {}
    by_class: dict[str, int] = {}
    for im in flagged:
        by_class[im.label] = by_class.get(im.label, 0) + 1
        for flag in im.flags:
            if flag in chosen:
                by_reason[flag] = by_reason.get(flag, 0) + 1
    return {"rejected": n, "by_reason": by_reason, "by_class": by_class, "keep_rates": rates,
            "rejected_dir": str(store.sidecar / "rejected"), "report": report}
