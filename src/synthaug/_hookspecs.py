"""Hook specifications for synthaug plugins.

A plugin is a module registered under the ``synthaug`` entry-point group::

    # pyproject.toml of your plugin
    [project.entry-points.synthaug]
    my_plugin = "my_plugin"

    # my_plugin.py
    import synthaug

    @synthaug.hookimpl
    def register_generators(register):
        register(MyGenerator)

A plugin may also add commands to the ``synthaug`` command line::

    import click

    @synthaug.hookimpl
    def register_commands(cli):
        @cli.command()
        def hello():
            click.echo("hello")

and evaluation experiments (``synthaug evaluate -e NAME``)::

    @synthaug.hookimpl
    def register_experiments(register):
        register(MyExperiment)          # a synthaug.Experiment subclass

and feature spaces for the quality report and filters (``--features NAME[:ARGUMENT]``)::

    @synthaug.hookimpl
    def register_feature_extractors(register):
        register("my-space", lambda argument, *, device: MySpace(argument), "my features")

Hooks are called by keyword, one plugin at a time, so a plugin whose hook raises is reported
as broken and the others keep working. Only functions marked with :data:`hookimpl` are
hooks. Built-in generators, commands, experiments and feature extractors use these same hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["hookimpl", "hookspec", "PROJECT_NAME", "ENTRY_POINT_GROUP"]

PROJECT_NAME = "synthaug"
ENTRY_POINT_GROUP = "synthaug"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_generators(register: Callable[[type], None]) -> None:
    """Register generator classes by calling ``register(GeneratorSubclass)`` once per class."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to ``cli``, the ``synthaug`` :class:`click.Group` (e.g. ``cli.add_command(cmd)``)."""


@hookspec
def register_experiments(register: Callable[[type], None]) -> None:
    """Register evaluation experiment kinds by calling ``register(ExperimentSubclass)`` once per class."""


@hookspec
def register_feature_extractors(register: Callable[..., None]) -> None:
    """Register feature extractors by calling ``register(name, factory, description="")``.

    ``factory(argument: str | None, *, device: str)`` returns a feature space: an object with
    ``name`` and ``extract(paths) -> (n, d) array`` (and optionally ``identity``, a string
    naming the extractor and its configuration, under which its rows are cached). ``argument``
    is what follows ``NAME:`` in ``--features NAME:ARGUMENT`` (``None`` without it).
    """
