"""Materialising a local Hugging Face ``datasets.Dataset`` as PNG files (used by ``Dataset.from_hf``).

Every row's image goes through :func:`synthaug._imageio.decode_image`, the decoder of the folder
and CSV readers (EXIF orientation, 16-bit grey, transparency, CMYK), so a cached PNG holds the
pixels the folder reader would give for the same file. Cached files are named by the SHA-256 of their PNG bytes, ``cache_dir/<label>/<hash>.png``, so
a shuffled dataset, or train and test splits sharing one ``cache_dir``, never reuse another
row's image. Nothing is downloaded. The ``datasets`` package itself is not imported: any object
with ``features`` and iterable rows works.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._errors import DatasetError
from ._imageio import decode_image

__all__ = ["materialize_hf"]


def materialize_hf(hf_dataset: Any, cache_dir: str | os.PathLike[str], image_column: str, label_column: str,
                   validate_label: Callable[[object, str], str]) -> Iterator[tuple[Path, str]]:
    """Yield ``(png path, label)`` per row, writing each image once (atomically) under ``cache_dir``.

    The label is the ``ClassLabel`` name when the label column has names, else the raw value,
    checked by ``validate_label(label, where)`` before anything is written under its name.
    Raises :class:`~synthaug._errors.DatasetError` naming the columns when one is missing.
    """
    features = getattr(hf_dataset, "features", {}) or {}
    for column in (image_column, label_column):
        if column not in features:
            raise DatasetError(
                f"Hugging Face dataset has no column {column!r}; its columns are {', '.join(features) or 'none'}"
            )
    names = getattr(features[label_column], "names", None)
    for i, row in enumerate(hf_dataset):
        raw = row[label_column]
        label = validate_label(names[raw] if names is not None and isinstance(raw, int) else raw,
                               f"row {i} of the Hugging Face dataset")
        try:
            image = decode_image(row[image_column])  # the decoder of every reader (synthaug._imageio)
        except Exception as exc:  # noqa: BLE001 - any decoder failure: name the row
            raise DatasetError(f"row {i} of the Hugging Face dataset: image cannot be decoded "
                               f"({type(exc).__name__}: {exc})") from exc
        yield _cached_png(image, Path(cache_dir), label), label


def _cached_png(image: Any, cache_dir: Path, label: str) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # already 8-bit RGB (decode_image)
    data = buffer.getvalue()
    target = cache_dir / label / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return target
