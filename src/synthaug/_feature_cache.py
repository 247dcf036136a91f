"""Feature rows remembered between runs, keyed by image content and extractor identity.

Embedding thousands of images with a learned network takes minutes; a second report or
filter run over the same images should take seconds. :class:`CachedFeatures` wraps a feature
space that has an ``identity`` (its name plus a hash of its checkpoint configuration) and
keeps one row per image under

    <cache>/features/<hash of the identity>/<sha256[:2]>/<sha256 of the file bytes>.npy

where ``<cache>`` is the user cache folder of :func:`synthaug._usercache.cache_root`
(``$SYNTHAUG_CACHE_DIR``, else ``$XDG_CACHE_HOME/synthaug``, else ``~/.cache/synthaug``;
``SYNTHAUG_CACHE_DIR=off`` disables the cache). The key is the content hash, not the path:
an edited image is embedded again, a renamed or copied one is not. Input folders are never
written to. A damaged cache entry is ignored and rewritten; a cache that cannot be written
is skipped silently (the rows are still returned).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._fingerprint import file_sha256
from ._usercache import cache_root

__all__ = ["CachedFeatures", "feature_cache_folder", "file_sha256"]


def feature_cache_folder(identity: str, root: Path | None = None) -> Path | None:
    """The cache folder of one extractor identity (``None`` when caching is off)."""
    base = cache_root() if root is None else root
    if base is None:
        return None
    return base / "features" / hashlib.sha256(identity.encode()).hexdigest()[:24]


def _write(path: Path, row: Any) -> None:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, row, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def _read(path: Path) -> Any | None:
    import numpy as np

    try:
        row = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return row if row.ndim == 1 else None


class CachedFeatures:
    """A feature space whose rows are cached per image content (see the module docstring).

    ``space`` needs ``name``, ``identity`` and ``extract(paths)``. ``computed`` counts the
    images actually embedded by ``space`` since creation (cache misses).
    """

    def __init__(self, space: Any, folder: Path | None = None) -> None:
        self.space = space
        self.name = space.name
        self.identity = space.identity
        self.folder = feature_cache_folder(self.identity, folder)
        self.computed = 0

    def __getattr__(self, attr: str) -> Any:  # e.g. a CLIP space's text_features
        if attr == "space":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(attr)
        return getattr(self.space, attr)

    def extract(self, paths: Sequence[Path]) -> Any:
        import numpy as np

        if self.folder is None:
            self.computed += len(paths)
            return np.asarray(self.space.extract(list(paths)), dtype=np.float64)
        keys = [file_sha256(p) for p in paths]
        rows: list[Any] = [_read(self.folder / k[:2] / f"{k}.npy") for k in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            fresh = np.asarray(self.space.extract([paths[i] for i in missing]), dtype=np.float64)
            if fresh.ndim != 2 or len(fresh) != len(missing):
                raise ValueError(f"feature space {self.name!r} returned shape {fresh.shape} for {len(missing)} images")
            self.computed += len(missing)
            self._store(fresh, [keys[i] for i in missing])
            for i, row in zip(missing, fresh):
                rows[i] = row
        dims = {len(r) for r in rows}
        if len(dims) > 1:  # a stale entry of another width: embed everything again
            self.computed += len(paths)
            return np.asarray(self.space.extract(list(paths)), dtype=np.float64)
        return np.stack(rows).astype(np.float64) if rows else np.zeros((0, 0))

    def _store(self, rows: Any, keys: Sequence[str]) -> None:
        try:
            for key, row in zip(keys, rows):
                _write(self.folder / key[:2] / f"{key}.npy", row)
        except OSError:
            return
