"""``synthaug plugins``: installed plugins, their generators, commands and load errors."""

from __future__ import annotations

import json
import warnings

import click

from .._hookspecs import hookimpl
from .common import make_console


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def plugins_cmd(as_json: bool) -> None:
    """List installed plugins with their version, generators and load errors."""
    from .._plugins import get_registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry = get_registry()
    rows = [p.to_dict() for p in registry.plugins]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="synthaug plugins")
    for col in ("plugin", "distribution", "version", "generators", "commands", "status"):
        table.add_column(col)
    for p in registry.plugins:
        status = f"[red]broken: {p.error}" if p.error else "[green]ok"
        table.add_row(p.name, p.distribution, p.version, ", ".join(p.generators) or "-", ", ".join(p.commands) or "-",
                      status)
    make_console().print(table)
    for name, infos in registry.conflicts.items():
        click.echo(f"conflict: generator {name!r} registered by " + ", ".join(i.plugin.distribution for i in infos), err=True)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``plugins`` to the ``synthaug`` group."""
    cli.add_command(plugins_cmd)
