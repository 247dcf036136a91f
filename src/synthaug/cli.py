"""The ``synthaug`` command line: the only module that imports click and rich.

Exit codes: 0 success, 2 bad usage or bad input, 1 failure. Errors print as one line
(``error: …``) unless ``--debug`` is given, which shows the traceback.
"""

from __future__ import annotations

import json
import os
import sys
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import InvalidParameterError, SynthaugError, UsageError

_STATE: dict[str, Any] = {"debug": False, "quiet": False}


# -- output helpers --------------------------------------------------------------------
def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    click.echo(f"warning: {message}", err=True)


class RichProgress:
    """:class:`~synthaug.progress.Progress` drawn with rich bars on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.quiet = quiet
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=_console(stderr=True),
            disable=quiet,
            transient=False,
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def task(self, description: str, total: int | None = None, *, completed: int = 0):
        progress = self._progress
        task_id = progress.add_task(description, total=total, completed=completed, metrics="")

        class _Task:
            def advance(self, n: int = 1, *, metrics: Mapping[str, float] | None = None) -> None:
                shown = "  ".join(f"{k}={v:.4g}" for k, v in (metrics or {}).items())
                progress.update(task_id, advance=n, **({"metrics": shown} if metrics else {}))

            def close(self) -> None:
                progress.stop_task(task_id)

        return _Task()

    def log(self, message: str) -> None:
        if not self.quiet:
            self._progress.console.print(message, markup=False)

    def print(self, renderable: Any) -> None:
        """Print a rich renderable (a table) above the bars, unless quiet."""
        if not self.quiet:
            self._progress.console.print(renderable)


# -- option parsing ------------------------------------------------------------------
def _field_wants_sequence(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset, Sequence):
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_field_wants_sequence(a) for a in typing.get_args(annotation))
    return annotation in (list, tuple)


def parse_option_pairs(pairs: Sequence[str], options_model: type | None = None) -> dict[str, Any]:
    """Turn ``["key=value", …]`` into a dict; list-typed fields accept JSON or ``a,b,c``."""
    out: dict[str, Any] = {}
    fields = getattr(options_model, "model_fields", {}) if options_model else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InvalidParameterError("-o/--option", pair, "KEY=VALUE, e.g. -o max_train_steps=500")
        value = value.strip()
        info = fields.get(key)
        parsed: Any = value
        if value.lower() in ("none", "null"):
            parsed = None
        elif info is not None and _field_wants_sequence(info.annotation):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = [v.strip() for v in value.split(",") if v.strip()]
        elif value[:1] in "{[":
            try:
                parsed = json.loads(value)
            except ValueError:
                pass
        out[key] = parsed
    return out


def _policy_from_flags(policy: str, strategy: str | None, targets: Sequence[str], share: float | None, replace: bool):
    from .policy import MinorityUpsampling, Proportion

    if policy == "proportion":
        if share is None:
            raise InvalidParameterError("--share", None, "a fraction, required with --policy proportion (e.g. --share 0.6)")
        if strategy or targets:
            raise InvalidParameterError("--strategy/--target", strategy or list(targets), "only with --policy upsample")
        return Proportion(share, mode="replace" if replace else "add")
    if share is not None or replace:
        raise InvalidParameterError("--share/--replace", share, "only with --policy proportion")
    if targets:
        if strategy:
            raise InvalidParameterError("--strategy", strategy, "not together with --target")
        wanted: dict[str, int] = {}
        given: dict[str, str] = {}
        for t in targets:
            name, sep, value = t.rpartition("=")
            try:
                number = int(value)
            except ValueError:
                number = None
            if not sep or not name or number is None:
                raise InvalidParameterError("--target", t, "CLASS=N with N a whole number, e.g. --target melanoma=400")
            if number < 0:
                raise InvalidParameterError("--target", t, "a final count of zero or more images")
            if name in given:
                raise InvalidParameterError("--target", t, f"one value per class; {name!r} is already given as "
                                            f"{given[name]!r}")
            given[name] = t
            wanted[name] = number
        return MinorityUpsampling(wanted, source="--target")
    return MinorityUpsampling(strategy or "not majority")


def policy_options(func: Callable) -> Callable:
    """The shared policy flags of ``plan`` and ``balance``."""
    decorators = [
        click.option("--policy", type=click.Choice(["upsample", "proportion"]), default="upsample", show_default=True,
                     help="upsample: fill classes up (minority-upsampling); proportion: a synthetic share per class."),
        click.option("--strategy", default=None, metavar="NAME",
                     help="With --policy upsample: minority, not-minority, not-majority (default), all or auto."),
        click.option("--target", "targets", multiple=True, metavar="CLASS=N",
                     help="With --policy upsample: final image count of CLASS (repeatable)."),
        click.option("--share", type=float, default=None,
                     help="With --policy proportion: synthetic fraction of each class's training set."),
        click.option("--replace", is_flag=True,
                     help="With --policy proportion: swap real images for synthetic ones instead of adding."),
        click.option("--strict", is_flag=True, help="Treat unreadable images as an error instead of skipping them."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _show_notices(notices: Sequence[str]) -> None:
    """Print what reading the data and planning found (always, whatever the warning filter)."""
    for notice in notices:
        click.echo(f"note: {notice}", err=True)


def _plan_table(plan, title: str = "plan"):
    from rich.table import Table

    table = Table(title=title)
    for col in ("class", "real", "synthetic", "final"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, cp in plan.classes.items():
        table.add_row(name, str(cp.real_used if cp.real_used != cp.real else cp.real), str(cp.synthetic), str(cp.final))
    table.add_row("[bold]total", str(sum(c.real_used for c in plan.classes.values())),
                  str(plan.synthetic_total), str(sum(c.final for c in plan.classes.values())))
    return table


# -- commands --------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="synthaug")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """Balance image datasets with synthetic images from generative models.

    DATA is a folder with one sub-folder per class, a CSV file with path,label columns,
    or a split root (ROOT/{train,val,test}/<class>/) whose train/ part is used.
    """
    _STATE["debug"] = debug


@cli.command("plan")
@click.argument("data", type=click.Path(path_type=Path))
@policy_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_cmd(data: Path, policy: str, strategy, targets, share, replace, strict: bool, as_json: bool) -> None:
    """Show how many synthetic images each class would get (loads no model)."""
    from .augmenter import SyntheticAugmenter

    pol = _policy_from_flags(policy, strategy, targets, share, replace)
    augmenter = SyntheticAugmenter(policy=pol, strict=strict)
    plan = augmenter.plan(data)
    _show_notices(augmenter.notices(data))
    if as_json:
        click.echo(plan.to_json())
    else:
        _console().print(_plan_table(plan, f"plan: {pol!r}"))


@cli.command("balance")
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
              help="On a rerun, also decode every listed image (default: check size and SHA-256 only).")
@click.option("--combined", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Also write DIR/<class>/ holding links to the real and the synthetic images (one class tree).")
@click.option("--workers", type=int, default=None,
              help="Worker processes for a CPU generator such as classic (default: the usable cores, at most 8); "
                   "the output is the same for any value.")
def balance_cmd(data: Path, out: Path, generator: str, options, policy, strategy, targets, share, replace, strict,
                seed: int, overwrite: bool, as_json: bool, quiet: bool, subgroups: str, max_subgroups: int,
                min_group_size: int, subgroup_features: str, processes: int, verify: bool,
                combined: Path | None, workers: int | None) -> None:
    """Fit the generator on DATA's training images and write the synthetic images to --out."""
    from .augmenter import SyntheticAugmenter
    from .concepts import concepts_from
    from .distributed import current_context
    from .outdir import check_output_location, claim_output
    from .plugins import get_generator

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
    pol = _policy_from_flags(policy, strategy, targets, share, replace)
    cls = get_generator(generator)
    gen = cls(parse_option_pairs(options, cls.Options))
    show = not quiet and not as_json
    with RichProgress(quiet=not show) as progress:
        augmenter = SyntheticAugmenter(gen, pol, out_dir=out, random_state=seed, overwrite=overwrite,
                                       verify=verify, strict=strict, progress=progress, workers=workers,
                                       concepts=concepts_from(subgroups, max_subgroups=max_subgroups,
                                                              min_group_size=min_group_size,
                                                              features=subgroup_features))
        plan = augmenter.prepare(data)
        if combined is not None:
            check_output_location(combined, [data, out], option="--combined")
        _show_notices(augmenter.notices(data))
        if show:
            progress.print(_plan_table(plan, f"plan: {pol!r}, generator {gen.name}"))
            for label, info in (augmenter.subgroups_.summary() if augmenter.subgroups_ else {}).items():
                groups = ", ".join(f"{name} ({n})" for name, n in info["concepts"].items())
                progress.log(f"sub-groups of {label}: {groups}")
        result = augmenter.fit_resample(data)
    _show_notices(augmenter.run_notices_)
    if combined is not None and current_context().is_main:
        from .combined import write_combined

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
        _console().print(table)


@cli.command("demo")
@click.option("--out", "out", default="demo-output", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the demo's data, synthetic images and grid.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or tables.")
def demo_cmd(out: Path, quiet: bool) -> None:
    """Balance an imbalanced copy of scikit-learn's digits with the classic generator (offline, CPU)."""
    from .demo import DEMO_KEEP, run_demo

    console = _console()
    if not quiet:
        console.print(f"[bold]synthaug demo[/]: scikit-learn's handwritten digits, keeping only "
                      + ", ".join(f"{n} images of '{d}'" for d, n in DEMO_KEEP.items()) + ".")
    with RichProgress(quiet=quiet) as progress:
        _, result, grid = run_demo(
            out, progress=progress,
            on_plan=lambda plan: progress.print(_plan_table(plan, "plan: fill every class up to the majority")),
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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _relaunch_with_accelerate(processes: int) -> int:
    """Run this same command under ``accelerate launch`` with ``processes`` processes."""
    import subprocess

    from ._optional import require

    require("accelerate", purpose="--processes")
    torch = require("torch", purpose="--processes")
    args = list(_STATE.get("argv") or [])
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


@cli.command("split")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Split root to create.")
@click.option("--val", type=float, default=0.15, show_default=True, help="Validation fraction.")
@click.option("--test", type=float, default=0.15, show_default=True, help="Test fraction.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--groups", default=None, metavar="FILE.csv:COLUMN",
              help="Keep images of one group together (e.g. labels.csv:lesion_id).")
@click.option("--copy", "copy", is_flag=True, help="Copy files instead of symlinking them.")
@click.option("--strict", is_flag=True, help="Treat unreadable images as an error.")
@click.option("--json", "as_json", is_flag=True, help="Print the split counts as JSON.")
def split_cmd(data: Path, out: Path, val: float, test: float, seed: int, groups, copy: bool, strict: bool,
              as_json: bool) -> None:
    """Write OUT/{train,val,test}/<class>/ as a stratified (and grouped) split of DATA."""
    from .dataset import Dataset
    from .outdir import check_output_location, claim_output
    from .splits import read_groups, split_dataset, write_split

    check_output_location(out, [data])
    ds = Dataset.load(data, strict=strict)
    _show_notices(ds.notices)
    group_map = read_groups(groups) if groups else None
    splits = split_dataset(ds, val=val, test=test, seed=seed, groups=group_map)
    with claim_output(out):
        write_split(splits, out, copy=copy)
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
    _console().print(table)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def plugins_cmd(as_json: bool) -> None:
    """List installed plugins with their version, generators and load errors."""
    from .plugins import get_registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry = get_registry()
    rows = [p.to_dict() for p in registry.plugins]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="synthaug plugins")
    for col in ("plugin", "distribution", "version", "generators", "status"):
        table.add_column(col)
    for p in registry.plugins:
        status = f"[red]broken: {p.error}" if p.error else "[green]ok"
        table.add_row(p.name, p.distribution, p.version, ", ".join(p.generators) or "-", status)
    _console().print(table)
    for name, infos in registry.conflicts.items():
        click.echo(f"conflict: generator {name!r} registered by " + ", ".join(i.plugin.distribution for i in infos), err=True)


@cli.command("generators")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def generators_cmd(name: str | None, as_json: bool) -> None:
    """List generators, or show NAME's options with descriptions and defaults."""
    from .plugins import get_generator, get_registry

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
        _console().print(table)
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
    _console().print(table)


def _register_extra_commands() -> None:
    """Commands whose modules live elsewhere register themselves here (lazy, optional)."""
    import importlib

    for module in ("synthaug.evaluate.cli", "synthaug.report_cli", "synthaug.html_report.cli"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        mod.register(cli)


_register_extra_commands()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 usage/input error, 1 failure)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _STATE["debug"] = "--debug" in args
    _STATE["argv"] = args
    if not _STATE["debug"]:  # library chatter (e.g. "requires torchvision") would bury our own lines
        for variable in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
            os.environ.setdefault(variable, "error")
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        for category in _NOTICE_WARNINGS():  # printed from data (notices), not through warnings
            warnings.filterwarnings("ignore", category=category)
        return _run(args)


def _NOTICE_WARNINGS() -> tuple[type[Warning], ...]:  # noqa: N802 - a constant, computed lazily
    from .dataset import DuplicateRowsWarning, EmptyClassWarning, UnreadableImagesWarning
    from .policy import PlanNoticeWarning

    return (DuplicateRowsWarning, EmptyClassWarning, UnreadableImagesWarning, PlanNoticeWarning)


def _run(args: list[str]) -> int:
    """Run the click group with ``args``; map every outcome to an exit code."""
    try:
        result = cli.main(args=args, prog_name="synthaug", standalone_mode=False)
        if isinstance(result, int):  # click returns the code of an Exit in non-standalone mode
            return result
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            click.echo("interrupted: rerun the same command to resume", err=True)
            return 130
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except SynthaugError as exc:
        if _STATE["debug"]:
            raise
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted: rerun the same command to resume", err=True)
        return 130
    except OSError as exc:
        if _STATE["debug"]:
            raise
        from .outdir import storage_error

        error = storage_error(exc)
        click.echo(f"error: {error}", err=True)
        return error.exit_code
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if _STATE["debug"]:
            raise
        click.echo(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
        return 1
    return 0
