"""``synthaug demo``: balance an imbalanced copy of scikit-learn's digits, offline."""

from __future__ import annotations

from pathlib import Path

import click

from .._hookspecs import hookimpl
from .common import RichProgress, make_console, plan_table


@click.command("demo")
@click.option("--out", "out", default="demo-output", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the demo's data, synthetic images and grid.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or tables.")
def demo_cmd(out: Path, quiet: bool) -> None:
    """Balance an imbalanced copy of scikit-learn's digits with the classic generator (offline, CPU)."""
    from .._demo import DEMO_KEEP, run_demo

    console = make_console()
    if not quiet:
        console.print("[bold]synthaug demo[/]: scikit-learn's handwritten digits, keeping only "
                      + ", ".join(f"{n} images of '{d}'" for d, n in DEMO_KEEP.items()) + ".")
    with RichProgress(quiet=quiet) as progress:
        _, result, grid = run_demo(
            out, progress=progress,
            on_plan=lambda plan: progress.print(plan_table(plan, "plan: fill every class up to the majority")),
        )
    if quiet:
        return
    from rich.table import Table

    table = Table(title="before / after")
    for col in ("class", "before", "synthetic", "after"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, c in result.counts().items():
        table.add_row(name, str(c["real"]), str(c["synthetic"]), str(c["total"]))
    console.print(table)
    console.print(f"real data: {out / 'data'}\nsynthetic images + manifest.jsonl + plan.json: {out / 'synthetic'}\n"
                  f"grid of real (left) and synthetic (right) examples: {grid}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``demo`` to the ``synthaug`` group."""
    cli.add_command(demo_cmd)
