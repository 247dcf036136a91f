"""A complete, minimal synthaug generator plugin.

``blend`` makes a new image of a class by mixing two random training images of that class
(``alpha * a + (1 - alpha) * b``, "within-class mixup"). It needs no training.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import Field

import synthaug
from synthaug import NULL_PROGRESS, Progress

__version__ = "0.1.0"


class BlendGenerator(synthaug.Generator):
    """Mix two images of the same class with a random weight."""

    name = "blend"
    version = __version__
    description = "Within-class mixup: a random blend of two images of the class."

    class Options(synthaug.GeneratorOptions):
        min_alpha: float = Field(0.3, ge=0, le=0.5, description="Smallest weight of either image in the blend.")
        size: int = Field(64, ge=8, le=4096, description="Side of the square output images, in pixels.")

    def fit(self, concepts: Sequence[synthaug.Concept], work_dir: Path, *, progress: Progress = NULL_PROGRESS) -> None:
        for concept in concepts:  # nothing to train; only check the input
            if not concept.images:
                raise synthaug.DatasetError(f"concept {concept.name!r} has no images to blend")

    def generate(self, concept: synthaug.Concept, seeds: Sequence[int]) -> Iterator[synthaug.GeneratedImage]:
        import numpy as np
        from PIL import Image

        from synthaug import load_image

        images = sorted(concept.images)
        size = (self.options.size, self.options.size)
        for seed in seeds:
            rng = np.random.default_rng(seed)
            i, j = rng.integers(len(images), size=2)
            alpha = rng.uniform(self.options.min_alpha, 1 - self.options.min_alpha)
            a = load_image(images[i]).resize(size)
            b = load_image(images[j]).resize(size)
            yield synthaug.GeneratedImage(Image.blend(a, b, float(alpha)), seed,
                                          {"sources": [images[i].name, images[j].name], "alpha": float(alpha)})


@synthaug.hookimpl
def register_generators(register) -> None:
    register(BlendGenerator)
