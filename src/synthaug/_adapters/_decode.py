"""Fast decoding to a fixed size with Pillow (shared by the torch adapter and the harness).

JPEG files are decoded with Pillow's ``draft`` mode: the decoder itself downscales by 1/2,
1/4 or 1/8 (DCT scaling) as long as the result stays at least as large as the target, which
makes small training sizes several times cheaper (:func:`decode_for_size`). The rest of the
way is Pillow's bilinear resize (:func:`decode_resized`), or torch's equivalent filter in the
torch adapter (``adapters/torch.py``). Colour handling is the core's
(:func:`synthaug._imageio.to_rgb`): every image becomes 8-bit RGB.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .._imageio import _open, to_rgb

__all__ = ["ImageCache", "decode_for_size", "decode_resized"]

T = TypeVar("T")


def decode_for_size(path: str | os.PathLike[str], size: tuple[int, int] | None, finish: Callable[[Any], T]) -> T:
    """Decode ``path`` as RGB, a JPEG at the smallest DCT scale (1, 1/2, 1/4, 1/8) that keeps it
    at least ``size`` = (height, width), and return ``finish(rgb)``, called before the file is
    closed (it must copy what it keeps)."""
    with _open(Path(path), regular=False) as image:  # a Dataset's reader refused non-regular files
        if size is not None and image.format == "JPEG":
            image.draft("RGB", (size[1], size[0]))
        image.load()
        return finish(to_rgb(image))


def decode_resized(path: str | os.PathLike[str], size: tuple[int, int] | None):  # -> PIL.Image.Image
    """Decode ``path`` as RGB, resized (Pillow's bilinear) to ``size`` = (height, width) when given."""
    from PIL import Image

    def finish(rgb: Any) -> Any:
        if size is not None and rgb.size != (size[1], size[0]):
            return rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return rgb.copy()

    return decode_for_size(path, size, finish)


class ImageCache:
    """Decoded images kept in memory, keyed by (path, size); safe to share between datasets.

    ``max_items`` bounds the number of entries (oldest dropped first); ``None`` = unbounded.
    """

    def __init__(self, max_items: int | None = None) -> None:
        self.max_items = max_items
        self._items: dict[tuple[str, tuple[int, int] | None], Any] = {}
        self._lock = threading.Lock()

    def get(self, path: str | os.PathLike[str], size: tuple[int, int] | None, decode) -> Any:
        """The cached value for (path, size), computing it with ``decode(path, size)`` once."""
        key = (os.fspath(path), size)
        value = self._items.get(key)
        if value is None:
            value = decode(path, size)
            with self._lock:
                if self.max_items is not None and len(self._items) >= self.max_items:
                    self._items.pop(next(iter(self._items)))
                self._items[key] = value
        return value

    def __len__(self) -> int:
        return len(self._items)
