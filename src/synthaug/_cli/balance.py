"""``synthaug balance``: fit a generator and write the synthetic images (optionally on N processes)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .._errors import InvalidParameterError
from .._hookspecs import hookimpl
from .common import (
    STATE,
    RichProgress,
    make_console,
    parse_option_pairs,
    plan_table,
    policy_from_flags,
    policy_options,
    show_notices,
)


@click.command("balance")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--generator", "-g", default="classic", show_default=True, help="Generator name (see `synthaug generators`).")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help="Generator option (repeatable).")
@policy_options
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed; image seeds derive from it.")
@click.option("--overwrite", is_flag=True, help="Replace a different earlier run in --out (deletes its images).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or tables.")
@click.option("--subgroups", default="none", show_default=True, metavar="none|auto|K|FILE.csv:COLUMN",
              help="Split each class into visual sub-groups, one fitted concept each (see docs/subgroups.md).")
@click.option("--max-subgroups", type=int, default=4, show_default=True, help="With --subgroups auto: most groups per class.")
@click.option("--min-group-size", type=int, default=8, show_default=True,
              help="With --subgroups auto: fewest training images per group.")
@click.option("--subgroup-features", default="colour-texture", show_default=True,
              type=click.Choice(["colour-texture", "generator", "inception"]),
              help="Features the sub-group k-means uses (generator: its features(), e.g. VAE latents).")
@click.option("--processes", type=int, default=1, show_default=True,
              help="Run on N processes via `accelerate launch` (GPUs when enough are present, else CPU).")
@click.option("--verify", is_flag=True,
              help="On a rerun, also decode every listed image.  [default: check size and SHA-256 only]")
@click.option("--combined", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Also write DIR/<class>/ holding links to the real and the synthetic images (one class tree).")
@click.option("--metadata", type=click.Path(path_type=Path), default=None, metavar="FILE.csv",
              help="Per-image metadata (a path or image_id column, then attributes) whose columns the generator's "
                   "prompt_template may name, e.g. -o 'prompt_template=a dermoscopic image of {dx} on the "
                   "{localization}' (see docs/recipes.md).")
@click.option("--workers", type=int, default=None,
              help="Worker processes for a CPU generator such as classic; the output is the same for any value.  "
                   "[default: the usable cores, at most 8]")
def balance_cmd(data: Path, out: Path, generator: str, options, policy, strategy, targets, share, replace, strict,
                seed: int, overwrite: bool, as_json: bool, quiet: bool, subgroups: str, max_subgroups: int,
                min_group_size: int, subgroup_features: str, processes: int, verify: bool,
                combined: Path | None, workers: int | None, metadata: Path | None) -> None:
    """Fit the generator on DATA's training images and write the synthetic images to --out."""
    from .._augmenter import SyntheticAugmenter
    from .._concepts import concepts_from
    from .._distributed import current_context
    from .._outdir import check_output_location, claim_output
    from .._plugins import get_generator

    if seed < 0:
        raise InvalidParameterError("--seed", seed, "a non-negative integer")
    if processes < 1:
        raise InvalidParameterError("--processes", processes, "a whole number of at least 1")
    if workers is not None and workers < 1:
        raise InvalidParameterError("--workers", workers, "a whole number of at least 1")
    if processes > 1 and int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        check_output_location(out, [data])
        with claim_output(out):  # one lock for the whole run; the workers inherit the claim
            raise click.exceptions.Exit(_relaunch_with_accelerate(processes))
    if current_context().rank != 0:
        quiet, as_json = True, False  # only the main process shows bars, tables and JSON
    pol = policy_from_flags(policy, strategy, targets, share, replace)
    cls = get_generator(generator)
    gen = cls(parse_option_pairs(options, cls.Options))
    show = not quiet and not as_json
    with RichProgress(quiet=not show) as progress:
        augmenter = SyntheticAugmenter(gen, pol, out_dir=out, random_state=seed, overwrite=overwrite,
                                       verify=verify, strict=strict, progress=progress, workers=workers,
                                       metadata=metadata,
                                       concepts=concepts_from(subgroups, max_subgroups=max_subgroups,
                                                              min_group_size=min_group_size,
                                                              features=subgroup_features))
        plan = augmenter.prepare(data)
        if combined is not None:
            check_output_location(combined, [data, out], option="--combined")
        show_notices(augmenter.notices(data))
        if show:
            progress.print(plan_table(plan, f"plan: {pol!r}, generator {gen.name}"))
            for label, info in (augmenter.subgroups_.summary() if augmenter.subgroups_ else {}).items():
                groups = ", ".join(f"{name} ({n})" for name, n in info["concepts"].items())
                progress.log(f"sub-groups of {label}: {groups}")
        result = augmenter.fit_resample(data)
    show_notices(augmenter.run_notices_)
    if combined is not None and current_context().is_main:
        from .._combined import write_combined

        with claim_output(combined):
            write_combined(result, combined, inputs=[data, out])
    counts = result.counts()
    if as_json:
        click.echo(json.dumps({"out": str(out), "generator": gen.name, "plan": plan.to_dict(), "counts": counts}, indent=2))
    elif show:
        from rich.table import Table

        table = Table(title=f"before / after ({out})")
        for col in ("class", "before", "synthetic", "after"):
            table.add_column(col, justify="left" if col == "class" else "right")
        for name, c in counts.items():
            table.add_row(name, str(plan.classes[name].real), str(c["synthetic"]), str(c["total"]))
        make_console().print(table)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _relaunch_with_accelerate(processes: int) -> int:
    """Run this same command under ``accelerate launch`` with ``processes`` processes."""
    import subprocess

    from .._optional import require

    require("accelerate", purpose="--processes")
    torch = require("torch", purpose="--processes")
    args = list(STATE.get("argv") or [])
    cleaned, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--processes":
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        cleaned.append(arg)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if 0 < gpus < processes:
        raise InvalidParameterError(
            "--processes", processes, f"at most the {gpus} visible GPU(s)",
            "or hide the GPUs with CUDA_VISIBLE_DEVICES= to run every process on the CPU",
        )
    # accelerate's --cpu flag starts several processes only through MPI; --multi_gpu is plain
    # torchrun, which on a machine without GPUs runs every rank on the CPU with gloo.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "synthaug", *cleaned]
    return subprocess.call(cmd)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``balance`` to the ``synthaug`` group."""
    cli.add_command(balance_cmd)
