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
    """The overall FD/KID/diversity sentence of report.md and report.html (``o``: report.json ``overall``)."""
    return (f"Overall FD {_fmt(o.get('fd'))}; at half the real size: real–synthetic {_fmt(o.get('fd_half_synthetic'))}, "
            f"real–real {_fmt(o.get('fd_real_halves'))}; KID {_fmt(o.get('kid'))}, "
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
    header = ["class", "real", "synthetic", "FD", "FD½ real–synth", "FD½ real–real", "KID", "diversity synth / real",
              "max sim", "copies", "blank", "outliers", "flagged"]
    lines += ["## Per class", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, c in report.classes.items():
        div = (f"{_fmt(c.get('diversity_synthetic'))} / {_fmt(c.get('diversity_real'))}"
               if "diversity_real" in c else "–")
        row = [label, c["n_real"], c["n_synthetic"], c.get("fd"), c.get("fd_half_synthetic"), c.get("fd_real_halves"),
               c.get("kid"), div,
               c.get("max_similarity"), c["copies"], c["blank"] + c["unreadable"], c["outliers"], c["flagged"]]
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    lines += [
        "",
        HOW_TO_READ,
        "",
    ]
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
