"""``synthaug evaluate``: adds the command of :mod:`synthaug.evaluate.cli` through the hook."""

from __future__ import annotations

import click

from ..hookspecs import hookimpl


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``evaluate`` to the ``synthaug`` group."""
    from ..evaluate.cli import register

    register(cli)
