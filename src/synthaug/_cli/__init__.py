"""The ``synthaug`` command line: a click group whose commands all arrive through plugins.

Every command, built-in or third-party, is added by a ``register_commands(cli)`` hook
implementation (:mod:`synthaug._hookspecs`): synthaug's own commands live one per module in
this package (``plan``, ``balance``, ``demo``, ``split``, ``generators``, ``plugins``,
``report``/``filter`` in :mod:`~synthaug._cli.quality`, ``evaluate``, ``html``) and are
registered as built-in plugins; installed plugins add theirs the same way. Commands are
collected the first time the group is asked for one, so a broken plugin is reported as a
warning and the rest of the command line keeps working. Shared console, progress and option
parsing live in :mod:`synthaug._cli.common`, which the command modules import (never this
module, so there is no import cycle). click and rich are imported only by this command-line
layer: this package and the ``cli`` modules of :mod:`synthaug._evaluate` and
:mod:`synthaug._html_report`.

Exit codes: 0 success, 2 bad usage or bad input, 1 failure. Errors print as one line
(``error: …``) unless ``--debug`` is given, which shows the traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import click

from .._errors import SynthaugError
from .._version import __version__
from .common import STATE, RichProgress, parse_option_pairs, show_warning

__all__ = ["BUILTIN_COMMANDS", "RichProgress", "SynthaugGroup", "cli", "main", "parse_option_pairs"]

BUILTIN_COMMANDS = tuple(f"synthaug._cli.{name}" for name in (
    "plan", "balance", "demo", "split", "generators", "plugin_list", "quality", "evaluation", "html"))
"""synthaug's own command modules, registered as plugins of the ``register_commands`` hook."""

class SynthaugGroup(click.Group):
    """A click group that collects its commands from the ``register_commands`` hook on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugins_loaded = False

    def load_plugin_commands(self) -> None:
        """Add the built-in and the plugins' commands (once)."""
        if not self._plugins_loaded:
            self._plugins_loaded = True
            from .._plugins import register_commands

            register_commands(self, BUILTIN_COMMANDS)

    def forget_plugin_commands(self) -> None:
        """Drop every command so the next use collects them again (after :func:`~synthaug._plugins.reset_plugins`)."""
        self.commands.clear()
        self._plugins_loaded = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self.load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_plugin_commands()
        return super().list_commands(ctx)


@click.group(cls=SynthaugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="synthaug")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """Balance image datasets with synthetic images from generative models.

    DATA is a folder with one sub-folder per class, a CSV file with path,label columns,
    or a split root (ROOT/{train,val,test}/<class>/) whose train/ part is used.
    """
    STATE["debug"] = debug


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 usage/input error, 1 failure)."""
    args = list(sys.argv[1:] if argv is None else argv)
    STATE["debug"] = "--debug" in args
    STATE["argv"] = args
    if not STATE["debug"]:  # library chatter (e.g. "requires torchvision") would bury our own lines
        for variable in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
            os.environ.setdefault(variable, "error")
        from ..diffusion._loading import silence_cpu_kernel_notice

        silence_cpu_kernel_notice()  # bitsandbytes' "gemm_4bit_forward … kernels-community" on CPUs
    from .. import _outdir

    _outdir.CLI_COMMAND = args  # the lock holder's description
    try:
        with warnings.catch_warnings(), _sigterm_as_interrupt():
            warnings.showwarning = show_warning
            for category in _NOTICE_WARNINGS():  # printed from data (notices), not through warnings
                warnings.filterwarnings("ignore", category=category)
            return _run(args)
    finally:
        STATE["argv"] = None  # a later library call in this process is not this command
        _outdir.CLI_COMMAND = None


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM (``kill``, a job scheduler's stop) end a command as Ctrl-C does: the resume
    message and exit 130. Only in the main thread, and the earlier handler is restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    owner = os.getpid()

    def interrupt(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a forked worker inherited the handler: end it as SIGTERM does
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _NOTICE_WARNINGS() -> tuple[type[Warning], ...]:  # noqa: N802 - a constant, computed lazily
    from .._dataset import DuplicateRowsWarning, EmptyClassWarning, UnreadableImagesWarning
    from .._policy import PlanNoticeWarning

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
        if STATE["debug"]:
            raise
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted: rerun the same command to resume", err=True)
        return 130
    except OSError as exc:
        if STATE["debug"]:
            raise
        from .._outdir import storage_error

        error = storage_error(exc)
        click.echo(f"error: {error}", err=True)
        return error.exit_code
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if STATE["debug"]:
            raise
        click.echo(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
        return 1
    return 0
