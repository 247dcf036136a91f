"""Reading the images of a quality report: decode once, keep only small per-image numbers.

Each image is decoded once (in worker processes for large sets) and reduced to its pixel info (readable, blank), its copy
descriptor (36x36 float32, about 5 KiB) and its colour-texture row (66 numbers): memory
grows linearly with the number of images and holds no decoded pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._progress import Progress

__all__ = ["Scanned", "scan_side"]


#: Images per task of a parallel scan, and the fewest images for which a pool is started.
SCAN_CHUNK = 256
PARALLEL_MIN = 4 * SCAN_CHUNK


def _scan_chunk(paths: Sequence[Path], want_colour_texture: bool) -> tuple[list[Any], Any, list[Any]]:
    """Pixel infos, copy descriptors and (optionally) colour-texture rows of ``paths``."""
    import numpy as np

    from .._features import COPY_MARGIN, COPY_SIDE, ImageInfo, colour_texture_vector, copy_descriptor, image_info
    from .._imageio import load_image

    side = COPY_SIDE + 2 * COPY_MARGIN
    infos, descriptors, rows = [], np.zeros((len(paths), side, side), np.float32), []
    for i, p in enumerate(paths):
        try:
            image = load_image(p)
        except Exception as exc:  # noqa: BLE001 - reported as an unreadable image
            infos.append(ImageInfo(False, 0.0, 0.0, f"{type(exc).__name__}: {exc}"))
            rows.append(None)
            continue
        infos.append(image_info(image))
        descriptors[i] = copy_descriptor(image)
        rows.append(colour_texture_vector(image) if want_colour_texture else None)
    return infos, descriptors, rows


def _scan(paths: Sequence[Path], want_colour_texture: bool, progress: Progress, what: str, workers: int = 1):
    """Decode each image once (in ``workers`` processes for large sets), in order."""
    import numpy as np

    chunks = [list(paths[i : i + SCAN_CHUNK]) for i in range(0, len(paths), SCAN_CHUNK)] or [[]]
    task = progress.task(f"reading {what} images", len(paths))
    parts = []
    if workers > 1 and len(paths) >= PARALLEL_MIN:
        from concurrent.futures import ProcessPoolExecutor

        from .._generation_pool import exit_with_parent, pool_context

        with ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=exit_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            for chunk, part in zip(chunks, pool.map(_scan_chunk, chunks, [want_colour_texture] * len(chunks))):
                parts.append(part)
                task.advance(len(chunk))
    else:
        for chunk in chunks:
            parts.append(_scan_chunk(chunk, want_colour_texture))
            task.advance(len(chunk))
    task.close()
    infos = [info for part in parts for info in part[0]]
    rows = [row for part in parts for row in part[2]]
    return infos, np.concatenate([part[1] for part in parts]), rows


def _feature_matrix(paths: Sequence[Path], rows: list[Any], usable: Sequence[bool], space: Any) -> Any:
    """Feature rows (NaN for unusable images) from the scan or from ``space``."""
    import numpy as np

    good = [i for i, ok in enumerate(usable) if ok]
    if getattr(space, "name", "") == "colour-texture":
        dims = len(next((r for r in rows if r is not None), np.zeros(66)))
        out = np.full((len(paths), dims), np.nan)
        for i in good:
            out[i] = rows[i]
        return out
    extracted = np.asarray(space.extract([paths[i] for i in good]), dtype=np.float64)
    out = np.full((len(paths), extracted.shape[1] if extracted.ndim == 2 else 0), np.nan)
    out[good] = extracted
    return out


@dataclass
class Scanned:
    """One side of the comparison after decoding: paths, labels, usable mask, descriptors, features."""

    paths: list[Path]
    labels: Any  # numpy array of class names
    usable: Any  # numpy bool array: readable and not blank
    descriptors: Any
    features: Any = None


def scan_side(paths: Sequence[Path], labels: Sequence[str], space: Any, progress: Progress, what: str,
              workers: int = 1):
    """Decode one side, compute its copy descriptors and features; also return the pixel infos."""
    import numpy as np

    infos, descriptors, rows = _scan(paths, space.name == "colour-texture", progress, what, workers)
    usable = np.array([i.readable and not i.blank for i in infos], dtype=bool)
    side = Scanned(list(paths), np.array(labels), usable, descriptors)
    side.features = _feature_matrix(side.paths, rows, usable, space)
    return side, infos
