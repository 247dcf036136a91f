"""Cheap checks of image files when a dataset is read, remembered between runs.

Reading a dataset used to decode every image fully (about 1 s per 900 images); at 100,000
images that is minutes before anything happens. :func:`probe_file` instead:

1. opens the file with Pillow and reads its header (format, size, mode): an unknown format,
   a broken header or an image over :data:`synthaug._imageio.MAX_IMAGE_PIXELS` (a
   decompression bomb) fails here exactly as before;
2. checks that the file is complete where that is cheap: a JPEG must end with its EOI
   marker, a PNG with its ``IEND`` chunk (a truncated download or copy fails here);
3. decodes fully only the formats without such a cheap check (GIF, TIFF, WebP, BMP, …).

Damage inside a complete JPEG/PNG body is found where the pixels are used (fitting,
generating, the adapters, the quality report), which report the file by name.

:class:`ProbeCache` keeps each file's result keyed by (absolute path, size, mtime, inode,
ctime), so a second read of the same folder probes nothing, while a file repaired or restored
with its old size and mtime (``cp -p``, ``touch -r``) gets a new inode or ctime and is probed
again. Input folders are never written to: the cache
lives in the user's cache folder, ``$SYNTHAUG_CACHE_DIR`` or ``$XDG_CACHE_HOME/synthaug``
(default ``~/.cache/synthaug``), one ``probe/<hash of the dataset root>.json`` file per
dataset root. ``SYNTHAUG_CACHE_DIR=off`` disables it; a damaged cache file is ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ._imageio import _open
from ._usercache import FileTableCache

__all__ = ["ProbeCache", "probe_file", "probe_files"]

PROBE_FORMAT = 2  # 2: entries are [size, mtime_ns, inode, ctime_ns, reason]
_FULL_DECODE = frozenset({"GIF", "TIFF", "WEBP", "BMP", "PPM", "MPO"})


def _tail(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - n))
        return fh.read()


def probe_file(path: str | os.PathLike[str]) -> None:
    """Raise when ``path`` is not a usable image (see the module docstring for what is checked)."""
    path = Path(path)
    with _open(path) as image:
        fmt = image.format or ""
        if fmt == "JPEG":
            tail = _tail(path, 64).rstrip(b"\0\r\n ")  # some writers pad after EOI
            if not tail.endswith(b"\xff\xd9"):
                raise OSError(f"{path.name}: JPEG file is truncated (no end-of-image marker)")
        elif fmt == "PNG":
            if b"IEND" not in _tail(path, 12):
                raise OSError(f"{path.name}: PNG file is truncated (no IEND chunk)")
        else:
            image.load()  # no cheap completeness check for this format: decode it


class ProbeCache(FileTableCache):
    """Probe results of one dataset root, keyed by absolute path with (size, mtime_ns, inode, ctime_ns).

    ``None`` as ``folder`` (or ``SYNTHAUG_CACHE_DIR=off``) keeps results in memory only.
    """

    kind = "probe"
    format = PROBE_FORMAT

    def __init__(self, root: str | os.PathLike[str] | None, folder: Path | None = None) -> None:
        super().__init__(root, folder)
        self.probed = 0  # files probed (not answered from the cache) since creation

    def check(self, path: Path) -> str | None:
        """``None`` when ``path`` is a usable image, else the reason (cached by size, mtime, inode and ctime)."""
        key = os.fspath(path)
        if not os.path.isabs(key):
            key = os.path.abspath(key)
        try:
            st = os.stat(key)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
        hit = self.entries.get(key)
        if isinstance(hit, list) and len(hit) == len(stamp) + 1 and hit[:-1] == stamp:
            return hit[-1]
        self.probed += 1
        try:
            probe_file(path)
            reason = None
        except Exception as exc:  # noqa: BLE001 - any decoder failure means unusable
            reason = f"{type(exc).__name__}: {exc}"
        self.remember(key, [*stamp, reason])
        return reason



def probe_files(paths: Iterable[Path], root: str | os.PathLike[str] | None) -> dict[Path, str]:
    """The unusable files among ``paths`` with their reasons, using the probe cache of ``root``."""
    cache = ProbeCache(root)
    bad = {}
    for path in paths:
        reason = cache.check(path)
        if reason is not None:
            bad[path] = reason
    cache.save()
    return bad
