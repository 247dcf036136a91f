"""report.md sections for the clinical metrics and the small-sample notes (report.html shows the
same text through :func:`verdict_notes` and :func:`clinical_tables`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .clinical import BINARY_METRICS, SPECIFICITIES
from .stats import ENOUGH_RUNS, MIN_RUNS, TOO_FEW

__all__ = ["MIN_TEST_IMAGES", "POWER_NOTE", "verdict_notes", "count_cell", "clinical_tables",
           "clinical_markdown", "few_images_note"]

#: Per-class figures from fewer test images than this in some split are marked.
MIN_TEST_IMAGES = 5
#: The power paragraph of docs/evaluation.md ("How many splits are needed to see a difference?").
POWER_NOTE = (
    "How many runs are needed: with the corrected variance the interval's half-width is about "
    "t(0.975, K−1) · s · sqrt(1/K + n_test/n_train) for K paired runs with per-run standard deviation s "
    "of the differences. The n_test/n_train term does not shrink with K, so more runs help only down to a "
    "floor: for 5-fold, sqrt(1/K + 0.33) is 0.77 at K=3, 0.67 at K=10 and 0.62 at K=25, while t falls from "
    "4.3 to 2.3 to 2.1. With s = 7 points, 10 paired runs resolve a difference of about 11 points and 25 runs "
    "about 9 points; smaller effects need a larger test set (more images of the rare classes), not more "
    "resampling of the same images.")

_NAMES = {"macro_auroc": "macro AUROC", "ece": "calibration error (ECE)", "binary:auroc": "AUROC",
          **{f"binary:sensitivity_at_specificity_{s:g}": f"sensitivity at {s * 100:g}% specificity"
             for s in SPECIFICITIES}}


def metric_name(metric: str, positive: str | None = None) -> str:
    """A readable metric name (``binary:*`` prefixed with ``POSITIVE vs rest``)."""
    name = _NAMES.get(metric, metric.replace("_", " "))
    return f"{positive} vs rest: {name}" if metric.startswith("binary:") and positive else name


def verdict_notes(report: Mapping[str, Any]) -> list[str]:
    """Plain-text notes under the verdict tables: too few runs (with the command that gives
    enough and the power paragraph) and clipped intervals."""
    rows = [r for key in ("verdicts", "clinical_verdicts") for r in (report.get(key) or [])
            if isinstance(r, Mapping)]
    notes = []
    few = [r for r in rows if r.get("verdict") == TOO_FEW]
    if few:
        n = min(r.get("n", 0) for r in few)
        notes.append(f"Too few runs: {n} paired run(s); below {MIN_RUNS} no interval is given, because the t "
                     f"quantile alone (12.7 at 2 runs, 4.3 at 3) makes it wider than any real effect. Run "
                     f"`synthaug evaluate … {ENOUGH_RUNS}` (25 paired runs) for a verdict.")
        notes.append(POWER_NOTE)
    if any(r.get("clipped") for r in rows):
        notes.append("‡ interval clipped to the range a difference of two percentages can take (−100 to +100 "
                     "points); the unclipped interval was wider, i.e. these runs say next to nothing.")
    return notes


def count_cell(counts: Sequence[int]) -> str:
    """Per-split test images of a class: ``7`` or ``2–3`` (min–max), ``†`` when under :data:`MIN_TEST_IMAGES`."""
    if not counts:
        return "–"
    low, high = min(counts), max(counts)
    text = str(low) if low == high else f"{low}–{high}"
    return text + (" †" if low < MIN_TEST_IMAGES else "")


def few_images_note(counts: Mapping[str, Sequence[int]]) -> str | None:
    """The footnote for ``†``: classes with fewer than :data:`MIN_TEST_IMAGES` test images in some split."""
    few = [c for c, n in counts.items() if n and min(n) < MIN_TEST_IMAGES]
    if not few:
        return None
    return (f"† fewer than {MIN_TEST_IMAGES} test images in a split ({', '.join(few)}): each image moves that "
            "class's figures by 20 points or more, so its per-class numbers are anecdotes, not estimates.")


def _pm(stat: Mapping[str, Any] | None, scale: float = 100.0) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    return f"{stat['mean'] * scale:.2f} ± {stat['std'] * scale:.2f}"


def _delta(stat: Mapping[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    return f"{stat['mean'] * 100:+.2f} ({stat.get('verdict', '')})"


def clinical_tables(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{"title", "header", "rows", "note"}]``: the summary, per-class and binary tables."""
    exps: Mapping[str, Any] = report["experiments"]
    classes = report["classes"]
    if not any((e.get("test") or {}).get("clinical") for e in exps.values()):
        return []
    tables = []
    rows = [[f"{name}", _pm(e["test"]["clinical"].get("macro_auroc")), _pm(e["test"]["clinical"].get("ece")),
             "–" if name == "baseline" else _delta(e["vs_baseline"].get("macro_auroc")),
             "–" if name == "baseline" else _delta(e["vs_baseline"].get("ece"))]
            for name, e in exps.items() if (e.get("test") or {}).get("clinical")]
    undefined = sorted({c for e in exps.values() for c in (e["test"].get("clinical") or {}).get("auroc_undefined", [])})
    note = ("Macro AUROC: mean of the one-vs-rest AUROCs of the softmax. ECE: expected calibration error of the "
            "top-class confidence, 15 equal-width bins (0 = perfectly calibrated; lower is better).")
    if undefined:
        note += (f" AUROC is undefined (None) for {', '.join(undefined)} in some split, where the class is absent "
                 "from the test images; such splits leave the class out of the macro AUROC.")
    tables.append({"title": "Clinical summary (test, %)", "note": note,
                   "header": ["experiment", "macro AUROC", "ECE", "Δ macro AUROC", "Δ ECE"], "rows": rows})
    for name, e in exps.items():
        clinical = e["test"].get("clinical")
        if not clinical:
            continue
        counts = clinical.get("test_counts", {})
        rows = [[c, count_cell(counts.get(c, [])),
                 *(_pm(clinical["per_class"][c][m]) for m in ("sensitivity", "specificity", "ppv", "auroc"))]
                for c in classes]
        tables.append({"title": f"Per-class test figures: {name} (%)", "note": few_images_note(counts),
                       "header": ["class", "test images per split", "sensitivity", "specificity", "PPV", "AUROC"],
                       "rows": rows})
    binary = [(name, e) for name, e in exps.items() if e["test"].get("clinical", {}).get("binary")]
    if binary:
        positive = binary[0][1]["test"]["clinical"]["binary"]["positive"]
        header = ["experiment", *(metric_name(f"binary:{m}") for m in BINARY_METRICS),
                  *(f"Δ {metric_name(f'binary:{m}')}" for m in BINARY_METRICS)]
        rows = [[name, *(_pm(e["test"]["clinical"]["binary"][m]) for m in BINARY_METRICS),
                 *("–" if name == "baseline" else _delta((e["vs_baseline"].get("binary") or {}).get(m))
                   for m in BINARY_METRICS)] for name, e in binary]
        tables.append({"title": f"{positive} vs rest (test, %)", "header": header, "rows": rows,
                       "note": f"Sensitivity at fixed specificity: the highest true-positive rate of the "
                               f"{positive}-vs-rest ROC curve whose specificity is at least the given level."})
    return tables


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    marks = [":---", *("---:" for _ in header[1:])]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |",
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def clinical_markdown(report: Mapping[str, Any]) -> list[str]:
    """report.md's clinical sections."""
    lines: list[str] = []
    for table in clinical_tables(report):
        lines += [f"## {table['title']}", ""]
        lines += _md_table(table["header"], [[f"`{r[0]}`", *r[1:]] for r in table["rows"]])
        if table.get("note"):
            lines += [table["note"], ""]
    return lines
