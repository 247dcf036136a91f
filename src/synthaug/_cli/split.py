"""``synthaug split``: write a stratified (and grouped) train/val/test split."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .._hookspecs import hookimpl
from .common import make_console, show_notices


@click.command("split")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Split root to create.")
@click.option("--val", type=float, default=0.15, show_default=True, help="Validation fraction.")
@click.option("--test", type=float, default=0.15, show_default=True, help="Test fraction.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random stratified assignment; the same seed and data give the same split.")
@click.option("--groups", default=None, metavar="FILE.csv:COLUMN",
              help="Keep images of one group together (e.g. labels.csv:lesion_id).")
@click.option("--copy", "copy", is_flag=True, help="Copy files instead of symlinking them.")
@click.option("--strict", is_flag=True, help="Treat unreadable images as an error.")
@click.option("--json", "as_json", is_flag=True, help="Print the split counts as JSON.")
def split_cmd(data: Path, out: Path, val: float, test: float, seed: int, groups, copy: bool, strict: bool,
              as_json: bool) -> None:
    """Write OUT/{train,val,test}/<class>/ as a stratified (and grouped) split of DATA.

    Files are relative symlinks (move DATA and OUT together) or copies (--copy); OUT/splits.json
    lists the split (paths relative to DATA) for `synthaug evaluate --splits-file`.
    """
    from .._dataset import Dataset
    from .._outdir import check_output_location, claim_output
    from .._splitting import read_groups, split_dataset, write_split

    check_output_location(out, [data])
    ds = Dataset.load(data, strict=strict)
    show_notices(ds.notices)
    group_map = read_groups(groups) if groups else None
    splits = split_dataset(ds, val=val, test=test, seed=seed, groups=group_map)
    with claim_output(out):
        write_split(splits, out, copy=copy)
        _write_splits_json(out, splits, data, seed, val, test, groups)
    summary = {name: part.counts() for name, part in splits.items()}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"split of {data} -> {out}")
    table.add_column("class")
    for name in summary:
        table.add_column(name, justify="right")
    for label in ds.classes:
        table.add_row(label, *(str(summary[s].get(label, 0)) for s in summary))
    make_console().print(table)


def _write_splits_json(out: Path, splits, data: Path, seed: int, val: float, test: float, groups) -> None:
    """OUT/splits.json: the split as ``evaluate --splits-file`` reads it, with how it was made."""
    from .._atomic import atomic_write_bytes
    from .._evaluate.splits import splits_to_json

    root = next((ds.root for ds in splits.values() if ds.root is not None), None)
    doc = {"data": str(data), "seed": seed, "val": val, "test": test, "groups": groups,
           **splits_to_json([splits], root)}
    atomic_write_bytes(out / "splits.json", (json.dumps(doc, indent=1) + "\n").encode())


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``split`` to the ``synthaug`` group."""
    cli.add_command(split_cmd)
