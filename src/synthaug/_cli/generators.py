"""``synthaug generators``: list generators, or one generator's options."""

from __future__ import annotations

import json

import click

from .._hookspecs import hookimpl
from .common import make_console


@click.command("generators")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def generators_cmd(name: str | None, as_json: bool) -> None:
    """List generators, or show NAME's options with descriptions and defaults."""
    from .._plugins import get_generator, get_registry

    registry = get_registry()
    if name is None:
        rows = {n: {"description": i.cls.description, "plugin": i.plugin.distribution, "version": i.cls.version}
                for n, i in sorted(registry.generators.items())}
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        from rich.table import Table

        table = Table(title="generators")
        for col in ("name", "plugin", "description"):
            table.add_column(col)
        for n, r in rows.items():
            table.add_row(n, r["plugin"], r["description"])
        make_console().print(table)
        return
    cls = get_generator(name)
    schema = cls.options_schema()
    if as_json:
        click.echo(json.dumps(schema, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{name}: {cls.description}")
    for col in ("option", "type", "default", "description"):
        table.add_column(col)
    for key, field in cls.Options.model_fields.items():
        prop = schema.get("properties", {}).get(key, {})
        kind = prop.get("type") or " | ".join(a.get("type", "?") for a in prop.get("anyOf", [])) or "?"
        default = "required" if field.is_required() else json.dumps(field.get_default(call_default_factory=True), default=str)
        table.add_row(key, kind, default, field.description or "")
    make_console().print(table)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``generators`` to the ``synthaug`` group."""
    cli.add_command(generators_cmd)
