"""The ``classic`` generator: seeded random classical transforms of a class's own images.

Each new image picks one training image of its concept and applies, in order: a random
horizontal/vertical flip, a right-angle rotation, a small free rotation, a random resized
crop back to the source size, and colour jitter (brightness, contrast, saturation, hue).
All randomness comes from ``numpy.random.default_rng(seed)``, so the same seed gives the
same image. It needs no training and no GPU; it is the baseline diffusion generators must beat.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import Field

from .._generator import Concept, GeneratedImage, Generator, GeneratorOptions
from .._hookspecs import hookimpl
from .._progress import NULL_PROGRESS, Progress


class ClassicOptions(GeneratorOptions):
    """Options of the ``classic`` generator."""

    hflip: bool = Field(True, description="Flip horizontally with probability 0.5.")
    vflip: bool = Field(True, description="Flip vertically with probability 0.5.")
    rotate90: bool = Field(True, description="Rotate by a random multiple of 90 degrees (square-safe: crops back).")
    max_rotation: float = Field(20.0, ge=0, le=180, description="Largest extra free rotation, in degrees.")
    crop_scale: tuple[float, float] = Field(
        (0.7, 1.0), description="Range of the crop's area as a fraction of the image (then resized back)."
    )
    brightness: float = Field(0.15, ge=0, le=1, description="Brightness jitter: factor in [1-b, 1+b].")
    contrast: float = Field(0.15, ge=0, le=1, description="Contrast jitter: factor in [1-c, 1+c].")
    saturation: float = Field(0.15, ge=0, le=1, description="Saturation jitter: factor in [1-s, 1+s].")
    hue: float = Field(0.02, ge=0, le=0.5, description="Hue shift, as a fraction of the colour circle.")
    size: int | None = Field(None, ge=8, le=8192,
                             description="Output side length in pixels (8 to 8192); default: the source image's size.")


class ClassicGenerator(Generator):
    """New images of a class by seeded random flips, rotations, crops and colour jitter."""

    learns_from_images = False  # transforms images, trains nothing
    name = "classic"
    version = "1"
    description = "Seeded classical transforms (flips, rotations, crops, colour jitter) of the class's images."
    parallel_generation = True
    Options = ClassicOptions

    def __init__(self, options=None, /, **overrides) -> None:
        super().__init__(options, **overrides)
        lo, hi = self.options.crop_scale
        if not 0 < lo <= hi <= 1:
            from .._errors import InvalidOptionsError

            raise InvalidOptionsError(
                f"generator 'classic': option crop_scale={self.options.crop_scale!r}: needs 0 < low <= high <= 1"
            )
        self._cache: dict[Path, object] = {}
        self._digests: dict[Path, str] = {}
        self._ordered: tuple[Concept, list[Path]] | None = None

    def fit(self, concepts: Sequence[Concept], work_dir: Path, *, progress: Progress = NULL_PROGRESS) -> None:
        """Nothing to train: the concept's images are read when generating."""
        for concept in concepts:
            if not concept.images:
                from .._errors import DatasetError

                raise DatasetError(f"concept {concept.name!r} has no training images to transform")

    def _source(self, path: Path):
        from .._imageio import load_image

        image = self._cache.get(path)
        if image is None:
            if len(self._cache) > 512:
                self._cache.clear()
            try:
                image = self._cache[path] = load_image(path)
            except Exception as exc:  # noqa: BLE001 - reading only probes headers: name the damaged file
                from .._errors import DatasetError

                raise DatasetError(
                    f"training image {str(path)!r} cannot be decoded ({type(exc).__name__}: {exc}); "
                    "fix or remove it and run again"
                ) from exc
        return image

    def _ordered_images(self, concept: Concept) -> list[Path]:
        """``concept``'s training images in sorted order (the source draw's domain), sorted once
        per concept: a worker process generates a large class in many small chunks."""
        cached = self._ordered
        if cached is None or cached[0] is not concept:
            cached = self._ordered = (concept, sorted(concept.images))
        return cached[1]

    def generate(self, concept: Concept, seeds: Sequence[int]) -> Iterator[GeneratedImage]:
        import numpy as np

        images = self._ordered_images(concept)
        for seed in seeds:
            rng = np.random.default_rng(int(seed))
            source_index = int(rng.integers(len(images)))
            out = self.transform(self._source(images[source_index]), rng)
            source = images[source_index]
            yield GeneratedImage(out, int(seed), {"source": source.name, "source_sha256": self._digest(source)})

    def _digest(self, path: Path) -> str:
        """SHA-256 of a source image's bytes, recorded so a leak check matches by content, not name."""
        digest = self._digests.get(path)
        if digest is None:
            from .._fingerprint import file_sha256

            digest = self._digests[path] = file_sha256(path)
        return digest

    def transform(self, image, rng):
        """Apply one random draw of the transforms to a PIL RGB image."""
        from PIL import Image, ImageEnhance

        o = self.options
        w, h = image.size
        draws = rng.random(4)
        if o.hflip and draws[0] < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if o.vflip and draws[1] < 0.5:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        angle = float(rng.uniform(-o.max_rotation, o.max_rotation)) if o.max_rotation else 0.0
        if o.rotate90:
            angle += 90.0 * int(rng.integers(4))
        if angle:
            image = image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
            # largest axis-aligned rectangle of the original aspect inside the rotated image
            a = math.radians(angle % 180)
            cos, sin = abs(math.cos(a)), abs(math.sin(a))
            scale = min(w / (w * cos + h * sin), h / (w * sin + h * cos)) if (cos or sin) else 1.0
            if abs(round(angle) % 90) == 0 and int(round(angle / 90)) % 2:
                scale = min(w, h) / max(w, h)
            cw, ch = w * scale, h * scale
            cx, cy = image.width / 2, image.height / 2
            image = image.crop((cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2))
        lo, hi = o.crop_scale
        area = float(rng.uniform(lo, hi))
        side = math.sqrt(area)
        cw, ch = image.width * side, image.height * side
        x0 = float(rng.uniform(0, image.width - cw)) if image.width > cw else 0.0
        y0 = float(rng.uniform(0, image.height - ch)) if image.height > ch else 0.0
        size = (o.size, o.size) if o.size else (w, h)
        image = image.resize(size, Image.Resampling.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
        factors = rng.uniform(-1, 1, 4)
        if o.brightness:
            image = ImageEnhance.Brightness(image).enhance(1 + o.brightness * factors[0])
        if o.contrast:
            image = ImageEnhance.Contrast(image).enhance(1 + o.contrast * factors[1])
        if o.saturation:
            image = ImageEnhance.Color(image).enhance(1 + o.saturation * factors[2])
        if o.hue:
            shift = int(round(o.hue * factors[3] * 255))
            if shift:
                h_, s_, v_ = image.convert("HSV").split()
                h_ = h_.point(lambda v: (v + shift) % 256)
                image = Image.merge("HSV", (h_, s_, v_)).convert("RGB")
        return image


@hookimpl
def register_generators(register) -> None:
    register(ClassicGenerator)
