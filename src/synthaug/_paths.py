"""Resolving many file paths cheaply.

``os.path.realpath`` checks every component of a path (about one ``lstat`` per folder level),
so resolving 100,000 image paths costs seconds. :func:`realpaths` resolves each distinct
folder once and the file name with one ``lstat`` (following it only when it is a link), and
gives the same answers as ``os.path.realpath``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["realpaths"]


def realpaths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """``os.path.realpath`` of every path, in order, with each folder resolved once."""
    folders: dict[str, str] = {}
    out = []
    for path in paths:
        folder, name = os.path.split(os.fspath(path))
        resolved = folders.get(folder)
        if resolved is None:
            resolved = folders[folder] = os.path.realpath(folder or os.curdir)
        if name in ("", os.curdir, os.pardir):
            out.append(os.path.realpath(path))
            continue
        full = os.path.join(resolved, name)
        out.append(os.path.realpath(full) if os.path.islink(full) else full)
    return out
