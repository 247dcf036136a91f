"""What every ``synthaug`` command shares: console, progress bars, option parsing, notices.

Command modules import from here and never from :mod:`synthaug._cli` itself, so the package
has no import cycle. Only the command-line layer (this package and the commands that plugins
add) imports click and rich.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from .._errors import InvalidParameterError

__all__ = ["STATE", "RichProgress", "command_line", "make_console", "parse_option_pairs", "plan_table", "policy_from_flags",
           "policy_options", "show_notices", "show_warning"]

STATE: dict[str, Any] = {"debug": False, "quiet": False, "argv": None}
"""Process-wide flags of the running command (``--debug``; ``argv``, the argument list of the
command :func:`synthaug._cli.main` is running, for relaunches and reports; ``None`` outside it)."""


def command_line() -> str | None:
    """The ``synthaug ...`` command line being run, for reports (``None`` outside the CLI)."""
    import shlex

    argv = STATE.get("argv")
    return None if argv is None else "synthaug " + shlex.join(argv)


# -- output helpers --------------------------------------------------------------------
def make_console(stderr: bool = False) -> Any:
    """A rich console on stdout (or stderr) without highlighting."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    click.echo(f"warning: {message}", err=True)


class RichProgress:
    """:class:`~synthaug._progress.Progress` drawn with rich bars on stderr."""

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
            console=make_console(stderr=True),
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


def policy_from_flags(policy: str, strategy: str | None, targets: Sequence[str], share: float | None,
                      replace: bool) -> Any:
    """Check the policy flags together and build the policy with :func:`synthaug._policy.make_policy`."""
    from .._policy import make_policy

    if policy == "proportion":
        if share is None:
            raise InvalidParameterError("--share", None, "a fraction, required with --policy proportion (e.g. --share 0.6)")
        if strategy or targets:
            raise InvalidParameterError("--strategy/--target", strategy or list(targets), "only with --policy upsample")
        return make_policy("proportion", share=share, mode="replace" if replace else "add")
    if share is not None or replace:
        raise InvalidParameterError("--share/--replace", share, "only with --policy proportion")
    if targets:
        if strategy:
            raise InvalidParameterError("--strategy", strategy, "not together with --target")
        return make_policy("upsample", strategy=_parse_targets(targets), source="--target")
    return make_policy("upsample", strategy=strategy)  # no --strategy: the API's default


def _parse_targets(targets: Sequence[str]) -> dict[str, int]:
    """``["CLASS=N", …]`` as ``{class: N}``; each class once, N a whole number ≥ 0."""
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
    return wanted


def policy_options(func: Callable) -> Callable:
    """The shared policy flags of ``plan`` and ``balance``."""
    decorators = [
        click.option("--policy", type=click.Choice(["upsample", "proportion"]), default="upsample", show_default=True,
                     help="upsample: fill classes up (minority-upsampling); proportion: a synthetic share per class."),
        click.option("--strategy", default=None, metavar="NAME",
                     help="With --policy upsample: minority, not-minority, not-majority (auto is the same), all.  "
                          "[default: not-majority]"),
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


def show_notices(notices: Sequence[str]) -> None:
    """Print what reading the data and planning found (always, whatever the warning filter)."""
    for notice in notices:
        click.echo(f"note: {notice}", err=True)


def plan_table(plan, title: str = "plan"):
    from rich.table import Table

    table = Table(title=title)
    for col in ("class", "real", "synthetic", "final"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, cp in plan.classes.items():
        table.add_row(name, str(cp.real_used if cp.real_used != cp.real else cp.real), str(cp.synthetic), str(cp.final))
    table.add_row("[bold]total", str(sum(c.real_used for c in plan.classes.values())),
                  str(plan.synthetic_total), str(sum(c.final for c in plan.classes.values())))
    return table
