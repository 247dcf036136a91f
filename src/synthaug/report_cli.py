"""Deprecated: the ``report`` and ``filter`` commands moved to :mod:`synthaug.cli.quality`."""

from __future__ import annotations

import warnings

import click

from .cli.quality import filter_cmd, register_commands, report_cmd

__all__ = ["filter_cmd", "register", "report_cmd"]

warnings.warn("synthaug.report_cli is deprecated; use synthaug.cli.quality (its register_commands hook)",
              DeprecationWarning, stacklevel=2)


def register(cli: click.Group) -> None:
    """Deprecated: add ``report`` and ``filter`` to ``cli`` (use the ``register_commands`` hook)."""
    register_commands(cli=cli)
