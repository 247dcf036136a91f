"""``synthaug report`` and ``synthaug filter``: the quality report and filtering on the command line.

A built-in command plugin: :func:`register_commands` adds both commands through the
``register_commands`` hook, as a third-party plugin would.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from .._errors import InvalidParameterError
from .._hookspecs import hookimpl
from .._html_report import write_html_report
from .common import RichProgress, command_line, make_console

__all__ = ["filter_cmd", "register_commands", "report_cmd"]

_REASONS_HELP = "Comma-separated reasons to filter on: copy, blank, unreadable, outlier (outliers are opt-in)."


def _reasons(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


def _report_options(func: Any) -> Any:
    decorators = [
        click.option("--features", default="auto", show_default=True, metavar="SPEC",
                     help="Feature space for FD/KID/PRDC/diversity/outliers: auto (Inception if its weights are on "
                          "disk, else colour-texture), colour-texture, inception[:WEIGHTS_FILE], dinov2:FOLDER, "
                          "clip:FOLDER, hf:FOLDER (local checkpoints, never downloaded), a plugin's extractor, or "
                          "package.module:function."),
        click.option("--device", default="auto", show_default=True,
                     help="Device of learned feature extractors and classifiers: auto (cuda > mps > cpu), cpu, cuda:N."),
        click.option("--bootstrap", type=int, default=None, metavar="N",
                     help="Bootstrap resamples of the FD and KID intervals (0: none).  [default: 50]"),
        click.option("--copy-threshold", type=float, default=None,
                     help="Copy similarity at or above which an image is a near-copy.  [default: 0.5]"),
        click.option("--outlier-factor", type=float, default=None,
                     help="Outlier when the 3-NN distance exceeds this times the real 99th percentile.  [default: 1.5]"),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling in the metrics."),
        click.option("--max-memory", type=float, default=None, metavar="MIB",
                     help="Bound (MiB) of the near-copy and nearest-neighbour working arrays; per-image descriptors "
                          "(~5 KiB each) come on top.  [default: 512]"),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or tables."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _kwargs(features: str, copy_threshold: float | None, outlier_factor: float | None, seed: int,
            max_memory: float | None, device: str = "auto", bootstrap: int | None = None) -> dict[str, Any]:
    from .._quality.assessment import DEFAULT_COPY_THRESHOLD, DEFAULT_OUTLIER_FACTOR
    from .._quality.distribution import DEFAULT_BOOTSTRAP
    from .._quality.metrics import DEFAULT_MAX_MEMORY_MB

    if bootstrap is not None and bootstrap < 0:
        raise InvalidParameterError("--bootstrap", bootstrap, "a number of resamples >= 0")
    return {
        "device": device,
        "bootstrap": DEFAULT_BOOTSTRAP if bootstrap is None else bootstrap,
        "features": features,
        "copy_threshold": DEFAULT_COPY_THRESHOLD if copy_threshold is None else copy_threshold,
        "outlier_factor": DEFAULT_OUTLIER_FACTOR if outlier_factor is None else outlier_factor,
        "seed": seed,
        "max_memory": DEFAULT_MAX_MEMORY_MB if max_memory is None else max_memory,
    }


def _summary_table(report: Any, title: str):
    from rich.table import Table

    table = Table(title=title)
    table.caption = "½: at half the real size, real–synthetic (real–real floor in brackets)"
    for col in ("class", "real", "synth", "FD½", "KID½", "prec½", "cover½", "div", "max sim", "copies", "blank",
                "outl"):
        table.add_column(col, justify="left" if col == "class" else "right")

    def fmt(value: Any) -> str:
        return "-" if value is None else (f"{value:.3g}" if isinstance(value, float) else str(value))

    def pair(c: dict[str, Any], name: str) -> str:
        return f"{fmt(c.get(name + '_half_synthetic'))} ({fmt(c.get(name + '_real_halves'))})"

    for label, c in report.classes.items():
        table.add_row(label, str(c["n_real"]), str(c["n_synthetic"]), pair(c, "fd"), pair(c, "kid"),
                      pair(c, "precision"), pair(c, "coverage"), fmt(c.get("diversity_ratio")),
                      fmt(c.get("max_similarity")), str(c["copies"]), str(c["blank"] + c["unreadable"]),
                      str(c["outliers"]))
    return table


def _show(result: dict[str, Any], report_title: str, synthetic: Path, quiet: bool, as_json: bool, report: Any) -> None:

    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    if quiet:
        return
    console = make_console()
    console.print(_summary_table(report, report_title))
    o = result["overall"]
    console.print(f"feature space: {result['settings']['feature_space']} ({result['settings']['feature_space_note']})")
    console.print(f"flagged {o['flagged']} of {o['n_synthetic']}: {o['copies']} near-copies, {o['blank']} blank, "
                  f"{o['unreadable']} unreadable, {o['outliers']} outliers")
    for label, c in [("overall", report.overall), *report.classes.items()]:
        if c.get("cannot_rank"):
            console.print(f"{label}: {', '.join(c['cannot_rank'])} cannot rank (no worse than the real–real floor)")
        for warning in c.get("warnings", []):
            console.print(f"{label}: small sample: {warning}")
    for name, per_class in (report.filters or {}).items():
        kept = ", ".join(f"{label} {c['kept']}/{c['n']}" for label, c in per_class.items())
        console.print(f"kept by {name}: {kept}")
    if result.get("report_dir"):
        console.print(f"report: {Path(result['report_dir']) / 'report.md'}")
    if "filtered" in result:
        f = result["filtered"]
        console.print(f"moved {f['rejected']} image(s) to {f['rejected_dir']}; rerun the same `synthaug balance` "
                      f"command on {synthetic} to top it up to the plan")


@click.command("report")
@click.argument("real", type=click.Path(path_type=Path))
@click.argument("synthetic", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Folder for report.md, report.json, nearest.csv and PNGs.")
@_report_options
@click.option("--filter", "do_filter", is_flag=True,
              help="Also move flagged images out of SYNTHETIC (a synthaug output folder) into SYNTHETIC.synthaug/rejected/ "
              "(beside SYNTHETIC, not in --out).")
@click.option("--filter-on", "filter_on", default="copy,blank,unreadable", show_default=True,
              help=_REASONS_HELP)
def report_cmd(real: Path, synthetic: Path, out: Path, features: str, device: str, bootstrap: int | None,
               copy_threshold, outlier_factor, seed: int, max_memory: float | None, as_json: bool, quiet: bool,
               do_filter: bool, filter_on: str) -> None:
    """Measure SYNTHETIC images against the REAL training images: near-copies, diversity, FD/KID/PRDC, defects."""
    options = _kwargs(features, copy_threshold, outlier_factor, seed, max_memory, device, bootstrap)
    result, report = _run_with_report(real, synthetic, out, options, quiet or as_json, do_filter, _reasons(filter_on))
    html = write_html_report(out, command=command_line())  # report.html beside report.json (synthaug._html_report)
    _show(result, f"quality of {synthetic}", synthetic, quiet, as_json, report)
    if not quiet and not as_json:
        make_console().print(f"report.html: {html}")

@click.command("filter")
@click.argument("synthetic", type=click.Path(path_type=Path))
@click.option("--real", "real", required=True, type=click.Path(path_type=Path),
              help="The real training data the generator was fitted on.")
@click.option("--on", "filter_on", default=None,
              help=_REASONS_HELP + " Default copy,blank,unreadable (blank,unreadable when --by nearest-real runs in a "
                   "learned feature space, which then replaces the pixel-space copy rule).")
@click.option("--by", "by", multiple=True, metavar="FILTER[:OPTIONS]",
              help="A filter, repeatable: prompt-similarity[:MIN|top=F] (CLIP), classifier-confidence[:MIN|top=F], "
                   "nearest-real[:near=Q,far=Q], outlier[:FACTOR|top=F]; see docs/quality-report.md.")
@click.option("--report", "out", default=None, type=click.Path(path_type=Path),
              help="Also write the report files (with the keep rates of each filter) into this folder.")
@_report_options
def filter_cmd(synthetic: Path, real: Path, filter_on: str | None, by: tuple[str, ...], out: Path | None,
               features: str, device: str, bootstrap: int | None, copy_threshold, outlier_factor, seed: int,
               max_memory: float | None, as_json: bool, quiet: bool) -> None:
    """Move flagged images of the synthaug output folder SYNTHETIC to SYNTHETIC.synthaug/rejected/.

    Rerunning the same `synthaug balance` command afterwards regenerates exactly the
    missing images (with new seeds).
    """
    reasons = None if filter_on is None else _reasons(filter_on)
    if reasons is not None and not reasons:
        raise InvalidParameterError("--on", filter_on, _REASONS_HELP)
    options = _kwargs(features, copy_threshold, outlier_factor, seed, max_memory, device, bootstrap)
    result, report = _run_with_report(real, synthetic, out, options, quiet or as_json, True, reasons, list(by))
    if out is not None:
        write_html_report(out, command=command_line())
    _show(result, f"quality of {synthetic} (before filtering)", synthetic, quiet, as_json, report)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``report`` and ``filter`` to the ``synthaug`` group."""
    cli.add_command(report_cmd)
    cli.add_command(filter_cmd)


@contextlib.contextmanager
def _claimed(real: Path, synthetic: Path, out: Path | None, do_filter: bool) -> Iterator[None]:
    """Check that the report folder lies outside both inputs, then hold the one-writer lock of
    every folder written: the report folder, and SYNTHETIC itself when filtering moves images."""
    from .._outdir import check_output_location, claim_output

    with contextlib.ExitStack() as stack:
        if out is not None:
            check_output_location(out, [real, synthetic], option="--out" if not do_filter else "--report/--out")
            stack.enter_context(claim_output(out))
        if do_filter:
            check_output_location(synthetic, [real], option="SYNTHETIC")
            stack.enter_context(claim_output(synthetic))
        yield


def _run_with_report(real: Path, synthetic: Path, out: Path | None, options: dict[str, Any], quiet: bool,
                     do_filter: bool, reasons: list[str] | None, by: list[str] | None = None) -> tuple[dict[str, Any], Any]:
    """Run the report (and filtering); write the report files; return the JSON-able summary and the report."""
    from .._quality.assessment import quality_report, write_report
    from .._quality.filter import filter_synthetic
    from .._quality.selection import apply_filters, parse_filter

    specs = [parse_filter(text) for text in by or ()]
    if do_filter and reasons is not None:
        from .._quality.filter import _reasons as validate_reasons

        validate_reasons(reasons)
    with _claimed(real, synthetic, out, do_filter), RichProgress(quiet=quiet) as progress:
        report = quality_report(real, synthetic, None, progress=progress, **options)
        if specs:  # flags and keep rates first, so the report files show them and its figures see every image
            apply_filters(report, specs, device=options["device"], seed=options["seed"])
        if out is not None:
            write_report(report, out, train=report.sides[2])
        result: dict[str, Any] = {"report_dir": str(out) if out else None, "settings": report.settings,
                                  "overall": report.overall, "classes": report.classes}
        if do_filter:
            filtered = filter_synthetic(synthetic, report=report, reasons=reasons, by=by or (),
                                        device=options["device"])
            filtered.pop("report")
            result["filtered"] = filtered
    return result, report
