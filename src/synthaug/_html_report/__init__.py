"""One self-contained ``report.html`` for ``synthaug evaluate`` and ``synthaug report``.

:func:`write_html_report` reads the ``report.json`` in a report folder and writes
``report.html`` beside it: tables, inline SVG charts and the folder's PNG plots embedded as
``data:`` URIs, with the command and package versions. The page loads nothing else (no
script, font or style sheet from the network), so it works from ``file://`` and can be
mailed as one file.

Image grids of the data (the quality report's ``grid-*.png``) are embedded only with
``images=True``: a shareable single file must not carry patients' or licensed images unless
the user decides so (``synthaug html DIR --images``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from .._errors import DatasetError

__all__ = ["write_html_report", "render_html_report", "report_kind"]

_VERSIONED = ("synthaug", "numpy", "pillow", "torch", "diffusers", "transformers", "peft", "tensorflow-cpu",
              "tensorflow", "keras", "scikit-learn", "scipy", "matplotlib")


def report_kind(report: Mapping[str, Any]) -> str:
    """``"evaluation"`` (``synthaug evaluate``) or ``"quality"`` (``synthaug report``)."""
    if "experiments" in report:
        return "evaluation"
    if "overall" in report or "classes" in report and "settings" in report:
        return "quality"
    raise DatasetError("report.json is neither an evaluation (no 'experiments') nor a quality report "
                       "(no 'overall'); pass the folder written by `synthaug evaluate` or `synthaug report`")


def _versions() -> list[tuple[str, str]]:
    out = [("python", platform.python_version())]
    for name in _VERSIONED:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return out


def _report_versions(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The versions the report recorded when it was written (``versions``), if any."""
    versions = report.get("versions")
    if not isinstance(versions, Mapping):
        return []
    return [(str(k), str(v)) for k, v in versions.items() if v is not None]


def render_html_report(report: Mapping[str, Any], out_dir: str | os.PathLike[str], *, images: bool = False,
                       command: str | None = None) -> str:
    """The HTML page of ``report`` (a ``report.json`` dict) whose plot files are in ``out_dir``."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from .context import evaluation_context, quality_context

    out = Path(out_dir)
    kind = report_kind(report)
    context = evaluation_context(report, out) if kind == "evaluation" else quality_context(report, out, images=images)
    env = Environment(loader=PackageLoader("synthaug._html_report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(
        **context, kind=kind, command=report.get("command") or command,
        created=report.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        versions=_report_versions(report) or _versions(), images=images)


def write_html_report(out_dir: str | os.PathLike[str], *, images: bool = False, command: str | None = None) -> Path:
    """Render ``out_dir/report.json`` into ``out_dir/report.html`` (atomically); return its path.

    The page shows the report's own ``command`` if it recorded one, else ``command`` (the CLI
    passes the command line it runs).
    """
    from .._atomic import atomic_write_bytes

    out = Path(out_dir)
    source = out / "report.json"
    if not source.is_file():
        raise DatasetError(f"{str(source)!r} does not exist; pass the --out folder of `synthaug evaluate` "
                           "or `synthaug report`")
    try:
        report = json.loads(source.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{str(source)!r} is not valid JSON ({exc}); rerun the command that wrote it") from None
    html = render_html_report(report, out, images=images, command=command)
    target = out / "report.html"
    atomic_write_bytes(target, html.encode("utf-8"))
    return target
