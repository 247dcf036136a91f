"""The user cache folder, and the per-dataset-root table of file facts kept there.

Facts about input files that cost a read (is it a usable image, its SHA-256) are remembered per
absolute path with the file's stamp, one JSON table per dataset root and kind
(``<cache>/<kind>/<root hash>.json``), and never in the input folder. The cache folder is
``SYNTHAUG_CACHE_DIR`` (``off`` keeps everything in memory), else ``$XDG_CACHE_HOME/synthaug``
or ``~/.cache/synthaug``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["FileTableCache", "cache_root"]


def cache_root() -> Path | None:
    """The synthaug cache folder, or ``None`` when ``SYNTHAUG_CACHE_DIR=off``."""
    configured = os.environ.get("SYNTHAUG_CACHE_DIR", "")
    if configured.lower() in ("off", "0", "none"):
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "synthaug"


class FileTableCache:
    """``entries``: absolute path -> a list (the file's stamp, then the remembered fact) for one
    dataset ``root``; subclasses set :attr:`kind` (the table's folder) and :attr:`format` (a table
    of another format is ignored). ``None`` as ``folder`` (or ``SYNTHAUG_CACHE_DIR=off``) keeps
    the table in memory only."""

    kind: ClassVar[str] = ""
    format: ClassVar[int] = 1

    def __init__(self, root: str | os.PathLike[str] | None, folder: Path | None = None) -> None:
        folder = cache_root() if folder is None else folder
        key = hashlib.sha256(os.path.realpath(root or "/").encode()).hexdigest()[:20]
        self.path = folder / self.kind / f"{key}.json" if folder is not None else None
        self.entries: dict[str, list[Any]] = self._read()
        self._dirty = False

    def _read(self) -> dict[str, list[Any]]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format") != self.format or not isinstance(data.get("files"), dict):
            return {}
        return data["files"]

    def remember(self, key: str, row: list[Any]) -> None:
        """Keep ``row`` for ``key`` (written by the next :meth:`save`)."""
        self.entries[key] = row
        self._dirty = True

    def save(self) -> None:
        """Write the table atomically when something changed; a failure to write is ignored."""
        if self.path is None or not self._dirty:
            return
        from ._atomic import atomic_write_bytes

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.path, json.dumps({"format": self.format, "files": self.entries}).encode())
        except OSError:
            return
        self._dirty = False
