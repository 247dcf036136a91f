"""Plugin discovery: the plugin manager, entry-point loading with error isolation, the registry.

Entry points of the ``synthaug`` group are loaded one at a time. A plugin that fails to
import (or whose hook raises) is recorded as broken, reported by ``synthaug plugins`` and in
a :class:`PluginLoadWarning`, and every other plugin keeps working. Two generators
registered under one name make that name unusable until one is removed; asking for it raises
:class:`~synthaug._errors.DuplicateGeneratorError` naming both distributions. A built-in name
(``classic``) cannot be taken: the plugin's generator is refused and the plugin reported as
broken, naming it, while the built-in keeps working.

Hooks are dispatched through the pluggy :class:`~pluggy.PluginManager`: only functions marked
with :data:`synthaug.hookimpl` are called. ``register_generators`` runs when the registry is
first used; ``register_commands`` runs when the command line builds its group
(:func:`register_commands`).

Set ``SYNTHAUG_LOAD_PLUGINS`` to a comma-separated list of entry-point names to load only
those (an empty string loads none); built-in generators are always available.
"""

from __future__ import annotations

import importlib
import os
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from . import _hookspecs as hookspecs
from ._errors import DuplicateGeneratorError, PluginError, UnknownGeneratorError
from ._generator import Generator

__all__ = [
    "GeneratorInfo",
    "PluginInfo",
    "PluginLoadWarning",
    "Registry",
    "get_generator",
    "get_plugin_manager",
    "get_registry",
    "list_generators",
    "register_commands",
    "register_experiments",
    "register_feature_extractors",
    "reset_plugins",
]

BUILTIN_PLUGINS = ("synthaug._default_plugins.classic",)


class PluginLoadWarning(UserWarning):
    """A plugin failed to load; the others keep working."""


@dataclass
class PluginInfo:
    """A loaded (or broken) plugin: name, distribution, version, generators, error."""

    name: str
    distribution: str
    version: str
    generators: list[str] = field(default_factory=list)
    error: str | None = None
    builtin: bool = False
    commands: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "generators": list(self.generators),
            "error": self.error,
            "builtin": self.builtin,
            "commands": list(self.commands),
        }


@dataclass
class GeneratorInfo:
    """A registered generator class and where it came from."""

    cls: type[Generator]
    plugin: PluginInfo

    @property
    def name(self) -> str:
        return self.cls.name


@dataclass
class Registry:
    """What the plugins registered: generators by name, plugins, and name conflicts."""

    generators: dict[str, GeneratorInfo] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    conflicts: dict[str, list[GeneratorInfo]] = field(default_factory=dict)

    def get(self, name: str) -> type[Generator]:
        if name in self.conflicts:
            dists = " and ".join(
                f"{info.cls.__module__}.{info.cls.__qualname__} (distribution {info.plugin.distribution})"
                for info in self.conflicts[name]
            )
            raise DuplicateGeneratorError(
                f"generator name {name!r} is registered twice: by {dists}; uninstall one of them"
            )
        try:
            return self.generators[name].cls
        except KeyError:
            raise UnknownGeneratorError(name, sorted(self.generators)) from None


def _make_register(registry: Registry, plugin: PluginInfo):
    def register(cls: type) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Generator)) or not cls.name:
            raise PluginError(
                f"plugin {plugin.name!r} registered {cls!r}, which is not a synthaug.Generator "
                "subclass with a name"
            )
        info = GeneratorInfo(cls, plugin)
        builtin = registry.generators.get(cls.name)
        if builtin is not None and builtin.plugin.builtin and not plugin.builtin:
            refused = (f"registers generator {cls.name!r} ({cls.__module__}.{cls.__qualname__}), a name built into "
                       f"synthaug; the built-in one is kept and plugin {plugin.name!r} ({plugin.distribution}) must "
                       "rename its generator")
            plugin.error = f"{plugin.error}; {refused}" if plugin.error else refused
            return
        plugin.generators.append(cls.name)
        if cls.name in registry.conflicts:
            registry.conflicts[cls.name].append(info)
        elif cls.name in registry.generators:
            registry.conflicts[cls.name] = [registry.generators.pop(cls.name), info]
        else:
            registry.generators[cls.name] = info

    return register


def _hook_error(hook: str, exc: Exception) -> str:
    return f"{hook} raised {type(exc).__name__}: {exc}"


def _register_generators(pm: pluggy.PluginManager, registry: Registry, only: str | None = None) -> None:
    """Call every plugin's ``register_generators`` hook (or only plugin ``only``'s), one at a time.

    Each implementation gets a ``register`` bound to its own plugin, so generators are
    attributed to it and an exception marks only that plugin as broken.
    """
    plugins = {info.name: info for info in registry.plugins}
    impls = pm.hook.register_generators.get_hookimpls()  # built-ins first, so their names are kept
    for impl in sorted(impls, key=lambda i: not (i.plugin_name in plugins and plugins[i.plugin_name].builtin)):
        info = plugins.get(impl.plugin_name)
        if info is None or (only is not None and impl.plugin_name != only):
            continue
        try:
            impl.function(register=_make_register(registry, info))
        except Exception as exc:  # noqa: BLE001 - isolate broken plugins
            info.error = _hook_error("register_generators", exc)


def _entry_points() -> list[metadata.EntryPoint]:
    eps = list(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP))
    wanted = os.environ.get("SYNTHAUG_LOAD_PLUGINS")
    if wanted is not None:
        names = {n.strip() for n in wanted.split(",") if n.strip()}
        eps = [ep for ep in eps if ep.name in names]
    seen, unique = set(), []
    for ep in sorted(eps, key=lambda e: e.name):
        if (ep.name, ep.value) not in seen:
            seen.add((ep.name, ep.value))
            unique.append(ep)
    return unique


def _load_traceback_note(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    return f" at {last[0].filename}:{last[0].lineno}" if last else ""


@lru_cache(maxsize=1)
def _load() -> tuple[pluggy.PluginManager, Registry]:
    from ._version import __version__

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        registry.plugins.append(PluginInfo(module_name, "synthaug", __version__, builtin=True))
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist is not None else "unknown"
        version = ep.dist.version if ep.dist is not None else "unknown"
        info = PluginInfo(ep.name, dist, version)
        registry.plugins.append(info)
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the rest
            info.error = f"{type(exc).__name__}: {exc}{_load_traceback_note(exc)}"
    _register_generators(pm, registry)
    for info in registry.plugins:
        if info.error:
            _warn_broken(info)
    for name, infos in registry.conflicts.items():
        warnings.warn(
            f"generator name {name!r} is registered by several plugins: "
            + ", ".join(i.plugin.distribution for i in infos),
            PluginLoadWarning,
            stacklevel=3,
        )
    return pm, registry


def _warn_broken(info: PluginInfo) -> None:
    warnings.warn(
        f"synthaug plugin {info.name!r} ({info.distribution} {info.version}) failed to load: {info.error}",
        PluginLoadWarning,
        stacklevel=4,
    )


def _call_hook(hook: str, builtin_modules: Sequence[str], call: Callable[[Any, PluginInfo | None], None]) -> None:
    """Call every implementation of ``hook`` through ``call(function, plugin)``.

    synthaug's own ``builtin_modules`` are registered as plugins on first use and called first
    (``plugin`` is None; an error there is a bug and propagates). Then each loaded third-party
    plugin's implementation, one at a time: one that raises is reported as broken
    (:class:`PluginLoadWarning`, ``synthaug plugins``) and the others keep working.
    """
    pm, registry = _load()
    for module_name in builtin_modules:
        if pm.get_plugin(module_name) is None:
            pm.register(importlib.import_module(module_name), name=module_name)
    plugins = {info.name: info for info in registry.plugins}
    impls = getattr(pm.hook, hook).get_hookimpls()
    for impl in impls:
        if impl.plugin_name in builtin_modules:
            call(impl.function, None)
    for impl in impls:
        info = plugins.get(impl.plugin_name)
        if info is None or info.error:
            continue
        try:
            call(impl.function, info)
        except Exception as exc:  # noqa: BLE001 - isolate broken plugins
            info.error = _hook_error(hook, exc)
            _warn_broken(info)


def register_commands(cli: Any, builtin_modules: Sequence[str] = ()) -> None:
    """Add every plugin's commands to the click group ``cli`` through the ``register_commands`` hook.

    ``builtin_modules`` (synthaug's own command modules) use the same hook. A third-party
    implementation that raises, or that would replace a command already present, is reported
    as broken and its commands are taken out again; the command line keeps working without it.
    """

    def add(function: Callable[..., None], plugin: PluginInfo | None) -> None:
        before = dict(cli.commands)
        try:
            function(cli=cli)
            replaced = sorted(n for n, cmd in before.items() if cli.commands.get(n) is not cmd)
            if replaced and plugin is not None:
                raise PluginError(f"it would replace the command(s) {', '.join(replaced)} already present")
        except Exception:
            cli.commands.clear()
            cli.commands.update(before)
            raise
        if plugin is not None:
            plugin.commands.extend(sorted(set(cli.commands) - set(before)))

    _call_hook("register_commands", builtin_modules, add)


def register_experiments(register: Callable[[type], None], builtin_modules: Sequence[str] = ()) -> None:
    """Collect evaluation experiment kinds through the ``register_experiments`` hook
    (``builtin_modules``, synthaug's own kinds, use the same hook)."""
    _call_hook("register_experiments", builtin_modules, lambda function, _plugin: function(register=register))


def register_feature_extractors(register: Callable[..., None], builtin_modules: Sequence[str] = ()) -> None:
    """Collect feature extractors through the ``register_feature_extractors`` hook
    (``builtin_modules``, synthaug's own extractors, use the same hook)."""
    _call_hook("register_feature_extractors", builtin_modules, lambda function, _plugin: function(register=register))


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (plugins are loaded on first use)."""
    return _load()[0]


def get_registry() -> Registry:
    """The process-wide registry of generators and plugins."""
    return _load()[1]


def reset_plugins() -> None:
    """Forget loaded plugins so the next call discovers them again (for tests)."""
    _load.cache_clear()


def register_module(module: ModuleType) -> None:
    """Register an in-process plugin module (useful in notebooks and tests)."""
    registry = get_registry()
    info = PluginInfo(module.__name__, "local", "unknown")
    registry.plugins.append(info)
    pm = get_plugin_manager()
    pm.register(module, name=module.__name__)
    _register_generators(pm, registry, only=module.__name__)


def get_generator(name: str) -> type[Generator]:
    """The generator class registered as ``name``."""
    return get_registry().get(name)


def list_generators() -> dict[str, type[Generator]]:
    """Usable generators by name, sorted."""
    reg = get_registry()
    return {name: reg.generators[name].cls for name in sorted(reg.generators)}
