"""What the templates show, built from a ``report.json`` dict (tolerant of missing keys).

:func:`evaluation_context` reads what ``synthaug evaluate`` writes, :func:`quality_context`
what ``synthaug report`` writes. Missing sections are left out of the page, never an error,
so an older or newer ``report.json`` still renders.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .charts import bar_chart

__all__ = ["evaluation_context", "quality_context", "embed_png", "records_table", "verdict_table"]

_METRICS = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced acc."), ("macro_f1", "macro-F1"))


def embed_png(out_dir: Path, relative: str) -> str | None:
    """``data:image/png;base64,...`` of ``out_dir/relative``, or None when the file is missing
    or lies outside ``out_dir``."""
    path = (out_dir / relative).resolve()
    if not path.is_file() or out_dir.resolve() not in path.parents:
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def fmt(value: Any, scale: float = 1.0, signed: bool = False) -> str:
    """A number for a table cell (``–`` for missing/NaN)."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return "–"
        if isinstance(value, int) and scale == 1.0:
            return f"{value:+d}" if signed else str(value)
        v = value * scale
        return f"{v:+.3g}" if signed else (f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}")
    return str(value)


def _pm(stat: Any, scale: float = 100.0, signed: bool = False) -> str:
    """``mean ± std`` (and ``[low, high]`` when the stat carries a confidence interval)."""
    if not isinstance(stat, Mapping) or stat.get("mean") is None:
        return fmt(stat, scale, signed) if isinstance(stat, (int, float)) else "–"
    text = f"{stat['mean'] * scale:{'+' if signed else ''}.2f}"
    if stat.get("std") is not None:
        text += f" ± {stat['std'] * scale:.2f}"
    ci = stat.get("ci")
    low, high = ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (stat.get("ci_low"), stat.get("ci_high"))
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        text += f" [{low * scale:+.2f}, {high * scale:+.2f}]" if signed else f" [{low * scale:.2f}, {high * scale:.2f}]"
    return text


def records_table(value: Any) -> dict[str, Any] | None:
    """A table ``{"header": [...], "rows": [[...]]}`` from a list of flat dicts or a dict of them.

    Used for sections whose exact shape may change (e.g. a verdict table): every key becomes
    a column, nested values are shown as text.
    """
    if isinstance(value, Mapping):
        items = [{"name": k, **v} if isinstance(v, Mapping) else {"name": k, "value": v} for k, v in value.items()]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = [v for v in value if isinstance(v, Mapping)]
    else:
        return None
    if not items:
        return None
    header: list[str] = []
    for item in items:
        header += [k for k in item if k not in header]
    rows = [[_cell(item.get(k)) for k in header] for item in items]
    return {"header": [h.replace("_", " ") for h in header], "rows": rows}


def _cell(value: Any) -> str:
    if isinstance(value, Mapping) and "mean" in value:
        return _pm(value, scale=1.0)
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    return fmt(value)


# -- synthaug evaluate ------------------------------------------------------------------------
def verdict_table(rows: Any) -> dict[str, Any] | None:
    """The verdict table: one row per (experiment, metric) with the paired difference in
    percentage points, its interval, the p-value and the verdict; any other shape is shown
    key by key (:func:`records_table`)."""
    if not (isinstance(rows, Sequence) and rows and all(isinstance(r, Mapping) and "verdict" in r for r in rows)):
        return records_table(rows)
    body = []
    for r in rows:
        low, high = r.get("ci_low"), r.get("ci_high")
        interval = (f"[{low * 100:+.2f}, {high * 100:+.2f}]" if isinstance(low, (int, float))
                    and isinstance(high, (int, float)) else "–")
        interval += " ‡" if r.get("clipped") else " (too few runs)" if r.get("verdict") == "too few runs" else ""
        p = r.get("wilcoxon_p")
        body.append([r.get("experiment", "?"), _metric_label(str(r.get("metric", "?"))),
                     _pm({"mean": r.get("mean")}, signed=True), interval,
                     "<0.001" if isinstance(p, (int, float)) and p < 0.001 else fmt(p), fmt(r.get("n")),
                     r.get("verdict")])
    return {"header": ["experiment", "metric", "Δ mean (pp)", "interval (pp)", "Wilcoxon p", "runs", "verdict"],
            "rows": body}


def _metric_label(metric: str) -> str:
    from .._evaluate.report_clinical import metric_name

    return metric_name(metric, "positive")


def _evaluation_tables(report: Mapping[str, Any], exps: Mapping[str, Any], classes: list[str]) -> list[dict]:
    rows = []
    for name, e in exps.items():
        test, diff = e.get("test") or {}, e.get("vs_baseline") or {}
        base = name == "baseline"
        rows.append([name, fmt((e.get("synthetic_share") or 0) * 100),
                     *(_pm(test.get(m)) for m, _ in _METRICS),
                     *("–" if base else _pm(diff.get(m), signed=True) for m, _ in _METRICS)])
    tables = [{"title": "Test results (%, mean ± std over splits)", "header": [
        "experiment", "synthetic %", *(t for _, t in _METRICS), *(f"Δ {t} vs baseline" for _, t in _METRICS)],
        "rows": rows}]
    counts = (report.get("data") or {}).get("class_counts") or {}
    split_counts = _split_counts(exps, classes)
    recall_rows = [[c, fmt(counts.get(c)), _count_cell(split_counts.get(c)),
                    *(_pm(((e.get("test") or {}).get("per_class_recall") or {}).get(c)) for e in exps.values())]
                   for c in classes]
    tables.append({"title": "Per-class test recall (%)", "header": ["class", "images (all)", "test images per split",
                                                                   *exps], "rows": recall_rows,
                   "note": _few_note(split_counts)})
    from .._evaluate.worth import worth_table

    worth = worth_table(report) if report.get("real_worth") else None
    return tables + ([worth] if worth else []) + _clinical_tables(report)


def _split_counts(exps: Mapping[str, Any], classes: list[str]) -> dict[str, list[int]]:
    """Per class, its test images in each split (empty when the report lacks confusion matrices)."""
    try:
        from .._evaluate.report import split_test_counts

        return split_test_counts((exps.get("baseline") or {}).get("per_split") or [], classes)
    except (KeyError, IndexError, TypeError):
        return {}


def _count_cell(counts: Any) -> str:
    from .._evaluate.report_clinical import count_cell

    return count_cell(counts) if counts else "–"


def _few_note(counts: Mapping[str, Any]) -> str | None:
    from .._evaluate.report_clinical import few_images_note

    return few_images_note(counts) if counts else None


def _clinical_tables(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """report.md's clinical tables (an older report.json without them: none)."""
    from .._evaluate.report_clinical import clinical_tables

    try:
        return clinical_tables(report)
    except (KeyError, TypeError, AttributeError):
        return []


def _plain(text: str) -> str:
    """Markdown emphasis and code marks removed (the page escapes and styles text itself)."""
    return text.replace("**", "").replace("`", "")


def evaluation_notes(report: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``(warnings, verdict notes)``: the same sentences as report.md's warnings and the notes
    under its verdict tables."""
    from .._evaluate.report import warning_texts
    from .._evaluate.report_clinical import verdict_notes

    try:
        warnings = [_plain(t) for t in warning_texts(report)]
    except (KeyError, TypeError, AttributeError):
        warnings = []
    return warnings, [_plain(t) for t in verdict_notes(report)]


def _evaluation_charts(exps: Mapping[str, Any], classes: list[str]) -> list[Any]:
    def stat(e: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
        for key in keys:
            e = (e or {}).get(key) or {}
        return e

    names = list(exps)
    charts = [bar_chart("Test accuracy per experiment (%, mean ± std)", names,
                        {"accuracy": [(stat(exps[n], "test", "accuracy").get("mean") or 0) * 100 for n in names]},
                        errors={"accuracy": [(stat(exps[n], "test", "accuracy").get("std") or 0) * 100
                                             for n in names]},
                        axis_label="test accuracy (%)", max_value=100)]
    recall = {n: [stat(exps[n], "test", "per_class_recall", c).get("mean") for c in classes] for n in names}
    charts.append(bar_chart("Per-class test recall (%, mean over splits)", classes,
                            {n: [None if v is None else v * 100 for v in vs] for n, vs in recall.items()},
                            axis_label="recall (%)", max_value=100))
    return [c for c in charts if c is not None]


def classifier_summary(train: Mapping[str, Any]) -> str:
    """The harness classifier in one line: ``alpha`` only for MobileNet (the only model it
    changes), whole numbers of epochs without a decimal point."""
    shown = ("backend", "model", "alpha", "weights", "image_size", "batch_size", "epochs", "steps")
    parts = []
    for key in shown:
        value = train.get(key)
        if value is None or (key == "alpha" and train.get("model") != "mobilenet"):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def evaluation_context(report: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    """Template context of an evaluation ``report.json``."""
    exps: Mapping[str, Any] = report.get("experiments") or {}
    classes = list(report.get("classes") or [])
    data, splits, train = report.get("data") or {}, report.get("splits") or {}, report.get("train") or {}
    facts = [("data", f"{data.get('path', '?')}: {data.get('n_images', '?')} images, {len(classes)} classes"),
             ("splits", f"{splits.get('method', '?')}, {splits.get('n', '?')} split(s); validation and test "
                        "images are real only"),
             ("classifier", classifier_summary(train))]
    compute = report.get("compute")
    if isinstance(compute, Mapping):
        facts.append(("device", f"{compute.get('devices', '?')} (asked: --device {compute.get('device_requested', '?')}), "
                                f"precision {compute.get('precision', '?')}"))
    stats = report.get("statistics")
    if isinstance(stats, Mapping):
        facts.append(("statistics", "; ".join(f"{k.replace('_', ' ')}: {fmt(v)}" for k, v in stats.items())))
    verdicts = [("verdicts vs the real-only baseline", verdict_table(report.get("verdicts"))),
                ("clinical verdicts vs the real-only baseline (calibration error: lower is better)",
                 verdict_table(report.get("clinical_verdicts")))]
    warnings, notes = evaluation_notes(report)
    plots = [(key.replace("_", " "), embed_png(out_dir, path))
             for key, path in (report.get("plots") or {}).items() if isinstance(path, str)]
    return {
        "title": "synthaug evaluation",
        "facts": facts,
        "warnings": warnings,
        "verdict_notes": notes,
        "verdicts": [(title, table) for title, table in verdicts if table],
        "tables": _evaluation_tables(report, exps, classes) if exps else [],
        "charts": _evaluation_charts(exps, classes) if exps else [],
        "plots": [(title, uri) for title, uri in plots if uri],
        "grids": [],
        "grids_note": None,
    }


# -- synthaug report (quality) ------------------------------------------------------------------
_QUALITY_COLUMNS = (("n_real", "real"), ("n_synthetic", "synthetic"), ("fd", "FD"),
                    ("fd_half_synthetic", "FD½ real–synth"), ("fd_real_halves", "FD½ real–real"), ("kid", "KID"),
                    ("kid_real_halves", "KID½ real–real"), ("precision", "precision"),
                    ("precision_real_halves", "precision½ real–real"), ("recall", "recall"), ("density", "density"),
                    ("coverage", "coverage"), ("coverage_real_halves", "coverage½ real–real"),
                    ("diversity_ratio", "diversity synth / real"), ("max_similarity", "max copy sim."),
                    ("copies", "copies"), ("blank", "blank"), ("unreadable", "unreadable"), ("outliers", "outliers"),
                    ("flagged", "flagged"))


def _filter_tables(filters: Any) -> list[dict[str, Any]]:
    """Keep rates per filter and class (``synthaug filter --by``)."""
    if not isinstance(filters, Mapping) or not filters:
        return []
    labels = sorted({label for per_class in filters.values() if isinstance(per_class, Mapping) for label in per_class})
    rows = [[name, *(f"{c['kept']}/{c['n']}" if isinstance(c := per_class.get(label), Mapping) else "–"
                     for label in labels)] for name, per_class in filters.items() if isinstance(per_class, Mapping)]
    return [{"title": "Filters: images kept per class", "header": ["filter", *labels], "rows": rows}]


def quality_context(report: Mapping[str, Any], out_dir: Path, *, images: bool) -> dict[str, Any]:
    """Template context of a quality ``report.json``; image grids only when ``images``."""
    settings, overall = report.get("settings") or {}, report.get("overall") or {}
    classes: Mapping[str, Any] = report.get("classes") or {}
    facts = [("real training images", f"{settings.get('real', '?')} ({overall.get('n_real', '?')} images)"),
             ("synthetic images", f"{settings.get('synthetic', '?')} ({overall.get('n_synthetic', '?')} images)"),
             ("feature space", f"{settings.get('feature_space', '?')}: {settings.get('feature_space_note', '')}"),
             ("near-copy rule", f"copy similarity ≥ {settings.get('copy_threshold', '?')}"),
             ("flagged", f"{overall.get('flagged', '?')} of {overall.get('n_synthetic', '?')}: "
                         f"{overall.get('copies', '?')} near-copies, {overall.get('blank', '?')} blank, "
                         f"{overall.get('unreadable', '?')} unreadable, {overall.get('outliers', '?')} outliers")]
    from .._quality.render import HOW_TO_READ, overall_line

    if "fd" in overall:
        facts.append(("overall", overall_line(overall)))
    tables = [{"title": "Per class", "header": ["class", *(t for _, t in _QUALITY_COLUMNS)],
               "rows": [[label, *(fmt(c.get(k)) for k, _ in _QUALITY_COLUMNS)] for label, c in classes.items()],
               "note": HOW_TO_READ.replace("*", "")}]
    for label, c in [("overall", overall), *classes.items()]:
        if c.get("cannot_rank"):
            facts.append((f"cannot rank ({label})", ", ".join(c["cannot_rank"]) + ": no worse than the real–real floor"))
        if c.get("warnings"):
            facts.append((f"small sample ({label})", "; ".join(c["warnings"])))
    tables += _filter_tables(report.get("filters"))
    flagged = [f for f in report.get("flagged") or [] if isinstance(f, Mapping)]
    if flagged:
        tables.append({"title": f"Flagged images ({len(flagged)}; first 50)",
                       "header": ["file", "class", "flags", "copy sim.", "nearest training image"],
                       "rows": [[f.get("file"), f.get("class"), ", ".join(f.get("flags") or []),
                                 fmt(f.get("similarity")), Path(str(f.get("nearest_training_image") or "–")).name]
                                for f in flagged[:50]]})
    labels = list(classes)
    threshold = settings.get("copy_threshold")
    charts = [
        bar_chart("Highest copy similarity to a training image, per class", labels,
                  {"max copy similarity": [classes[c].get("max_similarity") for c in labels]},
                  axis_label="copy similarity", max_value=1.0,
                  reference=(threshold, f"near-copy threshold {threshold}") if threshold is not None else None),
        bar_chart("Diversity: synthetic / real mean pairwise distance", labels,
                  {"diversity ratio": [classes[c].get("diversity_ratio") for c in labels]},
                  axis_label="ratio (1 = as varied as the real images)", reference=(1.0, "1")),
    ]
    figures = [f for f in report.get("figures") or [] if isinstance(f, str)]
    grids = [(name, embed_png(out_dir, name)) for name in figures] if images else []
    note = None
    if figures and not images:
        note = (f"{len(figures)} image grid(s) ({', '.join(figures)}) are beside this page but not embedded: "
                "they show images of your data. Embed them with `synthaug html DIR --images` when the data's "
                "licence and consent allow sharing them.")
    return {"title": "synthaug quality report", "facts": facts, "verdicts": [], "tables": tables,
            "charts": [c for c in charts if c is not None], "plots": [], "warnings": [], "verdict_notes": [],
            "grids": [(n, uri) for n, uri in grids if uri], "grids_note": note}
