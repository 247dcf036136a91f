"""The report's numbers: per-experiment summaries across splits, paired comparisons with the
baseline (interval, p-value, verdict), convergence and near-chance flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .clinical import compare_clinical, summarize_clinical
from .metrics import SCALAR_METRICS, paired_differences, summarize
from .stats import compare

__all__ = ["LATE_SHARE", "CHANCE_MARGIN", "holdout_ratio", "summarize_experiment", "verdict_table",
           "clinical_verdict_table"]

#: An experiment is flagged possibly under-trained when at least this share of its runs had
#: their best checkpoint in the last 10% of the budget.
LATE_SHARE = 0.5
#: A mean test balanced accuracy below ``CHANCE_MARGIN / n_classes`` is flagged near chance.
CHANCE_MARGIN = 1.25


def holdout_ratio(sizes: Sequence[Mapping[str, int]]) -> float:
    """Mean test images / mean training images of the splits (the Nadeau–Bengio correction term)."""
    train = sum(s["train"] for s in sizes) / len(sizes)
    test = sum(s["test"] for s in sizes) / len(sizes)
    return test / train if train else 0.0


def _convergence(per_split: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    late = sum(1 for r in per_split if r.get("late_best"))
    flagged = late >= LATE_SHARE * len(per_split)
    return {
        "late_runs": late, "runs": len(per_split), "possibly_undertrained": flagged,
        "advice": "raise --epochs (or --steps) until the best step falls earlier" if flagged else "",
    }


def summarize_experiment(
    experiment: Mapping[str, Any], per_split: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]],
    classes: Sequence[str], ratio: float, confidence: float,
) -> dict[str, Any]:
    """The report.json entry of one experiment (its settings in ``experiment``)."""
    vs = paired_differences([r["test"] for r in per_split], [r["test"] for r in baseline], classes)
    for metric in SCALAR_METRICS:
        vs[metric].update(compare(vs[metric]["per_split"], ratio, confidence))
    vs.update(compare_clinical([r["test"] for r in per_split], [r["test"] for r in baseline], ratio, confidence))
    test = summarize([r["test"] for r in per_split], classes)
    clinical = summarize_clinical([r["test"] for r in per_split], classes)
    if clinical:
        test["clinical"] = clinical
    bacc = test["balanced_accuracy"]["mean"]
    return {
        **experiment,
        "synthetic_share": sum(r["synthetic_share"] for r in per_split) / len(per_split),
        "per_split": list(per_split),
        "test": test,
        "val": summarize([r["val"] for r in per_split], classes),
        "vs_baseline": vs,
        "convergence": _convergence(per_split),
        "near_chance": bacc is not None and bacc < CHANCE_MARGIN / len(classes),
    }


def verdict_table(experiments: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (experiment other than the baseline, metric): Δ mean, interval, p, verdict."""
    rows = []
    for name, e in experiments.items():
        if name == "baseline":
            continue
        for metric in SCALAR_METRICS:
            d = e["vs_baseline"][metric]
            rows.append({"experiment": name, "metric": metric, "mean": d["mean"], "ci_low": d["ci_low"],
                         "ci_high": d["ci_high"], "wilcoxon_p": d["wilcoxon_p"], "verdict": d["verdict"],
                         "n": d["n"], "clipped": d.get("clipped", False)})
    return rows


def clinical_verdict_table(experiments: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Like :func:`verdict_table` for macro AUROC, calibration error (lower is better) and, with
    ``--positive``, the CLASS-vs-rest metrics (``metric`` ``binary:auroc`` etc.)."""
    rows = []
    for name, e in experiments.items():
        if name == "baseline":
            continue
        vs = e["vs_baseline"]
        pairs = [(m, vs[m]) for m in ("macro_auroc", "ece") if m in vs]
        pairs += [(f"binary:{m}", d) for m, d in (vs.get("binary") or {}).items()]
        for metric, d in pairs:
            rows.append({"experiment": name, "metric": metric, "mean": d["mean"], "ci_low": d["ci_low"],
                         "ci_high": d["ci_high"], "wilcoxon_p": d["wilcoxon_p"], "verdict": d["verdict"],
                         "n": d["n"], "clipped": d.get("clipped", False)})
    return rows
