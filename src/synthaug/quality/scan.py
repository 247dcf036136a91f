"""Reading the images of a quality report: decode once, keep only small per-image numbers.

Each image is decoded once and reduced to its pixel info (readable, blank), its copy
descriptor (36x36 float32, about 5 KiB) and its colour-texture row (66 numbers): memory
grows linearly with the number of images and holds no decoded pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..progress import Progress

__all__ = ["Scanned", "scan_side"]


def _scan(paths: Sequence[Path], want_colour_texture: bool, progress: Progress, what: str):
    """Decode each image once: pixel info, copy descriptor and (optionally) colour-texture row."""
    import numpy as np

    from .._imageio import load_image
    from .features import COPY_MARGIN, COPY_SIDE, ImageInfo, colour_texture_vector, copy_descriptor, image_info

    side = COPY_SIDE + 2 * COPY_MARGIN
    infos, descriptors, rows = [], np.zeros((len(paths), side, side), np.float32), []
    task = progress.task(f"reading {what} images", len(paths))
    for i, p in enumerate(paths):
        try:
            image = load_image(p)
        except Exception as exc:  # noqa: BLE001 - reported as an unreadable image
            infos.append(ImageInfo(False, 0.0, 0.0, f"{type(exc).__name__}: {exc}"))
            rows.append(None)
            task.advance()
            continue
        infos.append(image_info(image))
        descriptors[i] = copy_descriptor(image)
        rows.append(colour_texture_vector(image) if want_colour_texture else None)
        task.advance()
    task.close()
    return infos, descriptors, rows


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


def scan_side(paths: Sequence[Path], labels: Sequence[str], space: Any, progress: Progress, what: str):
    """Decode one side, compute its copy descriptors and features; also return the pixel infos."""
    import numpy as np

    infos, descriptors, rows = _scan(paths, space.name == "colour-texture", progress, what)
    usable = np.array([i.readable and not i.blank for i in infos], dtype=bool)
    side = Scanned(list(paths), np.array(labels), usable, descriptors)
    side.features = _feature_matrix(side.paths, rows, usable, space)
    return side, infos
