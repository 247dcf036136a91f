"""PNG figures of the quality report, drawn with Pillow only (no matplotlib needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PAIR_LABELS", "save_grid", "save_pairs", "wrap_text"]

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


#: Under each thumbnail of nearest-pairs.png: which image is which.
PAIR_LABELS = ("synthetic", "real (nearest)")
_LABEL_H = 13


def wrap_text(draw, text: str, width: float) -> list[str]:
    """``text`` broken at spaces (or, for one long word, at characters) into lines that fit ``width`` px."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:
            if draw.textlength(line + ch) > width and line:
                lines.append(line)
                line = ""
            line += ch
    return [*lines, line] if line else lines


def save_pairs(pairs: Sequence[tuple[Path, Path, str, bool]], path: str | os.PathLike[str], *,
               thumb: int = 80, per_row: int = 3) -> Path:
    """Side-by-side (synthetic | nearest real training image) pairs: a caption above each pair,
    wrapped to the pair's width (class names whole), and under each thumbnail which one it is
    (:data:`PAIR_LABELS`).

    ``pairs`` holds ``(synthetic, training, caption, flagged)``; flagged pairs get a red frame.
    """
    from PIL import Image, ImageDraw

    cell_w = 2 * thumb + 12
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    captions = [wrap_text(probe, caption, cell_w - 8) for _, _, caption, _ in pairs]
    title_h = _TITLE_H + 11 * (max((len(c) for c in captions), default=1) - 1)
    cell_h = title_h + thumb + _LABEL_H + 8
    n_rows = max(1, -(-len(pairs) // per_row))
    sheet = Image.new("RGB", (per_row * cell_w, n_rows * cell_h), _BG)
    draw = ImageDraw.Draw(sheet)
    for i, (synthetic, training, _caption, flagged) in enumerate(pairs):
        left, top = (i % per_row) * cell_w, (i // per_row) * cell_h
        for k, text in enumerate(captions[i]):
            draw.text((left + 4, top + 2 + 11 * k), text, fill=(200, 0, 0) if flagged else (0, 0, 0))
        for j, p in enumerate((synthetic, training)):
            image = _thumb(Path(p), thumb)
            x, y = left + 4 + j * (thumb + 4), top + title_h
            sheet.paste(image, (x, y))
            draw.text((x, y + thumb + 2), PAIR_LABELS[j], fill=(60, 60, 60))
            if flagged:
                draw.rectangle((x - 1, y - 1, x + image.width, y + image.height), outline=(220, 0, 0), width=2)
    return _save(sheet, Path(path))
