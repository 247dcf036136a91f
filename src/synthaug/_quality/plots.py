"""PNG figures of the quality report, drawn with Pillow only (no matplotlib needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["save_grid", "save_pairs"]

_TITLE_H = 16
_BG = (255, 255, 255)


def _thumb(path: Path, side: int):
    from PIL import Image

    from .._imageio import load_image

    try:
        image = load_image(path)
    except Exception:  # noqa: BLE001 - an unreadable file is drawn as a grey square
        return Image.new("RGB", (side, side), (128, 128, 128))
    image.thumbnail((side, side))
    return image


def _save(image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, path)
    return path


def save_grid(rows: Sequence[tuple[str, Sequence[Path]]], path: str | os.PathLike[str], *,
              per_row: int = 8, thumb: int = 64) -> Path:
    """One titled strip of thumbnails per ``(title, paths)`` row (first ``per_row`` paths)."""
    from PIL import Image, ImageDraw

    strips = [(title, [_thumb(Path(p), thumb) for p in list(paths)[:per_row]]) for title, paths in rows]
    heights = [(_TITLE_H if title else 2) + max((im.height for im in thumbs), default=0) for title, thumbs in strips]
    sheet = Image.new("RGB", (per_row * thumb, max(sum(heights), 1)), _BG)
    draw = ImageDraw.Draw(sheet)
    top = 0
    for (title, thumbs), height in zip(strips, heights):
        if title:
            draw.text((4, top + 2), title, fill=(0, 0, 0))
        y = top + (_TITLE_H if title else 2)
        for c, image in enumerate(thumbs):
            sheet.paste(image, (c * thumb + (thumb - image.width) // 2, y))
        top += height
    return _save(sheet, Path(path))


def save_pairs(pairs: Sequence[tuple[Path, Path, str, bool]], path: str | os.PathLike[str], *,
               thumb: int = 80, per_row: int = 3) -> Path:
    """Side-by-side (synthetic | nearest training image) pairs with a caption each.

    ``pairs`` holds ``(synthetic, training, caption, flagged)``; flagged pairs get a red frame.
    """
    from PIL import Image, ImageDraw

    cell_w, cell_h = 2 * thumb + 12, thumb + _TITLE_H + 6
    n_rows = max(1, -(-len(pairs) // per_row))
    sheet = Image.new("RGB", (per_row * cell_w, n_rows * cell_h), _BG)
    draw = ImageDraw.Draw(sheet)
    for i, (synthetic, training, caption, flagged) in enumerate(pairs):
        left, top = (i % per_row) * cell_w, (i // per_row) * cell_h
        draw.text((left + 4, top + 2), caption, fill=(200, 0, 0) if flagged else (0, 0, 0))
        for j, p in enumerate((synthetic, training)):
            image = _thumb(Path(p), thumb)
            x, y = left + 4 + j * (thumb + 4), top + _TITLE_H
            sheet.paste(image, (x, y))
            if flagged:
                draw.rectangle((x - 1, y - 1, x + image.width, y + image.height), outline=(220, 0, 0), width=2)
    return _save(sheet, Path(path))
