"""``synthaug html``: (re)write the one-page ``report.html`` of a report folder."""

from __future__ import annotations

from pathlib import Path

import click

from .._hookspecs import hookimpl

__all__ = ["html_cmd", "register_commands"]


@click.command("html")
@click.argument("report_dir", type=click.Path(path_type=Path))
@click.option("--images", is_flag=True,
              help="Embed the image grids of the data (only when the data's licence and consent allow sharing them).")
def html_cmd(report_dir: Path, images: bool) -> None:
    """Write REPORT_DIR/report.html from the report.json of `synthaug evaluate` or `synthaug report`.

    The page is one self-contained file (tables, charts and plots embedded, no network needed).
    Image grids of the data are embedded only with --images; without it the page names them.
    """
    from .._html_report import write_html_report

    click.echo(str(write_html_report(report_dir, images=images)))


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``html`` to the ``synthaug`` group."""
    cli.add_command(html_cmd)
