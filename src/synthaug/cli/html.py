"""``synthaug html``: adds the command of :mod:`synthaug.html_report.cli` through the hook."""

from __future__ import annotations

import click

from ..hookspecs import hookimpl


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``html`` to the ``synthaug`` group."""
    from ..html_report.cli import register

    register(cli)
