"""Identity by content: the fingerprint of a training set, and the SHA-256 cache behind it.

A run is identified by what it learns from, not by names or counts. :func:`training_fingerprint`
hashes, for every source image of a concept, its relative path, size and SHA-256, together with
the generator's name, version and options. The fingerprint is recorded in ``plan.json`` (the
run description) and in every fitted ``artifact.json``; a rerun whose fingerprint differs is a
different run (refused without ``--overwrite``), and an artifact fitted on other images is
never reused.

:class:`HashCache` keeps each file's SHA-256 keyed by (absolute path, size, mtime_ns, inode) in
the user's cache folder (:func:`synthaug._usercache.cache_root`, ``hash/<root hash>.json``), so a
no-op rerun only stats its images. ``SYNTHAUG_CACHE_DIR=off`` keeps hashes in memory only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._usercache import FileTableCache

__all__ = ["HashCache", "file_sha256", "training_fingerprint", "files_fingerprint"]

HASH_FORMAT = 1


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of the bytes of ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class HashCache(FileTableCache):
    """SHA-256 of files keyed by (absolute path, size, mtime_ns, inode); one cache file per ``root``."""

    kind = "hash"
    format = HASH_FORMAT

    def __init__(self, root: str | os.PathLike[str] | None, folder: Path | None = None) -> None:
        super().__init__(root, folder)
        self.hashed = 0  # files read and hashed (not answered from the cache) since creation

    def stat_and_hash(self, path: str | os.PathLike[str]) -> tuple[int, str]:
        """``(size, sha256)`` of ``path`` (symlinks followed), from the cache when unchanged."""
        key = os.path.abspath(os.fspath(path))
        st = os.stat(key)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        hit = self.entries.get(key)
        if isinstance(hit, list) and len(hit) == 4 and hit[:3] == stamp:
            return st.st_size, str(hit[3])
        digest = file_sha256(key)
        self.hashed += 1
        self.remember(key, [*stamp, digest])
        return st.st_size, digest



def _relative(path: Path, root: str | os.PathLike[str] | None) -> str:
    if root is not None:
        try:
            return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
        except ValueError:
            pass
    return Path(os.path.abspath(path)).as_posix()


def files_fingerprint(paths: Iterable[str | os.PathLike[str]], root: str | os.PathLike[str] | None,
                      cache: HashCache | None = None) -> list[list[Any]]:
    """``[relative path, size, sha256]`` of every file of ``paths``, sorted by relative path."""
    own = cache is None
    cache = HashCache(root) if cache is None else cache
    rows = []
    for p in paths:
        size, digest = cache.stat_and_hash(p)
        rows.append([_relative(Path(p), root), size, digest])
    if own:
        cache.save()
    return sorted(rows)


def digest_of(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def training_fingerprint(images: Iterable[str | os.PathLike[str]], root: str | os.PathLike[str] | None, *,
                         generator: Mapping[str, Any], cache: HashCache | None = None) -> tuple[str, str]:
    """The fingerprint of one concept's training set: the SHA-256 of its images' relative paths,
    sizes and SHA-256 digests and of ``generator`` (name, version and options); and the
    SHA-256 of the images' part alone (to tell "other images" from "other options")."""
    rows = files_fingerprint(images, root, cache)
    return digest_of({"images": rows, "generator": dict(generator)}), digest_of(rows)
