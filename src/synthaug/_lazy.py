"""Lazy public names: a package's ``__getattr__``/``__dir__`` that import a name's private module on first use.

The public faces (``synthaug``, ``synthaug.diffusion``, …) list ``name -> module`` (relative to
the package) and stay cheap to import: nothing heavy loads until a name is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, exports: Mapping[str, str], *, anchor: str | None = None,
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module ``package``: ``exports`` maps each public name to
    the module that defines it, relative to ``anchor`` (default: ``package`` itself, which must
    then be a package): ``"._store"``, ``".._generator"``. A name is imported on first access and
    then kept in the module's namespace."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, anchor or package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
