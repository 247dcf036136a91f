"""``synthaug plan``: how many synthetic images each class would get."""

from __future__ import annotations

from pathlib import Path

import click

from .._hookspecs import hookimpl
from .common import make_console, plan_table, policy_from_flags, policy_options, show_notices


@click.command("plan")
@click.argument("data", type=click.Path(path_type=Path))
@policy_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_cmd(data: Path, policy: str, strategy, targets, share, replace, strict: bool, as_json: bool) -> None:
    """Show how many synthetic images each class would get (loads no model)."""
    from .._augmenter import SyntheticAugmenter

    pol = policy_from_flags(policy, strategy, targets, share, replace)
    augmenter = SyntheticAugmenter(policy=pol, strict=strict)
    plan = augmenter.plan(data)
    show_notices(augmenter.notices(data))
    if as_json:
        click.echo(plan.to_json())
    else:
        make_console().print(plan_table(plan, f"plan: {pol!r}"))


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``plan`` to the ``synthaug`` group."""
    cli.add_command(plan_cmd)
