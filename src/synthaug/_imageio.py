"""Reading images the same way everywhere: every mode becomes 8-bit RGB.

Rules (applied in this order):

1. EXIF orientation is applied (``ImageOps.exif_transpose``), then dropped.
2. 16-bit and 32-bit greyscale (``I;16``, ``I``, ``F``) is scaled to 8 bits by its
   nominal range (65535 for 16-bit), never by the image's own min/max.
3. Transparency (``RGBA``, ``LA``, ``P`` with a transparent index) is composited onto
   black, the background of dermoscopy and most medical images.
4. Everything else (``L``, ``P``, ``CMYK``, ``YCbCr``, ``1``) goes through Pillow's ``convert("RGB")``.

Images larger than :data:`MAX_IMAGE_PIXELS` are refused as decompression bombs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps

__all__ = ["IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS", "is_image_file", "load_image", "probe_image"]

#: File extensions (lower case) treated as images; anything else is ignored.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)

#: Largest image accepted (pixels); bigger files are refused as decompression bombs.
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own default warning threshold


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for a visible file whose extension is an image extension."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _open(path: Path) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombWarning as exc:
            raise Image.DecompressionBombError(str(exc)) from exc
    if image.width * image.height > MAX_IMAGE_PIXELS:
        image.close()
        raise Image.DecompressionBombError(
            f"{image.width}x{image.height} pixels exceeds the limit of {MAX_IMAGE_PIXELS}"
        )
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


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode ``path`` into a new 8-bit RGB image (see the module docstring for the rules)."""
    with _open(Path(path)) as image:
        image.load()
        rgb = to_rgb(image)
        if rgb is image:
            rgb = image.copy()
    rgb.info.pop("exif", None)
    return rgb
