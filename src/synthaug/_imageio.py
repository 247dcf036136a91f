"""Reading images the same way everywhere: every mode becomes 8-bit RGB.

Rules (applied in this order):

1. EXIF orientation is applied (``ImageOps.exif_transpose``), then dropped.
2. 16-bit and 32-bit greyscale (``I;16``, ``I``, ``F``) is scaled to 8 bits by its
   nominal range (65535 for 16-bit), never by the image's own min/max.
3. Transparency (``RGBA``, ``LA``, ``P`` with a transparent index) is composited onto
   black, the background of dermoscopy and most medical images.
4. Everything else (``L``, ``P``, ``CMYK``, ``YCbCr``, ``1``) goes through Pillow's ``convert("RGB")``.

Images larger than :data:`MAX_IMAGE_PIXELS` are refused as decompression bombs, images
longer than :data:`MAX_ASPECT_RATIO` times their width (or the reverse) as degenerate (a
60000x1 strip would otherwise become a gigapixel canvas in a generator), and a path that is
not a regular file (a FIFO, a socket, a device) is refused before it is opened, so reading
never blocks.

:func:`decode_image` is THE decoder: the folder and CSV readers (through the probe),
``Dataset.from_hf``, the torch and TF adapters, the generators and the quality report all
decode through it (``synthaug.load_image`` is its public face for paths), so every reader
gives the same pixels for the same file.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

__all__ = ["IMAGE_EXTENSIONS", "MAX_ASPECT_RATIO", "MAX_IMAGE_PIXELS", "check_regular_file", "decode_image",
           "is_image_file", "load_image", "probe_image"]

#: File extensions (lower case) treated as images; anything else is ignored.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)

#: Largest image accepted (pixels); bigger files are refused as decompression bombs.
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own default warning threshold

#: Largest ratio of the longer to the shorter side accepted (a 60000x1 strip is refused).
MAX_ASPECT_RATIO = 100


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for a visible file whose extension is an image extension."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def check_regular_file(path: str | os.PathLike[str]) -> None:
    """Raise :class:`OSError` when ``path`` (links followed) is not a regular file; never opens it,
    so a FIFO named ``x.png`` cannot block the reader."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a folder" if stat.S_ISDIR(mode) else "a device or special file")
        raise OSError(f"{os.fspath(path)!r} is {kind}, not a regular file")


def check_size(width: int, height: int) -> None:
    """Raise when an image of ``width`` x ``height`` pixels is a decompression bomb or degenerate
    (one side more than :data:`MAX_ASPECT_RATIO` times the other)."""
    if width * height > MAX_IMAGE_PIXELS:
        raise Image.DecompressionBombError(f"{width}x{height} pixels exceeds the limit of {MAX_IMAGE_PIXELS}")
    if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
        raise ValueError(
            f"{width}x{height} pixels: one side is more than {MAX_ASPECT_RATIO} times the other "
            f"(the limit is an aspect ratio of {MAX_ASPECT_RATIO}:1)"
        )


def _open(path: Path | io.BytesIO, *, regular: bool = True) -> Image.Image:
    """Open ``path`` lazily after the size checks; ``regular=False`` skips the regular-file check
    (one ``stat``) for paths a dataset reader has already checked (the adapters' hot path)."""
    if regular and not isinstance(path, io.BytesIO):
        check_regular_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombWarning as exc:
            raise Image.DecompressionBombError(str(exc)) from exc
    try:
        check_size(image.width, image.height)
    except Exception:
        image.close()
        raise
    return image


def probe_image(path: str | os.PathLike[str]) -> None:
    """Raise if ``path`` cannot be decoded completely (cheap check used when scanning)."""
    with _open(Path(path)) as image:
        image.load()


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded image to RGB by the module's rules."""
    if image.format not in ("JPEG", "PNG", "WEBP") or "exif" in image.info:  # these keep EXIF only there
        image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        scale = 1 / 257 if mode.startswith("I;16") or mode == "I" else 255.0
        if mode == "I" and image.getextrema()[1] <= 255:
            scale = 1.0
        image = image.point(lambda v: v * scale, mode="F") if mode != "F" else image.point(lambda v: v * scale)
        image = image.convert("L")
        mode = "L"
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return image.convert("RGB")
    return image


def decode_image(source: Any) -> Image.Image:
    """THE decoder: ``source`` (a path, encoded bytes, a ``{"bytes", "path"}`` dict as Hugging Face
    ``datasets`` stores images, or a decoded PIL image) as a new 8-bit RGB image, by the module's
    rules. Raises (``OSError``, ``ValueError``, ``DecompressionBombError``) for what cannot be used."""
    if isinstance(source, dict):
        data = source.get("bytes")
        source = data if data is not None else source.get("path")
        if source is None:
            raise ValueError("an image record with neither 'bytes' nor 'path'")
    if isinstance(source, Image.Image):
        check_size(source.width, source.height)
        rgb = to_rgb(source)
        rgb = rgb.copy() if rgb is source else rgb
    else:
        stream = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source)
        with _open(stream) as image:
            image.load()
            rgb = to_rgb(image)
            if rgb is image:
                rgb = image.copy()
    rgb.info.pop("exif", None)
    return rgb


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode the image file ``path`` into a new 8-bit RGB image (see the module docstring for the
    rules); the same pixels every synthaug reader gives for that file."""
    return decode_image(Path(path))
