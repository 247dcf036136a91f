"""Writing a quality report: ``report.json``, ``report.md``, ``nearest.csv`` and the figures.

:func:`synthaug._quality.assessment.quality_report` measures; this module only writes what it
measured. ``report.json`` is :meth:`QualityReport.to_dict` complete (other renderings, e.g.
HTML, start from it).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .._dataset import Dataset
    from .results import QualityReport

__all__ = ["HOW_TO_READ", "overall_line", "render_markdown", "write_report"]


def write_report(report: QualityReport, out_dir: str | os.PathLike[str], *, train: Dataset | None = None,
                 figures: bool = True) -> Path:
    """Write ``report.json``, ``report.md``, ``nearest.csv`` and the PNGs into ``out_dir``."""
    from .._atomic import atomic_write_bytes, atomic_write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if figures:
        report.figures = _write_figures(report, out, train)
    atomic_write_json(out / "report.json", report.to_dict())
    atomic_write_bytes(out / "report.md", render_markdown(report).encode())
    _write_nearest_csv(report, out / "nearest.csv")
    return out


def _write_nearest_csv(report: QualityReport, path: Path) -> None:
    import io

    from .._atomic import atomic_write_bytes

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["file", "class", "concept", "nearest_training_image", "similarity",
                                     "outlier_score", "flags"])
    writer.writeheader()
    for im in report.images:
        row = im.to_dict(report.synthetic_root)
        row["flags"] = " ".join(row["flags"])
        writer.writerow(row)
    atomic_write_bytes(path, buffer.getvalue().encode())


def _write_figures(report: QualityReport, out: Path, train: Dataset | None) -> list[str]:
    from .plots import save_grid, save_pairs

    written = []
    by_class_real = train.paths_by_class() if train is not None else {}
    overview = []
    for label in report.classes:
        synth = [im.path for im in report.images if im.label == label and im.readable]
        real = by_class_real.get(label, [])
        rows = [(f"real {label}", real[:8]), ("", real[8:16]), (f"synthetic {label}", synth[:8]), ("", synth[8:16])]
        written.append(save_grid([r for r in rows if r[1]], out / f"grid-{label}.png").name)
        overview += [(f"{label}: real (left) | synthetic (right)", [*real[:6], *synth[:6]])]
    written.insert(0, save_grid(overview, out / "grid-overview.png", per_row=12, thumb=48).name)
    ranked = sorted((im for im in report.images if im.nearest is not None), key=lambda im: -im.similarity)[:12]
    if ranked:
        threshold = report.settings["copy_threshold"]
        pairs = [(im.path, im.nearest, f"{im.label} sim {im.similarity:.2f}", im.similarity >= threshold)
                 for im in ranked]
        written.append(save_pairs(pairs, out / "nearest-pairs.png").name)
    return written


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


#: The explanation under the per-class table (report.md and report.html).
HOW_TO_READ = (
    "How to read it: FD and KID are distances between the real and synthetic feature distributions "
    "(lower is closer). FD is biased upwards for small sets, so compare at equal sizes: *FD½ real–synth* "
    "is the FD between half of the real class and as many synthetic images, *FD½ real–real* the FD between "
    "the two halves of the real class (what a perfect generator would score). KID is unbiased (about 0 for "
    "one distribution, can be slightly negative). A diversity ratio well below 1 means the synthetic images "
    "vary less than the real ones. *max sim* is the highest copy similarity to any training image."
)


def overall_line(o: Mapping[str, Any]) -> str:
    """The overall FD/KID/PRDC/diversity sentence of report.md and report.html (``o``: report.json ``overall``)."""
    return (f"Overall FD {_fmt(o.get('fd'))} {_interval(o.get('fd_interval'))}; at half the real size: real–synthetic "
            f"{_fmt(o.get('fd_half_synthetic'))}, real–real {_fmt(o.get('fd_real_halves'))}; KID {_fmt(o.get('kid'))} "
            f"{_interval(o.get('kid_interval'))}; precision {_fmt(o.get('precision'))}, recall {_fmt(o.get('recall'))}, "
            f"density {_fmt(o.get('density'))}, coverage {_fmt(o.get('coverage'))}; "
            f"diversity ratio (synthetic / real mean pairwise distance) {_fmt(o.get('diversity_ratio'))}.")


def render_markdown(report: QualityReport) -> str:
    """The human-readable report (``report.md``)."""
    s, o = report.settings, report.overall
    ref = o.get("training_pairs_similarity") or {}
    lines = [
        "# Synthetic data quality report",
        "",
        f"- real training images: `{s['real']}` ({o['n_real']} images)",
        f"- synthetic images: `{s['synthetic']}` ({o['n_synthetic']} images)",
        f"- feature space: **{s['feature_space']}** — {s['feature_space_note']}",
        f"- near-copy rule: copy similarity >= {s['copy_threshold']} ({s['copy_descriptor']}); "
        f"distinct training images score median {_fmt(ref.get('median'))}, 99th percentile {_fmt(ref.get('q99'))}, "
        f"max {_fmt(ref.get('max'))} against each other",
        f"- outlier rule: 3-NN feature distance to the class's real images > {s['outlier_factor']} x the real images' "
        "99th percentile (leave-one-out)",
        "",
        "## Summary",
        "",
        f"**{o['flagged']} of {o['n_synthetic']} synthetic images flagged**: {o['copies']} near-copies of a training "
        f"image, {o['blank']} blank, {o['unreadable']} unreadable, {o['outliers']} outliers. "
        f"Highest copy similarity: {_fmt(o.get('max_similarity'))}.",
        "",
    ]
    if "fd" in o:
        lines += [overall_line(o), ""]
    lines += _class_table(report)
    lines += [HOW_TO_READ, ""]
    lines += _trust_section(report)
    lines += _filter_section(report)
    flagged = report.flagged()
    if flagged:
        lines += ["## Flagged images", "", "| file | class | flags | similarity | nearest training image |",
                  "|---|---|---|---|---|"]
        for im in sorted(flagged, key=lambda im: -(im.similarity if math.isfinite(im.similarity) else -1))[:50]:
            d = im.to_dict(report.synthetic_root)
            lines.append(f"| {d['file']} | {d['class']} | {', '.join(d['flags'])} | {_fmt(d['similarity'])} | "
                         f"{Path(d['nearest_training_image']).name if d['nearest_training_image'] else '–'} |")
        if len(flagged) > 50:
            lines.append(f"| … {len(flagged) - 50} more in report.json | | | | |")
        lines.append("")
    if report.figures:
        lines += ["## Figures", ""]
        for name in report.figures:
            lines.append(f"![{name}]({name})")
        lines.append("")
    return "\n".join(lines)


def _pair(c: dict[str, Any], name: str) -> str:
    """``synthetic (real–real)`` at half the real size, the noise floor beside the figure."""
    value, floor = c.get(f"{name}_half_synthetic"), c.get(f"{name}_real_halves")
    return "–" if value is None and floor is None else f"{_fmt(value)} ({_fmt(floor)})"


def _interval(pair: Any) -> str:
    return f"[{_fmt(pair[0])}, {_fmt(pair[1])}]" if pair else ""


def _class_table(report: QualityReport) -> list[str]:
    header = ["class", "real", "synthetic", "FD [95% interval]", "FD½ synth (real–real)", "KID½ synth (real–real)",
              "precision½", "recall½", "density½", "coverage½", "diversity synth / real", "max sim", "copies",
              "blank", "outliers", "flagged"]
    lines = ["## Per class", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, c in report.classes.items():
        div = (f"{_fmt(c.get('diversity_synthetic'))} / {_fmt(c.get('diversity_real'))}"
               if "diversity_real" in c else "–")
        fd = f"{_fmt(c.get('fd'))} {_interval(c.get('fd_interval'))}".strip()
        row = [label, c["n_real"], c["n_synthetic"], fd, _pair(c, "fd"), _pair(c, "kid"), _pair(c, "precision"),
               _pair(c, "recall"), _pair(c, "density"), _pair(c, "coverage"), div, c.get("max_similarity"),
               c["copies"], c["blank"] + c["unreadable"], c["outliers"], c["flagged"]]
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    lines += [
        "",
        "How to read it: FD and KID are distances between the real and synthetic feature distributions "
        "(lower is closer); precision (fidelity), recall (diversity), density and coverage (Naeem et al. 2020) "
        "are shares of nearest-neighbour balls (higher is closer). Every ½ column is computed at half the real "
        "class size, real half vs as many synthetic images, and in brackets the same figure between the two real "
        "halves: the noise floor, what a perfect generator would score. A figure no better than its floor cannot "
        "rank (see below). KID is unbiased (about 0 for one distribution, can be slightly negative). A diversity "
        "ratio well below 1 means the synthetic images vary less than the real ones. *max sim* is the highest copy "
        "similarity to any training image.",
        "",
    ]
    return lines


def _trust_section(report: QualityReport) -> list[str]:
    """Per class: the figures that cannot rank, and the small-sample warnings."""
    lines = []
    for label, c in [("overall", report.overall), *report.classes.items()]:
        if c.get("cannot_rank"):
            lines.append(f"- **{label}**: {', '.join(c['cannot_rank'])} cannot rank here: the real–synthetic value is "
                         "no worse than the real–real floor, so the figure cannot tell this set from real images at "
                         "this size.")
        for warning in c.get("warnings", []):
            lines.append(f"- **{label}**: small sample: {warning}.")
    return ["## Which figures can be trusted", "", *lines, ""] if lines else []


def _filter_section(report: QualityReport) -> list[str]:
    """Keep rates per filter and class (after ``filter --by``)."""
    if not report.filters:
        return []
    classes = sorted({label for per_class in report.filters.values() for label in per_class})
    lines = ["## Filters: share of images kept", "", "| filter | " + " | ".join(classes) + " |",
             "|" + "---|" * (len(classes) + 1)]
    for name, per_class in report.filters.items():
        cells = []
        for label in classes:
            c = per_class.get(label)
            cells.append("–" if not c else f"{c['kept']}/{c['n']} ({_fmt(c['rate'])})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]
