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

Hooks are called by keyword. Built-in generators use this same hook.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

__all__ = ["hookimpl", "hookspec", "PROJECT_NAME", "ENTRY_POINT_GROUP"]

PROJECT_NAME = "synthaug"
ENTRY_POINT_GROUP = "synthaug"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_generators(register: Callable[[type], None]) -> None:
    """Register generator classes by calling ``register(GeneratorSubclass)`` once per class."""
